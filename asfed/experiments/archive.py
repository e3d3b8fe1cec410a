"""A trade-off's finished points kept apart from their run folders, so a grid longer than one
sitting of the machine is finished over several and its figure is drawn from every point.

One JSON file a point, `<archive>/<point name>.json` (Python's JSON, which keeps inf and NaN):
the point's row (`tradeoff.FIELDS`, what the summary and the figures are made of), its resolved
config as its run folder recorded it (checked against the point's when archived, and against
the plan's when read back, key by key; and the row's method, seed and epsilon against the
point's) and the versions it ran with (the run folder's versions.json; not compared: rows made
by older attack code are not told apart). A run folder of 300 rounds holds about 90 MB of
messages and records; its row is a few KB, small enough to keep beside the docs. The private
seed is not kept: it is secret.
"""

from __future__ import annotations

import json
import math
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
            if not isinstance(row, dict) or set(row) != set(FIELDS):
                raise ValueError(f"its row's fields are not {list(FIELDS)}")
        except (OSError, ValueError) as err:
            raise AsfedError(f"cannot read archived point {file}: {err}") from None
        want = point.config.resolved().to_dict()
        held = entry["config"]
        if not isinstance(held, dict) or not isinstance(entry["versions"], dict):
            raise AsfedError(f"cannot read archived point {file}: config or versions not a table")
        diff = _differences(want, held)
        if diff:
            key = diff[0]
            raise AsfedError(
                f"archived point {file} ran with {key}={config_value(held, key)!r}, the plan "
                f"asks {want[key]!r}; archive this grid elsewhere (--archive)"
            )
        _check_row(row, point, file)
        out[point.name] = row
    return out


def _differences(want: dict[str, Any], held: dict[str, Any]) -> list[str]:
    """Config keys whose values differ (a missing key read as its default), but SAME_NUMBERS."""
    keys = CONFIG_FIELDS.keys() - SAME_NUMBERS
    return sorted(k for k in keys if config_value(want, k) != config_value(held, k))


def _check_row(row: dict[str, Any], point: Point, where: Path) -> None:
    """A row must be the point's: its method, seed and epsilon."""
    eps = point.config.dp_epsilon
    want = {"method": point.config.method, "seed": point.config.seed}
    want["epsilon_target"] = math.inf if eps is None else float(eps)
    for key, value in want.items():
        if row.get(key) != value:
            raise AsfedError(
                f"{where} holds a row with {key}={row.get(key)!r}, but point {point.name} has "
                f"{key}={value!r}; it is not this point's"
            )


def save_finished(archive: Path, plan: Sweep, folder: Path) -> list[str]:
    """Archive every point of the plan whose run folder in `folder` is finished (every round,
    its row) at exactly the point's config (rounds and log_every included; only SAME_NUMBERS
    may differ) and that is not archived yet; the names archived. The run's own config is
    kept. An archived point is never overwritten; a run at another config is refused."""
    from asfed.config import read_toml
    from asfed.experiments.runner import finished
    from asfed.runs import CONFIG

    saved = []
    for point in plan.points:
        run = Path(folder) / point.name
        if _file(archive, point).exists() or not (run / TRADEOFF_POINT_FILE).exists():
            continue
        held = read_toml(run / CONFIG)
        diff = _differences(point.config.resolved().to_dict(), held)
        if diff:
            want = point.config.resolved().to_dict()
            ran = ", ".join(f"{k}={config_value(held, k)!r}" for k in diff)
            asks = ", ".join(f"{k}={config_value(want, k)!r}" for k in diff)
            raise AsfedError(f"{run} ran with {ran}; point {point.name} asks {asks}; not archived")
        if not finished(run, point.config, ()):
            continue  # rounds still to train: the runner finishes it
        row = read_point(run)
        _check_row(row, point, run / TRADEOFF_POINT_FILE)
        versions = json.loads((run / "versions.json").read_text())
        entry = {"row": row, "config": held, "versions": versions}
        Path(archive).mkdir(parents=True, exist_ok=True)
        atomic_write(_file(archive, point), (json.dumps(entry, indent=1) + "\n").encode())
        saved.append(point.name)
    return saved
