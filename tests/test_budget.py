"""`asfed sweep --estimate`: a sweep's cost from one timed round per distinct setting, its runs
grouped by setting whatever their seed, and the wall time on W processes never shorter than its
longest run."""

from __future__ import annotations

import math

import pytest

from audits.budget import estimate, round_seconds, settings, wall_seconds
from audits.sweep import load_sweep
from tests.test_simulate_cli import asfed
from tests.test_sweep import tiny


def test_points_group_by_setting_and_cost_their_rounds(tmp_path) -> None:
    plan = load_sweep(str(tiny(tmp_path)), sets=["rounds=3"])
    assert list(settings(plan)) == ["exchange_as", "exchange_ippo"]
    timed = []

    def timer(cfg) -> float:
        timed.append((cfg.method, cfg.seed))
        return {"as": 0.5, "ippo": 0.25}[cfg.method]

    costs = estimate(plan, timer=timer)
    assert timed == [("as", 1), ("ippo", 1)]  # one timing per setting, not per seed
    assert [(c.setting, c.runs, c.rounds, c.longest) for c in costs] == [
        ("exchange_as", 2, 6, 3),
        ("exchange_ippo", 2, 6, 3),
    ]
    assert costs[0].seconds == pytest.approx(3.0)
    assert wall_seconds(costs, 1) == pytest.approx(4.5)
    assert wall_seconds(costs, 2) == pytest.approx(2.25)
    assert wall_seconds(costs, 8) == pytest.approx(1.5)  # the longest run: 3 rounds of 0.5 s
    with pytest.raises(ValueError, match="workers=0"):
        wall_seconds(costs, 0)


def test_a_real_round_is_timed_and_the_cli_writes_nothing(tmp_path) -> None:
    plan = load_sweep(str(tiny(tmp_path)), methods=["ippo"], seeds=1)
    seconds = round_seconds(plan.points[0].config)
    assert math.isfinite(seconds) and 0 < seconds < 60
    out = tmp_path / "sweep"
    done = asfed(
        "sweep", str(tmp_path / "tiny.toml"), "--estimate", "--workers", "2", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "exchange_as: " in done.stdout and "exchange_ippo: " in done.stdout
    assert "4 runs" in done.stdout and "on 2 process(es)" in done.stdout
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"]
