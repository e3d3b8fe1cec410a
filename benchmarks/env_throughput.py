"""Environment throughput: env-steps/s and agent-steps/s for every env at B = 1, 64, 512.

Random actions (drawn ahead of time, so the figure is the env's own cost), resets included when
episodes end, one thread (OMP_NUM_THREADS=1 is set before numpy loads). Prints a Markdown table
with each figure's ratio to the target at B = 512.

    python benchmarks/env_throughput.py [--seconds 2.0] [--batches 1 64 512]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import time

import numpy as np

import asfed
from asfed.envs import names

# env-steps/s at B = 512 that each env should reach on a 2-core machine, one core used.
TARGETS = {
    "cleanup": 50_000,  # about 10x the JAX SocialJax cleanup on the same CPU
    "harvest": 50_000,
    "navigation": 276_000,  # JaxMARL's MPE simple_spread on the same CPU
    "exchange": 276_000,
    "predation": 276_000,
}


def measure(name: str, batch: int, seconds: float) -> tuple[float, int]:
    """Env-steps per second for `batch` copies over at least `seconds`; also returns N."""
    env = asfed.make_vec_env(name, batch, seed=0)
    rng = np.random.default_rng(0)
    pool = rng.integers(0, env.num_actions, (64, batch, env.num_agents))
    env.reset()
    steps, i = 0, 0
    start = time.perf_counter()
    while True:
        for _ in range(50):
            _, _, term, trunc, _ = env.step(pool[i % 64])
            i += 1
            steps += 1
            if (term | trunc).all():
                env.reset()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps * batch / elapsed, env.num_agents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 512])
    parser.add_argument("--envs", nargs="+", default=names(), choices=names())
    args = parser.parse_args()
    head = " | ".join(f"B={b} env-steps/s | B={b} agent-steps/s" for b in args.batches)
    print(f"| env (agents) | {head} | target at B=512 | ratio |")
    print("|---" * (2 + 2 * len(args.batches) + 1) + "|")
    for name in args.envs:
        cells, rate, n = [], 0.0, 0
        for b in args.batches:
            rate, n = measure(name, b, args.seconds)
            cells += [f"{rate:,.0f}", f"{rate * n:,.0f}"]
        target = TARGETS[name]
        ratio = f"{rate / target:.2f}x" if args.batches[-1] == 512 else "-"
        print(f"| {name} ({n}) | {' | '.join(cells)} | {target:,} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
