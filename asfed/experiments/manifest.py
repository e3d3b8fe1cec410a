"""Sweep folders: many run folders under one manifest, so a grid of runs can be continued,
reported and reproduced as one thing.

    sweep.json      the manifest (JSON, written atomically by `asfed sweep`):
                      format          this file's format version (1)
                      id              a random id, so a Ray node can tell it sees this very folder
                      scenario        the scenario's name, and scenario_toml its full text
                      title, claim    what the experiment is and what the paper says it shows
                      claims          what the paper says per "env/method", "method" or "env"
                      expect          [low, high] ranges the paper's numbers imply, same keys
                      observe         post-run metrics written into each run folder
                      changes         the `--set` changes to the scenario (KEY=VALUE[,VALUE])
                      sessions        each invocation: command, started (ISO time), wall_seconds
                                      (updated as runs finish; null: unknown, for a session
                                      killed before its first run finished), workers, where
                                      (processes, or a Ray address)
                      runs            each run: name (its folder), point (the grid values that
                                      define it), config (resolved), train_seconds (summed)
    <name>/         one run folder per run (`asfed.runs`)

`asfed sweep`, `asfed tradeoff` and `asfed audit --env` write it (`asfed.experiments.runner`);
`asfed report` reads it. A folder is refused (before anything is written) when it or a run
folder in it holds other runs than the plan's, naming the key that differs.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asfed.atomic import atomic_write
from asfed.config import config_differences, config_value, read_toml
from asfed.errors import AsfedError

if TYPE_CHECKING:
    from asfed.experiments.plan import Point, Sweep

MANIFEST = "sweep.json"
FORMAT = 1


def is_sweep(folder: Path) -> bool:
    """Whether `folder` holds a sweep manifest."""
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest (None where there is none), or a clear error if it is unusable."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a format-{FORMAT} sweep manifest")
        if not isinstance(data.get("runs"), list):
            raise ValueError("no list of runs")
        for run in data["runs"]:
            if not isinstance(run, dict) or not {"name", "point", "config"} <= set(run):
                raise ValueError("a run without name, point or config")
    except (ValueError, UnicodeDecodeError) as err:
        raise AsfedError(
            f"cannot read sweep manifest {path}: {err}; accepted: a {MANIFEST} written by "
            "asfed sweep (remove it, or choose another folder)"
        ) from None
    return data


def write_manifest(folder: Path, data: dict[str, Any]) -> None:
    """Write the manifest atomically (readers see the old one or the new one)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(folder) / MANIFEST, json.dumps(data, indent=1).encode())


# Config keys that may differ between a run folder and its point: more rounds extend a run; the
# logging cadence and the engine do not change the numbers.
MAY_DIFFER = frozenset({"rounds", "log_every", "checkpoint_every", "engine"})


def _check_folder(point: Point, path: Path) -> None:
    """Refuse a run folder that holds a different run than this point's."""
    from asfed.runs import CONFIG

    if not (path / CONFIG).exists():
        return
    held = read_toml(path / CONFIG)
    want = point.config.resolved().to_dict()
    diff = config_differences(want, held, MAY_DIFFER)
    if diff:
        k = diff[0]
        raise AsfedError(
            f"{path} holds a run with {k}={config_value(held, k)!r}, the sweep asks "
            f"{k}={config_value(want, k)!r}"
            f"{' (and ' + ', '.join(diff[1:]) + ')' if diff[1:] else ''}; choose another --out"
        )


def check_folder(sweep: Sweep, folder: Path) -> dict[str, Any]:
    """The folder's manifest ({} if new), after checking that it and every run folder in it
    hold this sweep's runs; writes nothing."""
    folder = Path(folder)
    old = read_manifest(folder) or {}
    if old and old.get("scenario") != sweep.scenario:
        raise AsfedError(
            f"{folder} holds a sweep of scenario {old.get('scenario')!r}, not "
            f"{sweep.scenario!r}; choose another --out"
        )
    listed = {r["name"]: r for r in old.get("runs", [])}
    for p in sweep.points:
        _check_folder(p, folder / p.name)
        if p.name in listed:
            want, held = p.config.resolved().to_dict(), listed[p.name]["config"]
            diff = config_differences(want, held, MAY_DIFFER)
            if diff:
                raise AsfedError(
                    f"{folder / MANIFEST} lists run {p.name} with "
                    f"{diff[0]}={config_value(held, diff[0])!r}, "
                    f"the sweep asks {want[diff[0]]!r}; choose another --out"
                )
    return old


def plan_manifest(sweep: Sweep, folder: Path, session: dict[str, Any]) -> dict[str, Any]:
    """Create or extend the manifest (runs are added, never dropped) with this session, after
    `check_folder`, so a refused sweep writes nothing."""
    old = check_folder(sweep, folder)
    runs = {r["name"]: r for r in old.get("runs", [])}
    for p in sweep.points:
        entry = {"name": p.name, "point": p.point, "config": p.config.resolved().to_dict()}
        entry["train_seconds"] = runs.get(p.name, {}).get("train_seconds", 0.0)
        runs[p.name] = entry
    data = {
        "format": FORMAT,
        "id": old.get("id") or uuid.uuid4().hex,
        "scenario": sweep.scenario,
        "scenario_toml": sweep.scenario_text,
        "title": sweep.title,
        "claim": sweep.claim,
        "claims": {**old.get("claims", {}), **sweep.claims},
        "expect": {**old.get("expect", {}), **{k: list(v) for k, v in sweep.expect.items()}},
        "observe": sorted(set(old.get("observe", [])) | set(sweep.observe)),
        "changes": list(dict.fromkeys([*old.get("changes", []), *sweep.sets])),
        "sessions": [*old.get("sessions", []), session],
        "runs": list(runs.values()),
    }
    write_manifest(folder, data)
    return data
