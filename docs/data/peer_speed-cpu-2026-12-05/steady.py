"""Steady-state seconds a round, every round size already compiled, on any worker count.

A fresh process compiles (or re-traces) `compile_steps`'s programs for each new round size, and
predation's round sizes change with its captures, so a few timed rounds of `train_speed` time
compiles too. Here a Simulation with agent storage runs one round, checkpoints, runs `timed`
more (compiling what they need), restores the checkpoint and runs the same `timed` rounds again,
timed: the same sizes, so no compiling, on 1 worker or 2 alike. Works on an older asfed (the
start, eager: pass compile 0).

    python steady.py predation as 2 1 3     # env method workers compile timed
"""

import sys
import tempfile
import time
from pathlib import Path

import asfed
from asfed.config import build_config
from asfed.engine.loop import Simulation

env, method, workers, compiled, timed = sys.argv[1:6]
workers, timed = int(workers), int(timed)
options = {"compile_steps": True} if compiled == "1" else {}
cfg = build_config(env=env, method=method, engine="local", **options)
with tempfile.TemporaryDirectory() as root:
    kwargs = {"workers": workers} if workers > 1 else {}
    sim = Simulation(cfg, agent_root=Path(root), private_seed=1, **kwargs)
    try:
        sim.run_round()
        state = sim.checkpoint()
        first = []
        for _ in range(timed):
            first.append(sim.run_round()[0]["team_return"])
        sim.restore(state)
        start = time.perf_counter()
        again = [sim.run_round()[0]["team_return"] for _ in range(timed)]
        seconds = (time.perf_counter() - start) / timed
    finally:
        sim.close()
assert again == first, (first, again)  # the restored rounds repeat the first ones exactly
steps = cfg.num_episodes() * sim.env.horizon
print(
    f"{Path(asfed.__file__).parent} {env} {method} workers={workers} compiled={compiled}: "
    f"{seconds:.3f} s/round, {steps / seconds:,.0f} env steps/s (returns repeated: {again})"
)
