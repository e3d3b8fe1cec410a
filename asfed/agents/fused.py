"""Minibatch steps of small MLPs, stacked across networks, with the backward pass written out.

On Table 2's 128-64 MLPs (exchange, navigation, predation) a minibatch step's arithmetic is about
1 ms for three agents, and autograd's bookkeeping (a node per operator, an engine call a step)
and one operator call per layer per network cost three times that. So the steps that are plain
PPO (the clipped surrogate of `ppo.clipped_surrogate`, and the value regression of
`ppo.value_loss`) of every network one process holds run here as one computation per network
shape: each layer of all of them is one batched matrix product over their weights stacked on
the fly, and the gradients are written out (a ReLU MLP's backward is two products and a sum a layer)
instead of recorded and replayed. Each network's gradient lands in its own parameter's `.grad`;
its own optimiser steps it, as before.

The same algorithm, equal to autograd's gradient to rounding only: the hand-written chain rule
multiplies in another order than autograd's (tests hold them to 1e-4 relative). What a network's
numbers never depend on is what it is stacked with: every operator here computes each network's
slice alone, except MKL's batched GEMM, which rounds some small products ([5, 100] @ [100, 64], the
policy head's weight gradient, and a 1-wide one) differently for one matrix than for several. So a
network stepped alone is stacked with a copy of itself (the copy's result is dropped): every stack
then has 2 or more, and a run gives the same bytes on 1 or 2 workers and on Flower, whichever agents
share a process; tests check that per network for stacks of 1 to 6. (Shown for MKL on the CPU; a
GPU's batched GEMM is not checked for it.) The copy costs nothing in wall time where it occurs (2
workers, 3 agents: the worker with one agent then takes as long as the one with two, which it waited
for anyway).

Under `compile_steps` each stack's forward, loss and backward run through `torch.compile`, a
graph per stack shape (static shapes). Inductor's sum over the minibatch is split and
vectorised by the stack's size, so the bias gradients are summed eagerly (`_biases`): then a
network's bytes still do not depend on its stack (tested), and equal eager's to rounding only.

Where every stream of an update is fused, `Whole` goes further under `compile_steps`: lockstep
steps (every stack's forward, loss and backward, and Adam over all their parameters) are one
compiled program with a C++ wrapper, several steps a call, on parameters and Adam moments held
stacked for the update, so a step pays a fraction of one call instead of some hundred operator
calls. Its reductions are never split (`split_reductions` off), so each network's sums run in
one order whatever its stack's size, and Adam's elementwise arithmetic is the same for every
row: a network's numbers do not depend on its stack (tested for plain stacks over a step
and, for a lone network's copy, over a 4-step call; for AS's Head stacks through the
1-against-2-workers run test). The output layer's bias gradient is summed as a batched product
(`_summed`): as a plain sum inductor fused it with the loss's gradient, and a lone policy
network's head bias then rounded otherwise in a stack of 2 than of 3. Shapes are static, so a
graph serves every update of one round size M: where M changes between rounds (predation, whose
episodes end at a capture) each new M compiles again (20-60 s), as the per-stack graphs always
have.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn


@dataclasses.dataclass
class Surrogate:
    """PPO's clipped surrogate (to minimise), each minibatch's data gathered once an update.

    actions long `[M]`: the action taken at each sample; logp_old `[M]`; adv `[M]`.
    """

    actions: torch.Tensor
    logp_old: torch.Tensor
    adv: torch.Tensor
    clip: float
    stat: str = "policy_loss"


@dataclasses.dataclass
class Regression:
    """Eq. 18's mean squared error to `targets` `[M]` of a 1-wide network."""

    targets: torch.Tensor


@dataclasses.dataclass
class Head:
    """Any other loss of the networks' outputs, taped by autograd from the outputs on (the
    networks' own backward is still written out): `fn(outputs [n, T, out], idx [T])` returns
    (the scalar loss, statistics to record), idx the step's sample indices. AS's dual clipped
    objective and PS's factor surrogate have their gradients written out too (`written`), so
    nothing is taped; an unwritten Head is taped from the outputs on."""

    fn: Callable[..., tuple]
    written: bool = False  # fn returns (loss, statistics, d loss / d outputs): nothing is taped
    # A written fn's arithmetic as a function of tensors alone, for `Whole`'s compiled program:
    # pure(outputs [n, T, out], data) with `data` each tensor of `data` narrowed to the step's
    # rows along its sample axis (given beside it); a module-level function or a partial of
    # one with constant arguments, so one graph serves every update of one shape.
    pure: Callable[..., tuple] | None = None
    data: Sequence[tuple[torch.Tensor, int]] = ()


@dataclasses.dataclass
class Steps:
    """One stream's minibatch steps in the form `Stack` stacks: Linear-ReLU MLPs
    (`networks.mlp`) of one shape, all read on `inputs` `[M, D]` at each index set of
    `batches`, under one loss of their outputs (Surrogate and Regression: one network)."""

    nets: list[nn.Sequential]
    inputs: torch.Tensor
    batches: list[torch.Tensor]
    loss: Surrogate | Regression | Head

    def __post_init__(self) -> None:
        self.layers = [[m for m in net if isinstance(m, nn.Linear)] for net in self.nets]
        if not isinstance(self.loss, Head) and len(self.nets) != 1:
            raise ValueError(f"{type(self.loss).__name__} takes one network, not {len(self.nets)}")

    def key(self) -> tuple:
        """What must be equal for two streams' steps to stack: loss, shapes, minibatch sizes."""
        shapes = {tuple(tuple(layer.weight.shape) for layer in net) for net in self.layers}
        if len(shapes) != 1:
            raise ValueError(f"networks of one stream must have one shape, not {sorted(shapes)}")
        kind = (
            type(self.loss).__name__,
            getattr(self.loss, "clip", None),
            getattr(self.loss, "stat", None),
        )
        sizes = tuple(len(b) for b in self.batches)
        return (kind, shapes.pop(), sizes, self.inputs.device, self.inputs.dtype)

    def gathered(self) -> list[torch.Tensor]:
        """The inputs `[M, D]` and the loss's data (each `[M]`; none for a Head), rows in
        minibatch order (`index_select`: the same rows as `t[order]`, 5x faster on the CPU for
        a 9,600-row round)."""
        order = torch.cat(self.batches) if self.batches else self.inputs.new_zeros(0).long()
        loss = self.loss
        if isinstance(loss, Surrogate):
            data = [loss.actions, loss.logp_old, loss.adv]
        elif isinstance(loss, Regression):
            data = [loss.targets]
        else:
            data = []
        return [t.index_select(0, order) for t in [self.inputs, *data]]


Stats = dict[str, torch.Tensor]


class Stack:
    """Streams of one `Steps.key`, stepped together: their minibatches gathered and stacked
    once, each step's rows a view. Never a stack of one network (the module's docstring): a
    lone network is stacked with a copy of itself, whose result is dropped."""

    def __init__(self, members: Sequence[Steps], compiled: bool = False) -> None:
        self.compiled = compiled
        self.count = len(members)
        alone = sum(len(m.nets) for m in members) == 1
        self.members = list(members) + ([members[0]] if alone else [])
        per_net = [g for m in self.members for g in [m.gathered()] * len(m.nets)]
        x = torch.stack([g[0] for g in per_net])  # [G, M, D], a member's rows once a network
        data = [torch.stack([g[i] for g in per_net]) for i in range(1, len(per_net[0]))]
        self._data = [x, *data]  # and each [G, M] (one network a member: Surrogate, Regression)
        sizes = [len(b) for b in members[0].batches]
        self._bounds = list(itertools.pairwise([0, *itertools.accumulate(sizes)]))
        nets = [layers for m in self.members for layers in m.layers]
        layers = list(zip(*nets, strict=True))  # per depth, every network's Linear
        # Their parameters, per depth, held once: the optimiser steps them in place, so they are
        # the same objects every step (and nn.Module's attribute lookup is not paid per step).
        self._weights = [[layer.weight for layer in ls] for ls in layers]
        self._biases = [[layer.bias for layer in ls] for ls in layers]
        self._real = sum(len(m.nets) for m in members)  # the networks whose gradients count
        ends = list(itertools.accumulate(len(m.nets) for m in self.members))
        self._slices = list(itertools.pairwise([0, *ends]))
        # A pure Head's data, gathered once in minibatch order (as `_data`), for `Whole`.
        # (No rows, M = 0, when every episode was over at reset: then nothing is stepped.)
        self._head_data = [
            [d.index_select(axis, torch.cat(m.batches)) for d, axis in m.loss.data]
            for m in members
            if compiled and isinstance(m.loss, Head) and m.loss.pure is not None and m.batches
        ]

    def step(self, j: int) -> tuple[torch.Tensor, list[Stats]]:
        """Step j of every member: forward, loss and backward stacked over their networks, each
        network's gradient written to its parameters' `.grad` (which must be None: the
        optimiser's `zero_grad` with set_to_none). Returns each member's loss `[count]` and
        the statistics it records (a Head's own; the surrogate's loss as `stat`)."""
        x, *data = self.rows(j)
        loss = self.members[0].loss
        weights, biases = _stacked(self._weights), _stacked(self._biases)
        forward, backward, plain = _kernels(self.compiled)
        if isinstance(loss, Head):
            out, hidden = forward(x, weights, biases)
            value, grad, stats = self._heads(out, j)
            grads_w, deltas = backward(grad, hidden, weights)
        else:
            clip = loss.clip if isinstance(loss, Surrogate) else None
            value, grads_w, deltas = plain(x, data, weights, biases, clip)
            stats = self.plain_stats(value[: self.count])
        for d, (grad_w, grad_b) in enumerate(zip(grads_w, _biases(deltas), strict=True)):
            for g in range(self._real):
                self._weights[d][g].grad = grad_w[g]
                self._biases[d][g].grad = grad_b[g]
        return value[: self.count], stats

    def rows(self, j: int) -> list[torch.Tensor]:
        """Step j's rows of the gathered inputs `[G, T, D]` and loss data (each `[G, T]`)."""
        a, b = self._bounds[j]
        return [t[:, a:b] for t in self._data]

    def plain_stats(self, losses: torch.Tensor) -> list[Stats]:
        """What each member of a Surrogate or Regression stack records for its loss `[count]`."""
        loss = self.members[0].loss
        if isinstance(loss, Surrogate):
            return [{loss.stat: v} for v in losses]
        return [{} for _ in losses]

    def _heads(self, out: torch.Tensor, j: int) -> tuple[torch.Tensor, torch.Tensor, list[Stats]]:
        """Each member's Head on its slice of the outputs `[G, T, out]`, taped from there:
        (losses `[members]`, d loss / d outputs `[G, T, out]`, each one's statistics)."""
        values, grads, stats = [], [], []
        for pos, (m, (lo, hi)) in enumerate(zip(self.members, self._slices, strict=True)):
            if pos >= self.count:  # the copy of a lone network: its gradient is dropped
                grads.append(torch.zeros_like(out[lo:hi]))
                continue
            if m.loss.written:
                value, stat, grad = m.loss.fn(out[lo:hi], m.batches[j])
            else:
                leaf = out[lo:hi].detach().requires_grad_()
                with torch.enable_grad():
                    value, stat = m.loss.fn(leaf, m.batches[j])
                    (grad,) = torch.autograd.grad(value, leaf)
            values.append(value.detach())
            grads.append(grad)
            stats.append(stat)
        return torch.stack(values), torch.cat(grads), stats


def stacks(steps: Sequence[Steps], compiled: bool = False) -> list[tuple[Stack, list[int]]]:
    """`steps` grouped by key into stacks, each with its members' positions in `steps`;
    `compiled`: their steps through `torch.compile`."""
    groups: dict[tuple, list[int]] = {}
    for pos, st in enumerate(steps):
        groups.setdefault(st.key(), []).append(pos)
    return [(Stack([steps[p] for p in group], compiled), group) for group in groups.values()]


def surrogate(
    logits: torch.Tensor, data: list[torch.Tensor], clip: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The clipped surrogate of each network and its gradient in the logits.

    logits `[G, T, A]`; data: actions `[G, T]`, logp_old `[G, T]`, adv `[G, T]`.
    Returns (loss `[G]`, d loss / d logits `[G, T, A]`). At a tie of min's two arguments each
    takes half the gradient, and clamp passes it at its bounds, as torch's backward does.
    """
    actions, logp_old, adv = data
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(2, actions[..., None])[..., 0]
    ratio = torch.exp(logp - logp_old)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip, 1 + clip) * adv
    loss = -torch.min(unclipped, clipped).mean(1)
    inside = (ratio >= 1 - clip) & (ratio <= 1 + clip)
    half = unclipped == clipped
    w_un = torch.where(half, 0.5, (unclipped < clipped).to(ratio.dtype))
    w_cl = torch.where(half, 0.5, (clipped < unclipped).to(ratio.dtype)) * inside
    grad_logp = (w_un + w_cl) * unclipped * (-1.0 / logits.shape[1])  # [G, T]
    grad = torch.softmax(logits, -1) * -grad_logp[..., None]
    grad.scatter_add_(2, actions[..., None], grad_logp[..., None])
    return loss, grad


def _regression(out: torch.Tensor, data: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean squared error of each network and its gradient. out `[G, T, 1]`, targets `[G, T]`."""
    diff = out[..., 0] - data[0]
    return (diff * diff).mean(1), (diff * (2.0 / out.shape[1]))[..., None]


@torch.no_grad()
def _forward(
    x: torch.Tensor, weights: list[torch.Tensor], biases: list[torch.Tensor]
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The stacked MLPs on x `[G, T, D]`, weights `[G, out, in]` and biases `[G, out]` a
    layer: (outputs `[G, T, out]`, each layer's input)."""
    hidden = [x]
    depth = len(weights)
    for d in range(depth):
        h = torch.bmm(hidden[-1], weights[d].transpose(1, 2)) + biases[d][:, None, :]
        hidden.append(h.relu_() if d < depth - 1 else h)
    return hidden.pop(), hidden


@torch.no_grad()
def _stacked(params: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Each layer's parameters of every network stacked: `[G, ...]` a layer (values only: no
    autograd node a step)."""
    return [torch.stack(per_depth) for per_depth in params]


@torch.no_grad()
def _backward(
    grad: torch.Tensor, hidden: list[torch.Tensor], stacked: list[torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """From d loss / d outputs `[G, T, out]`: each layer's weight gradient `[G, out, in]` and
    d loss / d its output `[G, T, out]` (whose sum over T is its bias gradient: `_biases`), in
    layer order."""
    grads_w, deltas = [], []
    for d in range(len(stacked) - 1, -1, -1):
        h = hidden[d]
        grads_w.append(torch.bmm(grad.transpose(1, 2), h))
        deltas.append(grad)
        if d > 0:
            grad = torch.bmm(grad, stacked[d]).mul_(h > 0)
    return grads_w[::-1], deltas[::-1]


def _biases(deltas: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each layer's bias gradient `[G, out]`, always summed eagerly: a compiled graph's sum over
    the minibatch is split and vectorised by the stack's size, so its rounding would depend
    on what a network is stacked with; eager's does not (tests/agents/test_fused.py)."""
    return [delta.sum(1) for delta in deltas]


@torch.no_grad()
def _plain(
    x: torch.Tensor,
    data: list[torch.Tensor],
    weights: list[torch.Tensor],
    biases: list[torch.Tensor],
    clip: float | None,
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """A Surrogate (clip given) or Regression step on stacked parameters (as `_forward`'s):
    (losses `[G]`, weight gradients, and d loss / d each layer's output, as `_backward`)."""
    out, hidden = _forward(x, weights, biases)
    value, grad = _regression(out, data) if clip is None else surrogate(out, data, clip)
    grads_w, deltas = _backward(grad, hidden, weights)
    return value, grads_w, deltas


@functools.cache
def _kernels(compiled: bool) -> tuple[Callable, Callable, Callable]:
    """(_forward, _backward, _plain), eager or through `torch.compile` (static shapes: a graph
    per stack shape; reaching dynamo's recompile limit raises rather than silently falling back
    to eager)."""
    if not compiled:
        return _forward, _backward, _plain
    import torch._dynamo.config as dynamo

    dynamo.recompile_limit = max(dynamo.recompile_limit, 1024)
    dynamo.accumulated_recompile_limit = max(dynamo.accumulated_recompile_limit, 8192)
    dynamo.fail_on_recompile_limit_hit = True
    return tuple(torch.compile(f, dynamic=False) for f in (_forward, _backward, _plain))


class Whole:
    """Steps of stacks (Surrogate, Regression, or Heads with a `pure` form) and the Adam steps
    of `opt` over exactly their parameters, as compiled programs (`_whole`): forward, loss,
    backward, and PyTorch's Adam arithmetic (`torch.optim.Adam`'s single-tensor formula, equal
    to its fused kernel to rounding), `unroll` lockstep steps a call.

    For the update, each stack's parameters and Adam moments are held stacked (a `[G, ...]`
    tensor a layer; the step counts are kept on the host, `_scales`): the program then takes
    some 40 tensors rather than one per parameter and moment (about 150 on navigation), so a
    call's Python (dynamo's guards and inductor's argument marshalling) shrinks with them, and
    the weights need not be stacked every step. `finish` writes them back into the parameters
    and the optimisers' state: call it once the update is over, and before anything reads them.

    A step whose loss is not finite writes nothing, nor does any step after it in the same
    call (each write is a `where` on the losses' finiteness so far), so the caller can name
    the diverged loss with the state of the step before, as the eager path does. Use only where
    `usable` holds."""

    def __init__(self, stacks: Sequence[Stack], opt: torch.optim.Optimizer) -> None:
        self.stacks = list(stacks)
        self._held, self._back = [], []
        self._done: list[int] = []  # each stack's Adam step count before the update
        self._taken = 0  # steps written through this object so far (every stack's alike)
        self.diverged = False  # whether a step's loss was not finite (nothing written since)
        for st in self.stacks:
            params = [st._weights, st._biases]  # a lone network's copy: its own object again
            state = [[[opt.state[p] for p in ps] for ps in kind] for kind in params]
            held = [_stacked(kind) for kind in params]
            for name in ("exp_avg", "exp_avg_sq"):
                held += [[torch.stack([s[name] for s in ss]) for ss in kind] for kind in state]
            self._held.append(held)  # [weights, biases, m_w, m_b, v_w, v_b], each per depth
            self._done.append(int(opt.state[st._weights[0][0]]["step"]))
            real = [[per_depth[: st._real] for per_depth in kind] for kind in params]
            self._back.append((real, [[ss[: st._real] for ss in kind] for kind in state]))
        hyper = _hyper(opt)
        self._hyper = tuple(hyper[id(st._weights[0][0])] for st in self.stacks)
        self._reals = tuple(st._real for st in self.stacks)
        self._clips = tuple(
            st.members[0].loss.clip if isinstance(st.members[0].loss, Surrogate) else None
            for st in self.stacks
        )
        self._kept = tuple(st.count for st in self.stacks)  # a lone network's copy dropped
        packs = [_packed(st) if isinstance(st.members[0].loss, Head) else None for st in stacks]
        self._xs, self._datas = self._step_inputs(packs)
        self._heads = tuple(
            None
            if pack is None
            else tuple(
                (m.loss.pure, lo, hi, picks)
                for m, (lo, hi), picks in zip(
                    st.members[: st.count], st._slices[: st.count], pack[1], strict=True
                )
            )
            + ((None, *st._slices[-1], ()),) * (len(st.members) - st.count)  # the copy: no grad
            for st, pack in zip(self.stacks, packs, strict=True)
        )

    def _step_inputs(
        self, packs: list[tuple[list[tuple[torch.Tensor, int]], list] | None]
    ) -> tuple[list[list[torch.Tensor]], list[list[list]]]:
        """Every step's inputs, split once an update (`split` makes the views `Stack.rows` and
        `narrow` would, in one call a tensor rather than one a step): per step, each stack's
        rows `[G, T, D]`, and its loss data (each `[G, T]`; a Head stack's: its packed data
        (`_packed`), each tensor narrowed on its sample axis to the step's rows)."""
        count = len(self.stacks[0]._bounds)  # every stack's (lockstep steps them together)
        if not count:  # no rows: no steps
            return [], []
        per_stack = []
        for st, pack in zip(self.stacks, packs, strict=True):
            sizes = [b - a for a, b in st._bounds]  # its own minibatches' sizes
            x, *data = (t.split(sizes, 1) for t in st._data)
            if pack is not None:
                data = [t.split(sizes, axis) for t, axis in pack[0]]
            per_step = [[d[k] for d in data] for k in range(count)]
            per_stack.append((x, per_step))
        xs = [[x[k] for x, _ in per_stack] for k in range(count)]
        datas = [[steps[k] for _, steps in per_stack] for k in range(count)]
        return xs, datas

    @staticmethod
    def usable(stacks: Sequence[Stack], opt: torch.optim.Optimizer) -> bool:
        """Whether `Whole` computes what the stacks' steps and `opt.step` would (to rounding):
        Surrogate, Regression or pure written Heads, and Adam (no weight decay, amsgrad or
        maximize; a float lr) whose parameters are exactly the stacks' and all have state (the
        first step creates it eagerly), each stack's under one set of hyperparameters and at
        one step count (as lockstep keeps them: every parameter of an update steps together)."""
        if not stacks or not isinstance(opt, torch.optim.Adam):
            return False
        heads = [m.loss for st in stacks for m in st.members if isinstance(m.loss, Head)]
        if any(not h.written or h.pure is None for h in heads):
            return False
        gathered = all(
            st.compiled
            and (not isinstance(st.members[0].loss, Head) or len(st._head_data) == st.count)
            for st in stacks
        )
        if not gathered:  # a pure Head's data is gathered by compiled stacks with rows only
            return False
        ours = {
            id(p)
            for st in stacks
            for per_depth in (*st._weights, *st._biases)
            for p in per_depth[: st._real]
        }
        params = [p for g in opt.param_groups for p in g["params"]]
        plain = all(
            g["fused"]  # its step counts live on the parameters' device, `finish` fills them
            and not (g["amsgrad"] or g["maximize"] or g["weight_decay"] or torch.is_tensor(g["lr"]))
            for g in opt.param_groups
        )
        if not (
            plain
            and {id(p) for p in params} == ours
            and len(params) == len(ours)
            and all(opt.state[p] for p in params)
        ):
            return False
        hyper = _hyper(opt)
        for st in stacks:
            mine = [p for per_depth in (*st._weights, *st._biases) for p in per_depth[: st._real]]
            if len({hyper[id(p)] for p in mine}) != 1:
                return False
            if len({float(opt.state[p]["step"]) for p in mine}) != 1:
                return False
        return True

    def steps(self, j: int, unroll: int) -> list[tuple[torch.Tensor, list[Stats]]]:
        """Steps j to j + unroll - 1 in one call: for each, every stack's member losses
        `[count]` concatenated in stack order, and each member's statistics in that order (as
        `Stack.step`'s). A step after a non-finite one was not taken (its losses are
        whatever the unwritten state gave): the caller stops at the first non-finite, and a
        call after one is refused (the step sizes assume every earlier step was written)."""
        if self.diverged:
            raise RuntimeError("a Whole stepped on after a non-finite loss")
        with torch.no_grad():
            values, head_stats = _whole_kernel()(
                self._xs[j : j + unroll],
                self._datas[j : j + unroll],
                self._held,
                self._scales(unroll),
                tuple(betas_eps for _, *betas_eps in self._hyper),  # lr: in `_scales` only
                self._reals,
                self._clips,
                self._kept,
                self._heads,
            )
        finite = torch.isfinite(torch.stack(values)).all(1)  # [steps]: the program wrote a prefix
        written = int(finite.long().cumprod(0).sum())
        self._taken += written
        self.diverged = written < len(values)
        out = []
        for value, own_stats in zip(values, head_stats, strict=True):
            stats, at = [], 0
            for st, own in zip(self.stacks, own_stats, strict=True):
                stats += own if own is not None else st.plain_stats(value[at : at + st.count])
                at += st.count
            out.append((value, stats))
        return out

    def _scales(self, unroll: int) -> torch.Tensor:
        """Adam's step size lr / (1 - beta1^n) and sqrt(1 - beta2^n) for the next `unroll` steps
        of each stack, `[unroll, stacks, 2]`: the u-th's n is the stack's step count before
        the update plus the steps taken since plus u + 1 (every step so far was written: `steps`
        refuses to go on past a non-finite one, which writes nothing). Worked out here in double, as
        `torch.optim.Adam` works out its scalars, rather than in the program: there inductor
        recomputed both powers for every 16 entries of every parameter (a loop-invariant it
        cannot hoist past its stores), which made Adam 2.7x slower
        (`benchmarks/adam_scalars.py`)."""
        rows = []
        for u in range(unroll):
            row = []
            for done, (lr, beta1, beta2, _) in zip(self._done, self._hyper, strict=True):
                n = done + self._taken + u + 1
                row.append((lr / (1 - beta1**n), math.sqrt(1 - beta2**n)))
            rows.append(row)
        return torch.tensor(rows, dtype=torch.float32, device=self._held[0][0][0].device)

    @torch.no_grad()
    def finish(self) -> None:
        """Write the held parameters, moments and step counts back where they belong: each
        network's parameters and its optimiser's state (each step count: the steps written)."""
        for held, done, (real, state) in zip(self._held, self._done, self._back, strict=True):
            for kind in range(2):
                for d, (ps, ss) in enumerate(zip(real[kind], state[kind], strict=True)):
                    for g, (p, s) in enumerate(zip(ps, ss, strict=True)):
                        p.copy_(held[kind][d][g])
                        s["exp_avg"].copy_(held[2 + kind][d][g])
                        s["exp_avg_sq"].copy_(held[4 + kind][d][g])
                        s["step"].fill_(done + self._taken)


def _hyper(opt: torch.optim.Optimizer) -> dict[int, tuple[float, float, float, float]]:
    """Each parameter's (by id) Adam hyperparameters: (lr, beta1, beta2, eps)."""
    return {id(p): (g["lr"], *g["betas"], g["eps"]) for g in opt.param_groups for p in g["params"]}


def _whole(
    xs: list[list[torch.Tensor]],
    datas: list[list[list]],
    held: list[list[list[torch.Tensor]]],
    scales: torch.Tensor,
    hyper: tuple[tuple[float, float, float], ...],
    reals: tuple[int, ...],
    clips: tuple[float | None, ...],
    kept: tuple[int, ...],
    heads: tuple,
) -> tuple[list[torch.Tensor], list[list[list[Stats] | None]]]:
    """`Whole.steps`'s program, a step per entry of xs (each stack's rows) and datas: each
    plain stack's `_plain` (its first `kept` losses kept), each Head stack's forward, its
    members' pure heads ((pure, lo, hi, picks) a member: its loss, statistics and output
    gradient on outputs [lo:hi], its data picked from the stack's packed data by `picks`
    (`_packed`); a copy's is zero) and backward; then Adam on each stack's held tensors
    (weights, biases, their first and second moments, each `[G, ...]` a layer; its (beta1,
    beta2, eps), the learning rate being in `scales`), the rows past `reals`
    (a lone network's copy) set to the first's; `scales` `[steps, stacks, 2]` each step's
    Adam step size and sqrt of its second bias correction (`Whole._scales`). Returns each
    step's member losses, concatenated over stacks, and each Head stack's members'
    statistics (None for a plain stack); nothing is written from the first step whose losses
    are not all finite on."""
    all_values, all_stats = [], []
    ok = None
    for step, (step_xs, step_datas) in enumerate(zip(xs, datas, strict=True)):
        values, grads, stats = [], [], []
        for s, x in enumerate(step_xs):
            weights, biases = held[s][0], held[s][1]
            if heads[s] is None:
                value, grads_w, deltas = _plain(x, step_datas[s], weights, biases, clips[s])
                values.append(value[: kept[s]])
                stats.append(None)
            else:
                out, hidden = _forward(x, weights, biases)
                own, d_out = [], []
                for pure, lo, hi, picks in heads[s]:
                    if pure is None:  # a lone network's copy: its gradient is dropped
                        d_out.append(torch.zeros_like(out[lo:hi]))
                        continue
                    value, stat, grad = pure(out[lo:hi], _picked(step_datas[s], picks))
                    values.append(value[None])
                    own.append(stat)
                    d_out.append(grad)
                grads_w, deltas = _backward(torch.cat(d_out), hidden, weights)
                stats.append(own)
            grads.append((grads_w, [*(delta.sum(1) for delta in deltas[:-1]), _summed(deltas[-1])]))
        out = torch.cat(values)
        ok = torch.isfinite(out).all() if ok is None else ok & torch.isfinite(out).all()
        for s, (beta1, beta2, eps) in enumerate(hyper):
            step_size, correction2 = scales[step, s, 0], scales[step, s, 1]
            for kind in range(2):
                for d, grad in enumerate(grads[s][kind]):
                    p, m, v = held[s][kind][d], held[s][2 + kind][d], held[s][4 + kind][d]
                    m1 = m.lerp(grad, 1 - beta1)
                    v1 = v * beta2 + grad * grad * (1 - beta2)
                    denom = v1.sqrt() / correction2 + eps
                    p1 = p - m1 / denom * step_size
                    if reals[s] < p.shape[0]:  # a lone network's copy follows it
                        p1, m1, v1 = (t[:1].expand_as(t) for t in (p1, m1, v1))
                    p.copy_(torch.where(ok, p1, p))
                    m.copy_(torch.where(ok, m1, m))
                    v.copy_(torch.where(ok, v1, v))
        all_values.append(out)
        all_stats.append(stats)
    return all_values, all_stats


Pick = tuple[int, int | None, int | None]


def _packed(st: Stack) -> tuple[list[tuple[torch.Tensor, int]], list[tuple[Pick, ...]]]:
    """A Head stack's data (`Stack._head_data`: each member's tensors, gathered) as few tensors
    as it can be: (tensors each with its sample axis, and for each member where its tensors
    lie, `(i, a, b)` each: `packed[i][a:b]`, `packed[i][a]` where b is None, or `packed[i]`
    where a is None).
    When every member's data has one layout (as many tensors, each of one dtype, sample axis,
    and shape past its first axis), the members' tensors of each place are one tensor: those
    on axis 0 (`[M, ...]`) stacked to `[members, M, ...]`, those on axis 1 (`[P, M, ...]`, a
    block per neighbour) concatenated to `[sum P, M, ...]`. Else each stays its own. A step
    then takes a tensor a place rather than one a place a member: dynamo's guards, the
    compiled program's argument marshalling and `split`'s views are paid per tensor (8 AS
    agents on one worker on predation: 8x fewer)."""
    datas = st._head_data
    axes = [tuple(axis for _, axis in m.loss.data) for m in st.members[: st.count]]

    def layout(ds: list[torch.Tensor], axs: tuple[int, ...]) -> tuple:
        return tuple((a, d.dtype, tuple(d.shape[1:])) for d, a in zip(ds, axs, strict=True))

    one = len({layout(ds, axs) for ds, axs in zip(datas, axes, strict=True)}) == 1
    if not one or not datas or any(a not in (0, 1) for a in axes[0]):
        return _apart(st)
    flat, rows = [], [[] for _ in datas]
    for i, axis in enumerate(axes[0]):
        parts = [ds[i] for ds in datas]
        if axis == 0:
            flat.append((torch.stack(parts), 1))
            for m in range(len(parts)):
                rows[m].append((i, m, None))
        else:
            flat.append((torch.cat(parts), 1))
            ends = list(itertools.accumulate(len(t) for t in parts))
            for m, (a, b) in enumerate(itertools.pairwise([0, *ends])):
                rows[m].append((i, a, b))
    return flat, [tuple(r) for r in rows]


def _apart(st: Stack) -> tuple[list[tuple[torch.Tensor, int]], list[tuple[Pick, ...]]]:
    """A Head stack's data as `_packed` gives it, each member's tensors left their own."""
    flat: list[tuple[torch.Tensor, int]] = []
    picks = []
    for ds, m in zip(st._head_data, st.members[: st.count], strict=True):
        picks.append(tuple((len(flat) + k, None, None) for k in range(len(ds))))
        flat += [(d, axis) for d, (_, axis) in zip(ds, m.loss.data, strict=True)]
    return flat, picks


def _picked(packed: list[torch.Tensor], picks: tuple[Pick, ...]) -> list[torch.Tensor]:
    """A member's data from its stack's packed data (`_packed`'s picks)."""
    return [
        packed[i] if a is None else packed[i][a] if b is None else packed[i][a:b]
        for i, a, b in picks
    ]


def _summed(delta: torch.Tensor) -> torch.Tensor:
    """The output layer's bias gradient: delta `[G, T, out]` summed over T, `[G, out]`, as a
    batched product with ones (16 wide, so inductor keeps it MKL's). As a plain sum inductor
    fused it with the loss's gradient and rounded a lone network's 5-entry head bias otherwise
    in a stack of 2 than of 3 (1e-9 in its Adam moments after 4 steps); MKL's product reads the
    materialised delta and sums each matrix alike whatever the stack
    (tests/agents/test_fused.py). The hidden layers' sums (128 and 64 wide) stay plain: 6-9%
    of a step measured for making them products too."""
    ones = delta.new_ones(delta.shape[0], delta.shape[1], 16)
    return torch.bmm(delta.transpose(1, 2), ones)[:, :, 0]


@functools.cache
def _whole_kernel() -> Callable:
    """`_whole` through `torch.compile`: static shapes, C++ wrapper (the Python wrapper's
    per-kernel calls cost as much as the arithmetic here), reductions never split."""
    _kernels(True)  # dynamo's recompile limits, as for the stacks
    options = {"cpp_wrapper": True, "split_reductions": False}
    return torch.compile(_whole, dynamic=False, options=options)
