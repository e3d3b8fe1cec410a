"""Finished runs' results kept apart from their run folders, so a grid longer than one sitting
of the machine is finished over several and its table and figures are drawn from every run: a
trade-off's points (their rows) and an audit's targets (their scored victims).

One JSON file a run, `<archive>/<point name>.json` (Python's JSON, which keeps inf and NaN): its
result (a trade-off point's row, `tradeoff.FIELDS`, a diverged run's included; or an audit target's
victim rows, with the attacks and attacker that made them), its resolved config as its run folder
recorded it (checked against the point's when archived, and against the plan's when read back, key
by key; a trade-off row's method, seed and epsilon against the point's too) and the versions it ran
with (the run folder's versions.json; not compared: results of older attack code are not told
apart). A run folder of 300 rounds holds about 90 MB of messages and records; its row is a few KB,
small enough to keep beside the docs. The private seed is not kept: it is secret.

A point is found by its name, not by its config alone: a run's secrets are drawn from the
private seed and its name, so a smaller grid whose point is named otherwise (one epsilon: no
epsilon in the name) would have drawn other secrets, and it trains its own run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from asfed.atomic import atomic_write
from asfed.config import config_differences, config_value
from asfed.errors import AsfedError
from asfed.experiments.observers import TRADEOFF_POINT_FILE
from asfed.experiments.plan import Point, Sweep
from asfed.experiments.tradeoff import FIELDS, checked_fields, point_row
from asfed.folders import FolderLock

# Config keys that do not change a run's numbers (the same seed gives the same run on every
# engine; checkpoints are only when state is saved).
SAME_NUMBERS = frozenset({"engine", "checkpoint_every"})


def _file(archive: Path, point: Point) -> Path:
    return Path(archive) / f"{point.name}.json"


def _read(archive: Path, point: Point, key: str) -> Any | None:
    """The archived result (`key`) of a point, None if it is not archived; its config is
    checked against the point's key by key; a damaged file is refused, never patched."""
    file = _file(archive, point)
    if not file.exists():
        return None
    try:
        entry = json.loads(file.read_text())
        if not isinstance(entry, dict) or set(entry) != {key, "config", "versions"}:
            raise ValueError(f"not an archived {key!r} (keys {key}, config, versions)")
        if not isinstance(entry["config"], dict) or not isinstance(entry["versions"], dict):
            raise ValueError("its config or versions is not a table")
    except (OSError, ValueError) as err:
        raise AsfedError(f"cannot read archived point {file}: {err}") from None
    want, held = point.config.resolved().to_dict(), entry["config"]
    diff = config_differences(want, held, SAME_NUMBERS)
    if diff:
        key_ = diff[0]
        raise AsfedError(
            f"archived point {file} ran with {key_}={config_value(held, key_)!r}, the plan "
            f"asks {want[key_]!r}; archive this grid elsewhere (--archive)"
        )
    return entry[key]


def _write(archive: Path, point: Point, run: Path, key: str, result: Any) -> None:
    """Archive `result` of a finished run at exactly the point's config (rounds and log_every
    included; only SAME_NUMBERS may differ), with the run's own config and versions."""
    from asfed.config import read_toml
    from asfed.runs import CONFIG

    held = read_toml(run / CONFIG)
    diff = config_differences(point.config.resolved().to_dict(), held, SAME_NUMBERS)
    if diff:
        want = point.config.resolved().to_dict()
        ran = ", ".join(f"{k}={config_value(held, k)!r}" for k in diff)
        asks = ", ".join(f"{k}={config_value(want, k)!r}" for k in diff)
        raise AsfedError(f"{run} ran with {ran}; point {point.name} asks {asks}; not archived")
    versions = json.loads((run / "versions.json").read_text())
    entry = {key: result, "config": held, "versions": versions}
    Path(archive).mkdir(parents=True, exist_ok=True)
    with FolderLock(Path(archive), "archive", wait=30):  # one writer per folder, for a moment
        atomic_write(_file(archive, point), (json.dumps(entry, indent=1) + "\n").encode())


def load(archive: Path, plan: Sweep) -> dict[str, dict[str, Any]]:
    """A trade-off's archived rows of the plan's points, by point name, each checked to be its
    point's (config, method, seed, epsilon)."""
    out = {}
    for point in plan.points:
        row = _read(archive, point, "row")
        if row is None:
            continue
        if not checked_fields(row):
            raise AsfedError(
                f"cannot read archived point {_file(archive, point)}: its row's "
                f"fields are not {list(FIELDS)}"
            )
        _check_row(row, point, _file(archive, point))
        out[point.name] = {"diverged": None, **row}
    return out


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
    """Archive every trade-off point of the plan whose run folder in `folder` is finished
    (every round, its row) at exactly the point's config and that is not archived yet; the
    names archived. An archived point is never overwritten; a run at another config is
    refused."""
    from asfed.experiments.runner import diverged_before, finished

    saved = []
    for point in plan.points:
        run = Path(folder) / point.name
        if _file(archive, point).exists() or not run.is_dir():
            continue
        gone = diverged_before(run, point.config.rounds)
        if gone is None and not (run / TRADEOFF_POINT_FILE).exists():
            continue  # not audited yet
        if not finished(run, point.config, ()):
            continue  # rounds still to train: the runner finishes it
        row = point_row(run, point.config.rounds)
        _check_row(row, point, run / TRADEOFF_POINT_FILE)
        _write(archive, point, run, "row", row)
        saved.append(point.name)
    return saved


def load_audit(
    archive: Path, plan: Sweep, attacks: list[str], attacker: str
) -> dict[str, list[dict[str, Any]]]:
    """An audit's archived victim rows (`audits.audit.VictimScore` fields) of the plan's
    targets, by point name; made by other attacks or another attacker: refused."""
    out = {}
    for point in plan.points:
        result = _read(archive, point, "audit")
        if result is None:
            continue
        where = _file(archive, point)
        if not isinstance(result, dict) or set(result) != {"attacks", "attacker", "rows"}:
            raise AsfedError(f"cannot read archived audit {where}: not attacks, attacker, rows")
        if result["attacks"] != list(attacks) or result["attacker"] != attacker:
            raise AsfedError(
                f"archived audit {where} was made by {result['attacker']} with "
                f"{', '.join(result['attacks'])}; this audit asks {attacker} with "
                f"{', '.join(attacks)}: give another --archive"
            )
        out[point.name] = result["rows"]
    return out


def save_audit(
    archive: Path,
    plan: Sweep,
    folder: Path,
    rows: list[dict[str, Any]],
    attacks: list[str],
    attacker: str,
) -> list[str]:
    """Archive each finished target's victim rows (`rows` as dicts, each with its "run"), for
    the plan's points in `folder` not archived yet; the names archived."""
    saved = []
    for point in plan.points:
        run = Path(folder) / point.name
        mine = [r for r in rows if Path(r["run"]) == run]
        if _file(archive, point).exists() or not mine:
            continue
        result = {"attacks": list(attacks), "attacker": attacker, "rows": mine}
        _write(archive, point, run, "audit", result)
        saved.append(point.name)
    return saved
