"""How long a sweep takes on this machine, measured before it runs (`asfed sweep NAME --estimate`).

Each distinct setting of the sweep (a point without its seed: env, method, agents, topology,
learner settings) trains one warm-up round and one timed round here, in this process on one torch
thread, as a sweep's run does; its cost is that round's seconds times the rounds its runs need.
The timed round rolls out 1/`SCALE` of the round's episodes and its time is scaled back up: a
round's work is linear in its episodes (one minibatch step per episode, each of one episode's
rows; shares and rollout over all rows), so fig3-predation100's estimate takes minutes, not an
hour. A setting whose scaled round comes to at most `FULL_S` seconds is then timed at its full
size instead, because there a round's fixed costs do not scale and the scaled figure runs high
(exchange AS: 2.33 s scaled, 1.56 s at full size; cleanup AS 26.7 s scaled). Against
`benchmarks/train_speed.py`'s steady-state rounds (1.39 s, 26.0 s; predation AS 28.2 s, here
30.5 s) the estimate runs up to 15% high: a run's first rounds are slower than its later ones.
The sweep's wall time on W processes follows the pool: runs in sweep order, each taken by the
first process to come free. Why measure and not count: predation and exchange rounds are
overhead-bound, cleanup and harvest rounds matmul-bound, so no FLOP count predicts both. What it
leaves out: the first round of a run costs about a round more (networks built, warm-up), rounds
that log the message log cost a little more, and W processes on W cores run about 5% slower
each than one alone (memory bandwidth; `benchmarks/train_speed.py` measures it).
"""

from __future__ import annotations

import dataclasses
import heapq
import re
import time
from collections.abc import Callable

from asfed.config import RunConfig
from asfed.experiments.plan import Point, Sweep


@dataclasses.dataclass(frozen=True)
class Cost:
    """One distinct setting: its name (the run name without `_s<seed>`), the rounds each of its
    runs needs, in sweep order, and the measured seconds of one round."""

    setting: str
    run_rounds: tuple[int, ...]
    seconds_per_round: float

    @property
    def runs(self) -> int:
        return len(self.run_rounds)

    @property
    def rounds(self) -> int:
        """The rounds its runs need in all."""
        return sum(self.run_rounds)

    @property
    def seconds(self) -> float:
        """Its training time on one process."""
        return self.rounds * self.seconds_per_round


SCALE, FULL_S = 8, 40.0


def _timed_round(cfg: RunConfig, warm_up: bool) -> float:
    from asfed.engine.loop import Simulation

    sim = Simulation(cfg)
    try:
        if warm_up:
            sim.run_round()
        start = time.perf_counter()
        sim.run_round()
        return time.perf_counter() - start
    finally:
        sim.close()


def scaled_down(cfg: RunConfig, scale: int = SCALE) -> RunConfig:
    """`cfg` with about 1/`scale` of its episodes and as many episodes per gradient step as
    before (an explicit `minibatches` that does not divide the episodes: `cfg` unchanged)."""
    episodes = cfg.num_episodes()
    if cfg.minibatches is None:
        return dataclasses.replace(cfg, episodes=max(1, episodes // scale))
    if episodes % cfg.minibatches:
        return cfg
    per_step = episodes // cfg.minibatches
    steps = max(1, cfg.minibatches // scale)
    return dataclasses.replace(cfg, episodes=steps * per_step, minibatches=steps)


def round_seconds(cfg: RunConfig, scale: int = SCALE, full_s: float = FULL_S) -> float:
    """Seconds one round of `cfg` takes in this process on one torch thread: a round of
    `scaled_down(cfg)` timed after a warm-up round, times the episodes' ratio; if that is at
    most `full_s`, one round at full size timed after it (round 0 of a fresh run: cold, and a
    message-log round, so it runs a little high). Nothing is written."""
    episodes = cfg.num_episodes()
    small = scaled_down(cfg, scale)
    few = small.num_episodes()
    seconds = _timed_round(small, warm_up=True) * episodes / few
    if few < episodes and seconds <= full_s:
        seconds = _timed_round(cfg, warm_up=False)  # the process is warm already
    return seconds


def settings(plan: Sweep) -> dict[str, list[Point]]:
    """The sweep's points grouped by setting (their name without the seed), in sweep order."""
    groups: dict[str, list[Point]] = {}
    for p in plan.points:
        groups.setdefault(re.sub(r"_s\d+$", "", p.name), []).append(p)
    return groups


def estimate(
    plan: Sweep,
    timer: Callable[[RunConfig], float] = round_seconds,
    on_cost: Callable[[Cost], None] | None = None,
) -> list[Cost]:
    """One `Cost` per distinct setting, each timed with `timer` (on the first seed's config).
    Every run of the plan is priced, also runs a continued sweep has finished."""
    costs = []
    for name, points in settings(plan).items():
        rounds = tuple(p.config.rounds for p in points)
        cost = Cost(name, rounds, timer(points[0].config))
        costs.append(cost)
        if on_cost is not None:
            on_cost(cost)
    return costs


def wall_seconds(costs: list[Cost], workers: int) -> float:
    """The sweep's wall time on `workers` processes: its runs taken in sweep order, each by the
    first process to come free (what the sweep's pool does)."""
    if workers < 1:
        raise ValueError(f"workers={workers}; accepted: an integer >= 1")
    free_at = [0.0] * workers
    for cost in costs:
        for rounds in cost.run_rounds:
            start = heapq.heappop(free_at)
            heapq.heappush(free_at, start + rounds * cost.seconds_per_round)
    return max(free_at)
