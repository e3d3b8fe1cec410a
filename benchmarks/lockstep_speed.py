"""What lockstep minibatch steps buy: rounds timed with lockstep on and off, interleaved.

Two simulations of one config (same seeds) train side by side in this process, a round of each
in turn, `asfed.agents.lockstep.together(True)` for one and `(False)` for the other; each side's
best round after the first is reported, with the ratio. Interleaving keeps the ratio honest on
a machine whose load drifts. Paper defaults, one worker, one thread.

    python benchmarks/lockstep_speed.py                       # navigation IPPO and AS
    python benchmarks/lockstep_speed.py --runs cleanup:ippo,predation:as --rounds 4
"""

from __future__ import annotations

import argparse
import time

import torch

from asfed.agents import lockstep
from asfed.config import build_config
from asfed.engine.loop import Simulation


def compare(env: str, method: str, rounds: int) -> tuple[float, float]:
    """Best seconds a round with lockstep on and off (after one warm-up round each)."""
    cfg = build_config(env=env, method=method, engine="local")
    sims = {on: Simulation(cfg, private_seed=1) for on in (True, False)}
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds + 1):
        for on, sim in sims.items():
            with lockstep.together(on):
                start = time.perf_counter()
                sim.run_round()
                times[on].append(time.perf_counter() - start)
    return min(times[True][1:]), min(times[False][1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="navigation:ippo,navigation:as", help="env:method,...")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds a side")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'env':<11}{'method':<7}{'lockstep s/round':>18}{'one at a time':>15}{'ratio':>8}")
    for item in args.runs.split(","):
        env, method = item.split(":")
        on, off = compare(env, method, args.rounds)
        print(f"{env:<11}{method:<7}{on:>18.2f}{off:>15.2f}{off / on:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
