"""AS's policy head as `fused.Whole` compiles it (`as_.written_head` on data gathered once an
update) is the agent's own written head (`written_out`, indexing the round's arrays each step)."""

from __future__ import annotations

import pytest
import torch

from asfed.agents import fused, lockstep
from asfed.config import build_config
from asfed.engine.loop import Simulation


@pytest.mark.parametrize("options", [{}, {"share_rows": 0.5}])
def test_the_pure_head_on_gathered_data_is_the_written_head_bit_for_bit(
    monkeypatch, options
) -> None:
    """Same outputs in, the same loss, statistics and output gradient out, at every step of an
    update: the gathering (rows in minibatch order, each tensor along its own sample axis) and
    the argument layout are exact, so the compiled program's departures from eager are the
    compiler's rounding alone. A share fraction below 1 gives the head a mask."""
    cfg = build_config(env="exchange", method="as", engine="local", episodes=4, **options)
    sim = Simulation(cfg, private_seed=2)
    sim.run_round()
    seen: list[lockstep.Plan] = []
    real = lockstep.run
    monkeypatch.setattr(lockstep, "run", lambda plans: (seen.extend(plans), real(plans))[1])
    sim.run_round()
    heads = [
        s.fused
        for plan in seen
        for s in plan.streams
        if s.fused and isinstance(s.fused.loss, fused.Head)
    ]
    assert heads and all(h.loss.pure is not None for h in heads)
    masked = 0
    for steps in heads:
        stack = fused.Stack([steps], compiled=True)  # gathers the pure head's data
        masked += len(steps.loss.data) == 8
        for j, (a, b) in enumerate(stack._bounds):
            x = stack._data[0][:, a:b]
            weights, biases = fused._stacked(stack._weights), fused._stacked(stack._biases)
            out, _ = fused._forward(x, weights, biases)
            out = out[: len(steps.nets)]
            want_loss, want_stats, want_grad = steps.loss.fn(out, steps.batches[j])
            data = [
                d.narrow(axis, a, b - a)
                for d, (_, axis) in zip(stack._head_data[0], steps.loss.data, strict=True)
            ]
            loss, stats, grad = steps.loss.pure(out, data)
            assert torch.equal(loss, want_loss) and torch.equal(grad, want_grad), j
            assert stats.keys() == want_stats.keys()
            assert all(torch.equal(stats[k], want_stats[k]) for k in stats)
    assert masked == (len(heads) if options else 0)
