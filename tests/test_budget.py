"""`asfed sweep --estimate`: a sweep's cost from one timed round per distinct setting, its runs
grouped by setting whatever their seed, the round timed scaled down with as many episodes per
gradient step as the full one, and the wall time the pool's schedule gives on W processes."""

from __future__ import annotations

import math

import pytest

from asfed.config import build_config
from asfed.experiments import budget
from asfed.experiments.budget import (
    Cost,
    estimate,
    round_seconds,
    scaled_down,
    settings,
    wall_seconds,
)
from asfed.experiments.plan import load_sweep
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
    assert [(c.setting, c.run_rounds, c.rounds) for c in costs] == [
        ("exchange_as", (3, 3), 6),
        ("exchange_ippo", (3, 3), 6),
    ]
    assert costs[0].seconds == pytest.approx(3.0)
    assert wall_seconds(costs, 1) == pytest.approx(4.5)
    assert wall_seconds(costs, 2) == pytest.approx(2.25)
    assert wall_seconds(costs, 8) == pytest.approx(1.5)  # the longest run: 3 rounds of 0.5 s
    with pytest.raises(ValueError, match="workers=0"):
        wall_seconds(costs, 0)


def test_the_wall_time_follows_the_pools_schedule_not_an_even_split() -> None:
    # 5 runs of 10 s on 2 processes: 3 after one another on one of them, not 25 s each
    assert wall_seconds([Cost("a", (10,) * 5, 1.0)], 2) == pytest.approx(30.0)
    # in sweep order, each run to the first process to come free: 4 | 3, then 3 on the second
    costs = [Cost("a", (4,), 1.0), Cost("b", (3, 3), 1.0)]
    assert wall_seconds(costs, 2) == pytest.approx(6.0)
    assert wall_seconds(list(reversed(costs)), 2) == pytest.approx(7.0)  # 3 | 3, then 4


@pytest.mark.parametrize(
    ("episodes", "minibatches", "want"),
    [
        (32, None, (4, None)),  # one step per episode, as before
        (3, None, (1, None)),
        (32, 4, (8, 1)),  # 8 episodes a step, as in the full round
        (64, 16, (8, 2)),
        (30, 4, (30, 4)),  # 4 does not divide 30: timed at full size
    ],
)
def test_a_scaled_round_keeps_the_episodes_per_step(episodes, minibatches, want) -> None:
    cfg = build_config(None, env="exchange", episodes=episodes, minibatches=minibatches)
    small = scaled_down(cfg)
    assert (small.num_episodes(), small.minibatches) == want


def test_a_scaled_round_is_scaled_up_and_a_cheap_one_timed_at_full_size(monkeypatch) -> None:
    seen = []

    def fake(cfg, warm_up: bool) -> float:
        seen.append((cfg.num_episodes(), warm_up))
        return 0.01 * cfg.num_episodes()

    monkeypatch.setattr(budget, "_timed_round", fake)
    cfg = build_config(None, env="exchange", episodes=32)
    assert round_seconds(cfg, full_s=0.0) == pytest.approx(0.32)  # 4 episodes x 8
    assert seen == [(4, True)]
    seen.clear()
    assert round_seconds(cfg, full_s=1.0) == pytest.approx(0.32)  # cheap: the full round
    assert seen == [(4, True), (32, False)]


def test_a_real_round_is_timed_and_the_cli_writes_nothing(tmp_path) -> None:
    plan = load_sweep(str(tiny(tmp_path)), methods=["ippo"], seeds=1)
    seconds = round_seconds(plan.points[0].config)
    assert math.isfinite(seconds) and 0 < seconds < 60
    work = tmp_path / "work"
    work.mkdir()
    done = asfed(
        "sweep", str(tmp_path / "tiny.toml"), "--estimate", "--workers", "2", cwd=work
    )  # default folder: runs/sweep_tiny under the working directory
    assert done.returncode == 0, done.stderr
    assert "exchange_as: " in done.stdout and "exchange_ippo: " in done.stdout
    assert "4 runs" in done.stdout and "on 2 process(es)" in done.stdout
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
        "tiny.toml",
        "work",
    ]
