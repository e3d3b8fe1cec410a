"""Flower engine overhead: the same AS training on both engines, and a round trip on each.

Rounds: wall(flower simulation) / wall(local), measured after start-up (Ray, the SuperNodes and
the agents' set-up are excluded), at the default batch of episodes per round unless
`--episodes` is given, on exchange (3 agents) and predation (8 agents), with the Flower round's
breakdown: rollout, sharing and learning round trips (client compute, serialisation and polling
included), and checkpoint state transfer. The goal on a 2-core machine is a ratio <= 1.25.

Round trips: the median wall seconds of a sharing (share) and a learning (update) round trip on
exchange (3 agents, `--trip-episodes` episodes a round, client compute included), on Flower's
simulation engine and on the deployment engine on 127.0.0.1 as docs/deploy.md runs it (TLS,
enrolled SuperNodes, `--isolation process` and a long-lived ClientApp worker per SuperNode),
then with Flower's own `flower-supernode`, then Flower's default (`--isolation subprocess`, a
`flwr-clientapp` process per message). For the worker rows, where a round trip goes: the
worker's median seconds pulling the message and Context, in the ClientApp, and pushing the
reply and Context; the rest is the SuperLink's two hops and polling. The goal: a deployment
round trip at most 3x the simulation engine's.

    python benchmarks/engine_overhead.py [--rounds 5] [--episodes N] [--only rounds|trips]
        [--trip-rounds 3] [--trip-episodes 2] [--skip-per-message] [--skip-stock] [--rpc-log]

`--rpc-log` adds, for the asfed launcher row, every process's requests to Flower's APIs per round
trip and their median latency (`asfed.engine.flower.rpclog`): a deployment round trip is a chain
of such requests, and this says how many and how slow.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import asfed.engine.loop as loop
from asfed.config import build_config
from asfed.engine.flower import rpclog
from asfed.engine.flower.federation import FlowerFederation, flower_federation
from asfed.engine.flower.localnet import LocalNet
from asfed.engine.flower.simulation import run_flower
from asfed.engine.loop import Simulation

CASES = (("exchange", 3), ("predation", 8))


def timed_rounds(sim: Simulation, rounds: int) -> float:
    sim.run_round()  # warm-up: first-round allocations, Ray actors
    start = time.perf_counter()
    for _ in range(rounds):
        sim.run_round()
    return (time.perf_counter() - start) / rounds


def flower_breakdown(sim: Simulation, rounds: int) -> dict[str, float]:
    """Seconds per round in the rollout, the share trip and the update trips; one checkpoint."""
    fed: FlowerFederation = sim.federation  # type: ignore[assignment]
    spent = {"rollout": 0.0, "share trip": 0.0, "update trips": 0.0}
    original_rollout, original_begin, original_update = loop.rollout, fed.begin, fed.update

    def clock(key, fn):
        def wrapped(*a, **k):
            t = time.perf_counter()
            out = fn(*a, **k)
            spent[key] += time.perf_counter() - t
            return out

        return wrapped

    loop.rollout = clock("rollout", original_rollout)
    fed.begin, fed.update = (
        clock("share trip", original_begin),
        clock("update trips", original_update),
    )
    try:
        for _ in range(rounds):
            sim.run_round()
    finally:
        loop.rollout = original_rollout
        fed.begin, fed.update = original_begin, original_update
    t = time.perf_counter()
    fed.checkpoint(sim.round)  # each client saves to its own storage
    checkpoint = time.perf_counter() - t
    return {**{k: v / rounds for k, v in spent.items()}, "checkpoint (when taken)": checkpoint}


def medians(trips: list[tuple[str, float]]) -> dict[str, float]:
    kinds: dict[str, list[float]] = {}
    for kind, seconds in trips:
        kinds.setdefault(kind, []).append(seconds)
    return {k: statistics.median(v) for k, v in kinds.items()}


def simulation_trips(rounds: int, episodes: int) -> dict[str, float]:
    """Median round trips on Flower's simulation engine (Ray), set-up excluded."""
    cfg = build_config(env="exchange", method="as", seed=9, episodes=episodes)

    def body(grid):
        with tempfile.TemporaryDirectory(prefix="asfed-bench-") as root:
            sim = Simulation(cfg, flower_federation(grid), agent_root=Path(root))
            for _ in range(rounds):
                sim.run_round()
            return sim.federation.trips

    return medians(run_flower(3, body))


TASK = re.compile(r"task \d+: ([\d.]+) s \(input ([\d.]+), ClientApp ([\d.]+), reply ([\d.]+)\)")
SUMMARY = re.compile(r"(\w+) \d+ x ([\d.]+) s")
PUSH = "/flwr.proto.Runtime/PushMessages"


def deployment_trips(
    rounds: int, episodes: int, stock: bool, isolation: str, rpc_log: bool = False
) -> tuple[dict[str, float], dict[str, float] | None]:
    """Median round trips of a run on a fresh deployment on 127.0.0.1 (from the ServerApp's
    closing log line), and the workers' median split of a task (None without workers). With
    `rpc_log`, prints every process's requests per round trip (`asfed.engine.flower.rpclog`)."""
    root = Path(tempfile.mkdtemp(prefix="asfed-bench-deploy-"))
    net = LocalNet(root)
    if rpc_log:
        net.env[rpclog.ENV] = str(root / "rpc")
    try:
        net.start_superlink()
        for _ in range(3):
            node = net.add_node()
            net.start_supernode(node, stock=stock, isolation=isolation)
            if isolation == "process":
                net.start_worker(node)
        nodes = " ".join(str(n.node_id) for n in net.nodes)
        res = net.run(
            f'rounds={rounds} episodes={episodes} seed=9 nodes="{nodes}" out="{root / "run"}"',
            seconds=1800,
        )
        line = next((x for x in res.stdout.splitlines() if "round trips" in x), None)
        if res.returncode != 0 or line is None:
            raise RuntimeError(f"the deployment run failed:\n{res.stdout[-3000:]}")
        trips = {k: float(v) for k, v in SUMMARY.findall(line.split(":", 2)[-1])}
        tasks = [
            tuple(float(x) for x in m)
            for i in range(3)
            for m in TASK.findall(net.log(f"worker{i}"))
        ]
        split = None
        if tasks:
            names = ("task", "input", "ClientApp", "reply")
            split = {n: statistics.median(t[j] for t in tasks) for j, n in enumerate(names)}
        if rpc_log:
            print_requests(root / "rpc", 3)
        return trips, split
    finally:
        net.close()
        shutil.rmtree(root, ignore_errors=True)


POLLS = {("worker", "AcquireTask"), ("serverapp", "PullMessages"), ("supernode", "PullMessages")}


def print_requests(folder: Path, agents: int) -> None:
    """Each role's requests per round trip and method, with their median latency, over the
    run's round trips after the set-up's and before the closing checkpoint's (each round trip
    starts with the ServerApp's one PushMessages), so that start-up's idle polls do not count."""
    requests = rpclog.read(folder)
    starts = [r.start for r in requests if (r.role, r.method) == ("serverapp", PUSH)]
    if len(starts) < 3:
        raise RuntimeError(f"the rpc log in {folder} holds {len(starts)} round trips")
    trips = len(starts) - 2
    stats = rpclog.summarise([r for r in requests if starts[1] <= r.start < starts[-1]])
    print(
        f"\nrequests per round trip ({trips} round trips, {agents} agents; per agent for the "
        "supernode and worker roles; 'poll': most of them find nothing), median latency:"
    )
    print("| process | API method | requests per round trip | median ms |")
    print("|---|---|---|---|")
    for s in stats:
        method = s.method.rsplit("/", 1)[-1]
        per = s.calls / trips / (1 if s.role == "serverapp" else agents)
        poll = " (poll)" if (s.role, method) in POLLS else ""
        print(f"| {s.role} | {method}{poll} | {per:.1f} | {1000 * s.median_s:.1f} |")
    total = {r: sum(s.calls for s in stats if s.role == r) for r in {s.role for s in stats}}
    print(
        "requests per round trip, all processes of a role together: "
        + ", ".join(f"{r} {n / trips:.1f}" for r, n in sorted(total.items()))
    )


def trips_table(args: argparse.Namespace) -> None:
    sim = simulation_trips(args.trip_rounds, args.trip_episodes)
    rows = [("simulation engine (Ray, in-process)", sim, None)]
    variants = [("deployment: asfed supernode launcher + long-lived worker", False, "process")]
    if not args.skip_stock:
        variants.append(("deployment: flower-supernode + long-lived worker", True, "process"))
    if not args.skip_per_message:
        variants.append(
            ("deployment: flower-supernode, a flwr-clientapp per message", True, "subprocess")
        )
    for name, stock, isolation in variants:
        trips, split = deployment_trips(
            args.trip_rounds, args.trip_episodes, stock, isolation, args.rpc_log and not stock
        )
        rows.append((name, trips, split))
    print(
        f"\nround trips on exchange (3 agents), {args.trip_episodes} episodes a round, "
        f"{args.trip_rounds} rounds, TLS and enrolled SuperNodes on 127.0.0.1:"
    )
    print("| engine | share s | update s | update / simulation's |")
    print("|---|---|---|---|")
    for name, trips, _ in rows:
        print(
            f"| {name} | {trips['share']:.3f} | {trips['update']:.3f} | "
            f"{trips['update'] / sim['update']:.1f} |"
        )
    for name, trips, split in rows:
        if split:
            print(
                f"{name}: a worker's task {split['task']:.3f} s (pulling the message and "
                f"Context {split['input']:.3f}, ClientApp {split['ClientApp']:.3f}, pushing the "
                f"reply and Context {split['reply']:.3f}); the rest of an update round trip, "
                f"{trips['update'] - split['task']:.3f} s, is the SuperLink's hops and polling"
            )


def rounds_table(args: argparse.Namespace) -> None:
    print("| env (agents) | episodes/round | local s/round | flower s/round | ratio |")
    print("|---|---|---|---|---|")
    details = []
    for env, n in CASES:
        cfg = build_config(env=env, method="as", agents=n, seed=1, episodes=args.episodes)
        local = timed_rounds(Simulation(cfg), args.rounds)

        def body(grid, cfg=cfg):
            with tempfile.TemporaryDirectory(prefix="asfed-bench-") as root:
                sim = Simulation(cfg, flower_federation(grid), agent_root=Path(root))
                return timed_rounds(sim, args.rounds), flower_breakdown(sim, args.rounds)

        flower, parts = run_flower(n, body)
        print(
            f"| {env} ({n}) | {cfg.num_episodes()} | {local:.3f} | {flower:.3f} | "
            f"{flower / local:.2f} |",
            flush=True,
        )
        details.append((env, parts))
    for env, parts in details:
        print(
            f"{env} flower round breakdown: "
            + ", ".join(f"{k} {v:.3f} s" for k, v in parts.items())
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=None, help="default: the run default")
    parser.add_argument("--only", choices=("rounds", "trips"), default=None)
    parser.add_argument("--trip-rounds", type=int, default=3)
    parser.add_argument("--trip-episodes", type=int, default=2)
    parser.add_argument(
        "--skip-per-message", action="store_true", help="skip the slow per-message row"
    )
    parser.add_argument(
        "--skip-stock", action="store_true", help="skip the stock flower-supernode row"
    )
    parser.add_argument(
        "--rpc-log",
        action="store_true",
        help="count the asfed launcher row's requests per process and API method",
    )
    args = parser.parse_args()
    if args.only != "trips":
        rounds_table(args)
    if args.only != "rounds":
        trips_table(args)


if __name__ == "__main__":
    main()
