"""The apps on Flower's deployment engine as docs/deploy.md runs them across machines, here on
127.0.0.1: a SuperLink with TLS (a throwaway CA made in the test's folder) and
`--enable-supernode-auth`, one SuperNode per agent with its own registered key pair and
`--isolation process`, and a long-lived ClientApp worker next to each (`asfed.engine.flower`).

The deployment is shared by the tests of this module (start-up costs seconds); a test that
kills a process restarts it. Every process is started in its own session and stopped by PID in
the fixture's `finally` (`LocalNet.close`); every wait has a stated timeout.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asfed.config import build_config
from asfed.engine.driver import create
from asfed.engine.flower.localnet import BIN, REPO, LocalNet, descendants, free_port
from asfed.engine.loop import Simulation

SETTINGS = "episodes=2 seed=9 checkpoint-every=1"


def dealt(out: Path, rounds: int) -> str:
    """Deal a run folder here, as `asfed simulate --deal-only --private-seed 11` does (a private
    seed never goes in Flower's run config, which every ClientApp receives), and return the
    run-config words that play it: the same numbers as `local_returns`."""
    cfg = build_config(
        env="exchange", method="as", episodes=2, seed=9, checkpoint_every=1, rounds=rounds
    )
    create(cfg, out, private_seed=11)
    return f'rounds={rounds} resume="{out}"'


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNet]:
    net = LocalNet(tmp_path_factory.mktemp("deployment"))
    try:
        net.start_superlink(database=net.root / "superlink.db")
        for _ in range(3):
            net.add_node()
        for node in net.nodes:
            net.start_node(node)
        yield net
    finally:
        net.close()


def pinned(net: LocalNet, count: int = 3) -> str:
    """The run-config key pinning agent i to the i-th enrolled node."""
    return f'nodes="{" ".join(str(n.node_id) for n in net.nodes[:count])}"'


def local_returns(rounds: int) -> list[tuple[float, int]]:
    sim = Simulation(build_config(env="exchange", method="as", episodes=2, seed=9), private_seed=11)
    return [
        (m["team_return"], m["bytes_total"]) for m, _ in (sim.run_round() for _ in range(rounds))
    ]


def run_returns(out: Path) -> list[tuple[float, int]]:
    with open(out / "metrics.csv", newline="") as f:
        return [(float(r["team_return"]), int(r["bytes_total"])) for r in csv.DictReader(f)]


def wait_rounds(out: Path, rounds: int, run: subprocess.Popen, seconds: float) -> None:
    """Return once the run folder holds `rounds` completed rounds; fail if the run ends first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (out / "metrics.csv").exists() and len(run_returns(out)) >= rounds:
            return
        if run.poll() is not None:
            raise AssertionError(f"the run ended (exit {run.returncode}) before round {rounds}")
        time.sleep(0.05)
    raise TimeoutError(f"{rounds} rounds not completed after {seconds} s")


def test_tls_and_enrolled_nodes_give_the_local_engines_numbers(net: LocalNet, tmp_path) -> None:
    out = tmp_path / "run"
    tasks_before = [net.log(f"worker{n.index}").count(" task ") for n in net.nodes]
    res = net.run(f"{dealt(out, 2)} {pinned(net)}", seconds=240)
    assert res.returncode == 0 and "round trips" in res.stdout, res.stdout[-3000:]
    assert run_returns(out) == local_returns(2)
    assert (out / "checkpoint.pt").exists() and (out / "learning_curve.png").exists()
    assert "Uvicorn running on https://" in net.log("superlink")  # TLS, not plain HTTP
    # Long-lived ClientApps: each agent's worker served every message of the run (set-up,
    # 2 x (share + 3 updates), 2 checkpoints) in one process, and no per-message
    # flwr-clientapp process was started.
    for node, before in zip(net.nodes, tasks_before, strict=True):
        assert node.worker is not None and node.worker.poll() is None
        assert net.log(f"worker{node.index}").count(" task ") - before == 11
        assert node.supernode is not None and descendants(node.supernode.pid) == []


def test_a_node_with_an_unregistered_key_is_refused_and_takes_no_agents_place(
    net: LocalNet, tmp_path
) -> None:
    absent = net.add_node()  # enrolled for agent 2, but its machine is down
    intruder = net.add_node(register=False)  # a key the SuperLink's operator never registered
    net.start_supernode(intruder, stock=True, wait=False)  # Flower's own flower-supernode
    assert intruder.supernode is not None
    assert intruder.supernode.wait(timeout=60) != 0
    assert "Failed to activate SuperNode" in net.log(f"supernode{intruder.index}")
    assert net.statuses().keys() == {n.node_id for n in net.nodes if n.node_id is not None}

    out = tmp_path / "run"
    nodes = f'nodes="{net.nodes[0].node_id} {net.nodes[1].node_id} {absent.node_id}"'
    res = net.run(f'rounds=2 {SETTINGS} {nodes} node-wait=5 out="{out}"', seconds=120)
    assert f"agent 2 (node {absent.node_id}) not connected within 5 s" in res.stdout, res.stdout[
        -3000:
    ]
    assert not (out / "config.toml").exists()  # refused before anything was written


def test_a_killed_supernode_names_agent_and_round_and_resume_gives_the_same_numbers(
    net: LocalNet, tmp_path
) -> None:
    out = tmp_path / "run"
    run, log = net.start_run(f"{dealt(out, 4)} {pinned(net)} reply-timeout=8")
    wait_rounds(out, 2, run, seconds=120)
    victim = net.nodes[1]
    net.kill(victim.supernode, signal.SIGKILL)
    run.wait(timeout=120)
    text = log.read_text()
    assert re.search(
        rf"DeploymentFailure: agent 1 \(node {victim.node_id}\) did not reply to "
        r"(round \d, [a-z ]+\d|the checkpoint after round \d) within 8 s",
        text,
    ), text[-3000:]
    kept = run_returns(out)
    assert len(kept) >= 2 and kept == local_returns(len(kept))

    # The SuperLink must see the node offline before its key may rejoin (Flower refuses to
    # activate a node it still holds online); its worker reconnects by itself.
    net.wait_status(victim, "offline", seconds=60)
    net.start_supernode(victim)
    res = net.run(f'resume="{out}" reply-timeout=30 {pinned(net)}', seconds=240)
    assert res.returncode == 0 and "round trips" in res.stdout, res.stdout[-3000:]
    assert run_returns(out) == local_returns(4)


def test_a_superlink_restart_keeps_the_rounds_and_resume_gives_the_same_numbers(
    net: LocalNet, tmp_path
) -> None:
    out = tmp_path / "run"
    run, log = net.start_run(f"{dealt(out, 4)} {pinned(net)} reply-timeout=8")
    wait_rounds(out, 2, run, seconds=120)
    net.stop_superlink(signal.SIGKILL)
    run.wait(timeout=60)
    text = log.read_text()
    assert "Connection to the SuperLink is unavailable" in text, text[-3000:]
    kept = run_returns(out)
    assert len(kept) >= 2 and kept == local_returns(len(kept))

    # Restarted on its database, the SuperLink still knows the enrolled nodes; the interrupted
    # run is stopped so that the nodes drop its last message, then the run is resumed.
    net.start_superlink(database=net.root / "superlink.db")
    run_id = re.search(r"Successfully started run (\d+)", text)
    assert run_id, text[-3000:]
    stopped = net.flwr("stop", run_id.group(1), seconds=60)  # unless the SuperLink did already
    said = stopped.stdout + stopped.stderr
    assert stopped.returncode == 0 or "Run is already finished" in said, said
    res = net.run(f'resume="{out}" reply-timeout=30 {pinned(net)}', seconds=240)
    assert res.returncode == 0 and "round trips" in res.stdout, res.stdout[-3000:]
    assert run_returns(out) == local_returns(4)


def test_flwr_run_on_the_managed_local_superlink(tmp_path) -> None:
    """`flwr run .` from the repository: Flower starts its own detached SuperLink in simulation
    mode; it gets unique ports here, and is stopped by them when the test ends."""
    port, control = free_port(), free_port()
    home = tmp_path / "flwr"
    home.mkdir()
    env = {
        **os.environ,
        "FLWR_HOME": str(home),
        "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(port),
        "FLWR_LOCAL_CONTROL_API_PORT": str(control),
        "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
        "OMP_NUM_THREADS": "1",
    }
    out = tmp_path / "run"
    try:
        res = subprocess.run(
            [
                str(BIN / "flwr"),
                "run",
                ".",
                "--stream",
                "--federation-config",
                "num-supernodes=3",
                "--run-config",
                dealt(out, 2),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        found = subprocess.run(
            ["pgrep", "-f", f"flower-superlink.*--port {port}"], capture_output=True, text=True
        )
        for pid in found.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid), signal.SIGTERM)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert run_returns(out) == local_returns(2)
