"""Secrets that stay secret: nothing public determines a private reward or an agent's DP noise,
each secret is held only where it is needed, and a run keeps its secrets across a resume."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from asfed import dealer
from asfed.comm import record
from asfed.comm.log import read_log
from asfed.config import build_config
from asfed.dealer import AgentSecret, Deal
from asfed.engine.driver import start, train
from asfed.engine.flower.federation import flower_federation
from asfed.engine.loop import Simulation, prepare
from asfed.engine.scorer import Scorer
from asfed.envs import make_vec_env
from asfed.errors import AsfedError
from asfed.runs import RunFolder
from tests.engine.inprocess_grid import InProcessGrid
from tests.test_simulate_cli import CLI, CLI_ENV

PUBLIC_FILES = ("config.toml", "versions.json", "metrics.csv", "messages.bin", "messages.idx.npy")


def _arrays(obj: Any, seen: set[int] | None = None, depth: int = 0) -> list[Any]:
    """Every object reachable from `obj` through attributes, containers and dataclasses."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 12:
        return []
    seen.add(id(obj))
    out = [obj]
    if isinstance(obj, dict):
        children = [*obj.keys(), *obj.values()]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif isinstance(obj, (np.ndarray, str, bytes, int, float, bool)):
        children = []
    elif hasattr(obj, "__dict__"):
        children = list(vars(obj).values())
    else:
        children = []
    for child in children:
        out += _arrays(child, seen, depth + 1)
    return out


def _holds_secret(obj: Any, weights: np.ndarray) -> list[str]:
    """What of a secret `obj` holds: a secret object, or an array with a private weight in it
    (continuous weights, so a chance match is impossible)."""
    found = []
    values = np.unique(weights[:, 0])  # the apple values, also as float32 payloads carry them
    private = set(values.tolist()) | set(values.astype(np.float32).astype(np.float64).tolist())
    for x in _arrays(obj):
        if isinstance(x, (AgentSecret, Deal, Scorer)):
            found.append(type(x).__name__)
        elif isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.size:
            if private & set(np.unique(x.astype(np.float64)).tolist()):
                found.append(f"array {x.shape}")
        elif isinstance(x, float) and x in private:
            found.append("float")
    return found


# ---- nothing public determines a secret ------------------------------------------------------


def test_private_parameters_are_not_a_function_of_the_config(tmp_path) -> None:
    """Two runs of one config draw different secrets; the public seed's own draw is neither."""
    cfg = build_config(
        env="harvest", method="ippo", private_weights=True, episodes=1, horizon=4, rounds=1
    )
    a = start(cfg, tmp_path / "a")
    b = start(cfg, tmp_path / "b")
    for sim, _, _ in (a, b):
        sim.close()
    (pa, wa), (pb, wb) = record.read_params(a[1].path), record.read_params(b[1].path)
    assert (a[1].path / "config.toml").read_bytes() == (b[1].path / "config.toml").read_bytes()
    assert not np.array_equal(wa, wb)
    public = make_vec_env(cfg.env, 1, seed=cfg.seed, **cfg.env_options()).private_params
    assert not np.array_equal(public["apple_value"], pa["apple_value"])
    assert not np.array_equal(public["apple_value"], pb["apple_value"])
    sa = dealer.read_private_seed(a[1].path / record.TRUTH)
    sb = dealer.read_private_seed(b[1].path / record.TRUTH)
    assert sa != sb and sa is not None and sb is not None


def test_the_private_seed_is_in_no_file_the_attacker_reads(tmp_path) -> None:
    cfg = build_config(env="exchange", method="vs", episodes=2, rounds=2, log_every=1)
    seed = 123456789012345678901234567890
    sim, run, rows = start(cfg, tmp_path / "run", private_seed=seed)
    train(sim, run, rows)
    noise = [dealer.read_agent_secret(run.agent_root / f"agent_{i}", i) for i in range(3)]
    needles = [str(seed).encode(), *(str(s.noise_seed).encode() for s in noise)]
    public = [run.path / f for f in PUBLIC_FILES] + sorted((run.path / record.PUBLIC).iterdir())
    for path in public:
        data = path.read_bytes()
        assert not any(n in data for n in needles), path
    assert str(seed) in (run.path / record.TRUTH / dealer.PRIVATE_SEED).read_text()
    assert "private_seed" not in (run.path / "config.toml").read_text()


def test_the_same_private_seed_deals_the_same_secrets_and_another_differs() -> None:
    env = prepare(build_config(env="navigation", agents=5))[1]
    a, b, c = dealer.deal(env, 5), dealer.deal(env, 5), dealer.deal(env, 6)
    assert np.array_equal(a.weights, b.weights) and a.agents[2].noise_seed == b.agents[2].noise_seed
    assert a.agents[2].noise_seed != c.agents[2].noise_seed
    assert sorted(a.params["slot_of"].tolist()) == list(range(5))  # still a permutation
    for i, secret in enumerate(a.agents):  # each agent holds only its own component
        assert secret.params == {"slot_of": a.params["slot_of"][i]}
        assert np.array_equal(secret.weights, a.weights[i])


# ---- DP noise: nothing public replays it -----------------------------------------------------


def _residual_norms(run: Path, agent: int, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Agent `agent`'s logged VS `values` payloads minus the noise stream `rng` would have
    drawn for them, in sending order: each residual's L2 norm."""
    norms = []
    for msg in read_log(run):
        if msg.sender == agent and msg.kind == "values":
            noise = rng.normal(0.0, 2 * 1.0 * sigma, msg.payload.shape)
            norms.append(float(np.linalg.norm(msg.payload.astype(np.float64) - noise)))
    return np.array(norms)


def test_dp_noise_replayed_from_anything_public_recovers_nothing_and_from_the_secret_all(
    tmp_path,
) -> None:
    """VS on exchange with DP, every round logged: a released `values` vector is clip(x) + noise
    with ||clip(x)|| = 1 (the clip). Replaying the agent's noise stream from its secret and
    subtracting it leaves norm 1 exactly (the test can see a recovery); replaying it from the
    public seed, or anything derived from the config, leaves the noise in (norms far above 1)."""
    cfg = build_config(
        env="exchange", method="vs", episodes=2, rounds=2, log_every=1, dp_epsilon=4.0, seed=3
    )
    sim, run, rows = start(cfg, tmp_path / "run")
    sigma = sim.dp.sigma
    specs = sim.specs
    train(sim, run, rows)
    secret = dealer.read_agent_secret(run.agent_root / "agent_0", 0)
    exact = _residual_norms(run.path, 0, np.random.default_rng(secret.noise_seed), sigma)
    assert len(exact) >= 4
    np.testing.assert_allclose(exact, 1.0, atol=1e-2)
    public_seeds = {cfg.seed, cfg.seed + 2, specs[0].seed, specs[0].seed + 2, specs[0].seed + 1}
    for guess in public_seeds:
        norms = _residual_norms(run.path, 0, np.random.default_rng(guess), sigma)
        assert (norms > 10.0).all(), (guess, norms)


# ---- each secret only where it is needed -----------------------------------------------------


@pytest.mark.parametrize("method", ["as", "vs", "vps", "ps", "ippo"])
def test_the_relay_and_the_world_hold_no_private_parameter(method: str) -> None:
    """Harvest with private apple values (continuous: a private value in an array cannot be a
    coincidence). After a round, nothing reachable from the relay (its record included) or from
    the world's env holds a secret; the world has no reward weights; the agents hold theirs."""
    cfg = build_config(
        env="harvest", method=method, private_weights=True, episodes=1, horizon=5, agents=3
    )
    sim = Simulation(cfg, private_seed=21)
    weights = dealer.deal(prepare(cfg)[1], 21).weights
    sim.run_round()
    assert _holds_secret(sim.relay, weights) == []
    assert _holds_secret(sim.env, weights) == []
    assert sim.env.private_params == {}
    with pytest.raises(AsfedError, match="live with that agent"):
        _ = sim.env.reward_weights
    for i, agent in enumerate(sim.federation.agents):
        assert np.array_equal(agent.secret.weights, weights[i])


def test_exchange_world_holds_the_box_owners_its_dynamics_need_and_no_more() -> None:
    """Exchange's dynamics read whose box is whose (an `open` of one's own box does nothing),
    so the world holds `box_of`, as nature would, and so knows every reward function there:
    docs/privacy.md says so. The relay still holds nothing."""
    cfg = build_config(env="exchange", method="vs", episodes=1)
    sim = Simulation(cfg, private_seed=4)
    sim.run_round()
    truth = dealer.deal(prepare(cfg)[1], 4).params["box_of"]
    assert list(sim.env.private_params) == ["box_of"]
    assert np.array_equal(sim.env.private_params["box_of"], truth)
    assert not any(isinstance(x, (AgentSecret, Deal, Scorer)) for x in _arrays(sim.relay))


class RecordingGrid(InProcessGrid):
    """Keeps every message the ServerApp pushes and every reply it receives."""

    def __init__(self, num_nodes: int) -> None:
        super().__init__(num_nodes)
        self.seen: list[Any] = []

    def push_messages(self, messages):
        messages = list(messages)
        self.seen += [m.content for m in messages]
        return super().push_messages(messages)

    def pull_messages(self, message_ids):
        replies = list(super().pull_messages(message_ids))
        self.seen += [m.content for m in replies]
        return replies


def test_the_flower_server_app_never_receives_or_holds_a_secret(tmp_path) -> None:
    """On the Flower engine each ClientApp reads its secret from its own storage: no message to
    or from the ServerApp carries one, and the world's acting copies hold none."""
    cfg = build_config(
        env="harvest", method="vs", private_weights=True, episodes=1, horizon=5, rounds=1
    )
    grid = RecordingGrid(4)
    sim, run, rows = start(cfg, tmp_path / "run", flower_federation(grid), private_seed=8)
    weights = record.read_params(run.path)[1]
    train(sim, run, rows)
    contents: list[Any] = []
    for content in grid.seen:
        for rec in content.array_records.values():
            contents += [rec[k].numpy() for k in rec]
        for rec in content.config_records.values():
            contents += list(rec.values())
    assert contents and _holds_secret(contents, weights) == []
    noise = [
        dealer.read_agent_secret(run.agent_root / f"agent_{i}", i).noise_seed for i in range(4)
    ]
    text = repr(contents)
    assert not any(str(seed) in text for seed in noise)
    assert _holds_secret(sim.relay, weights) == [] and _holds_secret(sim.env, weights) == []
    assert all(copy.secret is None for copy in sim.federation.acting)


# ---- resume keeps the secret; bad input -------------------------------------------------------


def _asfed(*args: str, **kw: Any) -> subprocess.Popen:
    env = {**os.environ, **CLI_ENV, "PATH": os.environ.get("PATH", "")}
    return subprocess.Popen(
        [*CLI, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_a_run_killed_and_resumed_keeps_its_secret_and_the_uninterrupted_numbers(
    tmp_path,
) -> None:
    """kill -9 after the first checkpoint, resume: the secret is read back (not redrawn), and
    the metrics equal an uninterrupted run given the same private seed."""
    flags = ["--env", "exchange", "--method", "vs", "--engine", "local", "--episodes", "2"]
    flags += ["--seed", "2", "--checkpoint-every", "1", "--dp-epsilon", "8", "--workers", "1"]
    cut = tmp_path / "cut"
    proc = _asfed("simulate", *flags, "--rounds", "8", "--out", str(cut))
    deadline = time.time() + 120
    while not (cut / "agents" / "agent_2" / "checkpoint-2.pt").exists():
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = dealer.read_agent_secret(cut / "agents" / "agent_1", 1)
    res = _asfed("simulate", "--resume", str(cut))
    assert res.wait() == 0, res.communicate()
    assert dealer.read_agent_secret(cut / "agents" / "agent_1", 1).noise_seed == before.noise_seed
    seed = dealer.read_private_seed(cut / record.TRUTH)
    whole = tmp_path / "whole"
    res = _asfed(
        "simulate", *flags, "--rounds", "8", "--out", str(whole), "--private-seed", str(seed)
    )
    assert res.wait() == 0, res.communicate()
    assert RunFolder(cut).read_metrics() == RunFolder(whole).read_metrics()
    assert (cut / "messages.bin").read_bytes() == (whole / "messages.bin").read_bytes()


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", str(2**128)])
def test_a_bad_private_seed_is_one_line_and_writes_nothing(tmp_path, value: str) -> None:
    out = tmp_path / "run"
    res = _asfed("simulate", "--env", "exchange", "--private-seed", value, "--out", str(out))
    _, err = res.communicate()
    assert res.returncode == 2 and "--private-seed" in err and "accepted" in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_resume_refuses_a_run_whose_agent_secret_is_missing_or_damaged(tmp_path) -> None:
    cfg = build_config(env="exchange", method="ippo", episodes=2, rounds=1, engine="local")
    sim, run, rows = start(cfg, tmp_path / "run", private_seed=3)
    train(sim, run, rows)
    secret = run.agent_root / "agent_1" / dealer.SECRET
    secret.write_text("{not json")
    res = _asfed("simulate", "--resume", str(run.path), "--rounds", "2")
    _, err = res.communicate()
    assert res.returncode == 2 and "secret" in err and len(err.strip().splitlines()) == 1, err
    secret.unlink()
    res = _asfed("simulate", "--resume", str(run.path), "--rounds", "2")
    _, err = res.communicate()
    assert res.returncode == 2 and "missing" in err, err
    assert len(RunFolder(run.path).read_metrics()) == 1  # nothing trained, nothing redrawn


def test_deal_only_makes_a_run_whose_resume_plays_it(tmp_path) -> None:
    out = tmp_path / "run"
    flags = ("--env", "exchange", "--method", "ippo", "--episodes", "2", "--engine", "local")
    res = _asfed("simulate", *flags, "--rounds", "2", "--out", str(out), "--deal-only")
    assert res.wait() == 0, res.communicate()
    assert (out / "agents" / "agent_2" / dealer.SECRET).exists()
    assert not (out / "metrics.csv").exists()
    res = _asfed("simulate", "--resume", str(out))
    assert res.wait() == 0, res.communicate()
    assert len(RunFolder(out).read_metrics()) == 2


def test_a_sweep_manifest_never_holds_the_scenarios_private_seed(tmp_path) -> None:
    from asfed.experiments.plan import load_sweep
    from asfed.experiments.runner import run_sweep

    scenario = tmp_path / "tiny.toml"
    scenario.write_text(
        'env = "exchange"\nmethod = "ippo"\nrounds = 1\nepisodes = 1\nprivate_seed = 987654321\n'
        "[sweep]\nseeds = 1\n"
    )
    out = tmp_path / "sweep"
    run_sweep(load_sweep(str(scenario)), out, private_seed=987654321)
    assert "987654321" not in (out / "sweep.json").read_text()
    assert dealer.read_private_seed(out / "ground_truth") == 987654321
    run = next(p for p in out.iterdir() if p.name.startswith("exchange_"))
    assert dealer.read_private_seed(run / record.TRUTH) == dealer.derive_private_seed(
        987654321, run.name
    )
