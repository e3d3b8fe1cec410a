"""Adam over parameters held stacked through an update: the same bytes as each network's own.

A fused stack (`asfed.agents.fused.Stack`) runs each layer of its networks as one batched
product over their weights stacked `[G, out, in]`. Stacking them from the parameters every
minibatch step, then stepping Adam one network's tensor at a time, is per-call overhead on
Table 2's 128-64 MLPs. Held instead, a stack copies its parameters into stacks once an update,
the forward reads them, Adam steps them in place, and `Entry.write_back` copies parameters and
moments back at the update's end (so checkpoints, messages and the acting policy see per-network
parameters as before).

It is the same arithmetic, byte for byte, because PyTorch's fused Adam is elementwise: a
stacked tensor stepped once is each slice stepped alone, where every slice is whole vectors
(`VECTOR`: the kernel rounds a tensor's tail past its last whole vector otherwise than its
body) and the slices share hyperparameters and step count. Where they do not (a policy head's
5-entry bias), each network's slice of the held stack is stepped as a view with its own state:
the same call, its own bytes. tests/agents/test_lockstep.py checks every method bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import torch
from torch import nn

VECTOR = 16
"""Entries in the widest vector PyTorch's CPU kernels use (AVX-512, float32). A depth's networks
are stepped as one stacked tensor only if each one's slice is a multiple of it."""

_FLAGS = ("amsgrad", "capturable", "differentiable", "decoupled_weight_decay")

Owner = dict[nn.Parameter, tuple[torch.optim.Optimizer, dict[str, Any]]]
"""Each parameter's optimiser and parameter group."""


class Source(Protocol):
    """What holds the gradients an entry steps with: the stack's last step's `[G, ...]`."""

    grads: list[torch.Tensor]


def hyper(p: nn.Parameter, owner: Owner) -> tuple | None:
    """The keyword arguments of `torch._fused_adam_` that step `p` (as a sorted tuple), or None
    where its optimiser is not plain fused Adam with state on the CPU (then it is not held)."""
    if p not in owner or p.device.type != "cpu":
        return None
    opt, group = owner[p]
    if (
        not isinstance(opt, torch.optim.Adam)
        or not group["fused"]
        or any(group.get(flag, False) for flag in _FLAGS)
        or torch.is_tensor(group["lr"])
        or not opt.state.get(p)
    ):
        return None
    return (
        ("beta1", group["betas"][0]),
        ("beta2", group["betas"][1]),
        ("eps", group["eps"]),
        ("lr", group["lr"]),
        ("maximize", group["maximize"]),
        ("weight_decay", group["weight_decay"]),
    )


@dataclasses.dataclass
class Entry:
    """One tensor of the fused Adam call: `param` is held `[n, ...]` (n networks stacked, with
    stacked copies of their moments and one step count) or one network's view `[...]` (with
    that network's own moment and step tensors)."""

    key: tuple
    param: torch.Tensor
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    step: torch.Tensor
    source: Source
    index: int  # which of the source's gradients
    select: slice | int  # and which networks of it
    params: list[nn.Parameter]  # the networks' own parameters, in order
    states: list[dict[str, Any]] | None  # their Adam states, where the moments are copies

    def grad(self) -> torch.Tensor:
        """This entry's gradient from the source's last step."""
        return self.source.grads[self.index][self.select]

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the held values into each network's parameter (and copied moments and step
        count into its Adam state)."""
        if self.states is None:
            self.params[0].copy_(self.param)
            return
        for g, (p, st) in enumerate(zip(self.params, self.states, strict=True)):
            p.copy_(self.param[g])
            st["exp_avg"].copy_(self.exp_avg[g])
            st["exp_avg_sq"].copy_(self.exp_avg_sq[g])
            st["step"].copy_(self.step)


def entries(
    tensor: torch.Tensor, params: list[nn.Parameter], index: int, owner: Owner, source: Source
) -> list[Entry]:
    """The entries that step `tensor` `[G, ...]`, whose first len(params) slices hold `params`
    (one a network; the rest a lone network's copy, not stepped): one stacked entry where their
    slices are whole vectors and share hyperparameters and step count, else one view each."""
    n = len(params)
    states = [owner[p][0].state[p] for p in params]
    keys = {hyper(p, owner) for p in params}
    steps = {float(st["step"]) for st in states}
    if params[0].numel() % VECTOR == 0 and len(keys) == 1 and len(steps) == 1:
        return [
            Entry(
                keys.pop(),
                tensor[:n],
                torch.stack([st["exp_avg"] for st in states]),
                torch.stack([st["exp_avg_sq"] for st in states]),
                states[0]["step"].clone(),
                source,
                index,
                slice(0, n),
                params,
                states,
            )
        ]
    return [
        Entry(
            hyper(p, owner),
            tensor[g],
            st["exp_avg"],
            st["exp_avg_sq"],
            st["step"],
            source,
            index,
            g,
            [p],
            None,
        )
        for g, (p, st) in enumerate(zip(params, states, strict=True))
    ]


class Adam:
    """The held entries of an update's stacks, stepped as `torch.optim.Adam(fused=True)` steps
    its parameters: per step, one `_fused_adam_` call a set of equal hyperparameters over the
    entries of the stacks that stepped (lists built once per such set)."""

    def __init__(self, held: dict[int, list[Entry]]) -> None:
        self.held = held  # stack id -> its entries
        self._calls: dict[tuple[int, ...], list[tuple[list[Entry], list[list], dict]]] = {}

    @torch.no_grad()
    def step(self, stepped: list[int]) -> None:
        """One Adam step of the entries of the stacks `stepped` (their ids)."""
        ids = tuple(i for i in stepped if i in self.held)
        if ids not in self._calls:
            groups: dict[tuple, list[Entry]] = {}
            for i in ids:
                for e in self.held[i]:
                    groups.setdefault(e.key, []).append(e)
            self._calls[ids] = [
                (es, [[getattr(e, f) for e in es] for f in _LISTS], dict(key))
                for key, es in groups.items()
            ]
        for es, (params, exp_avgs, exp_avg_sqs, steps), kwargs in self._calls[ids]:
            torch._foreach_add_(steps, 1)
            torch._fused_adam_(
                params,
                [e.grad() for e in es],
                exp_avgs,
                exp_avg_sqs,
                [],
                steps,
                amsgrad=False,
                grad_scale=None,
                found_inf=None,
                **kwargs,
            )


_LISTS = ("param", "exp_avg", "exp_avg_sq", "step")
