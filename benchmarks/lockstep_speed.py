"""What lockstep minibatch steps, or compiling them, buy: rounds timed both ways, interleaved.

Two simulations of one config (same seeds) train side by side in this process, a round of each
in turn: `--compare lockstep` (the default) runs one under `asfed.agents.lockstep.together(True)`
and the other under `(False)`; `--compare compile` runs both in lockstep, one with
`compile_steps` (each lockstep step one `torch.compile` program) and one eager; `--compare fused`
runs both in lockstep, one stacking plain PPO steps through `asfed.agents.fused` (the default)
and one taping every step with autograd (`lockstep.fusing(False)`). Each side's best round
after the warm-up rounds (the compiled side compiles in them) is reported, with the ratio.
Interleaving keeps the ratio honest on a machine whose load drifts. Paper defaults, one worker,
one thread.

    python benchmarks/lockstep_speed.py                       # navigation IPPO and AS
    python benchmarks/lockstep_speed.py --runs cleanup:ippo,predation:as --rounds 4
    python benchmarks/lockstep_speed.py --compare compile --runs navigation:as,exchange:as
    python benchmarks/lockstep_speed.py --compare fused --runs navigation:ippo,exchange:vs
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from asfed.agents import lockstep
from asfed.config import build_config
from asfed.engine.loop import Simulation

WARMUP = 2  # rounds: a compiled side compiles its graphs in the first (and new sizes after)


def compare(env: str, method: str, rounds: int, what: str) -> tuple[float, float]:
    """Best seconds a round with the change on and off (after `WARMUP` rounds each)."""
    sims = {}
    for on in (True, False):
        extra = {"compile_steps": on} if what == "compile" else {}
        cfg = build_config(env=env, method=method, engine="local", **extra)
        sims[on] = Simulation(cfg, private_seed=1)
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds + WARMUP):
        for on, sim in sims.items():
            mode = {
                "lockstep": lockstep.together,
                "fused": lockstep.fusing,
            }.get(what, lambda _: contextlib.nullcontext())(on)
            with mode:
                start = time.perf_counter()
                sim.run_round()
                times[on].append(time.perf_counter() - start)
    return min(times[True][WARMUP:]), min(times[False][WARMUP:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="navigation:ippo,navigation:as", help="env:method,...")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds a side")
    parser.add_argument("--compare", choices=["lockstep", "compile", "fused"], default="lockstep")
    args = parser.parse_args()
    torch.set_num_threads(1)
    on_name, off_name = {
        "lockstep": ("lockstep s/round", "one at a time"),
        "compile": ("compiled s/round", "eager"),
        "fused": ("fused s/round", "taped"),
    }[args.compare]
    print(f"{'env':<11}{'method':<7}{on_name:>18}{off_name:>15}{'ratio':>8}")
    for item in args.runs.split(","):
        env, method = item.split(":")
        on, off = compare(env, method, args.rounds, args.compare)
        print(f"{env:<11}{method:<7}{on:>18.2f}{off:>15.2f}{off / on:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
