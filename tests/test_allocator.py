"""The allocator setting: freed buffers are reused without new page faults."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from asfed import allocator

PROBE = """
import resource, torch
from asfed.allocator import keep_freed_memory
took = keep_freed_memory()
def cycle():  # a forward pass's pattern: activations allocated, written, then all freed
    held = [torch.empty(10 << 20).fill_(1.0) for _ in range(3)]  # 3 x 40 MiB
    del held
for _ in range(3):  # warm up: the heap grows once
    cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    cycle()
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(off: bool) -> tuple[bool, int]:
    env = {k: v for k, v in os.environ.items() if k != allocator.OFF}
    if off:
        env[allocator.OFF] = "1"
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    took, faults = out.stdout.split()
    return took == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_kept_memory_is_reused_without_page_faults_and_the_switch_restores_glibcs_defaults():
    took, kept = _faults(off=False)
    untouched, default = _faults(off=True)
    assert took and not untouched
    # 20 cycles of 3 x 10,240 pages: over glibc's largest mmap threshold (32 MiB), so by
    # default each is a fresh mmap faulted in again (a few pages a fault); kept, reused
    assert default >= 20 * 3 * 256, default
    assert kept < 200, (kept, default)
