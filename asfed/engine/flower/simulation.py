"""`asfed simulate --engine flower`: the apps on Flower's simulation engine, in-process.

Runs `flwr.simulation.run_simulation` (Ray backend) with one virtual SuperNode per agent, one CPU
each, and the ServerApp on a thread of this process, so the CLI's progress bar follows it.
Flower's and Ray's start-up logs stay quiet unless `verbose`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from asfed.engine.flower import client_app
from asfed.lifetime import guard_descendants


def run_flower(num_agents: int, body: Callable[[Grid], Any], verbose: bool = False) -> Any:
    """Run `body(grid)` as the ServerApp of a simulated federation of `num_agents` nodes."""
    from flwr.common.logger import FLOWER_LOGGER
    from flwr.simulation import run_simulation

    result: dict[str, Any] = {}
    server = ServerApp()

    @server.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            result["value"] = body(grid)
        except BaseException as err:  # re-raised in the caller's thread below
            result["error"] = err

    level = FLOWER_LOGGER.level
    if not verbose:
        FLOWER_LOGGER.setLevel(logging.ERROR)
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    backend = {
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
        "init_args": {
            "num_cpus": min(num_agents, os.cpu_count() or 1),
            "logging_level": "info" if verbose else "error",
            "log_to_driver": verbose,
        },
    }
    guard_descendants()  # Ray's agents outlive a killed driver on their own
    try:
        with warnings.catch_warnings():
            if not verbose:
                warnings.simplefilter("ignore")
            run_simulation(
                server_app=server,
                client_app=client_app.app,
                num_supernodes=num_agents,
                backend_config=backend,
                verbose_logging=verbose,
            )
    finally:
        FLOWER_LOGGER.setLevel(level)
    if "error" in result:
        raise result["error"]
    return result.get("value")
