"""`asfed tradeoff`: team return and attack success against the DP epsilon."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from asfed.cli.app import app, console
from asfed.cli.common import check_seeds, exit_if_failed, method_list, run_plan, workers_or_cores
from asfed.cli.common import private_seed as read_private_seed
from asfed.comm.dp import NOT_COVERED
from asfed.folders import FolderLock


@app.command()
def tradeoff(
    env: Annotated[str, typer.Option(help="The env to train on.")] = "navigation",
    methods: Annotated[str, typer.Option(help="Comma-separated methods.")] = "as,ps",
    epsilons: Annotated[
        str, typer.Option(help="Target epsilons over each run; inf: no noise.")
    ] = "0.5,1,2,4,8,16,inf",
    seeds: Annotated[int, typer.Option(help="Seeds 1..N per point.")] = 5,
    rounds: Annotated[int | None, typer.Option(help="Rounds per run (default 30).")] = None,
    episodes: Annotated[int | None, typer.Option(help="Episodes a round (default 8).")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (default: every core).")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder of the sweep (finished points are reused).")
    ] = None,
    private_seed: Annotated[
        str | None,
        typer.Option(
            help="Seed of every new run's secrets (each run's own is derived from it by name); "
            "default: fresh entropy per run. Kept in <out>/ground_truth/."
        ),
    ] = None,
) -> None:
    """Buy privacy with noise and see the price: team return and attack success vs epsilon.

    Trains every (method, epsilon, seed) point with calibrated DP noise on every shared
    message, audits it (reward-type and reward-inversion, the relay attacking every agent, beside
    the actions-only baseline), and writes tradeoff.csv (every point, with the accountant's
    epsilon) and tradeoff.png. The empirical epsilon is a 95% lower bound over independent
    secrets (one agent a seed), so a few seeds certify little.
    Epsilon covers the messages only: the public trajectory (states, actions) is not covered.
    """
    from asfed.experiments import tradeoff as experiment

    eps = experiment.parse_epsilons(epsilons)
    names_ = method_list(methods)
    seed_list = check_seeds(seeds)
    cores = workers_or_cores(workers)
    plan = experiment.plan(env, names_, eps, seed_list, rounds=rounds, episodes=episodes)
    folder = out or Path("runs") / f"tradeoff_{env}"
    console.print(
        f"trade-off on {env}: {names_} x epsilon {eps} x {seeds} seeds, {cores} "
        f"workers -> {folder} ({NOT_COVERED})"
    )
    exit_if_failed(run_plan(plan, folder, cores, None, read_private_seed(private_seed, None)))
    with FolderLock(folder, "sweep"):  # one writer per folder, as while the runs trained
        rows = experiment.rows_of(plan, folder)
        summary = experiment.summarise(rows, plan.points[0].config.dp_delta)
        console.print(_table(env, summary))
        experiment.write_csv(folder / "tradeoff.csv", rows)
        experiment.figure(folder / "tradeoff.png", summary, env, 1e-5)
    console.print(f"wrote {folder / 'tradeoff.csv'} and {folder / 'tradeoff.png'}")


def _table(env: str, summary: list[dict]) -> Table:
    table = Table(
        title=f"{env}: privacy vs performance (means over seeds, 95% CIs)",
        caption=(
            f"epsilon: {NOT_COVERED}. eps: the accountant's, the guarantee (against the relay "
            "and anyone); pair eps: the releases one neighbour received directly, not a bound; "
            "emp. eps: a 95% lower bound over one secret a seed; type acc.: over every seed's "
            "secrets (Clopper-Pearson)"
        ),
    )
    for col in (
        "method",
        "target",
        "eps",
        "pair eps",
        "emp. eps",
        "team return",
        "type acc.",
        "actions",
        "inversion r",
    ):
        table.add_column(col, overflow="fold")
    fmt = lambda v, ci=None: f"{v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")  # noqa: E731
    for row in summary:
        table.add_row(
            row["method"],
            f"{row['epsilon_target']:g}",
            f"{row['epsilon_accountant']:.3g}",
            f"{row['epsilon_pair']:.3g}",
            f"{row['epsilon_empirical']:.2f}",
            fmt(row["team_return"], row["team_return_ci"]),
            fmt(row["type_accuracy"], row["type_accuracy_ci"]),
            fmt(row["type_baseline"]),
            fmt(row["inversion_r"]),
        )
    return table
