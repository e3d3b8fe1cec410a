"""Where a compiled round's time goes, kernel by kernel: inductor's C++ kernels each recorded
(`cpp.enable_kernel_profile`), torch's profiler over one round after two compiling rounds and a
warm-up one of the same seed. One worker.

    python kernels.py predation as
"""

import os
import sys

os.environ["TORCHINDUCTOR_CACHE_DIR"] = "/tmp/prof/cache_kprof"  # a cache of its own: recompiles

import torch
import torch._inductor.config as inductor
from torch.profiler import ProfilerActivity, profile

from asfed.config import build_config
from asfed.engine.loop import Simulation

torch.set_num_threads(1)
inductor.cpp.enable_kernel_profile = True
env, method = sys.argv[1], sys.argv[2]
cfg = build_config(env=env, method=method, engine="local", compile_steps=True)
sim = Simulation(cfg)
for _ in range(2):
    sim.run_round()
sim = Simulation(cfg)
sim.run_round()
with profile(activities=[ProfilerActivity.CPU]) as prof:
    sim.run_round()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=45))
