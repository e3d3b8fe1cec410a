"""`asfed simulate` end to end: the run folder, resume, scenarios and bad input."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from asfed.config import build_config, scenario_names

CLI = [sys.executable, "-c", "from asfed.cli import main; main()"]  # `asfed`, without PATH
CLI_ENV = {"COLUMNS": "200", "PATH": "", "OMP_NUM_THREADS": "1"}


def asfed(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=CLI_ENV, cwd=cwd
    )


def refused(*args: str) -> subprocess.CompletedProcess:
    """`asfed ARGS` run by the same entry point (`asfed.cli.main`) in this process, for bad
    input that must be refused before anything trains: the same exit code, stdout and stderr
    as `asfed`, without a new process's seconds of start-up (torch's import). Commands that
    train run in a subprocess (`asfed`)."""
    from asfed.cli import main

    out, err, argv, columns = io.StringIO(), io.StringIO(), sys.argv, os.environ.get("COLUMNS")
    sys.argv, os.environ["COLUMNS"] = ["asfed", *args], CLI_ENV["COLUMNS"]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    finally:
        sys.argv = argv
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return subprocess.CompletedProcess(["asfed", *args], code, out.getvalue(), err.getvalue())


def metrics(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


SMALL = (
    "--env",
    "exchange",
    "--method",
    "as",
    "--episodes",
    "2",
    "--seed",
    "5",
    "--engine",
    "local",
)


def test_simulate_writes_a_complete_run_folder(tmp_path) -> None:
    out = tmp_path / "run"
    res = asfed("simulate", *SMALL, "--rounds", "2", "--out", str(out))
    assert res.returncode == 0, res.stderr
    for name in (
        "config.toml",
        "versions.json",
        "metrics.csv",
        "checkpoint.pt",
        "learning_curve.png",
        "messages.bin",
        "messages.idx.npy",
    ):
        assert (out / name).exists(), name
    cfg = tomllib.loads((out / "config.toml").read_text())
    assert cfg["rho"] == 1e4 and cfg["actor_lr"] == 5e-5 and cfg["topology"] == "full"
    assert cfg["seed"] == 5 and cfg["agents"] == 3 and cfg["horizon"] == 300
    assert cfg["episodes"] == 2 and cfg["engine"] == "local"
    rows = metrics(out)
    assert [r["round"] for r in rows] == ["0", "1"]
    assert {"team_return", "return_0", "bytes_0", "bytes_total", "bytes_per_episode"} <= set(
        rows[0]
    )
    assert not any(k.startswith(("policy_loss", "value_loss", "kappa")) for k in rows[0])
    private = out / "agents" / "agent_0"  # the agent's own storage: diagnostics, checkpoints
    with open(private / "diagnostics.csv") as f:
        diag = list(csv.DictReader(f))
    assert [r["round"] for r in diag] == ["0", "1"] and {"kappa", "value_loss"} <= set(diag[0])
    assert (private / "checkpoint-2.pt").exists()
    assert "agents" not in torch.load(out / "checkpoint.pt", weights_only=True)
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_after_an_interruption_gives_the_same_numbers(tmp_path) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    common = (*SMALL, "--checkpoint-every", "2", "--log-every", "1", "--private-seed", "11")
    assert asfed("simulate", *common, "--rounds", "4", "--out", str(full)).returncode == 0
    # An interrupted run: 3 rounds done, the last checkpoint at round 2.
    assert asfed("simulate", *common, "--rounds", "3", "--out", str(cut)).returncode == 0
    state = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert state["round"] == 3  # the run ended, so it checkpointed its last round...
    (cut / "checkpoint.pt").unlink()  # ...simulate a crash before that: keep round 2's state
    assert (
        asfed("simulate", *common, "--rounds", "2", "--out", str(tmp_path / "two")).returncode == 0
    )
    (tmp_path / "two" / "checkpoint.pt").rename(cut / "checkpoint.pt")
    res = asfed("simulate", "--resume", str(cut), "--rounds", "4")
    assert res.returncode == 0, res.stderr
    assert metrics(cut) == metrics(full)
    assert (cut / "messages.bin").read_bytes() == (full / "messages.bin").read_bytes()


def test_episodes_default_to_about_9600_env_steps_a_round() -> None:
    assert build_config(env="exchange").num_episodes() == 32
    assert build_config(env="navigation").num_episodes() == 96
    assert build_config(env="predation").num_episodes() == 320
    assert build_config(env="exchange", horizon=100).num_episodes() == 96
    assert build_config(env="exchange", episodes=5).num_episodes() == 5


def test_every_scenario_is_valid_and_flags_override_it() -> None:
    assert {"quickstart", "paper-exchange", "paper-predation"} <= set(scenario_names())
    for name in scenario_names():
        build_config(name)
    cfg = build_config("quickstart", method="ippo", rounds=3)
    assert (cfg.env, cfg.method, cfg.rounds, cfg.actor_lr) == ("exchange", "ippo", 3, 1e-3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--method", "foo"), "unknown method 'foo'; accepted: as, cppo, ippo, ps, vps, vs"),
        (("--env", "chess"), "unknown env 'chess'; accepted: cleanup"),
        (("--rho", "-1"), "rho=-1.0 is invalid; accepted: a finite number >= 0"),
        (("--rounds", "0"), "rounds=0 is invalid; accepted: an integer 1..2147483647"),
        (("--method", "cppo"), "cppo needs exactly 2 agents"),
        (("--agents", "4"), "num_agents=4 is outside exchange's range; accepted: 3..3"),
        (("--topology", "star"), "unknown topology 'star'"),
        (("--scenario", "nope"), "unknown scenario 'nope'; accepted:"),
        (("--zap",), "zap and private_weights are options of cleanup and harvest"),
        (("--predation-actions", "toward-away"), "predation_actions is an option of predation"),
        (
            ("--env", "predation", "--predation-actions", "up-down"),
            "predation_actions='up-down' is invalid; accepted: left-right, toward-away",
        ),
        (("--engine", "local", "--workers", "0"), "workers=0 is invalid; accepted: an integer"),
        (("--engine", "local", "--workers", "999"), "workers=999 is more than the"),
        (("--workers", "2"), "--workers sets the local engine's processes"),
        (("--device", "tpu"), "unknown device 'tpu'; accepted: cpu, cuda, cuda:N, auto"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path, args, message) -> None:
    out = tmp_path / "run"
    res = refused("simulate", *args, "--out", str(out))  # fails before any round is run
    assert res.returncode == 2
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_unreadable_scenario_and_unknown_keys(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("env = [unclosed\n")
    res = refused("simulate", "--scenario", str(bad), "--out", str(tmp_path / "r"))
    assert res.returncode == 2 and f"cannot read {bad}" in res.stderr
    typo = tmp_path / "typo.toml"
    typo.write_text('env = "exchange"\nround = 3\n')
    res = refused("simulate", "--scenario", str(typo), "--out", str(tmp_path / "r"))
    assert res.returncode == 2 and "unknown setting 'round'" in res.stderr
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('rounds = "many"\n')
    res = refused("simulate", "--scenario", str(wrong), "--out", str(tmp_path / "r"))
    assert res.returncode == 2 and "rounds='many'" in res.stderr and "should be int" in res.stderr
    for line, expected in [
        ('rho = "high"', "rho='high'"),
        ("episodes = 2.5", "episodes=2.5"),
        ("zap = 1", "zap=1"),
        ("topology = 3", "topology=3"),
    ]:
        wrong.write_text(line + "\n")
        res = refused("simulate", "--scenario", str(wrong), "--out", str(tmp_path / "r"))
        assert res.returncode == 2 and expected in res.stderr, res.stderr
        assert "Traceback" not in res.stderr


def test_resume_refuses_corrupt_files_and_existing_runs(tmp_path) -> None:
    out = tmp_path / "run"
    assert asfed("simulate", *SMALL, "--rounds", "1", "--out", str(out)).returncode == 0
    res = refused("simulate", *SMALL, "--rounds", "1", "--out", str(out))
    assert res.returncode == 2 and "already holds a run" in res.stderr
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    res = refused("simulate", "--resume", str(out), "--rounds", "2")
    assert res.returncode == 2 and "cannot read checkpoint" in res.stderr
    (out / "config.toml").write_text("method = 7\n")
    res = refused("simulate", "--resume", str(out))
    assert res.returncode == 2 and "method=7" in res.stderr
    res = refused("simulate", "--resume", str(tmp_path / "nowhere"))
    assert res.returncode == 2 and "is not a run folder" in res.stderr
    res = refused("simulate", "--resume", str(out), "--method", "vs")
    assert res.returncode == 2 and "not allowed: --method" in res.stderr


def test_a_long_run_says_its_cost_and_a_known_frozen_setting_says_so_first(monkeypatch) -> None:
    from rich.console import Console

    from asfed.cli import simulate as command
    from asfed.config import build_config
    from asfed.experiments import budget

    seen = []
    monkeypatch.setattr(budget, "round_seconds", lambda cfg: seen.append(cfg) or 12.0)
    monkeypatch.setattr(command, "console", Console(record=True, width=200))
    long_run = build_config(env="navigation", method="ippo", engine="flower")  # 300 x 9,600
    command._print_expectations(long_run)
    text = command.console.export_text()
    assert "estimated wall time: 1.00 h on one process here (300 rounds of 96 episodes" in text
    assert seen[0].engine == "local" and "note:" not in text  # nothing known about it
    command._print_expectations(build_config(env="exchange", rounds=2, episodes=1))
    text = command.console.export_text()
    assert "AS stays at the random policy's return" in text and "fig2-exchange-tuned" in text
    assert len(seen) == 1  # a 2-round run is not timed
    command._print_expectations(build_config(env="exchange", rounds=2, episodes=1, rho=10.0))
    assert "random policy's return" not in command.console.export_text()  # export clears
    command._print_expectations(build_config(env="cleanup", rounds=2, episodes=1))
    text = command.console.export_text()
    assert "rho = 1e3" in text and "`--rho 10`" in text and "fig2-cleanup-tuned" in text
    command._print_expectations(build_config(env="harvest", rounds=2, episodes=1))
    assert "IPPO reached 114-115" in command.console.export_text()


def test_compiled_steps_without_a_compiler_are_refused_before_training(monkeypatch) -> None:
    """torch.compile on the CPU builds C++; without a compiler the config says so up front,
    rather than a run failing in its first update."""
    from asfed.errors import AsfedError

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr("asfed.config.shutil.which", lambda name: None)
    with pytest.raises(AsfedError, match=r"compile_steps needs a C\+\+ compiler"):
        build_config(env="exchange", compile_steps=True)
    build_config(env="exchange")  # the default needs none


def test_a_resume_by_other_source_is_recorded_and_said_and_a_damaged_record_refused(
    tmp_path, monkeypatch
) -> None:
    """A run folder says which asfed source trained which rounds: a resume by code other than
    the last sitting's is a warning and an entry in versions.json (its later rounds may differ
    from a straight run's in the last bits); a resume by the same code adds nothing."""
    import json
    import warnings

    from asfed import runs
    from asfed.engine.driver import resume, start, train
    from asfed.errors import AsfedError

    cfg = build_config(env="navigation", method="ippo", engine="local", episodes=2, rounds=1)
    out = tmp_path / "r"
    sim, run, rows = start(cfg, out, private_seed=1)
    train(sim, run, rows, None)
    made = json.loads((out / "versions.json").read_text())
    assert made["asfed_source"] == runs.source_digest() and len(made["asfed_source"]) == 16
    monkeypatch.setattr(runs, "source_digest", lambda: "0123456789abcdef")
    with pytest.warns(UserWarning, match=r"rounds before 1 were trained by other asfed source"):
        sim, run, rows = resume(out, 2)
    train(sim, run, rows, None)
    info = json.loads((out / "versions.json").read_text())
    assert info["resumed"] == [{"round": 1, "asfed_source": "0123456789abcdef"}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same source again: nothing to say
        sim, run, rows = resume(out, 3)
    train(sim, run, rows, None)
    assert json.loads((out / "versions.json").read_text()) == info
    for damaged in ('{"python": ', '{"resumed": ["0123"]}', "[]"):
        (out / "versions.json").write_text(damaged)
        with pytest.raises(AsfedError, match=r"cannot read .*versions.json"):
            resume(out, 4)
    assert len(metrics(out)) == 3  # refused before anything was written
    (out / "versions.json").write_text(json.dumps(info))
    sim, run, rows = resume(out, 4)  # the refusal let go of the folder
    train(sim, run, rows, None)
    assert len(metrics(out)) == 4


def test_a_run_restarted_from_round_0_takes_the_source_that_trains_it(tmp_path) -> None:
    """Nothing trained yet (killed before the first checkpoint): a resume starts over, so the
    run's source is simply the new one, with nothing to warn about; a folder without
    versions.json gets one."""
    import json

    from asfed.runs import VERSIONS, RunFolder, source_digest

    (tmp_path / VERSIONS).write_text(json.dumps({"python": "3", "asfed_source": "old"}))
    assert RunFolder(tmp_path).note_resume(0) is None
    info = json.loads((tmp_path / VERSIONS).read_text())
    assert info["asfed_source"] == source_digest() and "resumed" not in info
    (tmp_path / VERSIONS).unlink()
    assert RunFolder(tmp_path).note_resume(0) is None
    assert json.loads((tmp_path / VERSIONS).read_text())["asfed_source"] == source_digest()
