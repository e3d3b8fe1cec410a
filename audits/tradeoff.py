"""The privacy-performance trade-off: train every (method, epsilon, seed) point, audit it, and
draw team return and attack success against epsilon.

Points train in a process pool over the cores (one torch thread each); a point whose run folder
already holds its rounds is reused, so an interrupted sweep continues where it stopped. Each point
is audited with reward-type and reward-inversion (the relay attacking every agent), beside the
actions-only baseline; the CSV also holds the accountant's epsilon and the lower bound on epsilon
that the per-episode guesses imply (`audits.empirical`). Epsilon covers the messages only: the
public trajectory is not covered.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import math
import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from asfed.atomic import atomic_write
from asfed.config import RunConfig, build_config
from asfed.csvfile import read_rows
from asfed.lifetime import die_with_parent
from audits import scoring
from audits.empirical import accuracy_ceiling, epsilon_lower_bound

BUDGET = {"rounds": 30, "episodes": 8, "log_every": 3}
FIELDS = (
    "method", "epsilon_target", "seed", "team_return", "epsilon_accountant", "epsilon_empirical",
    "type_accuracy", "type_baseline", "type_chance", "inversion_r", "inversion_baseline", "run",
)  # fmt: skip


def parse_epsilons(text: str) -> list[float]:
    """`0.5,1,inf` -> [0.5, 1.0, inf] (inf: no noise)."""
    from asfed.errors import AsfedError

    out = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise AsfedError(f"epsilon {part!r} is invalid; accepted: numbers > 0 or inf") from None
        if not value > 0:
            raise AsfedError(f"epsilon {part!r} is invalid; accepted: numbers > 0 or inf")
        out.append(value)
    return out


def point_config(env: str, method: str, epsilon: float, seed: int, **budget: Any) -> RunConfig:
    settings = {**BUDGET, **{k: v for k, v in budget.items() if v is not None}}
    dp = {} if math.isinf(epsilon) else {"dp_epsilon": epsilon}
    return build_config(env=env, method=method, seed=seed, engine="local", **settings, **dp)


def point_folder(out: Path, cfg: RunConfig) -> Path:
    eps = "inf" if cfg.dp_epsilon is None else f"{cfg.dp_epsilon:g}"
    return Path(out) / f"{cfg.env}_{cfg.method}_eps{eps}_s{cfg.seed}"


def _train(cfg: RunConfig, path: Path) -> str:
    """Train one point to its rounds (reusing what is on disk). Runs in a worker process."""
    import torch

    from asfed.engine.driver import resume, start, train
    from asfed.runs import CONFIG

    torch.set_num_threads(1)
    if len(read_rows(path / "metrics.csv")) >= cfg.rounds:
        return str(path)  # finished: reused as it is
    if (path / CONFIG).exists():
        sim, run, rows = resume(path, cfg.rounds)
    else:
        sim, run, rows = start(cfg, path)
    train(sim, run, rows)
    return str(path)


def _audit(path: str) -> dict[str, Any]:
    """Audit one trained point. Runs in a worker process."""
    import torch

    from attacks.view import run_config
    from audits.audit import audit_run

    torch.set_num_threads(1)
    cfg = run_config(Path(path))
    metrics = read_rows(Path(path) / "metrics.csv")
    scores = audit_run(Path(path), ["reward-type", "reward-inversion"])
    kind = {q: [s for s in scores if s.attack == q] for q in ("reward-type", "reward-inversion")}
    types = kind["reward-type"]
    scored = [s for s in types if s.score is not None]
    hits = sum(round(s.score * s.extra["episodes"]) for s in scored)
    n = int(sum(s.extra["episodes"] for s in scored))
    k = round(1 / types[0].chance)
    mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
    tail = metrics[-5:]
    return {
        "method": cfg.method,
        "epsilon_target": math.inf if cfg.dp_epsilon is None else cfg.dp_epsilon,
        "seed": cfg.seed,
        "team_return": mean([float(r["team_return"]) for r in tail]),
        "epsilon_accountant": float(metrics[-1].get("epsilon", math.inf)),
        "epsilon_empirical": epsilon_lower_bound(hits, n, k, cfg.dp_delta) if n else 0.0,
        "type_accuracy": mean([s.score for s in scored]),
        "type_baseline": mean([s.baseline for s in types]),
        "type_chance": 1 / k,
        "inversion_r": mean([s.score for s in kind["reward-inversion"] if s.score is not None]),
        "inversion_baseline": mean([s.baseline for s in kind["reward-inversion"]]),
        "run": path,
    }  # fmt: skip


def run_tradeoff(
    env: str,
    methods: list[str],
    epsilons: list[float],
    seeds: list[int],
    out: Path,
    workers: int,
    progress: Callable[[str], None] | None = None,
    **budget: Any,
) -> list[dict[str, Any]]:
    """Train and audit every point; returns one row per point (see FIELDS)."""
    configs = [
        point_config(env, m, e, s, **budget) for m in methods for e in epsilons for s in seeds
    ]  # every config is checked before anything runs
    paths = [point_folder(out, c) for c in configs]
    Path(out).mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=die_with_parent, initargs=(os.getpid(),)
    ) as pool:
        for done in cf.as_completed(
            [pool.submit(_train, c, p) for c, p in zip(configs, paths, strict=True)]
        ):
            path = done.result()
            if progress:
                progress(f"trained {Path(path).name}")
        rows = []
        for done in cf.as_completed([pool.submit(_audit, str(p)) for p in paths]):
            rows.append(done.result())
            if progress:
                progress(f"audited {Path(rows[-1]['run']).name}")
    order = {str(p): i for i, p in enumerate(paths)}
    return sorted(rows, key=lambda r: order[r["run"]])


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(FIELDS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, buf.getvalue().encode())


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, epsilon): means over seeds with 95% bootstrap intervals over seeds."""
    out = []
    keys = sorted({(r["method"], r["epsilon_target"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for method, eps in keys:
        pts = [r for r in rows if r["method"] == method and r["epsilon_target"] == eps]
        entry: dict[str, Any] = {"method": method, "epsilon_target": eps, "seeds": len(pts)}
        for field in (
            "team_return",
            "type_accuracy",
            "type_baseline",
            "inversion_r",
            "epsilon_accountant",
            "epsilon_empirical",
        ):
            raw = [float(p[field]) for p in pts]
            values = [v for v in raw if np.isfinite(v)]
            infinite = any(math.isinf(v) for v in raw)
            entry[field] = float(np.mean(values)) if values else math.inf if infinite else math.nan
            entry[field + "_ci"] = scoring.cluster_bootstrap(values)
        entry["type_chance"] = pts[0]["type_chance"]
        out.append(entry)
    return out


def figure(path: Path, summary: list[dict[str, Any]], env: str, delta: float) -> None:
    """Team return vs epsilon and reward-type accuracy vs epsilon, with 95% CIs, chance, the
    actions-only baseline and the accuracy ceiling epsilon implies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = sorted({s["epsilon_target"] for s in summary if math.isfinite(s["epsilon_target"])})
    inf_x = (max(finite) * 4) if finite else 1.0
    xpos = lambda e: inf_x if math.isinf(e) else e  # noqa: E731
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for method in sorted({s["method"] for s in summary}):
        pts = sorted(
            (s for s in summary if s["method"] == method), key=lambda s: xpos(s["epsilon_target"])
        )
        x = [xpos(s["epsilon_target"]) for s in pts]
        for ax, field in ((left, "team_return"), (right, "type_accuracy")):
            y = [s[field] for s in pts]
            lo = [
                s[field + "_ci"][0] if s[field + "_ci"] else v for s, v in zip(pts, y, strict=True)
            ]
            hi = [
                s[field + "_ci"][1] if s[field + "_ci"] else v for s, v in zip(pts, y, strict=True)
            ]
            line = ax.plot(x, y, marker="o", label=method)[0]
            ax.fill_between(x, lo, hi, alpha=0.2, color=line.get_color())
    base = [s["type_baseline"] for s in summary]
    right.axhline(float(np.mean(base)), color="grey", ls=":", label="actions-only baseline")
    k = round(1 / summary[0]["type_chance"])
    right.axhline(1 / k, color="black", ls="--", label=f"chance (1/{k})")
    grid = np.geomspace(min(finite) if finite else 0.1, inf_x, 200)
    right.plot(
        grid,
        [accuracy_ceiling(e, k, delta) for e in grid],
        color="tab:red",
        lw=0.8,
        label="ceiling epsilon allows",
    )
    for ax, title in (
        (left, "team return (last 5 rounds)"),
        (right, "reward-type accuracy (relay)"),
    ):
        ax.set_xscale("log")
        ax.set_xticks([*finite, inf_x], [f"{e:g}" for e in finite] + ["inf"])
        ax.set_xlabel("epsilon (messages only; the public trajectory is not covered)", fontsize=8)
        ax.set_title(f"{env}: {title}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    right.set_ylim(0, 1.02)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
