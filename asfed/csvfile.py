"""Per-round CSV files (metrics, an agent's diagnostics): durable appends, atomic rewrites."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from asfed.atomic import atomic_write
from asfed.errors import AsfedError


def read_rows(path: Path) -> list[dict[str, str]]:
    """Every row of the CSV at `path` (none if it does not exist)."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def checked_rows(path: Path, every_round: bool = True) -> tuple[list[dict[str, str]], int]:
    """The rows of a per-round CSV up to its first damaged one, and how many rows follow from
    there (0: the file is whole). A row is whole when it has every column, each non-empty, and a
    `round` that is the row's position (0, 1, 2, ...: none missing, none twice) or, with
    `every_round` off, an integer above the previous row's. A file that cannot be read at all is
    an error naming it."""
    try:
        rows = read_rows(path)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise AsfedError(f"cannot read {path}: {err}") from None
    last = -1
    for i, row in enumerate(rows):
        whole = None not in row and all(v not in (None, "") for v in row.values())
        text = row.get("round") or ""
        number = int(text) if text.isascii() and text.isdigit() else -1
        ordered = number == i if every_round else number > last
        if not whole or not ordered:
            return rows[:i], len(rows) - i
        last = number
    return rows, 0


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
