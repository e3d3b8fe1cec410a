"""A peer_speed log's table recomputed by today's `peer_speed.table` from its per-pass lines:
each ratio the median of same-pass ratios (the runs here printed ratios of medians, which can
pair rows of different passes). From the repository root:
python docs/data/peer_speed-cpu-2026-12-04-start/retable.py docs/data/.../run1.log"""

import re
import sys
from pathlib import Path

sys.path.insert(0, "benchmarks")
from peer_speed import jax_label, start_label, table

text = Path(sys.argv[1]).read_text()
passes: dict[str, dict[int, float]] = {}
r = 0
for line in text.splitlines():
    if m := re.match(r"pass (\d+) of \d+", line):
        r = int(m[1]) - 1
    elif m := re.match(r"  (.+): ([\d,]+) env steps/s", line):
        passes.setdefault(m[1], {})[r] = float(m[2].replace(",", ""))
rows = {}
for line in text.splitlines():
    cells = [c.strip() for c in line.strip("|").split("|")]
    if line.startswith("| ") and cells[0] in passes:
        rows[cells[0]] = (cells[1], float(cells[3]) * 1e6)
start = re.search(r"at the start \(([^)]+)\)", text)
measured = {}
for label, values in passes.items():
    setup, fps = rows[label]
    prefix = label.split(": ")[0] + ": " if ": " in label else ""
    cores = re.search(r"(\d+) (worker|core)", label)
    n = int(cores[1]) if cores else 0
    peer = None
    if label.startswith(("JAX", "JaxMARL")) or (not prefix and "at the start" not in label):
        peer = jax_label(n)
    against = None
    if m := re.match(r"(?:\w+: )?asfed (\w+)", label):
        against = start_label(prefix, m[1], start[1], n) if start else None
    measured[label] = ((setup, 0.0, fps, peer, against), values)
print(table(measured, start is not None))
