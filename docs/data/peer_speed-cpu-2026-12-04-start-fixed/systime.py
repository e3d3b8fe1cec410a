"""Each process's user and system CPU seconds and minor page faults a round (/proc/PID/stat):
navigation AS on 2 workers, 3 timed rounds after one warm-up. Run from a folder holding no asfed:
python systime.py <checkout> [compiled] (the checkout only labels the line; PYTHONPATH picks the
asfed)."""

import os
import sys
import time

from asfed.config import build_config
from asfed.engine.loop import Simulation

kw = {"compile_steps": True} if len(sys.argv) > 2 and sys.argv[2] == "compiled" else {}
cfg = build_config(env="navigation", method="as", engine="local", **kw)
sim = Simulation(cfg, workers=2)
tick = os.sysconf("SC_CLK_TCK")


def times(pid: int) -> tuple[float, float, int]:
    """(user s, system s, minor faults) of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # from field 3 (state) on
    return int(fields[11]) / tick, int(fields[12]) / tick, int(fields[7])


sim.run_round()
pids = [os.getpid()] + [p.pid for p in sim.federation.procs]
before = [times(p) for p in pids]
start = time.perf_counter()
for _ in range(3):
    sim.run_round()
wall = (time.perf_counter() - start) / 3
after = [times(p) for p in pids]
sim.close()
print(f"{sys.argv[1]} {kw} {9600 / wall:,.0f} env steps/s; per round:", end="")
for name, a, b in zip(["world", "w0", "w1"], before, after, strict=True):
    user, system, faults = ((y - x) / 3 for x, y in zip(a, b, strict=True))
    print(f" {name} user {user:.3f} sys {system:.3f} minflt {faults:,.0f};", end="")
print()
