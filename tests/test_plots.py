"""Plot helpers whose failures a reader sees, not a test: labels printed over each other."""

from __future__ import annotations

import matplotlib.pyplot as plt

from asfed.plots import place_labels  # sets the Agg backend


def test_labels_of_near_equal_points_do_not_overlap_each_other_or_the_points() -> None:
    """Three epsilons whose points nearly coincide (exchange's AS and VS without noise did)
    get three readable labels, none over a point."""
    fig, ax = plt.subplots(figsize=(4, 3))
    points = [(0.10, 5.20), (0.12, 5.25), (0.11, 5.22)]
    ax.plot(*zip(*points, strict=True), "o")
    ax.set_xlim(-0.7, 0.7)
    ax.set_ylim(-10, 6.5)
    names = ["eps 4096", "eps 65536", "no noise"]
    labels = [(name, x, y, "C0") for name, (x, y) in zip(names, points, strict=True)]
    place_labels(ax, labels)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert len(boxes) == 3
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    for px, py in ax.transData.transform(points):
        assert not any(b.contains(px, py) for b in boxes)
    plt.close(fig)
