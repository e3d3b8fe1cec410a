"""`reward-inversion`: the victim's reward on public transitions, up to a positive affine map.

The reward is linear in public features, r = Phi . w (`reward_features`, under each hypothesis
about a private parameter the features depend on). From the messages, w is the least-squares fit
of the victim's preferences (AS's shared pi^jj and anticipations pi^ji, PS's shared joint policy,
VPS's shared Q, all centred over actions) and of its taken values (VS's shared advantages, CPPO's
rewards) on the features (`attacks.estimators.NormalEquations`), under the hypothesis that fits
best. The actions-only baseline fits w by a conditional logit on the victim's observed actions.
Both fit on the episodes they are given, so that scoring can use disjoint ones.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from attacks.channels import evidence
from attacks.estimators import NormalEquations, logit_loglik, logit_weights
from attacks.features import feature_candidates
from attacks.registry import ATTACKS, Attack
from attacks.reward_type import NoEvidence, silence
from attacks.rounds import RoundFeatures, by_round, episode_keys, taken_features
from attacks.view import AttackerView


@dataclasses.dataclass
class RewardEstimate:
    """The recovered reward r_hat = Phi_h . weights (h: the feature hypothesis used)."""

    channel: str
    hypothesis: int
    weights: np.ndarray
    fit: float  # R^2 (messages) or mean log-likelihood (actions) on the fitting rows


def _allowed(keys: np.ndarray, episodes: set[int] | None) -> np.ndarray:
    return np.ones(len(keys), bool) if episodes is None else np.isin(keys, list(episodes))


def from_messages(view: AttackerView, episodes: set[int] | None = None):
    """Fit the reward on the messages' evidence from `episodes` (None: all)."""
    ev = evidence(view)
    if not ev:
        return silence(view)
    hyps = feature_candidates(view.env, view.options)
    dim = None
    systems: list[NormalEquations] = []
    for r, evs in by_round(view, ev).items():
        phi = RoundFeatures(view, r, hyps)
        keys = episode_keys(view, r)
        for e in evs:
            keep = _allowed(keys[e.rows], episodes)
            if not keep.any():
                continue
            for h in range(len(hyps)):
                f = phi(e.actor, h)
                if dim is None:
                    dim = f.shape[-1]
                    systems = [NormalEquations(dim) for _ in hyps]
                if e.prefs is not None:
                    systems[h].add_prefs(f[e.rows[keep]], e.prefs[keep])
                else:
                    systems[h].add_taken(taken_features(view, e, f)[keep], e.taken[keep])
    if not systems:
        return NoEvidence(f"no evidence from agent {view.victim} in the fitting episodes")
    fits = [s.solve() for s in systems]
    best = int(np.argmax([f[2] for f in fits]))
    return RewardEstimate("messages", best, fits[best][0], fits[best][2])


def from_actions(
    view: AttackerView, episodes: set[int] | None = None, max_rows: int = 50_000, seed: int = 0
) -> RewardEstimate:
    """The actions-only baseline: conditional-logit weights from the victim's observed actions
    in `episodes` (at most `max_rows` rows, drawn at random), under the best hypothesis."""
    hyps = feature_candidates(view.env, view.options)
    rng = np.random.default_rng(seed)
    total = sum(rec.num_rows for rec in view.records.values())
    keep_p = min(1.0, max_rows / max(total, 1))
    acts, phis = [], [[] for _ in hyps]
    for r, rec in view.records.items():
        keep = _allowed(episode_keys(view, r), episodes) & (rng.random(rec.num_rows) < keep_p)
        phi = RoundFeatures(view, r, hyps)
        acts.append(rec.row_actions()[keep, view.victim])
        for h in range(len(hyps)):
            phis[h].append(phi(view.victim, h)[keep])
    a = np.concatenate(acts)
    if not len(a):  # no transitions in these episodes: nothing to fit
        dim = phis[0][0].shape[-1]
        return RewardEstimate("actions", 0, np.zeros(dim), float("nan"))
    fits = []
    for h in range(len(hyps)):
        x = np.concatenate(phis[h])
        w = logit_weights(a, x)
        fits.append((w, logit_loglik(a, x, w)))
    best = int(np.argmax([f[1] for f in fits]))
    return RewardEstimate("actions", best, fits[best][0], fits[best][1])


def predict(
    view: AttackerView, estimate: RewardEstimate, episodes: set[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """r_hat on the victim's taken transitions in `episodes`: (round `[R]`, row `[R]`, r_hat
    `[R]`), rows in each round's valid order."""
    hyps = feature_candidates(view.env, view.options)
    out_round, out_row, out_r = [], [], []
    for r, rec in view.records.items():
        keep = _allowed(episode_keys(view, r), episodes)
        if not keep.any():
            continue
        phi = RoundFeatures(view, r, hyps)(view.victim, estimate.hypothesis)
        rows = np.flatnonzero(keep)
        taken = rec.row_actions()[rows, view.victim]
        out_round.append(np.full(len(rows), r))
        out_row.append(rows)
        out_r.append(phi[rows, taken] @ estimate.weights)
    if not out_r:  # no transitions in these episodes
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    return np.concatenate(out_round), np.concatenate(out_row), np.concatenate(out_r)


@ATTACKS.register("reward-inversion")
class RewardInversion(Attack):
    """The victim's reward on public transitions, up to a positive affine map."""

    name = "reward-inversion"

    def run(self, view: AttackerView, episodes: set[int] | None = None):
        return from_messages(view, episodes)

    def baseline(self, view: AttackerView, episodes: set[int] | None = None) -> RewardEstimate:
        return from_actions(view, episodes)
