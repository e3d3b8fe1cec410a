"""End-to-end tests of the `asfed` console script."""

from __future__ import annotations

import subprocess
import sys

from asfed.envs import names


def run_cli(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from asfed.cli import main; main()", *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env={"COLUMNS": "200", "PATH": ""}
    )


def test_list_shows_every_env_with_agents_actions_and_horizon() -> None:
    out = run_cli("list")
    assert out.returncode == 0, out.stderr
    for name in names():
        assert name in out.stdout
    assert "4 (2-8)" in out.stdout and "8 (2-100)" in out.stdout  # cleanup, predation agents
    assert "up, down, left, right, open, stay" in out.stdout  # exchange actions
    assert "300" in out.stdout  # exchange horizon
    assert "anticipation, policy_dist" in out.stdout  # what AS may send
    assert "random-one" in out.stdout and "distance" in out.stdout
    from audits.audit import QUESTIONS

    for attack in (*QUESTIONS, "actions-only"):  # every --attack value, and the baseline
        assert attack in out.stdout
    assert "Shokri" in out.stdout and "not an --attack" in out.stdout


def test_unknown_command_fails_with_a_usage_message() -> None:
    out = run_cli("lst")
    assert out.returncode == 2
    assert "No such command 'lst'" in out.stderr


def test_help_teaches_the_commands() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    assert "list" in out.stdout and "audit" in out.stdout
