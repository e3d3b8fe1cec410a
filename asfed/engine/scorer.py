"""The experimenter's scoring: every agent's return, from the public features and the ground truth.

The world computes no reward (it holds no reward weight; see `asfed.dealer`), each agent computes
its own from its own weights, and the relay sees neither. What the experimenter reports (team
return, each agent's return, the ground-truth rewards of logged rounds) comes from here: the one
place outside the agents that holds every weight, as the ground truth does.
"""

from __future__ import annotations

import numpy as np


class Scorer:
    """Returns under the ground-truth weights `[N, D]`."""

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = np.asarray(weights, np.float64)

    def rewards(self, features: np.ndarray) -> np.ndarray:
        """features `[B, T, N, D]` -> every agent's rewards `[B, T, N]`."""
        return np.einsum("btnd,nd->btn", features, self.weights)

    def returns(self, features: np.ndarray) -> np.ndarray:
        """Each agent's undiscounted return, mean over the B episodes, `[N]`."""
        return self.rewards(features).sum(1).mean(0)
