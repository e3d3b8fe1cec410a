"""The batched environment core that every asfed environment implements.

A core steps B copies of one environment at once. Every array is batch-first: observations
`[B, N, obs_dim]`, actions `[B, N]`, rewards `[B, N]`, terminated/truncated `[B]`. All copies reset
together; an episode ends at the horizon (truncated) or earlier where the rules say (terminated);
stepping past the end is an error, so a caller cannot silently run on stale state.

Rewards are linear in public features: `reward_features(state, joint_action)` gives `F [B, N, D]`
and `reward_weights` gives `W [N, D]`, built from the private reward parameters, with
`r[b, i] = F[b, i] . W[i]`. The step computes rewards exactly that way, so the audit's ground
truth and the rewards the agents learn from can never disagree.

Features are public: where they depend on a private parameter (exchange: whose box a slot is, since
opening one's own box does nothing), `feature_candidates()` lists its possible values and
`reward_features(..., private=candidate)` computes them from the candidate alone, so an auditor can
test every hypothesis without the env's `private_params`. `candidate_reward_features` and
`candidate_reward_weights` give all candidates at once; `reward_type_candidates` lists the weight
vectors one agent may have, for hypotheses on the weights themselves.

Randomness: the run key and the private reward parameters come from a seeded
`numpy.random.Generator`; everything drawn during episodes comes from `asfed.envs.rng`, keyed per
copy, so copy b is the same whatever B is. `reset(seed=s)` reseeds the whole run (key and private
parameters), which is what PettingZoo's seeding contract asks of a `reset(seed=...)`.

A training run never uses the seed-drawn private parameters: its dealer (`asfed.dealer`) draws
them from a private seed and hands the world, through `set_private`, only the part its dynamics
need (`dynamics_keys`: exchange's owners; nothing elsewhere). Such an env has no reward weights:
it steps with `advance`, which gives the public features, and each agent turns its own row of
them into its reward.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from asfed.envs.rng import episode_keys
from asfed.errors import AsfedError


@dataclasses.dataclass
class EnvState:
    """The full state of B copies at step t. Subclasses add arrays shaped `[B, ...]`."""

    t: int
    keys: np.ndarray  # uint64 [B]: each copy's episode key
    done: np.ndarray  # bool [B]: terminated by the rules

    def copy(self) -> EnvState:
        """A deep copy (every array copied): transitions never mutate the state they were given."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return type(self)(
            **{k: v.copy() if isinstance(v, np.ndarray) else v for k, v in fields.items()}
        )


class VecEnv(ABC):
    """B copies of one environment, stepped together with numpy (no loop over copies or cells).

    Subclasses set the class attributes and implement `_draw_private`, `_initial_state`,
    `_transition`, `_observe` and `_weights`; an env whose features depend on a private parameter
    overrides `feature_candidates`.
    """

    name: ClassVar[str]
    agents_range: ClassVar[tuple[int, int]]
    default_agents: ClassVar[int]
    default_horizon: ClassVar[int]
    obs_bounds: ClassVar[tuple[float, float]] = (0.0, 1.0)
    feature_names: tuple[str, ...]
    action_names: tuple[str, ...]
    obs_dim: int

    def __init__(
        self,
        num_envs: int = 1,
        seed: int | None = None,
        num_agents: int | None = None,
        horizon: int | None = None,
    ) -> None:
        lo, hi = self.agents_range
        n = self.default_agents if num_agents is None else num_agents
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not lo <= n <= hi:
            raise AsfedError(
                f"num_agents={n!r} is outside {self.name}'s range; accepted: {lo}..{hi}"
            )
        h = self.default_horizon if horizon is None else horizon
        if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
            raise AsfedError(f"horizon={h!r} is invalid; accepted: an integer >= 1")
        if (
            isinstance(num_envs, bool)
            or not isinstance(num_envs, (int, np.integer))
            or num_envs < 1
        ):
            raise AsfedError(f"num_envs={num_envs!r} is invalid; accepted: an integer >= 1")
        self.num_agents = int(n)
        self.horizon = int(h)
        self.num_envs = int(num_envs)
        self.state: EnvState | None = None
        self._seed(seed)

    # ---- public API -------------------------------------------------------------------------

    @property
    def num_actions(self) -> int:
        return len(self.action_names)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start a new episode in every copy. Returns obs `[B, N, obs_dim]` (read-only view)."""
        if seed is not None:
            self._seed(seed)
        keys = episode_keys(self._run_key, self.reset_count, self.num_envs)
        self.reset_count += 1
        self.state = self._initial_state(keys)
        return self._broadcast(self._observe(self.state))

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every copy one step.

        actions: int `[B, N]`. Returns obs `[B, N, obs_dim]` (read-only view; the same state for
        every agent), rewards float64 `[B, N]`, terminated bool `[B]`, truncated bool `[B]`, info.
        A copy that has terminated stays frozen with zero reward until the next reset. Needs the
        reward weights (an env holding only its dynamics' secrets steps with `advance`).
        """
        weights = self.reward_weights
        obs, feats, terminated, truncated, info = self.advance(actions)
        rewards = np.einsum("bnd,nd->bn", feats, weights)
        return obs, rewards, terminated, truncated, info

    def advance(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """`step` without rewards: obs `[B, N, obs_dim]`, the true reward features float64
        `[B, N, D]` (agent i's reward is `features[:, i] . w_i`), terminated `[B]`, truncated
        `[B]`, info. What the world runs: it needs no reward weight."""
        if self.state is None:
            raise AsfedError(f"{self.name}: step() called before reset()")
        if self.state.t >= self.horizon or self.state.done.all():
            raise AsfedError(
                f"{self.name}: the episode is over (t={self.state.t}, horizon {self.horizon}); "
                "call reset()"
            )
        a = self.check_actions(actions)
        nxt, feats = self._transition(self.state, a, self.private_params)
        self.state = nxt
        terminated = nxt.done.copy()
        truncated = np.full(self.num_envs, nxt.t >= self.horizon) & ~terminated
        info = {"t": nxt.t, "features": feats}  # the true features, for the audit's ground truth
        return self._broadcast(self._observe(nxt)), feats, terminated, truncated, info

    def reward_features(
        self, state: EnvState, joint_action: np.ndarray, private: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Features of the transition from `state` under `joint_action` `[B, N]`.

        Returns float64 `[B, N, D]` with `reward[b, i] = F[b, i] . reward_weights[i]`. Pure: the
        state is not changed. `private`: one of `feature_candidates()` (extra keys are ignored);
        the features are then computed from it alone, never from `private_params`, which is what
        makes them public. None: under the env's true parameters, as `step` computes them.
        """
        a = self.check_actions(joint_action)
        params = self.private_params if private is None else self._check_private(private)
        return self._transition(state, a, params)[1]

    def feature_candidates(self) -> list[dict[str, np.ndarray]]:
        """The possible values of the private parameters the features depend on, in a fixed order.

        Default `[{}]`: the features depend on no private parameter.
        """
        return [{}]

    def candidate_reward_features(self, state: EnvState, joint_action: np.ndarray) -> np.ndarray:
        """`reward_features` under every candidate, float64 `[C, B, N, D]` (C candidates)."""
        a = self.check_actions(joint_action)
        return np.stack(
            [self._transition(state, a, c)[1] for c in self.feature_candidates()]
        ).astype(np.float64, copy=False)

    def candidate_reward_weights(self) -> np.ndarray:
        """The reward weights each feature candidate implies, float64 `[C, N, D]`.

        An error where the weights hold private parameters the candidates do not fix (navigation's
        landmark slots, apple values): there the hypotheses are on the weights, not the features;
        see `reward_type_candidates`.
        """
        cands = self.feature_candidates()
        unfixed = set(self.private_params) - set().union(*cands)
        if unfixed:
            raise AsfedError(
                f"{self.name}: the reward weights depend on private {sorted(unfixed)}, which the "
                "feature candidates do not fix; test hypotheses on the weights instead "
                "(reward_type_candidates)"
            )
        return np.stack([self._weights(c) for c in cands]).astype(np.float64, copy=False)

    def reward_type_candidates(self) -> np.ndarray:
        """The weight vectors one agent may have, float64 `[K, D]`: row k if its type is k.

        Default: where there are no private parameters, the distinct rows of `reward_weights`;
        otherwise an error (envs with a discrete private type override this).
        """
        if self.private_params:
            raise AsfedError(
                f"{self.name}: the private reward weights have no discrete set of candidates"
            )
        return np.unique(self.reward_weights, axis=0)

    def reward_type_of(self, weights: np.ndarray) -> int:
        """Which row of `reward_type_candidates` an agent with reward weights `weights` `[D]`
        has (ground truth for scoring a reward-type guess). Default: the exact match."""
        match = np.flatnonzero(np.all(np.isclose(self.reward_type_candidates(), weights), axis=1))
        if not len(match):
            raise AsfedError(f"{self.name}: weights {weights} match no reward type")
        return int(match[0])

    @property
    def reward_weights(self) -> np.ndarray:
        """Each agent's private reward weights over `feature_names`. float64 `[N, D]`."""
        missing = sorted(set(self._private_keys) - set(self.private_params))
        if missing:
            raise AsfedError(
                f"{self.name}: this env holds only the private parameters its dynamics need "
                f"({sorted(self.private_params) or 'none'}), not {missing}; each agent's reward "
                "weights live with that agent"
            )
        return self._weights(self.private_params)

    # ---- private parameters, as the dealer sets them ------------------------------------------

    def draw_private(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Every agent's private reward parameters, drawn from `rng`: `{name: [N, ...]}`."""
        return self._draw_private(rng)

    def weights_of(self, private: dict[str, Any]) -> np.ndarray:
        """The reward weights `[N, D]` that private parameters `private` imply."""
        return np.asarray(self._weights(private), np.float64)

    def dynamics_keys(self) -> list[str]:
        """The private parameters the transition reads (those the feature candidates fix):
        the part of the secrets the world must hold, as nature would."""
        return sorted(set().union(*self.feature_candidates()))

    def set_private(self, private: dict[str, np.ndarray]) -> None:
        """Replace the private parameters with `private`, which must hold at least
        `dynamics_keys` (a subset leaves the env without reward weights)."""
        missing = sorted(set(self.dynamics_keys()) - set(private))
        unknown = sorted(set(private) - set(self._private_keys))
        if missing or unknown:
            raise AsfedError(
                f"{self.name}: private parameters {sorted(private)} lack {missing} or hold "
                f"unknown {unknown}; accepted keys: {sorted(self._private_keys)}"
            )
        self.private_params = {k: np.asarray(v).copy() for k, v in private.items()}

    def check_actions(self, actions: Any) -> np.ndarray:
        """Validate a joint action `[B, N]` of integers in range; returns it as int64."""
        a = np.asarray(actions)
        expected = (self.num_envs, self.num_agents)
        if a.shape != expected:
            raise AsfedError(
                f"{self.name}: actions must have shape (num_envs, num_agents) = {expected}, "
                f"got {a.shape}"
            )
        if a.dtype.kind not in "iu":
            raise AsfedError(f"{self.name}: actions must be integers, got dtype {a.dtype}")
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= self.num_actions:
            bad = lo if lo < 0 else hi
            menu = ", ".join(f"{i}={n}" for i, n in enumerate(self.action_names))
            raise AsfedError(
                f"{self.name}: action {bad} is out of range; accepted: 0..{self.num_actions - 1} "
                f"({menu})"
            )
        return a.astype(np.int64, copy=False)

    def get_state(self) -> EnvState:
        """A copy of the current state (for audits, tests and checkpoints)."""
        if self.state is None:
            raise AsfedError(f"{self.name}: no state before reset()")
        return self.state.copy()

    def set_state(self, state: EnvState) -> None:
        """Replace the current state (a copy is kept)."""
        self.state = state.copy()

    def agent_positions(self, state: EnvState) -> np.ndarray | None:
        """Positions used by distance topologies, `[B, N]`; None where the env has none."""
        return None

    # ---- what each environment defines ------------------------------------------------------

    @abstractmethod
    def _draw_private(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw the private reward parameters of every agent from the run's generator."""

    @abstractmethod
    def _initial_state(self, keys: np.ndarray) -> EnvState:
        """The state at t = 0 for episode keys `[B]`."""

    @abstractmethod
    def _transition(
        self, state: EnvState, actions: np.ndarray, private: dict[str, Any]
    ) -> tuple[EnvState, np.ndarray]:
        """Pure transition: (next state, reward features `[B, N, D]`).

        Reads private parameters from `private` only (never `self.private_params`), and only the
        keys `feature_candidates` lists, so the features are public given a candidate.
        """

    @abstractmethod
    def _weights(self, private: dict[str, Any]) -> np.ndarray:
        """The reward weights `[N, D]` under private parameters `private`."""

    @abstractmethod
    def _observe(self, state: EnvState) -> np.ndarray:
        """The global observation, float32 `[B, obs_dim]`."""

    # ---- internals --------------------------------------------------------------------------

    def _seed(self, seed: int | None) -> None:
        rng = np.random.default_rng(seed)
        self._run_key = int(rng.integers(0, 2**63))
        self.private_params: dict[str, np.ndarray] = self._draw_private(rng)
        self._private_keys = tuple(self.private_params)
        # Episodes started since seeding: it keys the next episodes, so checkpoints keep it.
        self.reset_count = 0

    def _check_private(self, private: Any) -> dict[str, Any]:
        """`private` if it matches a feature candidate on the candidates' keys, else an error."""
        cands = self.feature_candidates()
        keys = sorted(set().union(*cands))
        if not isinstance(private, dict) or not set(keys) <= set(private):
            raise AsfedError(
                f"{self.name}: private must be a dict with keys {keys} (see feature_candidates)"
            )
        for c in cands:
            if all(np.array_equal(np.asarray(private[k]), c[k]) for k in keys):
                return private
        raise AsfedError(f"{self.name}: private {private!r} is not one of feature_candidates()")

    def _broadcast(self, obs: np.ndarray) -> np.ndarray:
        return np.broadcast_to(obs[:, None, :], (self.num_envs, self.num_agents, obs.shape[1]))
