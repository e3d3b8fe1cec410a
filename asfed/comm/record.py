"""What an attacker saw besides the messages: each logged round's public record, on disk.

The states and joint actions are common knowledge (every agent receives them; the relay sees the
trajectory too), so an audit of a finished run needs them beside the message log. For every round
the message log records, the run folder holds `public/round_<r>.npz`:

    obs         float32 `[B, T + 1, D]`   the common state after each step
    actions     int64   `[B, T, N]`       the joint actions
    terminated  bool    `[B, T]`          the episode ended at step t (rules or horizon)
    valid       bool    `[B, T]`          step t happened (before the episode ended)
    state.<f>   `[T, B, ...]`             the env's full state before each step (field f of its
                                          `EnvState`; `state.t` is `[T]`), so that features under
                                          any public hypothesis can be recomputed

Row m of a message payload is the m-th valid state in row-major [B, T] order, i.e.
`obs[:, :-1][valid][m]` (or, for a message with `rows`, `obs[:, :-1][valid][rows[m]]`).

Ground truth lives apart, in `ground_truth/`, and only scoring reads it: `params.npz` (each
private parameter and `reward_weights [N, D]`) and `round_<r>.npz` (`rewards [B, T, N]` and the
true `features [B, T, N, D]`). Both are written atomically, once per logged round; a resumed run
drops the rounds past its checkpoint, as the message log does.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import Any

import numpy as np

from asfed.atomic import atomic_write
from asfed.errors import AsfedError

PUBLIC, TRUTH = "public", "ground_truth"


@dataclasses.dataclass(eq=False)
class PublicRecord:
    """One round's public record (see the module docstring for shapes). Compared and hashed by
    identity (it holds arrays), so features computed on it can be cached while it lives."""

    round: int
    obs: np.ndarray
    actions: np.ndarray
    terminated: np.ndarray
    valid: np.ndarray
    states: dict[str, np.ndarray]

    @property
    def num_rows(self) -> int:
        """M, the round's valid states (the rows of a full message payload)."""
        return int(self.valid.sum())

    def row_obs(self) -> np.ndarray:
        """The state of each payload row, `[M, D]`."""
        return self.obs[:, :-1][self.valid]

    def row_actions(self) -> np.ndarray:
        """The joint action taken on each payload row, `[M, N]`."""
        return self.actions[self.valid]

    def row_episodes(self) -> np.ndarray:
        """The episode (copy index b) of each payload row, `[M]`."""
        b = np.broadcast_to(np.arange(self.valid.shape[0])[:, None], self.valid.shape)
        return b[self.valid]

    def env_state(self, t: int, cls: type) -> Any:
        """The env's state before step t, as its `EnvState` class `cls`."""
        fields = {k: v[t] for k, v in self.states.items() if k != "t"}
        return cls(t=int(self.states["t"][t]), **fields)


def stack_states(states: list[Any]) -> dict[str, np.ndarray]:
    """A list of T `EnvState`s -> `{field: [T, B, ...]}` (`t`: `[T]`)."""
    out: dict[str, np.ndarray] = {}
    for f in dataclasses.fields(states[0]):
        out[f.name] = np.stack([np.asarray(getattr(s, f.name)) for s in states])
    return out


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def round_file(round_: int) -> str:
    """The file name of round `round_`'s record (public or ground truth)."""
    return f"round_{round_:06d}.npz"


def write_public(folder: Path, record: PublicRecord) -> None:
    """Write one round's public record into `folder/public/`."""
    path = Path(folder) / PUBLIC
    path.mkdir(parents=True, exist_ok=True)
    arrays = {
        "obs": record.obs,
        "actions": record.actions,
        "terminated": record.terminated,
        "valid": record.valid,
        **{f"state.{k}": v for k, v in record.states.items()},
    }
    atomic_write(path / round_file(record.round), _npz(arrays))


def write_truth(folder: Path, round_: int, rewards: np.ndarray, features: np.ndarray) -> None:
    """Write one round's ground truth: rewards `[B, T, N]`, true features `[B, T, N, D]`."""
    path = Path(folder) / TRUTH
    path.mkdir(parents=True, exist_ok=True)
    atomic_write(path / round_file(round_), _npz({"rewards": rewards, "features": features}))


def write_params(folder: Path, private: dict[str, np.ndarray], weights: np.ndarray) -> None:
    """Write the run's private reward parameters and reward weights `[N, D]` (ground truth)."""
    path = Path(folder) / TRUTH
    path.mkdir(parents=True, exist_ok=True)
    arrays = {f"private.{k}": np.asarray(v) for k, v in private.items()}
    atomic_write(path / "params.npz", _npz({**arrays, "reward_weights": weights}))


def read_params(folder: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ground truth's private parameters and reward weights `[N, D]`."""
    path = Path(folder) / TRUTH / "params.npz"
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise AsfedError(f"{path} is missing") from None
    except Exception as err:  # any failure to read means a damaged file
        raise AsfedError(f"{path} is damaged ({err})") from None
    if "reward_weights" not in arrays:
        raise AsfedError(f"{path} is damaged (no reward_weights)")
    params = {k.removeprefix("private."): v for k, v in arrays.items() if k != "reward_weights"}
    return params, arrays["reward_weights"]


def logged_rounds(folder: Path, kind: str = PUBLIC) -> list[int]:
    """The rounds with a record of `kind` (public or ground_truth), ascending."""
    path = Path(folder) / kind
    return sorted(int(p.stem.removeprefix("round_")) for p in path.glob("round_*.npz"))


def read_public(folder: Path, round_: int) -> PublicRecord:
    """One round's public record."""
    with np.load(Path(folder) / PUBLIC / round_file(round_)) as data:
        arrays = {k: data[k] for k in data.files}
    states = {k.removeprefix("state."): v for k, v in arrays.items() if k.startswith("state.")}
    return PublicRecord(
        round_, arrays["obs"], arrays["actions"], arrays["terminated"], arrays["valid"], states
    )


def drop_rounds(folder: Path, keep_below: int) -> None:
    """Delete public and ground-truth records of rounds >= `keep_below` (resuming)."""
    for kind in (PUBLIC, TRUTH):
        for r in logged_rounds(folder, kind):
            if r >= keep_below:
                (Path(folder) / kind / round_file(r)).unlink()
