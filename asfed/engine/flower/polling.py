"""Flower 1.42's fixed waits, and the backoffs asfed puts in their place on a deployment.

A round trip on Flower 1.42's deployment engine (ServerApp -> SuperLink -> SuperNode ->
ClientApp and back) meets these waits, none of them configurable:

1. The SuperNode's main loop (`flwr/supernode/start_client_internal.py`) pulls the SuperLink for
   a message and, when there is none, sleeps a fixed `time.sleep(3)`; a round trip's next message
   arrives moments after the node's last reply, when it has just gone to sleep, so every round
   trip waits about 3 s. It waits for the ClientApp's reply in `time.sleep(0.5)` steps.
2. Every object pull (`flwr/supercore/inflatable/inflatable_utils.py`, `pull_objects`) retries an
   object that is not there yet after 1 s, doubling to 10 s (`PULL_INITIAL_BACKOFF`,
   `PULL_BACKOFF_CAP` in `flwr/supercore/constant.py`). A message's header is visible before its
   objects are uploaded, so the SuperNode pulling a message, the ClientApp pulling it from the
   SuperNode and the ServerApp pulling a reply each tend to pay 1 s.
3. A SuperNode heartbeats every 30 s (`HEARTBEAT_DEFAULT_INTERVAL`) and the SuperLink holds it
   online for twice that after each beat: a SuperNode killed mid-run is reported unavailable,
   and can rejoin with its key, only up to 60 s later (`activate_node` refuses an online node).
4. A SuperNode that lost the SuperLink retries with a backoff growing to 20 s
   (`MAX_RETRY_DELAY`), so after a SuperLink restart it may take 20 s to come back.
5. A bug, not a wait: when a run stops while the SuperNode fetches a message's objects
   (`_pull_and_store_message`), `RunNotRunningException` (a `BaseException`) escapes the handler
   that would fail the task, so the task stays pending with a message whose objects never come,
   and the ClientApp that takes it waits for them up to `PULL_MAX_TIME` (2 h).

What asfed changes, and nothing else: `patch_supernode_loop` (used by `python -m
asfed.engine.flower.supernode`) replaces `time` inside that one SuperNode module with
`AdaptiveSleep`, its object pulls with `FAST_PULL` and its heartbeat interval with Flower's
minimum, 10 s (`HEARTBEAT_MIN_INTERVAL`: a killed node is offline within 20 s), and caps its
reconnection backoff at 2 s, and turns 5.'s exception into one Flower's handler catches (the
task fails and its message is dropped); the ClientApp
worker pulls with `FAST_PULL`; `fast_grid_pulls` gives the ServerApp's Grid the same. Total
patience (`PULL_MAX_TIME`, 2 h) stays Flower's. These rely on flwr 1.42's module names (asfed pins
flwr < 1.43) and refuse to run if those are missing rather than silently doing nothing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

FAST_PULL: dict[str, Any] = {
    "initial_backoff": 0.002,
    "backoff_cap": 0.05,
    "max_tries_per_object": None,  # bounded by Flower's PULL_MAX_TIME instead
}
NODE_HEARTBEAT_S = 10  # flwr.common.constant.HEARTBEAT_MIN_INTERVAL
RECONNECT_MAX_S = 2.0
IDLE_SLEEP_S = 3.0  # Flower's empty-pull sleep, the one backed off instead
FIRST_S, ACTIVE_MAX_S, ACTIVE_WINDOW_S = 0.002, 0.05, 30.0
WAIT_FIRST_S, WAIT_MAX_S = 0.001, 0.005


class AdaptiveSleep:
    """Stands in for the `time` module in `flwr.supernode.start_client_internal`.

    An empty pull of the SuperLink waits 2 ms, doubling up to 50 ms while the node had a message
    in the last 30 s (a run is going on: about 20 pulls a second, each an authenticated HTTPS
    request), and up to Flower's own 3 s after that (an idle node costs the SuperLink
    what a stock one does). A wait for a reply or an object in the node's own memory polls every
    1 ms, doubling up to 5 ms, and starts over with each message: such a poll is a lookup in
    this process, not a request, so a short cap costs little, where a 50 ms cap let a reply
    wait up to 50 ms (25 on average) on every round trip.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last_message = -float("inf")
        self.idle_delay = FIRST_S
        self.wait_delay = WAIT_FIRST_S
        self.real_sleep: Callable[[float], None] = time.sleep

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def got_message(self) -> None:
        self.last_message = self.clock()
        self.idle_delay = FIRST_S
        self.wait_delay = WAIT_FIRST_S

    def delay(self, seconds: float) -> float:
        """How long to sleep where Flower asked for `seconds`."""
        if seconds >= IDLE_SLEEP_S:
            recent = self.clock() - self.last_message < ACTIVE_WINDOW_S
            delay = min(self.idle_delay, ACTIVE_MAX_S if recent else seconds)
            self.idle_delay = min(2 * self.idle_delay, seconds)
            return delay
        delay = min(self.wait_delay, seconds)
        self.wait_delay = min(2 * self.wait_delay, WAIT_MAX_S)
        return delay

    def sleep(self, seconds: float) -> None:
        self.real_sleep(self.delay(seconds))


def _require(module: Any, names: tuple[str, ...]) -> None:
    missing = [n for n in names if not hasattr(module, n)]
    if missing:
        raise RuntimeError(
            f"{module.__name__} has no {', '.join(missing)}: asfed's polling patches are "
            "written for flwr 1.42"
        )


def patch_supernode_loop() -> AdaptiveSleep:
    """Install `AdaptiveSleep`, `FAST_PULL`, a 10 s heartbeat, a 2 s reconnection cap and the
    stopped-run fix in flwr's SuperNode (this process)."""
    from flwr.supercore import heartbeat
    from flwr.supercore.retry import http_retry
    from flwr.supernode import fleet_http_connection as fleet
    from flwr.supernode import start_client_internal as loop

    _require(loop, ("time", "_pull_and_store_message", "pull_objects", "RunNotRunningException"))
    _require(fleet, ("HEARTBEAT_DEFAULT_INTERVAL",))
    _require(heartbeat, ("HEARTBEAT_DEFAULT_INTERVAL",))
    _require(http_retry, ("MAX_RETRY_DELAY",))
    sleeper = AdaptiveSleep()
    pull = loop._pull_and_store_message

    def pull_and_note(*args: Any, **kwargs: Any) -> Any:
        run_id = pull(*args, **kwargs)
        if run_id is not None:
            sleeper.got_message()
        return run_id

    loop.time = sleeper  # type: ignore[assignment]
    loop.pull_objects = _failing_on_stopped_run(  # type: ignore[assignment]
        functools.partial(loop.pull_objects, **FAST_PULL), loop.RunNotRunningException
    )
    loop._pull_and_store_message = pull_and_note  # type: ignore[assignment]
    fleet.HEARTBEAT_DEFAULT_INTERVAL = NODE_HEARTBEAT_S  # announced to the SuperLink
    heartbeat.HEARTBEAT_DEFAULT_INTERVAL = NODE_HEARTBEAT_S  # the sender's pace
    http_retry.MAX_RETRY_DELAY = RECONNECT_MAX_S
    return sleeper


def _failing_on_stopped_run(pull: Callable[..., Any], stopped: type) -> Callable[..., Any]:
    """`pull`, raising a RuntimeError where the run stopped mid-pull (see 5. above)."""

    def pull_or_fail(*args: Any, **kwargs: Any) -> Any:
        try:
            return pull(*args, **kwargs)
        except stopped as err:
            raise RuntimeError("the run stopped while its message was being fetched") from err

    return pull_or_fail


def fast_grid_pulls() -> None:
    """`FAST_PULL` for the ServerApp's replies on the deployment engine (this process; once)."""
    from flwr.superlink.grid import http_grid

    _require(http_grid, ("pull_objects",))
    if not isinstance(http_grid.pull_objects, functools.partial):
        http_grid.pull_objects = functools.partial(http_grid.pull_objects, **FAST_PULL)
