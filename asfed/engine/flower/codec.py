"""Our types <-> Flower records, in one place (the Flower apps only move these)."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from asfed.agents.base import AgentSpec, Graph, RoundBatch
from asfed.agents.hparams import PPOConfig
from asfed.comm.messages import Message

BATCH_FIELDS = ("obs", "actions", "rewards", "terminated", "valid")


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
    return AgentSpec(**{**data, "potential": frozenset(data["potential"]), "cfg": PPOConfig(**cfg)})


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
        Message(int(r), int(s), int(a), int(b), str(k), arrays[str(i)].numpy())
        for i, (r, s, a, b, k) in enumerate(zip(*columns, strict=True))
    ]


def put_messages(content: RecordDict, messages: list[Message]) -> None:
    content["msg_payloads"], content["msg_header"] = messages_to_records(messages)


def get_messages(content: RecordDict) -> list[Message]:
    return messages_from_records(content["msg_payloads"], content["msg_header"])


def own_graph(graph: Graph, agent: int) -> list[int]:
    """What an agent is told of this round's topology: its own neighbours only."""
    return sorted(graph[agent])


def graph_for(agent: int, neighbours: list[int], num_agents: int) -> Graph:
    """A graph in which only `agent`'s neighbour set is known (all an agent needs)."""
    g = [frozenset() for _ in range(num_agents)]
    g[agent] = frozenset(int(j) for j in neighbours)
    return g
