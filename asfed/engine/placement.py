"""Where a run computes: how many worker processes, and which torch device the learners use.

Both are execution settings, not part of a run's definition: the same seed gives the same numbers
for any worker count (byte for byte) and on a GPU the same numbers within floating-point
tolerance, so a run may be resumed with other values.
"""

from __future__ import annotations

import os

import torch

from asfed.errors import AsfedError

DEVICES = ("cpu", "cuda", "auto")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_workers(workers: int, num_agents: int) -> int:
    """The worker processes to use: at most one per agent, never more than the cores (torch
    runs one thread in each, so W workers use W cores). A clear error for a bad value."""
    cores = available_cores()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise AsfedError(f"workers={workers!r} is invalid; accepted: an integer >= 1")
    if workers > cores:
        raise AsfedError(
            f"workers={workers} is more than the {cores} cores this process may use; "
            f"accepted: 1 to {cores}"
        )
    return min(workers, num_agents)


def check_device_name(name: str) -> str:
    """A device name's spelling checked (cpu, cuda, cuda:N, auto), not whether it exists here:
    for a Ray sweep, whose runs resolve it on the nodes they land on."""
    base = name.split(":", 1)[0]
    index = name.split(":", 1)[1] if ":" in name else "0"
    if base not in DEVICES or (base != "cuda" and ":" in name) or not index.isdigit():
        raise AsfedError(f"unknown device {name!r}; accepted: cpu, cuda, cuda:N, auto")
    return name


def resolve_device(name: str) -> str:
    """A device name as torch spells it: `cpu`, `cuda[:N]`, or `auto` (cuda when torch sees a
    GPU, else cpu). Asking for cuda where there is none is an error, never a silent CPU run."""
    base = name.split(":", 1)[0]
    if base not in DEVICES or (base != "cuda" and ":" in name):
        raise AsfedError(f"unknown device {name!r}; accepted: cpu, cuda, cuda:N, auto")
    if base == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if base == "cuda":
        if not torch.cuda.is_available():
            build = torch.version.cuda or "none (a CPU-only build)"
            raise AsfedError(
                f"device {name!r} asked for, but torch {torch.__version__} finds no CUDA GPU "
                f"(its CUDA: {build}); accepted here: cpu, auto"
            )
        index = name.split(":", 1)[1] if ":" in name else "0"
        if not (index.isascii() and index.isdigit()) or int(index) >= torch.cuda.device_count():
            raise AsfedError(
                f"unknown device {name!r}; accepted: cuda:0 to cuda:{torch.cuda.device_count() - 1}"
            )
    return name
