"""Audit speed: seconds to audit a run the size of a finished 300-round run.

A 300-round navigation run at the default batch (96 episodes a round) logging every 10th round
keeps 30 rounds of messages and public records; this benchmark trains AS for 30 rounds logging
every round (the same records, in a tenth of the training), then times `asfed audit`'s two
attacks with the relay as attacker, every victim. The goal on a 2-core machine is <= 60 s.

    python benchmarks/audit_speed.py [--rounds 30] [--episodes 96] [--out /tmp/asfed-audit-bench]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from asfed.config import build_config
from asfed.engine.driver import start, train
from audits.audit import audit_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=96)
    parser.add_argument("--out", type=Path, default=Path("/tmp/asfed-audit-bench"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    cfg = build_config(
        env="navigation",
        method="as",
        rounds=args.rounds,
        episodes=args.episodes,
        log_every=1,
        engine="local",
        seed=1,
    )
    t = time.perf_counter()
    sim, run, rows = start(cfg, args.out)
    train(sim, run, rows)
    print(
        f"trained {args.rounds} logged rounds of {args.episodes} episodes in "
        f"{time.perf_counter() - t:.0f} s"
    )
    t = time.perf_counter()
    scores = audit_run(args.out, ["reward-type", "reward-inversion"])
    total = time.perf_counter() - t
    print(
        f"reward-type and reward-inversion, relay, {len(scores) // 2} victims: {total:.1f} s "
        f"(goal <= 60 s): {'met' if total <= 60 else 'missed'}"
    )


if __name__ == "__main__":
    main()
