"""Audit speed: seconds to audit a run the size of a finished 300-round run, every attack.

A 300-round navigation run at the default batch (96 episodes a round) logging every 10th round
keeps 30 rounds of messages and public records; this benchmark trains AS for 30 rounds logging
every round (the same records, in a tenth of the training), and two shadow runs at the same
config (other seeds and secrets), then times `asfed audit`'s attacks with the relay attacking
every victim: the one-step, update and shadow reward-type attacks and reward inversion. It times
the audit twice: first with the shadows' features still to compute, then with them cached (what
"once its shadow runs exist" means). The goal on a 2-core machine is <= 60 s.

    python benchmarks/audit_speed.py [--rounds 30] [--episodes 96] [--out /tmp/asfed-audit-bench]
    python benchmarks/audit_speed.py --env exchange --rho 10 --episodes 32   # 300-round exchange

With `--target RUN --shadows FOLDER` it trains nothing and times the audit of a finished run
against shadows that already exist (e.g. a run of `asfed audit --scenario privacy-exchange-paper`
and its `shadows/`), twice as above.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from asfed.config import build_config
from asfed.engine.driver import start, train
from audits.audit import QUESTIONS, Shadows, audit_runs
from audits.shadows import check, learn, matching


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=96)
    parser.add_argument("--env", default="navigation", help="env of the trained runs")
    parser.add_argument("--method", default="as", help="method of the trained runs")
    parser.add_argument("--rho", type=float, help="AS's rho (default: the env's Table 2 value)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/asfed-audit-bench"))
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="runs attacked at once (one run: one process is used)",
    )
    parser.add_argument("--target", type=Path, help="a finished run to audit (trains nothing)")
    parser.add_argument("--shadows", type=Path, help="with --target: its shadow runs' folder")
    args = parser.parse_args()
    if (args.target is None) != (args.shadows is None):
        parser.error("--target and --shadows go together")
    if args.target is not None:
        candidates = sorted(p for p in args.shadows.iterdir() if (p / "config.toml").exists())
        time_audit(args.target, matching(args.target, candidates), args.workers)
        return
    shutil.rmtree(args.out, ignore_errors=True)
    runs = []
    t = time.perf_counter()
    for seed in (1, 1001, 1002):  # the target, then its two shadows
        cfg = build_config(
            env=args.env,
            method=args.method,
            rho=args.rho,
            rounds=args.rounds,
            episodes=args.episodes,
            log_every=1,
            engine="local",
            seed=seed,
        )
        sim, run, rows = start(cfg, args.out / f"s{seed}")
        train(sim, run, rows)
        runs.append(run.path)
    print(
        f"trained 3 runs of {args.rounds} logged rounds of {args.episodes} episodes in "
        f"{time.perf_counter() - t:.0f} s"
    )
    time_audit(runs[0], runs[1:], args.workers)


def time_audit(target: Path, shadows: list[Path], workers: int) -> None:
    """Time every attack on `target`, first as the shadows' features stand, then cached, with
    `workers` runs attacked at once (as `asfed audit --workers`; one target: one process)."""
    check([target], shadows)
    for label in ("shadow features computed", "shadow features cached"):
        t = time.perf_counter()
        models = Shadows(*learn(shadows, "relay"), runs=len(shadows))
        shadows_of = {str(target): models}
        scores = audit_runs([target], list(QUESTIONS), "relay", None, shadows_of, workers)
        total = time.perf_counter() - t
        print(
            f"{', '.join(QUESTIONS)}; relay, {len(scores) // len(QUESTIONS)} victims, "
            f"{workers} process(es), "
            f"{label}: {total:.1f} s (goal <= 60 s): {'met' if total <= 60 else 'missed'}"
        )


if __name__ == "__main__":
    main()
