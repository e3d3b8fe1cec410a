"""The stacked, hand-differentiated PPO steps (`asfed.agents.fused`) against autograd, and
independent of what they are stacked with."""

from __future__ import annotations

import copy
import shutil

import pytest
import torch

from asfed.agents import fused
from asfed.agents.networks import mlp
from asfed.agents.ppo import clipped_surrogate, value_loss

SHAPES = [(61, 5), (43, 5), (27, 5)]  # navigation-, exchange- and predation-like inputs


def _streams(kind: str, count: int, obs_dim: int, actions: int, rows: int = 100, seed: int = 0):
    torch.manual_seed(seed)
    m = rows * 4
    out = []
    for _ in range(count):
        net = mlp([obs_dim, 128, 64], actions if kind == "surrogate" else 1)
        inputs = torch.randn(m, obs_dim)
        batches = list(torch.randperm(m).split(rows))
        if kind == "surrogate":
            with torch.no_grad():
                old = torch.log_softmax(net(inputs) * 0.9, -1)
            acts = torch.randint(0, actions, (m,))
            logp_old = old.gather(1, acts[:, None])[:, 0]
            loss = fused.Surrogate(acts, logp_old, torch.randn(m), 0.2)
        else:
            loss = fused.Regression(torch.randn(m) * 3)
        out.append(fused.Steps([net], inputs, batches, loss))
    return out


def _autograd(s: fused.Steps, j: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    idx = s.batches[j]
    out = s.nets[0](s.inputs[idx])
    if isinstance(s.loss, fused.Surrogate):
        lp = torch.log_softmax(out, -1).gather(1, s.loss.actions[idx, None])[:, 0]
        loss = clipped_surrogate(lp, s.loss.logp_old[idx], s.loss.adv[idx], s.loss.clip)
    else:
        loss = value_loss(out[:, 0], s.loss.targets[idx])
    grads = torch.autograd.grad(loss, list(s.nets[0].parameters()))
    return loss.detach(), list(grads)


def _fused(
    streams: list[fused.Steps], j: int, compiled: bool = False
) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    for s in streams:
        for p in s.nets[0].parameters():
            p.grad = None
    loss, _ = fused.Stack(streams, compiled).step(j)
    return loss, [[p.grad.clone() for p in s.nets[0].parameters()] for s in streams]


@pytest.mark.parametrize("kind", ["surrogate", "regression"])
@pytest.mark.parametrize("obs_dim,actions", SHAPES)
def test_fused_steps_equal_autograd_to_rounding(kind, obs_dim, actions) -> None:
    """Hand-written chain rule against autograd's: equal to float32 rounding, never more (the
    products run in another order, so bit equality is not expected)."""
    streams = _streams(kind, 3, obs_dim, actions)
    for j in range(len(streams[0].batches)):
        loss, grads = _fused(streams, j)
        for g, s in enumerate(streams):
            ref_loss, ref_grads = _autograd(s, j)
            torch.testing.assert_close(loss[g], ref_loss, rtol=1e-5, atol=1e-6)
            for mine, ref in zip(grads[g], ref_grads, strict=True):
                torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["surrogate", "regression"])
@pytest.mark.parametrize("obs_dim,actions", SHAPES)
def test_a_networks_numbers_do_not_depend_on_what_it_is_stacked_with(
    kind, obs_dim, actions
) -> None:
    """A network's loss and gradients are the same bytes alone as in a stack of 2 to 6, so a
    run's numbers do not depend on which agents share a worker."""
    streams = _streams(kind, 6, obs_dim, actions, seed=1)
    full_loss, full = _fused(streams, 0)
    for size in range(1, 6):
        for start in range(0, 6 - size + 1, 2):
            part = streams[start : start + size]
            loss, grads = _fused(part, 0)
            assert torch.equal(loss, full_loss[start : start + size]), (size, start)
            for g in range(size):
                for mine, ref in zip(grads[g], full[start + g], strict=True):
                    assert torch.equal(mine, ref), (size, start, g)


def test_the_surrogate_gradient_is_zero_where_the_clip_binds() -> None:
    """A sample whose ratio is past the clip on the advantage's side moves nothing (PPO's point)."""
    logits = torch.zeros(1, 2, 3)
    actions = torch.tensor([[0, 0]])
    logp_old = torch.log(torch.tensor([[1 / 3, 1 / 3]])) - torch.tensor([[1.0, -1.0]])
    adv = torch.tensor([[1.0, -1.0]])  # ratio e > 1.2 with A > 0; ratio 1/e < 0.8 with A < 0
    _, grad = fused.surrogate(logits, [actions, logp_old, adv], 0.2)
    assert torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs g++")
@pytest.mark.parametrize("kind", ["surrogate", "regression"])
def test_compiled_stacks_keep_a_networks_numbers_independent_of_its_stack(kind) -> None:
    """Compiled (`compile_steps`), a stack is a graph per shape, so a network stacked with 1
    or 5 others runs other generated kernels: its bytes must still not depend on which (the
    elementwise work and the reductions over the minibatch are per network), and they equal
    the eager stack's to rounding only (inductor fuses and reorders the elementwise work)."""
    streams = _streams(kind, 6, *SHAPES[0], seed=2)
    full_loss, full = _fused(streams, 1, compiled=True)
    eager_loss, eager = _fused(streams, 1)
    torch.testing.assert_close(full_loss, eager_loss, rtol=1e-5, atol=1e-6)
    for mine_net, ref_net in zip(full, eager, strict=True):
        for mine, ref in zip(mine_net, ref_net, strict=True):
            torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-6)
    for size, start in [(1, 0), (2, 2), (3, 3)]:
        loss, grads = _fused(streams[start : start + size], 1, compiled=True)
        assert torch.equal(loss, full_loss[start : start + size]), (size, start)
        for g in range(size):
            for mine, ref in zip(grads[g], full[start + g], strict=True):
                assert torch.equal(mine, ref), (size, start, g)


def _whole_trial(groups: list[list[fused.Steps]], j: int, whole: bool) -> list[torch.Tensor]:
    """Fresh copies of the networks of `groups` (a stack each, as an actor and a critic stack
    are), an Adam with state over them, then step j either as one `fused.Whole` program or as
    the stacks' steps and Adam's own: every network's parameters, in order."""
    mine = copy.deepcopy(groups)
    params = [p for streams in mine for s in streams for p in s.nets[0].parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()  # creates the state (zero gradients move nothing)
    opt.zero_grad()
    stacks = [fused.Stack(streams, compiled=whole) for streams in mine]
    if whole:
        assert fused.Whole.usable(stacks, opt)
        whole = fused.Whole(stacks, opt)
        loss, _ = whole.steps(j, 1)[0]
        whole.finish()  # the held parameters and moments back into the networks and Adam
    else:
        loss = torch.cat([stack.step(j)[0] for stack in stacks])
        opt.step()
    assert torch.isfinite(loss).all()
    return [p.detach().clone() for p in params]


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs g++")
def test_whole_steps_keep_a_networks_numbers_independent_of_its_stack() -> None:
    """`fused.Whole` compiles a step of an actor and a critic stack and their Adam update as
    one program per stack shape: a network's new parameters are the same bytes whether it is
    stacked with 0, 2 or 5 others (its reductions are not split by the stack's size, Adam is
    per tensor), and equal the eager steps' and fused Adam's to rounding only: 1e-5 absolute,
    a hundredth of the lr 1e-3 step Adam's first update gives each entry (a wrong gradient or
    moment is off by whole steps; rounding moves an entry whose gradient is near Adam's eps by
    up to about 1e-6)."""
    actors = _streams("surrogate", 6, *SHAPES[0], seed=3)
    critics = _streams("regression", 6, *SHAPES[0], seed=4)
    full = _whole_trial([actors, critics], 1, whole=True)
    eager = _whole_trial([actors, critics], 1, whole=False)
    for mine, ref in zip(full, eager, strict=True):
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-5)
    per_net = len(full) // 12
    nets = [full[k * per_net : (k + 1) * per_net] for k in range(12)]
    for size, start in [(1, 0), (3, 3)]:
        part = _whole_trial([actors[start : start + size], critics[start : start + size]], 1, True)
        want = [
            t
            for k in [*range(start, start + size), *range(6 + start, 6 + start + size)]
            for t in nets[k]
        ]
        assert all(torch.equal(a, b) for a, b in zip(part, want, strict=True)), (size, start)


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs g++")
def test_a_whole_step_with_a_non_finite_loss_writes_nothing() -> None:
    """A diverged loss must not reach any parameter or moment, so lockstep can name it with
    the run's last state intact, as the eager path does."""
    streams = _streams("regression", 2, *SHAPES[0], seed=4)
    streams[1].loss.targets[:] = float("nan")
    params = [p for s in streams for p in s.nets[0].parameters()]
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    before = [t.clone() for p in params for t in (p, *opt.state[p].values())]
    whole = fused.Whole([fused.Stack(streams, compiled=True)], opt)
    loss, _ = whole.steps(0, 1)[0]
    whole.finish()
    assert torch.isfinite(loss[0]) and not torch.isfinite(loss[1])
    after = [t for p in params for t in (p, *opt.state[p].values())]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    # Adam's step sizes come from the host's count of steps taken, which a step that wrote
    # nothing would make wrong: a call after a non-finite loss is refused
    assert whole.diverged
    with pytest.raises(RuntimeError, match="non-finite"):
        whole.steps(1, 1)


def test_a_compiled_stack_of_a_round_without_rows_builds_and_is_not_whole() -> None:
    """A round can have no samples (every episode over at reset): a compiled stack of a pure
    Head then gathers nothing (it used to fail on an empty `torch.cat`), and `Whole` is not
    used for it."""
    net = mlp([SHAPES[0][0], 128, 64], 5)
    head = fused.Head(
        lambda *a: None, written=True, pure=lambda *a: None, data=[(torch.zeros(0), 0)]
    )
    stack = fused.Stack([fused.Steps([net], torch.zeros(0, SHAPES[0][0]), [], head)], compiled=True)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()  # state, so only the missing rows can make it unusable
    assert not fused.Whole.usable([stack], opt)


def _adam_with_state(params: list[torch.nn.Parameter]) -> torch.optim.Adam:
    """A fused Adam whose state exists (one step of zero gradients, which moves nothing)."""
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    for p in params:
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad()
    return opt


def _state(params: list[torch.nn.Parameter], opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [t.detach().clone() for p in params for t in (p, *opt.state[p].values())]


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs g++")
def test_an_unrolled_call_stops_writing_at_its_first_non_finite_step() -> None:
    """Four steps a call: when step 2 diverges, the state `finish` writes back is the one after
    step 1 (steps 0 and 1 taken, 2 and 3 not), as stepping one at a time and stopping there
    would leave it."""
    streams = _streams("regression", 2, *SHAPES[0], seed=5)
    streams[1].loss.targets[streams[1].batches[2]] = float("nan")
    outcomes = []
    for calls in ([(0, 4)], [(0, 1), (1, 1)]):
        mine = copy.deepcopy(streams)
        params = [p for s in mine for p in s.nets[0].parameters()]
        opt = _adam_with_state(params)
        whole = fused.Whole([fused.Stack(mine, compiled=True)], opt)
        losses = [values for j, u in calls for values, _ in whole.steps(j, u)]
        whole.finish()
        outcomes.append((losses, _state(params, opt)))
    (four, after_four), (_, after_two) = outcomes
    # step 3's losses come from the state after step 1 (nothing of step 2 was written)
    assert [bool(torch.isfinite(v).all()) for v in four[:3]] == [True, True, False]
    assert all(torch.isfinite(t).all() for t in after_four)
    for mine, ref in zip(after_four, after_two, strict=True):
        torch.testing.assert_close(mine, ref, rtol=0, atol=1e-6)


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs g++")
@pytest.mark.parametrize("kind", ["surrogate", "regression"])
def test_a_lone_networks_bytes_match_a_larger_stacks_over_an_unrolled_call(kind) -> None:
    """A network stacked alone runs beside a copy of itself (the held stack's last row): over
    four steps in one call its parameters and Adam moments are the same bytes as the same
    network's stepped in a stack of 3, as a run on 2 workers needs to equal one on 1. (A plain
    sum for the bias gradients failed this for the policy head's 5-entry bias: `_summed`.)"""
    nets = _streams(kind, 3, *SHAPES[0], seed=6)
    results = []
    for group in (nets[:1], nets):
        mine = copy.deepcopy(group)
        params = [p for s in mine for p in s.nets[0].parameters()]
        opt = _adam_with_state(params)
        whole = fused.Whole([fused.Stack(mine, compiled=True)], opt)
        whole.steps(0, 4)
        whole.finish()
        results.append(_state(list(mine[0].nets[0].parameters()), opt))
    alone, among = results
    assert all(torch.equal(a, b) for a, b in zip(alone, among, strict=True))
