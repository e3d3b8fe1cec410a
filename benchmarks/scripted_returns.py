"""Team returns of the scripted reference policies: the fixed points learners are judged against.

Predation (all-pursue, all-defect, one-pursuer for N = 2, 8, 20, 30), exchange (all-defect,
cooperative oracle), cleanup (nobody cleans, one cleans), harvest (all greedy) and navigation (an
oracle walking to its landmark), plus a uniformly random policy everywhere. Mean +- standard
deviation over episodes, fixed seed.

    python benchmarks/scripted_returns.py [--episodes 4096]
"""

from __future__ import annotations

import argparse

import numpy as np

import asfed
from asfed.envs import names, scripted


def random_policy(seed: int):
    rng = np.random.default_rng(seed)
    return lambda env, state: rng.integers(0, env.num_actions, (env.num_envs, env.num_agents))


def one_cleans(env, state):
    actions = scripted.ssd_greedy_eater(env, state)
    actions[:, 0] = scripted.cleanup_cleaner(env, state)[:, 0]
    return actions


def team(name: str, episodes: int, policy, **options) -> str:
    env = asfed.make_vec_env(name, episodes, seed=0, **options)
    totals = scripted.rollout(env, policy).sum(1)
    return f"{totals.mean():.1f} +- {totals.std():.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4096)
    args = parser.parse_args()
    e = args.episodes

    print("predation team return")
    print("| N | all-pursue | all-defect | one-pursuer | random |")
    print("|---|---|---|---|---|")
    for n in (2, 8, 20, 30):

        def profile(mask):
            return lambda env, s: scripted.predation_profile(env, s, mask)

        cells = [
            team("predation", e, profile(np.ones(n, bool)), num_agents=n),
            team("predation", e, profile(np.zeros(n, bool)), num_agents=n),
            team("predation", e, profile(np.arange(n) == 0), num_agents=n),
            team("predation", e, random_policy(n), num_agents=n),
        ]
        print(f"| {n} | " + " | ".join(cells) + " |")

    print("\nother envs, default agents")
    print("| env | policy | team return |")
    print("|---|---|---|")
    rows = [
        ("exchange", "all-defect (stay)", scripted.stay_still),
        ("exchange", "cooperative oracle", scripted.exchange_cooperative),
        ("cleanup", "nobody cleans (greedy eaters)", scripted.ssd_greedy_eater),
        ("cleanup", "one cleans, the rest eat", one_cleans),
        ("harvest", "greedy eaters", scripted.ssd_greedy_eater),
        ("navigation", "oracle (each walks to its landmark)", scripted.navigation_oracle),
    ]
    for name, label, policy in rows:
        print(f"| {name} | {label} | {team(name, min(e, 512), policy)} |")
    for name in names():
        if name != "predation":
            print(f"| {name} | uniformly random | {team(name, min(e, 512), random_policy(0))} |")


if __name__ == "__main__":
    main()
