"""Run folders: everything a run needs to be understood, reproduced and resumed.

    config.toml            the resolved configuration (seed included)
    versions.json          python, platform and package versions, asfed's source digest, and
                           each resume by other source (`RunFolder.note_resume`)
    metrics.csv            one row per completed round
    messages.bin/.idx.npy  the message log (see `asfed.comm.log`)
    public/round_<r>.npz   each logged round's public record: states and joint actions, aligned
                           row for row with the payloads (see `asfed.comm.record`)
    ground_truth/          the private seed, the private reward parameters and weights, and
                           each logged round's rewards and features: read by scoring only,
                           never by an attack (see `asfed.dealer`)
    checkpoint.pt          the world's latest checkpoint (round, generators, env episode count)
    agents/agent_<i>/      agent i's private storage: its secret (`secret.json`: its reward
                           weights and DP noise seed), checkpoints and diagnostics
                           (`asfed.agents.storage`; the world never reads it)
    learning_curve.png     team and per-agent returns, and bytes sent, by round
    diverged.json          only if its training diverged: after how many rounds, and the error
                           (a result: `asfed.experiments.runner` does not train it again)

Files are written atomically (temporary file, then rename), so an interrupted run leaves the last
complete checkpoint; on resume, metrics and messages past that checkpoint are dropped and the run
continues from it (each agent from its own checkpoint of the same round), giving the same numbers
as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from asfed.atomic import atomic_write
from asfed.comm.log import MessageLogWriter
from asfed.config import RunConfig, check_types, read_toml, to_toml
from asfed.csvfile import append_row, read_rows, write_rows
from asfed.errors import AsfedError
from asfed.folders import FolderLock, make_folder

CONFIG, VERSIONS, METRICS, CHECKPOINT, CURVE, AGENTS = (
    "config.toml",
    "versions.json",
    "metrics.csv",
    "checkpoint.pt",
    "learning_curve.png",
    "agents",
)
# A run's final team return: the mean of its last 10 rounds (the report, the trade-off and
# `asfed simulate`'s last line all use it).
FINAL_WINDOW = 10
DIVERGED = "diverged.json"
"""In a run folder: the run's training diverged, `{"rounds": finished rounds, "error": ...}`."""


def diverged(path: Path) -> dict[str, Any] | None:
    """Where a run diverged (`DIVERGED`), None if it did not; a damaged file is refused."""
    file = Path(path) / DIVERGED
    if not file.exists():
        return None
    try:
        record = json.loads(file.read_text())
        if not isinstance(record, dict) or set(record) != {"rounds", "error"}:
            raise ValueError("not {rounds, error}")
        if not isinstance(record["rounds"], int) or not isinstance(record["error"], str):
            raise ValueError("rounds is not an integer or error not a string")
    except (OSError, ValueError) as err:
        raise AsfedError(
            f"cannot read {file}: {err}; delete the run folder to train it again"
        ) from None
    return record


PACKAGES = ("asfed", "numpy", "scipy", "torch", "flwr", "opacus", "pettingzoo", "gymnasium")


def unreadable(err: Exception) -> str:
    """Why a file could not be loaded, in a few words (never an empty reason)."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if not text or isinstance(err, (IndexError, KeyError, EOFError)):
        return f"not a readable checkpoint ({type(err).__name__}{': ' + text if text else ''})"
    return text


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    out["asfed_source"] = source_digest()
    return out


def _digest() -> str:
    """A digest of this asfed's Python source (every module's path and bytes), 16 hex digits;
    "unknown" where the source cannot be read (no .py files: a sourceless install)."""
    root = Path(__file__).parent
    digest = hashlib.sha256()
    files = sorted(root.rglob("*.py"))
    try:
        for file in files:
            digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
    except OSError:
        return "unknown"
    return digest.hexdigest()[:16] if files else "unknown"


_SOURCE = _digest()  # at import, as close as the disk gets to the code this process runs


def source_digest() -> str:
    """Which asfed source this process runs: equal digests ran the same code. The version
    number does not change between commits, and a git commit misses uncommitted edits and
    does not exist in an installed copy. Read when asfed.runs is imported: a checkout changed
    on disk afterwards is not this process's code. Only this machine's source: in a Flower
    deployment the agents' machines are not covered."""
    return _SOURCE


class RunFolder:
    """A run's folder on disk."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = FolderLock(self.path, "run")

    def lock(self) -> None:
        """Become the folder's one writer (an OS lock, released by `unlock` or by the end of
        this process); a clear error naming the holder if another process writes it."""
        self._lock.acquire()

    def unlock(self) -> None:
        self._lock.release()

    @classmethod
    def create(
        cls,
        path: Path,
        cfg: RunConfig,
        execution: dict[str, Any] | None = None,
        first: Callable[[RunFolder], None] | None = None,
    ) -> RunFolder:
        """A new run folder, locked; refuses to overwrite an existing run. `execution` (workers,
        device: how the run computed, not what it is) goes into versions.json. `first(run)`
        writes what must exist before the run does (its secrets): config.toml, which makes the
        folder a run, is written after it, so a kill in between leaves no run that lacks them."""
        path = Path(path)
        if (path / CONFIG).exists():
            raise AsfedError(
                f"{path} already holds a run; continue it with --resume {path} "
                "or choose another --out"
            )
        make_folder(path, "--out")
        run = cls(path)
        run.lock()
        if (path / CONFIG).exists():  # another writer created it while we waited
            run.unlock()
            raise AsfedError(f"{path} already holds a run; choose another --out")
        if first is not None:
            first(run)
        info = {**versions(), **(execution or {})}
        atomic_write(path / VERSIONS, json.dumps(info, indent=2).encode())
        run.write_config(cfg)  # last: it makes the folder a run
        return run

    def note_resume(self, round_: int) -> str | None:
        """Record in versions.json a resume at `round_` by other asfed source than the run's
        last sitting ran (`source_digest`; a run from before digests, or without versions.json,
        counts as other), and say so; None when the source is the same, or when nothing was
        trained yet (round 0: the run starts over, so its source is simply this one). A resumed
        run's later rounds may differ from a straight run's (a change of arithmetic changes the
        last bits), so its folder says which rounds which code trained. A damaged versions.json
        is refused."""
        path = self.path / VERSIONS
        now = source_digest()
        try:
            info = json.loads(path.read_text()) if path.exists() else {}
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
            resumed = info.get("resumed", [])
            if not isinstance(resumed, list) or not all(isinstance(r, dict) for r in resumed):
                raise ValueError("its resumed entry is not a list of objects")
        except (OSError, ValueError) as err:
            raise AsfedError(f"cannot read {path}: {err}; it records how the run was made") from err
        if round_ == 0:
            if info.get("asfed_source") != now or resumed:
                fresh = {**versions(), **info, "asfed_source": now}
                fresh.pop("resumed", None)
                atomic_write(path, json.dumps(fresh, indent=2).encode())
            return None
        before = [info, *resumed][-1].get("asfed_source")
        if before == now:
            return None
        info["resumed"] = [*resumed, {"round": round_, "asfed_source": now}]
        atomic_write(path, json.dumps(info, indent=2).encode())
        return (
            f"{self.path}: rounds before {round_} were trained by other asfed source "
            f"({before or 'not recorded'}) than resumes it ({now}); later rounds may differ from "
            "a straight run's in the last bits (recorded in versions.json)"
        )

    def write_config(self, cfg: RunConfig) -> None:
        """Record the run's configuration, every paper default written out."""
        atomic_write(self.path / CONFIG, to_toml(cfg.resolved().to_dict()).encode())

    @classmethod
    def open(cls, path: Path) -> tuple[RunFolder, RunConfig]:
        """An existing run folder and its configuration (a clear error if either is unusable)."""
        path = Path(path)
        if not (path / CONFIG).exists():
            raise AsfedError(f"{path} is not a run folder (no {CONFIG})")
        values = read_toml(path / CONFIG)
        check_types(values, str(path / CONFIG))
        return cls(path), RunConfig(**values)

    # ---- metrics ----------------------------------------------------------------------------

    def read_metrics(self) -> list[dict[str, str]]:
        return read_rows(self.path / METRICS)

    def append_metrics(self, row: dict[str, Any], header: bool) -> None:
        """Append one round's row (durably: flushed and fsynced), with the header if first."""
        append_row(self.path / METRICS, row, header)

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Replace metrics.csv with `rows` (atomically)."""
        write_rows(self.path / METRICS, rows)

    # ---- checkpoints and the message log ----------------------------------------------------

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write(self.path / CHECKPOINT, buf.getvalue())

    def load_checkpoint(self) -> dict[str, Any] | None:
        p = self.path / CHECKPOINT
        if not p.exists():
            return None
        if p.stat().st_size == 0:
            raise AsfedError(f"cannot read checkpoint {p}: the file is empty")
        try:
            state = torch.load(p, weights_only=True)  # tensors and plain data only: no code
        except Exception as err:  # any failure to unpickle means an unusable file
            raise AsfedError(f"cannot read checkpoint {p}: {unreadable(err)}") from None
        if not isinstance(state, dict) or not isinstance(state.get("round"), int):
            raise AsfedError(f"cannot read checkpoint {p}: not an asfed checkpoint")
        return state

    @property
    def agent_root(self) -> Path:
        """Where each agent's private folder lives (on one machine)."""
        return self.path / AGENTS

    def message_log(self, every: int, keep_below: int) -> MessageLogWriter:
        """The log writer, with anything from rounds >= `keep_below` dropped first."""
        return MessageLogWriter(self.path, every=every, keep_below=keep_below)
