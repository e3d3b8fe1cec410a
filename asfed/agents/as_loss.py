"""Anticipation Sharing's dual clipped objective (paper Eq. 13-16), as a loss to minimise.

For agent i with neighbours N_i, on samples (s, a) from the old joint policy:

    xi_i   = pi^ii(a_i|s) / pi^ii_old(a_i|s)
    xi_Ni  = prod_{j in N_i} pi^ij(a_j|s) / pi^ij_old(a_j|s)
    X^ij   = {(s, a): (pi^ij(a_j|s) / pi^jj(a_j|s)) A_i >= A_i}
    X^ii_j = {(s, a): (pi^ii(a_i|s) / pi^ji(a_i|s)) A_i >= A_i}
    J_i    = E[min(xi_i xi_Ni A_i, clip(xi_i, 1 - eps, 1 + eps) xi_Ni A_i)
               - kappa_i rho sum_j (1[X^ij] ||pi^ij - pi^jj||^2 + 1[X^ii_j] ||pi^ii - pi^ji||^2)]

with kappa_i = mean |A_i| (the paper's implementation choice) and one rho for every j. pi^jj and
pi^ji are what neighbour j shared: constants in i's graph (detached here whatever is passed). The
indicators are evaluated on the current (not old) distributions, as Eq. 14 writes them, and carry
no gradient. With rho = 0 and no neighbours this is exactly PPO's clipped surrogate.
"""

from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class NeighbourTerms:
    """What agent i needs about neighbour j, over T samples; or about a block of J neighbours
    with the same action count, each field then with a leading `[J]` (what the AS agent passes:
    one block, so a minibatch step is a few batched operators, not a few per neighbour).

    ant_logits: i's anticipation pi^ij logits `[T, A_j]` (trainable);
    ant_logp_old: log pi^ij_old(a_j|s) `[T]`;
    actions: a_j `[T]` (public joint action);
    shared_policy: pi^jj(.|s) `[T, A_j]` as j shared it;
    shared_anticipation: pi^ji(.|s) `[T, A_i]`, j's anticipation of i, as j shared it;
    mask: bool `[T]`, the samples where j is i's neighbour (per-step neighbourhoods; None: all).
    Off the mask j is not in N_i: its ratio and both penalty terms are left out there.
    """

    ant_logits: torch.Tensor
    ant_logp_old: torch.Tensor
    actions: torch.Tensor
    shared_policy: torch.Tensor
    shared_anticipation: torch.Tensor
    mask: torch.Tensor | None = None


@dataclasses.dataclass
class ASLossParts:
    """The loss and its diagnostics (each a scalar tensor)."""

    loss: torch.Tensor
    surrogate: torch.Tensor
    penalty: torch.Tensor
    kappa: torch.Tensor
    frac_x_ij: torch.Tensor  # mean over neighbours and samples of 1[X^ij]
    frac_x_ii: torch.Tensor


def indicator_sets(p_new: torch.Tensor, p_shared: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """1[(p_new / p_shared) A >= A], elementwise over `[T]` (Eq. 14); no gradient. A shared
    probability of exactly 0 (a DP-noised row projected onto a vertex) is floored at 1e-8, so the
    ratio stays finite."""
    with torch.no_grad():
        return (p_new / p_shared.clamp_min(1e-8)) * adv >= adv


def as_loss(
    own_logits: torch.Tensor,
    own_actions: torch.Tensor,
    own_logp_old: torch.Tensor,
    adv: torch.Tensor,
    neighbours: list[NeighbourTerms],
    clip: float,
    rho: float,
) -> ASLossParts:
    """Agent i's AS loss.

    own_logits `[T, A_i]` (pi^ii, trainable), own_actions `[T]`, own_logp_old `[T]`, adv `[T]`
    (A_i from GAE), neighbours: one `NeighbourTerms` per j in N_i this round, or blocks of them.
    """
    adv = adv.detach()
    own_logp_all = torch.log_softmax(own_logits, -1)
    own_probs = own_logp_all.exp()
    own_logp = own_logp_all.gather(1, own_actions[:, None])[:, 0]
    xi_i = torch.exp(own_logp - own_logp_old.detach())

    log_xi_n = torch.zeros_like(xi_i)
    penalty = torch.zeros_like(xi_i)
    x_ij, x_ii = [], []
    for nb in neighbours:  # a neighbour `[T, ...]` or a block `[J, T, ...]`, alike
        ant_logp_all = torch.log_softmax(nb.ant_logits, -1)
        ant_probs = ant_logp_all.exp()
        ant_logp = ant_logp_all.gather(-1, nb.actions[..., None])[..., 0]
        log_ratio = ant_logp - nb.ant_logp_old.detach()
        pjj = nb.shared_policy.detach()
        pji = nb.shared_anticipation.detach()
        own_a = own_actions.expand(pji.shape[:-1])[..., None]
        in_ij = indicator_sets(ant_logp.exp(), pjj.gather(-1, nb.actions[..., None])[..., 0], adv)
        in_ii = indicator_sets(own_logp.exp(), pji.gather(-1, own_a)[..., 0], adv)
        if nb.mask is not None:
            log_ratio = log_ratio * nb.mask
            in_ij, in_ii = in_ij & nb.mask, in_ii & nb.mask
        term = in_ij * ((ant_probs - pjj) ** 2).sum(-1) + in_ii * ((own_probs - pji) ** 2).sum(-1)
        block = log_ratio.dim() == 2  # [J, T]: sum the block's neighbours
        log_xi_n = log_xi_n + (log_ratio.sum(0) if block else log_ratio)
        penalty = penalty + (term.sum(0) if block else term)
        x_ij.append(in_ij.float().mean(-1).reshape(-1))
        x_ii.append(in_ii.float().mean(-1).reshape(-1))
    xi_n = torch.exp(log_xi_n)

    surrogate = torch.min(xi_i * xi_n * adv, xi_i.clamp(1 - clip, 1 + clip) * xi_n * adv)
    kappa = adv.abs().mean()
    objective = surrogate - kappa * rho * penalty
    zero = own_logits.new_zeros(())
    return ASLossParts(
        loss=-objective.mean(),
        surrogate=surrogate.mean(),
        penalty=penalty.mean(),
        kappa=kappa,
        frac_x_ij=torch.cat(x_ij).mean() if x_ij else zero,
        frac_x_ii=torch.cat(x_ii).mean() if x_ii else zero,
    )


def as_loss_grad(
    own_logits: torch.Tensor,
    own_actions: torch.Tensor,
    own_logp_old: torch.Tensor,
    adv: torch.Tensor,
    block: NeighbourTerms | None,
    clip: float,
    rho: float,
) -> tuple[ASLossParts, torch.Tensor, torch.Tensor | None]:
    """`as_loss` with its gradient written out instead of taped (`asfed.agents.fused`): the
    same objective, its derivative in the own logits `[T, A]` and in the block's anticipation
    logits `[J, T, A]` (None without neighbours). Equal to autograd's to rounding
    (tests/agents/test_as_loss.py), ties of min's arguments split and clamp's bounds passing
    the gradient as torch's backward does.

    With u = xi_i xi_N A and c = clip(xi_i) xi_N A, the loss is -mean(min(u, c) - kappa rho P):
    d/d log pi^ii(a_i) = -(w_u u + w_c 1[inside] u) / T and d/d log xi_N = -(w_u u + w_c c) / T
    (w: which of u, c is the min, 1/2 each at a tie); each penalty square adds
    2 kappa rho 1[X] (pi - shared) / T to the gradient of its distribution; log-probabilities and
    distributions go back through the softmax to the logits."""
    with torch.no_grad():
        t = own_logits.shape[0]
        own_logp_all = torch.log_softmax(own_logits, -1)
        own_probs = own_logp_all.exp()
        own_logp = own_logp_all.gather(1, own_actions[:, None])[:, 0]
        xi_i = torch.exp(own_logp - own_logp_old)
        kappa = adv.abs().mean()
        scale = kappa * rho * (2.0 / t)
        grad_own_p = torch.zeros_like(own_probs)  # d loss / d pi^ii
        if block is not None:
            ant_logp_all = torch.log_softmax(block.ant_logits, -1)
            ant_probs = ant_logp_all.exp()
            acts = block.actions[..., None]
            ant_logp = ant_logp_all.gather(-1, acts)[..., 0]
            log_ratio = ant_logp - block.ant_logp_old
            pjj, pji = block.shared_policy, block.shared_anticipation
            own_a = own_actions.expand(pji.shape[:-1])[..., None]
            in_ij = indicator_sets(ant_logp.exp(), pjj.gather(-1, acts)[..., 0], adv)
            in_ii = indicator_sets(own_logp.exp(), pji.gather(-1, own_a)[..., 0], adv)
            if block.mask is not None:
                log_ratio = log_ratio * block.mask
                in_ij, in_ii = in_ij & block.mask, in_ii & block.mask
            d_ant = ant_probs - pjj
            d_own = own_probs - pji  # [J, T, A]
            term = in_ij * (d_ant**2).sum(-1) + in_ii * (d_own**2).sum(-1)
            penalty = term.sum(0)
            xi_n = torch.exp(log_ratio.sum(0))
            grad_own_p = (in_ii[..., None] * d_own).sum(0) * scale
            grad_ant_p = in_ij[..., None] * d_ant * scale
            frac_ij, frac_ii = in_ij.float().mean(), in_ii.float().mean()
        else:
            penalty = torch.zeros_like(xi_i)
            xi_n = torch.ones_like(xi_i)
            frac_ij = frac_ii = own_logits.new_zeros(())
        unclipped = xi_i * xi_n * adv
        clipped = xi_i.clamp(1 - clip, 1 + clip) * xi_n * adv
        surrogate = torch.min(unclipped, clipped)
        objective = surrogate - kappa * rho * penalty
        half = unclipped == clipped
        w_un = torch.where(half, 0.5, (unclipped < clipped).to(xi_i.dtype))
        w_cl = torch.where(half, 0.5, (clipped < unclipped).to(xi_i.dtype))
        inside = (xi_i >= 1 - clip) & (xi_i <= 1 + clip)
        grad_own_lp = (w_un + w_cl * inside) * unclipped * (-1.0 / t)
        grad_own = _through_softmax(own_probs, own_actions, grad_own_lp, grad_own_p)
        grad_ants = None
        if block is not None:
            grad_log_xi_n = (w_un * unclipped + w_cl * clipped) * (-1.0 / t)
            grad_ant_lp = grad_log_xi_n.expand(log_ratio.shape)
            if block.mask is not None:
                grad_ant_lp = grad_ant_lp * block.mask
            grad_ants = _through_softmax(ant_probs, block.actions, grad_ant_lp, grad_ant_p)
        parts = ASLossParts(
            loss=-objective.mean(),
            surrogate=surrogate.mean(),
            penalty=penalty.mean(),
            kappa=kappa,
            frac_x_ij=frac_ij,
            frac_x_ii=frac_ii,
        )
    return parts, grad_own, grad_ants


def _through_softmax(
    probs: torch.Tensor, actions: torch.Tensor, grad_logp: torch.Tensor, grad_probs: torch.Tensor
) -> torch.Tensor:
    """d loss / d logits `[..., T, A]` from d loss / d log p(a) `[..., T]` (at the taken
    actions `[..., T]`) and d loss / d p `[..., T, A]`, through p = softmax(logits)."""
    grad = probs * (grad_probs - (grad_probs * probs).sum(-1, keepdim=True))
    grad = grad - probs * grad_logp[..., None]
    return grad.scatter_add_(-1, actions[..., None], grad_logp[..., None])
