"""`asfed audit`: what the shared messages leak about each agent's private reward."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from asfed.cli.app import app, console
from asfed.cli.common import (
    check_seeds,
    counted,
    exit_if_failed,
    method_list,
    run_plan,
    workers_or_cores,
)
from asfed.cli.common import private_seed as read_private_seed
from asfed.errors import AsfedError

# The command's options, declared once here so its signature reads in a glance.
RunsOption = Annotated[
    list[Path] | None,
    typer.Argument(help="Run folders to audit (several seeds are pooled with CIs)."),
]
AttackOption = Annotated[str, typer.Option(help="reward-type, reward-inversion, or all.")]
AttackerOption = Annotated[
    str, typer.Option(help="relay (sees every message) or agent:K (a curious neighbour K).")
]
VictimOption = Annotated[
    int | None, typer.Option(help="The agent attacked (default: every agent but the attacker).")
]
EnvOption = Annotated[str | None, typer.Option(help="Train-then-audit mode: the env to train on.")]
MethodsOption = Annotated[str, typer.Option(help="Train mode: comma-separated methods.")]
SeedsOption = Annotated[int, typer.Option(help="Train mode: seeds 1..N per method.")]
RoundsOption = Annotated[int | None, typer.Option(help="Train mode: rounds (default 30).")]
EpisodesOption = Annotated[
    int | None, typer.Option(help="Train mode: episodes a round (default 8).")
]
WorkersOption = Annotated[
    int | None, typer.Option(help="Train mode: runs at once (default: every core).")
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
    methods: MethodsOption = "as,vs,vps,ps,ippo",
    seeds: SeedsOption = 5,
    rounds: RoundsOption = None,
    episodes: EpisodesOption = None,
    workers: WorkersOption = None,
    out: OutOption = None,
    private_seed: PrivateSeedOption = None,
    markdown: MarkdownOption = False,
    dp_check: DpCheckOption = False,
) -> None:
    """Measure what the shared messages leak about each agent's private reward.

    Every attack sees only what the attacker received plus the public record (states and joint
    actions); scoring alone reads ground truth. Each score comes with chance and the actions-only
    baseline (the same question from the public actions alone): leakage = score - baseline.
    Writes audit/ (JSON, CSV, PNG) into each run folder.

    \b
    asfed audit runs/nav_as_s1 runs/nav_as_s2 --attack all
    asfed audit --env navigation --methods as,ippo --seeds 5 --attack reward-type
    """
    from audits.audit import QUESTIONS, audit_run, pool
    from audits.audit_files import markdown as to_markdown
    from audits.audit_files import table as render
    from audits.audit_files import write

    if dp_check:
        _dp_check(runs or [])
        return
    questions = list(QUESTIONS) if attack == "all" else [attack]
    if attack != "all" and attack not in QUESTIONS:
        raise AsfedError(f"unknown attack {attack!r}; accepted: all, {', '.join(QUESTIONS)}")
    if env is not None:
        if runs:
            raise AsfedError("give run folders or --env (train mode), not both")
        secret = read_private_seed(private_seed, None)
        runs = _train_for_audit(env, methods, seeds, rounds, episodes, workers, out, secret)
    if not runs:
        raise AsfedError("nothing to audit; give run folders, or --env to train and audit")
    rows = []
    for path in counted(list(runs), "auditing runs"):
        rows += audit_run(path, questions, attacker, None if victim is None else [victim])
    if victim is not None and all(r.score is None for r in rows):
        raise AsfedError(
            f"{attacker} received nothing from agent {victim} in "
            f"{', '.join(str(p) for p in runs)}: nothing to score (not zero leakage)"
        )
    summaries = pool(rows)
    console.print(render(summaries))
    if markdown:
        print(to_markdown(summaries))
    write(list(runs), rows, summaries, "asfed " + " ".join(sys.argv[1:]))
    console.print(f"wrote audit/ (audit.json, audit.csv, audit.png) in {len(runs)} run folder(s)")


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


def _train_for_audit(env, methods, seeds, rounds, episodes, workers, out, secret) -> list[Path]:
    """Train mode: every (method, seed) run at the audit's budget, on the experiments' runner."""
    from asfed.experiments import audit_runs

    plan = audit_runs.plan(
        env, method_list(methods), check_seeds(seeds), rounds=rounds, episodes=episodes
    )
    folder = out or Path("runs") / f"audit_{env}"
    exit_if_failed(run_plan(plan, folder, workers_or_cores(workers), None, secret))
    return [folder / p.name for p in plan.points]
