"""`asfed audit`: what the shared messages leak about each agent's private reward."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from asfed.cli.app import app, console
from asfed.cli.common import (
    check_seeds,
    exit_if_failed,
    method_list,
    print_estimate,
    progress_columns,
    run_plan,
    workers_or_cores,
)
from asfed.cli.common import private_seed as read_private_seed
from asfed.errors import AsfedError
from asfed.runs import DIVERGED, diverged
from asfed.threads import one_thread

# The command's options, declared once here so its signature reads in a glance.
RunsOption = Annotated[
    list[Path] | None,
    typer.Argument(help="Run folders to audit (several seeds are pooled with CIs)."),
]
AttackOption = Annotated[
    str,
    typer.Option(
        help="reward-type (one-step estimator), update (how the shares change), shadow (learned "
        "from --shadows), reward-inversion, or all (shadow included when shadows are given)."
    ),
]
ShadowsOption = Annotated[
    Path | None,
    typer.Option(
        help="A folder of shadow runs (its run subfolders): the targets' config with other seeds "
        "and secrets, for the learned shadow attack. Their features are cached in each shadow."
    ),
]
ShadowSeedsOption = Annotated[
    int,
    typer.Option(
        help="Train mode: also train N shadow runs per method (seeds 1001..1000+N, fresh "
        "secrets) into <out>/shadows and run the shadow attack with them."
    ),
]
AttackerOption = Annotated[
    str, typer.Option(help="relay (sees every message) or agent:K (a curious neighbour K).")
]
VictimOption = Annotated[
    int | None, typer.Option(help="The agent attacked (default: every agent but the attacker).")
]
EnvOption = Annotated[str | None, typer.Option(help="Train-then-audit mode: the env to train on.")]
ScenarioOption = Annotated[
    str | None,
    typer.Option(
        help="Train-then-audit mode: train a scenario's sweep (its settings, cases and seeds) "
        "and audit every run of it, e.g. privacy-exchange."
    ),
]
MethodsOption = Annotated[
    str | None,
    typer.Option(
        help="Train mode: comma-separated methods (default as,vs,vps,ps,ippo; with --scenario: "
        "its cases of these methods, default all of them)."
    ),
]
SeedsOption = Annotated[int, typer.Option(help="Train mode: seeds 1..N per method.")]
RoundsOption = Annotated[int | None, typer.Option(help="Train mode: rounds (default 30).")]
EpisodesOption = Annotated[
    int | None, typer.Option(help="Train mode: episodes a round (default 8).")
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        help="Runs trained at once (train modes), and runs attacked at once (a run's victims "
        "share one process and its features): the numbers do not depend on it (default: "
        "every core)."
    ),
]
OutOption = Annotated[
    Path | None, typer.Option(help="Train mode: the folder of runs (finished ones reused).")
]
PrivateSeedOption = Annotated[
    str | None,
    typer.Option(
        help="Train mode: seed of every new run's secrets (each run's own is derived from "
        "it by name); default: fresh entropy per run. Kept in <out>/ground_truth/."
    ),
]
DpCheckOption = Annotated[
    bool,
    typer.Option(
        "--dp-check",
        help="Instead of attacking: audit each DP run's noise mechanism itself (worst-case "
        "canaries, the optimal test, 20,000 fresh releases a hypothesis) and print the "
        "accountant's epsilon beside the empirical lower bound.",
    ),
]
EstimateOption = Annotated[
    bool,
    typer.Option(
        "--estimate",
        help="Train modes: time one round of each setting here, print what training the "
        "targets and shadows costs, and stop.",
    ),
]
MarkdownOption = Annotated[
    bool, typer.Option("--markdown", help="Also print the table as Markdown.")
]


@app.command()
def audit(
    runs: RunsOption = None,
    attack: AttackOption = "reward-type",
    attacker: AttackerOption = "relay",
    victim: VictimOption = None,
    env: EnvOption = None,
    scenario: ScenarioOption = None,
    methods: MethodsOption = None,
    seeds: SeedsOption = 5,
    rounds: RoundsOption = None,
    episodes: EpisodesOption = None,
    workers: WorkersOption = None,
    out: OutOption = None,
    private_seed: PrivateSeedOption = None,
    shadows: ShadowsOption = None,
    shadow_seeds: ShadowSeedsOption = 0,
    markdown: MarkdownOption = False,
    dp_check: DpCheckOption = False,
    estimate: EstimateOption = False,
    archive: Annotated[
        Path | None,
        typer.Option(
            help="Train modes: folder of finished targets' scored victims (one small JSON a "
            "run) kept apart from the run folders: targets found there are neither trained nor "
            "attacked again, and each target scored is added, so an audit longer than a "
            "sitting is finished over several."
        ),
    ] = None,
) -> None:
    """Measure what the shared messages leak about each agent's private reward.

    Every attack sees only what the attacker received plus the public record (states and joint
    actions); scoring alone reads ground truth. Each score comes with chance and the actions-only
    attacker of the same class (the same question from the public actions alone): leakage =
    score - baseline. A trial is a secret (one agent of one run): accuracies and their leakage
    carry Clopper-Pearson intervals over secrets (the leakage: the difference of the two 97.5%
    intervals), correlations and their leakage t intervals over runs. Writes audit/ (JSON,
    CSV, PNG with ROC curves) into each run folder it attacked and, with --env or --scenario,
    pooled over every target (archived ones included) into the --out folder.

    \b
    asfed audit runs/nav_as_s1 runs/nav_as_s2 --attack all
    asfed audit runs/ex_as_s* --attack shadow --shadows runs/ex_as_shadows
    asfed audit --env exchange --methods as,vs --seeds 5 --shadow-seeds 5 --attack all
    asfed audit --scenario privacy-navigation-paper --shadow-seeds 2 --attack all \\
        --archive docs/data/audit_privacy-navigation-paper
    """
    from audits.audit import QUESTIONS, audit_runs, pool
    from audits.audit_files import markdown as to_markdown
    from audits.audit_files import table as render
    from audits.audit_files import write

    one_thread()  # the attacks' numpy is single-threaded per process (asfed.threads)
    if dp_check:
        _dp_check(runs or [])
        return
    if attack != "all" and attack not in QUESTIONS:
        raise AsfedError(f"unknown attack {attack!r}; accepted: all, {', '.join(QUESTIONS)}")
    if shadow_seeds < 0:
        raise AsfedError(f"--shadow-seeds {shadow_seeds} is invalid; accepted: 0 or more")
    kept: dict[str, list[dict]] = {}
    plan = folder = None
    if env is not None or scenario is not None:
        if runs or (env is not None and scenario is not None):
            raise AsfedError("give run folders, --env or --scenario (train modes), one of them")
        if shadows is not None:
            raise AsfedError("train mode trains its shadows: give --shadow-seeds, not --shadows")
        plan = _plan(env, scenario, methods, seeds, rounds, episodes)
        wanted = [q for q in QUESTIONS if q != "shadow" or shadow_seeds]
        wanted = wanted if attack == "all" else [attack]
        todo = plan
        if archive is not None:
            from asfed.experiments import archive as archived

            if victim is not None:
                raise AsfedError(
                    "--archive keeps every victim of a target; --victim would archive one"
                )

            kept = archived.load_audit(archive, plan, wanted, attacker)
            todo = dataclasses.replace(
                plan, points=tuple(p for p in plan.points if p.name not in kept)
            )
        if estimate:
            if kept:
                console.print(f"{len(kept)} of {len(plan.points)} targets archived in {archive}")
            _estimate(todo, shadow_seeds, workers_or_cores(workers))
            return
        secret = read_private_seed(private_seed, None)
        folder = out or Path("runs") / f"audit_{plan.scenario.removeprefix('audit-')}"
        runs, shadows = [], None
        if todo.points:
            runs, shadows = _train_for_audit(todo, workers, folder, secret, shadow_seeds)
    elif shadow_seeds or estimate or archive is not None:
        flag = "--shadow-seeds" if shadow_seeds else "--estimate" if estimate else "--archive"
        raise AsfedError(f"{flag} belongs to a train mode (--env or --scenario)")
    else:
        wanted = [q for q in QUESTIONS if q != "shadow" or shadows] if attack == "all" else [attack]
    if not runs and not kept:
        raise AsfedError("nothing to audit; give run folders, or --env to train and audit")
    gone = [str(r) for r in runs if diverged(Path(r)) is not None]
    if gone:  # a diverged run's rounds stop short: its messages are not the config's audit
        raise AsfedError(
            f"{', '.join(gone)} diverged ({DIVERGED} in the folder): an audit needs a run that "
            "trained every round; give runs that finished"
        )
    models = _shadow_models(list(runs), shadows, attacker) if "shadow" in wanted and runs else {}
    rows = []
    if runs:
        with Progress(
            *progress_columns("attacking victims"), console=console, transient=True
        ) as bar:
            task = bar.add_task("attack", total=None)
            rows = audit_runs(
                list(runs),
                wanted,
                attacker,
                None if victim is None else [victim],
                models,
                workers_or_cores(workers),
                lambda done, total: bar.update(task, completed=done, total=total),
            )
    if archive is not None and plan is not None:
        from audits.audit import VictimScore

        saved = archived.save_audit(
            archive, plan, folder, [vars(r) for r in rows], wanted, attacker
        )
        if saved:
            console.print(f"archived {len(saved)} target(s) in {archive}")
        new = {str(folder / p.name): [] for p in plan.points}
        for r in rows:
            new[r.run].append(r)
        rows = [  # plan order: archived targets' rows where they are, fresh rows elsewhere
            row
            for p in plan.points
            for row in (
                [VictimScore(**d) for d in kept[p.name]]
                if p.name in kept
                else new[str(folder / p.name)]
            )
        ]
    if victim is not None and all(r.score is None for r in rows):
        raise AsfedError(
            f"{attacker} received nothing from agent {victim} in "
            f"{', '.join(str(p) for p in runs)}: nothing to score (not zero leakage)"
        )
    summaries = pool(rows)
    console.print(render(summaries))
    for row in {r.run: r for r in reversed(rows)}.values():  # each run's first victim
        text = f"{row.run}: {attacker} {row.read} from agent {row.victim}"
        console.print(text, highlight=False)
    if markdown:
        print(to_markdown(summaries))
    pooled = folder if plan is not None else None
    write(list(runs), rows, summaries, "asfed " + " ".join(sys.argv[1:]), pooled)
    console.print(
        f"wrote audit/ (audit.json, audit.csv, audit.png) in {len(runs)} run folder(s)"
        + (f" and, pooled over every target, in {pooled}" if pooled is not None else "")
    )


def _dp_check(runs: list[Path]) -> None:
    """--dp-check: each run's mechanism audited at its own sigma, clip, delta and releases."""
    from asfed.agents.methods import METHODS
    from asfed.envs import make_vec_env
    from attacks.view import run_config
    from audits.dp_check import check, kinds_to_check

    if not runs:
        raise AsfedError("--dp-check needs run folders to check")
    configs = [run_config(path) for path in runs]  # every run checked before any trial
    for path, cfg in zip(runs, configs, strict=True):
        if not cfg.private:
            raise AsfedError(
                f"{path} ran without DP (dp_epsilon and dp_sigma unset); --dp-check audits a "
                "DP run's noise mechanism"
            )
        if not METHODS.get(cfg.method).allowed_kinds:
            raise AsfedError(f"{path} ran {cfg.method}, which sends nothing: nothing to check")
    failed = False
    for path, cfg in zip(runs, configs, strict=True):
        actions = make_vec_env(cfg.env, 1, seed=0, **cfg.env_options()).num_actions
        dp, releases = cfg.dp_settings(), cfg.release_bound()
        console.print(f"[bold]{path}[/] ({cfg.method} on {cfg.env}, sigma {dp.sigma:.4g})")
        for kind in kinds_to_check(METHODS.get(cfg.method).allowed_kinds):
            result = check(kind, dp, releases, actions=actions)
            failed |= not result.passed
            console.print(f"  {result.line()}", highlight=False)
    if failed:
        sys.exit(1)


def _shadow_models(runs: list[Path], folder: Path | None, attacker: str) -> dict:
    """Each target's shadow models, learned once per config from the matching runs under
    `folder`, after every target and its shadows are checked."""
    from attacks.view import run_config
    from audits.audit import Shadows
    from audits.shadows import learn, matching

    if folder is None:
        raise AsfedError("the shadow attack needs shadow runs: give --shadows FOLDER")
    if not folder.is_dir():
        raise AsfedError(f"--shadows {folder} is not a folder of shadow runs")
    candidates = sorted(p for p in folder.iterdir() if (p / "config.toml").exists())
    for p in candidates:
        run_config(p)  # every candidate readable before anything is learned
    chosen = {str(path): tuple(matching(path, candidates, attacker)) for path in runs}
    models: dict[tuple, Shadows] = {}
    for group in dict.fromkeys(chosen.values()):
        models[group] = Shadows(*learn(list(group), attacker), runs=len(group))
    return {path: models[group] for path, group in chosen.items()}


def _estimate(plan, shadow_seeds: int, workers: int) -> None:
    """--estimate: the targets' plan timed, and its shadows (the same settings, more seeds)."""
    from asfed.experiments import audit_runs
    from asfed.experiments.plan import code_plan

    points = list(plan.points)
    if shadow_seeds:
        points += list(audit_runs.shadow_plan(plan, check_seeds(shadow_seeds)).points)
    console.print(
        f"{len(plan.points)} target run(s) and {len(points) - len(plan.points)} shadow run(s)"
    )
    print_estimate(code_plan(plan.scenario, plan.title, points), workers)


def _plan(env, scenario, methods, seeds, rounds, episodes):
    """The targets' plan: a scenario's sweep, or every (method, seed) at the audit's budget."""
    from asfed.experiments import audit_runs
    from asfed.experiments.plan import load_sweep

    if scenario is not None:
        if rounds is not None or episodes is not None:
            raise AsfedError("--rounds and --episodes are the scenario's; edit it or use --env")
        sweep = load_sweep(scenario)
        if methods is None:
            return sweep
        keep = method_list(methods)
        points = tuple(p for p in sweep.points if p.config.method in keep)
        if not points:
            raise AsfedError(
                f"scenario {scenario!r} has no case of method(s) {', '.join(keep)}; accepted: "
                f"{', '.join(sweep.methods)}"
            )
        methods_ = tuple(dict.fromkeys(p.config.method for p in points))
        return dataclasses.replace(sweep, points=points, methods=methods_)
    budget = {"rounds": rounds, "episodes": episodes}
    methods = methods or "as,vs,vps,ps,ippo"
    return audit_runs.plan(env, method_list(methods), check_seeds(seeds), **budget)


def _train_for_audit(
    plan, workers, folder: Path, secret, shadow_seeds
) -> tuple[list[Path], Path | None]:
    """Train mode: the plan's runs, and N shadow runs of each of its configs (seeds 1001..) in
    <folder>/shadows, on the experiments' runner (finished runs are reused: shadows are
    cached)."""
    from asfed.experiments import audit_runs

    exit_if_failed(run_plan(plan, folder, workers_or_cores(workers), None, secret), complete=True)
    if not shadow_seeds:
        return [folder / p.name for p in plan.points], None
    shadow_plan = audit_runs.shadow_plan(plan, check_seeds(shadow_seeds))
    shadow_folder = folder / "shadows"
    shadow_secret = None if secret is None else secret + 1  # never a target's private seed
    exit_if_failed(
        run_plan(shadow_plan, shadow_folder, workers_or_cores(workers), None, shadow_secret),
        complete=True,
    )
    return [folder / p.name for p in plan.points], shadow_folder
