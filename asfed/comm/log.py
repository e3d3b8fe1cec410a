"""The message log on disk: a compact binary file of payloads plus an index.

`messages.bin` holds the float32 payloads back to back, each followed by its int32 row indices
where it has them; `messages.idx.npy` is a structured array with one row per message (round,
step, sender, receiver, kind, ndim, shape, nrows (-1: no rows), offset, nbytes). The
index is rewritten atomically after every round, so the log on disk always ends at a complete
round; on resume, payload bytes past the last indexed message are cut off. `every` records only
rounds divisible by it (the byte counts in the metrics still count every message). A writer
opened with `keep_below=r` first drops rounds >= r (resuming from a checkpoint taken at round r).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from asfed.atomic import atomic_write
from asfed.comm.messages import KIND_ID, KINDS, Message
from asfed.errors import AsfedError

INDEX_DTYPE = np.dtype(
    [
        ("round", "<i4"),
        ("step", "<i2"),
        ("sender", "<i2"),
        ("receiver", "<i2"),
        ("kind", "<i1"),
        ("ndim", "<i1"),
        ("shape", "<i4", (2,)),
        ("nrows", "<i4"),
        ("offset", "<i8"),
        ("nbytes", "<i8"),
    ]
)
BIN, INDEX = "messages.bin", "messages.idx.npy"


def _atomic_save(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write(path, buf.getvalue())


def check_log(folder: Path, index: np.ndarray) -> int:
    """The payload bytes `index` accounts for; a clear error if the index is not contiguous or
    `messages.bin` is shorter than it says (a damaged log is refused, never zero-filled)."""
    folder = Path(folder)
    if len(index) == 0:
        return 0
    offsets, sizes = index["offset"].astype(np.int64), index["nbytes"].astype(np.int64)
    if offsets[0] != 0 or (len(index) > 1 and np.any(offsets[1:] != offsets[:-1] + sizes[:-1])):
        raise AsfedError(f"{folder / INDEX} is damaged (its offsets are not contiguous)")
    end = int(offsets[-1] + sizes[-1])
    have = (folder / BIN).stat().st_size if (folder / BIN).exists() else 0
    if have < end:
        raise AsfedError(
            f"{folder / BIN} holds {have} bytes, its index {end}: the message log is damaged "
            "(cut or deleted); restore it from a copy or start the run again"
        )
    return end


def checked_index(folder: Path) -> np.ndarray:
    """The log's index as a resume will extend it (empty where nothing was logged), after
    `check_log`; an index missing where payloads exist is refused, never rebuilt as empty."""
    folder = Path(folder)
    if (folder / INDEX).exists():
        index = read_index(folder)
    elif (folder / BIN).exists() and (folder / BIN).stat().st_size:
        raise AsfedError(
            f"{folder / INDEX} is missing but {folder / BIN} holds payloads: the message log is "
            "damaged; restore the index from a copy or start the run again"
        )
    else:
        index = np.zeros(0, INDEX_DTYPE)
    check_log(folder, index)
    return index


class MessageLogWriter:
    """Appends rounds of messages to a run folder's log."""

    def __init__(self, folder: Path, every: int = 1, keep_below: int | None = None) -> None:
        if every < 1:
            raise ValueError(f"every={every} is invalid; accepted: an integer >= 1")
        self.folder = Path(folder)
        self.every = every
        index_path = self.folder / INDEX
        bin_path = self.folder / BIN
        self._rows: list[np.ndarray] = []
        self._index = checked_index(self.folder)
        if keep_below is not None:  # resuming: forget rounds after the checkpoint
            self._index = self._index[self._index["round"] < keep_below]
            _atomic_save(index_path, self._index)
        end = check_log(self.folder, self._index)  # only ever cuts payloads past the index
        self._bin = open(bin_path, "r+b" if bin_path.exists() else "w+b")  # noqa: SIM115
        self._bin.truncate(end)  # drop bytes of a round that never made it into the index
        self._bin.seek(end)
        self._offset = end

    def write_round(self, round_: int, messages: list[Message]) -> None:
        """Record one round's messages (if this round is sampled), then commit the index."""
        if round_ % self.every:
            return
        rows = np.zeros(len(messages), INDEX_DTYPE)
        for row, m in zip(rows, messages, strict=True):
            shape = m.payload.shape if m.payload.ndim else (1,)
            if len(shape) > 2:
                raise ValueError(f"payloads have at most 2 dims, got {shape}")
            row["round"], row["step"], row["sender"], row["receiver"] = (
                round_,
                m.step,
                m.sender,
                m.receiver,
            )
            row["kind"], row["ndim"] = KIND_ID[m.kind], len(shape)
            row["shape"][: len(shape)] = shape
            row["nrows"] = -1 if m.rows is None else len(m.rows)
            row["offset"], row["nbytes"] = self._offset, m.nbytes
            self._bin.write(m.payload.tobytes())
            if m.rows is not None:
                self._bin.write(m.rows.tobytes())
            self._offset += m.nbytes
        self._bin.flush()
        os.fsync(self._bin.fileno())
        self._index = np.concatenate([self._index, rows])
        _atomic_save(self.folder / INDEX, self._index)

    def close(self) -> None:
        self._bin.close()


def read_log(
    folder: Path,
    receiver: int | None = None,
    kind: str | None = None,
    rounds: tuple[int, int] | None = None,
) -> Iterator[Message]:
    """The recorded messages, optionally only those to `receiver`, of `kind`, in [lo, hi) rounds."""
    folder = Path(folder)
    index = read_index(folder)
    check_log(folder, index)
    keep = np.ones(len(index), bool)
    if receiver is not None:
        keep &= index["receiver"] == receiver
    if kind is not None:
        keep &= index["kind"] == KIND_ID[kind]
    if rounds is not None:
        keep &= (index["round"] >= rounds[0]) & (index["round"] < rounds[1])
    data = np.memmap(folder / BIN, np.float32, "r") if (folder / BIN).stat().st_size else None
    for row in index[keep]:
        shape = tuple(int(s) for s in row["shape"][: row["ndim"]])
        start = int(row["offset"]) // 4
        size = int(np.prod(shape))
        payload = np.array(data[start : start + size]).reshape(shape)
        nrows = int(row["nrows"])
        end = start + size + max(nrows, 0)
        rows = None if nrows < 0 else np.array(data[start + size : end]).view(np.int32)
        yield Message(
            int(row["round"]),
            int(row["step"]),
            int(row["sender"]),
            int(row["receiver"]),
            KINDS[row["kind"]],
            payload,
            rows,
        )


def read_index(folder: Path) -> np.ndarray:
    """The log's index, or a clear error for a log written before row indices were recorded."""
    path = Path(folder) / INDEX
    try:
        index = np.load(path)
    except FileNotFoundError:
        raise AsfedError(f"{path} is missing") from None
    except (ValueError, OSError, EOFError) as err:
        raise AsfedError(f"{path} is damaged ({err})") from None
    if not isinstance(index, np.ndarray):
        raise AsfedError(f"{path} is damaged (not an array)")
    if index.dtype != INDEX_DTYPE:
        raise ValueError(
            f"{Path(folder) / INDEX} was written by an older asfed (index fields "
            f"{index.dtype.names}); this version reads {INDEX_DTYPE.names}"
        )
    return index
