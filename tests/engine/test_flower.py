"""The Flower engine: same numbers and message log as the local engine, state in Context.state,
clear failures, and real runs on Flower's simulation engine (Ray)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from asfed.comm.log import read_log
from asfed.config import build_config
from asfed.engine.driver import resume, start, train
from asfed.engine.flower import client_app, codec
from asfed.engine.flower.federation import ClientFailure, flower_federation
from asfed.engine.loop import Simulation
from tests.engine.inprocess_grid import InProcessGrid
from tests.scratch import scratch


def rounds_with(cfg, federation=None, rounds: int = 2):
    sim = Simulation(cfg, federation, private_seed=11, agent_root=scratch())
    out = [sim.run_round() for _ in range(rounds)]
    return [m for m, _ in out], [r for _, r in out]


def same_messages(a, b) -> bool:
    key = lambda m: (m.round, m.step, m.sender, m.receiver, m.kind, m.payload.tobytes())  # noqa: E731
    return [key(m) for r in a for m in r] == [key(m) for r in b for m in r]


@pytest.mark.parametrize(
    "opts",
    [
        {"method": "as"},
        {"method": "as", "layout": "multihead", "topology": "random-one"},
        {"method": "vs"},
        {"method": "vps"},
        {"method": "ps"},
        {"method": "ippo"},
        {"method": "cppo", "env": "navigation", "agents": 2},
    ],
)
def test_flower_apps_give_the_local_engines_numbers_and_messages(opts) -> None:
    cfg = build_config(**{"env": "exchange", "seed": 3, "episodes": 2, **opts})
    n = cfg.agents or 3
    local_metrics, local_msgs = rounds_with(cfg)
    flower_metrics, flower_msgs = rounds_with(cfg, flower_federation(InProcessGrid(n)))
    assert flower_metrics == local_metrics
    assert same_messages(flower_msgs, local_msgs)


class RecordingGrid(InProcessGrid):
    """Keeps every reply the ServerApp receives."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list = []

    def pull_messages(self, message_ids):
        got = super().pull_messages(message_ids)
        self.seen += got
        return got


@pytest.mark.parametrize("method", ["as", "vs", "vps", "ps"])
def test_the_server_app_receives_only_logged_messages_and_the_acting_policy(tmp_path, method):
    """Every reply on a short run (set-up, shares, updates, checkpoints) carries only relayed
    messages of the method's kinds and, after a round's last update, the acting policy (for AS,
    pi^ii only): no statistics, no critic, no anticipations, no optimiser state."""
    cfg = build_config(
        env="exchange", method=method, seed=2, episodes=2, rounds=2, log_every=1, checkpoint_every=1
    )
    grid = RecordingGrid(3)
    sim, run, rows = start(cfg, tmp_path / "run", flower_federation(grid), private_seed=11)
    train(sim, run, rows)
    logged = list(read_log(run.path))
    relayed = []
    acting_keys = set()
    for reply in grid.seen:
        assert set(reply.content.keys()) <= {"msg_payloads", "msg_header", "acting"}
        if "msg_header" in reply.content:
            relayed += codec.get_messages(reply.content)
        if "acting" in reply.content:
            acting_keys |= set(reply.content["acting"].to_torch_state_dict())
    assert {m.kind for m in relayed} <= sim.method.allowed_kinds
    key = lambda m: (m.round, m.step, m.sender, m.receiver, m.kind, m.payload.tobytes())  # noqa: E731
    assert sorted(map(key, relayed)) == sorted(map(key, logged))  # all that came back is logged
    prefix = {"as": "own.", "vs": "actor.", "vps": "actor.", "ps": "joint."}[method]
    assert acting_keys and all(k.startswith(prefix) for k in acting_keys)


def test_agents_live_in_context_state_not_in_the_process() -> None:
    """Clearing the per-process cache before every message (as when another process serves
    it) changes nothing: Context.state alone carries each agent across messages and rounds."""
    cfg = build_config(env="navigation", method="as", topology="line", seed=4, episodes=2)
    grid = InProcessGrid(3, fail=lambda node, msg: client_app._CACHE.clear() or False)
    assert rounds_with(cfg, flower_federation(grid), 3)[0] == rounds_with(cfg, None, 3)[0]


def test_a_failing_client_names_agent_and_round_and_the_run_resumes(tmp_path) -> None:
    cfg = build_config(
        env="exchange", method="as", seed=5, episodes=2, rounds=4, checkpoint_every=1, log_every=1
    )

    def fail(node, msg):  # agent 1 (node 102) raises in round 2's first update
        head = msg.content.get("round", None)
        return node == 102 and head is not None and int(head["round"]) == 2 and "k" in head

    sim, run, rows = start(
        cfg, tmp_path / "run", flower_federation(InProcessGrid(3, fail)), private_seed=11
    )
    with pytest.raises(
        ClientFailure, match=r"agent 1 \(node 102\) failed in round 2, update 1: injected failure"
    ) as failure:
        train(sim, run, rows)
    assert f"asfed simulate --resume {run.path}" in "".join(failure.value.__notes__)
    assert [int(r["round"]) for r in run.read_metrics()] == [0, 1]  # completed rounds kept
    sim, run, rows = resume(tmp_path / "run", None, flower_federation(InProcessGrid(3)))
    assert sim.round == 2
    train(sim, run, rows)
    local, _ = rounds_with(cfg, None, 4)
    got = run.read_metrics()
    assert [float(r["team_return"]) for r in got] == [m["team_return"] for m in local]
    assert sorted({m.round for m in read_log(run.path)}) == [0, 1, 2, 3]


def cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI in a subprocess, with this environment (Ray's workers need PATH and HOME)."""
    cmd = [sys.executable, "-c", "from asfed.cli import main; main()", *args]
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def test_flower_simulation_engine_matches_local_end_to_end(tmp_path) -> None:
    """A real run on Flower's simulation engine (Ray): same metrics and message log, and no
    Ray or Flower start-up noise on the terminal."""
    args = (
        "simulate",
        "--env",
        "exchange",
        "--method",
        "as",
        "--rounds",
        "2",
        "--episodes",
        "2",
        "--seed",
        "9",
        "--private-seed",
        "11",
        "--log-every",
        "1",
    )
    flower = cli(*args, "--engine", "flower", "--out", str(tmp_path / "f"))
    assert flower.returncode == 0, flower.stderr[-3000:]
    local = cli(*args, "--engine", "local", "--out", str(tmp_path / "l"))
    assert local.returncode == 0, local.stderr
    assert (tmp_path / "f" / "metrics.csv").read_text() == (
        tmp_path / "l" / "metrics.csv"
    ).read_text()
    for name in ("messages.bin", "messages.idx.npy"):
        assert (tmp_path / "f" / name).read_bytes() == (tmp_path / "l" / name).read_bytes()
    noise = [
        w for w in ("Ray", "INFO", "WARNING", "deprecated") if w in flower.stdout + flower.stderr
    ]
    assert noise == [], (flower.stdout + flower.stderr)[-2000:]


def test_predation_with_30_agents_runs_on_the_flower_engine(tmp_path) -> None:
    res = cli(
        "simulate",
        "--env",
        "predation",
        "--agents",
        "30",
        "--method",
        "as",
        "--rounds",
        "1",
        "--episodes",
        "2",
        "--engine",
        "flower",
        "--out",
        str(tmp_path / "p"),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "30 agents" in res.stdout


def test_the_cli_reports_a_client_failure_in_one_line_with_how_to_resume(tmp_path, capsys) -> None:
    from asfed import cli
    from asfed.engine.flower.federation import ClientFailure

    err = ClientFailure("agent 1 (node 102) failed in round 2, update 1: boom")
    err.add_note(f"{tmp_path} keeps the 2 completed rounds; continue with: ...")
    err.add_note(f"asfed simulate --resume {tmp_path}")

    def failing_app(standalone_mode: bool) -> None:
        raise err

    original = cli.app
    cli.app = failing_app  # type: ignore[assignment]
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
    finally:
        cli.app = original
    assert exit_info.value.code == 1
    text = capsys.readouterr().err
    assert "agent 1 (node 102) failed in round 2, update 1: boom" in text
    assert f"asfed simulate --resume {tmp_path}" in text
    assert "Traceback" not in text


def test_flower_run_config_is_converted_in_one_place() -> None:
    from asfed.engine.flower.server_app import run_config_to_options
    from asfed.errors import AsfedError

    fields, out, resume_from = run_config_to_options(
        {
            "env": "navigation",
            "rounds": 3,
            "episodes": "",
            "log-every": 2,
            "out": "/r",
            "resume": "",
        }
    )
    assert fields == {"env": "navigation", "rounds": 3, "log_every": 2, "engine": "flower"}
    assert (out, resume_from) == ("/r", "")
    with pytest.raises(AsfedError, match="unknown setting 'round' in the Flower run config"):
        run_config_to_options({"round": 3})
    with pytest.raises(AsfedError, match="rho='x' in the Flower run config should be float"):
        run_config_to_options({"rho": "x"})
