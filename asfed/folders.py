"""The folders asfed writes: created with one clear error, and one writer per folder.

A run folder, and a sweep folder, is locked by the process that writes it (`flock` on
`<folder>/.lock`, which records the holder's PID for the error message). A second writer gets one
clear line naming the holder and exits 2. The kernel drops the lock when the holder's file is
closed, so a `kill -9` leaves no stale lock behind; the file itself stays, harmless.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from asfed.errors import AsfedError

LOCK = ".lock"


class FolderLock:
    """The lock of one folder, held from `acquire` until `release` (or the process's end)."""

    def __init__(self, folder: Path, what: str = "run", wait: float = 0.0) -> None:
        """wait: seconds to wait for another holder before refusing (for locks that are held
        for a moment, as an archive's is; a run's or a sweep's is refused at once)."""
        self.folder = Path(folder)
        self.what = what
        self.wait = wait
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FolderLock:
        """Take the lock, or raise an `AsfedError` naming the process that holds it."""
        if self._fd is not None:
            return self
        path = self.folder / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise AsfedError(f"cannot lock {self.folder}: {err.strerror}") from None
        deadline = time.monotonic() + self.wait
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise AsfedError(
                f"{self.folder} is being written by {who} (one writer per {self.what} folder); "
                "wait for it to finish or stop it, then run this again"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None


def make_folder(path: Path, option: str) -> None:
    """Create `path` (and its parents), or one clear error: a file in the way, no permission."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise AsfedError(f"{option} {path}: a file is in the way of this folder") from None
    except OSError as err:
        raise AsfedError(f"{option} {path}: cannot create the folder ({err.strerror})") from None
    if not os.access(path, os.W_OK):
        raise AsfedError(f"{option} {path}: the folder is not writable")
