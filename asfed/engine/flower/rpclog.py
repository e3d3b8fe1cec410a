"""Every request a deployment process makes to a Flower API, one line each: where a round trip goes.

Why it exists. A round trip on the deployment engine is a chain of small HTTPS requests (the
ServerApp to the SuperLink, each SuperNode to the SuperLink, each ClientApp worker to its
SuperNode), and its cost is their number times their latency, not any one wait. With
`ASFED_RPC_LOG=FOLDER` in its environment, each asfed process on the path (the ServerApp, the
SuperNode launcher `python -m asfed.engine.flower.supernode`, the worker) appends one line per
request to `FOLDER/<role>-<pid>.tsv`: the API method, its start (Unix seconds) and its
duration (seconds). Unset, nothing is installed and nothing is written.
`benchmarks/engine_overhead.py --rpc-log` sums them per round trip.

It wraps flwr 1.42's `ProtobufClient._unary_unary`, the one call every Runtime and Fleet API
request of these processes goes through (asfed pins flwr < 1.43). Where Flower retries inside
that call (the SuperNode's Fleet client does), one line covers the attempts and their backoff.
"""

from __future__ import annotations

import contextlib
import functools
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
    """Log this process's requests where `ASFED_RPC_LOG` says; returns the file, or None where
    the variable is unset or this process already logs (under its first role)."""
    folder = os.environ.get(ENV)
    if not folder or _installed:
        return None
    from flwr.supercore.protobuf.client import ProtobufClient

    path = Path(folder) / f"{role}-{os.getpid()}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    sink = open(path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)
    lock = threading.Lock()
    call = ProtobufClient._unary_unary

    @functools.wraps(call)
    def logged(self: Any, **kwargs: Any) -> Any:
        start, began = time.time(), time.perf_counter()
        try:
            return call(self, **kwargs)
        finally:
            took = time.perf_counter() - began
            with lock:
                sink.write(f"{kwargs['rpc_method']}\t{start:.6f}\t{took:.6f}\n")

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


@dataclass(frozen=True)
class Request:
    """One logged request: the process's role, the API method (`/flwr.proto.Runtime/PullObject`),
    when it started (Unix seconds) and how long it took (seconds)."""

    role: str
    method: str
    start: float
    seconds: float


def read(folder: Path) -> list[Request]:
    """Every request logged under `folder`, in start order (a line cut short by a process that
    died mid-write is skipped)."""
    requests = []
    for path in sorted(Path(folder).glob("*.tsv")):
        role = path.stem.rsplit("-", 1)[0]
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                with contextlib.suppress(ValueError):
                    requests.append(Request(role, parts[0], float(parts[1]), float(parts[2])))
    return sorted(requests, key=lambda r: r.start)


def summarise(requests: list[Request]) -> list[MethodStats]:
    """Per role and method, sorted by role, then most calls; several processes of a role (three
    SuperNodes) are pooled."""
    seconds: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in requests:
        seconds[(r.role, r.method)].append(r.seconds)
    stats = [
        MethodStats(role, method, len(v), statistics.median(v))
        for (role, method), v in seconds.items()
    ]
    return sorted(stats, key=lambda s: (s.role, -s.calls))
