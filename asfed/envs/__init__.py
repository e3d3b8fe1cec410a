"""The five environments of the paper, as batched numpy cores with a PettingZoo adapter.

`make_vec_env(name, num_envs, seed, **options)` builds a core that steps B copies at once;
`make_env(name, **options)` wraps one copy as a PettingZoo `ParallelEnv`; `names()` lists what is
registered. Options are each env's constructor keywords (num_agents, horizon, and zap /
private_weights for cleanup and harvest, action_frame for predation); an unknown option is an
error naming what is accepted.
"""

from __future__ import annotations

import inspect
from typing import Any

from asfed.envs import cleanup, exchange, harvest, navigation, predation  # noqa: F401 (register)
from asfed.envs.base import EnvState, VecEnv
from asfed.envs.parallel import AsfedParallelEnv
from asfed.envs.registry import ENVS
from asfed.errors import AsfedError, accepted

__all__ = ["ENVS", "AsfedParallelEnv", "EnvState", "VecEnv", "make_env", "make_vec_env", "names"]


def names() -> list[str]:
    """The registered environment names, sorted."""
    return ENVS.names()


def options_of(name: str) -> list[str]:
    """The options `make_env(name, ...)` accepts."""
    params = inspect.signature(ENVS.get(name).__init__).parameters
    return [p for p in params if p not in ("self", "num_envs", "seed")]


def make_vec_env(name: str, num_envs: int = 1, seed: int | None = None, **options: Any) -> VecEnv:
    """The batched core of env `name` with `num_envs` copies, seeded by `seed`."""
    cls = ENVS.get(name)
    allowed = options_of(name)
    for key in options:
        if key not in allowed:
            raise AsfedError(
                f"unknown option {key!r} for env {name!r}; accepted: {accepted(allowed)}"
            )
    return cls(num_envs=num_envs, seed=seed, **options)


def make_env(name: str, seed: int | None = None, **options: Any) -> AsfedParallelEnv:
    """Env `name` as a PettingZoo `ParallelEnv` (agents `agent_0` ... `agent_{N-1}`)."""
    return AsfedParallelEnv(make_vec_env(name, 1, seed, **options))
