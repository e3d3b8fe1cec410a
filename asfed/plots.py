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


def learning_curve(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Team return and each agent's return by round (top), cumulative MB sent (bottom)."""
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
    top.set_ylabel("return per episode")
    top.set_title(title)
    top.legend(fontsize=7, ncol=min(len(agents) + 1, 6))
    top.grid(alpha=0.3)
    sent, total = [], 0.0
    for r in rows:
        total += float(r["bytes_total"]) / 1e6
        sent.append(total)
    bottom.plot(rounds, sent, color="tab:red")
    bottom.set_ylabel("MB sent (cumulative)")
    bottom.set_xlabel("round")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(Path(path), buf.getvalue())
