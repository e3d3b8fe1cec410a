"""An audit's outputs: a Rich table, and `audit/` in each run folder (JSON with every number and
the exact command, a CSV of the pooled summaries, a PNG bar chart). Written only after every
attack has run, each file atomically, so bad input leaves nothing behind."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rich.table import Table

from asfed.atomic import atomic_write
from asfed.folders import FolderLock
from asfed.plots import legend_outside, png_bytes
from audits import scoring
from audits.audit import Summary, VictimScore

CAVEAT = (
    "leakage = score - actions-only baseline: what the messages add to what the public actions "
    "already give away; a trial is a secret (one agent of one run), never an episode"
)


def _fmt(x: float | None, ci: tuple[float, float] | None = None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


SHORT = {
    "reward-type": "type: one-step",
    "update": "type: update",
    "shadow": "type: shadow",
    "reward-inversion": "inversion (r)",
}


def _auc(s: Summary) -> str:
    """The one-vs-rest AUC of the attack / of the actions-only attacker ("" for inversion)."""
    if "auc" not in s.extra and "baseline_auc" not in s.extra:
        return ""
    return (
        f"{s.extra.get('auc', float('nan')):.2f} / {s.extra.get('baseline_auc', float('nan')):.2f}"
    )


def table(summaries: list[Summary]) -> Table:
    envs = ", ".join(sorted({s.env for s in summaries}))
    runs = max(s.runs for s in summaries)
    t = Table(title=f"asfed audit: {envs}, {runs} run(s), 95% CIs", caption=CAVEAT)
    for col in (
        "method",
        "attack",
        "attacker",
        "score",
        "chance",
        "actions only",
        "leakage",
        "AUC (vs actions)",
        "note",
    ):
        t.add_column(col, overflow="fold")
    for s in summaries:
        t.add_row(
            s.method,
            SHORT.get(s.attack, s.attack),
            s.attacker,
            _fmt(s.score, s.score_ci),
            f"{s.chance:.2f}",
            _fmt(s.baseline, s.baseline_ci),
            _fmt(s.leakage, s.leakage_ci),
            _auc(s),
            s.note or s.ci_method,
        )
    return t


def markdown(summaries: list[Summary]) -> str:
    """The pooled summaries as a Markdown table (for papers and READMEs)."""
    lines = [
        "| env | method | team return [95% CI] | attack | runs | secrets | score [95% CI] | "
        "chance | actions only [95% CI] | leakage [95% CI] | AUC (vs actions) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        score = _fmt(s.score, s.score_ci) if s.score is not None else "no messages"
        lines.append(
            f"| {s.env} | {s.method} | "
            f"{_fmt(s.extra.get('team_return'), s.extra.get('team_return_ci'))} | "
            f"{SHORT.get(s.attack, s.attack)} | {s.runs} | "
            f"{s.victims} | {score} | {s.chance:.2f} | {_fmt(s.baseline, s.baseline_ci)} | "
            f"{_fmt(s.leakage, s.leakage_ci)} | {_auc(s)} |"
        )
    return "\n".join(lines)


def _csv(summaries: list[Summary]) -> bytes:
    buf = io.StringIO()
    fields = list(summaries[0].as_dict())
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for s in summaries:
        w.writerow(
            {
                k: json.dumps(v) if isinstance(v, (list, tuple, dict)) else v
                for k, v in s.as_dict().items()
            }
        )
    return buf.getvalue().encode()


def _png(summaries: list[Summary], rows: list[VictimScore]) -> bytes:
    """One panel per measure (accuracy and Pearson r are different scales, never one axis):
    each attack's score beside the actions-only baseline, 95% CIs, and chance; and, where a
    reward-type attack scored secrets, their one-vs-rest ROC curves on log axes (as LiRA)."""
    measures = list(dict.fromkeys(s.measure for s in summaries))
    widths = [max(3.5, 1.4 * sum(s.measure == m for s in summaries) + 1.5) for m in measures]
    curves = _roc_curves(rows)
    if curves:
        widths.append(3.6)
    fig, axes = plt.subplots(
        1, len(widths), figsize=(sum(widths) + 1.5, 3.6), squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )  # fmt: skip
    for ax, measure in zip(axes[0], measures, strict=False):
        _bars(ax, [s for s in summaries if s.measure == measure])
        ax.set_ylabel(measure)
    if curves:
        _roc_panel(axes[0][-1], curves)
    axes[0][0].set_title(
        f"{summaries[0].env}: attack success vs the actions-only baseline", fontsize=9, loc="left"
    )
    if curves:
        axes[0][0].legend(fontsize=6, loc="lower left", framealpha=0.9)  # the ROC has its own
    else:
        legend_outside(axes[0][-1])
    return png_bytes(fig)


def _roc_curves(rows: list[VictimScore]) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """label -> (FPR, TPR, AUC) of each (method, attack)'s pooled one-vs-rest test, and of each
    method's actions-only attacker (once: the one-step and update attacks share it)."""
    out = {}
    keys = dict.fromkeys((r.method, r.attack) for r in rows if r.truth is not None)
    for method, attack in keys:
        have = [r for r in rows if (r.method, r.attack) == (method, attack)]
        fields = [("scores", f"{method} {attack}")]
        if f"{method} actions only" not in out:
            fields.append(("baseline_scores", f"{method} actions only"))
        for field, name in fields:
            rs = [r for r in have if getattr(r, field) is not None]
            if not rs:
                continue
            s, y = scoring.one_vs_rest(
                np.array([getattr(r, field) for r in rs]), np.array([r.truth for r in rs])
            )
            out[name] = (*scoring.roc(s, y), scoring.auc(s, y))
    return out


def _roc_panel(ax, curves: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> None:
    floor = 1e-3
    for name, (fpr, tpr, area) in curves.items():
        style = "--" if "actions only" in name else "-"
        ax.step(
            np.maximum(fpr, floor), np.maximum(tpr, floor), style, where="post",
            label=f"{name}, AUC {area:.2f}",
        )  # fmt: skip
    ax.plot([floor, 1], [floor, 1], color="black", lw=0.8, ls=":", label="chance")
    ax.set(xscale="log", yscale="log", xlabel="FPR", ylabel="TPR", title="ROC over secrets")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    ax.grid(alpha=0.3)


def _bars(ax, summaries: list[Summary]) -> None:
    x = np.arange(len(summaries))
    for off, label, vals, cis, color in (
        (-0.2, "messages", [s.score for s in summaries], [s.score_ci for s in summaries],
         "tab:red"),
        (0.2, "actions only", [s.baseline for s in summaries],
         [s.baseline_ci for s in summaries], "tab:grey"),
    ):  # fmt: skip
        h = [v if v is not None else 0.0 for v in vals]
        err = np.array(
            [
                [v - c[0], c[1] - v] if c and v is not None else [0, 0]
                for v, c in zip(h, cis, strict=True)
            ]
        ).T
        ax.bar(x + off, h, 0.4, yerr=err, color=color, label=label, capsize=3)
    for i, s in enumerate(summaries):
        if s.score is None:
            ax.text(i - 0.2, 0.01, "no\nmessages", ha="center", va="bottom", fontsize=6)
        ax.hlines(
            s.chance,
            i - 0.45,
            i + 0.45,
            colors="black",
            linestyles="dashed",
            label="chance" if i == 0 else None,
        )
    ax.set_xticks(x, [f"{s.method}\n{s.attack}\n{s.attacker}" for s in summaries], fontsize=7)
    ax.grid(alpha=0.3, axis="y")


def write(
    runs: list[Path],
    rows: list[VictimScore],
    summaries: list[Summary],
    command: str,
    pooled: Path | None = None,
) -> None:
    """`audit/` (audit.json, audit.csv, audit.png) in each run folder, and in `pooled` (a train
    mode's folder: its table and figure cover archived targets too, whose run folders may be
    gone)."""
    payload = {
        "command": command,
        "caveat": CAVEAT,
        "runs_pooled": sorted({r.run for r in rows}),
        "summaries": [s.as_dict() for s in summaries],
        "victims": [vars(r) for r in rows],
    }
    data = json.dumps(payload, indent=2, default=float).encode()
    table_csv, chart = _csv(summaries), _png(summaries, rows)
    folders = [(Path(run), "run") for run in runs]
    if pooled is not None:
        Path(pooled).mkdir(parents=True, exist_ok=True)  # every target archived: nothing trained
        folders.append((Path(pooled), "audit"))
    for folder, what in folders:
        out = folder / "audit"
        with FolderLock(folder, what):  # one writer: not while the run or sweep trains
            out.mkdir(exist_ok=True)
            atomic_write(out / "audit.json", data)
            atomic_write(out / "audit.csv", table_csv)
            atomic_write(out / "audit.png", chart)
