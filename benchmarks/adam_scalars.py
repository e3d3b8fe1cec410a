"""Adam's update compiled with its bias corrections worked out in the program or passed in.

`asfed.agents.fused._whole` steps Adam inside one compiled program. Written as
`torch.optim.Adam`'s single-tensor formula on a step-count tensor, `1 - beta ** (n + 1)` is a
0-d value that inductor inlines into every parameter's elementwise loop, and in its C++ it
stays inside the loop (a load from a pointer the loop's stores may alias, so the compiler
cannot hoist it): two `std::pow` and a `std::sqrt` for every 16 entries. Passing the step size
and the second correction's root as a tensor (worked out on the host, in double, as Adam does)
leaves one scalar load. This times both programs, and `torch._fused_adam_` as a yardstick, on
one tensor of predation's largest layer size (the policy stack's 128 x 64 weights of 64
networks, 524,288 entries), one thread, in one run, and prints the ratio.

    python benchmarks/adam_scalars.py
    python benchmarks/adam_scalars.py --entries 100000 --calls 500
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

BETA1, BETA2, EPS, LR = 0.9, 0.999, 1e-8, 1e-4


def counted(p, m, v, g, n, ok) -> None:
    """The corrections from the step count `n` (a 0-d tensor), in the program."""
    n1 = n + 1
    correction1 = 1 - BETA1**n1
    correction2 = (1 - BETA2**n1).sqrt()
    m1 = m.lerp(g, 1 - BETA1)
    v1 = v * BETA2 + g * g * (1 - BETA2)
    p1 = p - m1 / (v1.sqrt() / correction2 + EPS) * (LR / correction1)
    p.copy_(torch.where(ok, p1, p))
    m.copy_(torch.where(ok, m1, m))
    v.copy_(torch.where(ok, v1, v))
    n.copy_(torch.where(ok, n1, n))


def passed(p, m, v, g, n, scales, ok) -> None:
    """The step size and the second correction's root passed in (`scales` `[2]`)."""
    n1 = n + 1
    m1 = m.lerp(g, 1 - BETA1)
    v1 = v * BETA2 + g * g * (1 - BETA2)
    p1 = p - m1 / (v1.sqrt() / scales[1] + EPS) * scales[0]
    p.copy_(torch.where(ok, p1, p))
    m.copy_(torch.where(ok, m1, m))
    v.copy_(torch.where(ok, v1, v))
    n.copy_(torch.where(ok, n1, n))


def seconds(call: Callable[[], None], calls: int) -> float:
    """Mean seconds a call, after 10 warm-up calls."""
    for _ in range(10):
        call()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=64 * 128 * 64)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    p, m, g = (torch.randn(args.entries, generator=gen) for _ in range(3))
    v = torch.rand(args.entries, generator=gen)
    n, ok = torch.tensor(5.0), torch.tensor(True)
    scales = torch.tensor([LR / (1 - BETA1**6), (1 - BETA2**6) ** 0.5])
    options = {"cpp_wrapper": True}
    in_program = torch.compile(counted, dynamic=False, options=options)
    passed_in = torch.compile(passed, dynamic=False, options=options)
    step = torch.tensor(5.0)
    rows = [
        ("corrections in the program", seconds(lambda: in_program(p, m, v, g, n, ok), args.calls)),
        (
            "corrections passed in",
            seconds(lambda: passed_in(p, m, v, g, n, scales, ok), args.calls),
        ),
        (
            "torch._fused_adam_ (yardstick)",
            seconds(
                lambda: torch._fused_adam_(
                    [p],
                    [g],
                    [m],
                    [v],
                    [],
                    [step],
                    lr=LR,
                    beta1=BETA1,
                    beta2=BETA2,
                    weight_decay=0.0,
                    eps=EPS,
                    amsgrad=False,
                    maximize=False,
                ),
                args.calls,
            ),
        ),
    ]
    print(f"Adam on {args.entries:,} entries, one thread, {args.calls} calls each")
    for label, s in rows:
        print(f"  {label:<32}{s * 1e6:>9.0f} us  {s / args.entries * 1e9:>6.2f} ns/entry")
    print(f"  passed in: x{rows[0][1] / rows[1][1]:.2f} against in the program")


if __name__ == "__main__":
    main()
