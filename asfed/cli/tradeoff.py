"""`asfed tradeoff`: team return and attack success against the DP epsilon."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from asfed.cli.app import app, console
from asfed.cli.common import (
    check_seeds,
    exit_if_failed,
    method_list,
    print_estimate,
    run_plan,
    workers_or_cores,
)
from asfed.cli.common import private_seed as read_private_seed
from asfed.cli.sweep import EstimateOption
from asfed.comm.dp import NOT_COVERED
from asfed.errors import AsfedError
from asfed.folders import FolderLock


@app.command()
def tradeoff(
    env: Annotated[str, typer.Option(help="The env to train on.")] = "navigation",
    methods: Annotated[
        str | None,
        typer.Option(help="Comma-separated methods (default: as,ps, or the scenario's)."),
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(
            help="Train at a named scenario's budget and cases instead (e.g. privacy-exchange, "
            "where the methods learn), crossed with --epsilons; --env/--rounds/--episodes "
            "then come from it."
        ),
    ] = None,
    epsilons: Annotated[
        str, typer.Option(help="Target epsilons over each run; inf: no noise.")
    ] = "0.5,1,2,4,8,16,inf",
    seeds: Annotated[
        int | None, typer.Option(help="Seeds 1..N per point (default 5, or the scenario's).")
    ] = None,
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
    archive: Annotated[
        Path | None,
        typer.Option(
            help="Folder of finished points' rows (one small JSON a point) kept apart from the "
            "run folders: points found there are not trained again, and every point that "
            "finishes is added, so a grid is finished over several sittings."
        ),
    ] = None,
    estimate: EstimateOption = False,
) -> None:
    """Buy privacy with noise and see the price: team return and attack success vs epsilon.

    Trains every (method, epsilon, seed) point with calibrated DP noise on every shared
    message, audits it (reward-type, the update attack and reward-inversion, the relay
    attacking every agent, beside the actions-only baseline), and writes tradeoff.csv (every
    point, with the accountant's epsilon), tradeoff.png (return and accuracy against epsilon)
    and frontier.png (team return against leakage). The empirical epsilon is a 95% lower bound
    over independent secrets (one agent a seed), so a few seeds certify little.
    Epsilon covers the messages only: the public trajectory (states, actions) is not covered.

    \b
    asfed tradeoff --env exchange --methods vs --epsilons 1,16,256,inf --seeds 3
    asfed tradeoff --scenario privacy-exchange --epsilons 16,256,4096,inf --estimate
    asfed tradeoff --scenario privacy-exchange-paper --epsilons 4096,65536,inf \\
        --archive docs/data/tradeoff_privacy-exchange-paper
    """
    from asfed.experiments import archive as archived
    from asfed.experiments import tradeoff as experiment
    from asfed.experiments.manifest import check_folder

    eps = experiment.parse_epsilons(epsilons)
    cores = workers_or_cores(workers)
    if scenario is not None:
        given = [f"--{k}" for k, v in (("rounds", rounds), ("episodes", episodes)) if v]
        if given:
            raise AsfedError(
                f"--scenario {scenario} sets the budget; not allowed with it: {', '.join(given)}"
            )
        if seeds is not None:
            check_seeds(seeds)
        names_ = method_list(methods) if methods else None
        plan = experiment.scenario_plan(scenario, eps, seeds, names_)
        env = plan.points[0].config.env
        folder = out or Path("runs") / f"tradeoff_{scenario}"
        what = f"scenario {scenario} ({len(plan.points)} runs)"
    else:
        names_ = method_list(methods or "as,ps")
        seed_list = check_seeds(seeds or 5)
        plan = experiment.plan(env, names_, eps, seed_list, rounds=rounds, episodes=episodes)
        folder = out or Path("runs") / f"tradeoff_{env}"
        what = f"{names_} x {len(seed_list)} seeds"
    kept = archived.load(archive, plan) if archive is not None else {}
    todo = dataclasses.replace(plan, points=tuple(p for p in plan.points if p.name not in kept))
    if estimate:
        if kept:
            console.print(f"{len(kept)} of {len(plan.points)} points are archived in {archive}")
        print_estimate(todo, cores)
        return
    if folder.is_dir():  # another scenario's folder is refused before anything is written
        check_folder(plan, folder)
    if archive is not None and folder.is_dir():  # what finished in an earlier sitting
        with FolderLock(folder, "sweep"):
            saved = archived.save_finished(archive, todo, folder)
        kept = archived.load(archive, plan)
        todo = dataclasses.replace(plan, points=tuple(p for p in plan.points if p.name not in kept))
        if saved:
            console.print(f"archived {len(saved)} finished point(s) in {archive}")
    console.print(
        f"trade-off on {env}: {what} x epsilon {eps}, {cores} workers -> {folder} ({NOT_COVERED})"
        + (f"; {len(kept)} point(s) from {archive}" if kept else "")
    )
    if todo.points:

        def archive_finished() -> None:  # the sweep, this process, holds the folder meanwhile
            try:
                saved = archived.save_finished(archive, todo, folder)
            except (AsfedError, OSError) as err:  # the runs go on; `finally` tries again
                console.print(f"not archived yet: {err}", highlight=False)
                return
            if saved:
                console.print(f"archived {', '.join(saved)} in {archive}", highlight=False)

        secret = read_private_seed(private_seed, None)
        try:
            done = run_plan(
                todo, folder, cores, None, secret, on_run_done=archive_finished if archive else None
            )
        finally:  # what finished in this sitting is archived even when it is stopped or fails
            if archive is not None and folder.is_dir():
                with FolderLock(folder, "sweep"):
                    archived.save_finished(archive, todo, folder)
        exit_if_failed(done)
    from asfed.engine.driver import reference_lines

    folder.mkdir(parents=True, exist_ok=True)  # every point archived: nothing trained here
    with FolderLock(folder, "sweep"):  # one writer per folder, as while the runs trained
        rows = experiment.rows_of(plan, folder, kept)
        summary = experiment.summarise(rows, plan.points[0].config.dp_delta)
        console.print(_table(env, summary))
        experiment.write_csv(folder / "tradeoff.csv", rows)
        experiment.figure(folder / "tradeoff.png", summary, env, 1e-5)
        lines = reference_lines(plan.points[0].config)
        experiment.frontier(folder / "frontier.png", summary, env, lines)
    written = ", ".join(str(folder / f) for f in ("tradeoff.csv", "tradeoff.png", "frontier.png"))
    console.print(f"wrote {written}")


def _table(env: str, summary: list[dict]) -> Table:
    table = Table(
        title=f"{env}: privacy vs performance (means over seeds, 95% CIs)",
        caption=(
            f"epsilon: {NOT_COVERED}. eps: the accountant's, the guarantee (against the relay "
            "and anyone); pair eps: the releases one neighbour received directly, not a bound; "
            "diverged: seeds whose training diverged, left out of every mean; "
            "emp. eps: a 95% lower bound over one secret a seed; update / one-step / actions: "
            "reward-type accuracy of the update attack, the one-step attack and the "
            "actions-only attacker over every seed's secrets (Clopper-Pearson); leakage: update "
            "minus actions (the difference of their 97.5% intervals); inv. leakage: inversion r "
            "minus the actions-only fit's r (t over seeds); shadow / actions: the shadow attack "
            "and the learned actions-only attacker, each seed's secrets guessed by models "
            "fitted on the point's other seeds (leave one seed out), over secrets; shadow "
            "leakage: their difference"
        ),
    )
    for col in (
        "method",
        "target",
        "eps",
        "pair eps",
        "emp. eps",
        "team return",
        "diverged",
        "update",
        "one-step",
        "actions",
        "leakage",
        "shadow / actions",
        "shadow leakage",
        "inversion r",
        "inv. leakage",
    ):
        table.add_column(col, overflow="fold")
    fmt = lambda v, ci=None: f"{v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")  # noqa: E731
    for row in summary:
        table.add_row(
            row["series"],
            f"{row['epsilon_target']:g}",
            f"{row['epsilon_accountant']:.3g}",
            f"{row['epsilon_pair']:.3g}",
            f"{row['epsilon_empirical']:.2f}",
            fmt(row["team_return"], row["team_return_ci"]),
            f"{row['diverged']} of {row['seeds']}" if row["diverged"] else "-",
            fmt(row["update_accuracy"], row["update_accuracy_ci"]),
            fmt(row["type_accuracy"]),
            fmt(row["type_baseline"]),
            fmt(row["leakage"], row["leakage_ci"]),
            f"{row['shadow_accuracy']:.2f} / {row['shadow_actions_accuracy']:.2f}",
            fmt(row["shadow_leakage"], row["shadow_leakage_ci"]),
            fmt(row["inversion_r"]),
            fmt(row["inversion_leakage"], row["inversion_leakage_ci"]),
        )
    return table
