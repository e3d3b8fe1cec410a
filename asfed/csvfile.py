"""Per-round CSV files (metrics, an agent's diagnostics): durable appends, atomic rewrites."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from asfed.atomic import atomic_write


def read_rows(path: Path) -> list[dict[str, str]]:
    """Every row of the CSV at `path` (none if it does not exist)."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_row(path: Path, row: dict[str, Any], header: bool) -> None:
    """Append one row, flushed and fsynced; `header`: start the file anew with a header."""
    with open(path, "w" if header else "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row), lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Replace the file with `rows` (atomically)."""
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(Path(path), buf.getvalue().encode())
