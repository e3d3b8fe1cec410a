"""Train what an audit needs: one run per (method, seed) under one folder, reusing finished runs
and continuing interrupted ones (the local engine: the same numbers as Flower's, faster)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from asfed.config import build_config
from asfed.csvfile import read_rows
from asfed.engine.driver import resume, start, train
from asfed.runs import CONFIG

# A small stated default budget: 30 rounds of 8 episodes, every third round logged and recorded.
BUDGET = {"rounds": 30, "episodes": 8, "log_every": 3}


def run_folder(out: Path, env: str, method: str, seed: int) -> Path:
    return Path(out) / f"{env}_{method}_s{seed}"


def ensure_runs(
    env: str,
    methods: list[str],
    seeds: list[int],
    out: Path,
    on_round: Callable[[], None] | None = None,
    **budget: int,
) -> list[Path]:
    """Every (method, seed) run, trained to the budget (finished runs are not redone)."""
    settings = {**BUDGET, **{k: v for k, v in budget.items() if v is not None}}
    configs = {
        (m, s): build_config(env=env, method=m, seed=s, engine="local", **settings)
        for m in methods
        for s in seeds
    }  # every config is checked before anything is trained
    paths = []
    for (method, seed), cfg in configs.items():
        path = run_folder(out, env, method, seed)
        paths.append(path)
        if len(read_rows(path / "metrics.csv")) >= cfg.rounds:
            continue  # finished: reused as it is
        if (path / CONFIG).exists():
            sim, run, rows = resume(path, cfg.rounds)
        else:
            sim, run, rows = start(cfg, path)
        train(sim, run, rows, (lambda _m: on_round()) if on_round else None)
    return paths


def rounds_to_train(env: str, methods: list[str], seeds: list[int], out: Path, rounds: int) -> int:
    """How many rounds `ensure_runs` still has to play (for a progress bar)."""
    total = 0
    for m in methods:
        for s in seeds:
            done = len(read_rows(run_folder(out, env, m, s) / "metrics.csv"))
            total += max(0, rounds - done)
    return total
