"""A trade-off's finished points kept apart from their run folders, so a grid longer than one
sitting of the machine is finished over several and its figure is drawn from every point.

One JSON file a point, `<archive>/<point name>.json` (Python's JSON, which keeps inf and NaN):
the point's row (`tradeoff.FIELDS`, what the summary and the figures are made of), its resolved
config (what the plan asks is checked against it, key by key) and the versions it ran with
(the run folder's versions.json). A run folder of 300 rounds holds about 90 MB of messages and
records; its row is a few hundred bytes, small enough to keep beside the docs. The private seed
is not kept: it is secret.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from asfed.atomic import atomic_write
from asfed.config import FIELDS as CONFIG_FIELDS
from asfed.config import config_value
from asfed.errors import AsfedError
from asfed.experiments.observers import TRADEOFF_POINT_FILE
from asfed.experiments.plan import Point, Sweep
from asfed.experiments.tradeoff import FIELDS, read_point

KEYS = ("row", "config", "versions")
# Config keys that do not change a run's numbers (the same seed gives the same run on every
# engine; checkpoints are only when state is saved).
SAME_NUMBERS = {"engine", "checkpoint_every"}


def _file(archive: Path, point: Point) -> Path:
    return Path(archive) / f"{point.name}.json"


def load(archive: Path, plan: Sweep) -> dict[str, dict[str, Any]]:
    """The archived rows of the plan's points, by point name. An archived point whose config
    differs from the plan's is refused, naming the first key that differs; a damaged file is
    refused, never patched."""
    out = {}
    for point in plan.points:
        file = _file(archive, point)
        if not file.exists():
            continue
        try:
            entry = json.loads(file.read_text())
            if not isinstance(entry, dict) or set(entry) != set(KEYS):
                raise ValueError(f"not an archived point (keys {list(KEYS)})")
            row = entry["row"]
            if set(row) != set(FIELDS):
                raise ValueError(f"its row's fields are not {list(FIELDS)}")
        except (OSError, ValueError) as err:
            raise AsfedError(f"cannot read archived point {file}: {err}") from None
        want = point.config.resolved().to_dict()
        held = entry["config"]
        diff = sorted(
            k
            for k in CONFIG_FIELDS.keys() - SAME_NUMBERS
            if config_value(want, k) != config_value(held, k)
        )
        if diff:
            key = diff[0]
            raise AsfedError(
                f"archived point {file} ran with {key}={config_value(held, key)!r}, the plan "
                f"asks {want[key]!r}; archive this grid elsewhere (--archive)"
            )
        out[point.name] = row
    return out


def save_finished(archive: Path, plan: Sweep, folder: Path) -> list[str]:
    """Archive every point of the plan whose run folder in `folder` holds its finished row and
    that is not archived yet; the names archived. An archived point is never overwritten."""
    saved = []
    for point in plan.points:
        run = Path(folder) / point.name
        if _file(archive, point).exists() or not (run / TRADEOFF_POINT_FILE).exists():
            continue
        row = read_point(run)
        versions = json.loads((run / "versions.json").read_text())
        entry = {
            "row": row,
            "config": point.config.resolved().to_dict(),
            "versions": versions,
        }
        Path(archive).mkdir(parents=True, exist_ok=True)
        atomic_write(_file(archive, point), (json.dumps(entry, indent=1) + "\n").encode())
        saved.append(point.name)
    return saved
