"""Wall time for AS on exchange to reach a team return of 5 (the cooperative optimum is about +6,
all-defect -9), and the env-steps/s of training on the way.

Runs the local engine in-process round by round, until the mean team return over the last
`--window` rounds reaches `--target` or `--minutes` run out, and prints a time breakdown.

    python benchmarks/time_to_target.py [--minutes 10] [--target 5] [--actor-lr 5e-5] [--rho 1e4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from asfed.config import build_config
from asfed.engine.loop import Simulation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--target", type=float, default=5.0)
    parser.add_argument(
        "--window", type=int, default=20, help="rounds averaged (a random policy scores 4.2 +- 4)"
    )
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--actor-lr", type=float, default=None, help="paper: 5e-5")
    parser.add_argument("--critic-lr", type=float, default=None, help="paper: 1e-4")
    parser.add_argument("--rho", type=float, default=None, help="paper: 1e4")
    parser.add_argument("--layout", default="separate")
    args = parser.parse_args()

    cfg = build_config(
        env="exchange",
        method="as",
        seed=args.seed,
        episodes=args.episodes,
        rounds=10**9,
        actor_lr=args.actor_lr,
        critic_lr=args.critic_lr,
        rho=args.rho,
        layout=args.layout,
    )
    sim = Simulation(cfg)
    ppo = cfg.ppo()
    print(
        f"AS on exchange: rho={ppo.rho:g} actor_lr={ppo.actor_lr:g} critic_lr={ppo.critic_lr:g} "
        f"episodes/round={cfg.episodes} layout={cfg.layout} seed={cfg.seed}"
    )
    returns: list[float] = []
    env_steps, reached = 0, None
    start = time.perf_counter()
    while time.perf_counter() - start < args.minutes * 60:
        metrics, _ = sim.run_round()
        returns.append(metrics["team_return"])
        env_steps += cfg.episodes * sim.env.horizon
        avg = float(np.mean(returns[-args.window :]))
        if sim.round % 25 == 0:
            elapsed = time.perf_counter() - start
            print(
                f"  round {sim.round:5d}  {elapsed:6.0f} s  team return (last {args.window}) "
                f"{avg:6.2f}",
                flush=True,
            )
        if len(returns) >= args.window and avg >= args.target:
            reached = time.perf_counter() - start
            break
    wall = time.perf_counter() - start
    print(f"env-steps/s of training: {env_steps / wall:,.0f} ({sim.round} rounds, {wall:.0f} s)")
    if reached is None:
        w = min(args.window, len(returns))
        best = max(np.convolve(returns, np.ones(w) / w, "valid"))
        print(
            f"team return >= {args.target} (mean of {args.window} rounds): NOT reached in "
            f"{args.minutes:g} min; best mean of {w} rounds {best:.2f}"
        )
    else:
        print(
            f"team return >= {args.target} (mean of {args.window} rounds) reached after "
            f"{reached:.0f} s = {reached / 60:.1f} min, round {sim.round}; goal <= 10 min: "
            f"{'met' if reached <= 600 else 'missed'}"
        )


if __name__ == "__main__":
    main()
