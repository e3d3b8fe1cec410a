"""Our types <-> Flower records, in one place (the Flower apps only move these)."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, RecordDict
from flwr.app import Message as FlowerMessage
from flwr.common.serde import recorddict_from_proto, recorddict_to_proto
from flwr.proto.recorddict_pb2 import RecordDict as ProtoRecordDict

from asfed.agents.base import AgentSpec, Graph, RoundBatch
from asfed.agents.hparams import PPOConfig
from asfed.comm.dp import DPSettings
from asfed.comm.messages import Message
from asfed.comm.topology import Neighbourhoods

BATCH_FIELDS = ("obs", "actions", "features", "terminated", "valid")


def spec_to_json(spec: AgentSpec) -> str:
    data = dataclasses.asdict(spec)
    data["potential"] = sorted(spec.potential)
    return json.dumps(data)


def spec_from_json(text: str) -> AgentSpec:
    data = json.loads(text)
    cfg = data.pop("cfg")
    cfg["actor_hidden"], cfg["critic_hidden"] = (
        tuple(cfg["actor_hidden"]),
        tuple(cfg["critic_hidden"]),
    )
    dp = DPSettings(**data.pop("dp")) if data.get("dp") else None
    return AgentSpec(
        **{**data, "potential": frozenset(data["potential"]), "cfg": PPOConfig(**cfg), "dp": dp}
    )


def state_to_bytes(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def state_from_bytes(data: bytes) -> dict[str, Any]:
    return torch.load(io.BytesIO(data), weights_only=True)


def batch_to_record(batch: RoundBatch) -> ArrayRecord:
    return ArrayRecord({f: Array(np.ascontiguousarray(getattr(batch, f))) for f in BATCH_FIELDS})


def batch_from_record(record: ArrayRecord) -> RoundBatch:
    return RoundBatch(**{f: record[f].numpy() for f in BATCH_FIELDS})


def messages_to_records(messages: list[Message]) -> tuple[ArrayRecord, ConfigRecord]:
    """Payloads (one array each) and their headers (parallel lists)."""
    arrays = ArrayRecord({str(i): Array(m.payload) for i, m in enumerate(messages)})
    for i, m in enumerate(messages):
        if m.rows is not None:
            arrays[f"rows{i}"] = Array(m.rows)
    header = ConfigRecord(
        {
            "round": [m.round for m in messages],
            "step": [m.step for m in messages],
            "sender": [m.sender for m in messages],
            "receiver": [m.receiver for m in messages],
            "kind": [m.kind for m in messages],
        }
    )
    return arrays, header


def messages_from_records(arrays: ArrayRecord, header: ConfigRecord) -> list[Message]:
    fields = ("round", "step", "sender", "receiver", "kind")
    columns = [list(header[f]) if f in header else [] for f in fields]
    return [
        Message(
            int(r),
            int(s),
            int(a),
            int(b),
            str(k),
            arrays[str(i)].numpy(),
            arrays[f"rows{i}"].numpy() if f"rows{i}" in arrays else None,
        )
        for i, (r, s, a, b, k) in enumerate(zip(*columns, strict=True))
    ]


def put_messages(content: RecordDict, messages: list[Message]) -> None:
    content["msg_payloads"], content["msg_header"] = messages_to_records(messages)


def get_messages(content: RecordDict) -> list[Message]:
    return messages_from_records(content["msg_payloads"], content["msg_header"])


def graph_to_records(graph: Graph, agent: int) -> tuple[ConfigRecord, ArrayRecord]:
    """What an agent is told of this round's topology: its own neighbours, every agent's degree
    (public; consensus weights need the neighbours'), and, for per-step topologies, the rows it
    shares with each neighbour."""
    peers = sorted(graph[agent])
    head = ConfigRecord({"neighbours": peers, "degrees": list(graph.degrees)})
    rows = ArrayRecord()
    if graph.rows is not None:
        for j in peers:
            rows[str(j)] = Array(np.ascontiguousarray(graph.rows_of(agent, j)))
    return head, rows


def graph_from_records(agent: int, head: ConfigRecord, rows: ArrayRecord) -> Graph:
    """A graph in which only `agent`'s neighbourhood is known (all an agent needs)."""
    degrees = [int(d) for d in head["degrees"]]
    sets = [frozenset() for _ in degrees]
    peers = [int(j) for j in head["neighbours"]]
    sets[agent] = frozenset(peers)
    per_step = {(agent, int(j)): rows[j].numpy() for j in rows}
    return Neighbourhoods(sets, per_step if per_step else None, degrees=degrees)


# Few objects on the wire. Flower's deployment engine moves every record and every array of a
# message as a separate object, an HTTP request per object on each of its four hops (ServerApp
# -> SuperLink -> SuperNode -> ClientApp and back); a round trip's message has 15 or so. Packed,
# the content is one bytes value of one ConfigRecord (three objects with the message and its
# RecordDict): Flower's own protobuf serialisation of the RecordDict, never pickle.
PACKED = "asfed_packed"


def pack(content: RecordDict) -> RecordDict:
    data = recorddict_to_proto(content).SerializeToString()
    return RecordDict({PACKED: ConfigRecord({"recorddict": data})})


def unpack(content: RecordDict) -> RecordDict:
    """The content `pack` packed; any other content as it is."""
    if PACKED not in content:
        return content
    proto = ProtoRecordDict()
    proto.ParseFromString(bytes(content[PACKED]["recorddict"]))
    return recorddict_from_proto(proto)


def packing_mod(msg: FlowerMessage, context: Context, call_next: Any) -> FlowerMessage:
    """ClientApp mod: a packed message is unpacked for the handler and its reply packed."""
    packed = msg.has_content() and PACKED in msg.content
    if packed:
        msg.content = unpack(msg.content)
    reply = call_next(msg, context)
    if packed and not reply.has_error():
        reply.content = pack(reply.content)
    return reply
