"""Plot helpers whose failures a reader sees, not a test: labels printed over each other."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from asfed.plots import legend_outside, place_labels  # sets the Agg backend


def test_labels_of_near_equal_points_overlap_nothing_in_the_saved_layout() -> None:
    """Epsilons whose points nearly coincide (exchange's AS and VS without noise did) get
    readable labels, none over another or over a point, in the figure as laid out for saving
    (two panels, autoscaled limits, a legend outside, `tight_layout` again afterwards)."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    cluster = [(0.10, 5.20), (0.12, 5.25), (0.11, 5.22), (0.13, 5.18), (-0.4, -9.0)]
    for ax in axes:
        ax.errorbar(*zip(*cluster, strict=True), xerr=0.3, yerr=0.2, marker="o", label="as")
        ax.axhline(4.2, ls="--", label="random")
    legend_outside(axes[1])
    names = ["eps 16", "eps 4096", "eps 65536", "no noise", "eps 1"]
    points = [(n, x, y, "C0") for n, (x, y) in zip(names, cluster, strict=True)]
    place_labels([(axes[0], points), (axes[1], [])])  # a panel with nothing measured
    fig.tight_layout()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in axes[0].texts]
    assert len(boxes) == len(names) and not axes[1].texts
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    for px, py in axes[0].transData.transform(np.array(cluster)):
        assert not any(b.overlaps(b.from_extents(px - 4, py - 4, px + 4, py + 4)) for b in boxes)
    plt.close(fig)
