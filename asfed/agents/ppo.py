"""The PPO core every method shares: GAE (Eq. 17), the value loss (Eq. 18), the clipped surrogate.

Arrays are batch-first: a rollout of B episodes of T steps gives rewards `[B, T]`, values
`[B, T + 1]` (the last is the bootstrap value of the state after step T) and `terminated [B, T]`.
"""

from __future__ import annotations

import functools

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
    # Everything but the recursion is computed for all steps at once (the same operations in
    # the same order, so the same bits): the loop is then two operations and a select a step.
    cont = 1.0 - terminated
    delta = rewards + gamma * values[:, 1:] * cont - values[:, :t]
    decay = gamma * lam * cont
    running = np.zeros(b)
    for k in range(t - 1, -1, -1):
        running = np.where(alive[:, k], delta[:, k] + decay[:, k] * running, 0.0)
        adv[:, k] = running
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


SAME_BITS = frozenset({"AVX2", "AVX512", "DEFAULT"})
"""torch's x86 CPU kernels, whose float32 vectors hold 8 or more lanes: there a row of fewer
than 8 actions is reduced in order by the last-axis kernel, as the transposed one does."""


def old_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log_softmax over the last axis, for pi_old on a round's states (no autograd): logits
    `[..., A]` -> `[..., A]`. For few actions torch's last-axis CPU kernel costs about 70 ns a
    row (0.7 ms for navigation's 9,600 states; 18 such calls an AS round); the same arithmetic
    over the transposed layout `[A, rows]` takes under a third of that, transposes included.
    Both take each row's max and sum its exponentials in order and give the same bits where
    the conditions below hold: float32, A < 8, one of the `SAME_BITS` kernels, and the rows
    padded to a multiple of 64 (the transposed kernel's rows past its last full vector would
    get the scalar exp, which differs from the vector one in the last bit).
    tests/agents/test_ppo.py compares them on odd and even row counts. Elsewhere (a GPU,
    other dtypes, more actions, autograd, no rows), torch's own call."""
    a = logits.shape[-1]
    rows = logits.numel() // a if a else 0
    if (
        logits.device.type != "cpu"
        or logits.dtype != torch.float32
        or not 0 < a < 8
        or not rows
        or logits.requires_grad
        or _cpu_capability() not in SAME_BITS
    ):
        return torch.log_softmax(logits, -1)
    columns = logits.new_zeros(a, -(-rows // 64) * 64)  # the padding's rows are dropped
    columns[:, :rows] = logits.reshape(rows, a).t()
    return torch.log_softmax(columns, 0)[:, :rows].t().reshape(logits.shape)


@functools.cache
def _cpu_capability() -> str:
    """The SIMD kernels torch dispatches to on this CPU (e.g. AVX2, AVX512, DEFAULT)."""
    return torch.backends.cpu.get_cpu_capability()


def clipped_surrogate(
    logp_new: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, clip: float
) -> torch.Tensor:
    """PPO's clipped surrogate loss (to minimise): -mean(min(r A, clip(r) A)). Inputs `[T]`."""
    ratio = torch.exp(logp_new - logp_old)
    return -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()


def value_loss(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 18: mean squared error to the return targets. Inputs `[T]`."""
    return ((values - targets) ** 2).mean()
