"""The `asfed` command line (Typer). Each command is a thin shell over the library.

An `AsfedError` (bad user input) becomes one line on stderr and exit code 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from asfed.comm.dp import NOT_COVERED
from asfed.envs import ENVS, make_vec_env, names, options_of
from asfed.errors import AsfedError

if TYPE_CHECKING:
    from audits.sweep import Sweep

app = typer.Typer(
    help="Anticipation Sharing and its baselines for reward-private cooperative MARL.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.callback()
def _root() -> None:
    """Simulate, audit and trade off privacy in reward-private cooperative MARL.

    Start with `asfed list` to see the environments.
    """


@app.command("list")
def list_registered() -> None:
    """List the environments (agents, actions, horizon, options), methods and topologies."""
    table = Table(title="asfed environments")
    for col in ("env", "agents (default, range)", "actions", "horizon", "obs dim", "options"):
        table.add_column(col)
    for name in names():
        cls = ENVS.get(name)
        env = make_vec_env(name, 1, seed=0)
        lo, hi = cls.agents_range
        table.add_row(
            name,
            f"{cls.default_agents} ({lo}-{hi})",
            ", ".join(env.action_names),
            str(env.horizon),
            str(env.obs_dim),
            ", ".join(options_of(name)),
        )
    console.print(table)

    from asfed.agents.methods import METHODS
    from asfed.comm.topology import TOPOLOGIES

    methods = Table(title="methods")
    methods.add_column("method")
    methods.add_column("may send (only to neighbours)")
    for name in METHODS.names():
        kinds = sorted(METHODS.get(name).allowed_kinds)
        methods.add_row(name, ", ".join(kinds) or "nothing")
    console.print(methods)
    topologies = Table(title="topologies (any with --every k)")
    topologies.add_column("topology")
    topologies.add_column("neighbours")
    for name in TOPOLOGIES.names():
        doc = (TOPOLOGIES.get(name).__doc__ or "").strip().splitlines()[0]
        topologies.add_row(name, doc)
    console.print(topologies)

    from attacks import ATTACKS

    attacks = Table(title="attacks (asfed audit --attack NAME)")
    attacks.add_column("attack")
    attacks.add_column("what it estimates")
    for name in ATTACKS.names():
        attacks.add_row(name, (ATTACKS.get(name).__doc__ or "").strip().splitlines()[0])
    console.print(attacks)


def _d(name: str) -> str:
    """' (default: X)' for a RunConfig field, so help texts cannot drift from the defaults."""
    from asfed.config import FIELDS

    return f" (default: {FIELDS[name].default})"


def _default_out(env: str, method: str, seed: int) -> Path:
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}_{env}_{method}_s{seed}"


def _command() -> str:
    """This command line as the manifest records it, with any private seed's value left out."""
    args, hide = [], False
    for arg in sys.argv[1:]:
        if hide:
            args.append("<private>")
            hide = False
        elif arg == "--private-seed":
            args.append(arg)
            hide = True
        elif arg.startswith("--private-seed="):
            args.append("--private-seed=<private>")
        else:
            args.append(arg)
    return "asfed " + " ".join(args)


def _private_seed(given: str | None, scenario: str | None) -> int | None:
    """--private-seed as an integer (a 128-bit one does not fit an int option), else the
    scenario's; one clear error for anything else."""
    from asfed.config import private_seed_of
    from asfed.dealer import check_private_seed

    if given is None:
        return private_seed_of(scenario)
    text = given.strip()
    if not (text.isascii() and text.isdigit()):
        raise AsfedError(f"--private-seed={given!r} is invalid; accepted: an integer 0..2**128-1")
    return check_private_seed(int(text))


@app.command()
def simulate(
    env: Annotated[
        str | None, typer.Option(help="Environment (see `asfed list`)." + _d("env"))
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(help="as, vs, vps, ps, ippo or cppo (cppo: 2 agents)." + _d("method")),
    ] = None,
    rounds: Annotated[int | None, typer.Option(help="Training rounds." + _d("rounds"))] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Public seed (episodes, acting, initialisation); with --private-seed, the same "
            "seeds give the same numbers." + _d("seed")
        ),
    ] = None,
    private_seed: Annotated[
        str | None,
        typer.Option(
            help="Seed of the agents' secrets (private rewards, DP noise); default: fresh OS "
            "entropy. Kept only in ground_truth/ and the agents' storage, never in config.toml."
        ),
    ] = None,
    episodes: Annotated[
        int | None,
        typer.Option(help="Episodes rolled out per round (default: about 9,600 env steps)."),
    ] = None,
    agents: Annotated[
        int | None, typer.Option(help="Number of agents (env default if unset).")
    ] = None,
    horizon: Annotated[
        int | None, typer.Option(help="Episode length (env default if unset).")
    ] = None,
    topology: Annotated[
        str | None,
        typer.Option(help="full, line, ring, random-one or distance (paper default per env)."),
    ] = None,
    every: Annotated[
        int | None, typer.Option(help="Communicate every k-th round only." + _d("every"))
    ] = None,
    rho: Annotated[
        float | None, typer.Option(help="AS penalty weight (Table 2 if unset; 0 = ablation).")
    ] = None,
    actor_lr: Annotated[float | None, typer.Option(help="Actor learning rate (Table 2).")] = None,
    critic_lr: Annotated[float | None, typer.Option(help="Critic learning rate (Table 1).")] = None,
    layout: Annotated[
        str | None,
        typer.Option(help="AS policies: separate (the paper) or multihead." + _d("layout")),
    ] = None,
    minibatches: Annotated[
        int | None,
        typer.Option(
            help="Gradient steps per update (default: one per episode of the round, Algorithm "
            "1's K steps per episode; --episodes 1 --minibatches 1 is Algorithm 1 literally)."
        ),
    ] = None,
    max_grad_norm: Annotated[
        float | None,
        typer.Option(help="Clip each network's gradient to this norm (default: off, the paper's)."),
    ] = None,
    dp_epsilon: Annotated[
        float | None,
        typer.Option(
            help="Differential privacy: target epsilon over the run for every shared message "
            "(sigma calibrated; the public trajectory is not covered)."
        ),
    ] = None,
    dp_sigma: Annotated[
        float | None, typer.Option(help="Or the Gaussian noise multiplier itself.")
    ] = None,
    dp_delta: Annotated[float | None, typer.Option(help="DP delta (default: 1e-05).")] = None,
    dp_clip: Annotated[
        float | None,
        typer.Option(help="L2 clip of shared vectors: VS values, VPS/PS parameters (default: 1)."),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            help="flower (each agent a Flower ClientApp, on Flower's simulation engine) or "
            "local (in-process, same numbers)." + _d("engine")
        ),
    ] = None,
    log_every: Annotated[
        int | None, typer.Option(help="Record messages every n-th round." + _d("log_every"))
    ] = None,
    checkpoint_every: Annotated[
        int | None, typer.Option(help="Checkpoint every n rounds." + _d("checkpoint_every"))
    ] = None,
    zap: Annotated[
        bool | None, typer.Option(help="Cleanup/harvest: enable the zap action.")
    ] = None,
    private_weights: Annotated[
        bool | None, typer.Option(help="Cleanup/harvest: draw private apple values.")
    ] = None,
    predation_actions: Annotated[
        str | None,
        typer.Option(
            help="Predation: left-right (section 5's A = {-1, +1}) or toward-away (how the "
            "paper words Fig. 7's task)." + _d("predation_actions")
        ),
    ] = None,
    scenario: Annotated[
        str | None, typer.Option(help="A named scenario (scenarios/NAME.toml) or a .toml path.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default: runs/<time>_<env>_<method>_s<seed>).")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue this run folder from its last checkpoint.")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Local engine: processes the agents are spread over, updating in parallel "
            "(default: every core; same numbers for any count)."
        ),
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            help="Where the learners compute: cpu, cuda, cuda:N, or auto (cuda if there is "
            "one). Rollouts stay on the CPU."
        ),
    ] = "cpu",
    verbose: Annotated[bool, typer.Option(help="Show Flower's and Ray's own logs.")] = False,
    deal_only: Annotated[
        bool,
        typer.Option(
            "--deal-only",
            help="Create the run folder and deal its secrets, then stop: a deployment moves each "
            "agents/agent_<i>/secret.json to agent i's machine, then resumes the run "
            "(docs/deploy.md).",
        ),
    ] = False,
) -> None:
    """Train a method on an environment and write a run folder.

    The folder holds the resolved config, package versions, per-round metrics (CSV), the message
    log, checkpoints and a learning-curve PNG. Flags override a --scenario; unset choices take
    the paper's per-env defaults. Example:

        asfed simulate --env exchange --method as --rounds 300 --seed 1
    """
    from asfed.config import build_config
    from asfed.engine.driver import resume as resume_run
    from asfed.engine.driver import resume_config, start, train
    from asfed.engine.loop import prepare
    from asfed.engine.placement import available_cores, check_workers, resolve_device

    flags = dict(
        env=env,
        method=method,
        rounds=rounds,
        seed=seed,
        episodes=episodes,
        agents=agents,
        horizon=horizon,
        topology=topology,
        every=every,
        rho=rho,
        actor_lr=actor_lr,
        critic_lr=critic_lr,
        layout=layout,
        minibatches=minibatches,
        max_grad_norm=max_grad_norm,
        dp_epsilon=dp_epsilon,
        dp_sigma=dp_sigma,
        dp_delta=dp_delta,
        dp_clip=dp_clip,
        engine=engine,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        zap=zap,
        private_weights=private_weights,
        predation_actions=predation_actions,
    )
    if resume is not None:
        extra = sorted(k for k, v in flags.items() if v is not None and k != "rounds")
        extra += ["private_seed"] if private_seed is not None else []
        if extra or scenario or out:
            given = ", ".join(f"--{k.replace('_', '-')}" for k in extra) or "--scenario/--out"
            raise AsfedError(f"--resume continues a run with its own config; not allowed: {given}")
        cfg = resume_config(resume, rounds)[1]
    else:
        cfg = build_config(scenario, **flags)
    secret_seed = _private_seed(private_seed, None if resume is not None else scenario)
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
        from asfed.engine.driver import create

        if resume is not None:
            raise AsfedError("--deal-only makes a new run folder; it cannot --resume one")
        run = create(cfg, folder, secret_seed)
        console.print(
            f"dealt {num_agents} agents' secrets into {run.agent_root}/agent_<i>/secret.json; "
            f"no round played (continue with: asfed simulate --resume {run.path})"
        )
        return

    def run_engine(federation=None) -> list[dict]:
        if resume is not None:
            sim, run, rows = resume_run(resume, rounds, federation, workers, device)
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
            TextColumn("team return {task.fields[ret]}  degree {task.fields[deg]}{task.fields[e]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task(
                "rounds", total=cfg.rounds, completed=sim.round, ret="-", deg="-", e=""
            )

            def update(m: dict) -> None:
                ret, deg = f"{m['team_return']:.2f}", f"{m['neighbours_mean']:.2f}"
                eps = f"  epsilon {m['epsilon']:.3g} (messages only)" if "epsilon" in m else ""
                bar.update(task, advance=1, ret=ret, deg=deg, e=eps)

            try:
                return train(sim, run, rows, update)
            finally:
                sim.close()

    start_time = time.perf_counter()
    if cfg.engine == "flower":
        from asfed.engine.flower.federation import flower_federation
        from asfed.engine.flower.simulation import run_flower

        console.print(f"starting Flower's simulation engine ({num_agents} SuperNodes)...")
        rows = run_flower(num_agents, lambda grid: run_engine(flower_federation(grid)), verbose)
    else:
        rows = run_engine()
    last = [float(r["team_return"]) for r in rows[-10:]]
    console.print(
        f"done: {len(rows)} rounds, team return (mean of the last {len(last)}) "
        f"{sum(last) / max(len(last), 1):.2f}, {time.perf_counter() - start_time:.0f} s"
        + (
            f", epsilon {float(rows[-1]['epsilon']):.3g} ({NOT_COVERED})"
            if "epsilon" in rows[-1]
            else ""
        )
        + "; "
        f"see {Path(folder) / 'learning_curve.png'}"
    )


@app.command()
def audit(
    runs: Annotated[
        list[Path] | None,
        typer.Argument(help="Run folders to audit (several seeds are pooled with CIs)."),
    ] = None,
    attack: Annotated[
        str, typer.Option(help="reward-type, reward-inversion, or all.")
    ] = "reward-type",
    attacker: Annotated[
        str, typer.Option(help="relay (sees every message) or agent:K (a curious neighbour K).")
    ] = "relay",
    victim: Annotated[
        int | None, typer.Option(help="The agent attacked (default: every agent but the attacker).")
    ] = None,
    env: Annotated[
        str | None, typer.Option(help="Train-then-audit mode: the env to train on.")
    ] = None,
    methods: Annotated[
        str, typer.Option(help="Train mode: comma-separated methods.")
    ] = "as,vs,vps,ps,ippo",
    seeds: Annotated[int, typer.Option(help="Train mode: seeds 1..N per method.")] = 5,
    rounds: Annotated[int | None, typer.Option(help="Train mode: rounds (default 30).")] = None,
    episodes: Annotated[
        int | None, typer.Option(help="Train mode: episodes a round (default 8).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Train mode: the folder of runs (finished ones reused).")
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Also print the table as Markdown.")
    ] = False,
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
    from audits.report import markdown as to_markdown
    from audits.report import table as render
    from audits.report import write

    questions = list(QUESTIONS) if attack == "all" else [attack]
    if attack != "all" and attack not in QUESTIONS:
        raise AsfedError(f"unknown attack {attack!r}; accepted: all, {', '.join(QUESTIONS)}")
    if env is not None:
        if runs:
            raise AsfedError("give run folders or --env (train mode), not both")
        runs = _train_for_audit(env, methods, seeds, rounds, episodes, out)
    if not runs:
        raise AsfedError("nothing to audit; give run folders, or --env to train and audit")
    rows = []
    for path in runs:
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


def _train_for_audit(env, methods, seeds, rounds, episodes, out) -> list[Path]:
    from audits.training import BUDGET, ensure_runs, rounds_to_train

    names_ = [m.strip() for m in methods.split(",") if m.strip()]
    if seeds < 1:
        raise AsfedError(f"seeds={seeds} is invalid; accepted: an integer >= 1")
    folder = out or Path("runs") / f"audit_{env}"
    todo = rounds_to_train(
        env, names_, list(range(1, seeds + 1)), folder, rounds or BUDGET["rounds"]
    )
    with Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("rounds", total=todo)
        return ensure_runs(
            env,
            names_,
            list(range(1, seeds + 1)),
            folder,
            lambda: bar.advance(task),
            rounds=rounds,
            episodes=episodes,
        )


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
) -> None:
    """Buy privacy with noise and see the price: team return and attack success vs epsilon.

    Trains every (method, epsilon, seed) point with calibrated DP noise on every shared
    message, audits it (reward-type and reward-inversion, the relay attacking every agent, beside
    the actions-only baseline), and writes tradeoff.csv (every point, with the accountant's
    epsilon and the lower bound the guesses imply) and tradeoff.png. Epsilon covers the messages
    only: the public trajectory (states, actions) is not covered.
    """
    import os

    from audits.tradeoff import figure, parse_epsilons, run_tradeoff, summarise, write_csv

    eps = parse_epsilons(epsilons)
    names_ = [m.strip() for m in methods.split(",") if m.strip()]
    if seeds < 1:
        raise AsfedError(f"seeds={seeds} is invalid; accepted: an integer >= 1")
    cores = workers or os.cpu_count() or 1
    if cores < 1:
        raise AsfedError(f"workers={workers} is invalid; accepted: an integer >= 1")
    folder = out or Path("runs") / f"tradeoff_{env}"
    console.print(
        f"trade-off on {env}: {names_} x epsilon {eps} x {seeds} seeds, {cores} "
        f"workers -> {folder} ({NOT_COVERED})"
    )
    with console.status("training and auditing...") as status:
        rows = run_tradeoff(
            env,
            names_,
            eps,
            list(range(1, seeds + 1)),
            folder,
            cores,
            lambda text: status.update(text),
            rounds=rounds,
            episodes=episodes,
        )
    summary = summarise(rows)
    table = Table(
        title=f"{env}: privacy vs performance (means over seeds, 95% CIs)",
        caption=f"epsilon: {NOT_COVERED}",
    )
    for col in (
        "method",
        "target eps",
        "accountant eps",
        "empirical eps >=",
        "team return",
        "type acc.",
        "actions-only",
        "inversion r",
    ):
        table.add_column(col)
    fmt = lambda v, ci=None: f"{v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")  # noqa: E731
    for row in summary:
        table.add_row(
            row["method"],
            f"{row['epsilon_target']:g}",
            f"{row['epsilon_accountant']:.3g}",
            f"{row['epsilon_empirical']:.2f}",
            fmt(row["team_return"], row["team_return_ci"]),
            fmt(row["type_accuracy"], row["type_accuracy_ci"]),
            fmt(row["type_baseline"]),
            fmt(row["inversion_r"]),
        )
    console.print(table)
    write_csv(folder / "tradeoff.csv", rows)
    figure(folder / "tradeoff.png", summary, env, 1e-5)
    console.print(f"wrote {folder / 'tradeoff.csv'} and {folder / 'tradeoff.png'}")


@app.command()
def sweep(
    scenario: Annotated[
        str, typer.Argument(help="A named scenario (scenarios/NAME.toml) or a .toml path.")
    ],
    seeds: Annotated[
        int | None, typer.Option(help="Seeds 1..N for every point (default: the scenario's, or 5).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="KEY=V1[,V2...]: fix a setting, or make it an axis of several values "
            "(repeatable; 'none' is the paper's default).",
        ),
    ] = None,
    methods: Annotated[
        str | None, typer.Option(help="Comma-separated methods (default: the scenario's).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Runs at once (default: every core; 1: one by one in this process)."),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Run on Ray instead: a cluster's address, 'auto' (the running cluster) or "
            "'local' (a new local instance with --workers CPUs)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="The sweep folder (default: runs/sweep_<scenario>); rerun to continue."),
    ] = None,
    private_seed: Annotated[
        str | None,
        typer.Option(
            help="Seed of every new run's secrets (each run's own is derived from it by name); "
            "default: the scenario's private_seed, else fresh entropy per run. Kept in "
            "<out>/ground_truth/, not in the manifest."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the runs and stop.")] = False,
    estimate: Annotated[
        bool,
        typer.Option(
            "--estimate",
            help="Time one round of each distinct setting here, print how long the sweep takes "
            "on --workers processes, and stop (trains nothing that is kept).",
        ),
    ] = False,
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
    import os

    from audits.sweep import check_folder, default_folder, load_sweep, run_sweep

    names_ = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    plan = load_sweep(scenario, names_, seeds, set_)
    secret_seed = _private_seed(private_seed, scenario)
    cores = workers if workers is not None else os.cpu_count() or 1
    if cores < 1:
        raise AsfedError(f"workers={workers} is invalid; accepted: an integer >= 1")
    folder = out or default_folder(plan)
    check_folder(plan, folder)  # a refused sweep fails here, before any output
    where = f"Ray at {ray_address}" if ray_address else f"{cores} process(es)"
    console.print(
        f"sweep [bold]{plan.scenario}[/]: {len(plan.points)} runs ({', '.join(plan.methods)} x "
        f"{len(plan.seeds)} seeds x {len(plan.points) // len(plan.methods) // len(plan.seeds)} "
        f"setting(s)) on {where} -> {folder}"
    )
    if dry_run:
        for p in plan.points:
            console.print(
                f"  {p.name}  rounds {p.config.rounds}, {p.config.num_episodes()} ep/round"
            )
        return
    if estimate:
        _print_estimate(plan, cores)
        return
    began = time.perf_counter()
    columns = (
        TextColumn("rounds"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[runs]} runs done  {task.fields[note]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("sweep", total=None, runs="-", note="")

        def show(s) -> None:
            runs = f"{s.runs_done}/{s.runs_total}"
            bar.update(task, completed=s.rounds_done, total=s.rounds_total, runs=runs, note=s.note)

        try:
            with _sigterm_interrupts():
                done = run_sweep(plan, folder, cores, ray_address, show, _command(), secret_seed)
        except KeyboardInterrupt as stop:
            console.print("interrupted: finished rounds are kept; the same command continues")
            sys.exit(143 if isinstance(stop, _Terminated) else 130)  # 128 + the signal
    console.print(
        f"{len(done.trained)} run(s) trained, {len(done.reused)} reused, {len(done.failed)} "
        f"failed in {time.perf_counter() - began:.0f} s; draw it: asfed report {folder}"
    )
    if done.failed:
        err = Console(stderr=True)
        for name, message in done.failed.items():
            err.print(f"[bold red]failed:[/] {name}: {message}", highlight=False, soft_wrap=True)
        err.print("fix the cause and run the same command: finished runs are kept")
        sys.exit(1)


class _Terminated(KeyboardInterrupt):
    """SIGTERM arrived: handled as Ctrl-C is, but the exit code says which (143, not 130)."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM acts as Ctrl-C while a sweep runs: batch schedulers (SLURM, Kubernetes) and
    `kill` send it, and the sweep must still stop its workers and record the session in its
    manifest. Only in the main thread, where Python allows handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise _Terminated

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:  # a handler installed from C reads as None: restore the default then
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)


def _print_estimate(plan: Sweep, workers: int) -> None:
    """`asfed sweep --estimate`: one timed round per distinct setting, then the sweep's cost."""
    from asfed.report.results import duration
    from audits.budget import Cost, estimate, settings, wall_seconds

    console.print(f"timing one round of each of {len(settings(plan))} setting(s), one thread")

    def show(c: Cost) -> None:
        console.print(
            f"  {c.setting}: {c.seconds_per_round:.2f} s a round x {c.rounds} rounds "
            f"({c.runs} runs) = {duration(c.seconds)}"
        )

    costs = estimate(plan, on_cost=show)
    total = sum(c.seconds for c in costs)
    console.print(
        f"[bold]{plan.scenario}[/]: {len(plan.points)} runs, {duration(total)} of training on "
        f"one process; about {duration(wall_seconds(costs, workers))} on {workers} process(es)"
    )


@app.command()
def report(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Sweep folders, run folders, or folders of runs (an audit's, a trade-off's)."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option(help="The HTML file (default: report.html in the first folder).")
    ] = None,
    readme: Annotated[
        Path | None,
        typer.Option(
            help="Also rewrite the results section of this README (between its "
            "asfed-results markers) from the sweep folders given."
        ),
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Also print the results section as Markdown.")
    ] = False,
) -> None:
    """Draw sweeps and runs as one self-contained HTML page (plots inline, no network).

    Learning curves with 95% bands over seeds and reference lines (random policy, best scripted
    policy, all selfish), final team returns with CIs, bytes sent per round, Fig. 7's
    anticipation metrics, any audit or trade-off in the folders, and every run's config.

    \b
    asfed report runs/sweep_fig2-main
    asfed report runs/sweep_fig2-exchange --readme README.md
    """
    from asfed.report.collect import collect
    from asfed.report.page import write
    from asfed.report.results import replace_section, results_markdown, write_readme

    sources = collect(paths)
    if not any(s.runs for s in sources):
        where = ", ".join(str(p) for p in paths)
        raise AsfedError(f"nothing to report: no run in {where} has completed a round")
    new_readme = section = None
    if readme is not None or markdown:
        section = results_markdown(sources, "asfed " + " ".join(sys.argv[1:]))
        if readme is not None:
            new_readme = replace_section(readme, section)  # checked before anything is written
    target = out or Path(paths[0]) / "report.html"
    with console.status("drawing the report..."):
        plots = write(sources, target)
    runs = sum(len(s.runs) for s in sources)
    console.print(f"wrote {target} ({plots} plots, {runs} runs, {len(sources)} section(s))")
    if markdown:
        print(section)
    if new_readme is not None:
        write_readme(readme, new_readme)
        console.print(f"rewrote the results section of {readme}")


def main() -> None:
    """Entry point: run the app, turning user errors into one clear line and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except AsfedError as err:
        Console(stderr=True).print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as err:  # the environment's faults: a full disk, an unwritable place
        what = err.strerror or str(err)
        where = f": {err.filename}" if err.filename else ""
        Console(stderr=True).print(f"[bold red]error:[/] {what}{where}", highlight=False)
        sys.exit(2)
    except RuntimeError as err:
        if type(err).__name__ != "ClientFailure":  # avoid importing flwr for every command
            raise
        notes = "".join(f"\n{n}" for n in getattr(err, "__notes__", []))
        Console(stderr=True).print(
            f"[bold red]error:[/] {err}{notes}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
