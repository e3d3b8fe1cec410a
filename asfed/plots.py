"""Figures people would rather look at than read."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from asfed.atomic import atomic_write

# How reference returns are drawn wherever they appear (run curves, the report).
REFERENCE_STYLE = {
    "random": dict(color="grey", ls=":"),
    "optimum": dict(color="darkgreen", ls="--"),
    "defect": dict(color="darkred", ls="-."),
}


def legend_outside(ax: Any, **kwargs: Any) -> None:
    """The legend to the right of the axes, where it covers no curve (saved with
    bbox_inches="tight", so the figure grows to hold it)."""
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


OFFSETS = [(5, 5), (5, -13), (-5, 5), (-5, -13), (5, 16), (5, -24), (-5, 16), (-5, -24)]
"""Where `place_labels` tries a label, in points from its point (x, y), in this order; a
negative x offset puts the label's right edge there."""


Labels = list[tuple[str, float, float, str]]
"""Points to label on one axes: (text, x, y, colour) each."""


def place_labels(panels: list[tuple[Any, Labels]], fontsize: int = 7) -> None:
    """Annotate each panel's points (axes, labels; all of one figure) at the first of `OFFSETS`
    where a label overlaps no point and no label placed before it on its axes (the first offset
    if none is free): points with near-equal values keep readable labels instead of printing
    over each other. Call once everything else is drawn: overlap is measured in display space,
    so the figure is laid out (`tight_layout`, as `png_bytes` does) and drawn first, once, and
    the labels are left out of later layouts (which then move nothing)."""
    if not panels:
        return
    fig = panels[0][0].figure
    fig.tight_layout()
    fig.canvas.draw()  # final limits and positions
    for ax, labels in panels:
        _place(ax, labels, fontsize)


def _place(ax: Any, labels: Labels, fontsize: int) -> None:
    """`place_labels` on one drawn axes."""
    from matplotlib.transforms import Bbox

    renderer = ax.figure.canvas.get_renderer()
    marker = 5.0  # pixels either side of a point that no label may cover (a default marker's)
    xy = np.array([(x, y) for _, x, y, _ in labels], float).reshape(-1, 2)
    placed: list[Any] = [
        Bbox.from_extents(px - marker, py - marker, px + marker, py + marker)
        for px, py in ax.transData.transform(xy)
    ]

    def note(text: str, at: tuple[float, float], offset: tuple[int, int], color: str) -> Any:
        return ax.annotate(
            text,
            at,
            textcoords="offset points",
            xytext=offset,
            ha="left" if offset[0] >= 0 else "right",
            fontsize=fontsize,
            color=color,
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75},
            in_layout=False,
        )

    for text, x, y, color in sorted(labels, key=lambda item: (-item[2], item[1])):
        for offset in OFFSETS:
            label = note(text, (x, y), offset, color)
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            label.remove()
        else:
            box = note(text, (x, y), OFFSETS[0], color).get_window_extent(renderer)
        placed.append(box)


def png_bytes(fig: Any, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (legends outside the axes included), and closed."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def learning_curve(
    rows: list[dict[str, Any]],
    path: Path,
    title: str,
    references: list[tuple[str, str, float]] = (),  # type: ignore[assignment]
) -> None:
    """Team return and each agent's return by round (top), cumulative MB sent (bottom), with
    the env's reference returns as lines: (kind, label, team return) for kind in random,
    optimum, defect."""
    rounds = [int(r["round"]) for r in rows]
    agents = sorted(int(k.split("_")[1]) for k in rows[0] if k.startswith("return_"))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=(3, 1))
    for i in agents:
        top.plot(
            rounds, [float(r[f"return_{i}"]) for r in rows], lw=0.8, alpha=0.5, label=f"agent {i}"
        )
    team = np.array([float(r["team_return"]) for r in rows])
    window = min(10, len(team))
    smooth = np.convolve(team, np.ones(window) / window, "valid")
    top.plot(rounds, team, lw=0.8, color="grey", label="team")
    top.plot(
        rounds[window - 1 :], smooth, lw=2.2, color="black", label=f"team, {window}-round mean"
    )
    for kind, label, value in references:
        top.axhline(value, lw=1, **REFERENCE_STYLE[kind], label=f"{label}: {value:.1f}")
    top.set_ylabel("return per episode")
    top.set_title(title)
    legend_outside(top)
    top.grid(alpha=0.3)
    sent, total = [], 0.0
    for r in rows:
        total += float(r["bytes_total"]) / 1e6
        sent.append(total)
    bottom.plot(rounds, sent, color="tab:red")
    bottom.set_ylabel("MB sent (cumulative)")
    bottom.set_xlabel("round")
    bottom.grid(alpha=0.3)
    atomic_write(Path(path), png_bytes(fig))
