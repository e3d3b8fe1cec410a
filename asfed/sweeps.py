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

`asfed sweep` writes it (`audits.sweep`); `asfed report` reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from asfed.atomic import atomic_write
from asfed.errors import AsfedError

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
