"""Flower engine overhead: the same AS training on both engines, wall(flower) / wall(local).

Measured after start-up (Ray, the SuperNodes and the agents' set-up are excluded), at the default
batch of episodes per round unless `--episodes` is given, on exchange (3 agents) and predation
(8 agents). Prints seconds per round on each engine, the ratio, and the Flower round's breakdown:
rollout, sharing and learning round trips (including client compute, serialisation and polling),
and checkpoint state transfer. The goal on a 2-core machine is a ratio <= 1.25.

    python benchmarks/engine_overhead.py [--rounds 5] [--episodes N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import asfed.engine.loop as loop
from asfed.config import build_config
from asfed.engine.flower.federation import FlowerFederation, flower_federation
from asfed.engine.flower.simulation import run_flower
from asfed.engine.loop import Simulation

CASES = (("exchange", 3), ("predation", 8))


def timed_rounds(sim: Simulation, rounds: int) -> float:
    sim.run_round()  # warm-up: first-round allocations, Ray actors
    start = time.perf_counter()
    for _ in range(rounds):
        sim.run_round()
    return (time.perf_counter() - start) / rounds


def flower_breakdown(sim: Simulation, rounds: int) -> dict[str, float]:
    """Seconds per round in the rollout, the share trip and the update trips; one checkpoint."""
    fed: FlowerFederation = sim.federation  # type: ignore[assignment]
    spent = {"rollout": 0.0, "share trip": 0.0, "update trips": 0.0}
    original_rollout, original_begin, original_update = loop.rollout, fed.begin, fed.update

    def clock(key, fn):
        def wrapped(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            spent[key] += time.perf_counter() - t
            return out

        return wrapped

    loop.rollout = clock("rollout", original_rollout)
    fed.begin, fed.update = (
        clock("share trip", original_begin),
        clock("update trips", original_update),
    )
    try:
        for _ in range(rounds):
            sim.run_round()
    finally:
        loop.rollout = original_rollout
        fed.begin, fed.update = original_begin, original_update
    t = time.perf_counter()
    fed.checkpoint(sim.round)  # each client saves to its own storage
    checkpoint = time.perf_counter() - t
    return {**{k: v / rounds for k, v in spent.items()}, "checkpoint (when taken)": checkpoint}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=None, help="default: the run default")
    args = parser.parse_args()
    print("| env (agents) | episodes/round | local s/round | flower s/round | ratio |")
    print("|---|---|---|---|---|")
    details = []
    for env, n in CASES:
        cfg = build_config(env=env, method="as", agents=n, seed=1, episodes=args.episodes)
        local = timed_rounds(Simulation(cfg), args.rounds)

        def body(grid, cfg=cfg):
            root = Path(tempfile.mkdtemp(prefix="asfed-bench-"))
            sim = Simulation(cfg, flower_federation(grid), agent_root=root)
            return timed_rounds(sim, args.rounds), flower_breakdown(sim, args.rounds)

        flower, parts = run_flower(n, body)
        print(
            f"| {env} ({n}) | {cfg.num_episodes()} | {local:.3f} | {flower:.3f} | "
            f"{flower / local:.2f} |",
            flush=True,
        )
        details.append((env, parts))
    for env, parts in details:
        print(
            f"{env} flower round breakdown: "
            + ", ".join(f"{k} {v:.3f} s" for k, v in parts.items())
        )


if __name__ == "__main__":
    main()
