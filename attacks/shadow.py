"""`shadow`: a reward-type attack learned from shadow runs (Shokri et al. 2017), read as a
likelihood ratio per hypothesis in the spirit of LiRA (Carlini et al. 2022).

The attacker trains shadow runs at the target's public config with private secrets of its own,
so it knows their answers. From each secret (one agent of one run) it takes per-hypothesis
features `[K, F]`: the run-level scores of the cheap attacks (`update`, the one-step estimator,
the actions-only baseline), each centred over the K hypotheses. A conditional logit,
P(type = k) = softmax_k(features[k] . theta), is fitted on the shadow secrets by maximum
likelihood; theta `[F]` is shared by the hypotheses (the candidates are symmetric), so a few
shadow secrets suffice. Applied to a target's view it gives each hypothesis's log-odds.

The actions-only attacker gets the same treatment on its own column alone, so the leakage due to
the messages is measured within one attacker class (both learned from the same shadows).

A departure from the issue's wording, which names per-round features: each cheap attack's score
is its mean over the logged rounds (their per-round correlations), so a training sample is a
secret, not a round. A secret's rounds are not independent samples of it (one policy, one
reward), and fitting on them as if they were would count one shadow secret 30 times; what the
model would gain from how the rounds' scores vary is not measured here.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from attacks import reward_type, update
from attacks.estimators import logit_weights
from attacks.reward_type import NoEvidence, TypeGuess
from attacks.view import AttackerView

COLUMNS = ("update", "one-step", "actions-only")
MESSAGES = COLUMNS  # the message attacker reads all three
ACTIONS = ("actions-only",)  # the public-actions attacker reads only its own
FEATURES_VERSION = 1  # bump when an attack behind COLUMNS changes: cached features are redone
MIN_SECRETS = 6  # the least shadow secrets the model is fitted on (two 3-agent runs)

# What `asfed list` says of it (it is not in the ATTACKS registry: it needs shadow runs' models).
SUMMARY = (
    "Which of K public candidate rewards is the victim's, learned from shadow runs whose "
    "secrets the attacker knows (Shokri et al. 2017; chance 1/K; --shadow-seeds or --shadows)"
)


def guesses(view: AttackerView) -> dict[str, TypeGuess | NoEvidence]:
    """The cheap attacks' guesses on a view, by COLUMNS name."""
    return {
        "update": update.from_messages(view),
        "one-step": reward_type.from_messages(view),
        "actions-only": reward_type.from_actions(view),
    }


def features(
    view: AttackerView, computed: dict[str, TypeGuess | NoEvidence] | None = None
) -> np.ndarray:
    """The victim's per-hypothesis features `[K, F]` (F = len(COLUMNS)), each column centred
    over the hypotheses (an attack that received nothing contributes zeros); `computed`: the
    guesses already made on this view (`guesses`), so none is made twice."""
    computed = computed if computed is not None else guesses(view)
    k = len(reward_type.candidates(view)[2])
    cols = []
    for name in COLUMNS:
        guess = computed[name]
        s = np.zeros(k) if isinstance(guess, NoEvidence) else np.asarray(guess.scores, float)
        cols.append(s - s.mean())
    return np.stack(cols, 1)


@dataclasses.dataclass(frozen=True)
class ShadowModel:
    """theta `[F']` over `columns` (a subset of COLUMNS), fitted on `secrets` shadow secrets."""

    columns: tuple[str, ...]
    theta: np.ndarray
    secrets: int

    def scores(self, feats: np.ndarray) -> np.ndarray:
        """Each hypothesis's log-odds `[K]` for one secret's features `[K, F]`."""
        idx = [COLUMNS.index(c) for c in self.columns]
        return feats[:, idx] @ self.theta

    def guess(self, feats: np.ndarray, channel: str) -> TypeGuess:
        s = self.scores(feats)
        return TypeGuess(channel, s, np.zeros(0, np.int64), np.zeros((0, len(s))))


def fit(feats: np.ndarray, labels: np.ndarray, columns: tuple[str, ...]) -> ShadowModel:
    """The conditional logit on shadow secrets' features `[S, K, F]` and true types `[S]`."""
    idx = [COLUMNS.index(c) for c in columns]
    x = np.asarray(feats, float)[:, :, idx]
    scale = np.maximum(np.abs(x).reshape(-1, len(idx)).max(0), 1e-12)  # conditioning only
    theta = logit_weights(np.asarray(labels, np.int64), x / scale) / scale
    return ShadowModel(tuple(columns), theta, len(labels))
