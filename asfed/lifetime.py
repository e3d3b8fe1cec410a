"""Children die with their parent, so a `kill -9` of a sweep, a trade-off or a run leaves no
orphan training behind.

Our own workers ask the kernel to kill them when their parent goes: Linux's
`prctl(PR_SET_PDEATHSIG, SIGKILL)`, called in the child (a pool's initializer, a worker's first
line). Processes we do not start ourselves (Ray's, under Flower's simulation engine or a Ray
sweep) are cleaned up by a watchdog (`guard_descendants`). Elsewhere than Linux both do nothing,
and the parent's own shutdown paths still stop what they started.
"""

from __future__ import annotations

import contextlib
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


# ---- a watchdog for process trees that do not die with their parent -------------------------
#
# Ray's service processes (its dashboard and runtime-env agents) outlive a driver killed with
# `kill -9`. `guard_descendants` starts a small watchdog in its own session that notes this
# process's descendants twice a second and, once this process is gone, kills the ones it noted
# (each checked by its start time, so a recycled PID is never hit).


def _table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time) for every process, from /proc."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(entry)] = (int(fields[1]), int(fields[19]))
        except (OSError, IndexError, ValueError):
            continue
    return out


def _descendants(root: int, table: dict[int, tuple[int, int]]) -> dict[int, int]:
    """The descendants of `root`: pid -> start time."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    out, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        out[pid] = table[pid][1]
        todo += children.get(pid, [])
    return out


def watch(parent: int, interval: float = 0.5) -> None:
    """The watchdog's loop (see above); returns once it has cleaned up after `parent`."""
    import time

    table = _table()
    if parent not in table:
        return
    born = table[parent][1]
    noted: dict[int, int] = {}
    while True:
        table = _table()
        if table.get(parent, (0, -1))[1] != born:
            break
        noted.update(_descendants(parent, table))
        noted.pop(os.getpid(), None)
        time.sleep(interval)
    table = _table()
    for pid, start in noted.items():
        if pid in table and table[pid][1] == start:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def guard_descendants() -> None:
    """Start the watchdog for this process (Linux only; elsewhere nothing)."""
    if not sys.platform.startswith("linux"):
        return
    import subprocess

    from asfed.interpreters import module_argv

    subprocess.Popen(
        module_argv("asfed.lifetime", str(os.getpid())),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


if __name__ == "__main__":  # the watchdog, started by guard_descendants
    watch(int(sys.argv[1]))
