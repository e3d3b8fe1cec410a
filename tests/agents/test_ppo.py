"""The PPO core: GAE against a plain loop, the paper's hyperparameters, the networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asfed.agents.hparams import PAPER, paper_config
from asfed.agents.networks import MultiHeadPolicy, SeparatePolicies, mlp, mlp_forward
from asfed.agents.ppo import SAME_BITS, clipped_surrogate, gae, old_log_probs
from asfed.errors import AsfedError


def gae_plain_loop(rewards, values, terminated, gamma, lam):
    """Textbook GAE, one episode and one step at a time."""
    b, t = rewards.shape
    adv = np.zeros((b, t))
    for e in range(b):
        end = t
        for k in range(t):
            if terminated[e, k]:
                end = k + 1
                break
        last = 0.0
        for k in reversed(range(end)):
            terminal = bool(terminated[e, k])
            next_v = 0.0 if terminal else values[e, k + 1]
            delta = rewards[e, k] + gamma * next_v - values[e, k]
            last = delta + (0.0 if terminal else gamma * lam * last)
            adv[e, k] = last
    return adv


def test_gae_equals_a_plain_loop_with_terminations_and_horizon_cuts() -> None:
    rng = np.random.default_rng(0)
    b, t = 6, 15
    rewards = rng.normal(size=(b, t))
    values = rng.normal(size=(b, t + 1))
    terminated = np.zeros((b, t), bool)
    terminated[1, 4] = True  # early terminations (predation); the rest are cut at the horizon
    terminated[3, t - 1] = True
    terminated[4, 0] = True
    for e, k in ((1, 4), (4, 0)):  # frozen after termination: zero reward, flagged terminated
        rewards[e, k + 1 :] = 0.0
        terminated[e, k:] = True
    adv, ret = gae(rewards, values, terminated, 0.99, 0.98)
    expected = gae_plain_loop(rewards, values, terminated, 0.99, 0.98)
    np.testing.assert_allclose(adv, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ret, adv + values[:, :t])
    assert (adv[1, 5:] == 0).all() and (adv[4, 1:] == 0).all()


def test_gae_gives_the_per_step_formulas_bits() -> None:
    """GAE computes its deltas and decays for all steps at once; every step's arithmetic is
    still the per-step formula's, in its order, so a run's advantages keep their bits."""
    rng = np.random.default_rng(7)
    for _ in range(50):
        b, t = int(rng.integers(1, 40)), int(rng.integers(1, 60))
        rewards = rng.normal(size=(b, t)) * 30
        values = rng.normal(size=(b, t + 1)) * 30
        terminated = np.zeros((b, t), bool)
        for e in range(b):
            if rng.random() < 0.5:
                k = int(rng.integers(0, t))
                terminated[e, k:] = True
                rewards[e, k + 1 :] = 0.0
        gamma, lam = 0.99, float(rng.choice([0.0, 0.95, 1.0]))
        want = np.zeros((b, t))
        alive = ~np.logical_or.accumulate(terminated, axis=1)
        alive = np.concatenate([np.ones((b, 1), bool), alive[:, :-1]], axis=1)
        running = np.zeros(b)
        for k in range(t - 1, -1, -1):  # the formula one step at a time
            cont = 1.0 - terminated[:, k]
            delta = rewards[:, k] + gamma * values[:, k + 1] * cont - values[:, k]
            running = np.where(alive[:, k], delta + gamma * lam * cont * running, 0.0)
            want[:, k] = running
        adv, ret = gae(rewards, values, terminated, gamma, lam)
        assert np.array_equal(adv, want)
        assert np.array_equal(ret, want + values[:, :t])


def test_gae_with_lambda_one_is_the_discounted_return_minus_value() -> None:
    rng = np.random.default_rng(1)
    rewards = rng.normal(size=(2, 8))
    values = rng.normal(size=(2, 9))
    values[:, -1] = 0.0
    adv, _ = gae(rewards, values, np.zeros((2, 8), bool), 0.9, 1.0)
    disc = np.array(
        [[sum(0.9**i * r[k + i] for i in range(8 - k)) for k in range(8)] for r in rewards]
    )
    np.testing.assert_allclose(adv, disc - values[:, :8], atol=1e-12)


def test_clipped_surrogate_clips_the_ratio() -> None:
    logp_old = torch.zeros(2)
    logp_new = torch.log(torch.tensor([1.5, 0.5]))
    adv = torch.tensor([1.0, -1.0])
    # min(1.5 * 1, 1.2 * 1) = 1.2 ; min(0.5 * -1, 0.8 * -1) = -0.8 ; loss = -mean = -0.2
    assert clipped_surrogate(logp_new, logp_old, adv, 0.2).item() == pytest.approx(-0.2)


def test_paper_hyperparameters_per_env() -> None:
    assert PAPER["cleanup"].actor_hidden == (1024, 256) and PAPER["cleanup"].rho == 1e3
    assert PAPER["exchange"].actor_hidden == (128, 64) and PAPER["exchange"].rho == 1e4
    assert PAPER["predation"].actor_lr == 1e-4 and PAPER["harvest"].rho == 0.1
    for cfg in PAPER.values():
        assert (cfg.critic_lr, cfg.gamma, cfg.gae_lambda, cfg.clip, cfg.epochs) == (
            1e-4,
            0.99,
            0.98,
            0.2,
            3,
        )


def test_bad_ppo_settings_are_clear_errors() -> None:
    with pytest.raises(AsfedError, match=r"rho=-1.0 is invalid; accepted: a finite number >= 0"):
        paper_config("exchange", rho=-1.0)
    with pytest.raises(AsfedError, match="unknown PPO setting 'lr'"):
        paper_config("exchange", lr=1.0)
    with pytest.raises(AsfedError, match="no paper hyperparameters for env 'chess'"):
        paper_config("chess")


@pytest.mark.parametrize("layout", [SeparatePolicies, MultiHeadPolicy])
def test_policy_layouts_give_own_and_anticipation_logits(layout) -> None:
    net = layout(10, (32, 16), 4, {1: 4, 2: 3})
    own, ants = net(torch.zeros(7, 10))
    assert own.shape == (7, 4)
    assert {j: a.shape for j, a in ants.items()} == {1: (7, 4), 2: (7, 3)}
    assert torch.equal(net.own_logits(torch.ones(2, 10)), net(torch.ones(2, 10))[0])


@pytest.mark.parametrize("layout", [SeparatePolicies, MultiHeadPolicy, "one by one"])
@pytest.mark.parametrize("peers", [[1, 2, 3], [2], [], [3, 1]])
def test_stacked_logits_equal_each_network_on_its_own(layout, peers) -> None:
    """Training's pass (stacked for small networks, one by one for large) computes exactly the
    separate networks' logits and gradients."""
    torch.manual_seed(3)
    net = (SeparatePolicies if layout == "one by one" else layout)(
        10, (32, 16), 4, {1: 4, 2: 4, 3: 4}
    )
    if layout == "one by one":
        net.stacked = False
    obs = torch.randn(9, 10)
    own, ants = net.logits(obs, peers)
    ref_own, ref_ants = net(obs)
    assert ants.shape == (len(peers), 9, 4)
    torch.testing.assert_close(own, ref_own)
    for pos, j in enumerate(peers):
        torch.testing.assert_close(ants[pos], ref_ants[j])
    weights = torch.randn(len(peers) + 1, 9, 4)
    stacked = torch.autograd.grad(
        (torch.cat([own[None], ants]) * weights).sum(), list(net.parameters()), allow_unused=True
    )
    separate = (ref_own * weights[0]).sum() + sum(
        (ref_ants[j] * weights[p + 1]).sum() for p, j in enumerate(peers)
    )
    reference = torch.autograd.grad(separate, list(net.parameters()), allow_unused=True)
    for got, want in zip(stacked, reference, strict=True):
        if want is None:  # an anticipation not in `peers` gets no gradient either way
            assert got is None
        else:
            torch.testing.assert_close(got, want)


def test_only_small_networks_are_stacked() -> None:
    """Table 2's 128-64 MLPs run stacked; its 1024-256 ones (cleanup, harvest) one by one."""
    assert SeparatePolicies(18, (128, 64), 2, {1: 2}).stacked
    assert not SeparatePolicies(236, (1024, 256), 6, {1: 6}).stacked


def test_stacked_logits_take_neighbours_with_other_action_counts() -> None:
    net = SeparatePolicies(10, (32, 16), 4, {1: 3, 2: 3})
    own, ants = net.logits(torch.randn(5, 10), [1, 2])
    assert own.shape == (5, 4) and ants.shape == (2, 5, 3)


def test_multihead_is_smaller_than_separate_networks() -> None:
    others = {j: 5 for j in range(1, 8)}
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(MultiHeadPolicy(100, (128, 64), 5, others)) * 4 < count(
        SeparatePolicies(100, (128, 64), 5, others)
    )


@pytest.mark.parametrize("actions", [2, 5, 7])
def test_old_log_probs_are_torchs_log_softmax_bit_for_bit(actions) -> None:
    """pi_old's log-probabilities over the transposed layout (few actions) are the very bits of
    torch's last-axis log_softmax, for a round's states `[M, A]` and anticipations `[P, M, A]`
    at row counts that fill the kernels' vectors and ones that do not (predation's M varies),
    at every scale a logit takes; so the faster path changes no run's numbers."""
    if torch.backends.cpu.get_cpu_capability() not in SAME_BITS:
        pytest.skip("torch's log_softmax is called itself on this CPU's kernels")
    gen = torch.Generator().manual_seed(11)
    shapes = ((96_000, actions), (2, 4_801, actions), (9_599, actions), (17, actions), (1, actions))
    for _ in range(4):
        for scale in (1e-3, 1.0, 4.0, 30.0, 300.0):
            for shape in shapes:
                logits = torch.randn(shape, generator=gen) * scale
                got = old_log_probs(logits)
                assert got.shape == logits.shape
                assert torch.equal(got, torch.log_softmax(logits, -1)), (scale, shape)


def test_old_log_probs_leave_other_inputs_to_torch() -> None:
    """Where the transposed path would not give torch's bits (float64, 8 or more actions) or
    could not (autograd, no rows), torch's own log_softmax runs."""
    gen = torch.Generator().manual_seed(2)
    for logits in (
        torch.randn(9_599, 5, generator=gen, dtype=torch.float64) * 30,
        torch.randn(9_599, 9, generator=gen) * 30,
        torch.zeros(0, 5),
    ):
        assert torch.equal(old_log_probs(logits), torch.log_softmax(logits, -1))
    taped = torch.randn(5, 5, requires_grad=True)
    assert old_log_probs(taped).grad_fn.name() == "LogSoftmaxBackward0"


def test_mlp_forward_is_the_sequential_call_bit_for_bit() -> None:
    """Acting's direct forward computes what calling the `mlp` computes, bit for bit; a layer
    other than Linear or ReLU is refused rather than skipped."""
    torch.manual_seed(5)
    net = mlp([61, 128, 64], 5)
    obs = torch.randn(96, 61)
    assert torch.equal(mlp_forward(net, obs), net(obs))
    with pytest.raises(TypeError, match="Tanh"):
        mlp_forward(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh()), obs[:, :3])
