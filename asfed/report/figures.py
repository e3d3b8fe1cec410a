"""The report's figures, each returned as PNG bytes (the page inlines them).

Learning curves: per series, each seed's team return smoothed by a trailing moving mean (a tenth
of the rounds, 1 to 10), then the mean over seeds with its 95% t-band, beside the panel's
reference lines. Bars: normalised final team return (0 = random policy, 1 = best scripted) and
bytes sent per round, per panel and series. Anticipation (Fig. 7): the toward-the-prey fraction,
the policy/anticipation MSE and the shared policies' entropy by logged round.
"""

from __future__ import annotations

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from asfed.plots import REFERENCE_STYLE, legend_outside, png_bytes
from asfed.report import stats
from asfed.report.panels import Panel, Series

METHOD_COLORS = {
    "as": "tab:blue", "vs": "tab:orange", "vps": "tab:green", "ps": "tab:red",
    "ippo": "tab:purple", "cppo": "tab:brown",
}  # fmt: skip


def _png(fig) -> bytes:
    return png_bytes(fig, dpi=100)


def colors(series: list[Series]) -> list[str]:
    """A colour per series: the method's, unless two series share a method."""
    methods = [s.method for s in series]
    if len(set(methods)) == len(methods):
        return [METHOD_COLORS.get(m, "black") for m in methods]
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return [cycle[i % len(cycle)] for i in range(len(series))]


def learning_curves(panel: Panel) -> bytes:
    """Team return by round, mean over seeds with 95% bands, and the reference lines."""
    fig, ax = plt.subplots(figsize=(6.4, 3.9))
    window = stats.window_for(max(s.rounds for s in panel.series))
    for series, color in zip(panel.series, colors(panel.series), strict=True):
        curves = stats.padded([stats.smooth(r.team, window) for r in series.runs])
        mean, lo, hi = stats.band(curves)
        x = np.arange(len(mean))
        ax.plot(
            x,
            mean,
            color=color,
            marker="o" if len(x) < 3 else None,
            ms=3,
            label=f"{series.label} ({len(series.runs)} seeds)",
        )
        ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
    for kind, ref in panel.references.items():
        ax.axhline(ref.mean, lw=1, **REFERENCE_STYLE[kind], label=f"{ref.label}: {ref.mean:.1f}")
    ax.set_title(panel.title, fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("team return per episode")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    if window > 1:
        ax.text(
            0.99,
            0.01,
            f"{window}-round moving mean; bands: 95% CI over seeds",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=6,
            color="dimgrey",
        )
    return _png(fig)


def _grouped_bars(ax, panels: list[Panel], value, ci=True) -> None:
    labels = list(dict.fromkeys(s.label for p in panels for s in p.series))
    methods = {s.label: s.method for p in panels for s in p.series}
    width = 0.8 / len(labels)
    palette = colors([Series(lab, methods[lab], []) for lab in labels])
    for k, (label, color) in enumerate(zip(labels, palette, strict=True)):
        xs, ys, errs = [], [], []
        for i, panel in enumerate(panels):
            for s in panel.series:
                if s.label == label:
                    mean, lo, hi = value(panel, s)
                    xs.append(i - 0.4 + width * (k + 0.5))
                    ys.append(mean)
                    errs.append([mean - lo, hi - mean] if ci and np.isfinite(lo) else [0, 0])
        err = np.array(errs).T if errs else None
        ax.bar(xs, ys, width, color=color, label=label, yerr=err, capsize=2)
    ax.set_xticks(range(len(panels)), [p.title for p in panels], fontsize=7, rotation=15)
    ax.grid(alpha=0.3, axis="y")
    legend_outside(ax)


def normalised_finals(panels: list[Panel]) -> bytes:
    """Final team return per panel and series on the 0 (random) to 1 (best scripted) scale."""
    fig, ax = plt.subplots(figsize=(max(6.4, 1.3 * len(panels) + 2), 3.9))

    def value(panel: Panel, s: Series) -> tuple[float, float, float]:
        return tuple(panel.normalised(v) for v in s.final_ci())

    _grouped_bars(ax, panels, value)
    ax.axhline(0, color="grey", ls=":", lw=1, label="uniformly random")
    ax.axhline(1, color="darkgreen", ls="--", lw=1, label="best scripted policy")
    ax.set_ylabel("normalised final team return")
    ax.set_title(
        "final team return: 0 = random policy, 1 = best scripted (95% CI over seeds)", fontsize=9
    )
    legend_outside(ax)
    return _png(fig)


def bytes_per_round(panels: list[Panel]) -> bytes:
    """Bytes the relay carried per round, per panel and series."""
    fig, ax = plt.subplots(figsize=(max(6.4, 1.3 * len(panels) + 2), 3.6))

    def value(panel: Panel, s: Series) -> tuple[float, float, float]:
        b = s.bytes_per_round()
        return b, b, b

    _grouped_bars(ax, panels, value, ci=False)
    sent = [s.bytes_per_round() for p in panels for s in p.series]
    positive = [b for b in sent if b > 0]
    if positive and max(positive) / min(positive) > 50:
        ax.set_yscale("log")
    ax.set_ylabel("bytes per round (all agents)")
    ax.set_title(
        "communication: bytes sent per round (a method that sends nothing has no bar)", fontsize=9
    )
    return _png(fig)


def _by_round(series: Series, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Rounds `[R]` and the column's values `[S, R]` (NaN where a seed lacks the round)."""
    rows = [
        {int(r["round"]): float(r[column]) for r in run.anticipation if r.get(column, "")}
        for run in series.runs
    ]
    rounds = np.array(sorted(set().union(*rows)))
    return rounds, np.array([[row.get(int(t), np.nan) for t in rounds] for row in rows])


def anticipation(panel: Panel) -> bytes | None:
    """Fig. 7: the fraction of anticipated actions toward the prey, and the MSE between each
    agent's policy and the other's anticipation of it, by logged round, beside the entropy of the
    shared policies: an MSE near 0 means agreement only while the policies still explore
    (None: no such data)."""
    series = [s for s in panel.series if any(r.anticipation for r in s.runs)]
    if not series:
        return None
    columns = [
        ("toward", "anticipated actions toward the prey (fraction)"),
        ("mse", "MSE, policy vs anticipation"),
        ("entropy", "entropy of the shared policies (nats; log A = uniform)"),
    ]
    columns = [
        c
        for c in columns
        if any(c[0] in r.anticipation[0] for s in series for r in s.runs if r.anticipation)
    ]
    fig, axes = plt.subplots(1, len(columns), figsize=(5.2 * len(columns), 3.6), squeeze=False)
    for ax, (column, label) in zip(axes[0], columns, strict=True):
        for s, color in zip(series, colors(series), strict=True):
            rounds, values = _by_round(s, column)
            mean, lo, hi = stats.band(values)
            ax.plot(rounds, mean, color=color, marker="o", ms=3, label=s.label)
            ax.fill_between(rounds, lo, hi, color=color, alpha=0.2, lw=0)
        ax.set_xlabel("round (logged rounds)")
        ax.set_ylabel(label, fontsize=8)
        ax.set_title(f"{panel.title}: {label}", fontsize=9)
        ax.grid(alpha=0.3)
        legend_outside(ax)
    return _png(fig)
