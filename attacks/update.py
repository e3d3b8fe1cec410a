"""`update`: which public candidate is the victim's reward, from how what it shares changes.

A policy-gradient step raises the log-probability of the actions its own advantage favours, so the
change of the victim's shared preferences within a round, at the actions taken, follows the
victim's return-to-go. The attack takes, for every release the victim made more than once in a
round (AS's pi^jj and each anticipation pi^ji, PS's joint policy and VPS's critic evaluated on the
round's states), the change between the round's first and last share, centred over actions, at
the actor's taken action `[R]`; and, for shared values (VS's advantages, CPPO's rewards), the
values themselves. It correlates these, per round and centred within the round, with each
candidate's discounted return-to-go on the same rows, and guesses the candidate they follow best.
It fits nothing, and it is cheap: one pass over the evidence and one cumulative sum per round.

For PS and VPS, whose every update starts with a consensus step that mixes in the neighbours'
parameters, the relay (which routed every parameter message) removes that part: the victim's
own local step k is theta_j^(k+1) minus sum_l c_jl theta_l^(k), with the Metropolis weights the
routed fan-outs imply, and the signal is the change of preferences across the local steps alone.
A curious neighbour, which saw only some of the victim's inbox, reads the plain change.

Between rounds the shared distributions cover different states, so only the within-round change
(K - 1 of a round's K updates) is read; a method that shares once a round (K = 1) leaves its
preferences to the one-step attack. Shared parameters (PS, VPS) could be compared across rounds
on one round's states (the round's last update), but only every `log_every`-th round's messages
are recorded (every 10th in the paper-budget scenarios), so two consecutive rounds are rarely
both there: not read, a known gap where messages are logged every round.
"""

from __future__ import annotations

import numpy as np

from attacks.channels import Evidence, evidence, from_params
from attacks.estimators import centre
from attacks.registry import ATTACKS, Attack
from attacks.reward_type import NoEvidence, TypeGuess, candidates, from_actions, silence
from attacks.rounds import RoundFeatures, by_round, taken_features
from attacks.view import PARAM_KINDS, AttackerView


def returns_to_go(rewards: np.ndarray, episodes: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted return-to-go of each row `[M]`, rows of one episode being consecutive steps in
    time order (a round's valid rows, `PublicRecord` order); `episodes` `[M]` labels them."""
    out = np.zeros(len(rewards))
    running = 0.0
    for m in range(len(rewards) - 1, -1, -1):
        if m == len(rewards) - 1 or episodes[m + 1] != episodes[m]:
            running = 0.0
        running = rewards[m] + gamma * running
        out[m] = running
    return out


def _consensus(view: AttackerView, round_: int, step: int, kind: str, own: np.ndarray):
    """The victim's consensus point at `step` `[P]` from its own shared parameters and its inbox
    (Metropolis weights from the routed fan-outs); None where the inbox is not all there."""
    j = view.victim
    inbox = [m for m in view.inbox if (m.round, m.step, m.kind) == (round_, step, kind)]
    d_j = view.degrees.get((round_, step, j))
    if d_j is None or len(inbox) != d_j:
        return None
    total = np.zeros_like(own)
    weight = 0.0
    for m in inbox:
        c = 1.0 / (1 + max(d_j, view.degrees[(round_, step, m.sender)]))
        total += c * m.payload.astype(np.float64)
        weight += c
    return total + (1.0 - weight) * own


def _local_steps(view: AttackerView, round_: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows, signal) from the victim's parameter shares with the consensus part removed: the
    summed change of preferences over its local steps, at its taken actions (relay only)."""
    if not view.inbox:
        return []
    rec = view.records[round_]
    obs, actions = rec.row_obs(), rec.row_actions()
    shares: dict[tuple[str, int], list[np.ndarray]] = {}
    for m in view.messages:
        if m.round == round_ and m.kind in PARAM_KINDS:
            shares.setdefault((m.kind, m.step), []).append(m.payload.astype(np.float64))
    out = []
    for kind in sorted({k for k, _ in shares}):
        own = {s: np.mean(p, axis=0) for (k, s), p in shares.items() if k == kind}
        total = np.zeros(rec.num_rows)
        found = False
        for step in sorted(own):
            if step + 1 not in own:
                continue
            mixed = _consensus(view, round_, step, kind, own[step])
            if mixed is None:
                continue
            prefs = [
                from_params(view, kind, theta, obs, actions, view.num_agents).prefs
                for theta in (mixed, own[step + 1])
            ]
            delta = centre(prefs[1] - prefs[0])
            total += delta[np.arange(rec.num_rows), actions[:, view.victim]]
            found = True
        if found:
            out.append((np.arange(rec.num_rows), total))
    return out


def _changes(view: AttackerView, evs: list[Evidence]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rows `[R]`, signal `[R]`) per actor: the first-to-last change of shared preferences at
    the actor's taken actions, row by row between the first and the last share that carried
    the row (so releases of a random subset of the rows, `--share-rows`, still compare wherever
    two shares overlap; a step's copies averaged row by row, `_per_step`); for parameters,
    the local steps alone where the relay can remove the consensus; shared values averaged
    over the round's shares."""
    round_ = evs[0].round
    local = _local_steps(view, round_)
    if local:
        evs = [e for e in evs if e.kind not in PARAM_KINDS]
    record = view.records[round_]
    actions = record.row_actions()
    out = []
    taken: dict[tuple, list[Evidence]] = {}
    prefs: dict[int, list[Evidence]] = {}
    for e in evs:
        if e.prefs is None:
            taken.setdefault((e.actor, e.rows.tobytes()), []).append(e)
        else:
            prefs.setdefault(e.actor, []).append(e)
    for items in taken.values():
        out.append((items[0].rows, np.mean([e.taken for e in items], axis=0)))
    for actor, items in prefs.items():
        m, a = record.num_rows, items[0].prefs.shape[1]
        first, last = np.zeros((m, a)), np.zeros((m, a))
        first_step, last_step = np.full(m, -1), np.full(m, -1)
        for step, prefs_at in _per_step(items, m, a):
            have = ~np.isnan(prefs_at[:, 0])
            unseen = have & (first_step < 0)
            first[unseen], first_step[unseen] = prefs_at[unseen], step
            last[have], last_step[have] = prefs_at[have], step
        rows = np.flatnonzero(last_step > first_step)
        if rows.size:
            delta = centre(last[rows] - first[rows])  # [R, A]
            out.append((rows, delta[np.arange(len(rows)), actions[rows, actor]]))
    return local + out


def _per_step(items: list[Evidence], m: int, a: int) -> list[tuple[int, np.ndarray]]:
    """Each step's preferences over the round's rows `[M, A]` (NaN on rows no copy carried),
    every copy of the step averaged row by row: copies to different neighbours may carry
    different random row subsets (`--share-rows`), and under DP each carries its own noise, so
    a row seen twice is read from the mean of both (in probability space, as `evidence`
    averages copies with identical rows; weighted by how many copies each item already
    averages)."""
    out = []
    for step in sorted({e.step for e in items}):
        total, count = np.zeros((m, a)), np.zeros(m)
        for e in (e for e in items if e.step == step):
            total[e.rows] += e.copies * np.exp(e.prefs)
            count[e.rows] += e.copies
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append((step, np.log(total / count[:, None])))
    return out


def from_messages(view: AttackerView) -> TypeGuess | NoEvidence:
    """Guess the victim's reward type from the changes of what it shared. Scores `[K]` are the
    mean over rounds of each round's correlation (each round counts once: early rounds' large
    changes would otherwise outweigh the rest); the per-round scores ride in the guess's episode
    fields (keyed by round)."""
    distinct, index, weights = candidates(view)
    ev = evidence(view)
    if not ev:
        return silence(view)
    k_count = len(weights)
    keys, per_round = [], []
    for r, evs in sorted(by_round(view, ev).items()):
        signals = _changes(view, evs)
        if not signals:
            continue
        rec = view.records[r]
        episodes = rec.row_episodes()
        phi = RoundFeatures(view, r, distinct)
        own = Evidence(r, np.arange(rec.num_rows), view.victim)
        g = np.stack(
            [
                returns_to_go(taken_features(view, own, phi(view.victim, index[k])) @ w,
                              episodes, view.gamma)
                for k, w in enumerate(weights)
            ]
        )  # fmt: skip
        local = np.zeros((3, k_count))
        for rows, y in signals:
            x = g[:, rows] - g[:, rows].mean(1, keepdims=True)  # [K, R]
            y = y - y.mean()
            local += np.stack([x @ y, (x * x).sum(1), np.full(k_count, y @ y)])
        keys.append(r)
        per_round.append(_corr(local))
    if not keys:
        return NoEvidence(
            f"agent {view.victim} shared each release once a round ({view.method}): no "
            "within-round change to read"
        )
    rounds = np.stack(per_round)
    return TypeGuess("updates", rounds.mean(0), np.array(keys), rounds)


def _corr(s: np.ndarray) -> np.ndarray:
    """Correlations `[K]` from sums (xy, xx, yy) `[3, K]` (0 where a side is constant)."""
    xy, xx, yy = s
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((xx > 0) & (yy > 0), xy / np.sqrt(xx * yy), 0.0)


@ATTACKS.register("update")
class Update(Attack):
    """Which of K public candidate rewards is the victim's, from how its shares change within a
    round (chance 1/K)."""

    name = "update"
    question = "reward-type"

    def run(self, view: AttackerView) -> TypeGuess | NoEvidence:
        return from_messages(view)

    def baseline(self, view: AttackerView) -> TypeGuess:
        return from_actions(view)
