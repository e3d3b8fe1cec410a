"""Fig. 7's metrics from a round's messages: the MSE between an agent's shared policy and the
anticipation of it, and that policy's entropy (what tells a glued pair from two uniform ones)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asfed.comm.messages import Message
from asfed.comm.record import PublicRecord
from asfed.errors import AsfedError
from audits.anticipation import action_agreement, main, round_metrics, toward_by_side


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


def _predation_record(rel: list[list[float]], actions: list[list[int]]) -> PublicRecord:
    """One episode of 2-agent predation: `rel` the predators' (x - x_prey) / 30 per step `[T, 2]`,
    `actions` `[T, 2]`; nobody holds."""
    t = len(rel)
    obs = np.zeros((1, t + 1, 6), np.float32)
    obs[0, :t, :2] = rel
    return PublicRecord(
        round=4,
        obs=obs,
        actions=np.array([actions]),
        terminated=np.zeros((1, t), bool),
        valid=np.ones((1, t), bool),
        states={},
    )


def test_action_agreement_reads_each_row_against_the_state_and_action_it_belongs_to() -> None:
    # agent 0 is left of the prey on steps 0 and 2 (toward = right = 1), right of it on step 1
    public = _predation_record([[-0.2, 0.2], [0.3, 0.2], [-0.1, -0.4]], [[1, 0], [1, 0], [1, 1]])
    right, left, even = [0.0, 1.0], [1.0, 0.0], [0.5, 0.5]
    messages = [
        _msg(0, 0, 1, "policy_dist", [right, right, right]),  # 0 always goes right, as it did
        _msg(0, 1, 0, "anticipation", [even, even, even]),  # 1 does not know
        Message(4, 0, 1, 0, "policy_dist", np.array([left, right], np.float32), rows=[1, 2]),
    ]
    rows = {(r["kind"], r["sender"]): r for r in action_agreement(messages, public, 2)}
    own = rows[("policy_dist", 0)]
    assert (own["subject"], own["states"]) == (0, 3)
    assert own["toward"] == pytest.approx(2 / 3) and own["taken_toward"] == pytest.approx(2 / 3)
    assert own["p_taken"] == pytest.approx(1.0)
    ant = rows[("anticipation", 1)]
    assert ant["subject"] == 0 and ant["toward"] == pytest.approx(0.5)
    assert ant["p_taken"] == pytest.approx(0.5)
    # agent 1's message covers rows 1 and 2 only: right of the prey, then left of it
    part = rows[("policy_dist", 1)]
    assert part["states"] == 2 and part["toward"] == pytest.approx(1.0)
    assert part["taken_toward"] == pytest.approx(1.0) and part["p_taken"] == pytest.approx(1.0)


def test_the_agreement_command_refuses_a_folder_without_a_message_log(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path)])
    assert stop.value.code == 2
    assert f"{tmp_path} has no message log" in capsys.readouterr().err


def test_in_the_toward_away_frame_toward_is_action_one_wherever_the_prey_is() -> None:
    public = _predation_record([[-0.2, 0.2], [0.3, 0.2]], [[1, 0], [0, 0]])
    messages = [_msg(0, 0, 1, "policy_dist", [[0.0, 1.0], [0.25, 0.75]])]
    (row,) = action_agreement(messages, public, 2, "toward-away")
    assert row["toward"] == pytest.approx(0.875) and row["taken_toward"] == pytest.approx(0.5)
    (row,) = action_agreement(messages, public, 2)  # left-right: right is toward on step 0 only
    assert row["toward"] == pytest.approx((1.0 + 0.25) / 2)


def test_a_state_blind_left_right_policy_shows_as_one_side_only() -> None:
    # agent 0 always goes right: toward with the prey on its right, away with it on its left
    public = _predation_record([[-0.2, 0.2], [0.3, 0.2], [-0.1, -0.4]], [[1, 0], [1, 0], [1, 1]])
    first, second = toward_by_side(public, 2)
    assert (first["prey_right"], first["n_right"]) == (1.0, 2)
    assert (first["prey_left"], first["n_left"]) == (0.0, 1)
    assert (second["prey_left"], second["n_left"], second["prey_right"]) == (1.0, 2, 1.0)
    (row, _) = toward_by_side(public, 2, "toward-away")  # action 1 is toward wherever the prey is
    assert (row["prey_right"], row["prey_left"]) == (1.0, 1.0)


def test_a_payload_that_does_not_fit_its_public_record_is_an_error() -> None:
    public = _predation_record([[-0.2, 0.2], [0.3, 0.2], [-0.1, -0.4]], [[1, 0], [1, 0], [1, 1]])
    short = [_msg(0, 0, 1, "policy_dist", [[0.5, 0.5], [0.5, 0.5]])]
    with pytest.raises(AsfedError, match="covers 2 states, its public record 3"):
        action_agreement(short, public, 2)
    past = [Message(4, 0, 1, 0, "policy_dist", np.full((1, 2), 0.5, np.float32), rows=[3])]
    with pytest.raises(AsfedError, match="points past its public record's 3 states"):
        action_agreement(past, public, 2)


def test_across_summarises_the_rounds_every_run_logged(monkeypatch, tmp_path) -> None:
    """The cross-seed summary: mean and 95% t-interval per round over the runs, each run's value
    kept; a round one run lacks is left out; a run without anticipations is an error."""
    from audits import anticipation

    tables = {
        "a": [{"round": 0, "toward": 0.5, "mse": 0.1, "entropy": 0.7},
              {"round": 5, "toward": 0.9, "mse": 0.3, "entropy": 0.2}],
        "b": [{"round": 0, "toward": 0.7, "mse": 0.3, "entropy": 0.6},
              {"round": 5, "toward": 0.7, "mse": 0.1, "entropy": 0.4}],
        "c": [{"round": 0, "toward": 0.6, "mse": 0.2, "entropy": 0.65}],
        "empty": [],
    }  # fmt: skip
    monkeypatch.setattr(anticipation, "anticipation_rows", lambda folder: tables[folder.name])
    rows = anticipation.across([tmp_path / "a", tmp_path / "b", tmp_path / "c"])
    assert [r["round"] for r in rows] == [0]  # run c logged no round 5
    row = rows[0]
    assert row["runs"] == 3 and row["toward_runs"] == [0.5, 0.7, 0.6] and row["toward_n"] == 3
    half = 4.302653 * 0.1 / math.sqrt(3)  # t_{0.975, 2} s / sqrt(n), s = 0.1
    assert row["toward"] == pytest.approx(0.6)
    assert (row["toward_low"], row["toward_high"]) == pytest.approx((0.6 - half, 0.6 + half))
    assert row["mse"] == pytest.approx(0.2) and row["entropy"] == pytest.approx(0.65)
    two = anticipation.across([tmp_path / "a", tmp_path / "b"])
    assert [r["round"] for r in two] == [0, 5] and two[1]["toward"] == pytest.approx(0.8)
    with pytest.raises(AsfedError, match="empty has no anticipations"):
        anticipation.across([tmp_path / "a", tmp_path / "empty"])


def test_several_runs_need_across(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path), str(tmp_path)])
    assert stop.value.code == 2
    assert "several run folders need --across" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main([str(tmp_path), "--across"])
    assert stop.value.code == 2
    assert f"{tmp_path} has no message log" in capsys.readouterr().err
