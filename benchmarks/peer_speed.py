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

The JAX sides run in their own environment (`bash benchmarks/peer/setup.sh .venv-bench`, then
`--bench-python .venv-bench/bin/python`). Their FLOPs are counted from the networks' shapes
(matrix products of the rollout's forwards and of each epoch's forward and backward), as torch
counts asfed's; XLA's own cost analysis counts a scanned loop's body once and is not used.

    python benchmarks/peer_speed.py --bench-python .venv-bench/bin/python \\
        --jaxmarl-repo ../JaxMARL

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
from asfed.config import build_config
from asfed.engine.loop import prepare
from asfed.engine.placement import available_cores
from asfed.lifetime import guard_descendants

HERE = Path(__file__).resolve().parent
ASFED_SETUP = "128-64 ReLU, separate, K=3 x 96 of 100 rows"


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
    args = parser.parse_args()
    if shutil.which(args.bench_python) is None:
        sys.exit(
            f"no JAX environment at {args.bench_python}: run "
            "`bash benchmarks/peer/setup.sh .venv-bench`"
        )
    guard_descendants()  # the JAX sides (plain subprocesses) die with a killed benchmark too
    cores = available_cores()
    measured: dict[str, tuple[str, list[float], float, str]] = {}  # label -> setup, sps, FLOPs
    failed: dict[str, list[str]] = {}  # label -> its errors, a failed pass each
    for r in range(args.repeats):
        if args.repeats > 1:
            print(f"pass {r + 1} of {args.repeats}", flush=True)
        for label, outcome in measure(args, cores):
            if isinstance(outcome, str):
                failed.setdefault(label, []).append(outcome)
                continue
            setup, sps, fps, peer = outcome
            measured.setdefault(label, (setup, [], fps, peer))[1].append(sps)
    rows = {
        label: (setup, statistics.median(values), fps, peer, values)
        for label, (setup, values, fps, peer) in measured.items()
    }
    print()
    head = ["system", "networks, schedule", "env steps/s", "MFLOP / env step", "GFLOP/s"]
    print("| " + " | ".join([*head, "vs JAX IPPO, same networks and cores"]) + " |")
    print("|---" * (len(head) + 1) + "|")
    for label, (setup, sps, fps, peer, values) in rows.items():
        ratio = f"{sps / rows[peer][1]:.2f}" if peer in rows else "-"
        spread = f" ({min(values):,.0f}-{max(values):,.0f})" if len(values) > 1 else ""
        cells = [label, setup, f"{sps:,.0f}{spread}", f"{fps / 1e6:.2f}", f"{sps * fps / 1e9:.1f}"]
        print("| " + " | ".join([*cells, ratio]) + " |")
    for label, errors in failed.items():
        passes = f" in {len(errors)} of {args.repeats} passes" if label in rows else ""
        print(f"not measured{passes}: {label}: {errors[-1]}")
    if failed:
        sys.exit(1)


def measure(
    args: argparse.Namespace, cores: int
) -> list[tuple[str, tuple[str, float, float, str] | str]]:
    """One pass over every row, one system after the other: (label, (setup, env steps/s, FLOPs
    an env step, the label of the JAX row it is compared with)) each, or (label, error) for a
    row that failed."""
    rows: list[tuple[str, tuple[str, float, float, str] | str]] = []
    on_cpu = args.device == "cpu"
    peer_all = (
        f"JAX IPPO, asfed's networks, {cores} cores"
        if on_cpu
        else "JAX IPPO, asfed's networks, GPU"
    )
    peer_one = "JAX IPPO, asfed's networks, 1 core" if on_cpu else peer_all

    cfg0 = build_config(env="navigation", method="ippo", engine="local")
    env0 = prepare(cfg0)[1]
    steps = cfg0.num_episodes() * env0.horizon
    ppo = paper_config("navigation")
    where = f"{cores} cores" if on_cpu else f"learners on {args.device}"
    print(f"{where}; navigation: {env0.num_agents} agents, {steps:,} env steps a round")
    variants = [False, True] if args.compile_steps else [False]
    flops_of: dict[str, float] = {}  # a method's FLOPs an env step, compiled or not the same
    for method, compiled in itertools.product(args.methods.split(","), variants):
        cfg = build_config(env="navigation", method=method, engine="local", compile_steps=compiled)
        for workers in sorted({1, cores}) if on_cpu else [1]:
            label = f"asfed {method}{' compiled' if compiled else ''}, "
            label += f"{workers} worker{'s' if workers > 1 else ''}"
            if not on_cpu:
                label += f" ({args.device})"
            try:
                if method not in flops_of:  # counted once, eager
                    eager = dataclasses.replace(cfg, compile_steps=False)
                    flops_of[method] = round_flops(eager, args.device) / steps
                seconds = time_rounds(cfg, workers, args.rounds, args.device)
            except Exception as error:  # reported; the other rows are still measured
                traceback.print_exc()
                rows.append((label, f"{type(error).__name__}: {error}"))
                continue
            peer = peer_one if workers == 1 else peer_all
            rows.append((label, (ASFED_SETUP, steps / seconds, flops_of[method], peer)))
            print(f"  {label}: {steps / seconds:,.0f} env steps/s", flush=True)

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
        rows.append((label, (ASFED_SETUP, out["env_steps_per_s"], jax_flops, label)))
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
        flops = peer_flops(
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
        rows.append((label, (setup, out["env_steps_per_s"], flops / n_rows, peer)))
        print(
            f"  {label}: {out['env_steps_per_s']:,.0f} env steps/s ({out['devices']})", flush=True
        )
    return rows


if __name__ == "__main__":
    main()
