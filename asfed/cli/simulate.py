"""`asfed simulate`: train one method on one environment into a run folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from asfed.cli.app import app, console
from asfed.cli.common import private_seed as read_private_seed
from asfed.cli.config_options import with_config_options
from asfed.comm.dp import NOT_COVERED
from asfed.config import FIELDS, RunConfig
from asfed.errors import AsfedError
from asfed.runs import FINAL_WINDOW


def _default_out(env: str, method: str, seed: int) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}_{env}_{method}_s{seed}"


# The command's options, declared once here so its signature reads in a glance.
PrivateSeedOption = Annotated[
    str | None,
    typer.Option(
        help="Seed of the agents' secrets (private rewards, DP noise); default: fresh OS "
        "entropy. Kept only in ground_truth/ and the agents' storage, never in config.toml."
    ),
]
ScenarioOption = Annotated[
    str | None, typer.Option(help="A named scenario (scenarios/NAME.toml) or a .toml path.")
]
OutOption = Annotated[
    Path | None, typer.Option(help="Run folder (default: runs/<time>_<env>_<method>_s<seed>).")
]
ResumeOption = Annotated[
    Path | None, typer.Option(help="Continue this run folder from its last checkpoint.")
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        help="Local engine: processes the agents are spread over, updating in parallel "
        "(default: every core; same numbers for any count)."
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        help="Where the learners compute: cpu, cuda, cuda:N, or auto (cuda if there is "
        "one). Rollouts stay on the CPU."
    ),
]
VerboseOption = Annotated[bool, typer.Option(help="Show Flower's and Ray's own logs.")]
DealOnlyOption = Annotated[
    bool,
    typer.Option(
        "--deal-only",
        help="Create the run folder and deal its secrets, then stop: a deployment moves each "
        "agents/agent_<i>/secret.json to agent i's machine, then resumes the run "
        "(docs/deploy.md).",
    ),
]


@app.command()
@with_config_options
def simulate(
    private_seed: PrivateSeedOption = None,
    scenario: ScenarioOption = None,
    out: OutOption = None,
    resume: ResumeOption = None,
    workers: WorkersOption = None,
    device: DeviceOption = "cpu",
    verbose: VerboseOption = False,
    deal_only: DealOnlyOption = False,
    **flags: Any,
) -> None:
    """Train a method on an environment and write a run folder.

    The folder holds the resolved config, package versions, per-round metrics (CSV), the message
    log, checkpoints and a learning-curve PNG. Flags override a --scenario; unset choices take
    the paper's per-env defaults. Example:

        asfed simulate --env exchange --method as --rounds 300 --seed 1
    """
    from asfed.engine.loop import prepare
    from asfed.engine.placement import available_cores, check_workers, resolve_device

    cfg = _config(flags, private_seed, scenario, out, resume)
    secret_seed = read_private_seed(private_seed, None if resume is not None else scenario)
    num_agents = prepare(cfg)[1].num_agents  # every check, before an engine starts
    device = resolve_device(device)
    if workers is not None and cfg.engine != "local":
        raise AsfedError(
            f"--workers sets the local engine's processes; the {cfg.engine} engine runs one "
            "ClientApp per agent (accepted: --workers with --engine local)"
        )
    workers = check_workers(available_cores() if workers is None else workers, num_agents)
    folder = resume or out or _default_out(cfg.env, cfg.method, cfg.seed)
    if deal_only:
        _deal(cfg, folder, resume, secret_seed, num_agents)
        return
    _print_expectations(cfg)
    began = time.perf_counter()

    def run_engine(federation=None) -> list[dict]:
        return _train(cfg, folder, resume, federation, workers, device, secret_seed)

    if cfg.engine == "flower":
        from asfed.engine.flower.federation import flower_federation
        from asfed.engine.flower.simulation import run_flower

        console.print(f"starting Flower's simulation engine ({num_agents} SuperNodes)...")
        rows = run_flower(num_agents, lambda grid: run_engine(flower_federation(grid)), verbose)
    else:
        rows = run_engine()
    _print_done(rows, folder, time.perf_counter() - began)


def _config(
    flags: dict[str, Any],
    private_seed: str | None,
    scenario: str | None,
    out: Path | None,
    resume: Path | None,
) -> RunConfig:
    """The run's config: the flags over a scenario, or a resumed run's own (flags refused)."""
    from asfed.config import build_config
    from asfed.engine.driver import resume_config

    flags = {k: flags[k] for k in FIELDS}
    if resume is None:
        return build_config(scenario, **flags)
    extra = sorted(k for k, v in flags.items() if v is not None and k != "rounds")
    extra += ["private_seed"] if private_seed is not None else []
    if extra or scenario or out:
        given = ", ".join(f"--{k.replace('_', '-')}" for k in extra) or "--scenario/--out"
        raise AsfedError(f"--resume continues a run with its own config; not allowed: {given}")
    return resume_config(resume, flags["rounds"])[1]


def _deal(
    cfg: RunConfig, folder: Path, resume: Path | None, secret_seed: int | None, agents: int
) -> None:
    """--deal-only: the run folder and its secrets, no round played."""
    from asfed.engine.driver import create

    if resume is not None:
        raise AsfedError("--deal-only makes a new run folder; it cannot --resume one")
    run = create(cfg, folder, secret_seed)
    console.print(
        f"dealt {agents} agents' secrets into {run.agent_root}/agent_<i>/secret.json; "
        f"no round played (continue with: asfed simulate --resume {run.path})"
    )


# Runs long enough that a user should know the cost first: an estimate is printed above this
# many env steps (cleanup's default run is 2.9 million; the quickstart 0.19 million).
ESTIMATE_ABOVE_STEPS = 1_000_000
# What the results pages found for a method at Table 2's settings, said before such a run trains.
KNOWN = {
    ("exchange", "as"): "at Table 2's rho = 1e4, AS stays at the random policy's return on "
    "exchange (docs/results.md); the labelled setting that learns is "
    "`asfed sweep fig2-exchange-tuned` (rho = 10)",
    ("cleanup", "as"): "at Table 2's rho = 1e3, AS stayed at the random policy's return on "
    "cleanup in 50 rounds of 32 episodes, 2 seeds, while rho = 10 rose to 6.1-6.3 (random 1.1; "
    "docs/results.md); the labelled setting that learns is `--rho 10` "
    "(`asfed sweep fig2-cleanup-tuned`)",
    ("harvest", "as"): "at Table 2's rho = 0.1, AS rose from the random policy's 49 to 83 and "
    "53 in 50 rounds of 32 episodes (2 seeds), while IPPO reached 114-115 (docs/results.md)",
}


def _print_expectations(cfg: RunConfig) -> None:
    """Before a long run: its wall time here, estimated by timing one (scaled) round as
    `asfed sweep --estimate` does, and what the results found for this setting, if anything."""
    import dataclasses

    from asfed.experiments.budget import round_seconds
    from asfed.report.results import duration

    note = KNOWN.get((cfg.env, cfg.method)) if cfg.rho is None else None
    if note:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    steps = cfg.rounds * cfg.num_episodes() * cfg.env_horizon()
    if steps < ESTIMATE_ABOVE_STEPS:
        return
    with console.status("timing one round to estimate the run's wall time..."):
        seconds = round_seconds(dataclasses.replace(cfg, engine="local")) * cfg.rounds
    console.print(
        f"estimated wall time: {duration(seconds)} on one process here ({cfg.rounds} rounds of "
        f"{cfg.num_episodes()} episodes; more workers take less)"
    )


def _train(cfg, folder, resume, federation, workers, device, secret_seed) -> list[dict]:
    """Start or resume the run and train it behind a progress bar; returns metrics rows."""
    from asfed.engine.driver import random_return, start, train
    from asfed.engine.driver import resume as resume_run

    if resume is not None:
        sim, run, rows = resume_run(resume, cfg.rounds, federation, workers, device)
    else:
        sim, run, rows = start(cfg, folder, federation, workers, device, secret_seed)
    where = f", {sim.workers} workers" if cfg.engine == "local" else ""
    where += f", {sim.device}" if sim.device != "cpu" else ""
    console.print(
        f"[bold]{cfg.method}[/] on [bold]{cfg.env}[/] ({sim.num_agents} agents, "
        f"{sim.topology_name}, {sim.env.num_envs} episodes a round, seed {cfg.seed}, "
        f"{cfg.engine} engine{where}) -> {run.path}"
    )
    if sim.dp is not None:
        console.print(
            f"DP: sigma {sim.dp.sigma:.4g}, delta {sim.dp.delta:g}, epsilon per round in "
            f"metrics.csv ({NOT_COVERED})"
        )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "team return {task.fields[ret]} (random {task.fields[rand]})  "
            "degree {task.fields[deg]}{task.fields[e]}"
        ),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        rand = f"{random_return(cfg):.1f}"
        task = bar.add_task(
            "rounds", total=cfg.rounds, completed=sim.round, ret="-", deg="-", e="", rand=rand
        )

        def update(m: dict) -> None:
            ret, deg = f"{m['team_return']:.2f}", f"{m['neighbours_mean']:.2f}"
            eps = f"  epsilon {m['epsilon']:.3g} (messages only)" if "epsilon" in m else ""
            bar.update(task, advance=1, ret=ret, deg=deg, e=eps)

        try:
            return train(sim, run, rows, update)
        finally:
            sim.close()


def _print_done(rows: list[dict], folder: Path, seconds: float) -> None:
    last = [float(r["team_return"]) for r in rows[-FINAL_WINDOW:]]
    eps = ""
    if "epsilon" in rows[-1]:
        eps = f", epsilon {float(rows[-1]['epsilon']):.3g} ({NOT_COVERED})"
    console.print(
        f"done: {len(rows)} rounds, team return (mean of the last {len(last)}) "
        f"{sum(last) / max(len(last), 1):.2f}, {seconds:.0f} s{eps}; "
        f"see {Path(folder) / 'learning_curve.png'}"
    )
