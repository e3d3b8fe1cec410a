"""The ClientApp: one agent, its secret, networks and optimiser state.

Message types, one per kind of round trip:
- `train.init`: build the agent from its spec (on resume, from its own checkpoint of the given
  round, in its private storage); reply with its acting policy for the world.
- `train.share`: take this round's slice (public states and joint actions, its own row of the
  reward features, from which it computes its own rewards); reply with sharing step 0's
  messages.
- `train.update`: take the messages the relay routed here; run update k; reply with sharing step
  k's messages or, after the round's last update, the new acting policy.
- `train.checkpoint`: save the agent's state to its private storage; reply with nothing.

Where an agent keeps its private folder (checkpoints, diagnostics): by default the path the world
names in the spec, `<run folder>/agents/agent_<i>`, which is right on one machine. A SuperNode on
its own machine can keep it elsewhere with `--node-config 'agent-storage="DIR"'`: the folder is
then `DIR/<run folder's name>/agent_<i>` on that machine, and resuming the run finds it there.

What a reply carries is only the messages the relay logs and the acting policy (pi^ii): private
statistics go to the agent's diagnostics file and its state to its own checkpoints, never to the
ServerApp. The agent's secret (its reward weights and DP noise seed, `asfed.dealer`) is read from
its own storage (`secret.json`), never sent by the ServerApp, which does not hold it: the agent
computes its own rewards from the features the world sends.

The agent lives in `Context.state` between messages (its full state as bytes, and the round's
slice), so it survives whichever process serves the next message, on the simulation and the
deployment engine alike. Rebuilding it from bytes on every message is the costly part, so a
process also keeps the agent it last served in memory, keyed by run and node, together with a
fresh random token that is written to `Context.state` with the bytes: the cached agent is used
only when the token in the arriving `Context.state` matches, i.e. when this process produced that
state; otherwise the agent is rebuilt from the bytes.

A long-lived ClientApp process (the deployment's worker, `asfed.engine.flower.worker`) sets
`IN_MEMORY`: every message of a run reaches the same process, so the state bytes and the slice
stay out of `Context.state` (they would cross the SuperNode's Runtime API twice per message, about
1 MB each way for AS on exchange). Should that process be replaced mid-run, the agent cannot be
rebuilt, and the message fails with an error saying so: resume the run from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp

from asfed.agents.base import Agent, AgentSpec
from asfed.agents.methods import METHODS
from asfed.allocator import keep_freed_memory
from asfed.dealer import read_agent_secret
from asfed.engine.federation import step_agent
from asfed.engine.flower import codec

app = ClientApp(mods=[codec.packing_mod])  # packed messages on a deployment (codec.pack)


# (run_id, node_id) -> (token, agent): valid only while the same token is in Context.state.
_CACHE: dict[tuple[int, int], tuple[str, Agent]] = {}
IN_MEMORY = False  # set by a long-lived host process (see the module docstring)


def _agent(context: Context) -> Agent:
    meta = context.state["asfed_agent"]
    cached = _CACHE.get((context.run_id, context.node_id))
    if cached is not None and cached[0] == str(meta["token"]):
        return cached[1]
    if not bytes(meta["state"]):
        raise RuntimeError(
            "this agent lived in the memory of a ClientApp process that has been replaced "
            "mid-run; resume the run from its last checkpoint"
        )
    spec = codec.spec_from_json(str(meta["spec"]))
    agent = METHODS.get(str(meta["method"]))().build(
        spec, read_agent_secret(spec.storage, spec.agent_id)
    )
    agent.load_state_dict(codec.state_from_bytes(bytes(meta["state"])))
    if "asfed_batch" in context.state:
        agent.begin_round(codec.batch_from_record(context.state["asfed_batch"]))
    return agent


def _save(context: Context, agent: Agent) -> None:
    meta = context.state["asfed_agent"]
    meta["state"] = b"" if IN_MEMORY else codec.state_to_bytes(agent.state_dict())
    meta["token"] = uuid.uuid4().hex
    _CACHE[(context.run_id, context.node_id)] = (str(meta["token"]), agent)


def _own_storage(spec: AgentSpec, context: Context) -> AgentSpec:
    """The spec with the node's own `agent-storage` root, if its SuperNode set one."""
    root = str(context.node_config.get("agent-storage", "") or "")
    if not root or not spec.storage:
        return spec
    named = Path(spec.storage)  # <run folder>/agents/agent_<i>
    return dataclasses.replace(
        spec, storage=str(Path(root) / named.parent.parent.name / named.name)
    )


def _reply(msg: Message, content: RecordDict) -> Message:
    return Message(content, reply_to=msg)


@app.train("init")
def init(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    keep_freed_memory()
    cfg = msg.content["init"]
    spec = _own_storage(codec.spec_from_json(str(cfg["spec"])), context)
    agent = METHODS.get(str(cfg["method"]))().build(
        spec, read_agent_secret(spec.storage, spec.agent_id)
    )
    if "resume_round" in cfg:
        agent.load_private(int(cfg["resume_round"]))
    context.state["asfed_agent"] = ConfigRecord(
        {"method": str(cfg["method"]), "spec": codec.spec_to_json(spec), "state": b"", "token": ""}
    )
    _save(context, agent)
    return _reply(msg, RecordDict({"acting": ArrayRecord(torch_state_dict=agent.acting_state())}))


@app.train("share")
def share(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    keep_freed_memory()
    agent = _agent(context)
    head = msg.content["round"]
    batch = codec.batch_from_record(msg.content["batch"])
    agent.begin_round(batch)
    if not IN_MEMORY:
        context.state["asfed_batch"] = msg.content["batch"]
    graph = codec.graph_from_records(agent.id, msg.content["graph"], msg.content["rows"])
    out = agent.share(0, int(head["round"]), graph)
    _save(context, agent)
    content = RecordDict()
    codec.put_messages(content, out)
    return _reply(msg, content)


@app.train("update")
def update(msg: Message, context: Context) -> Message:
    torch.set_num_threads(1)
    keep_freed_memory()
    agent = _agent(context)
    head = msg.content["round"]
    graph = codec.graph_from_records(agent.id, msg.content["graph"], msg.content["rows"])
    k, round_, last = int(head["k"]), int(head["round"]), bool(head["last"])
    out = step_agent(agent, k, round_, codec.get_messages(msg.content), graph, last)
    _save(context, agent)
    content = RecordDict()
    codec.put_messages(content, out)
    if last:
        content["acting"] = ArrayRecord(torch_state_dict=agent.acting_state())
    return _reply(msg, content)


@app.train("checkpoint")
def checkpoint(msg: Message, context: Context) -> Message:
    agent = _agent(context)
    agent.save_private(int(msg.content["round"]["round"]))
    return _reply(msg, RecordDict())
