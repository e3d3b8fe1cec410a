"""Each worker's wall and CPU time a command in one compiled round (after two warm ones). Needs
one-agent-a-worker.patch applied; from that checkout with PYTHONPATH=. :
python trace.py as 2 nopin navigation (method, workers, pin or nopin, env)."""

import glob
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, "benchmarks")
from train_speed import simulation

from asfed.config import build_config

method, w, pin = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "pin"
env = sys.argv[4] if len(sys.argv) > 4 else "navigation"
os.environ["PROTO_OVERSUB"] = "1"
if pin:
    os.environ["PROTO_PIN"] = "1"
cfg = build_config(env=env, method=method, engine="local", compile_steps=True)
os.makedirs("/tmp/proto", exist_ok=True)
os.environ["PROTO_LOG"] = "/tmp/proto/log"
sim = simulation(cfg, "cpu", w)
sim.run_round()
sim.run_round()
for f in glob.glob("/tmp/proto/log.*"):
    os.remove(f)
t0 = time.perf_counter()
sim.run_round()
t1 = time.perf_counter()
sim.close()
print(f"round {t1 - t0:.3f} s")
for f in sorted(glob.glob("/tmp/proto/log.*")):
    print(f)
    for line in Path(f).read_text().splitlines():
        command, *rest = line.split()
        start, wall, cpu = (float(x) for x in rest[-3:])
        print(f"   {command} {' '.join(rest[:-3])} t={start - t0:.3f} wall={wall} cpu={cpu}")
