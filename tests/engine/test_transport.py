"""How the world reaches its agents on a deployment, without one: packed messages, agents pinned
to enrolled node ids, bounded waits, the run-config keys, and the backoffs that replace Flower
1.42's fixed waits (`asfed.engine.flower.polling`). Runs in-process (fast); the real deployment
is tests/engine/test_deployment.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, RecordDict

from asfed.config import build_config
from asfed.engine.flower import codec, polling
from asfed.engine.flower.federation import ClientFailure, LinkFailure, flower_federation
from asfed.engine.flower.server_app import federation_options, run_config_to_options, trip_summary
from asfed.engine.loop import Simulation
from asfed.errors import AsfedError
from tests.engine.inprocess_grid import InProcessGrid
from tests.scratch import scratch

CFG = build_config(env="exchange", method="as", seed=3, episodes=2)


def returns(federation=None, rounds: int = 2) -> list[float]:
    sim = Simulation(CFG, federation, private_seed=11, agent_root=scratch())
    return [sim.run_round()[0]["team_return"] for _ in range(rounds)]


def test_a_packed_content_unpacks_to_the_same_records() -> None:
    content = RecordDict(
        {
            "a": ArrayRecord({"x": Array(np.arange(6, dtype=np.float32).reshape(2, 3))}),
            "c": ConfigRecord({"round": 3, "kinds": ["p", "q"], "blob": b"\x00\x01"}),
        }
    )
    packed = codec.pack(content)
    assert list(packed.keys()) == [codec.PACKED]
    back = codec.unpack(packed)
    assert np.array_equal(back["a"]["x"].numpy(), content["a"]["x"].numpy())
    assert dict(back["c"]) == dict(content["c"])
    assert codec.unpack(content) is content  # unpacked content passes through


def test_packed_round_trips_give_the_same_numbers_and_replies_stay_packed() -> None:
    class Spy(InProcessGrid):
        def pull_messages(self, message_ids):
            got = list(super().pull_messages(message_ids))
            assert all(list(r.content.keys()) == [codec.PACKED] for r in got)
            return got

    assert returns(flower_federation(Spy(3), pack=True)) == returns()


def test_agents_pinned_to_node_ids_in_any_order_give_the_same_numbers() -> None:
    grid = InProcessGrid(3)
    sim = Simulation(
        CFG, flower_federation(grid, nodes=[103, 101, 102]), private_seed=11, agent_root=scratch()
    )
    assert sim.federation.nodes == [103, 101, 102]
    assert [sim.run_round()[0]["team_return"] for _ in range(2)] == returns()


def test_a_pinned_node_that_is_not_connected_fails_naming_the_agent() -> None:
    with pytest.raises(AsfedError, match=r"agent 2 \(node 999\) not connected within 0.3 s"):
        Simulation(
            CFG,
            flower_federation(InProcessGrid(3), nodes=[101, 102, 999], node_wait=0.3),
            private_seed=11,
            agent_root=scratch(),
        )
    with pytest.raises(AsfedError, match="2 node ids for 3 agents"):
        Simulation(
            CFG,
            flower_federation(InProcessGrid(3), nodes=[101, 102]),
            private_seed=11,
            agent_root=scratch(),
        )
    with pytest.raises(AsfedError, match="names a node twice"):
        Simulation(
            CFG,
            flower_federation(InProcessGrid(3), nodes=[101, 101, 102]),
            private_seed=11,
            agent_root=scratch(),
        )


def test_a_silent_node_fails_the_round_trip_after_the_reply_timeout() -> None:
    class Silent(InProcessGrid):  # node 102 stops answering after the set-up
        def pull_messages(self, message_ids):
            return [
                r
                for r in super().pull_messages(message_ids)
                if r.metadata.src_node_id != 102 or r.metadata.message_type == "train.init"
            ]

    sim = Simulation(
        CFG,
        flower_federation(Silent(3), reply_timeout=0.3, node_wait=0.3),
        private_seed=11,
        agent_root=scratch(),
    )
    with pytest.raises(
        ClientFailure, match=r"agent 1 \(node 102\) did not reply to round 0, sharing step 0 "
    ):
        sim.run_round()


def test_a_superlink_that_stops_answering_is_one_link_failure() -> None:
    class Gone(InProcessGrid):
        def push_messages(self, messages):
            raise ConnectionError("connection refused")

    with pytest.raises(LinkFailure, match="stopped answering during set-up"):
        Simulation(CFG, flower_federation(Gone(3)), private_seed=11, agent_root=scratch())


def test_deployment_keys_are_parsed_apart_from_the_run_config() -> None:
    config = {"rounds": 4, "nodes": "11 12,13", "node-wait": 5, "reply-timeout": 2.5, "out": ""}
    fields, _, _ = run_config_to_options(config)
    assert fields == {"rounds": 4, "engine": "flower"}
    assert federation_options(config) == {
        "nodes": [11, 12, 13],
        "node_wait": 5.0,
        "reply_timeout": 2.5,
    }
    defaults = federation_options({"nodes": "", "node-wait": "", "reply-timeout": ""})
    assert defaults["nodes"] is None and defaults["reply_timeout"] > 0
    with pytest.raises(AsfedError, match="node ids"):
        federation_options({"nodes": "agent-a"})
    with pytest.raises(AsfedError, match=r"reply-timeout=0 .* seconds > 0"):
        federation_options({"reply-timeout": 0})
    assert trip_summary([("update", 0.2), ("update", 0.4), ("share", 0.1)]) == (
        "round trips (median wall seconds, client compute included): "
        "update 2 x 0.300 s, share 1 x 0.100 s"
    )


def test_the_adaptive_sleep_backs_off_like_flower_when_idle_and_fast_when_busy() -> None:
    now = [100.0]
    sleep = polling.AdaptiveSleep(clock=lambda: now[0])
    idle = [sleep.delay(3) for _ in range(14)]  # no message yet: up to Flower's own 3 s
    assert idle[0] == 0.002 and idle[-1] == 3 and idle == sorted(idle)
    sleep.got_message()
    busy = [sleep.delay(3) for _ in range(12)]
    assert busy[0] == 0.002 and max(busy) == 0.05  # a node in a run polls every 50 ms at least
    assert [sleep.delay(0.5) for _ in range(8)][-1] == 0.005  # waits in its own memory: 5 ms
    now[0] += 31  # 30 s without a message: back to Flower's pace
    assert sleep.delay(3) == 3


def test_a_run_that_stops_mid_pull_fails_the_pull_instead_of_escaping_it() -> None:
    from flwr.supercore.run import RunNotRunningException

    def pull(*args, **kwargs):
        raise RunNotRunningException

    with pytest.raises(RuntimeError, match="the run stopped"):
        polling._failing_on_stopped_run(pull, RunNotRunningException)()


def test_the_supernode_patch_replaces_exactly_flowers_waits() -> None:
    """In a fresh interpreter: the patch touches flwr's modules for the whole process."""
    code = """
import flwr.supernode.start_client_internal as loop
from flwr.supercore import heartbeat
from flwr.supercore.retry import http_retry
from flwr.supernode import fleet_http_connection as fleet
from asfed.engine.flower.polling import AdaptiveSleep, patch_supernode_loop
sleeper = patch_supernode_loop()
assert loop.time is sleeper and isinstance(sleeper, AdaptiveSleep)
assert loop.time.monotonic is not None  # the rest of `time` is still there
assert fleet.HEARTBEAT_DEFAULT_INTERVAL == heartbeat.HEARTBEAT_DEFAULT_INTERVAL == 10
assert http_retry.MAX_RETRY_DELAY == 2.0
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "ok", res.stderr[-2000:]


def test_an_in_memory_agent_whose_process_was_replaced_fails_clearly(monkeypatch) -> None:
    """A long-lived worker keeps agents out of Context.state; if the process serving a run is
    replaced mid-run (here: its cache emptied), the next message fails saying so, instead of
    rebuilding an agent from nothing."""
    from asfed.engine.flower import client_app

    class Replying(InProcessGrid):  # a ClientApp that raises sends an error reply, as Flower's
        def push_messages(self, messages):
            ids = []
            for msg in messages:
                try:
                    ids += super().push_messages([msg])
                except RuntimeError as err:
                    reply = Message(Error(code=0, reason=str(err)), reply_to=msg)
                    reply.metadata.__dict__["_src_node_id"] = msg.metadata.dst_node_id
                    self._replies[msg.metadata.message_id] = reply
                    ids.append(msg.metadata.message_id)
            return ids

    monkeypatch.setattr(client_app, "IN_MEMORY", True)
    sim = Simulation(CFG, flower_federation(Replying(3)), private_seed=11, agent_root=scratch())
    first = sim.run_round()[0]["team_return"]
    assert first == returns(rounds=1)[0]  # same numbers while the process lives
    client_app._CACHE.clear()
    with pytest.raises(
        ClientFailure, match=r"agent 0 \(node 101\) failed in round 1, sharing step 0: .*replaced"
    ):
        sim.run_round()


def test_a_node_keeps_its_agents_folder_where_its_node_config_says(tmp_path) -> None:
    """`--node-config 'agent-storage="DIR"'`: on its own machine an agent's checkpoints go to
    DIR/<run folder name>/agent_<i>, and a resumed run finds them there."""
    from asfed.engine.driver import create, resume, train

    cfg = build_config(env="exchange", method="as", seed=3, episodes=2, rounds=2)
    grid = InProcessGrid(3)
    grid.contexts[102].node_config["agent-storage"] = str(tmp_path / "node102")
    create(cfg, tmp_path / "run", private_seed=11)  # dealt; agent 1's secret goes to its node
    (tmp_path / "node102" / "run").mkdir(parents=True)
    shutil.move(tmp_path / "run" / "agents" / "agent_1", tmp_path / "node102" / "run" / "agent_1")
    sim, run, rows = resume(tmp_path / "run", None, flower_federation(grid))
    train(sim, run, rows)
    assert sorted(p.name for p in (tmp_path / "node102" / "run" / "agent_1").iterdir())
    assert not (tmp_path / "run" / "agents" / "agent_1").exists()
    assert (tmp_path / "run" / "agents" / "agent_0").exists()  # the other nodes: the default
    sim, run, rows = resume(tmp_path / "run", 3, flower_federation(grid))
    assert sim.round == 2  # every agent reloaded its own checkpoint, node 102's from its folder
    train(sim, run, rows)
    assert [float(r["team_return"]) for r in run.read_metrics()] == returns(rounds=3)


def test_the_rpc_log_records_each_request_only_where_asked(tmp_path) -> None:
    """In fresh interpreters: with ASFED_RPC_LOG unset nothing is wrapped; set, a request (here
    one that fails: nothing listens) is a line with its method, and `summarise` counts it."""
    code = """
import os, sys
from flwr.proto.runtime_pb2 import AcquireTaskRequest
from flwr.supercore.protobuf.client import ProtobufClient
from flwr.supercore.runtime import RuntimeHttpClient
from asfed.engine.flower import rpclog
plain = ProtobufClient._unary_unary
path = rpclog.install("worker")
assert (path is None) == (rpclog.ENV not in os.environ)
assert (ProtobufClient._unary_unary is plain) == (path is None)
client = RuntimeHttpClient.from_server_address(sys.argv[1], True, None, [])
for _ in range(2):
    try:
        client.AcquireTask(AcquireTaskRequest())
    except Exception:
        pass
print("ok")
"""
    from asfed.engine.flower import rpclog
    from asfed.engine.flower.localnet import free_port

    address = f"127.0.0.1:{free_port()}"
    for env in ({}, {rpclog.ENV: str(tmp_path / "rpc")}):
        res = subprocess.run(
            [sys.executable, "-c", code, address],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **env},
        )
        assert res.stdout.strip() == "ok", res.stderr[-2000:]
    with open(next((tmp_path / "rpc").glob("*.tsv")), "a") as log:
        log.write("/flwr.proto.Runtime/AcquireTask\t17")  # a process killed mid-line
    (stats,) = rpclog.summarise(rpclog.read(tmp_path / "rpc"))
    assert (stats.role, stats.method, stats.calls) == (
        "worker",
        "/flwr.proto.Runtime/AcquireTask",
        2,
    )
    assert 0 <= stats.median_s < 10
