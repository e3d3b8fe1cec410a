"""glibc's allocator told to keep freed memory for reuse instead of handing it back to the OS.

A round allocates and frees the same large buffers thousands of times: the update's forward
passes over a round's rows (9,600 x 128 activations, 4.9 MB, on navigation), their gradients,
GAE's arrays. glibc serves such blocks with fresh `mmap`s, or from a heap top it trims back to
the OS on `free`, so every one is page-faulted in again, zeroed by the kernel, before torch
writes it. Measured on the 2-core machine, one thread, a forward pass of navigation's 128-64
actor over 9,600 rows, fresh processes alternating: 8.6-14.1 ms with glibc's defaults against
4.0-5.4 ms kept (x2.5); of cleanup's 1024-256 network, 191-213 against 150-154 ms (x1.3). This
is what PyTorch's CPU tuning guide does with jemalloc or TCMalloc; mallopt gets it without a
preloaded library. It moves no arithmetic: torch aligns every buffer to 64 bytes either way.

The cost is memory: a process keeps its peak heap until it exits (and at most `_PAD` more).
"""

from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_TOP_PAD = -2
_M_MMAP_MAX = -4
_PAD = 64 << 20
"""Heap grown 64 MiB at a time, so a round's buffers come from a few `brk` calls."""

OFF = "ASFED_GLIBC_MALLOC"
"""Set this environment variable to 1 to leave glibc's defaults (for the benchmark's
ablation; a process's children inherit it)."""


def keep_freed_memory() -> bool:
    """Never `mmap` a block, never trim the heap, grow it `_PAD` at a time: freed buffers are
    reused without new page faults. Returns whether it took effect (False off glibc, e.g. on
    macOS or musl, or where `OFF` is set)."""
    if os.environ.get(OFF) == "1":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, _PAD))
    return all(mallopt(param, value) == 1 for param, value in settings)
