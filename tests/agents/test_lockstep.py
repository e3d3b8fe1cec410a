"""Lockstep minibatch steps (`asfed.agents.lockstep`) are the same arithmetic as one at a time."""

from __future__ import annotations

import shutil

import pytest
import torch

from asfed.agents import lockstep
from asfed.agents.base import Diverged
from asfed.config import build_config
from asfed.engine.loop import Simulation

CASES = [
    ("exchange", "as", {}),
    ("navigation", "ippo", {}),
    ("exchange", "vs", {}),
    ("exchange", "vps", {}),
    ("exchange", "ps", {}),
    ("navigation", "cppo", {"agents": 2}),
    ("exchange", "as", {"max_grad_norm": 0.5}),
]


def trained(
    env: str, method: str, on: bool, fuse: bool = True, **options
) -> tuple[list[torch.Tensor], list]:
    """Every parameter and Adam state tensor of every agent, and the round metrics, after two
    rounds of four episodes with lockstep on or off (and, on, plain PPO steps fused or not)."""
    cfg = build_config(env=env, method=method, engine="local", episodes=4, **options)
    sim = Simulation(cfg, private_seed=3)
    with lockstep.together(on), lockstep.fusing(fuse):
        metrics = [sim.run_round()[0] for _ in range(2)]
    tensors = []
    for agent in sim.federation.agents:
        for module in agent.modules().values():
            if isinstance(module, torch.nn.Module):
                tensors += [p.detach() for p in module.parameters()]
            else:  # an optimiser: its per-parameter state, in parameter order
                for group in module.param_groups:
                    for p in group["params"]:
                        tensors += [v for v in module.state[p].values() if torch.is_tensor(v)]
        tensors += [torch.tensor(v) for _, v in sorted(agent._stats.items())]
    return tensors, metrics


@pytest.mark.parametrize(("env", "method", "options"), CASES)
def test_lockstep_gives_the_numbers_of_one_step_at_a_time(env, method, options) -> None:
    """Every agent's parameters, Adam moments and step counts, its diagnostics and the team
    returns are bit for bit those of stepping each optimiser alone, agent by agent (the gradient
    of a sum over disjoint parameters is each term's; Adam is elementwise)."""
    ours, ours_metrics = trained(env, method, True, fuse=False, **options)
    alone, alone_metrics = trained(env, method, False, **options)
    assert len(ours) == len(alone) and len(ours) > 20
    assert all(torch.equal(a, b) for a, b in zip(ours, alone, strict=True))
    assert ours_metrics == alone_metrics


@pytest.mark.parametrize(("env", "method", "options"), CASES)
def test_fused_steps_give_the_taped_numbers_to_rounding(env, method, options) -> None:
    """`asfed.agents.fused` writes the chain rule out instead of taping it, so it multiplies in
    another order than autograd: after two rounds every parameter, Adam moment and diagnostic
    is within 1e-4 relative (+1e-6) of autograd's, not bit for bit (the tolerance's reasoning is
    the compiled test's below), and the team returns are equal."""
    ours, ours_metrics = trained(env, method, True, **options)
    taped, taped_metrics = trained(env, method, True, fuse=False, **options)
    assert len(ours) == len(taped) and len(ours) > 20
    for a, b in zip(ours, taped, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert [m["team_return"] for m in ours_metrics] == [m["team_return"] for m in taped_metrics]


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs g++")
@pytest.mark.parametrize(("method", "options"), [("as", {"rho": 10.0}), ("ippo", {})])
def test_compiled_steps_give_the_eager_numbers_to_rounding(method, options) -> None:
    """`compile_steps` fuses and reorders elementwise work (inductor), so it equals eager only to
    rounding, not bit for bit: after two rounds every parameter, Adam moment and diagnostic is
    within 1e-4 relative (+1e-6) of eager's. The tolerance is far below an update's size (lr
    5e-5 steps move a weight by about that much, and a wrong gradient would be off by whole
    updates) and far above float32 rounding accumulated over 2 x 3 x 4 steps. Every update after
    the first (whose Adam has no state yet) runs as `fused.Whole` programs, Adam included. AS
    runs at rho = 10: at Table 2's 1e4 its penalty gradient, 2 kappa rho (pi - shared) / T, a
    difference of near-equal probabilities times 1e4, turns a softmax's last-bit change into
    up to 6e-4 relative (measured: 926 times this tolerance at 1e4, 0.11 times at 10), so it is
    ill-conditioned, not wrong; tests/agents/test_as_pure_head.py holds the compiled head's
    arithmetic to the agent's bit for bit."""
    from torch._dynamo.utils import counters

    from asfed.agents import fused

    compiled_before = counters["stats"]["unique_graphs"]

    def calls() -> int:
        info = fused._whole_kernel.cache_info()
        return info.hits + info.misses

    wholes_before = calls()
    ours, ours_metrics = trained("exchange", method, True, compile_steps=True, **options)
    assert counters["stats"]["unique_graphs"] > compiled_before  # the steps did compile
    wholes = calls() - wholes_before
    unroll = next(u for u in lockstep.UNROLL if 4 % u == 0)  # 4 minibatches an update
    assert wholes == (2 * 3 - 1) * 4 // unroll  # every update but the first (Adam has no state)
    eager, eager_metrics = trained("exchange", method, True, **options)
    assert len(ours) == len(eager) and len(ours) > 20
    for a, b in zip(ours, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert [m["team_return"] for m in ours_metrics] == [m["team_return"] for m in eager_metrics]


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on the CPU needs g++")
def test_packed_head_data_gives_the_bytes_of_each_members_own(monkeypatch) -> None:
    """`fused._packed` hands the compiled program one tensor a place of AS's head data (the
    members' tensors stacked or concatenated) rather than one a place a member, to cut the
    per-tensor costs of a call: the members read views of the same values, so after two
    rounds every parameter, Adam moment and diagnostic is the same bytes as with each member's
    own tensors (`fused._apart`), and the data were packed."""
    from asfed.agents import fused

    sizes: list[tuple[int, int]] = []
    pack = fused._packed

    def spied(st):
        flat, picks = pack(st)
        sizes.append((len(flat), len(fused._apart(st)[0])))
        return flat, picks

    monkeypatch.setattr(fused, "_packed", spied)
    packed, packed_metrics = trained("exchange", "as", True, compile_steps=True)
    assert sizes and all(ours < theirs for ours, theirs in sizes)  # 3 agents: 7 tensors, not 21
    monkeypatch.setattr(fused, "_packed", fused._apart)
    apart, apart_metrics = trained("exchange", "as", True, compile_steps=True)
    assert len(packed) == len(apart) and len(packed) > 20
    assert all(torch.equal(a, b) for a, b in zip(packed, apart, strict=True))
    assert packed_metrics == apart_metrics


@pytest.mark.parametrize("fuse", [True, False])
def test_a_non_finite_loss_names_its_agent_and_which_loss_and_changes_nothing(fuse) -> None:
    """One agent's diverged critic stops the lockstep update before any parameter moves."""
    cfg = build_config(env="navigation", method="ippo", engine="local", episodes=2)
    sim = Simulation(cfg, private_seed=1)
    sim.run_round()
    agents = sim.federation.agents
    before = [p.detach().clone() for a in agents for p in a.critic.parameters()]
    graph = sim.topology.neighbours(0, sim.topology_rng, sim.last_trajectory.valid_positions())
    plans = [a.plan_update(1, [], graph) for a in agents]
    critic = plans[1].streams[1]
    if fuse:  # the stacked steps read the targets, not the step's closure
        critic.fused.loss.targets.fill_(float("nan"))
    else:
        broken = critic.steps[0]
        critic.steps[0] = lambda: (broken()[0] * float("nan"), {})
    with pytest.raises(Diverged, match="agent 1's value loss is nan"), lockstep.fusing(fuse):
        lockstep.run(plans)
    after = [p.detach() for a in agents for p in a.critic.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_the_joint_optimiser_updates_each_agents_own_state() -> None:
    """A joint step leaves its moments and step count in each agent's own optimiser (what its
    checkpoint saves), and merges groups of equal hyperparameters into one."""
    nets = [torch.nn.Linear(3, 2) for _ in range(3)]
    opts = [torch.optim.Adam(n.parameters(), lr=1e-3, fused=True) for n in nets]
    joint = lockstep.joint_optimizer(opts)
    assert len(joint.param_groups) == 1
    joint.zero_grad()
    torch.autograd.backward([n(torch.ones(1, 3)).sum() for n in nets])
    joint.step()
    for net, opt in zip(nets, opts, strict=True):
        state = opt.state_dict()["state"]
        assert len(state) == 2 and all(float(s["step"]) == 1.0 for s in state.values())
        assert torch.equal(opt.state[net.weight]["exp_avg"], joint.state[net.weight]["exp_avg"])
    other = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=2e-3, fused=True)
    mixed = lockstep.joint_optimizer([*opts, other])
    assert len(mixed.param_groups) == 2


def test_only_small_networks_step_in_lockstep() -> None:
    """Table 2's 128-64 MLPs step together; cleanup's 1024-256 ones one at a time (lockstep
    measured slower there)."""
    from asfed.agents.hparams import paper_config
    from asfed.agents.networks import mlp

    def stream(env: str, obs_dim: int) -> lockstep.Stream:
        net = mlp([obs_dim, *paper_config(env).actor_hidden], 6)
        return lockstep.Stream(torch.optim.Adam(net.parameters()), [], [], "policy loss")

    assert lockstep.small([stream("navigation", 61), stream("predation", 18)])
    assert not lockstep.small([stream("exchange", 70), stream("cleanup", 236)])


def test_the_stepper_is_adams_step_byte_for_byte() -> None:
    """`lockstep.Stepper` calls fused Adam's kernels itself: after steps where one parameter
    has no gradient (Adam skips it) and with two learning rates, every parameter and moment
    is the same bytes as `torch.optim.Adam.step`'s."""
    torch.manual_seed(0)
    nets = [torch.nn.Linear(4, 3) for _ in range(2)]
    twins = [torch.nn.Linear(4, 3) for _ in range(2)]
    for a, b in zip(nets, twins, strict=True):
        b.load_state_dict(a.state_dict())

    def adam(ns):
        groups = [{"params": ns[0].parameters(), "lr": 1e-2}, {"params": ns[1].parameters()}]
        return torch.optim.Adam(groups, lr=3e-3, fused=True)

    ours, theirs = lockstep.Stepper(adam(nets)), adam(twins)
    for step in range(5):
        grads = [torch.randn(3, 4), torch.randn(3), torch.randn(3, 4), torch.randn(3)]
        for ns in (nets, twins):
            params = [p for n in ns for p in n.parameters()]
            for p, g in zip(params, grads, strict=True):
                p.grad = None if (step in (2, 3) and p is params[1]) else g.clone()
        ours.step()
        theirs.step()
    for a, b in zip(nets, twins, strict=True):
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            assert torch.equal(p, q)
            state, other = ours.opt.state[p], theirs.state[q]
            assert all(torch.equal(state[k], other[k]) for k in ("exp_avg", "exp_avg_sq", "step"))
