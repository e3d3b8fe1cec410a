"""Messages, the relay's rules, and the on-disk log's round trip."""

from __future__ import annotations

import numpy as np
import pytest

from asfed.comm.log import MessageLogWriter, read_log
from asfed.comm.messages import Message, PrivacyViolation
from asfed.comm.relay import Relay
from asfed.comm.topology import Neighbourhoods

FULL3 = Neighbourhoods([frozenset({1, 2}), frozenset({0, 2}), frozenset({0, 1})])
LINE3 = Neighbourhoods([frozenset({1}), frozenset({0, 2}), frozenset({1})])


def msg(sender=0, receiver=1, kind="policy_dist", shape=(4, 3), round_=0, step=0, fill=1.0):
    return Message(round_, step, sender, receiver, kind, np.full(shape, fill))


def test_message_payload_is_float32_and_nbytes_counts_it() -> None:
    m = msg(shape=(5, 6))
    assert m.payload.dtype == np.float32 and m.nbytes == 5 * 6 * 4
    with pytest.raises(ValueError, match="unknown message kind 'secrets'"):
        msg(kind="secrets")


def test_relay_delivers_only_to_the_receiver_and_counts_bytes() -> None:
    relay = Relay(3, frozenset({"policy_dist", "anticipation"}))
    relay.send(msg(0, 1), FULL3)
    relay.send(msg(2, 1, "anticipation", (4, 3)), FULL3)
    assert relay.collect(0) == [] and relay.collect(2) == []
    got = relay.collect(1)
    assert [(m.sender, m.kind) for m in got] == [(0, "policy_dist"), (2, "anticipation")]
    assert relay.collect(1) == []  # delivered once
    assert relay.bytes_sent.tolist() == [48, 0, 48]
    assert len(relay.record) == 2


def test_relay_refuses_disallowed_kinds_and_non_neighbours() -> None:
    relay = Relay(3, frozenset({"policy_dist", "anticipation"}))
    with pytest.raises(PrivacyViolation, match="tried to send 'values'"):
        relay.send(msg(kind="values", shape=(4,)), FULL3)
    with pytest.raises(PrivacyViolation, match="not a neighbour"):
        relay.send(msg(0, 2), LINE3)
    assert relay.record == [] and relay.bytes_sent.sum() == 0


def test_hub_may_receive_from_anyone() -> None:
    relay = Relay(3, frozenset({"reward"}), hub=0)
    relay.send(msg(2, 0, "reward", (2, 5)), Neighbourhoods([frozenset()] * 3))
    assert len(relay.collect(0)) == 1


def test_log_round_trip_filters_and_sampling(tmp_path) -> None:
    writer = MessageLogWriter(tmp_path, every=2)
    sent = {}
    for r in range(5):
        batch = [
            msg(0, 1, "policy_dist", (3, 2), r, 0, fill=r),
            msg(1, 0, "anticipation", (3, 2), r, 1, fill=-r),
            msg(1, 2, "values", (7,), r, 0, fill=0.5 + r),
        ]
        sent[r] = batch
        writer.write_round(r, batch)
    writer.close()
    back = list(read_log(tmp_path))
    assert sorted({m.round for m in back}) == [0, 2, 4]  # every 2nd round recorded
    for m in back:
        original = next(
            o
            for o in sent[m.round]
            if (o.sender, o.receiver, o.kind) == (m.sender, m.receiver, m.kind)
        )
        np.testing.assert_array_equal(m.payload, original.payload)
        assert m.step == original.step and m.nbytes == original.nbytes
    assert [m.kind for m in read_log(tmp_path, receiver=0)] == ["anticipation"] * 3
    assert [m.round for m in read_log(tmp_path, kind="values", rounds=(1, 5))] == [2, 4]


def test_per_step_rows_cross_with_the_payload_and_the_relay_holds_them_to_the_graph(
    tmp_path,
) -> None:
    # 0 and 1 were neighbours only on states 1 and 3 of the round's 5
    rows = {(0, 1): np.array([1, 3]), (1, 0): np.array([1, 3])}
    graph = Neighbourhoods([frozenset({1}), frozenset({0}), frozenset()], rows, num_rows=5)
    assert graph.mean_degree() == pytest.approx(4 / 15)
    relay = Relay(3, frozenset({"policy_dist"}))
    ok = Message(0, 0, 0, 1, "policy_dist", np.ones((2, 3)), np.array([1, 3]))
    assert ok.nbytes == 2 * 3 * 4 + 2 * 4  # the row indices cross too
    relay.send(ok, graph)
    with pytest.raises(PrivacyViolation, match="not neighbours"):
        relay.send(Message(0, 0, 0, 1, "policy_dist", np.ones((2, 3)), np.array([1, 2])), graph)
    with pytest.raises(PrivacyViolation, match="not neighbours"):
        relay.send(msg(0, 1, shape=(5, 3)), graph)  # every row, though they met on two
    with pytest.raises(ValueError, match="do not match"):
        Message(0, 0, 0, 1, "policy_dist", np.ones((2, 3)), np.array([1]))
    writer = MessageLogWriter(tmp_path)
    writer.write_round(0, [ok, msg(1, 0, shape=(2, 2), fill=3.0)])
    writer.close()
    back = list(read_log(tmp_path))
    assert back[0] == ok and back[0].rows.tolist() == [1, 3]
    assert back[1].rows is None and back[1].payload[0, 0] == 3.0


def test_log_resume_drops_rounds_after_the_checkpoint(tmp_path) -> None:
    writer = MessageLogWriter(tmp_path)
    for r in range(4):
        writer.write_round(r, [msg(0, 1, round_=r, fill=r)])
    writer.close()
    writer = MessageLogWriter(tmp_path, keep_below=2)  # resume from a checkpoint at round 2
    writer.write_round(2, [msg(0, 1, round_=2, fill=20.0)])
    writer.close()
    back = list(read_log(tmp_path))
    assert [m.round for m in back] == [0, 1, 2]
    assert back[-1].payload[0, 0] == 20.0
    assert (tmp_path / "messages.bin").stat().st_size == 3 * 4 * 3 * 4
