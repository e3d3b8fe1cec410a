"""`asfed tradeoff` end to end on a tiny sweep: every point trained, audited and written, finished
points reused, bad epsilons refused."""

from __future__ import annotations

import csv

from tests.test_simulate_cli import asfed


def test_a_tiny_tradeoff_writes_every_point_and_reuses_finished_ones(tmp_path) -> None:
    out = tmp_path / "sweep"
    args = (
        "tradeoff",
        "--env",
        "navigation",
        "--methods",
        "as",
        "--epsilons",
        "2,inf",
        "--seeds",
        "1",
        "--rounds",
        "2",
        "--episodes",
        "2",
        "--workers",
        "1",
        "--out",
        str(out),
    )
    res = asfed(*args)
    assert res.returncode == 0, res.stderr
    assert "public trajectory" in res.stdout and "not covered" in res.stdout
    with open(out / "tradeoff.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["epsilon_target"]) for r in rows] == [("as", "2.0"), ("as", "inf")]
    assert abs(float(rows[0]["epsilon_accountant"]) - 2.0) < 1e-6
    assert rows[1]["epsilon_accountant"] == "inf"
    # navigation's line graph: agent 1 sends to two neighbours, so one neighbour sees half
    assert 0 < float(rows[0]["epsilon_pair"]) < float(rows[0]["epsilon_accountant"])
    assert rows[0]["first_agent_hit"] in ("0.0", "1.0")  # a trial is a secret, not an episode
    assert "one secret a seed" in " ".join(res.stdout.split())
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    metrics = out / "navigation_as_eps2_s1" / "metrics.csv"
    before = metrics.stat().st_mtime_ns
    assert asfed(*args).returncode == 0
    assert metrics.stat().st_mtime_ns == before  # a finished point is not trained again


def test_bad_epsilons_are_refused_before_anything_runs(tmp_path) -> None:
    res = asfed("tradeoff", "--epsilons", "1,0", "--out", str(tmp_path / "s"))
    assert res.returncode == 2 and "epsilon '0' is invalid" in res.stderr
    assert not (tmp_path / "s").exists()
    res = asfed("tradeoff", "--epsilons", "4,1,inf", "--out", str(tmp_path / "s"))
    assert res.returncode == 2 and "is not increasing at '1'" in res.stderr
    res = asfed("tradeoff", "--epsilons", "", "--out", str(tmp_path / "s"))
    assert res.returncode == 2 and "epsilon '' is invalid" in res.stderr
    assert not (tmp_path / "s").exists()
