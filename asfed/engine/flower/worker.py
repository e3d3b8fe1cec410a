"""A long-lived ClientApp process next to one SuperNode started with `--isolation process`.

Why it exists. In Flower 1.42 a `flwr-clientapp` process serves exactly one message and exits
(`flwr/supernode/runtime/run_clientapp.py` pulls one task input, calls the ClientApp once,
pushes the reply and calls `flwr_exit`), and `flower-superexec` starts one such process per
message (`flwr/supercore/superexec/run_superexec.py`, `SubprocessExecutor.launch`). Every
message then pays a Python start, the torch and asfed imports, a FAB install and the agent's
rebuild from bytes. This process takes `flower-superexec`'s place next to a SuperNode: it
acquires each ClientApp task from the SuperNode's Runtime API and serves it in-process with the
protocol `flwr-clientapp` speaks (pull the task input and the message, call the ClientApp, push
the reply, push the task output with the Context), so imports, networks and optimiser state stay
in memory between messages (the ClientApp's cache, `client_app._CACHE`, is what keeps them).

What it runs. The ClientApp of the asfed installed on this machine, never code from the FAB the
SuperLink sends: a node executes only what its owner installed. A run whose FAB is not this
asfed (another app, or another asfed version) gets an error reply naming both, so a version
mismatch across machines fails loudly instead of mixing code.

    python -m asfed.engine.flower.worker --runtime-api-address 127.0.0.1:9094 --insecure \\
        [--superexec-auth-secret-file secret] [--parent-pid PID]

It speaks Flower 1.42's Runtime API with Flower's own client and helpers (`RuntimeHttpClient`,
`run_clientapp.push_message`, `push_task_output`; `pull_task_input` here is Flower's with a fast
object pull); asfed pins flwr < 1.43. It logs one line per task: its seconds, split into pulling
the input, the ClientApp, and pushing the reply and the Context.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from flwr.app import Context, Message
from flwr.app.error import Error
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode, SubStatus
from flwr.common.serde import context_from_proto, fab_from_proto, run_from_proto
from flwr.proto.node_pb2 import Node
from flwr.proto.runtime_pb2 import (
    AcquireTaskRequest,
    PullAppMessagesRequest,
    PullTaskInputRequest,
    SendTaskHeartbeatRequest,
)
from flwr.supercore.constant import TASK_TOKEN_HEADER, TaskType
from flwr.supercore.heartbeat import HeartbeatSender
from flwr.supercore.inflatable.inflatable_protobuf_utils import (
    make_confirm_message_received_fn_protobuf,
    make_pull_object_fn_protobuf,
)
from flwr.supercore.inflatable.inflatable_utils import pull_and_inflate_object_from_tree
from flwr.supercore.interceptors import (
    RuntimeVersionHttpInterceptor,
    SuperExecAuthHttpInterceptor,
)
from flwr.supercore.interceptors.http.utils import add_headers
from flwr.supercore.protobuf.client import ProtobufCall, ProtobufRequestContext
from flwr.supercore.run import Run
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supercore.task_identity import TaskIdentity
from flwr.supernode.runtime.run_clientapp import push_message, push_task_output

from asfed.engine.flower import rpclog
from asfed.engine.flower.polling import FAST_PULL

FAB_ID = "asfed/asfed"  # [tool.flwr.app] publisher / [project] name
POLL_MIN_S, POLL_IDLE_S, POLL_DOWN_S = 0.002, 0.05, 1.0
# How long a task waits for its message's objects: the ServerApp's default reply timeout, after
# which nobody waits for the reply. Flower's own bound is 2 h, and one stuck task would hold this
# worker that long (stock flower-supernode leaves such a task behind when a run stops mid-fetch:
# see asfed.engine.flower.polling, item 5).
PULL_MAX_S = 600.0

log = logging.getLogger("asfed.worker")


class WorkerRefused(RuntimeError):
    """The SuperNode refuses this worker's credentials: retrying cannot help."""


class Worker:
    """Acquire ClientApp tasks from one SuperNode's Runtime API and serve them in-process."""

    def __init__(
        self,
        address: str,
        root_certificates: bytes | None,
        insecure: bool,
        secret: bytes | None = None,
        app: ClientApp | None = None,
    ) -> None:
        if app is None:
            from asfed.engine.flower import client_app

            client_app.IN_MEMORY = True  # every message of a run comes to this process
            app = client_app.app
        self.app = app
        self.version = importlib.metadata.version("asfed")
        self.address, self.insecure, self.certs = address, insecure, root_certificates
        interceptors: list = [RuntimeVersionHttpInterceptor(component_name="SuperExec")]
        if secret:
            interceptors.append(
                SuperExecAuthHttpInterceptor(
                    master_secret=secret,
                    protected_methods=frozenset({"/flwr.proto.Runtime/AcquireTask"}),
                )
            )
        self.acquirer = self._client(interceptors)
        # One connection for every task's calls: a client per task paid a TLS context, a TCP
        # connect and a handshake on both ends for each message (about 3 ms here).
        self.task_token = TaskToken()
        self.tasks = self._client(
            [RuntimeVersionHttpInterceptor(component_name="flwr-clientapp"), self.task_token]
        )
        self.served = 0

    def _client(self, interceptors: list) -> RuntimeHttpClient:
        """A Runtime API client without Flower's retries, which wait up to 20 s between tries
        and forever in all: the SuperNode is on this machine, so a failed call means it went
        away (`run` waits for it to come back; a task in flight fails at once, as a restarted
        SuperNode refuses the old task's token anyway)."""
        return RuntimeHttpClient.from_server_address(
            self.address,
            insecure=self.insecure,
            root_certificates=None if self.insecure else self.certs,
            interceptors=interceptors,
        )

    def acquire(self) -> str | None:
        """The token of a pending ClientApp task, or None."""
        res = self.acquirer.AcquireTask(
            AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP])
        )
        return res.token if res.HasField("task") and res.token else None

    def serve_task(self, token: str) -> None:
        """Serve one task as `flwr-clientapp` would, without leaving the process."""
        self.task_token.token = token
        client = self.tasks
        heartbeat = HeartbeatSender(_task_heartbeat(client))
        heartbeat.start()
        context: Context | None = None
        status, details = SubStatus.FAILED, "ClientApp task failed"
        t0 = time.perf_counter()
        t1 = t2 = t0
        try:
            message, context, run = pull_task_input(client)
            t1 = time.perf_counter()
            try:
                if run.fab_id != FAB_ID or run.fab_version != self.version:
                    raise RuntimeError(
                        f"this node serves {FAB_ID} {self.version} (the asfed installed "
                        f"here); the run is {run.fab_id} {run.fab_version}: install the "
                        "same asfed version on every machine"
                    )
                reply = self.app(message=message, context=context)
                status, details = SubStatus.COMPLETED, ""
            except Exception as err:  # the ServerApp names the agent and round
                log.exception("the ClientApp raised")
                reason = f"{type(err).__name__}: {err}"
                reply = Message(
                    Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason),
                    reply_to=message,
                )
                details = reason
            t2 = time.perf_counter()
            push_message(client, reply, context)
        finally:
            heartbeat.stop()
            push_task_output(client, context, status, details)
            self.served += 1
            t3 = time.perf_counter()
            log.info(
                "task %d: %.3f s (input %.3f, ClientApp %.3f, reply %.3f)",
                self.served,
                t3 - t0,
                t1 - t0,
                t2 - t1,
                t3 - t2,
            )

    def run(self, stop: threading.Event) -> None:
        """Poll for tasks (2 ms doubling to 50 ms while idle, to 1 s while the SuperNode is
        unreachable) until `stop` is set."""
        delay, reachable = POLL_MIN_S, True
        while not stop.is_set():
            try:
                token = self.acquire()
            except (httpx.HTTPStatusError, httpx.TransportError) as err:
                if isinstance(err, httpx.HTTPStatusError):
                    code = err.response.status_code
                    if code in (401, 403):
                        raise WorkerRefused(
                            f"the SuperNode at {self.address} refused this worker ({code}): "
                            "give it the file the SuperNode got as --superexec-auth-secret-file"
                        ) from None
                    what = f"answers HTTP {code}"
                else:
                    what = f"is unreachable ({err})"
                if reachable:
                    log.warning("the SuperNode at %s %s", self.address, what)
                reachable = False
                stop.wait(delay)
                delay = min(2 * delay, POLL_DOWN_S)
                continue
            if not reachable:
                log.info("the SuperNode at %s is back", self.address)
                reachable, delay = True, POLL_MIN_S
            if token is not None:
                try:
                    self.serve_task(token)
                except Exception:  # the task fails (its reply never comes); the worker lives on
                    log.exception("could not serve a task")
                delay = POLL_MIN_S
                continue
            stop.wait(delay)
            delay = min(2 * delay, POLL_IDLE_S)

    def close(self) -> None:
        self.acquirer.close()
        self.tasks.close()


class TaskToken:
    """Flower's `RuntimeTokenHttpInterceptor` with a token that changes with each task, so that
    one connection serves every task (the header is the task's token, as Flower's sets it)."""

    def __init__(self) -> None:
        self.token = ""

    def intercept(self, context: ProtobufRequestContext, call_next: ProtobufCall) -> httpx.Response:
        """Add the current task's token header, then send."""
        if not self.token:
            raise RuntimeError("a task call before any task was acquired")
        add_headers(context.request, {TASK_TOKEN_HEADER: self.token})
        return call_next(context)


def pull_task_input(client: RuntimeHttpClient) -> tuple[Message, Context, Run]:
    """Flower's `run_clientapp.pull_task_input` with a fast object-pull backoff: the SuperNode
    hands out the task before it has fetched the message's objects from the SuperLink, and
    Flower's pull waits 1 s (doubling to 10 s) for each one that is not there yet."""
    res = once_more_if_dropped(client.PullTaskInput, PullTaskInputRequest())
    TaskIdentity.task_id = res.task_id
    TaskIdentity.run_id = res.run.run_id
    TaskIdentity.node_id = res.context.node_id
    context = context_from_proto(res.context)
    run = run_from_proto(res.run)
    fab_from_proto(res.fab)  # the FAB's code is not run here (see the module docstring)
    pulled = client.PullMessages(PullAppMessagesRequest())
    if not pulled.messages_list:
        raise RuntimeError("the SuperNode handed out a task without a message")
    node = Node(node_id=context.node_id)
    tree = pulled.message_object_trees[0]
    message = pull_and_inflate_object_from_tree(
        tree,
        make_pull_object_fn_protobuf(client.PullObject, node, context.run_id),
        make_confirm_message_received_fn_protobuf(
            client.ConfirmMessageReceived, node, context.run_id
        ),
        return_type=Message,
        **{**FAST_PULL, "max_time": PULL_MAX_S},
    )
    message.metadata.__dict__["_message_id"] = tree.object_id
    return message, context, run


def once_more_if_dropped(call: Callable[[Any], Any], request: Any) -> Any:
    """`call(request)`, sent a second time if the server closed the connection without a
    response. A task's first call reuses the task connection after the round's compute, which
    can outlast uvicorn's 5 s keep-alive: if the SuperNode closes it in the instant httpx reuses
    it, the request fails with `RemoteProtocolError` and the server never saw it. Only that error
    is retried (a reset while reading the reply, `ReadError`, may follow a request the server
    carried out: `PullTaskInput` moves the task to RUNNING, and a second one would be refused).
    If the second try fails too, the first error is logged beside it."""
    try:
        return call(request)
    except httpx.RemoteProtocolError as first:
        log.info("the SuperNode closed the task connection as it was reused (%s): once more", first)
        try:
            return call(request)
        except Exception:
            log.warning("the second try failed too; the first error was: %s", first)
            raise


def _task_heartbeat(client: RuntimeHttpClient) -> Callable[[], bool]:
    """A task heartbeat that reports failure instead of signalling this process (Flower's
    `make_task_heartbeat_fn_http` raises SIGINT, which would end a long-lived worker)."""

    def beat() -> bool:
        try:
            return bool(client.SendTaskHeartbeat(SendTaskHeartbeatRequest()).success)
        except httpx.HTTPError:
            return False

    return beat


def _watch_parent(pid: int, stop: threading.Event) -> None:
    def watch() -> None:
        while not stop.wait(1.0):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                stop.set()

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m asfed.engine.flower.worker", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--runtime-api-address",
        default="127.0.0.1:9094",
        help="the SuperNode's Runtime API (its --host:--port; default 127.0.0.1:9094)",
    )
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--insecure", action="store_true", help="plain HTTP to the Runtime API")
    tls.add_argument(
        "--root-certificates", type=Path, help="CA of the Runtime API's TLS certificate"
    )
    parser.add_argument(
        "--superexec-auth-secret-file",
        type=Path,
        help="the secret file the SuperNode was given (only holders may acquire tasks)",
    )
    parser.add_argument("--parent-pid", type=int, help="exit when this process exits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise

    try:
        certs = args.root_certificates.read_bytes() if args.root_certificates else None
        secret = None
        if args.superexec_auth_secret_file is not None:
            secret = args.superexec_auth_secret_file.read_bytes()
            if not secret:
                parser.error(f"{args.superexec_auth_secret_file} is empty")
    except OSError as err:
        parser.error(f"cannot read {err.filename}: {err.strerror}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if args.parent_pid is not None:
        _watch_parent(args.parent_pid, stop)
    rpclog.install("worker")  # only where ASFED_RPC_LOG is set
    worker = Worker(args.runtime_api_address, certs, args.insecure, secret)
    log.info("serving ClientApp tasks of %s at %s", FAB_ID, args.runtime_api_address)
    try:
        worker.run(stop)
    except WorkerRefused as err:
        log.error("%s", err)
        sys.exit(1)
    finally:
        worker.close()
    log.info("stopped after %d tasks", worker.served)
    sys.exit(0)


if __name__ == "__main__":
    main()
