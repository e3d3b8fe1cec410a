"""What each method's messages say about the victim's preferences, as evidence rows.

Every channel is reduced to one of two forms, on rows of a round's public record:
- preferences `[R, A]` over the actions of an actor (up to a constant per row): AS's shared
  pi^jj (actor j) and its anticipations pi^ji (actor i: j's anticipation of i's action carries
  j's advantage of it), as log-probabilities, which soft-optimality relates to A_j / tau; PS's
  shared joint policy, evaluated on the recorded states, factor j; VPS's shared critic,
  evaluated anywhere: Q(s, (a_j', a_-j));
  (For PS the issue's suggestion was the change of the shared policy between rounds; the policy
  itself, read as soft-optimal preferences like AS's, uses the same estimator and strictly more
  of what was sent.)
- values of the taken transition `[R]`: VS's shared advantages A_j(s_t, a_t) (their Bellman
  residuals are the reward plus a shaping term), CPPO's rewards themselves.
IPPO sends nothing: no evidence, and the attack says so.

Every share of every logged round is read (all K steps: step 0 is the acting policy that
produced the round's actions, each later one differs from it by one more update), and the copies
of one release that the victim sent to several receivers (the same round, step, kind and rows)
are averaged: without DP they are equal; under DP each copy of a distribution or of values
carries independent noise, so their mean has the noise of one copy divided by sqrt(copies),
while parameters are noised once and sent alike (averaging changes nothing). The accountant
counts every copy as a release (`RunConfig.release_bound`), which is exact for the first kind
and conservative for parameters.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from asfed.agents.networks import mlp
from asfed.comm.messages import Message
from attacks.features import rules
from attacks.view import AttackerView

LOG_FLOOR = 1e-6  # shared rows may sit on a vertex (noise, projection): floor before the log


@dataclasses.dataclass
class Evidence:
    """One message's worth: `rows` `[R]` into its round's valid rows; `actor`, whose actions the
    preferences range over; `prefs` `[R, A]` or `taken` `[R]` (one of them)."""

    round: int
    rows: np.ndarray
    actor: int
    prefs: np.ndarray | None = None
    taken: np.ndarray | None = None
    step: int = 0
    copies: int = 1
    kind: str = ""


@dataclasses.dataclass(frozen=True)
class Reading:
    """How much of its view an attack read: logged rounds with evidence, distinct shares
    (round, step), messages received (every copy), and evidence items after averaging copies."""

    rounds: int
    shares: int
    messages: int
    items: int

    def line(self) -> str:
        return (
            f"read {self.rounds} rounds, {self.shares} shares, {self.messages} messages "
            f"({self.items} after averaging copies)"
        )


def _rows(view: AttackerView, m: Message) -> np.ndarray:
    n = view.records[m.round].num_rows
    return np.arange(n) if m.rows is None else m.rows.astype(np.int64)


def _load(module: torch.nn.Module, vector: np.ndarray) -> torch.nn.Module:
    torch.nn.utils.vector_to_parameters(
        torch.as_tensor(vector, dtype=torch.float32), module.parameters()
    )
    return module


def _copies(view: AttackerView) -> dict[tuple, list[Message]]:
    """The victim's messages grouped by release: (round, step, kind, actor, rows) -> its copies
    (one per receiver; the actor of an anticipation is its receiver)."""
    groups: dict[tuple, list[Message]] = {}
    for m in view.messages:
        actor = m.receiver if m.kind == "anticipation" else view.victim
        rows = None if m.rows is None else m.rows.tobytes()
        groups.setdefault((m.round, m.step, m.kind, actor, rows), []).append(m)
    return groups


def evidence(view: AttackerView) -> list[Evidence]:
    """Every piece of evidence in the view's messages, one per release with its copies averaged,
    in (round, step) order (empty when the victim sent nothing). Computed once a view (PS and
    VPS evaluate the shared networks for it) and shared by the attacks that read it."""
    if "evidence" not in view.derived:
        view.derived["evidence"] = _evidence(view)
    return list(view.derived["evidence"])


def _evidence(view: AttackerView) -> list[Evidence]:
    n = view.num_agents
    out = []
    for (round_, step, kind, actor, _), copies in sorted(
        _copies(view).items(), key=lambda kv: (kv[0][0], kv[0][1])
    ):
        m = copies[0]
        payload = np.mean([c.payload.astype(np.float64) for c in copies], axis=0)
        rec = view.records[round_]
        rows = _rows(view, m)
        if kind in ("policy_dist", "anticipation"):
            prefs = np.log(np.maximum(payload, LOG_FLOOR))
            item = Evidence(round_, rows, actor, prefs=prefs)
        elif kind in ("values", "reward"):
            taken = payload.reshape(-1)
            if kind == "reward":  # CPPO: `[B, T]` rewards; keep the valid steps
                taken = payload[rec.valid]
            item = Evidence(round_, rows, actor, taken=taken)
        elif kind in ("policy_params", "value_params"):
            item = from_params(view, kind, payload, rec.row_obs(), rec.row_actions(), n)
        else:
            continue
        item.round, item.step, item.copies, item.kind = round_, step, len(copies), kind
        out.append(item)
    return out


def reading(view: AttackerView, items: list[Evidence]) -> Reading:
    """What `evidence(view)` read of the view."""
    return Reading(
        rounds=len({e.round for e in items}),
        shares=len({(e.round, e.step) for e in items}),
        messages=len(view.messages),
        items=len(items),
    )


def from_params(
    view: AttackerView, kind: str, payload: np.ndarray, obs: np.ndarray, actions: np.ndarray, n: int
) -> Evidence:
    """Rebuild a shared network from its parameters `[P]` (its shape is public) and evaluate it
    on the recorded rows: preferences `[M, A]` over the victim's actions."""
    j, a_count = view.victim, num_actions(view)
    obs_t = torch.as_tensor(obs)
    with torch.no_grad():
        if kind == "policy_params":  # PS: the joint policy, factor j
            net = _load(mlp([obs.shape[1], *view.hidden["actor"]], n * a_count), payload)
            logits = net(obs_t).view(len(obs), n, a_count)[:, j]
            prefs = torch.log_softmax(logits, -1).double().numpy()
        else:  # VPS: Q(s, (a_j', a_-j)) of the shared critic
            net = _load(mlp([obs.shape[1] + n * a_count, *view.hidden["critic"]], 1), payload)
            joint = torch.as_tensor(actions)[:, None, :].repeat(1, a_count, 1)
            joint[:, :, j] = torch.arange(a_count)
            hot = torch.nn.functional.one_hot(joint, a_count).float().flatten(-2)
            q = net(torch.cat([obs_t[:, None].expand(-1, a_count, -1), hot], -1))[..., 0]
            prefs = q.double().numpy()
    return Evidence(-1, np.arange(len(obs)), j, prefs=prefs)  # the caller sets the round


def num_actions(view: AttackerView) -> int:
    """The env's action count (public rules)."""
    return rules(view.env, view.options).num_actions
