"""DESIGN's dependency rules, checked on the source: only the Flower engine imports flwr, and the
maths (agents, comm, envs) imports neither an engine nor the CLI."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLWR = re.compile(r"^\s*(from|import)\s+flwr\b", re.M)
UPWARD = re.compile(r"^\s*(from|import)\s+asfed\.(engine|cli)\b", re.M)


def sources(*parts: str) -> list[Path]:
    return sorted((ROOT.joinpath(*parts)).rglob("*.py"))


def test_only_the_flower_engine_imports_flwr() -> None:
    flower = ROOT / "asfed" / "engine" / "flower"
    offenders = [
        str(p.relative_to(ROOT))
        for p in sources("asfed") + sources("attacks") + sources("audits")
        if flower not in p.parents and FLWR.search(p.read_text())
    ]
    assert offenders == []
    assert any(FLWR.search(p.read_text()) for p in flower.rglob("*.py"))


def test_the_maths_imports_no_engine_or_cli() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for part in ("agents", "comm", "envs")
        for p in sources("asfed", part)
        if UPWARD.search(p.read_text())
    ]
    assert offenders == []
