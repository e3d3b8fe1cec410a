"""Compiled navigation rounds on 2 workers, 3 workers, and 3 workers pinned in McNaughton's
wrap-around schedule, alternating. Needs one-agent-a-worker.patch applied to a checkout; run
from that checkout with PYTHONPATH=. : python pin_bench.py as 3 4 (method, passes, rounds)."""

import os
import sys

sys.path.insert(0, "benchmarks")
from train_speed import time_rounds

from asfed.config import build_config

method, passes, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cfg = build_config(env="navigation", method=method, engine="local", compile_steps=True)
os.environ["PROTO_OVERSUB"] = "1"
res: dict[str, list[float]] = {}
for p in range(passes):
    for name, w, pin in [("2w", 2, False), ("3w", 3, False), ("3w-pinned", 3, True)]:
        if pin:
            os.environ["PROTO_PIN"] = "1"
        else:
            os.environ.pop("PROTO_PIN", None)
        s = time_rounds(cfg, w, rounds)
        res.setdefault(name, []).append(9600 / s)
        print(f"pass {p} {name}: {9600 / s:,.0f} env steps/s ({s:.3f} s/round)", flush=True)
for k, v in res.items():
    print(k, [f"{x:,.0f}" for x in v])
