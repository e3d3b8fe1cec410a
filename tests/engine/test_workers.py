"""The local engine on several worker processes: the same bytes as one process, clear failures,
and device plumbing (CPU here; `--device cuda` without a GPU is an error, never a CPU run)."""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asfed.config import build_config
from asfed.engine.loop import Simulation
from asfed.engine.placement import resolve_device
from asfed.errors import AsfedError


def simulate(out: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from asfed.cli import main; main()", "simulate", *args]
    # torch.compile on the CPU builds C++: compiled runs see the compiler, the rest nothing.
    path = os.path.dirname(shutil.which("g++") or "") if "--compile-steps" in args else ""
    env = {"COLUMNS": "200", "PATH": path, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [*cmd, "--out", str(out)], capture_output=True, text=True, timeout=300, env=env
    )
    assert res.returncode == 0, res.stderr
    return res


def run_files(folder: Path) -> dict[str, bytes]:
    """Everything a run wrote that depends on the numbers (not versions.json, which records
    the worker count, nor the checkpoints' zip framing)."""
    names = ["metrics.csv", "messages.bin", "messages.idx.npy"]
    names += [str(p.relative_to(folder)) for p in sorted(folder.glob("agents/*/diagnostics.csv"))]
    names += [str(p.relative_to(folder)) for p in sorted(folder.glob("public/*.npz"))]
    return {name: (folder / name).read_bytes() for name in names}


@pytest.mark.skipif(os.cpu_count() == 1, reason="two workers need two cores")
@pytest.mark.parametrize(
    ("method", "compiled"),
    [
        ("as", False),
        ("ps", False),
        pytest.param(
            "as",
            True,
            marks=pytest.mark.skipif(shutil.which("g++") is None, reason="compiling needs g++"),
        ),
    ],
    ids=["as", "ps", "as-compiled"],
)
def test_one_and_two_workers_write_identical_runs(tmp_path, method, compiled) -> None:
    """Compiled steps too: each agent's numbers depend on its own steps only, never on which
    agents share its process (`asfed.agents.fused`: a compiled stack's bias gradients summed
    eagerly; a whole-step program's reductions never split by the stack's size). Three rounds
    run both: the first update of a run (Adam without state) as compiled stacks, the rest as
    whole-step programs."""
    common = (
        "--env", "navigation", "--method", method, "--episodes", "2", "--rounds", "3",
        "--horizon", "20", "--engine", "local", "--log-every", "1", "--checkpoint-every", "2",
        "--private-seed", "11", *(["--compile-steps"] if compiled else []),
    )  # fmt: skip
    one, two = tmp_path / "one", tmp_path / "two"
    simulate(one, *common, "--workers", "1")
    res = simulate(two, *common, "--workers", "2")
    assert "2 workers" in res.stdout
    a, b = run_files(one), run_files(two)
    assert len(a) >= 5 and a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name
    for agent in sorted((one / "agents").iterdir()):
        x = torch.load(agent / "checkpoint-3.pt", weights_only=True)
        y = torch.load(two / "agents" / agent.name / "checkpoint-3.pt", weights_only=True)
        for key in ("policy", "critic") if method == "as" else ("joint", "critic"):
            for name, tensor in x[key].items():
                assert torch.equal(tensor, y[key][name]), (agent.name, key, name)


@pytest.mark.skipif(os.cpu_count() == 1, reason="two workers need two cores")
def test_a_dead_worker_is_an_error_not_a_hang() -> None:
    cfg = build_config(env="navigation", method="as", episodes=1, horizon=10, engine="local")
    sim = Simulation(cfg, workers=2, private_seed=11)
    try:
        sim.run_round()
        sim.federation.procs[1].kill()
        with pytest.raises(RuntimeError, match="worker 1 died"):
            sim.run_round()
    finally:
        procs = list(sim.federation.procs)
        sim.close()
    assert all(p.poll() is not None for p in procs)  # every worker is gone


def test_workers_import_the_worlds_asfed_from_any_working_directory(tmp_path, monkeypatch) -> None:
    """`python -m` would put the working directory first on a worker's sys.path: started from a
    folder holding another asfed, the workers ran that one's code (a decoy here) beside the
    world's."""
    (tmp_path / "asfed").mkdir()
    (tmp_path / "asfed" / "__init__.py").write_text("raise ImportError('the decoy asfed')\n")
    monkeypatch.chdir(tmp_path)
    cfg = build_config(env="navigation", method="as", episodes=1, horizon=10, engine="local")
    sim = Simulation(cfg, workers=2, private_seed=11)
    try:
        sim.run_round()
    finally:
        sim.close()


def test_a_worker_running_another_asfed_is_refused(tmp_path, monkeypatch) -> None:
    """Started the old way (`python -m` from a folder holding a copy of asfed), the workers
    import the copy: the world names both sources and stops, rather than train on mixed code."""
    from asfed.engine import workers as worker_module

    shutil.copytree(
        Path(worker_module.__file__).parents[1],
        tmp_path / "asfed",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        worker_module, "module_argv", lambda module, *args: [sys.executable, "-m", module, *args]
    )
    cfg = build_config(env="navigation", method="as", episodes=1, horizon=10, engine="local")
    copy = re.escape(str((tmp_path / "asfed").resolve()))
    with pytest.raises(RuntimeError, match=f"the workers run asfed from .*{copy}"):
        Simulation(cfg, workers=2, private_seed=11)


def test_device_names() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "cpu:0", "gpu"):
        with pytest.raises(AsfedError, match="unknown device"):
            resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_clear_error(tmp_path) -> None:
    cmd = [sys.executable, "-c", "from asfed.cli import main; main()", "simulate"]
    out = tmp_path / "run"
    res = subprocess.run(
        [*cmd, "--env", "exchange", "--device", "cuda", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "", "COLUMNS": "200"},
    )
    assert res.returncode == 2
    assert "device 'cuda' asked for, but torch" in res.stderr and "finds no CUDA GPU" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_agents_live_on_their_device() -> None:
    """The plumbing the GPU path relies on, checked without a GPU on torch's `meta` device (not a
    CPU, so a network or round tensor left behind fails here): every network, the round's
    tensors and the minibatch indices sit on the spec's device."""
    cfg = build_config(env="navigation", method="as", episodes=1, horizon=10, engine="local")
    sim = Simulation(cfg, private_seed=11)
    sim.run_round()
    secret = sim.federation.agents[0].secret
    agent = sim.method.build(dataclasses.replace(sim.specs[0], device="meta"), secret)
    assert {p.device.type for m in (agent.policy, agent.critic) for p in m.parameters()} == {"meta"}
    agent.begin_round(sim.last_trajectory.slice_for(0))
    assert agent._obs_all.device.type == agent._actions.device.type == "meta"
    assert all(idx.device.type == "meta" for idx in agent.minibatches())
    # what leaves an agent on a real device comes back to the CPU
    assert all(v.device.type == "cpu" for v in sim.federation.agents[0].acting_state().values())


@pytest.mark.skipif(os.cpu_count() == 1, reason="two workers need two cores")
def test_an_agents_own_error_in_a_worker_is_one_clear_line(tmp_path) -> None:
    out = tmp_path / "run"
    small = ("--env", "navigation", "--episodes", "1", "--horizon", "10", "--engine", "local")
    simulate(out, *small, "--rounds", "1", "--workers", "2")
    (out / "agents" / "agent_1" / "checkpoint-1.pt").write_bytes(b"not a checkpoint")
    cmd = [sys.executable, "-c", "from asfed.cli import main; main()", "simulate"]
    res = subprocess.run(
        [*cmd, "--resume", str(out), "--rounds", "2", "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "", "COLUMNS": "200", "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 2
    assert "cannot read agent checkpoint" in res.stderr and "agent_1" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
