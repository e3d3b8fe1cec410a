"""The privacy-performance trade-off: train every (method, epsilon, seed) point, audit it, and
draw team return and attack success against epsilon.

The points are a plan trained by the experiments' one runner (a process pool or Ray, with its
resume, progress and manifest); a point whose run folder already holds its rounds and its row is
reused, so an interrupted trade-off continues where it stopped. Each point is audited, as its
post-run step, with reward-type, the update attack and reward-inversion (the relay attacking every
agent), beside the actions-only baseline. The update attack is the strongest attack that needs no
shadow runs (docs/audits.md: it names every agent's secret where the one-step attack names some),
and its leakage is its accuracy minus the actions-only attacker's, over secrets. At the summary
each point also gets the shadow attack, its other seeds as its shadow runs (`_shadow_scores`),
whose leakage is the frontier's where a point has the seeds for it. A trial is a secret: each
point's accuracies are the shares of its agents whose run-level guess is right. The summary's
empirical epsilon is a 95% lower bound over independent secrets, one agent a seed
(`audits.empirical`): a handful of seeds can certify little, and that is what it says;
`audits.dp_check` audits the mechanism itself with many releases. Epsilon covers the messages
only: the public trajectory is not covered.

A point whose training diverged (`asfed.experiments.runner.DIVERGED`: DP noise mixed into shared
parameters can do that) is a result: its row says where (`diverged`), its measured fields are
NaN, and the summary counts it apart from the seeds it averages (`diverged` of `seeds`).

A trade-off is a sweep: `plan` crosses methods x epsilons x seeds at the audit's small budget;
`scenario_plan` crosses a named scenario's grid (e.g. one where the methods learn) with the
epsilons, as `asfed sweep NAME --set dp_epsilon=...` would, and audits every point.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from asfed.atomic import atomic_write
from asfed.config import RunConfig, build_config
from asfed.csvfile import read_rows
from asfed.errors import AsfedError
from asfed.experiments.audit_runs import BUDGET
from asfed.experiments.observers import TRADEOFF_POINT_FILE
from asfed.experiments.plan import Point, Sweep, code_plan, load_sweep
from asfed.plots import Labels, legend_outside, place_labels, png_bytes
from asfed.runs import FINAL_WINDOW
from audits import scoring
from audits.empirical import accuracy_ceiling, epsilon_lower_bound

FIELDS = (
    "method", "epsilon_target", "seed", "team_return", "epsilon_accountant", "epsilon_pair",
    "type_secrets", "type_chance", "type_accuracy", "update_accuracy", "type_baseline",
    "update_first_hit", "baseline_first_hit", "inversion_r", "inversion_baseline", "run",
    "secrets", "diverged",
)  # fmt: skip
# "diverged": None, or where the point's training diverged (its other measured fields NaN).
# Rows written before it existed lack it: a diverged run failed then, so they finished.
OPTIONAL = ("diverged",)
# Each scored secret of a point: {"victim", "truth", "features" [K, 3]}, the shadow attack's
# per-hypothesis features (`attacks.shadow.features`: the update, one-step and actions-only
# scores, centred), so the points' other seeds can serve as its shadow runs (`_shadow_scores`).
# The type attacks a point is audited with; "update" is the strongest without shadows.
TYPE_ATTACKS = ("reward-type", "update")


def parse_epsilons(text: str) -> list[float]:
    """`0.5,1,inf` -> [0.5, 1.0, inf] (inf: no noise)."""
    out = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise AsfedError(f"epsilon {part!r} is invalid; accepted: numbers > 0 or inf") from None
        if not value > 0:
            raise AsfedError(f"epsilon {part!r} is invalid; accepted: numbers > 0 or inf")
        if out and value <= out[-1]:
            raise AsfedError(
                f"epsilon grid {text!r} is not increasing at {part!r}; accepted: an increasing "
                "list, e.g. 1,16,256,4096,inf"
            )
        out.append(value)
    return out


def point_config(env: str, method: str, epsilon: float, seed: int, **budget: Any) -> RunConfig:
    settings = {**BUDGET, **{k: v for k, v in budget.items() if v is not None}}
    dp = {} if math.isinf(epsilon) else {"dp_epsilon": epsilon}
    return build_config(env=env, method=method, seed=seed, engine="local", **settings, **dp)


def point_name(cfg: RunConfig) -> str:
    """A point's run folder: `<env>_<method>_eps<epsilon>_s<seed>` (eps inf: no noise)."""
    eps = "inf" if cfg.dp_epsilon is None else f"{cfg.dp_epsilon:g}"
    return f"{cfg.env}_{cfg.method}_eps{eps}_s{cfg.seed}"


def audit_point(path: Path) -> dict[str, Any]:
    """One trained point's row (see FIELDS): its team return, its accountant's epsilon and its
    audit (the relay attacking every agent), beside the actions-only baseline."""
    from attacks import reward_type
    from attacks.view import run_config
    from audits.audit import audit_run

    cfg = run_config(Path(path))
    metrics = read_rows(Path(path) / "metrics.csv")[: cfg.rounds]  # the point's rounds only
    typed = reward_type.applies(cfg.env, cfg.env_options())  # predation's agents have no type
    questions = (*(TYPE_ATTACKS if typed else ()), "reward-inversion")
    scores = audit_run(Path(path), list(questions))
    kind = {q: [s for s in scores if s.attack == q] for q in (*TYPE_ATTACKS, "reward-inversion")}
    updates = kind["update"]
    # the secrets both type attacks scored (a victim that received nothing is scored by neither)
    victims = {s.victim for s in updates if s.score is not None} & {
        s.victim for s in kind["reward-type"] if s.score is not None
    }
    scored = {q: [s for s in kind[q] if s.victim in victims] for q in TYPE_ATTACKS}
    first = scored["update"][0] if victims else None  # one secret a seed
    chance = updates[0].chance if updates else math.nan  # no type: nothing to guess
    mean = lambda xs: float(np.mean(xs)) if xs else float("nan")  # noqa: E731
    tail = metrics[-FINAL_WINDOW:]
    by = {(s.attack, s.victim): s for s in scores}
    secrets = [
        {
            "victim": j,
            "truth": by["update", j].truth,
            "features": _centred(
                by["update", j].scores, by["reward-type", j].scores, by["update", j].baseline_scores
            ),
        }
        for j in sorted(victims)
    ]
    return {
        "method": cfg.method,
        "epsilon_target": math.inf if cfg.dp_epsilon is None else cfg.dp_epsilon,
        "seed": cfg.seed,
        "team_return": mean([float(r["team_return"]) for r in tail]),
        "epsilon_accountant": float(metrics[-1].get("epsilon", math.inf)),
        "epsilon_pair": _pair_epsilon(metrics[-1]),
        "type_secrets": len(victims),
        "type_chance": 1 / round(1 / chance) if typed else math.nan,
        "type_accuracy": mean([s.score for s in scored["reward-type"]]),
        "update_accuracy": mean([s.score for s in scored["update"]]),
        "type_baseline": mean([s.baseline for s in scored["update"]]),
        "update_first_hit": first.score if first else math.nan,
        "baseline_first_hit": first.baseline if first else math.nan,
        "inversion_r": mean([s.score for s in kind["reward-inversion"] if s.score is not None]),
        "inversion_baseline": mean([s.baseline for s in kind["reward-inversion"]]),
        "run": str(path),
        "secrets": secrets,
        "diverged": None,
    }  # fmt: skip


def diverged_point(path: Path, where: dict[str, Any]) -> dict[str, Any]:
    """The row of a point whose training diverged (`where`: the run's `DIVERGED` record): who
    it is, where it diverged, and NaN for what a diverged run cannot measure."""
    from attacks.view import run_config

    cfg = run_config(Path(path))
    nan = math.nan
    measured = {f: nan for f in FIELDS if f not in ("method", "epsilon_target", "seed")}
    return {
        **measured,
        "method": cfg.method,
        "epsilon_target": math.inf if cfg.dp_epsilon is None else cfg.dp_epsilon,
        "seed": cfg.seed,
        "type_secrets": 0,
        "run": str(path),
        "secrets": [],
        "diverged": f"after {where['rounds']} rounds: {where['error']}",
    }


def checked_fields(row: Any) -> bool:
    """Whether a row has exactly FIELDS (or FIELDS without OPTIONAL: an older row)."""
    return isinstance(row, dict) and set(row) in (set(FIELDS), set(FIELDS) - set(OPTIONAL))


def _centred(*columns: list[float]) -> list[list[float]]:
    """`attacks.shadow.features` from an audit's scores: the columns (update, one-step,
    actions-only), each centred over the K hypotheses, as `[K, 3]`."""
    x = np.array(columns, float).T
    return (x - x.mean(0)).tolist()


def _pair_epsilon(last: dict[str, str]) -> float:
    """The per-pair epsilon of a run's last round: inf without DP, NaN for a DP run trained
    before pairs were counted (unknown, never a made-up number)."""
    if "epsilon" not in last:
        return math.inf
    value = last.get("epsilon_pair", "")
    return float(value) if value not in ("", None) else math.nan


def write_point(path: Path) -> None:
    """The trade-off's post-run step: the point's row, written into its run folder (JSON keeps
    inf), so a finished point is audited once and an interrupted trade-off continues."""
    row = audit_point(Path(path))
    atomic_write(Path(path) / TRADEOFF_POINT_FILE, json.dumps(row, indent=1).encode())


def read_point(path: Path) -> dict[str, Any]:
    """A point's row as `write_point` wrote it; a damaged file (or one written before a field
    existed) is refused, never patched."""
    file = Path(path) / TRADEOFF_POINT_FILE
    try:
        row = json.loads(file.read_text())
        if not checked_fields(row):
            raise ValueError(f"not a trade-off point (fields {sorted(FIELDS)})")
    except (OSError, ValueError) as err:
        raise AsfedError(
            f"cannot read {file}: {err}; remove it and rerun the same command to audit the "
            "point again"
        ) from None
    return {"diverged": None, **row, "run": str(path)}


def point_row(path: Path, rounds: int) -> dict[str, Any]:
    """A trained point's row: `read_point`'s, or `diverged_point`'s where its training diverged
    before the point's `rounds`."""
    from asfed.experiments.runner import diverged_before

    where = diverged_before(Path(path), rounds)
    return read_point(path) if where is None else diverged_point(Path(path), where)


def plan(
    env: str, methods: list[str], epsilons: list[float], seeds: list[int], **budget: Any
) -> Sweep:
    """Every (method, epsilon, seed) point as a plan for the one runner, each audited by the
    `tradeoff-audit` post-run step; every config is checked before anything runs."""
    points = []
    for m in methods:
        for e in epsilons:
            for s in seeds:
                cfg = point_config(env, m, e, s, **budget)
                eps = "none" if math.isinf(e) else e
                points.append(Point(point_name(cfg), {"method": m, "dp_epsilon": eps}, cfg))
    title = f"Trade-off on {env}: team return and attack success against epsilon"
    return code_plan(f"tradeoff-{env}", title, points, ("tradeoff-audit",))


def scenario_plan(
    scenario: str, epsilons: list[float], seeds: int | None, methods: list[str] | None = None
) -> Sweep:
    """A named scenario's grid crossed with `epsilons` (inf: no noise), every point audited: the
    trade-off at the scenario's budget, e.g. `privacy-exchange`, where the methods learn. The
    same runs as `asfed sweep NAME --set dp_epsilon=...`, in a trade-off's own folder;
    `methods` keeps the scenario's points of those methods (its cases included)."""
    grid = ",".join("none" if math.isinf(e) else repr(float(e)) for e in epsilons)
    sweep = load_sweep(scenario, None, seeds, [f"dp_epsilon={grid}"])
    points = [p for p in sweep.points if methods is None or p.config.method in methods]
    if not points:
        raise AsfedError(
            f"scenario {scenario!r} has no case of method(s) {', '.join(methods or [])}; "
            f"accepted: {', '.join(sweep.methods)}"
        )
    return dataclasses.replace(
        sweep,
        scenario=f"tradeoff-{sweep.scenario}",
        observe=(*sweep.observe, "tradeoff-audit"),
        points=tuple(points),
        methods=tuple(dict.fromkeys(p.config.method for p in points)),
    )


def rows_of(
    sweep: Sweep, folder: Path, kept: dict[str, dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The points' rows, in plan order, from their run folders or, for the points in `kept`
    (archived rows by point name: `asfed.experiments.archive`), from there, each with its
    `series`: the method and the settings its case sets beside the epsilon (e.g. "as
    share_rows=0.1 every=4"), so two cases of one method are two curves."""
    kept = kept or {}
    return [
        {
            **(kept.get(p.name) or point_row(Path(folder) / p.name, p.config.rounds)),
            "series": series(p),
        }
        for p in sweep.points
    ]


def series(point: Point) -> str:
    """A point's curve: its method, then the case's settings other than the epsilon."""
    rest = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in point.point.items()]
    keep = [r for r, k in zip(rest, point.point, strict=True) if k not in ("method", "dp_epsilon")]
    return " ".join([point.config.method, *keep])


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    fields = [f for f in FIELDS if f != "secrets"]  # the features stay in the point files
    w = csv.DictWriter(
        buf, fieldnames=[*fields, "series"], lineterminator="\n", extrasaction="ignore"
    )
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, buf.getvalue().encode())


def summarise(rows: list[dict[str, Any]], delta: float = 1e-5) -> list[dict[str, Any]]:
    """Per (method, epsilon): means over seeds with 95% t intervals over seeds; the type
    accuracies pooled over every seed's secrets with Clopper-Pearson intervals (which take a
    run's agents as independent: `update_first` is the same over one secret a seed, which does
    not); the leakage (update attack minus actions-only, over secrets) with a conservative
    interval (`_difference_interval`); the inversion leakage (each seed's reward-inversion r
    minus its actions-only r, a t interval over seeds: what still separates methods once the
    actions name every type); and the epsilon lower bound over one independent secret a seed
    (at dp_delta). Seeds whose training diverged are counted (`diverged` of `seeds`; each row
    says where) and left out of every mean: a point all of
    whose seeds diverged has NaN for all it measures."""
    out = []
    label = lambda r: r.get("series") or r["method"]  # noqa: E731
    keys = sorted({(label(r), r["epsilon_target"]) for r in rows}, key=lambda k: (k[0], k[1]))
    for name, eps in keys:
        every = [r for r in rows if label(r) == name and r["epsilon_target"] == eps]
        pts = [r for r in every if not r.get("diverged")]
        gone = [r for r in every if r.get("diverged")]
        entry: dict[str, Any] = {
            "series": name,
            "method": every[0]["method"],
            "epsilon_target": eps,
            "seeds": len(every),
            "diverged": len(gone),
        }
        for field in (
            "team_return",
            "inversion_r",
            "epsilon_accountant",
            "epsilon_pair",
        ):
            raw = [float(p[field]) for p in pts]
            values = [v for v in raw if np.isfinite(v)]
            infinite = any(math.isinf(v) for v in raw)
            entry[field] = float(np.mean(values)) if values else math.inf if infinite else math.nan
            entry[field + "_ci"] = scoring.t_interval(values)
        inv = [float(p["inversion_r"]) - float(p["inversion_baseline"]) for p in pts]
        inv = [v for v in inv if np.isfinite(v)]  # a seed's r beyond the actions-only fit's
        entry["inversion_leakage"] = float(np.mean(inv)) if inv else math.nan
        entry["inversion_leakage_ci"] = scoring.t_interval(inv)
        scored = [p for p in pts if p["type_secrets"]]
        n = int(sum(p["type_secrets"] for p in scored))
        for field in ("type_accuracy", "update_accuracy", "type_baseline"):  # over secrets
            hits = round(sum(p[field] * p["type_secrets"] for p in scored))
            entry[field] = hits / n if n else math.nan
            entry[field + "_ci"] = scoring.clopper_pearson(hits, n) if n else None
        entry["leakage"] = entry["update_accuracy"] - entry["type_baseline"]
        entry["leakage_ci"] = _difference_interval(scored, n)
        entry.update(_shadow_scores(pts))
        firsts = [p["update_first_hit"] for p in scored]
        entry["update_first"] = float(np.mean(firsts)) if firsts else math.nan
        entry["update_first_ci"] = (
            scoring.clopper_pearson(int(sum(firsts)), len(firsts)) if firsts else None
        )
        entry["type_chance"] = pts[0]["type_chance"] if pts else math.nan
        entry["epsilon_empirical"] = (
            epsilon_lower_bound(
                int(sum(firsts)), len(firsts), round(1 / pts[0]["type_chance"]), delta
            )
            if firsts
            else math.nan  # no secret to guess (every seed diverged, or an env without types)
        )
        entry["secrets"] = len(firsts)
        out.append(entry)
    return out


def _shadow_scores(pts: list[dict[str, Any]]) -> dict[str, Any]:
    """The shadow attack at one point, its other seeds as the shadow runs (leave one seed out):
    each seed's secrets are guessed by the conditional logit fitted on every other seed's
    (`attacks.shadow`; at least MIN_SECRETS of them), which share the point's config and none
    of its secrets or seed, as Shokri et al.'s shadows do; beside it, the actions-only attacker
    learned from the same shadows. Accuracy over secrets with Clopper-Pearson intervals; the
    leakage (messages minus actions) with the difference of their 97.5% intervals, which take
    the secrets as independent, as the rest of the summary does (one seed's are drawn jointly
    and the folds share shadows, so they are optimistic). NaN where the point has too few
    seeds with scored secrets. Unlike `audits.shadows`, only secrets both type attacks scored
    are used, and one other seed with MIN_SECRETS secrets suffices."""
    from attacks.shadow import ACTIONS, MESSAGES, MIN_SECRETS, fit

    by_seed = {p["seed"]: p["secrets"] for p in pts if p["secrets"]}
    hits = {"shadow": 0, "shadow_actions": 0}
    n = 0
    for seed, secrets in by_seed.items():
        others = [x for s, xs in by_seed.items() if s != seed for x in xs]
        if len(others) < MIN_SECRETS:
            continue
        feats = np.array([x["features"] for x in others], float)
        labels = np.array([x["truth"] for x in others], int)
        models = {
            "shadow": fit(feats, labels, MESSAGES),
            "shadow_actions": fit(feats, labels, ACTIONS),
        }
        for x in secrets:
            n += 1
            for name, model in models.items():
                hits[name] += model.guess(np.array(x["features"], float), name).guess == x["truth"]
    out: dict[str, Any] = {"shadow_secrets": n}
    for name in hits:
        out[f"{name}_accuracy"] = hits[name] / n if n else math.nan
        out[f"{name}_accuracy_ci"] = scoring.clopper_pearson(hits[name], n) if n else None
    out["shadow_leakage"] = out["shadow_accuracy"] - out["shadow_actions_accuracy"]
    out["shadow_leakage_ci"] = (
        scoring.difference_interval(hits["shadow"], n, hits["shadow_actions"], n) if n else None
    )
    return out


def _difference_interval(scored: list[dict[str, Any]], n: int) -> tuple[float, float] | None:
    """The update attack's accuracy minus the actions-only attacker's over n secrets, with
    `audits.scoring.difference_interval` (conservative, never of zero width)."""
    if not n:
        return None
    hits = {
        f: round(sum(p[f] * p["type_secrets"] for p in scored))
        for f in ("update_accuracy", "type_baseline")
    }
    return scoring.difference_interval(hits["update_accuracy"], n, hits["type_baseline"], n)


def figure(path: Path, summary: list[dict[str, Any]], env: str, delta: float) -> None:
    """Team return vs epsilon and the update attack's accuracy vs epsilon (the one-step
    attack's dashed), with 95% CIs, chance, the actions-only baseline and the accuracy ceiling
    epsilon implies; where the agents have no reward type to guess (predation), reward
    inversion's r beyond the actions-only fit's instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finite = sorted({s["epsilon_target"] for s in summary if math.isfinite(s["epsilon_target"])})
    inf_x = (max(finite) * 4) if finite else 1.0
    xpos = lambda e: inf_x if math.isinf(e) else e  # noqa: E731
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    typed = any(math.isfinite(s["type_chance"]) for s in summary)
    leak = "update_accuracy" if typed else "inversion_leakage"
    for method in sorted({s["series"] for s in summary}):
        pts = sorted(
            (s for s in summary if s["series"] == method), key=lambda s: xpos(s["epsilon_target"])
        )
        x = [xpos(s["epsilon_target"]) for s in pts]
        for ax, field in ((left, "team_return"), (right, leak)):
            y = [s[field] for s in pts]
            lo = [
                s[field + "_ci"][0] if s[field + "_ci"] else v for s, v in zip(pts, y, strict=True)
            ]
            hi = [
                s[field + "_ci"][1] if s[field + "_ci"] else v for s, v in zip(pts, y, strict=True)
            ]
            line = ax.plot(x, y, marker="o", label=method)[0]
            ax.fill_between(x, lo, hi, alpha=0.2, color=line.get_color())
        if typed:
            y = [s["type_accuracy"] for s in pts]
            right.plot(x, y, ls="--", lw=0.8, color=line.get_color(), label=f"{method} (one-step)")
    base = [s["type_baseline"] for s in summary if math.isfinite(s["type_baseline"])]
    if base:
        right.axhline(float(np.mean(base)), color="grey", ls=":", label="actions-only baseline")
    chances = [s["type_chance"] for s in summary if math.isfinite(s["type_chance"])]
    if chances:  # none where every point diverged
        k = round(1 / chances[0])
        right.axhline(1 / k, color="black", ls="--", label=f"chance (1/{k})")
        grid = np.geomspace(min(finite) if finite else 0.1, inf_x, 200)
        right.plot(
            grid,
            [accuracy_ceiling(e, k, delta) for e in grid],
            color="tab:red",
            lw=0.8,
            label="ceiling epsilon allows",
        )
    if not typed:
        right.axhline(0.0, color="grey", ls=":", label="actions-only level")
    what = (
        "reward-type accuracy (relay, update attack)"
        if typed
        else "reward inversion: r - actions-only r (relay; no reward type to guess)"
    )
    for ax, title in ((left, f"team return (last {FINAL_WINDOW} rounds)"), (right, what)):
        ax.set_xscale("log")
        ax.set_xlim(min([*finite, inf_x]) / 2, inf_x * 2)  # set: a panel may have no data
        ax.set_xticks([*finite, inf_x], [f"{e:g}" for e in finite] + ["inf"])
        ax.set_xlabel("epsilon (messages only; the public trajectory is not covered)", fontsize=8)
        ax.set_title(f"{env}: {title}", fontsize=9)
        ax.grid(alpha=0.3)
        legend_outside(ax)
    if typed:
        right.set_ylim(0, 1.02)
    atomic_write(path, png_bytes(fig))


def frontier(
    path: Path,
    summary: list[dict[str, Any]],
    env: str,
    references: Sequence[tuple[str, str, float]] = (),
) -> None:
    """The privacy-performance frontier, team return (y) against leakage (x), a panel a secret.
    The reward type (a panel only where the agents have one: not on predation): the shadow
    attack's accuracy minus the learned actions-only attacker's, each point's other seeds as
    its shadows (`_shadow_scores`), or, where no point has enough
    seeds for that, the update attack's minus the actions-only attacker's
    (`_difference_interval`). The reward's detail: reward inversion's r minus the actions-only
    fit's, t over seeds, which still separates methods where learned actions name every type.
    One curve per series (method and case) through its epsilons, each point labelled; 95%
    intervals on both axes; the actions-only level (x = 0) and the `references`' team returns
    (kind, label, return: `asfed.engine.driver.reference_lines`, the random policy's, the best
    scripted policy's, everyone selfish) marked. Up and left is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shadow = any(math.isfinite(s.get("shadow_leakage", math.nan)) for s in summary)
    typed = any(math.isfinite(s["type_chance"]) for s in summary)  # predation: no type
    panels = (
        (
            "shadow_leakage",
            "reward type",
            "shadow attack's accuracy - learned actions-only's\n(over secrets; the point's "
            "other seeds as shadows)",
        )
        if shadow
        else ("leakage", "reward type", "update attack's accuracy - actions-only's (over secrets)"),
        ("inversion_leakage", "reward detail", "inversion r - actions-only r (over seeds)"),
    )[0 if typed else 1 :]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), sharey=True)
    axes = list(np.atleast_1d(axes))
    names = sorted({s["series"] for s in summary})
    colors = {name: f"C{i % 10}" for i, name in enumerate(names)}  # one colour a series
    labels = []
    for ax, (field, what, xlabel) in zip(axes, panels, strict=True):
        labels.append(_frontier_panel(ax, summary, field, what, colors))
        ax.axvline(0.0, color="grey", ls=":", label="actions-only level (no leakage)")
        for kind, label, value in references:
            if math.isfinite(value):
                style = REFERENCE_STYLE.get(kind, ("grey", "-."))
                ax.axhline(value, color=style[0], ls=style[1], lw=0.8, label=f"{label} ({kind})")
        ax.set_xlabel(f"leakage to the relay, {what}:\n{xlabel}", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"team return (last {FINAL_WINDOW} rounds)", fontsize=8)
    fig.suptitle(
        f"{env}: privacy-performance frontier (95% CIs; epsilon covers the messages only)",
        fontsize=9,
    )
    legend: dict[str, Any] = {}  # both panels' entries, each once
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    legend_outside(axes[-1], handles=list(legend.values()), labels=list(legend))
    place_labels(list(zip(axes, labels, strict=True)))
    atomic_write(path, png_bytes(fig))


REFERENCE_STYLE = {
    "random": ("black", "--"),
    "optimum": ("tab:green", ":"),
    "defect": ("tab:red", ":"),
}


def _eps_name(entry: dict[str, Any]) -> str:
    eps = entry["epsilon_target"]
    return "no noise" if math.isinf(eps) else f"eps {eps:g}"


def _frontier_panel(
    ax: Any, summary: list[dict[str, Any]], field: str, what: str, colors: dict[str, str]
) -> Labels:
    """One frontier panel: each series through its epsilons at x = `field` (NaN everywhere:
    named in the legend, with the panel's `what` and its return range, never drawn at x = 0).
    Returns the points' labels (text, x, y, colour) for `place_labels`."""
    labels: Labels = []
    ci = lambda s, f: s.get(f + "_ci") or (s[f], s[f])  # noqa: E731
    for method in sorted(colors):
        pts = sorted(
            (s for s in summary if s["series"] == method), key=lambda s: s["epsilon_target"]
        )
        x = np.array([s.get(field, math.nan) for s in pts], float)
        y = np.array([s["team_return"] for s in pts], float)
        if all(s.get("diverged") and s["diverged"] == s["seeds"] for s in pts):  # none finished
            gone = ", ".join(f"{_eps_name(s)} {s['diverged']} of {s['seeds']}" for s in pts)
            ax.plot([], [], ls="none", marker="x", color=colors[method], label=f"{method}:\n"
                    f"every seed diverged ({gone})")  # fmt: skip
            continue
        if not np.isfinite(x).any():  # no point to place: say so in the legend, not at x = 0
            ax.plot(
                [],
                [],
                ls="none",
                marker="x",
                color=colors[method],
                label=f"{method}:\n{what} leakage not measured (the\nattack had nothing usable); "
                f"team return\n{np.nanmin(y):.2f} to {np.nanmax(y):.2f}",
            )
            continue
        xerr = np.abs(np.array([ci(s, field) for s in pts], float).T - x)
        yerr = np.abs(np.array([ci(s, "team_return") for s in pts], float).T - y)
        label = method + "".join(
            f"\n  {_eps_name(s)}: {s['diverged']} of {s['seeds']} seeds diverged"
            + ("" if s["diverged"] < s["seeds"] else " (not drawn)")
            for s in pts
            if s.get("diverged")
        )
        bars = ax.errorbar(
            x, y, xerr=xerr, yerr=yerr, marker="o", capsize=3, label=label, color=colors[method]
        )
        for s, xi, yi in zip(pts, x, y, strict=True):
            gone = s.get("diverged")
            if np.isfinite(xi) and np.isfinite(yi):
                text = _eps_name(s) + (f" ({gone} of {s['seeds']} diverged)" if gone else "")
                labels.append((text, float(xi), float(yi), bars.lines[0].get_color()))
    return labels
