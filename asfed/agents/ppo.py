"""The PPO core every method shares: GAE (Eq. 17), the value loss (Eq. 18), the clipped surrogate.

Arrays are batch-first: a rollout of B episodes of T steps gives rewards `[B, T]`, values
`[B, T + 1]` (the last is the bootstrap value of the state after step T) and `terminated [B, T]`.
"""

from __future__ import annotations

import numpy as np
import torch


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    terminated: np.ndarray,
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalised advantage estimates and returns, vectorised over episodes.

    rewards `[B, T]`, values `[B, T + 1]`, terminated bool `[B, T]` (step t ended the episode
    by the rules: no bootstrap past it; a horizon cut is not termination and bootstraps from
    values[:, T]). Steps after a termination must carry zero reward; their advantages are zero.
    Returns (advantages `[B, T]`, value targets `[B, T]` = advantages + values[:, :T]).
    """
    b, t = rewards.shape
    adv = np.zeros((b, t))
    alive = ~np.logical_or.accumulate(terminated, axis=1)  # step t happens before any termination
    alive = np.concatenate([np.ones((b, 1), bool), alive[:, :-1]], axis=1)
    running = np.zeros(b)
    for k in range(t - 1, -1, -1):
        cont = 1.0 - terminated[:, k]
        delta = rewards[:, k] + gamma * values[:, k + 1] * cont - values[:, k]
        running = delta + gamma * lam * cont * running
        adv[:, k] = np.where(alive[:, k], running, 0.0)
        running = np.where(alive[:, k], running, 0.0)
    return adv, adv + values[:, :t]


def discounted_returns(rewards: np.ndarray, terminated: np.ndarray, gamma: float) -> np.ndarray:
    """Eq. 18's Monte-Carlo targets: sum_l gamma^l r_{t+l} to the episode's end.

    rewards `[B, T]`, terminated bool `[B, T]` (the episode ended at step t). An episode still
    running at T (no flag) is summed to T: nothing past the rollout is extrapolated.
    Returns `[B, T]`.
    """
    b, t = rewards.shape
    out = np.zeros((b, t))
    running = np.zeros(b)
    for k in range(t - 1, -1, -1):
        running = rewards[:, k] + gamma * running * (1.0 - terminated[:, k])
        out[:, k] = running
    return out


def old_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log_softmax over the last axis, for pi_old on a round's states (no autograd): logits
    `[..., A]` -> `[..., A]`. For few actions (A < 8) torch's last-axis CPU kernel costs about
    70 ns a row (0.7 ms for navigation's 9,600 states, 18 of them in an AS round); the same
    arithmetic over the transposed layout takes under a third of that, transposes included.
    Both take each row's max and sum its exponentials in order, and they give the same bits
    (tests/agents/test_ppo.py compares 28.8 M entries; the narrow rows are what make the
    last-axis kernel's sum sequential). Elsewhere, or with autograd, torch's own call."""
    a = logits.shape[-1]
    if logits.device.type != "cpu" or a >= 8 or logits.requires_grad or not logits.numel():
        return torch.log_softmax(logits, -1)
    columns = logits.reshape(-1, a).t().contiguous()  # [A, rows]
    return torch.log_softmax(columns, 0).t().reshape(logits.shape)


def clipped_surrogate(
    logp_new: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, clip: float
) -> torch.Tensor:
    """PPO's clipped surrogate loss (to minimise): -mean(min(r A, clip(r) A)). Inputs `[T]`."""
    ratio = torch.exp(logp_new - logp_old)
    return -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()


def value_loss(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 18: mean squared error to the return targets. Inputs `[T]`."""
    return ((values - targets) ** 2).mean()
