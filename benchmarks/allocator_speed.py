"""What keeping freed memory (`asfed.allocator`) buys: rounds timed with and without, in fresh
processes taken in turn.

mallopt's setting holds for a whole process, so each side is a fresh process (with
`ASFED_GLIBC_MALLOC=1` for glibc's defaults, which worker processes inherit), and the two sides
alternate `--pairs` times so that a drift in the machine's speed falls on both. Each process
times `--rounds` rounds after one warm-up round (`train_speed.time_rounds`; compiled runs
compile in it); a side's number is the median over its processes of their mean round. Paper
defaults.

    python benchmarks/allocator_speed.py                              # navigation IPPO, 2 workers
    python benchmarks/allocator_speed.py --runs cleanup:ippo,navigation:as --workers 1
    python benchmarks/allocator_speed.py --runs navigation:ippo --compile-steps
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from asfed.allocator import OFF

CHILD = """
import json, sys
here, parent, env, method, workers, rounds, compiled = json.loads(sys.argv[1])
from asfed.lifetime import die_with_parent
die_with_parent(parent)  # a killed benchmark leaves no child training
sys.path.insert(0, here)
from train_speed import time_rounds
from asfed.config import build_config
from asfed.engine.loop import prepare
cfg = build_config(env=env, method=method, engine="local", compile_steps=compiled)
steps = cfg.num_episodes() * prepare(cfg)[1].horizon
print(json.dumps({"seconds": time_rounds(cfg, workers, rounds), "steps": steps}))
"""
HERE = str(Path(__file__).resolve().parent)


def one(env: str, method: str, workers: int, rounds: int, compiled: bool, glibc: bool) -> dict:
    """A fresh process's mean seconds a round (and env steps a round)."""
    child_env = {k: v for k, v in os.environ.items() if k != OFF}
    if glibc:
        child_env[OFF] = "1"
    args = json.dumps([HERE, os.getpid(), env, method, workers, rounds, compiled])
    out = subprocess.run(
        [sys.executable, "-c", CHILD, args], env=child_env, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"{env}:{method} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="navigation:ippo", help="env:method,...")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4, help="timed rounds a process")
    parser.add_argument("--pairs", type=int, default=3, help="processes a side, alternating")
    parser.add_argument("--compile-steps", action="store_true", help="compiled lockstep steps")
    args = parser.parse_args()
    print(f"{args.workers} workers, {args.rounds} rounds a process, {args.pairs} pairs")
    for run in args.runs.split(","):
        env, method = run.split(":")
        sides: dict[bool, list[float]] = {True: [], False: []}
        steps = 0
        for _ in range(args.pairs):
            for glibc in (True, False):
                got = one(env, method, args.workers, args.rounds, args.compile_steps, glibc)
                sides[glibc].append(got["seconds"])
                steps = got["steps"]
        default, kept = (statistics.median(sides[g]) for g in (True, False))
        print(
            f"{env} {method}: glibc's defaults {default:.3f} s a round ({steps / default:,.0f} "
            f"env steps/s), kept {kept:.3f} s ({steps / kept:,.0f}); x{default / kept:.2f}  "
            f"[each: {' '.join(f'{s:.3f}' for s in sides[True])} | "
            f"{' '.join(f'{s:.3f}' for s in sides[False])}]",
            flush=True,
        )


if __name__ == "__main__":
    main()
