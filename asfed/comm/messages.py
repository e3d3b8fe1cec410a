"""Messages: every piece of information that crosses an agent boundary is one `Message`.

Kinds (DESIGN.md section 4): `policy_dist` (T x |A_sender|), `anticipation` (T x |A_receiver|),
`values` (T + 1 per episode, flattened), `value_params`, `policy_params` (flat float32 vectors),
`reward` (CPPO only: the sender's rewards). `step` numbers the sharing steps within a round
(Algorithm 1 shares K + 1 times a round), an addition to DESIGN's fields so that an auditor can
tell the shares of one round apart. The trajectory's states and joint actions are common
knowledge and are never messages.
"""

from __future__ import annotations

import dataclasses

import numpy as np

KINDS = ("policy_dist", "anticipation", "values", "value_params", "policy_params", "reward")
KIND_ID = {k: i for i, k in enumerate(KINDS)}


class PrivacyViolation(RuntimeError):
    """A method tried to send what it may not, or to an agent that is not its neighbour (a bug)."""


@dataclasses.dataclass(frozen=True)
class Message:
    """One shared item: `payload` (float32, any shape) from `sender` to `receiver`."""

    round: int
    step: int
    sender: int
    receiver: int
    kind: str
    payload: np.ndarray
    nbytes: int = -1

    def __post_init__(self) -> None:
        if self.kind not in KIND_ID:
            raise ValueError(f"unknown message kind {self.kind!r}; accepted: {', '.join(KINDS)}")
        payload = np.ascontiguousarray(self.payload, dtype=np.float32)
        object.__setattr__(self, "payload", payload)
        object.__setattr__(self, "nbytes", payload.nbytes)
