"""The ServerApp: the world (environment and acting) and the relay, for `flwr run .`.

Its settings come from Flower's run config (`[tool.flwr.app.config]` in pyproject.toml, or
`flwr run . --run-config 'method="vs" rounds=50'`): `run_config_to_options` is the one place
those keys are converted. `out` names the run folder; `resume` (a run folder) continues one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from asfed.config import RunConfig, check_types
from asfed.engine.driver import resume, start, train
from asfed.engine.flower.federation import flower_federation
from asfed.errors import AsfedError

app = ServerApp()


def run_config_to_options(run_config: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """Flower run config -> (RunConfig fields, out folder, resume folder). Dashes become
    underscores; an empty string means unset (TOML has no null)."""
    values = {k.replace("-", "_"): v for k, v in run_config.items()}
    out, resume_from = str(values.pop("out", "") or ""), str(values.pop("resume", "") or "")
    fields = {k: v for k, v in values.items() if v != ""}
    check_types(fields, "the Flower run config")
    if fields.get("dp_epsilon") is not None and fields.get("dp_sigma") is not None:
        raise AsfedError("give dp_epsilon or dp_sigma, not both (sigma is calibrated from epsilon)")
    return {**fields, "engine": "flower"}, out, resume_from


@app.main()
def main(grid: Grid, context: Context) -> None:
    fields, out, resume_from = run_config_to_options(dict(context.run_config))
    if resume_from:
        sim, run, rows = resume(Path(resume_from), fields.get("rounds"), flower_federation(grid))
    else:
        cfg = RunConfig(**fields)
        folder = Path(out or f"runs/flower-{context.run_id}")
        sim, run, rows = start(cfg, folder, flower_federation(grid))
    train(sim, run, rows)
