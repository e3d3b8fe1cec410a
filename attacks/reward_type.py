"""`reward-type`: which of K public candidates is the victim's reward, from its messages.

Navigation: which landmark slot is the victim's (K = N); exchange: which box slot holds its food
(K = 3); envs whose private weights are continuous have no discrete type and the attack does not
apply. Each candidate k is a weight vector w_k (with, where the features depend on the private
parameter, the features it implies); the attack scores how much of the evidence a reward along
w_k explains (`attacks.estimators.DirectionStats`) and guesses the best, over the whole run and
episode by episode. No part of it is learned across runs: the only fitted quantity is each
candidate's non-negative scale, on the victim's own evidence.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from asfed.errors import AsfedError
from attacks.channels import evidence
from attacks.estimators import DirectionStats, logit_scale
from attacks.features import hypotheses
from attacks.registry import ATTACKS, Attack
from attacks.rounds import RoundFeatures, all_episodes, by_round, episode_keys, taken_features
from attacks.view import AttackerView


@dataclasses.dataclass
class TypeGuess:
    """scores `[K]` over the run; episode_keys `[E]` and episode_scores `[E, K]`; the guesses
    are the argmax, ties broken at random (seeded), so that no evidence guesses at chance."""

    channel: str
    scores: np.ndarray
    episode_keys: np.ndarray
    episode_scores: np.ndarray

    @property
    def guess(self) -> int:
        return int(_argmax(self.scores[None], np.random.default_rng(0))[0])

    @property
    def episode_guesses(self) -> np.ndarray:
        return _argmax(self.episode_scores, np.random.default_rng(1))


def _argmax(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row-wise argmax of `[E, K]`, ties (within 1e-12) broken uniformly at random."""
    top = scores >= scores.max(1, keepdims=True) - 1e-12
    noise = rng.random(scores.shape)
    return np.where(top, noise, -1.0).argmax(1)


@dataclasses.dataclass
class NoEvidence:
    """The attacker received nothing it can use about the victim (never scored as zero leak)."""

    reason: str


def silence(view: AttackerView) -> NoEvidence:
    """What an attack returns when the victim sent the attacker nothing."""
    return NoEvidence(
        f"{view.attacker} received nothing from agent {view.victim} ({view.method} run)"
    )


def applies(env: str, options: dict) -> bool:
    """Whether the env's agents have a private reward type to guess (two or more candidates:
    navigation's landmark, exchange's food boxes; predation has none)."""
    try:
        return len(hypotheses(env, options, 0)) >= 2
    except AsfedError:
        return False


def candidates(view: AttackerView) -> tuple[list[dict], list[int], np.ndarray]:
    """(distinct feature hypotheses, each type's index into them, type weights `[K, D]`), or
    an error where the env has no discrete reward type."""
    try:
        hyps = hypotheses(view.env, view.options, view.victim)
    except AsfedError as err:
        raise AsfedError(f"reward-type does not apply to {view.env}: {err}") from None
    if len(hyps) < 2:
        raise AsfedError(
            f"reward-type does not apply to {view.env}: its agents have no private reward type "
            "(one candidate); accepted envs: navigation, exchange"
        )
    distinct: list[dict] = []
    index = []
    for private, _ in hyps:
        match = [i for i, d in enumerate(distinct) if _same(d, private)]
        if not match:
            distinct.append(private)
            match = [len(distinct) - 1]
        index.append(match[0])
    return distinct, index, np.stack([w for _, w in hyps])


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def from_messages(view: AttackerView) -> TypeGuess | NoEvidence:
    """Classify the victim's reward type from what the attacker received."""
    distinct, index, weights = candidates(view)
    ev = evidence(view)
    if not ev:
        return silence(view)
    episodes = all_episodes(view)
    stats = [DirectionStats(episodes) for _ in weights]
    for r, evs in by_round(view, ev).items():
        phi = RoundFeatures(view, r, distinct)
        keys = episode_keys(view, r)
        for e in evs:
            for k, w in enumerate(weights):
                f = phi(e.actor, index[k])
                if e.prefs is not None:
                    stats[k].add_prefs(keys[e.rows], f[e.rows] @ w, e.prefs)
                else:
                    stats[k].add_taken(keys[e.rows], taken_features(view, e, f) @ w, e.taken)
    return _collect("messages", episodes, stats)


def _collect(channel: str, episodes: np.ndarray, stats: list[DirectionStats]) -> TypeGuess:
    run, per_episode = zip(*(s.scores() for s in stats), strict=True)
    return TypeGuess(channel, np.array(run), episodes, np.stack(per_episode, 1))


def from_actions(view: AttackerView, max_rows: int = 50_000, seed: int = 0) -> TypeGuess:
    """The actions-only baseline: the same question from the public record alone. Each
    candidate's scale is fitted by maximum likelihood of the victim's observed actions under
    softmax(beta Phi . w_k) (on at most `max_rows` rows); the score is the log-likelihood gain
    per row over beta = 0, over the run and per episode."""
    distinct, index, weights = candidates(view)
    rng = np.random.default_rng(seed)
    acts, phis = {k: [] for k in range(len(weights))}, {k: [] for k in range(len(weights))}
    per_round = []
    for r, rec in view.records.items():
        phi = RoundFeatures(view, r, distinct)
        a = rec.row_actions()[:, view.victim]
        xs = [phi(view.victim, index[k]) @ w for k, w in enumerate(weights)]  # [M, A] each
        per_round.append((episode_keys(view, r), a, xs))
    total = sum(len(a) for _, a, _ in per_round)
    keep_p = min(1.0, max_rows / max(total, 1))
    for _, a, xs in per_round:
        pick = rng.random(len(a)) < keep_p
        for k, x in enumerate(xs):
            acts[k].append(a[pick])
            phis[k].append(x[pick])
    betas = [
        logit_scale(np.concatenate(acts[k]), np.concatenate(phis[k])) for k in range(len(weights))
    ]
    episodes = all_episodes(view)
    where = {int(e): i for i, e in enumerate(episodes)}
    gain = np.zeros((len(episodes), len(weights)))
    count = np.zeros(len(episodes))
    for keys, a, xs in per_round:
        idx = np.array([where[int(e)] for e in keys])
        count += np.bincount(idx, minlength=len(episodes))
        for k, x in enumerate(xs):
            gain[:, k] += np.bincount(idx, _row_gain(a, x, betas[k]), minlength=len(episodes))
    run = gain.sum(0) / max(count.sum(), 1)
    return TypeGuess("actions", run, episodes, gain / np.maximum(count, 1)[:, None])


def _row_gain(actions: np.ndarray, x: np.ndarray, beta: float) -> np.ndarray:
    """log softmax(beta x)[a] - log(1/A) per row."""
    z = beta * x
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return logp[np.arange(len(actions)), actions] + np.log(x.shape[1])


@ATTACKS.register("reward-type")
class RewardType(Attack):
    """Which of K public candidate rewards is the victim's (chance 1/K)."""

    name = "reward-type"

    def run(self, view: AttackerView) -> TypeGuess | NoEvidence:
        return from_messages(view)

    def baseline(self, view: AttackerView) -> TypeGuess:
        return from_actions(view)
