"""Seconds a round of compiled steps, in-process, every round size compiled first: a first
Simulation runs `timed + 1` rounds, then a second of the same seed runs one warm-up round and
`timed` timed ones (the same round sizes, so nothing compiles while timed). One worker.

    python rounds.py predation as 2     # env method timed
"""

import os
import sys
import time

import torch

import asfed
from asfed.config import build_config
from asfed.engine.loop import Simulation

torch.set_num_threads(1)
env, method, timed = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = build_config(env=env, method=method, engine="local", compile_steps=True)
sim = Simulation(cfg)
for _ in range(timed + 1):
    sim.run_round()
sim = Simulation(cfg)
sim.run_round()
start = time.perf_counter()
for _ in range(timed):
    sim.run_round()
seconds = (time.perf_counter() - start) / timed
print(f"{os.path.dirname(asfed.__file__)} {env} {method}: {seconds:.3f} s/round")
