"""AS's dual clipped objective: reduction to PPO, the indicator sets, and where gradients flow."""

from __future__ import annotations

import pytest
import torch

from asfed.agents.as_loss import NeighbourTerms, as_loss, indicator_sets
from asfed.agents.ppo import clipped_surrogate

T, A = 64, 4


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Each test draws its inputs from its own seed, whatever ran before it."""
    torch.manual_seed(0)


def _own():
    logits = torch.randn(T, A, requires_grad=True)
    actions = torch.randint(0, A, (T,))
    logp_old = (torch.log_softmax(logits.detach() + 0.3 * torch.randn(T, A), -1)).gather(
        1, actions[:, None]
    )[:, 0]
    return logits, actions, logp_old


def _neighbour(a_j: int = 3) -> NeighbourTerms:
    logits = torch.randn(T, a_j, requires_grad=True)
    actions = torch.randint(0, a_j, (T,))
    logp_old = torch.log_softmax(logits.detach() + 0.3 * torch.randn(T, a_j), -1)
    return NeighbourTerms(
        ant_logits=logits,
        ant_logp_old=logp_old.gather(1, actions[:, None])[:, 0],
        actions=actions,
        shared_policy=torch.softmax(torch.randn(T, a_j), -1).requires_grad_(True),
        shared_anticipation=torch.softmax(torch.randn(T, A), -1).requires_grad_(True),
    )


def test_without_neighbours_and_rho_zero_it_is_ppo() -> None:
    logits, actions, logp_old = _own()
    adv = torch.randn(T)
    parts = as_loss(logits, actions, logp_old, adv, [], clip=0.2, rho=0.0)
    (g_as,) = torch.autograd.grad(parts.loss, logits)
    logp = torch.log_softmax(logits, -1).gather(1, actions[:, None])[:, 0]
    ppo = clipped_surrogate(logp, logp_old, adv, 0.2)
    (g_ppo,) = torch.autograd.grad(ppo, logits)
    assert parts.loss.item() == pytest.approx(ppo.item(), abs=1e-6)
    torch.testing.assert_close(g_as, g_ppo)
    # rho only matters through neighbours: with none, any rho gives the same loss
    other = as_loss(logits, actions, logp_old, adv, [], clip=0.2, rho=1e4)
    assert other.loss.item() == pytest.approx(ppo.item(), abs=1e-6)


def test_indicator_sets_follow_eq_14_on_hand_built_cases() -> None:
    p_new = torch.tensor([0.6, 0.2, 0.2, 0.6, 0.3, 0.3])
    p_shared = torch.tensor([0.3, 0.4, 0.4, 0.3, 0.3, 0.6])
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0, 2.0, 0.0])
    # ratio:             2.0   0.5   0.5   2.0   1.0   0.5
    # ratio*A >= A:      yes   no    yes   no    yes   yes (A = 0 always holds)
    expected = torch.tensor([True, False, True, False, True, True])
    assert torch.equal(indicator_sets(p_new, p_shared, adv), expected)


def test_penalty_selects_exactly_the_indicator_pairs() -> None:
    # Two samples, one neighbour with 2 actions; the own agent has 2 actions.
    own_logits = torch.log(torch.tensor([[0.7, 0.3], [0.4, 0.6]])).requires_grad_(True)
    own_actions = torch.tensor([0, 1])
    own_logp_old = torch.log(torch.tensor([0.5, 0.5]))
    nb = NeighbourTerms(
        ant_logits=torch.log(torch.tensor([[0.8, 0.2], [0.5, 0.5]])).requires_grad_(True),
        ant_logp_old=torch.log(torch.tensor([0.5, 0.5])),
        actions=torch.tensor([0, 0]),
        shared_policy=torch.tensor([[0.4, 0.6], [0.9, 0.1]]),
        shared_anticipation=torch.tensor([[0.9, 0.1], [0.5, 0.5]]),
    )
    adv = torch.tensor([1.0, 1.0])
    # X^ij: sample 0: 0.8/0.4 = 2 >= 1 -> in; sample 1: 0.5/0.9 < 1 -> out.
    # X^ii: sample 0: 0.7/0.9 < 1 -> out; sample 1: 0.6/0.5 >= 1 -> in.
    d_ij0 = (0.8 - 0.4) ** 2 + (0.2 - 0.6) ** 2
    d_ii1 = (0.4 - 0.5) ** 2 + (0.6 - 0.5) ** 2
    parts = as_loss(own_logits, own_actions, own_logp_old, adv, [nb], clip=0.2, rho=1.0)
    assert parts.penalty.item() == pytest.approx((d_ij0 + d_ii1) / 2, rel=1e-5)
    assert parts.frac_x_ij.item() == 0.5 and parts.frac_x_ii.item() == 0.5
    assert parts.kappa.item() == pytest.approx(1.0)


def test_shared_distributions_are_constants() -> None:
    logits, actions, logp_old = _own()
    nbs = [_neighbour(), _neighbour(5)]
    as_loss(logits, actions, logp_old, torch.randn(T), nbs, clip=0.2, rho=10.0).loss.backward()
    for nb in nbs:
        assert nb.shared_policy.grad is None and nb.shared_anticipation.grad is None
        assert nb.ant_logits.grad is not None and nb.ant_logits.grad.abs().sum() > 0


def test_anticipations_get_gradient_only_through_xi_n_and_the_penalty() -> None:
    logits, actions, logp_old = _own()
    nb = _neighbour()
    adv = torch.randn(T)

    def grad(rho: float, adv: torch.Tensor) -> torch.Tensor:
        loss = as_loss(logits, actions, logp_old, adv, [nb], clip=0.2, rho=rho).loss
        return torch.autograd.grad(loss, nb.ant_logits)[0]

    # With zero advantages both routes vanish (kappa = 0 too): no gradient at all.
    assert grad(10.0, torch.zeros(T)).abs().max() == 0
    # Through xi_N alone (rho = 0): non-zero.
    g_xi = grad(0.0, adv)
    assert g_xi.abs().sum() > 0
    # The penalty's share is exactly the gradient of kappa rho mean(1[X^ij] ||pi^ij - pi^jj||^2).
    rho = 3.0
    probs = torch.softmax(nb.ant_logits, -1)
    p_a = probs.gather(1, nb.actions[:, None])[:, 0]
    in_ij = indicator_sets(p_a, nb.shared_policy.gather(1, nb.actions[:, None])[:, 0], adv)
    pen = adv.abs().mean() * rho * (in_ij * ((probs - nb.shared_policy.detach()) ** 2).sum(-1))
    (g_pen,) = torch.autograd.grad(pen.mean(), nb.ant_logits)
    torch.testing.assert_close(grad(rho, adv), g_xi + g_pen)


def test_a_gradient_step_on_the_penalty_pulls_anticipations_toward_shared_policies() -> None:
    logits, actions, logp_old = _own()
    nb = _neighbour()
    adv = torch.randn(T)
    gap = lambda: ((torch.softmax(nb.ant_logits, -1) - nb.shared_policy) ** 2).sum()  # noqa: E731
    before = gap().item()
    opt = torch.optim.SGD([nb.ant_logits], lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        as_loss(logits, actions, logp_old, adv, [nb], clip=0.2, rho=1e3).loss.backward()
        opt.step()
    assert gap().item() < 0.5 * before


def test_a_neighbour_counts_only_on_the_states_where_it_is_one() -> None:
    """Per-step neighbourhoods: off j's mask, j is not in N_i, so its ratio and both penalties
    drop out there. All-off equals no neighbour; all-on equals no mask; with a half mask the
    anticipation learns only on the masked samples."""
    logits, actions, logp_old = _own()
    adv = torch.randn(T)
    nb = _neighbour()
    kw = {"clip": 0.2, "rho": 3.0}

    def per_sample(terms):
        parts = as_loss(logits, actions, logp_old, adv, terms, **kw)
        return parts.loss.item()

    alone = per_sample([])
    nb.mask = torch.zeros(T, dtype=torch.bool)
    assert per_sample([nb]) == pytest.approx(alone, rel=1e-6)
    nb.mask = torch.ones(T, dtype=torch.bool)
    with_all = per_sample([nb])
    nb.mask = None
    assert per_sample([nb]) == pytest.approx(with_all, rel=1e-6)
    nb.mask = torch.arange(T) % 2 == 0
    parts = as_loss(logits, actions, logp_old, adv, [nb], **kw)
    parts.loss.backward()
    grad = nb.ant_logits.grad
    assert grad[1::2].abs().sum() == 0 and grad[::2].abs().sum() > 0  # pi^ij learns only there


@pytest.mark.parametrize("masked", [True, False])
def test_a_block_of_neighbours_is_the_list_of_them(masked: bool) -> None:
    """The AS agent passes its J neighbours as one `[J, T, ...]` block: same loss, diagnostics
    and gradients as J separate terms (with and without a mask)."""
    logits, actions, logp_old = _own()
    adv = torch.randn(T)
    nbs = [_neighbour(), _neighbour(), _neighbour()]
    if masked:
        nbs[1].mask = torch.arange(T) % 3 == 0
    kw = {"clip": 0.2, "rho": 5.0}
    ref = as_loss(logits, actions, logp_old, adv, nbs, **kw)
    ref_grads = torch.autograd.grad(ref.loss, [logits, *(nb.ant_logits for nb in nbs)])
    block = NeighbourTerms(
        ant_logits=torch.stack([nb.ant_logits for nb in nbs]),
        ant_logp_old=torch.stack([nb.ant_logp_old for nb in nbs]),
        actions=torch.stack([nb.actions for nb in nbs]),
        shared_policy=torch.stack([nb.shared_policy for nb in nbs]),
        shared_anticipation=torch.stack([nb.shared_anticipation for nb in nbs]),
        mask=torch.stack(
            [torch.ones(T, dtype=torch.bool) if nb.mask is None else nb.mask for nb in nbs]
        )
        if masked
        else None,
    )
    got = as_loss(logits, actions, logp_old, adv, [block], **kw)
    got_grads = torch.autograd.grad(got.loss, [logits, *(nb.ant_logits for nb in nbs)])
    for field in ("loss", "surrogate", "penalty", "kappa", "frac_x_ij", "frac_x_ii"):
        torch.testing.assert_close(getattr(got, field), getattr(ref, field))
    for g, r in zip(got_grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r)
    assert ref.penalty.item() > 0 and 0 < ref.frac_x_ij.item() < 1


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("rho", [0.0, 0.5, 10.0])
@pytest.mark.parametrize("peers", [0, 1, 2])
def test_the_written_out_gradient_is_autograds(masked: bool, rho: float, peers: int) -> None:
    """`as_loss_grad` (what fused steps use) against autograd through `as_loss`: the same loss
    and diagnostics, and the gradients in the own and the anticipation logits to float32
    rounding, with ratios on both sides of the clip and neighbours on part of the states."""
    from asfed.agents.as_loss import as_loss_grad

    logits, actions, logp_old = _own()
    logp_old = logp_old + 0.4 * torch.randn(T)  # some ratios beyond the clip
    adv = torch.randn(T)
    block = None
    if peers:
        nbs = [_neighbour(A) for _ in range(peers)]
        mask = torch.rand(peers, T) < 0.7 if masked else None
        block = NeighbourTerms(
            ant_logits=torch.stack([n.ant_logits.detach() for n in nbs]).requires_grad_(),
            ant_logp_old=torch.stack([n.ant_logp_old for n in nbs]) + 0.4 * torch.randn(peers, T),
            actions=torch.stack([n.actions for n in nbs]),
            shared_policy=torch.stack([n.shared_policy.detach() for n in nbs]),
            shared_anticipation=torch.stack([n.shared_anticipation.detach() for n in nbs]),
            mask=mask,
        )
    taped = as_loss(logits, actions, logp_old, adv, [block] if block else [], clip=0.2, rho=rho)
    wrt = [logits] + ([block.ant_logits] if block else [])
    want = torch.autograd.grad(taped.loss, wrt)
    parts, d_own, d_ants = as_loss_grad(
        logits.detach(), actions, logp_old, adv, block, clip=0.2, rho=rho
    )
    for field in ("loss", "surrogate", "penalty", "kappa", "frac_x_ij", "frac_x_ii"):
        torch.testing.assert_close(getattr(parts, field), getattr(taped, field).detach())
    torch.testing.assert_close(d_own, want[0], rtol=1e-4, atol=1e-7)
    if block is None:
        assert d_ants is None
    else:
        torch.testing.assert_close(d_ants, want[1], rtol=1e-4, atol=1e-7)
