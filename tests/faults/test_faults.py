"""Fault injection: kill -9 at many moments, two writers on one folder, cut and damaged files, a
killed sweep and its immediate rerun, bad values, a full disk. Nothing is lost or silently wrong:
a resume gives the uninterrupted run's numbers, and every damage is refused with one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asfed.comm.log import BIN, INDEX
from asfed.csvfile import checked_rows
from asfed.engine.driver import resume, train
from asfed.errors import AsfedError
from asfed.report.collect import read_run
from attacks.view import load_view
from tests.test_simulate_cli import CLI, CLI_ENV

ROOT = Path(__file__).resolve().parents[2]
KILLER = [sys.executable, str(Path(__file__).with_name("killer.py"))]
FLAGS = (
    "--env", "exchange", "--method", "vs", "--episodes", "2", "--seed", "4", "--engine", "local",
    "--workers", "1", "--checkpoint-every", "2", "--log-every", "1", "--private-seed", "77",
)  # fmt: skip
ROUNDS = "6"
COMPARED = ("metrics.csv", BIN, INDEX)


def env(**extra: str) -> dict[str, str]:
    return {**CLI_ENV, "PYTHONPATH": str(ROOT), **extra}


def asfed(*args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=300, env=env(**extra)
    )


def one_line_error(res: subprocess.CompletedProcess, *words: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    for word in words:
        assert word in res.stderr, res.stderr


def files(folder: Path) -> dict[str, bytes]:
    out = {name: (folder / name).read_bytes() for name in COMPARED}
    for sub in ("public", "ground_truth"):
        for p in sorted((folder / sub).iterdir()):
            out[f"{sub}/{p.name}"] = p.read_bytes()
    for p in sorted(folder.glob("agents/*/diagnostics.csv")):
        out[str(p.relative_to(folder))] = p.read_bytes()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    res = asfed("simulate", *FLAGS, "--rounds", ROUNDS, "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out


# ---- kill -9 at many moments, then resume ----------------------------------------------------


@pytest.mark.parametrize(
    "kill_at",
    [
        "checkpoint.pt:1:before",  # the world's first checkpoint: temporary file only
        "checkpoint-4.pt:1:before",  # between agents' checkpoints of round 4
        "messages.idx.npy:3:before",  # the log's index of round 2, payloads already written
        "config.toml:1:before",  # the run being created: secrets written, config.toml not yet
    ],
)
def test_kill_9_anywhere_then_resume_gives_the_uninterrupted_run(
    tmp_path, reference: Path, kill_at: str
) -> None:
    out = tmp_path / "run"
    killed = subprocess.run(
        [*KILLER, "simulate", *FLAGS, "--rounds", ROUNDS, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env(ASFED_KILL_AT=kill_at),
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    if (out / "config.toml").exists():
        res = asfed("simulate", "--resume", str(out))
    else:  # killed while being created: not a run yet, so the same command starts it
        assert not (out / "metrics.csv").exists()
        res = asfed("simulate", *FLAGS, "--rounds", ROUNDS, "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    assert files(out) == files(reference)
    assert not list(out.rglob("*.tmp"))


# ---- one writer per folder -------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_first_and_the_lock_dies_with_it(
    tmp_path,
) -> None:
    out = tmp_path / "run"
    first = subprocess.Popen(
        [*CLI, "simulate", *FLAGS, "--rounds", "400", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env(),
    )
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint.pt").exists():
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.05)
        second = asfed("simulate", "--resume", str(out), "--rounds", "400")
        one_line_error(second, "being written by process", str(first.pid))
        also = asfed("simulate", *FLAGS, "--rounds", "400", "--out", str(out))
        assert also.returncode == 2  # nor can a new run be started over it
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    done = len(checked_rows(out / "metrics.csv")[0])
    res = asfed("simulate", "--resume", str(out), "--rounds", str(done + 2))  # the lock died
    assert res.returncode == 0, res.stderr[-2000:]
    rows, damaged = checked_rows(out / "metrics.csv")
    assert damaged == 0 and len(rows) == done + 2  # rounds 0..R-1, each once


def test_a_lock_held_for_a_moment_is_waited_for_and_one_held_on_is_refused(tmp_path) -> None:
    """An archive's lock is held for one write: a second writer waits for it (up to `wait`)
    rather than failing a grid's archiving; a run's or sweep's (wait 0) is refused at once."""
    import threading

    from asfed.folders import FolderLock

    held = FolderLock(tmp_path, "archive").acquire()
    with pytest.raises(AsfedError, match="one writer per archive folder"):
        FolderLock(tmp_path, "archive").acquire()
    with pytest.raises(AsfedError, match="being written by process"):
        FolderLock(tmp_path, "archive", wait=0.2).acquire()  # still held when it gives up
    threading.Timer(0.3, held.release).start()
    began = time.monotonic()
    with FolderLock(tmp_path, "archive", wait=30):
        assert 0.2 < time.monotonic() - began < 10  # it waited for the release, no longer


# ---- damaged files are refused, never patched ------------------------------------------------


@pytest.fixture
def finished(tmp_path, reference: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    return out


def refused(folder: Path, *words: str) -> None:
    """`resume` of `folder` (in this process: the CLI's one-line handling of an AsfedError is
    checked once, below) refuses it, and writes nothing: the folder is unchanged."""
    before = {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    with pytest.raises(AsfedError) as err:
        resume(folder, 8)
    for word in words:
        assert word in str(err.value), str(err.value)
    after = {
        p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"
    }
    assert after == {p: b for p, b in before.items() if p.name != ".lock"}


def test_a_short_message_log_is_refused_by_resume_and_audit(finished: Path) -> None:
    data = (finished / BIN).read_bytes()
    (finished / BIN).write_bytes(data[: len(data) // 2])
    refused(finished, "damaged")  # never zero-filled
    with pytest.raises(AsfedError, match="damaged"):
        load_view(finished, "relay", 0)
    one_line_error(asfed("audit", str(finished)), "damaged")


def test_a_missing_log_index_is_refused_and_the_payloads_kept(finished: Path) -> None:
    (finished / INDEX).unlink()
    refused(finished, INDEX)  # the payloads are never truncated to nothing


def test_a_torn_metrics_row_before_the_checkpoint_is_refused_by_resume_and_report(
    finished: Path,
) -> None:
    lines = (finished / "metrics.csv").read_text().splitlines(keepends=True)
    lines[2] = lines[2][: len(lines[2]) // 2] + "\n"  # round 1's row cut mid-line
    (finished / "metrics.csv").write_text("".join(lines))
    refused(finished, "metrics.csv")
    with pytest.raises(AsfedError, match="damaged"):
        read_run(finished)


def test_a_torn_tail_past_the_checkpoint_is_cut_back_by_design(
    finished: Path, reference: Path
) -> None:
    with open(finished / "metrics.csv", "a") as f:
        f.write("6,1.0,2.")  # a row of a round after the last checkpoint, cut by a kill
    sim, run, rows = resume(finished, None)
    train(sim, run, rows)
    assert files(finished) == files(reference)


def test_a_deleted_checkpoint_is_refused_not_restarted(finished: Path) -> None:
    (finished / "checkpoint.pt").unlink()
    refused(finished, "missing")


def test_an_audit_refuses_a_logged_round_without_its_public_record(finished: Path) -> None:
    (finished / "public" / "round_000002.npz").unlink()
    with pytest.raises(AsfedError, match="round 2"):
        load_view(finished, "relay", 0)


def test_garbage_diagnostics_are_refused(finished: Path) -> None:
    (finished / "agents" / "agent_1" / "diagnostics.csv").write_bytes(b"\x00\xffgarbage\n1,2\n")
    refused(finished, "diagnostics.csv")


def test_an_empty_or_garbage_checkpoint_names_its_reason(finished: Path) -> None:
    (finished / "checkpoint.pt").write_bytes(b"")
    refused(finished, "cannot read checkpoint", "empty")
    (finished / "checkpoint.pt").write_bytes(b"PK garbage")
    refused(finished, "cannot read checkpoint")


# ---- a killed sweep leaves no orphan, and its rerun resumes cleanly --------------------------


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        status = (
            Path(f"/proc/{pid}/stat").read_text().split()[2]
            if Path(f"/proc/{pid}").exists()
            else "X"
        )
        if status != "Z":
            alive.append(pid)
    return alive


@pytest.mark.skipif(os.cpu_count() == 1, reason="a pool of two workers needs two cores")
def test_a_killed_sweep_leaves_no_orphans_and_its_rerun_resumes_cleanly(tmp_path) -> None:
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(
        'env = "exchange"\nrounds = 6\nepisodes = 2\ncheckpoint_every = 2\n'
        '[sweep]\nmethods = ["vs"]\nseeds = 2\n'
    )
    out, straight = tmp_path / "sweep", tmp_path / "straight"
    args = ("sweep", str(scenario), "--workers", "2", "--private-seed", "9")
    sweep = subprocess.Popen([*CLI, *args, "--out", str(out)], env=env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.time() + 180
    while not list(out.glob("*/checkpoint.pt")):
        assert time.time() < deadline and sweep.poll() is None
        time.sleep(0.05)
    workers = _children(sweep.pid)
    assert workers
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    deadline = time.time() + 10
    while _alive(workers) and time.time() < deadline:
        time.sleep(0.1)
    assert _alive(workers) == [], "pool workers outlived their sweep"
    rerun = asfed(*args, "--out", str(out))
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    done = asfed(*args, "--out", str(straight))
    assert done.returncode == 0, done.stderr[-2000:]
    for run in sorted(
        p.name for p in straight.iterdir() if p.is_dir() and p.name != "ground_truth"
    ):
        assert files(out / run) == files(straight / run), run
    sessions = json.loads((out / "sweep.json").read_text())["sessions"]
    assert all(s["wall_seconds"] is None or s["wall_seconds"] > 0 for s in sessions)


def test_a_killed_flower_simulation_leaves_none_of_rays_processes(tmp_path) -> None:
    """Ray's agents outlive a driver killed with kill -9 on their own; the watchdog
    (`asfed.lifetime.guard_descendants`) kills every process the run had started."""
    from asfed.lifetime import _descendants, _table

    out = tmp_path / "run"
    flags = ("--env", "exchange", "--method", "ippo", "--episodes", "2", "--engine", "flower")
    run = subprocess.Popen(
        [*CLI, "simulate", *flags, "--rounds", "300", "--out", str(out)],
        env={**env(), "PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300  # Ray starts in minutes on 2 loaded cores
    try:
        while not (out / "metrics.csv").exists():
            assert time.time() < deadline and run.poll() is None, "the run did not start"
            time.sleep(0.1)
    except BaseException:  # a failed test must not leave a 300-round simulation running
        run.send_signal(signal.SIGKILL)
        run.wait()
        raise
    time.sleep(1.0)  # the watchdog notes the processes every 0.5 s
    started = _descendants(run.pid, _table())
    assert len(started) >= 3  # Ray's services and workers, and the watchdog
    run.send_signal(signal.SIGKILL)
    run.wait()
    deadline = time.time() + 15
    while _alive(list(started)) and time.time() < deadline:
        time.sleep(0.2)
    assert _alive(list(started)) == [], "processes outlived the killed run"


# ---- bad values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--rho", "nan"), ("rho=nan", "finite")),
        (("--actor-lr", "inf"), ("actor_lr=inf", "finite")),
        (("--critic-lr", "-0.001"), ("critic_lr", "> 0")),
        (("--seed", "-1"), ("seed=-1",)),
        (("--dp-epsilon", "inf"), ("dp_epsilon=inf",)),
        (("--rounds", str(2**40)), ("rounds",)),
    ],
)
def test_bad_values_are_one_line_and_write_nothing(tmp_path, flags, words) -> None:
    out = tmp_path / "run"
    one_line_error(asfed("simulate", "--env", "exchange", *flags, "--out", str(out)), *words)
    assert not out.exists()


def test_an_out_that_is_a_file_or_unwritable_is_one_line(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(asfed("simulate", *FLAGS, "--rounds", "1", "--out", str(blocker)), "in the way")
    one_line_error(
        asfed("simulate", *FLAGS, "--rounds", "1", "--out", str(blocker / "run")), "--out"
    )


def test_a_diverging_run_stops_naming_round_agent_and_loss(tmp_path) -> None:
    out = tmp_path / "run"
    flags = [f for f in FLAGS]
    res = asfed("simulate", *flags, "--rounds", "4", "--actor-lr", "1e38", "--critic-lr", "1e38",
                "--out", str(out))  # fmt: skip
    one_line_error(res, "diverged", "agent")
    assert "round" in res.stderr


def test_a_repeated_set_is_refused(tmp_path) -> None:
    one_line_error(
        asfed("sweep", "quickstart", "--set", "rho=1", "--set", "rho=2", "--dry-run"), "twice"
    )


# ---- a full disk -----------------------------------------------------------------------------


def test_a_full_disk_is_one_line_with_the_last_good_round_and_no_tmp_left(tmp_path) -> None:
    disk = tmp_path / "small"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        out = disk / "run"
        res = asfed("simulate", *FLAGS, "--rounds", "400", "--out", str(out))
        one_line_error(res, "disk is full", "--resume")
        assert not list(out.rglob("*.tmp"))
        assert "after round" in res.stderr
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_non_finite_policies_and_parameters_stop_the_run_before_any_checkpoint(tmp_path) -> None:
    """Beyond the losses (checked at every step): an acting policy with non-finite
    probabilities stops the rollout naming its agent, and a network with a non-finite parameter
    is never checkpointed, so the last good checkpoint stays the last one."""
    import numpy as np
    import torch

    from asfed.agents.base import Diverged
    from asfed.agents.methods import finite_policies
    from asfed.config import build_config
    from asfed.engine.loop import Simulation

    probs = torch.full((2, 3, 5), 0.2)
    finite_policies(probs, [10, 11, 12])
    probs[1, 2, 0] = float("nan")
    with pytest.raises(Diverged, match="agent 12"):
        finite_policies(probs, [10, 11, 12])
    cfg = build_config(env="exchange", method="ippo", episodes=1, engine="local")
    sim = Simulation(cfg, agent_root=tmp_path, private_seed=1)
    agent = sim.federation.agents[0]
    agent.save_private(1)
    obs = sim.env.reset()[:, 0]
    rng = np.random.default_rng(0)
    n = sim.num_agents
    assert sim.method.sample_actions(sim.federation.acting, obs, rng).shape == (1, n)
    with torch.no_grad():
        next(sim.federation.agents[1].actor.parameters())[0, 0] = float("nan")
    with pytest.raises(Diverged, match="agent 1's acting policy"):  # the rollout's own check
        sim.method.sample_actions(sim.federation.acting, obs, rng)
    with torch.no_grad():
        next(agent.critic.parameters()).fill_(float("nan"))
    with pytest.raises(Diverged, match="non-finite parameters"):
        agent.save_private(2)
    assert (tmp_path / "agent_0" / "checkpoint-1.pt").exists()
    assert not (tmp_path / "agent_0" / "checkpoint-2.pt").exists()
