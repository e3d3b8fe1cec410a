"""The ServerApp: the world (environment and acting) and the relay, for `flwr run .`.

Its settings come from Flower's run config (`[tool.flwr.app.config]` in pyproject.toml, or
`flwr run . --run-config 'method="vs" rounds=50'`): `run_config_to_options` is the one place
those keys are converted. `out` names the run folder; `resume` (a run folder) continues one.
Three keys concern only how the world reaches its agents on a deployment (`FlowerFederation`):
`nodes` (agent i's node id, space- or comma-separated, as `flwr supernode register` printed
them), `node-wait` and `reply-timeout` (seconds).
"""

from __future__ import annotations

import statistics
from logging import INFO
from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp
from flwr.supercore import log

from asfed.config import RunConfig, check_types
from asfed.engine.driver import resume, start, train
from asfed.engine.flower import rpclog
from asfed.engine.flower.federation import (
    NODE_WAIT_S,
    REPLY_TIMEOUT_S,
    ClientFailure,
    LinkFailure,
    flower_federation,
)
from asfed.engine.flower.polling import fast_grid_pulls
from asfed.errors import AsfedError
from asfed.runs import CONFIG, RunFolder

app = ServerApp()


class DeploymentFailure(RuntimeError):
    """A run on a deployment stopped: which agent and round, and how to resume it."""


def _seconds(key: str, value: Any, default: float) -> float:
    if value in ("", None):
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise AsfedError(f"{key}={value!r} in the Flower run config should be seconds > 0")
    return float(value)


def _nodes(value: Any) -> list[int] | None:
    if value in ("", None):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    parts = str(value).replace(",", " ").split()
    if not parts or not all(p.isascii() and p.isdigit() for p in parts):
        raise AsfedError(
            f"nodes={value!r} in the Flower run config should be node ids (the numbers "
            "`flwr supernode register` printed), one per agent, in agent order"
        )
    return [int(p) for p in parts]


DEPLOYMENT_KEYS = ("nodes", "node_wait", "reply_timeout")  # FlowerFederation's, not RunConfig's


def run_config_to_options(run_config: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """Flower run config -> (RunConfig fields, out folder, resume folder). Dashes become
    underscores; an empty string means unset (TOML has no null). There is no private seed key:
    Flower hands the run config to every ClientApp, so a seed there would give each agent every
    other agent's secrets; a reproducible deployment deals first (`asfed simulate --deal-only
    --private-seed N`) and resumes."""
    values = {k.replace("-", "_"): v for k, v in run_config.items()}
    if "private_seed" in values:
        raise AsfedError(
            "private-seed cannot be a Flower run-config key (every ClientApp receives the run "
            "config); deal the run first with asfed simulate --deal-only --private-seed N, then "
            "resume it"
        )
    out, resume_from = str(values.pop("out", "") or ""), str(values.pop("resume", "") or "")
    fields = {k: v for k, v in values.items() if v != "" and k not in DEPLOYMENT_KEYS}
    check_types(fields, "the Flower run config")
    if fields.get("dp_epsilon") is not None and fields.get("dp_sigma") is not None:
        raise AsfedError("give dp_epsilon or dp_sigma, not both (sigma is calibrated from epsilon)")
    return {**fields, "engine": "flower"}, out, resume_from


def federation_options(run_config: dict[str, Any]) -> dict[str, Any]:
    """Flower run config -> `FlowerFederation`'s nodes, node_wait and reply_timeout."""
    values = {k.replace("-", "_"): v for k, v in run_config.items()}
    return {
        "nodes": _nodes(values.get("nodes", "")),
        "node_wait": _seconds("node-wait", values.get("node_wait", ""), NODE_WAIT_S),
        "reply_timeout": _seconds(
            "reply-timeout", values.get("reply_timeout", ""), REPLY_TIMEOUT_S
        ),
    }


def trip_summary(trips: list[tuple[str, float]]) -> str:
    """One line on where a run's round trips went (kind: count, median seconds)."""
    kinds: dict[str, list[float]] = {}
    for kind, seconds in trips:
        kinds.setdefault(kind, []).append(seconds)
    parts = [f"{k} {len(v)} x {statistics.median(v):.3f} s" for k, v in kinds.items()]
    return f"round trips (median wall seconds, client compute included): {', '.join(parts)}"


@app.main()
def main(grid: Grid, context: Context) -> None:
    fast_grid_pulls()  # a reply's objects are fetched in ms, not after Flower's 1 s backoff
    rpclog.install("serverapp")  # only where ASFED_RPC_LOG is set
    fields, out, resume_from = run_config_to_options(dict(context.run_config))
    factory = flower_federation(grid, pack=True, **federation_options(dict(context.run_config)))
    folder = Path(resume_from or out or f"runs/flower-{context.run_id}")
    try:
        if resume_from:
            sim, run, rows = resume(folder, fields.get("rounds"), factory)
        else:
            sim, run, rows = start(RunConfig(**fields), folder, factory)
    except (ClientFailure, LinkFailure) as err:
        raise DeploymentFailure(f"{err}{_how_to_resume(folder, None)}") from None
    try:
        train(sim, run, rows)
    except (ClientFailure, LinkFailure) as err:
        raise DeploymentFailure(f"{err}{_how_to_resume(run.path, len(rows))}") from None
    finally:
        log(INFO, trip_summary(sim.federation.trips))


def _how_to_resume(folder: Path, completed: int | None) -> str:
    """What the run folder keeps and the command that continues it (Flower logs the exception
    and marks the run failed with its text: one error naming the agent and the round)."""
    run = RunFolder(folder)
    if not (folder / CONFIG).exists():
        return ""
    state = run.load_checkpoint()
    kept = "" if completed is None else f" keeps the {completed} completed round(s);"
    return (
        f". {folder}{kept} once the node (or the SuperLink) is back, continue from its last "
        f"checkpoint (taken after {state['round'] if state else 0} round(s)) with: "
        f"flwr run . <federation> --run-config 'resume=\"{folder}\"'"
    )
