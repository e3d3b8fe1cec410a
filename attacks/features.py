"""Counterfactual reward features from the public record: what the victim's reward features would
have been had one agent taken each other action, under each public hypothesis.

Only the env's public rules are used: an env built with an unrelated seed (its own private draw is
never read) computes features under a hypothesis given explicitly (`feature_candidates`), from the
recorded states. For a victim j and an actor i (j itself, or a neighbour whose action j's
anticipation describes), `counterfactual(...)` gives `Phi [M, A_i, D]`: row m, action a of i, with
everyone else's recorded action.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from asfed.comm.record import PublicRecord
from asfed.envs import make_vec_env
from asfed.envs.base import VecEnv


def rules(env: str, options: dict[str, Any], copies: int = 1) -> VecEnv:
    """An env with `copies` copies for computing features (seed 0: its private draw is unused);
    built once per (env, options, copies)."""
    return _rules(env, copies, tuple(sorted(options.items())))


@functools.lru_cache(maxsize=16)
def _rules(env: str, copies: int, options: tuple[tuple[str, Any], ...]) -> VecEnv:
    return make_vec_env(env, copies, seed=0, **dict(options))


def _state_cls(core: VecEnv) -> type:
    """The env's `EnvState` class (of a reset probe: subclasses extend their parent's)."""
    if core.state is None:
        core.reset()
    return type(core.state)


def hypotheses(env: str, options: dict[str, Any], victim: int) -> list[tuple[dict, np.ndarray]]:
    """The victim's K reward types: (a feature candidate consistent with it, weights `[D]`)."""
    core = rules(env, options)
    types = core.reward_type_candidates()  # [K, D]
    cands = core.feature_candidates()
    try:
        implied = core.candidate_reward_weights()[:, victim]  # [C, D]
    except Exception:  # weights not fixed by the features' hypotheses: any candidate serves
        return [(cands[0], w) for w in types]
    out = []
    for w in types:
        c = next(i for i in range(len(cands)) if np.allclose(implied[i], w))
        out.append((cands[c], w))
    return out


def feature_candidates(env: str, options: dict[str, Any]) -> list[dict]:
    return rules(env, options).feature_candidates()


CHUNK_COPIES = 8192  # env copies per batched call: bounds memory on the large maps


def counterfactual(
    rec: PublicRecord,
    env: str,
    options: dict[str, Any],
    victim: int,
    actor: int,
    private: dict,
) -> np.ndarray:
    """Phi `[M, A, D]`: the victim's features on each valid row of the round if `actor` had
    taken action a (others as recorded), under the hypothesis `private`: `counterfactual_agents`'
    slice for the victim."""
    return counterfactual_agents(rec, env, options, actor, private)[:, :, victim]


def counterfactual_agents(
    rec: PublicRecord,
    env: str,
    options: dict[str, Any],
    actor: int,
    private: dict,
) -> np.ndarray:
    """Phi `[M, A, N, D]`: every agent's features on each valid row of the round if `actor`
    had taken action a (others as recorded), under the hypothesis `private` (one evaluation
    serves every victim of a run).

    Every valid row's state is gathered from the record (`[T, B, ...]` -> `[M, ...]`) and the
    rows are evaluated together, A copies each, in chunks of CHUNK_COPIES env copies: a feature
    is a pure function of one state and joint action, and depends on no step counter
    (`tests/attacks` checks this against a step-by-step evaluation on every env)."""
    probe = rules(env, options)
    a_count = probe.num_actions
    cls = _state_cls(probe)
    b_idx, t_idx = np.nonzero(rec.valid)  # row-major [B, T]: the rows' order
    fields = {k: v for k, v in rec.states.items() if k != "t"}
    rows = max(1, CHUNK_COPIES // a_count)
    out = np.zeros((len(b_idx), a_count, probe.num_agents, len(probe.feature_names)))
    for lo in range(0, len(b_idx), rows):
        b, t = b_idx[lo : lo + rows], t_idx[lo : lo + rows]
        state = cls(t=0, **{k: v[t, b] for k, v in fields.items()})
        big = _repeat_state(state, a_count)
        joint = np.repeat(rec.actions[b, t], a_count, axis=0)  # [R * A, N]
        joint[:, actor] = np.tile(np.arange(a_count), len(b))
        core = rules(env, options, len(b) * a_count)
        feats = core.reward_features(big, joint, private=private)  # [R * A, N, D]
        out[lo : lo + len(b)] = feats.reshape(len(b), a_count, *feats.shape[1:])
    return out


def counterfactual_by_step(
    rec: PublicRecord, env: str, options: dict[str, Any], victim: int, actor: int, private: dict
) -> np.ndarray:
    """`counterfactual`, one time step at a time with the recorded step counter (the reference
    the batched version is tested against)."""
    b, t_max, _ = rec.actions.shape
    probe = rules(env, options)
    a_count = probe.num_actions
    core = rules(env, options, b * a_count)
    cls = _state_cls(probe)
    out = np.zeros((b, t_max, a_count, len(probe.feature_names)))
    for t in range(t_max):
        if not rec.valid[:, t].any():
            continue
        big = _repeat_state(rec.env_state(t, cls), a_count)
        joint = np.repeat(rec.actions[:, t], a_count, axis=0)
        joint[:, actor] = np.tile(np.arange(a_count), b)
        feats = core.reward_features(big, joint, private=private)
        out[:, t] = feats[:, victim].reshape(b, a_count, -1)
    return out[rec.valid]


def _repeat_state(state: Any, times: int) -> Any:
    """A state of B copies -> B * times copies (each copy repeated `times` times in a row)."""
    fields = {}
    for f in dataclasses.fields(state):
        v = getattr(state, f.name)
        fields[f.name] = np.repeat(v, times, axis=0) if isinstance(v, np.ndarray) else v
    return type(state)(**fields)
