"""Agent-private storage: an agent's own checkpoints and diagnostics, never read by the world.

Each agent writes to its own folder (`<run>/agents/agent_<i>/` on one machine; on the deployment
engine, the SuperNode's disk): `checkpoint-<round>.pt` (networks, optimisers, generators; the two
latest are kept, so a crash between the agents' and the world's checkpoints still finds a matching
pair) and `diagnostics.csv` (per-round statistics that are functions of the private rewards, such
as kappa_i = mean |A_i| and the value loss). The world and the relay never open these files: what
leaves an agent is only its acting policy and its logged messages.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from asfed.atomic import atomic_write
from asfed.csvfile import append_row, checked_rows, read_rows, write_rows
from asfed.errors import AsfedError

DIAGNOSTICS = "diagnostics.csv"
KEEP = 2


class AgentStore:
    """One agent's private folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def checkpoint_path(self, round_: int) -> Path:
        return self.path / f"checkpoint-{round_}.pt"

    def save_checkpoint(self, round_: int, state: dict[str, Any]) -> None:
        """Write the state reached after `round_` rounds; keep only the latest KEEP."""
        self.path.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write(self.checkpoint_path(round_), buf.getvalue())
        for old in sorted(self._rounds())[:-KEEP]:
            self.checkpoint_path(old).unlink(missing_ok=True)

    def load_checkpoint(self, round_: int) -> dict[str, Any]:
        """The state after `round_` rounds; a clear error if it is missing or unreadable."""
        p = self.checkpoint_path(round_)
        if not p.exists():
            have = sorted(self._rounds())
            raise AsfedError(f"{self.path} has no checkpoint for round {round_} (has: {have})")
        try:
            return torch.load(p, map_location="cpu", weights_only=True)
        except Exception as err:  # any failure to unpickle means an unusable file
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise AsfedError(f"cannot read agent checkpoint {p}: {first}") from None

    def _rounds(self) -> list[int]:
        out = []
        for p in self.path.glob("checkpoint-*.pt"):
            tail = p.stem.removeprefix("checkpoint-")
            if tail.isdigit():
                out.append(int(tail))
        return out

    def append_diagnostics(self, row: dict[str, float]) -> None:
        """Append one round's statistics (flushed and fsynced)."""
        self.path.mkdir(parents=True, exist_ok=True)
        p = self.path / DIAGNOSTICS
        append_row(p, row, header=not p.exists() or p.stat().st_size == 0)

    def read_diagnostics(self) -> list[dict[str, str]]:
        return read_rows(self.path / DIAGNOSTICS)

    def truncate_diagnostics(self, below_round: int) -> None:
        """Drop rows of rounds >= `below_round` (resuming from a checkpoint there). A damaged row
        before that round is refused (only a tail written after the checkpoint is cut)."""
        path = self.path / DIAGNOSTICS
        if not path.exists():
            return
        rows, damaged = checked_rows(path, every_round=False)
        kept = [r for r in rows if int(r["round"]) < below_round]
        intact = not rows or int(rows[-1]["round"]) >= below_round - 1
        if damaged and below_round > 0 and not intact:
            raise AsfedError(
                f"{path} is damaged before round {below_round} (row {len(rows) + 1} is cut or "
                "out of order); restore it from a copy or start the run again"
            )
        write_rows(path, kept)
