"""A Flower Grid that serves the real ClientApp in this process: the Flower engine's code paths
(records, Context.state, replies and errors) without Ray, for fast tests."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable

from flwr.app import Context, Error, Message, RecordDict
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from asfed.engine.flower.client_app import app as client_app


class InProcessGrid(Grid):
    """Nodes 101, 102, ...; `fail(node, message)` -> True makes that node reply with an error."""

    def __init__(self, num_nodes: int, fail: Callable[[int, Message], bool] | None = None):
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 7, 0, 1  # as a run sets
        self.contexts = {
            101 + i: Context(
                run_id=7, node_id=101 + i, node_config={}, state=RecordDict(), run_config={}
            )
            for i in range(num_nodes)
        }
        self.fail = fail or (lambda node, msg: False)
        self._replies: dict[str, Message] = {}

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg_id = uuid.uuid4().hex
            msg.metadata.__dict__["_message_id"] = msg_id
            node = msg.metadata.dst_node_id
            if self.fail(node, msg):
                reply = Message(Error(code=0, reason="injected failure"), reply_to=msg)
            else:
                reply = client_app(msg, self.contexts[node])
            reply.metadata.__dict__["_src_node_id"] = node
            self._replies[msg_id] = reply
            ids.append(msg_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

    # Not used by asfed's federation.
    def set_run(self, run):
        raise NotImplementedError

    @property
    def run(self):
        raise NotImplementedError

    def create_message(self, *args, **kwargs):
        raise NotImplementedError

    def get_nodes(self):
        raise NotImplementedError

    def send_and_receive(self, messages, *, timeout=None):
        raise NotImplementedError
