"""Fig. 7's metrics from a round's messages: the MSE between an agent's shared policy and the
anticipation of it, and that policy's entropy (what tells a glued pair from two uniform ones)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asfed.comm.messages import Message
from audits.anticipation import round_metrics


def _msg(step: int, sender: int, receiver: int, kind: str, rows: list[list[float]]) -> Message:
    return Message(round=4, step=step, sender=sender, receiver=receiver, kind=kind,
                   payload=np.array(rows))  # fmt: skip


def test_mse_and_entropy_come_from_the_last_sharing_step() -> None:
    uniform, sure = [0.5, 0.5], [1.0, 0.0]
    messages = [
        _msg(2, 0, 1, "anticipation", [sure, uniform]),  # 0's anticipation of 1
        _msg(2, 1, 0, "policy_dist", [uniform, uniform]),  # 1's own policy
        _msg(2, 1, 0, "anticipation", [sure, sure]),  # 1's anticipation of 0
        _msg(2, 0, 1, "policy_dist", [sure, sure]),  # 0's own policy
        _msg(0, 0, 1, "anticipation", [uniform, uniform]),  # an older step, last: ignored
        _msg(0, 1, 0, "policy_dist", [sure, sure]),
    ]
    row = round_metrics(None, 4, messages, "exchange", 2)  # full rows: no public record read
    assert row["round"] == 4
    assert row["mse_0_1"] == pytest.approx((0.25 + 0.25 + 0 + 0) / 4)
    assert row["mse_1_0"] == pytest.approx(0.0)
    assert row["mse"] == pytest.approx(0.0625)
    assert row["entropy_1"] == pytest.approx(math.log(2))  # uniform over 2 actions
    assert row["entropy_0"] == pytest.approx(0.0, abs=1e-9)  # deterministic
    assert row["entropy"] == pytest.approx(math.log(2) / 2)
