"""The runs an audit trains (`asfed audit --env`): one run per (method, seed) under one folder, at
a small stated budget, as a plan for the experiments' one runner (finished runs are reused,
interrupted ones continued)."""

from __future__ import annotations

import dataclasses
import re

from asfed.config import build_config
from asfed.experiments.plan import Point, Sweep, code_plan

# A small stated default budget: 30 rounds of 8 episodes, every third round logged and recorded.
BUDGET = {"rounds": 30, "episodes": 8, "log_every": 3}


def plan(env: str, methods: list[str], seeds: list[int], **budget: int | None) -> Sweep:
    """Every (method, seed) run at the budget, named `<env>_<method>_s<seed>`; every config is
    checked before anything is trained."""
    settings = {**BUDGET, **{k: v for k, v in budget.items() if v is not None}}
    points = []
    for m in methods:
        for s in seeds:
            cfg = build_config(env=env, method=m, seed=s, engine="local", **settings)
            points.append(Point(f"{env}_{m}_s{s}", {"method": m}, cfg))
    return code_plan(f"audit-{env}", f"Runs trained for an audit on {env}", points)


SHADOW_SEED = 1000  # shadow run seeds start past it, so no shadow shares a target's seed


def shadow_plan(targets: Sweep, seeds: list[int]) -> Sweep:
    """The shadow runs of a plan: each of its distinct configs (its points but for the seed) at
    seeds SHADOW_SEED + s, named like the targets with that seed. Their secrets are drawn as any
    run's are, so none is a target's."""
    points, seen = [], set()
    for p in targets.points:
        stem = re.sub(r"_s\d+$", "", p.name)
        if stem in seen:
            continue
        seen.add(stem)
        for s in seeds:
            cfg = dataclasses.replace(p.config, seed=SHADOW_SEED + s)
            points.append(Point(f"{stem}_s{SHADOW_SEED + s}", p.point, cfg))
    return code_plan(
        f"{targets.scenario}-shadows", f"Shadow runs for an audit of {targets.title}", points
    )
