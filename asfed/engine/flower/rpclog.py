"""Every request a deployment process makes to a Flower API, one line each: where a round trip goes.

Why it exists. A round trip on the deployment engine is a chain of small HTTPS requests (the
ServerApp to the SuperLink, each SuperNode to the SuperLink, each ClientApp worker to its
SuperNode), and its cost is their number times their latency, not any one wait. With
`ASFED_RPC_LOG=FOLDER` in its environment, each asfed process on the path (the ServerApp, the
SuperNode launcher `python -m asfed.engine.flower.supernode`, the worker) appends one line per
request to `FOLDER/<role>-<pid>.tsv`: the API method, and its start and end (Unix seconds).
Unset, nothing is installed and nothing is written. `benchmarks/engine_overhead.py --rpc-log`
sums them per round trip.

It wraps flwr 1.42's `ProtobufClient._unary_unary`, the one call every Runtime and Fleet API
request of these processes goes through (asfed pins flwr < 1.43).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV = "ASFED_RPC_LOG"
_installed: list[str] = []


def install(role: str) -> Path | None:
    """Log this process's requests where `ASFED_RPC_LOG` says; returns the file (None: unset).
    Once per process; a second call keeps the first role."""
    folder = os.environ.get(ENV)
    if not folder or _installed:
        return None
    from flwr.supercore.protobuf.client import ProtobufClient

    path = Path(folder) / f"{role}-{os.getpid()}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    sink = open(path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)
    lock = threading.Lock()
    call = ProtobufClient._unary_unary

    def logged(self: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            return call(self, **kwargs)
        finally:
            line = f"{kwargs['rpc_method']}\t{start:.6f}\t{time.time():.6f}\n"
            with lock:
                sink.write(line)

    ProtobufClient._unary_unary = logged  # type: ignore[method-assign]
    _installed.append(role)
    return path


@dataclass(frozen=True)
class MethodStats:
    """One role's requests to one API method: how many, and their median latency."""

    role: str
    method: str
    calls: int
    median_s: float


def summarise(folder: Path) -> list[MethodStats]:
    """Per role (the file name before its pid) and method, sorted by role, then most calls.
    Several processes of a role (three SuperNodes) are pooled."""
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    for path in sorted(Path(folder).glob("*.tsv")):
        role = path.stem.rsplit("-", 1)[0]
        for line in path.read_text().splitlines():
            method, start, end = line.split("\t")
            seconds[(role, method)].append(float(end) - float(start))
    stats = [
        MethodStats(role, method, len(v), statistics.median(v))
        for (role, method), v in seconds.items()
    ]
    return sorted(stats, key=lambda s: (s.role, -s.calls))
