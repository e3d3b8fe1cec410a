"""asfed against JAX on this CPU, side by side: env steps/s, FLOPs per env step, GFLOP/s, ratios.

One process tree, one system after the other (never two at once):

1. asfed: `asfed simulate --env navigation` rounds at the paper's defaults (3 agents, 96 episodes
   of 100 steps, Table 2's 128-64 networks, K = 3 epochs of one minibatch per episode), IPPO and
   AS, on 1 and on every worker; FLOPs counted by torch (FlopCounterMode, every matrix product
   of a round).
2. IPPO in JAX with asfed's networks and schedule (`benchmarks/peer/jax_ippo.py`: what differs
   from asfed and from JaxMARL is in its docstring), on every core and on one.
3. JaxMARL's own IPPO as shipped (`baselines/IPPO/ippo_ff_mpe.py`, its config), from a JaxMARL
   checkout (`--jaxmarl-repo`; skipped, saying so, without one).
4. With `--start CHECKOUT`: the same asfed rows (eager) of an earlier commit, timed by that
   checkout's own train_speed (`benchmarks/peer/asfed_checkout.py`), so a goal stated against
   the code of another day (issue 26's "2.5x the 9,042 AS reached") is a ratio of one run on
   one machine; every asfed row then gets a "vs start" ratio. `--envs navigation,exchange,
   predation` times asfed's rows (and the start's) on more envs; JAX runs navigation's MPE only.

The JAX sides run in their own environment (`bash benchmarks/peer/setup.sh .venv-bench`, then
`--bench-python .venv-bench/bin/python`). Their FLOPs are counted from the networks' shapes
(matrix products of the rollout's forwards and of each epoch's forward and backward), as torch
counts asfed's; XLA's own cost analysis counts a scanned loop's body once and is not used.

    python benchmarks/peer_speed.py --bench-python .venv-bench/bin/python \\
        --jaxmarl-repo ../JaxMARL
    git worktree add --detach /tmp/asfed-start 325173e   # issue 26's start
    python benchmarks/peer_speed.py ... --start /tmp/asfed-start --envs navigation,exchange

With `--device cuda` asfed's learners run on the GPU, one worker holding every agent (the GPU,
not the cores, is shared), and each JAX side runs once on JAX's default device; every row is
compared with the JAX IPPO on that device. A row that fails is reported with its error, left out
of the table, and the exit status is 1: one broken side does not lose the others' numbers.

Killed on Linux, it leaves nothing running: asfed's workers die with their parent, and a watchdog
(`asfed.lifetime.guard_descendants`) kills the JAX side then running, which runs without asfed.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import traceback
from pathlib import Path

from train_speed import round_flops, time_rounds

from asfed.agents.hparams import paper_config
from asfed.config import RunConfig, build_config
from asfed.engine.loop import prepare
from asfed.engine.placement import available_cores
from asfed.lifetime import guard_descendants

HERE = Path(__file__).resolve().parent
Outcome = tuple[str, float, float, str | None, str | None]
"""A measured row: setup, env steps/s, FLOPs an env step, the labels of the JAX row and of the
start's row it is compared with (None: no such comparison)."""


def asfed_setup(env: str, cfg: RunConfig, steps: int) -> str:
    """The networks and schedule asfed trains at on `env`'s defaults (`cfg`, `steps` env steps a
    round), in a table's words."""
    ppo, minibatches = paper_config(env), cfg.num_minibatches()
    hidden = "-".join(str(h) for h in ppo.actor_hidden)
    return f"{hidden} ReLU, separate, K={ppo.epochs} x {minibatches} of {steps // minibatches} rows"


def jax_label(cores: int | None) -> str:
    """The JAX IPPO row's label on `cores` CPU cores (None: on the GPU)."""
    where = "GPU" if cores is None else f"{cores} core{'s' if cores > 1 else ''}"
    return f"JAX IPPO, asfed's networks, {where}"


def checkout_name(path: str) -> str:
    """A checkout's short commit, "+changes" where it has uncommitted ones; its path where it is
    not a git work tree of its own (inside another repository git would name that one)."""

    def git(*argv: str) -> str | None:
        done = subprocess.run(["git", "-C", path, *argv], capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != Path(path).resolve():
        return path
    commit = git("rev-parse", "--short", "HEAD") or path
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def forward_flops(sizes: list[int]) -> int:
    """Matrix FLOPs of one row through an MLP of layer widths `sizes` (input first)."""
    return sum(2 * a * b for a, b in itertools.pairwise(sizes))


def train_flops(sizes: list[int]) -> int:
    """One row's forward and backward: weight gradients for every layer, input gradients for
    every layer but the first (the observations need none)."""
    first = 2 * sizes[0] * sizes[1]
    return 3 * forward_flops(sizes) - first


def peer_flops(
    obs: int, actions: int, hidden: list[int], agents: int, rows: int, epochs: int, algorithm1: bool
) -> float:
    """A JAX update's matrix FLOPs for `agents` agents' `rows` samples each: the rollout's
    forwards (the actor; and the critic, where V is computed once a rollout), then `epochs`
    epochs of forward and backward, each after fresh forwards of actor and critic on every
    sample when `algorithm1` (pi_old and V recomputed at each update, as asfed does)."""
    actor, critic = [obs, *hidden, actions], [obs, *hidden, 1]
    both = forward_flops(actor) + forward_flops(critic)
    rollout = rows * (forward_flops(actor) if algorithm1 else both)
    per_epoch = rows * (train_flops(actor) + train_flops(critic) + (both if algorithm1 else 0))
    return float(agents * (rollout + epochs * per_epoch))


class RowFailed(Exception):
    """A row that could not be measured (its error printed where it happened)."""


def run_json(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """A JAX side's one JSON line; RowFailed (its stderr's end printed) if it fails."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    except OSError as error:  # e.g. no `taskset` here
        raise RowFailed(f"{cmd[0]}: {error}") from error
    if done.returncode != 0:
        print(f"{' '.join(cmd[:3])} failed:\n{done.stderr[-3000:]}", file=sys.stderr, flush=True)
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise RowFailed(lines[-1])
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError) as error:
        raise RowFailed(f"no JSON line from {' '.join(cmd[:2])}: {error}") from error


def on_device(out: dict, on_cpu: bool) -> dict:
    """A JAX side's result, refused (RowFailed) where a GPU row ran on no GPU: without JAX's
    CUDA plugin it runs on the CPU, and would be compared as if it were the GPU peer."""
    if not on_cpu and not any(d.startswith(("cuda", "gpu")) for d in out["devices"]):
        raise RowFailed(f"JAX ran on {out['devices']}, not a GPU (is its CUDA plugin installed?)")
    return out


def one_core(env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """Pinned to core 0 and XLA's thread pool off: one core, as one asfed worker."""
    return ["taskset", "-c", "0"], {**env, "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench-python", default=".venv-bench/bin/python")
    parser.add_argument("--jaxmarl-repo", default=None, help="a JaxMARL checkout (its baselines/)")
    parser.add_argument("--rounds", type=int, default=2, help="asfed: timed rounds a row")
    parser.add_argument("--updates", type=int, default=5, help="JAX IPPO: timed updates")
    parser.add_argument("--methods", default="ippo,as")
    parser.add_argument(
        "--device",
        default="cpu",
        help="where asfed's learners compute (cuda: a GPU, one worker); the JAX sides use JAX's "
        "default device, a GPU where the bench environment has JAX's CUDA plugin",
    )
    parser.add_argument(
        "--compile-steps",
        action="store_true",
        help="also time asfed with compile_steps (each lockstep step one compiled program; "
        "after a warm-up round that compiles)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="measure every row this many times, in turn, and report each row's median (this "
        "machine's speed drifts by up to 2x over minutes; a row's range is shown beside it)",
    )
    parser.add_argument(
        "--envs",
        default="navigation",
        help="envs asfed's rows (and the start's) are timed on; the JAX sides run navigation's "
        "MPE counterpart only",
    )
    parser.add_argument(
        "--start",
        default=None,
        metavar="CHECKOUT",
        help="also time an earlier asfed (a checkout, e.g. a git worktree at issue 26's start, "
        "325173e) by its own train_speed, eager, and give every asfed row its ratio to it",
    )
    args = parser.parse_args()
    if (
        args.start is not None
        and not (Path(args.start) / "benchmarks" / "train_speed.py").is_file()
    ):
        sys.exit(f"--start {args.start}: no asfed checkout there (no benchmarks/train_speed.py)")
    if args.start is not None and args.device != "cpu":
        sys.exit(f"--start times the start on the CPU only; --device {args.device} with it")
    if shutil.which(args.bench_python) is None:
        sys.exit(
            f"no JAX environment at {args.bench_python}: run "
            "`bash benchmarks/peer/setup.sh .venv-bench`"
        )
    guard_descendants()  # the JAX sides (plain subprocesses) die with a killed benchmark too
    cores = available_cores()
    flops: dict[tuple[str, str, str], float] = {}  # (code, env, method) -> FLOPs an env step
    measured: dict[str, tuple[Outcome, dict[int, float]]] = {}  # label -> outcome, sps a pass
    failed: dict[str, list[str]] = {}  # label -> its errors, a failed pass each
    for r in range(args.repeats):
        if args.repeats > 1:
            print(f"pass {r + 1} of {args.repeats}", flush=True)
        for label, outcome in measure(args, cores, flops):
            if isinstance(outcome, str):
                failed.setdefault(label, []).append(outcome)
                continue
            measured.setdefault(label, (outcome, {}))[1][r] = outcome[1]
    print()
    print(table(measured, args.start is not None))
    for label, errors in failed.items():
        passes = f" in {len(errors)} of {args.repeats} passes" if label in measured else ""
        print(f"not measured{passes}: {label}: {errors[-1]}")
    if failed:
        sys.exit(1)


def table(measured: dict[str, tuple[Outcome, dict[int, float]]], with_start: bool) -> str:
    """The Markdown table: each row's median env steps/s over its passes (range in brackets),
    and each ratio the median of the ratios of the passes where both rows were measured (their
    range in brackets): rows of one pass ran minutes apart, rows of different passes did not."""
    head = ["system", "networks, schedule", "env steps/s", "MFLOP / env step", "GFLOP/s"]
    head.append("vs JAX IPPO, same networks and cores")
    if with_start:
        head.append("vs the start, same workers")
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for label, ((setup, _, fps, peer, start), passes) in measured.items():
        values = list(passes.values())
        sps = statistics.median(values)
        spread = f" ({min(values):,.0f}-{max(values):,.0f})" if len(values) > 1 else ""
        cells = [label, setup, f"{sps:,.0f}{spread}", f"{fps / 1e6:.2f}", f"{sps * fps / 1e9:.1f}"]
        for other in [peer] if not with_start else [peer, start]:
            theirs = measured[other][1] if other in measured else {}
            ratios = [v / theirs[r] for r, v in passes.items() if r in theirs]
            cell = f"{statistics.median(ratios):.2f}" if ratios else "-"
            if len(ratios) > 1 and other != label:
                cell += f" ({min(ratios):.2f}-{max(ratios):.2f})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def start_label(prefix: str, method: str, start: str, workers: int) -> str:
    """The label of the start's row (the one today's row of `workers` is compared with)."""
    return f"{prefix}asfed {method} at the start ({start}), {workers_text(workers)}"


def workers_text(workers: int) -> str:
    return f"{workers} worker{'s' if workers > 1 else ''}"


def measure(
    args: argparse.Namespace, cores: int, flops: dict[tuple[str, str, str], float]
) -> list[tuple[str, Outcome | str]]:
    """One pass over every row, one system after the other: (label, Outcome) each, or (label,
    error) for a row that failed. `flops` keeps each (code, env, method)'s FLOPs an env step
    across passes: they are counted once."""
    rows: list[tuple[str, Outcome | str]] = []
    on_cpu = args.device == "cpu"
    peer_all = jax_label(cores if on_cpu else None)
    peer_one = jax_label(1) if on_cpu else peer_all
    counts = sorted({1, cores}) if on_cpu else [1]
    start = None if args.start is None else checkout_name(args.start)
    methods = list(dict.fromkeys(args.methods.split(",")))  # each once
    envs = list(dict.fromkeys(args.envs.split(",")))
    setups: dict[str, str] = {}  # env -> its networks and schedule, in words
    for env in envs:
        cfg0 = build_config(env=env, method="ippo", engine="local")
        env_ = prepare(cfg0)[1]
        steps = cfg0.num_episodes() * env_.horizon
        where = f"{cores} cores" if on_cpu else f"learners on {args.device}"
        print(f"{where}; {env}: {env_.num_agents} agents, {steps:,} env steps a round")
        prefix = "" if env == "navigation" else f"{env}: "
        setup = setups[env] = asfed_setup(env, cfg0, steps)
        if start is not None:
            for method, w in itertools.product(methods, counts):
                label = start_label(prefix, method, start, w)
                cmd = [sys.executable, str(HERE / "peer" / "asfed_checkout.py")]
                cmd += ["--checkout", args.start, "--env", env, "--method", method]
                cmd += ["--workers", str(w), "--rounds", str(args.rounds)]
                key = ("start", env, method)
                env_vars = {**os.environ, "PYTHONPATH": str(Path(args.start).resolve())}
                try:
                    out = run_json(cmd + ([] if key in flops else ["--flops"]), env_vars)
                except RowFailed as error:
                    rows.append((label, str(error)))
                    continue
                flops.setdefault(key, out["flops_per_step"])
                rows.append((label, (setup, out["env_steps_per_s"], flops[key], None, label)))
                print(f"  {label}: {out['env_steps_per_s']:,.0f} env steps/s", flush=True)

        variants = [False, True] if args.compile_steps else [False]
        for method, compiled in itertools.product(methods, variants):
            cfg = build_config(env=env, method=method, engine="local", compile_steps=compiled)
            for w in counts:
                label = f"{prefix}asfed {method}{' compiled' if compiled else ''}, "
                label += workers_text(w)
                if not on_cpu:
                    label += f" ({args.device})"
                key = ("now", env, method)  # compiled or not, the same FLOPs: counted eager
                try:
                    if key not in flops:
                        eager = dataclasses.replace(cfg, compile_steps=False)
                        flops[key] = round_flops(eager, args.device) / steps
                    seconds = time_rounds(cfg, w, args.rounds, args.device)
                except Exception as error:  # reported; the other rows are still measured
                    traceback.print_exc()
                    rows.append((label, f"{type(error).__name__}: {error}"))
                    continue
                peer = None if env != "navigation" else peer_one if w == 1 else peer_all
                against = None if start is None else start_label(prefix, method, start, w)
                rows.append((label, (setup, steps / seconds, flops[key], peer, against)))
                print(f"  {label}: {steps / seconds:,.0f} env steps/s", flush=True)

    if "navigation" not in envs:
        print("  the JAX sides: skipped (they run navigation's MPE counterpart; not in --envs)")
        return rows
    print("JAX, navigation's counterpart (MPE simple spread)", flush=True)
    cfg0 = build_config(env="navigation", method="ippo", engine="local")
    env0 = prepare(cfg0)[1]
    steps = cfg0.num_episodes() * env0.horizon
    ppo = paper_config("navigation")
    python = args.bench_python
    peer_cfg = {
        "num_envs": cfg0.num_episodes(),
        "num_steps": env0.horizon,
        "minibatches": cfg0.num_minibatches(),
        "epochs": ppo.epochs,
        "hidden": list(ppo.actor_hidden),
        "actor_lr": ppo.actor_lr,
        "critic_lr": ppo.critic_lr,
        "gamma": ppo.gamma,
        "gae_lambda": ppo.gae_lambda,
        "clip": ppo.clip,
        "obs_dim": env0.obs_dim,  # MPE's observations zero-padded: asfed's layer shapes
    }
    cmd = [python, str(HERE / "peer" / "jax_ippo.py"), "--config", json.dumps(peer_cfg)]
    cmd += ["--updates", str(args.updates)]
    base_env = dict(os.environ)
    sides = (
        {peer_all: ([], base_env), peer_one: one_core(base_env)}
        if on_cpu
        else {peer_all: ([], base_env)}
    )
    mpe_actions, mpe_agents = 5, 3  # MPE simple spread, as jaxmarl makes it
    hidden = list(ppo.actor_hidden)
    jax_flops = peer_flops(
        env0.obs_dim, mpe_actions, hidden, mpe_agents, steps, ppo.epochs, algorithm1=True
    )
    jax_flops /= steps
    for label, (prefix, env) in sides.items():
        try:
            out = on_device(run_json(prefix + cmd, env), on_cpu)
        except RowFailed as error:
            rows.append((label, str(error)))
            continue
        rows.append((label, (setups["navigation"], out["env_steps_per_s"], jax_flops, label, None)))
        print(
            f"  {label}: {out['env_steps_per_s']:,.0f} env steps/s ({out['devices']})", flush=True
        )

    if args.jaxmarl_repo is None:
        print("  JaxMARL's IPPO as shipped: skipped (no --jaxmarl-repo)")
        return rows
    shipped = [python, str(HERE / "peer" / "jaxmarl_ippo.py"), "--repo", args.jaxmarl_repo]
    for peer, (prefix, env) in sides.items():
        label = peer.replace("JAX IPPO, asfed's networks", "JaxMARL IPPO as shipped")
        try:
            out = on_device(run_json(prefix + shipped, env), on_cpu)
        except RowFailed as error:
            rows.append((label, str(error)))
            continue
        c = out["config"]
        n_rows = c["NUM_ENVS"] * c["NUM_STEPS"]
        shipped_flops = peer_flops(
            out["obs_dim"],
            out["actions"],
            [64, 64],
            out["agents"],
            n_rows,
            c["UPDATE_EPOCHS"],
            False,
        )
        epochs, minibatches = c["UPDATE_EPOCHS"], c["NUM_MINIBATCHES"]
        setup = f"64-64 {c['ACTIVATION']}, one shared, {epochs} x {minibatches}"
        rows.append((label, (setup, out["env_steps_per_s"], shipped_flops / n_rows, peer, None)))
        print(
            f"  {label}: {out['env_steps_per_s']:,.0f} env steps/s ({out['devices']})", flush=True
        )
    return rows


if __name__ == "__main__":
    main()
