"""The asfed CLI, killed (SIGKILL, as `kill -9`) at a chosen file write, for fault injection.

`ASFED_KILL_AT="NEEDLE:N:WHEN"`: at the N-th atomic rename (`os.replace`) onto a path whose name
contains NEEDLE, kill this process `before` the rename (the temporary file written, the target
untouched) or `after` it. Every asfed file but the appended CSV rows and the message log's
payloads is written that way, so this reaches every checkpoint, index and record write.
"""

from __future__ import annotations

import os
import signal

needle, count, when = os.environ["ASFED_KILL_AT"].split(":")
_left = [int(count)]
_replace = os.replace


def _dying_replace(src, dst, *args, **kwargs):
    hit = needle in os.path.basename(str(dst))
    if hit:
        _left[0] -= 1
    if hit and _left[0] == 0 and when == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    _replace(src, dst, *args, **kwargs)
    if hit and _left[0] == 0 and when == "after":
        os.kill(os.getpid(), signal.SIGKILL)


os.replace = _dying_replace

from asfed.cli import main  # noqa: E402

main()
