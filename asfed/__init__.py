"""asfed: Anticipation Sharing and its baselines for reward-private cooperative MARL.

Public API: `make_env` (a PettingZoo ParallelEnv), `make_vec_env` (a batched numpy core), and
`asfed.envs.names()`.
"""

from __future__ import annotations

from asfed.envs import make_env, make_vec_env

__version__ = "0.1.0"
__all__ = ["__version__", "make_env", "make_vec_env"]
