"""Updates of several learners in lockstep: one backward pass and one Adam call a minibatch step.

An update is, per optimiser, a list of minibatch steps (a `Stream`): the policy's epoch and the
critic's regression. Within an update neither reads the other: the policy's advantages are fixed
before its first step and the critic regresses on returns. So the policy's step j and the
critic's step j can run together, and so can the steps of every agent a process holds (their
parameters are disjoint). Together is the same arithmetic, not an approximation:

- the gradient of a sum of losses over disjoint parameters is each loss's own gradient;
- Adam is elementwise, so one fused call over all the parameters, grouped by equal
  hyperparameters, is each optimiser's own call; each parameter keeps its optimiser's state
  (the joint optimiser holds the very same state dicts, so checkpoints are unchanged).

Tests check parameters bit for bit against one step at a time (`together(False)`) with fused
steps off (`fusing(False)`); fused steps (`asfed.agents.fused`, on by default for small
networks: stacked, with the backward written out) equal them to rounding, and the engines
equal each other bit for bit. What lockstep saves is per-call overhead: on Table 2's 128-64 MLPs a
step's Python, autograd set-up and optimiser bookkeeping cost as much as its arithmetic, and a
process holding 3 agents pays them once a step instead of 6 times.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from asfed.agents import fused

Step = Callable[[], tuple[torch.Tensor, dict[str, torch.Tensor]]]
"""One minibatch step's forward pass: (the scalar loss, the statistics to record for it)."""

_TOGETHER = [True]


@contextlib.contextmanager
def together(on: bool) -> Iterator[None]:
    """Run lockstep (on, the default) or one step at a time, stream by stream and agent by
    agent, as the loops did before lockstep (off: the reference the tests and the benchmark's
    ablation compare against)."""
    saved = _TOGETHER[0]
    _TOGETHER[0] = on
    try:
        yield
    finally:
        _TOGETHER[0] = saved


_FUSED = [True]


@contextlib.contextmanager
def fusing(on: bool) -> Iterator[None]:
    """Stack plain PPO steps through `fused` (on, the default) or tape every step with autograd
    (off: lockstep's own arithmetic, bit for bit one step at a time)."""
    saved = _FUSED[0]
    _FUSED[0] = on
    try:
        yield
    finally:
        _FUSED[0] = saved


@dataclasses.dataclass
class Stream:
    """One optimiser's minibatch steps in one update.

    opt: the optimiser that owns the parameters the steps' losses depend on.
    groups: its parameters, in the groups `max_grad_norm` clips apart.
    steps: each step's forward pass, in order.
    what: the loss's name in a divergence error ("policy loss", "value loss").
    summary: record the mean of the steps' losses once, under this name (the critic's
        value_loss); None: record each step's statistics.
    """

    opt: torch.optim.Optimizer
    groups: list[list[nn.Parameter]]
    steps: list[Step]
    what: str
    summary: str | None = None
    fused: fused.Steps | None = None  # the steps as `fused` can stack them (plain PPO only)


class Learner(Protocol):
    """What lockstep needs of an agent (`asfed.agents.base.Agent`)."""

    compiled: bool  # its fused stacks run through `torch.compile` (`fused.Stack`)
    clips: bool  # whether `clip` changes gradients (then a step's Adam waits for it)

    def check_loss(self, loss: torch.Tensor, what: str) -> None: ...
    def clip(self, groups: list[list[nn.Parameter]]) -> None: ...
    def params_changed(self) -> None: ...
    def record(self, **stats: float) -> None: ...


@dataclasses.dataclass
class Plan:
    """One agent's update, planned: its streams, run by `run`."""

    agent: Learner
    streams: list[Stream]


SMALL = 65_536
"""Lockstep pays only where per-call overhead dominates: networks whose largest weight has at
most this many entries (Table 2's 128-64 MLPs: under 10k). The 1024-256 MLPs of cleanup and
harvest (first layer over 240k) run one step at a time: lockstep measured 4% slower there
(cleanup IPPO, 14.62 against 14.06 s a round, one worker, 5 rounds each, interleaved)."""


def small(streams: list[Stream]) -> bool:
    """Whether every stream's optimiser holds only small parameters (`SMALL`)."""
    return all(p.numel() <= SMALL for s in streams for g in s.opt.param_groups for p in g["params"])


def run(plans: list[Plan]) -> None:
    """Run the updates: lockstep over every stream of every plan when the networks are small
    (`SMALL`), else (or under `together(False)`) one stream at a time in plan order."""
    if not _TOGETHER[0] or not small([s for plan in plans for s in plan.streams]):
        for plan in plans:
            for stream in plan.streams:
                _run([(plan.agent, stream)])
        return
    _run([(plan.agent, stream) for plan in plans for stream in plan.streams], fuse=_FUSED[0])


def _run(streams: list[tuple[Learner, Stream]], fuse: bool = False) -> None:
    """Step j of every stream together, for each j; with `fuse`, the streams that have `fused`
    steps stacked by `fused.Stack` (compiled if their agents are), the others through autograd;
    where the whole update compiles (`_whole`), `fused.Whole` programs of `unroll` steps."""
    losses: list[list[float]] = [[] for _ in streams]
    fusable = [i for i, (_, s) in enumerate(streams) if fuse and s.fused is not None]
    compiled = bool(fusable) and all(streams[i][0].compiled for i in fusable)
    stacks = [
        (stack, [fusable[p] for p in members])
        for stack, members in fused.stacks([streams[i][1].fused for i in fusable], compiled)
    ]
    whole = _whole(streams, stacks) if compiled else None
    if whole is not None:
        _run_whole(streams, stacks, whole, losses)
    else:
        _run_steps(streams, stacks, losses)
    for (agent, stream), values in zip(streams, losses, strict=True):
        if stream.summary is not None:
            agent.record(**{stream.summary: mean(values)})


def _run_steps(
    streams: list[tuple[Learner, Stream]],
    stacks: list[tuple[fused.Stack, list[int]]],
    losses: list[list[float]],
) -> None:
    """The update a lockstep step at a time: stacks stepped, the rest taped, one Adam call."""
    joints: dict[tuple[int, ...], Stepper] = {}
    for j in range(max((len(s.steps) for _, s in streams), default=0)):
        live = [i for i, (_, s) in enumerate(streams) if j < len(s.steps)]
        key = tuple(live)
        if key not in joints:
            joints[key] = Stepper(joint_optimizer([streams[i][1].opt for i in live]))
        opt = joints[key]
        opt.zero_grad()
        out: dict[int, tuple[torch.Tensor, Any]] = {}
        for stack, members in stacks:
            if j < len(streams[members[0]][1].steps):  # members have equal minibatch counts
                losses_j, stats_j = stack.step(j)
                out.update(zip(members, zip(losses_j, stats_j, strict=True), strict=True))
        taped = [i for i in live if i not in out]
        out.update(zip(taped, _forward([streams[i] for i in taped], j), strict=True))
        scalars = _checked(streams, live, out)
        if taped:
            torch.autograd.backward([out[i][0] for i in taped])
        for i in live:
            streams[i][0].clip(streams[i][1].groups)
        opt.step()
        _record(streams, live, {i: out[i][1] for i in live}, scalars.tolist(), losses)


UNROLL = (4, 2, 1)
"""Lockstep steps a `fused.Whole` program takes per call: the largest of these that divides
the update's step count. Each call pays dynamo's and inductor's Python once: four steps a call
measured 613-636 us a step against 660-750 at one (navigation IPPO, 2-agent stacks); the
program, and its compile time, grow with it."""


def _run_whole(
    streams: list[tuple[Learner, Stream]],
    stacks: list[tuple[fused.Stack, list[int]]],
    whole: fused.Whole,
    losses: list[list[float]],
) -> None:
    """The update as `fused.Whole` programs, Adam included; every stream steps every time
    (`_whole` checks), and nothing is written from a non-finite loss on, which is named before
    its step's statistics are recorded. The held parameters go back when it ends, also on
    divergence."""
    for _, stream in streams:  # it writes no `.grad`: drop what an eager update left there
        stream.opt.zero_grad()
    order = [i for _, members in stacks for i in members]  # Whole's member order
    live = list(range(len(streams)))
    count = len(streams[0][1].steps)
    unroll = next(u for u in UNROLL if count % u == 0)
    at = [order.index(i) for i in live]  # each live stream's place in Whole's losses
    try:
        for j in range(0, count, unroll):
            steps = whole.steps(j, unroll)
            table = torch.stack([values for values, _ in steps])  # [unroll, streams], one read
            finite, rows = not whole.diverged, table.tolist()
            for (values, stats), row in zip(steps, rows, strict=True):
                if not finite:  # name a non-finite loss before its step is recorded
                    out = dict(zip(order, zip(values, stats, strict=True), strict=True))
                    _checked(streams, live, out)
                kept = dict(zip(order, stats, strict=True))
                _record(streams, live, kept, [row[k] for k in at], losses)
    finally:
        whole.finish()


def _checked(
    streams: list[tuple[Learner, Stream]], live: list[int], out: dict[int, tuple[torch.Tensor, Any]]
) -> torch.Tensor:
    """The live streams' losses `[len(live)]`; a non-finite one is named by its agent."""
    scalars = torch.stack([out[i][0].detach() for i in live])
    if not bool(torch.isfinite(scalars).all()):
        for i in live:
            streams[i][0].check_loss(out[i][0], streams[i][1].what)
    return scalars


def _record(
    streams: list[tuple[Learner, Stream]],
    live: list[int],
    stats: dict[int, Any],
    scalars: list[float],
    losses: list[list[float]],
) -> None:
    """A step's statistics recorded (`stats` each stream's; a summarised stream's loss, of the
    live streams' `scalars`, kept for its mean), and the stepped agents told that their
    parameters changed."""
    changed: dict[int, Learner] = {}
    for i, value in zip(live, scalars, strict=True):
        agent, stream = streams[i]
        changed[id(agent)] = agent
        if stream.summary is not None:
            losses[i].append(value)
        else:
            agent.record(**{k: v.item() for k, v in stats[i].items()})
    for agent in changed.values():
        agent.params_changed()


def _whole(
    streams: list[tuple[Learner, Stream]], stacks: list[tuple[fused.Stack, list[int]]]
) -> fused.Whole | None:
    """The update as `fused.Whole` steps, where they compute what stepping the stacks and the
    joint optimiser would (to rounding: `compile_steps`): every stream stacked, all of one
    step count, none clipped, and `Whole.usable`; else None."""
    stacked = sorted(i for _, members in stacks for i in members)
    if stacked != list(range(len(streams))) or any(agent.clips for agent, _ in streams):
        return None
    if len({len(s.steps) for _, s in streams}) != 1:
        return None
    opt = joint_optimizer([s.opt for _, s in streams])
    only = [stack for stack, _ in stacks]
    return fused.Whole(only, opt) if fused.Whole.usable(only, opt) else None


def _forward(streams: list[tuple[Learner, Stream]], j: int) -> list[tuple[torch.Tensor, Any]]:
    """Step j's forward pass of each stream (taped by autograd), in order."""
    return [stream.steps[j]() for _, stream in streams]


def mean(values: list[float]) -> float:
    """The mean of a round's per-minibatch statistics (NaN when there were none)."""
    return float(np.mean(values)) if values else float("nan")


def joint_optimizer(opts: list[torch.optim.Optimizer]) -> torch.optim.Optimizer:
    """One optimiser stepping every parameter of `opts` (all of one class), its groups merged
    where their hyperparameters are equal, each parameter's state the very dict its own
    optimiser holds (so a step updates that optimiser's state in place)."""
    if len(opts) == 1:
        return opts[0]
    kind = type(opts[0])
    if any(type(o) is not kind for o in opts):
        names = sorted({type(o).__name__ for o in opts})
        raise TypeError(f"lockstep needs one optimiser class, got {names}")
    merged: dict[tuple, dict[str, Any]] = {}
    for opt in opts:
        for group in opt.param_groups:
            hyper = {k: v for k, v in group.items() if k != "params"}
            key = tuple(sorted((k, repr(v)) for k, v in hyper.items()))
            merged.setdefault(key, {**hyper, "params": []})["params"].extend(group["params"])
    joint = kind(list(merged.values()))
    for opt in opts:
        for group in opt.param_groups:
            for p in group["params"]:
                joint.state[p] = opt.state[p]  # shared: filled and updated in place
    return joint


class Stepper:
    """An optimiser's `zero_grad` and `step` without their per-call Python: for fused Adam (what
    every agent uses) the step calls the very kernels `torch.optim.Adam.step` calls, in its
    order, on the parameters that have a gradient (as it does), from lists built when that set
    changes (so the same bytes); anything else steps through the optimiser.

    Why: on 128-64 MLPs, Adam.step's per-parameter bookkeeping (its state lookups, grouping by
    device, profiler hooks) cost as much as its arithmetic, once a minibatch step. The lists hold
    the optimiser's own state tensors, so build a stepper per update (as `_run` does): a
    checkpoint load between updates replaces them."""

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        self.opt = opt
        self.params = [p for g in opt.param_groups for p in g["params"]]
        self._groups: list[tuple[list, list, list, list, dict[str, Any]]] = []
        self._have: tuple[bool, ...] | None = None  # which parameters the lists are for
        self._direct = isinstance(opt, torch.optim.Adam) and all(
            g["fused"]
            and not (g["amsgrad"] or g["capturable"] or g["differentiable"])
            and not g.get("decoupled_weight_decay", False)
            and not torch.is_tensor(g["lr"])
            and len({(p.device, p.dtype) for p in g["params"]}) == 1
            for g in opt.param_groups
        )

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        if not self._direct:
            self.opt.step()
            return
        have = tuple(p.grad is not None for p in self.params)
        if have != self._have:
            if any(p.grad is not None and not self.opt.state[p] for p in self.params):
                self.opt.step()  # a first step creates the state, as Adam does
                self._have = None
                return
            self._build(have)
        with torch.no_grad():
            for params, exp_avgs, exp_avg_sqs, steps, hyper in self._groups:
                torch._foreach_add_(steps, 1)
                torch._fused_adam_(
                    params,
                    [p.grad for p in params],
                    exp_avgs,
                    exp_avg_sqs,
                    [],
                    steps,
                    amsgrad=False,
                    grad_scale=None,
                    found_inf=None,
                    **hyper,
                )

    def _build(self, have: tuple[bool, ...]) -> None:
        """The kernels' lists, per parameter group, of the parameters that have a gradient."""
        self._have = have
        self._groups = []
        for g in self.opt.param_groups:
            params = [p for p in g["params"] if p.grad is not None]
            if not params:
                continue
            state = [self.opt.state[p] for p in params]
            hyper = {
                "lr": g["lr"],
                "beta1": g["betas"][0],
                "beta2": g["betas"][1],
                "weight_decay": g["weight_decay"],
                "eps": g["eps"],
                "maximize": g["maximize"],
            }
            self._groups.append(
                (
                    params,
                    [st["exp_avg"] for st in state],
                    [st["exp_avg_sq"] for st in state],
                    [st["step"] for st in state],
                    hyper,
                )
            )
