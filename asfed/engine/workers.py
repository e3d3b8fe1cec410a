"""The local engine on several cores: agents spread over worker processes that update in parallel.

Agent i lives in worker i % W for the whole run (its networks, optimiser and generators never move,
so nothing is serialised between updates). Each round trip sends every worker the slices,
inboxes and neighbourhood of its own agents, then collects their messages: the K updates of a
round run W agents at a time. The world acts with copies of the acting policies, reloaded from
what the workers return after each round's last update, as the Flower engine does.

Same seed, same numbers, whatever W: each agent computes exactly what it computes in-process (the
same code on one torch thread, with its own generators), and messages are gathered in agent order.
Processes rather than threads, because the updates are many small operators whose Python
overhead holds the GIL. Each worker is a fresh interpreter (`asfed.engine.workers` run on the
world's sys.path, `asfed.interpreters`) talking over its end of a socket pair: no fork of a
process that may hold threads or OpenMP state, and, unlike multiprocessing's `spawn`, no
re-import of the caller's main script (which would need an `if __name__ == "__main__"` guard in
every user script). Each reports where its asfed came from, and a worker running another asfed
than the world's is refused. Each runs torch on one thread, so W workers use W cores. A worker
that dies is seen as a closed socket: an error, not a hang.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

import torch

from asfed.agents.base import Agent, AgentSpec, Diverged, Graph, RoundBatch
from asfed.agents.methods import Method
from asfed.allocator import keep_freed_memory
from asfed.comm.messages import Message
from asfed.dealer import AgentSecret
from asfed.engine.federation import Federation, own_secret, step_agents
from asfed.errors import AsfedError
from asfed.interpreters import asfed_source, module_argv
from asfed.lifetime import die_with_parent
from asfed.threads import one_thread


class WorkerFederation(Federation):
    """The run's agents in `workers` processes; the world acts with copies of their policies.
    secrets: as `LocalFederation`'s (None: each agent reads its own in its worker)."""

    def __init__(
        self,
        method: Method,
        specs: list[AgentSpec],
        workers: int,
        secrets: list[AgentSecret] | None = None,
    ) -> None:
        self.specs = specs
        self.workers = workers
        self.owner = [i % workers for i in range(len(specs))]
        self.acting = [method.build(spec) for spec in specs]
        self.pipes: list[Connection] = []
        self.procs: list[subprocess.Popen] = []
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        try:
            for w in range(workers):
                here, there = socket.socketpair()
                with there:
                    fd = there.fileno()
                    command = module_argv("asfed.engine.workers", str(fd), str(os.getpid()))
                    self.procs.append(subprocess.Popen(command, pass_fds=[fd], env=env))
                self.pipes.append(Connection(here.detach()))
                mine = [s for s in specs if self.owner[s.agent_id] == w]
                handed = (
                    None if secrets is None else {s.agent_id: secrets[s.agent_id] for s in mine}
                )
                init = {"method": method, "specs": mine, "secrets": handed}
                self.pipes[w].send(("init", None, init))
            sources = set(self._gather("init").values())
            if sources != {asfed_source()}:  # another asfed's code would be silently wrong
                raise RuntimeError(
                    f"the workers run asfed from {sorted(sources)}, this process from "
                    f"{asfed_source()}: every worker must import the world's asfed"
                )
            self._load_acting(self._all("acting"))
        except BaseException:
            self.close()
            raise

    # ---- round trips ------------------------------------------------------------------------

    def _all(self, command: str, per_agent: dict[int, Any] | None = None, **common: Any) -> dict:
        """Send `command` to every worker (each with its own agents' part of `per_agent`), then
        gather the replies: agent id -> that agent's result."""
        for w, pipe in enumerate(self.pipes):
            part = None
            if per_agent is not None:
                part = {i: v for i, v in per_agent.items() if self.owner[i] == w}
            pipe.send((command, part, common))
        return self._gather(command)

    def _gather(self, command: str) -> dict[int, Any]:
        out: dict[int, Any] = {}
        failure, user_error, diverged = None, None, None
        for w, pipe in enumerate(self.pipes):
            try:
                status, value = pipe.recv()
            except (EOFError, OSError):
                code = self.procs[w].wait(timeout=5)
                status, value = "error", f"worker {w} died (exit code {code})"
            if status == "error":
                failure = failure or value
            elif status == "user-error":
                user_error = user_error or value
            elif status == "diverged":
                diverged = diverged or value
            else:
                out.update(value)
        if failure is not None or user_error is not None or diverged is not None:
            self.close()
            if failure is None and user_error is None:
                raise Diverged(diverged)
            if failure is None:
                raise AsfedError(user_error)
            raise RuntimeError(f"an agent's worker failed in {command}:\n{failure}")
        return out

    def _messages(self, replies: dict[int, list[Message]]) -> list[Message]:
        return [m for i in sorted(replies) for m in replies[i]]

    def _load_acting(self, states: dict[int, dict[str, Any]]) -> None:
        for i, state in states.items():
            self.acting[i].load_acting_state({k: torch.as_tensor(v) for k, v in state.items()})

    def begin(self, round_: int, slices: list[RoundBatch], graph: Graph) -> list[Message]:
        batches = dict(enumerate(slices))
        return self._messages(self._all("begin", batches, round_=round_, graph=graph))

    def update(
        self, k: int, round_: int, inboxes: list[list[Message]], graph: Graph, last: bool
    ) -> list[Message]:
        replies = self._all(
            "update", dict(enumerate(inboxes)), k=k, round_=round_, graph=graph, last=last
        )
        if last:
            self._load_acting({i: acting for i, (_, acting) in replies.items()})
        return self._messages({i: out for i, (out, _) in replies.items()})

    def checkpoint(self, round_: int) -> None:
        self._all("checkpoint", round_=round_)

    def restore(self, round_: int) -> None:
        self._load_acting(self._all("restore", round_=round_))

    def close(self) -> None:
        """Stop the workers (also when a worker failed)."""
        for pipe in self.pipes:
            with contextlib.suppress(BrokenPipeError, OSError):
                pipe.send(("close", None, {}))
            pipe.close()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.pipes, self.procs = [], []

    def __del__(self) -> None:
        if getattr(self, "procs", None):
            self.close()


def _serve(pipe: Connection) -> None:
    """A worker: build its agents, then answer commands until told to close."""
    one_thread()
    keep_freed_memory()
    agents: dict[int, Agent] = {}
    while True:
        try:
            command, part, common = pipe.recv()
        except (EOFError, OSError):  # the world is gone
            return
        if command == "close":
            return
        try:
            if command == "init":
                specs: list[AgentSpec] = common["specs"]
                handed = common["secrets"]
                agents = {
                    s.agent_id: common["method"].build(
                        s, own_secret(s, None) if handed is None else handed[s.agent_id]
                    )
                    for s in specs
                }
                pipe.send(("ok", {s.agent_id: asfed_source() for s in specs}))
            else:
                pipe.send(("ok", _handle(agents, command, part, common)))
        except Diverged as err:  # a result the runner records: its type crosses too
            pipe.send(("diverged", str(err)))
        except AsfedError as err:  # a user-facing error (e.g. a missing checkpoint): as it is
            pipe.send(("user-error", str(err)))
        except BaseException:
            pipe.send(("error", traceback.format_exc()))


def _acting(agent: Agent) -> dict[str, Any]:
    """The acting policy as numpy arrays: plain pickles (torch would pass tensors between
    processes through shared memory, one file descriptor each)."""
    return {k: v.detach().cpu().numpy() for k, v in agent.acting_state().items()}


def _handle(agents: dict[int, Agent], command: str, part: Any, common: dict) -> dict[int, Any]:
    if command == "acting":
        return {i: _acting(a) for i, a in agents.items()}
    if command == "begin":
        out = {}
        for i, a in agents.items():
            a.begin_round(part[i])
            out[i] = a.share(0, common["round_"], common["graph"])
        return out
    if command == "update":
        ids = list(agents)
        k, round_, last = common["k"], common["round_"], common["last"]
        inboxes = [part[i] for i in ids]
        replies = step_agents([agents[i] for i in ids], k, round_, inboxes, common["graph"], last)
        return {
            i: (msgs, _acting(agents[i]) if last else None)
            for i, msgs in zip(ids, replies, strict=True)
        }
    if command == "checkpoint":
        for a in agents.values():
            a.save_private(common["round_"])
        return {}
    if command == "restore":
        for a in agents.values():
            a.load_private(common["round_"])
        return {i: _acting(a) for i, a in agents.items()}
    raise ValueError(f"unknown worker command {command!r}")


if __name__ == "__main__":  # a worker process, started by WorkerFederation
    die_with_parent(int(sys.argv[2]))  # no orphan agents if the world is killed
    with Connection(int(sys.argv[1])) as _pipe:
        _serve(_pipe)
