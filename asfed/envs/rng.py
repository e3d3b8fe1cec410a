"""Counter-based randomness for the batched environment cores.

Each copy b of a core draws from a stream keyed by (run key, reset count, b, step, purpose), hashed
with the splitmix64 finaliser. Copy b therefore behaves the same whatever the batch size B is:
copy 0 of a B = 512 core equals the B = 1 PettingZoo adapter from the same seed, and results do
not depend on how many copies were batched together. Every draw is one vectorised hash over
`[B, ...]` arrays, with no Python loop over copies. The run key itself comes from a seeded
`numpy.random.Generator`, so a run is reproducible from its seed.
"""

from __future__ import annotations

import numpy as np

_MASK = 2**64 - 1
_GOLDEN_INT = 0x9E3779B97F4A7C15
_M1_INT = 0xBF58476D1CE4E5B9
_M2_INT = 0x94D049BB133111EB
_M1, _M2 = np.uint64(_M1_INT), np.uint64(_M2_INT)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))
_TO_UNIT = 2.0**-53


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, elementwise on uint64 (wrapping modulo 2**64). Returns a new array."""
    x = np.asarray(x, dtype=np.uint64)
    x = x ^ (x >> _S30)
    x = x * _M1
    x = x ^ (x >> _S27)
    x = x * _M2
    return x ^ (x >> _S31)


def episode_keys(run_key: int, reset_count: int, num_envs: int) -> np.ndarray:
    """Keys of the episodes that start at reset number `reset_count`. Returns uint64 [B]."""
    salt = mix64(np.array([(run_key ^ (reset_count * 0x2545F4914F6CDD1D)) & _MASK], np.uint64))
    copies = np.arange(1, num_envs + 1, dtype=np.uint64) * np.uint64(_GOLDEN_INT)
    return mix64(salt + copies)


def step_keys(keys: np.ndarray, t: int) -> np.ndarray:
    """Keys for step t of each copy's episode. keys: uint64 [B] -> uint64 [B]."""
    return mix64(keys + np.uint64(((t + 1) * _M2_INT) & _MASK))


def uniform(keys: np.ndarray, stream: int, size: int) -> np.ndarray:
    """`size` uniforms in [0, 1) per copy for one purpose (`stream`).

    keys: uint64 `[B]`. Returns float64 `[B, size]`.
    """
    base = mix64(keys ^ np.uint64(((stream + 1) * _M1_INT) & _MASK))
    lanes = (np.arange(1, size + 1, dtype=np.uint64) * np.uint64(_GOLDEN_INT))[None, :]
    z = mix64(base[:, None] + lanes)
    return (z >> _S11).astype(np.float64) * _TO_UNIT


def choose_distinct(keys: np.ndarray, stream: int, pool: int, k: int) -> np.ndarray:
    """k distinct indices in [0, pool) per copy, uniformly at random. Returns int64 [B, k]."""
    return np.argsort(uniform(keys, stream, pool), axis=1, kind="stable")[:, :k]
