"""What a report is drawn from, read from disk: sweep folders, run folders, folders of runs.

A *source* is one section of the report: a sweep (its manifest gives the title, the paper's claim
and the runs), or the run folders inside a folder without a manifest (an audit's or a trade-off's
folder), or the run folders given one by one. Runs with no completed round are left out (and
counted). Nothing is written.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from asfed.config import read_toml
from asfed.csvfile import checked_rows, read_rows
from asfed.errors import AsfedError
from asfed.experiments.manifest import is_sweep, read_manifest
from asfed.runs import diverged

CONFIG, METRICS, ANTICIPATION, AUDIT, TRADEOFF = (
    "config.toml",
    "metrics.csv",
    "anticipation.csv",
    "audit/audit.json",
    "tradeoff.csv",
)


@dataclasses.dataclass
class Run:
    """One run folder's numbers: team return and bytes sent per round, `[R]` each."""

    path: Path
    config: dict[str, Any]
    team: np.ndarray
    bytes_total: np.ndarray
    anticipation: list[dict[str, str]]
    train_seconds: float | None = None
    diverged: str | None = None  # where its training diverged (`asfed.runs.DIVERGED`), if it did

    @property
    def name(self) -> str:
        return self.path.name


@dataclasses.dataclass
class Source:
    """One section of the report."""

    path: Path
    title: str
    runs: list[Run]
    planned: int  # runs the manifest lists (or folders found), finished or not
    claim: str = ""
    claims: dict[str, str] = dataclasses.field(default_factory=dict)
    expect: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    sessions: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    scenario_toml: str = ""
    is_sweep: bool = False
    tradeoff: Path | None = None
    changes: list[str] = dataclasses.field(default_factory=list)

    @property
    def heading(self) -> str:
        """The title, with any --set change to the scenario's settings said."""
        if not self.changes:
            return self.title
        return f"{self.title} [changed from the scenario: {'; '.join(self.changes)}]"

    def claim_for(self, env: str, method: str) -> str:
        """What the paper says of `method` on `env` ("env/method", then "method", then "env")."""
        for key in (f"{env}/{method}", method, env):
            if key in self.claims:
                return self.claims[key]
        return ""

    def expect_for(self, env: str, method: str) -> tuple[float, float] | None:
        for key in (f"{env}/{method}", method, env):
            if key in self.expect:
                lo, hi = self.expect[key]
                return float(lo), float(hi)
        return None


def read_run(path: Path, train_seconds: float | None = None) -> Run | None:
    """A run folder's config and per-round numbers (None if it has no completed round)."""
    path = Path(path)
    rows, damaged = checked_rows(path / METRICS)
    if damaged:
        raise AsfedError(
            f"{path / METRICS} is damaged at data row {len(rows) + 1} (cut, out of order or "
            f"repeated); `asfed simulate --resume {path}` cuts a damaged tail back to the last "
            "checkpoint, or restore the file"
        )
    if not rows:
        return None
    try:
        team = np.array([float(r["team_return"]) for r in rows])
        sent = np.array([float(r["bytes_total"]) for r in rows])
    except (KeyError, ValueError) as err:
        raise AsfedError(f"cannot read {path / METRICS}: {err}") from None
    anticipation = read_rows(path / ANTICIPATION)
    config = read_toml(path / CONFIG)
    where = diverged(path)  # a divergence after the rounds the run asks is not one of its own
    if where is not None and where["rounds"] >= int(config.get("rounds", 0)):
        where = None
    gone = None if where is None else f"after {where['rounds']} rounds: {where['error']}"
    return Run(path, config, team, sent, anticipation, train_seconds, gone)


def _is_run(path: Path) -> bool:
    return (Path(path) / CONFIG).is_file()


def _sweep(path: Path) -> Source:
    manifest = read_manifest(path) or {}
    runs = []
    for entry in manifest["runs"]:
        run = read_run(path / entry["name"], entry.get("train_seconds"))
        if run is not None:
            runs.append(run)
    return Source(
        path=path,
        title=str(manifest.get("title") or manifest.get("scenario") or path.name),
        runs=runs,
        planned=len(manifest["runs"]),
        claim=str(manifest.get("claim", "")),
        claims=dict(manifest.get("claims", {})),
        expect=dict(manifest.get("expect", {})),
        sessions=list(manifest.get("sessions", [])),
        scenario_toml=str(manifest.get("scenario_toml", "")),
        is_sweep=True,
        tradeoff=path / TRADEOFF if (path / TRADEOFF).is_file() else None,
        changes=[str(c) for c in manifest.get("changes", [])],
    )


def _folder(path: Path) -> Source:
    folders = sorted(p for p in path.iterdir() if p.is_dir() and _is_run(p))
    runs = [r for r in (read_run(p) for p in folders) if r is not None]
    return Source(
        path=path,
        title=f"{'Runs' if folders else 'Trade-off'} in {path.name}",
        runs=runs,
        planned=len(folders),
        tradeoff=path / TRADEOFF if (path / TRADEOFF).is_file() else None,
    )


def collect(paths: list[Path]) -> list[Source]:
    """The report's sources, in the order given (loose run folders together, last)."""
    sources, loose = [], []
    for path in map(Path, paths):
        if not path.is_dir():
            raise AsfedError(f"no such folder: {path}")
        if is_sweep(path):
            sources.append(_sweep(path))
        elif _is_run(path):
            loose.append(path)
        elif (path / TRADEOFF).is_file() or any(_is_run(p) for p in path.iterdir() if p.is_dir()):
            sources.append(_folder(path))  # a trade-off drawn from its archive has no runs
        else:
            raise AsfedError(
                f"{path} is not a sweep folder (sweep.json), a run folder (config.toml), a "
                "trade-off folder (tradeoff.csv) or a "
                "folder of run folders; accepted: any of these"
            )
    if loose:
        runs = [r for r in (read_run(p) for p in loose) if r is not None]
        names = ", ".join(p.name for p in loose[:3]) + (", ..." if len(loose) > 3 else "")
        sources.append(Source(Path(loose[0]).parent, f"Runs: {names}", runs, len(loose)))
    return sources


def audits(source: Source) -> list[tuple[dict[str, Any], Path]]:
    """Each distinct audit among the source's runs (an audit pooling several runs writes the
    same audit.json into each): its payload and the folder of its chart."""
    seen, out = set(), []
    for run in source.runs:
        path = run.path / AUDIT
        if not path.is_file():
            continue
        text = path.read_text()
        if text in seen:
            continue
        seen.add(text)
        try:
            out.append((json.loads(text), path.parent))
        except ValueError as err:
            raise AsfedError(f"cannot read {path}: {err}") from None
    return out
