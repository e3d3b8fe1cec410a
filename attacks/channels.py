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

Only each round's first share is read (the acting policy that produced the round's actions; the
K - 1 later shares differ from it by one update each), and a distribution the victim sent
unchanged to several neighbours counts once.
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


def _rows(view: AttackerView, m: Message) -> np.ndarray:
    n = view.records[m.round].num_rows
    return np.arange(n) if m.rows is None else m.rows.astype(np.int64)


def _load(module: torch.nn.Module, vector: np.ndarray) -> torch.nn.Module:
    torch.nn.utils.vector_to_parameters(torch.as_tensor(vector), module.parameters())
    return module


def evidence(view: AttackerView) -> list[Evidence]:
    """Every piece of evidence in the view's messages (empty when the victim sent nothing)."""
    j, n = view.victim, view.num_agents
    out = []
    seen: set[tuple] = set()
    for m in view.messages:
        if m.step != 0:
            continue
        if m.kind == "policy_dist" or m.kind.endswith("params"):
            key = (m.round, m.kind, None if m.rows is None else m.rows.tobytes())
            if key in seen:
                continue
            seen.add(key)
        rec = view.records[m.round]
        rows = _rows(view, m)
        if m.kind in ("policy_dist", "anticipation"):
            actor = j if m.kind == "policy_dist" else m.receiver
            prefs = np.log(np.maximum(m.payload.astype(np.float64), LOG_FLOOR))
            out.append(Evidence(m.round, rows, actor, prefs=prefs))
        elif m.kind in ("values", "reward"):
            taken = m.payload.astype(np.float64).reshape(-1)
            if m.kind == "reward":  # CPPO: `[B, T]` rewards; keep the valid steps
                taken = m.payload.astype(np.float64)[rec.valid]
            out.append(Evidence(m.round, rows, j, taken=taken))
        elif m.kind in ("policy_params", "value_params"):
            out.append(_from_params(view, m, rec.row_obs(), rec.row_actions(), n))
    return out


def _from_params(
    view: AttackerView, m: Message, obs: np.ndarray, actions: np.ndarray, n: int
) -> Evidence:
    """Rebuild the shared network (its shape is public) and evaluate it on the recorded rows."""
    j, a_count = view.victim, num_actions(view)
    obs_t = torch.as_tensor(obs)
    with torch.no_grad():
        if m.kind == "policy_params":  # PS: the joint policy, factor j
            net = _load(mlp([obs.shape[1], *view.hidden["actor"]], n * a_count), m.payload)
            logits = net(obs_t).view(len(obs), n, a_count)[:, j]
            prefs = torch.log_softmax(logits, -1).double().numpy()
        else:  # VPS: Q(s, (a_j', a_-j)) of the shared critic
            net = _load(mlp([obs.shape[1] + n * a_count, *view.hidden["critic"]], 1), m.payload)
            joint = torch.as_tensor(actions)[:, None, :].repeat(1, a_count, 1)
            joint[:, :, j] = torch.arange(a_count)
            hot = torch.nn.functional.one_hot(joint, a_count).float().flatten(-2)
            q = net(torch.cat([obs_t[:, None].expand(-1, a_count, -1), hot], -1))[..., 0]
            prefs = q.double().numpy()
    return Evidence(m.round, np.arange(len(obs)), j, prefs=prefs)


def num_actions(view: AttackerView) -> int:
    """The env's action count (public rules)."""
    return rules(view.env, view.options).num_actions
