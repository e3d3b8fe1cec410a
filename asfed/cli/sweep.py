"""`asfed sweep`: a scenario's grid of runs, under one sweep folder with a manifest."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from asfed.cli.app import app, console
from asfed.cli.common import (
    exit_if_failed,
    method_list,
    print_estimate,
    run_plan,
    workers_or_cores,
)
from asfed.cli.common import private_seed as read_private_seed

# The command's options, declared once here so its signature reads in a glance.
ScenarioOption = Annotated[
    str, typer.Argument(help="A named scenario (scenarios/NAME.toml) or a .toml path.")
]
SeedsOption = Annotated[
    int | None, typer.Option(help="Seeds 1..N for every point (default: the scenario's, or 5).")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="KEY=V1[,V2...]: fix a setting, or make it an axis of several values "
        "(repeatable; 'none' is the paper's default).",
    ),
]
MethodsOption = Annotated[
    str | None, typer.Option(help="Comma-separated methods (default: the scenario's).")
]
WorkersOption = Annotated[
    int | None,
    typer.Option(help="Runs at once (default: every core; 1: one by one in this process)."),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        help="Run on Ray instead: a cluster's address, 'auto' (the running cluster) or "
        "'local' (a new local instance with --workers CPUs)."
    ),
]
OutOption = Annotated[
    Path | None,
    typer.Option(help="The sweep folder (default: runs/sweep_<scenario>); rerun to continue."),
]
PrivateSeedOption = Annotated[
    str | None,
    typer.Option(
        help="Seed of every new run's secrets (each run's own is derived from it by name); "
        "default: the scenario's private_seed, else fresh entropy per run. Kept in "
        "<out>/ground_truth/, not in the manifest."
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(
        help="Where every run's learners compute: cpu, cuda, cuda:N or auto (on Ray, each run "
        "then asks its node for a GPU). Rollouts stay on the CPU."
    ),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="List the runs and stop.")]
EstimateOption = Annotated[
    bool,
    typer.Option(
        "--estimate",
        help="Time one round of each distinct setting here, print how long the sweep takes "
        "on --workers processes, and stop (trains nothing that is kept).",
    ),
]


@app.command()
def sweep(
    scenario: ScenarioOption,
    seeds: SeedsOption = None,
    set_: SetOption = None,
    methods: MethodsOption = None,
    workers: WorkersOption = None,
    ray_address: RayAddressOption = None,
    out: OutOption = None,
    private_seed: PrivateSeedOption = None,
    device: DeviceOption = "cpu",
    dry_run: DryRunOption = False,
    estimate: EstimateOption = False,
) -> None:
    """Run a scenario's grid: every method x seed x setting, each a run folder under one sweep
    folder with a manifest (sweep.json). Running it again continues it: finished runs are never
    redone, interrupted ones resume from their last checkpoint.

    \b
    asfed sweep fig2-exchange --seeds 5
    asfed sweep fig4-rho --set rounds=100 --workers 2
    asfed sweep paper-predation --set rho=0.03,0.1,0.3 --ray-address auto
    asfed sweep fig2-main --estimate      # how long it takes on this machine
    """
    from asfed.engine.placement import check_device_name, resolve_device
    from asfed.experiments.budget import settings
    from asfed.experiments.manifest import check_folder
    from asfed.experiments.plan import default_folder, load_sweep

    plan = load_sweep(scenario, method_list(methods) if methods else None, seeds, set_)
    secret_seed = read_private_seed(private_seed, scenario)
    cores = workers_or_cores(workers)
    # No GPU where cuda is asked: one line, before any output; on Ray the spelling is checked
    # here and each run resolves the device on the node it lands on.
    device = resolve_device(device) if ray_address is None else check_device_name(device)
    folder = out or default_folder(plan)
    check_folder(plan, folder)  # a refused sweep fails here, before any output
    where = f"Ray at {ray_address}" if ray_address else f"{cores} process(es)"
    console.print(
        f"sweep [bold]{plan.scenario}[/]: {len(plan.points)} runs ({len(settings(plan))} "
        f"setting(s) of {', '.join(plan.methods)} x {len(plan.seeds)} seeds) on {where} -> {folder}"
    )
    if dry_run:
        for p in plan.points:
            console.print(
                f"  {p.name}  rounds {p.config.rounds}, {p.config.num_episodes()} ep/round"
            )
        return
    if estimate:
        print_estimate(plan, cores)
        return
    began = time.perf_counter()
    done = run_plan(plan, folder, cores, ray_address, secret_seed, device)
    console.print(
        f"{len(done.trained)} run(s) trained, {len(done.reused)} reused, {len(done.failed)} "
        f"failed, {len(done.diverged)} diverged in {time.perf_counter() - began:.0f} s; "
        f"draw it: asfed report {folder}"
    )
    exit_if_failed(done)
