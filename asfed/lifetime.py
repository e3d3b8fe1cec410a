"""Children die with their parent: a worker process asks the kernel to kill it when its parent
goes, so a `kill -9` of a sweep, a trade-off or a multi-worker run leaves no orphan training.

Linux's `prctl(PR_SET_PDEATHSIG, SIGKILL)`, called in the child (a pool's initializer, a worker's
first line). Elsewhere it does nothing, and the parent's own shutdown paths still stop the pool.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent exits. `parent`: the PID the parent
    had when it started us; if it is already gone, exit now (the race before prctl)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:
        os._exit(1)
