"""The README's quickstart, run as written with the private seed that makes it exact, and the
numbers the README quotes from it: the final team return, the audit's scores and the disk it
states (its time is a measurement, stated with its machine, not a test). Marked slow (about 4
minutes): `python -m pytest -q -m slow`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.engine.test_flower import cli
from tests.test_simulate_cli import asfed

README = Path(__file__).resolve().parents[1] / "README.md"


def _quoted(pattern: str) -> float:
    match = re.search(pattern, " ".join(README.read_text().split()))
    assert match, f"the README no longer quotes {pattern!r}"
    return float(match.group(1))


@pytest.mark.slow
def test_the_quickstart_gives_the_numbers_the_readme_quotes(tmp_path) -> None:
    run = tmp_path / "run"
    args = ("simulate", "--scenario", "quickstart", "--private-seed", "1", "--out", str(run))
    res = cli(*args)  # Flower's engine: Ray's workers need this environment's PATH and HOME
    assert res.returncode == 0, res.stderr
    final = float(re.search(r"team return \(mean of the last 10\) (-?[\d.]+)", res.stdout)[1])
    assert final == _quoted(r"ends at (-?[\d.]+) \(mean of the last 10 rounds\)")
    size_mb = sum(p.stat().st_size for p in run.rglob("*") if p.is_file()) / 2**20
    assert abs(size_mb - _quoted(r"and a (\d+) MB run folder")) < 3

    res = asfed("audit", str(run), "--attack", "all", timeout=1800)
    assert res.returncode == 0, res.stderr
    summaries = json.loads((run / "audit" / "audit.json").read_text())["summaries"]
    score = {s["attack"]: (s["score"], s["baseline"]) for s in summaries}
    r, r_base = score["reward-inversion"]
    acc, acc_base = (3 * x for x in score["update"])  # run-level guesses right, of 3 agents
    quotes = (
        (r, r"reward at r = (-?[\d.]+) on held-out"),
        (r_base, r"against (-?[\d.]+) from the public"),
        (acc, r"names the food box of (\d) of 3 agents"),
        (acc_base, r"public actions\s+alone do \((\d) of 3\)"),
    )
    for value, pattern in quotes:
        assert round(value, 2) == _quoted(pattern), pattern
