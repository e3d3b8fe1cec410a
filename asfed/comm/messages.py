"""Messages: every piece of information that crosses an agent boundary is one `Message`.

Kinds (DESIGN.md section 4): `policy_dist` (M x |A_sender|), `anticipation` (M x |A_receiver|),
`values` (M: VS's value outputs on the round's samples, see `asfed.agents.vs`), `value_params`,
`policy_params` (flat float32 vectors), `reward` (CPPO only: the sender's rewards). M counts the
round's valid states, row-major over [B, T].

Two additions to DESIGN's fields: `step` numbers the sharing steps within a round (K a round), so
an auditor can tell the shares of one round apart; `rows`, for per-step neighbourhoods (the
`distance` topology), gives the indices of the round's states that the payload's rows belong to
(None: all M states). Rows cross the boundary with the payload, so `nbytes` counts them. The
trajectory's states and joint actions are common knowledge and are never messages.
"""

from __future__ import annotations

import dataclasses

import numpy as np

KINDS = ("policy_dist", "anticipation", "values", "value_params", "policy_params", "reward")
KIND_ID = {k: i for i, k in enumerate(KINDS)}
ROW_KINDS = frozenset({"policy_dist", "anticipation", "values"})  # one payload row per state


class PrivacyViolation(RuntimeError):
    """A method tried to send what it may not, or to an agent that is not its neighbour (a bug)."""


@dataclasses.dataclass(frozen=True)
class Message:
    """One shared item: `payload` (float32, any shape) from `sender` to `receiver`; `rows`
    (int32 `[R]`, R = len(payload)) where the payload covers only some of the round's states."""

    round: int
    step: int
    sender: int
    receiver: int
    kind: str
    payload: np.ndarray
    rows: np.ndarray | None = None
    nbytes: int = -1

    def __post_init__(self) -> None:
        if self.kind not in KIND_ID:
            raise ValueError(f"unknown message kind {self.kind!r}; accepted: {', '.join(KINDS)}")
        payload = np.ascontiguousarray(self.payload, dtype=np.float32)
        object.__setattr__(self, "payload", payload)
        size = payload.nbytes
        if self.rows is not None:
            rows = np.ascontiguousarray(self.rows, dtype=np.int32)
            if rows.ndim != 1 or len(rows) != len(payload):
                raise ValueError(f"rows {rows.shape} do not match the payload {payload.shape}")
            object.__setattr__(self, "rows", rows)
            size += rows.nbytes
        object.__setattr__(self, "nbytes", size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        if (self.rows is None) != (other.rows is None):
            return False
        same_rows = self.rows is None or np.array_equal(self.rows, other.rows)
        return (
            (self.round, self.step, self.sender, self.receiver, self.kind)
            == (other.round, other.step, other.sender, other.receiver, other.kind)
            and np.array_equal(self.payload, other.payload)
            and same_rows
        )

    __hash__ = None  # type: ignore[assignment]
