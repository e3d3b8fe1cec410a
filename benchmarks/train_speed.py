"""Training throughput at the paper's defaults, against a compute limit measured in the same run.

For each env (default agents, Table 2 networks, the default 9,600 env steps a round) and method,
it times whole rounds of the local engine (rollout, K shares, K updates) and reports env steps of
training a second and seconds a round. The compute limit: the round's matrix FLOPs (counted by
torch's FlopCounterMode on one untimed round: every Linear forward and backward, at whatever batch
size it ran) over the GFLOP/s one core achieves on a training step of the same layer shapes (one
minibatch of the env's actor MLP, forward and backward, measured here), times the cores used.
`limit` = that time / the measured time: 1.0 means every core did nothing but those matmuls at
the speed a core reaches on them alone (in an eager autograd step: `--compile-steps` rows can
pass 1).

`CPU s/round` is the CPU time of a round, the world's and every worker's together, and `all busy`
the env steps/s that work would give spread over the row's cores with none ever idle: no
scheduling of that row's work passes it, so a goal above it needs a round of less work (the
work itself may depend on the placement: more workers pay more per-process costs). (Read from
Linux's /proc in clock ticks; "-" elsewhere.)

    python benchmarks/train_speed.py                      # all envs, AS and IPPO, 1 and 2 workers
    python benchmarks/train_speed.py --envs cleanup --layouts separate,multihead
    python benchmarks/train_speed.py --envs cleanup --ablate   # what each change bought
    python benchmarks/train_speed.py --envs cleanup --workers 1 --device cuda  # learners on a GPU
    python benchmarks/train_speed.py --envs navigation --workers 2 --compile-steps --rounds 3
    PYTHONPATH=<checkout of an older asfed> python benchmarks/train_speed.py   # "before"

`--ablate` also times, on one worker, the loop with each saving turned off again: memoised
forward passes (shares reused as pi_old, V once per update), the fused Adam kernel, AS's
stacked small networks (`asfed.agents.networks.STACK_LIMIT`; the loss keeps its neighbour block)
and lockstep minibatch steps (`asfed.agents.lockstep`: one backward and one Adam call a step for
the policies and critics of all the agents a process holds).
`--profile` shows where one in-process round's time goes (rollout, shares, the updates' matmuls,
backward passes, Adam, everything else). `--rollout` times the world's rollout alone (every
agent's acting policy on every env step of the round, and the envs' steps), which the world
runs while the workers wait: best and median of `--rollout-repeats` rollouts, in milliseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import os
import pstats
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from asfed.agents import base as agent_base
from asfed.agents import networks
from asfed.agents.hparams import paper_config

try:
    from asfed.agents import lockstep as agent_lockstep
except ImportError:  # an asfed from before lockstep
    agent_lockstep = None
from asfed.agents.networks import mlp
from asfed.config import build_config
from asfed.engine.loop import Simulation, prepare
from asfed.engine.world import rollout

try:
    from asfed.engine.placement import available_cores
except ImportError:  # an asfed from before --workers: measure it on one core ("before" rows)

    def available_cores() -> int:
        return 1


def core_gflops(obs_dim: int, hidden: tuple[int, ...], actions: int, rows: int) -> float:
    """GFLOP/s of one core on a training step of the actor MLP: forward + backward of one
    minibatch of `rows` samples (FLOPs counted by torch, time the best of several repeats)."""
    torch.set_num_threads(1)
    net = mlp([obs_dim, *hidden], actions)
    x = torch.randn(rows, obs_dim)

    def step() -> None:
        net.zero_grad()
        net(x).logsumexp(-1).mean().backward()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    for _ in range(5):
        step()
    reps = max(5, int(2e10 / max(flops, 1)))  # about 20 GFLOP a sample
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            step()
        best = min(best, (time.perf_counter() - start) / reps)
    return flops / best / 1e9


def simulation(cfg, device: str = "cpu", workers: int = 1) -> Simulation:
    """A Simulation, its learners on `device`, over `workers` processes; a keyword at its
    default is left out, as an older asfed takes neither (the "before" rows)."""
    on = {} if device == "cpu" else {"device": device}
    return Simulation(cfg, workers=workers, **on) if workers > 1 else Simulation(cfg, **on)


def round_flops(cfg, device: str = "cpu") -> float:
    """Matrix FLOPs of one round (the second: the first has no history to differ on), the
    learners on `device` (the count is the same anywhere; a GPU counts faster)."""
    sim = simulation(cfg, device)
    sim.run_round()
    with FlopCounterMode(display=False) as counter:
        sim.run_round()
    return float(counter.get_total_flops())


@contextlib.contextmanager
def ablated(
    memo: bool = True, fused: bool = True, stacked: bool = True, lockstep: bool = True
) -> Iterator[None]:
    """Turn savings off again, in this process only (ablation rows run on one worker)."""
    steps = agent_lockstep.together(lockstep) if agent_lockstep else contextlib.nullcontext()
    saved_memo, saved_adam = getattr(agent_base.Agent, "memo", None), torch.optim.Adam.__init__
    saved_limit = getattr(networks, "STACK_LIMIT", None)
    if not stacked and saved_limit is not None:
        networks.STACK_LIMIT = -1  # type: ignore[attr-defined]
    if not memo:
        agent_base.Agent.memo = lambda self, key, compute: compute()  # type: ignore[method-assign]
    if not fused:

        def per_tensor(self, params, *args, fused=None, **kwargs):
            saved_adam(self, params, *args, **kwargs)

        torch.optim.Adam.__init__ = per_tensor  # type: ignore[method-assign]
    try:
        with steps:
            yield
    finally:
        if saved_memo is not None:
            agent_base.Agent.memo = saved_memo  # type: ignore[method-assign]
        torch.optim.Adam.__init__ = saved_adam  # type: ignore[method-assign]
        if saved_limit is not None:
            networks.STACK_LIMIT = saved_limit  # type: ignore[attr-defined]


def time_rounds(cfg, workers: int, rounds: int, device: str = "cpu") -> float:
    """Seconds a round (mean of `rounds` after one warm-up round), learners on `device`."""
    return timed_rounds(cfg, workers, rounds, device)[0]


def timed_rounds(cfg, workers: int, rounds: int, device: str = "cpu") -> tuple[float, float | None]:
    """(seconds a round, CPU seconds a round of the world and its workers together), means of
    `rounds` after one warm-up round; the CPU time is None where it cannot be read (not Linux,
    or an asfed whose Simulation does not name its worker processes)."""
    sim = simulation(cfg, device, workers)
    try:
        sim.run_round()
        federation = getattr(sim, "federation", None)
        pids = [os.getpid(), *(p.pid for p in getattr(federation, "procs", []))]
        cpu_before = tree_cpu(pids)
        start = time.perf_counter()
        for _ in range(rounds):
            sim.run_round()
        seconds = (time.perf_counter() - start) / rounds
        cpu_after = tree_cpu(pids)
        if cpu_before is None or cpu_after is None or (workers > 1 and len(pids) == 1):
            return seconds, None
        return seconds, (cpu_after - cpu_before) / rounds
    finally:
        if hasattr(sim, "close"):
            sim.close()


def tree_cpu(pids: list[int]) -> float | None:
    """CPU seconds the processes `pids` have run so far, user and system, every thread of each,
    ended ones included (Linux's /proc/PID/stat, in clock ticks), or None where /proc has no
    such record. Processes they started (inductor's compile workers) are not counted."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # from field 3 (state) on
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, ValueError, IndexError):
        return None
    return total / tick


def time_rollout(cfg, repeats: int, device: str = "cpu") -> tuple[float, float]:
    """(best, median) seconds of the world's rollout alone, in-process, after one round, the
    acting policies on `device` (the envs stay on the CPU)."""
    sim = simulation(cfg, device)
    sim.run_round()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        rollout(sim.env, sim.method, sim.federation.acting, sim.acting_rng)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


PARTS = {  # cProfile entries -> what they are
    "<built-in method torch._C._nn.linear>": ("tot", "Linear forwards"),
    "<method 'run_backward' of 'torch._C._EngineBase' objects>": ("tot", "backward passes"),
    "<built-in method torch._fused_adam_>": ("tot", "Adam"),
    "<built-in method torch.relu>": ("tot", "ReLU forwards"),
}


def profile_round(cfg, device: str = "cpu") -> None:
    """Where one in-process round's time goes (after a warm-up round). On a GPU the torch
    entries time launches, not the work, which the first reads back (the rollout's) wait for."""
    sim = simulation(cfg, device)
    sim.run_round()
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    sim.run_round()
    prof.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(prof).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, callers)
    found: dict[str, float] = {}
    for (file, _, name), (_, _, tot, cum, _) in stats.items():
        key = name if file == "~" else f"{file.rsplit('/', 1)[-1]}:{name}"
        if key in PARTS:
            kind, label = PARTS[key]
            found[label] = found.get(label, 0.0) + (cum if kind == "cum" else tot)
    rollout = sum(v[3] for k, v in stats.items() if k[0].endswith("world.py") and k[2] == "rollout")
    print(f"    where a round's {total:.2f} s go (one process, profiled):")
    for label, seconds in sorted(found.items(), key=lambda kv: -kv[1]):
        print(f"      {label:<28}{seconds:>7.2f} s {100 * seconds / total:>5.1f}%")
    rest = total - sum(found.values())
    print(f"      {'the rest (Python, loss, GAE)':<28}{rest:>7.2f} s {100 * rest / total:>5.1f}%")
    print(
        f"      of which the rollout (envs and acting, its forwards included) took {rollout:.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default="cleanup,harvest,navigation,exchange,predation")
    parser.add_argument("--methods", default="as,ippo")
    parser.add_argument("--layouts", default="separate", help="AS only: separate,multihead")
    parser.add_argument("--workers", default=None, help="worker counts (default: 1 and all)")
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds per row")
    parser.add_argument("--ablate", action="store_true", help="time each saving turned off")
    parser.add_argument("--profile", action="store_true", help="where a round's time goes")
    parser.add_argument("--rollout", action="store_true", help="time the rollout alone, only")
    parser.add_argument("--rollout-repeats", type=int, default=15, help="rollouts timed a row")
    parser.add_argument(
        "--compile-steps",
        action="store_true",
        help="the rows with compile_steps (lockstep steps as compiled programs; the warm-up "
        "round compiles); FLOPs are counted eager, the same arithmetic",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="where the learners compute (cuda: a GPU; no compute limit is given there, a CPU "
        "core's rate being no GPU's limit)",
    )
    args = parser.parse_args()
    # An older asfed (PYTHONPATH=<checkout>, "before" rows) started its workers with `python -m`,
    # which imports asfed from the working directory first: from its own root they run its code.
    os.chdir(Path(agent_base.__file__).resolve().parents[2])
    on_cpu = args.device == "cpu"
    cores = available_cores()
    given = args.workers
    counts = sorted({1, cores}) if given is None else [int(w) for w in given.split(",")]
    where = "" if on_cpu else f", learners on {args.device}"
    print(f"{cores} cores; torch {torch.__version__}, one thread a worker{where}")
    header = (
        f"{'env':<11}{'method':<7}{'layout':<10}{'workers':>8}{'env steps/s':>13}"
        f"{'s/round':>9}{'GFLOP/round':>13}{'core GFLOP/s':>14}{'limit':>7}"
        f"{'CPU s/round':>13}{'all busy':>10}  note"
    )
    print(header)
    for env in args.envs.split(","):
        ppo = paper_config(env)
        for method in args.methods.split(","):
            layouts = args.layouts.split(",") if method == "as" else ["separate"]
            for layout in layouts:
                # (an older asfed has no compile_steps: the key is passed only when asked)
                compiled = {"compile_steps": True} if args.compile_steps else {}
                cfg = build_config(
                    env=env, method=method, layout=layout, engine="local", **compiled
                )
                if args.rollout:
                    best, median = time_rollout(cfg, args.rollout_repeats, args.device)
                    print(
                        f"{env:<11}{method:<7}{layout:<10}  rollout: best {best * 1e3:.1f} ms, "
                        f"median {median * 1e3:.1f} ms",
                        flush=True,
                    )
                    continue
                env_ = prepare(cfg)[1]  # sizes only: no agents built
                steps = cfg.num_episodes() * env_.horizon
                rows = max(1, steps // cfg.num_minibatches())  # one minibatch: an episode
                gflops = (
                    core_gflops(env_.obs_dim, ppo.actor_hidden, env_.num_actions, rows)
                    if on_cpu
                    else float("nan")
                )
                eager = dataclasses.replace(cfg, compile_steps=False) if compiled else cfg
                flops = round_flops(eager, args.device)
                variants: list[tuple[int, dict, str]] = [(w, {}, "") for w in counts]
                if args.ablate:
                    variants += [
                        (1, {"memo": False}, "memo off"),
                        (1, {"fused": False}, "fused Adam off"),
                        (1, {"memo": False, "fused": False}, "both off"),
                        (1, {"stacked": False}, "stacking off"),
                        (1, {"lockstep": False}, "lockstep off"),
                    ]
                base = None
                for w, off, note in variants:
                    with ablated(**off):
                        seconds, cpu = timed_rounds(cfg, w, args.rounds, args.device)
                    # The work of a round spread over the row's cores with none idle (the
                    # world runs on them too): what no scheduling of this row's work can beat.
                    busy = "-" if cpu is None else f"{steps * min(w, cores) / cpu:,.0f}"
                    cpu_text = "-" if cpu is None else f"{cpu:.3f}"
                    if w == 1 and not off:
                        base = seconds
                    limit = flops / (gflops * 1e9 * w) / seconds
                    if base is not None and (w > 1 or off):
                        note = (note + "; " if note else "") + f"x{base / seconds:.2f} vs 1 worker"
                    if not on_cpu:
                        note = (
                            note + "; " if note else ""
                        ) + f"{flops / seconds / 1e9:.1f} GFLOP/s"
                    print(
                        f"{env:<11}{method:<7}{layout:<10}{w:>8}{steps / seconds:>13,.0f}"
                        f"{seconds:>9.2f}{flops / 1e9:>13,.0f}{gflops:>14.1f}{limit:>7.2f}"
                        f"{cpu_text:>13}{busy:>10}  {note}",
                        flush=True,
                    )
                if args.profile:
                    profile_round(cfg, args.device)


if __name__ == "__main__":
    main()
