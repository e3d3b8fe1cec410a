"""Streaming an attacker's view round by round: episode keys and counterfactual features.

Features are computed per round, per actor and per hypothesis, when first asked for, for every
agent at once (one evaluation serves every victim of the run: `attacks.view` shares a run's
records between its victims' views), and dropped with the record, which the audit lets go
(`attacks.view.forget_records`) once the run's victims are done.
"""

from __future__ import annotations

import weakref

import numpy as np

from attacks.channels import Evidence
from attacks.estimators import EPISODE
from attacks.features import counterfactual_agents
from attacks.view import AttackerView


def episode_keys(view: AttackerView, round_: int) -> np.ndarray:
    """The episode key (`round * EPISODE + b`) of each valid row of a round, `[M]`."""
    return round_ * EPISODE + view.records[round_].row_episodes()


def all_episodes(view: AttackerView) -> np.ndarray:
    """Every episode key of the view's records, ascending, `[E]`."""
    return np.unique(np.concatenate([episode_keys(view, r) for r in view.records]))


# Every agent's features computed for a record, kept while the record lives (an attack and its
# baseline, both questions and every victim read the same features of the same record).
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class RoundFeatures:
    """One round's counterfactual features of the view's victim `[M, A, D]`, by (actor,
    hypothesis index); read-only, as they are shared."""

    def __init__(self, view: AttackerView, round_: int, hypotheses: list[dict]) -> None:
        self.view, self.round, self.hypotheses = view, round_, hypotheses

    def __call__(self, actor: int, h: int) -> np.ndarray:
        v = self.view
        rec = v.records[self.round]
        hyp = tuple(
            sorted(
                (k, str(np.asarray(x).dtype), np.shape(x), np.asarray(x).tobytes())
                for k, x in self.hypotheses[h].items()
            )
        )
        key = (v.env, tuple(sorted(v.options.items())), actor, hyp)
        store = _CACHE.setdefault(rec, {})
        if key not in store:
            phi = counterfactual_agents(rec, v.env, v.options, actor, self.hypotheses[h])
            phi.setflags(write=False)
            store[key] = phi
        return store[key][:, :, v.victim]


def by_round(view: AttackerView, evidence: list[Evidence]) -> dict[int, list[Evidence]]:
    """The evidence grouped by round (rounds without evidence left out)."""
    out: dict[int, list[Evidence]] = {}
    for e in evidence:
        out.setdefault(e.round, []).append(e)
    return out


def taken_features(view: AttackerView, e: Evidence, phi: np.ndarray) -> np.ndarray:
    """The features of the action the victim took on each of the evidence's rows, `[R, D]`."""
    taken = view.records[e.round].row_actions()[e.rows, view.victim]
    return phi[e.rows, taken]
