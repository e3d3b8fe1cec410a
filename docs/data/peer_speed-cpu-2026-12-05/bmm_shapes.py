"""One step's batched products of predation's policy stack on one worker (64 networks, 28-row
minibatches, 18 -> 128 -> 64 -> 2), each timed alone, one thread: the 2-wide output layer's
products cost as much as the 18-wide input layer's, for 1/64 of the arithmetic."""

import time

import torch

torch.set_num_threads(1)
G, T = 64, 28
CASES = {  # name: (a's shape, b's shape, transpose a, transpose b)
    "fwd L1 x@W1 [T,18]x[18,128]": ((G, T, 18), (G, 18, 128), False, False),
    "fwd L2 h1@W2 [T,128]x[128,64]": ((G, T, 128), (G, 128, 64), False, False),
    "fwd L3 h2@W3 [T,64]x[64,2]": ((G, T, 64), (G, 64, 2), False, False),
    "bwd dh2 dout@W3^T [T,2]x[2,64]": ((G, T, 2), (G, 64, 2), False, True),
    "bwd dh1 dh2@W2^T [T,64]x[64,128]": ((G, T, 64), (G, 128, 64), False, True),
    "bwd dW3 h2^T@dout [64,T]x[T,2]": ((G, T, 64), (G, T, 2), True, False),
    "bwd dW2 h1^T@dh2 [128,T]x[T,64]": ((G, T, 128), (G, T, 64), True, False),
    "bwd dW1 x^T@dh1 [18,T]x[T,128]": ((G, T, 18), (G, T, 128), True, False),
    "sum b3 dout^T@ones [2,T]x[T,16]": ((G, T, 2), (G, T, 16), True, False),
}


def seconds(a: torch.Tensor, b: torch.Tensor, calls: int = 300) -> float:
    for _ in range(20):
        torch.bmm(a, b)
    start = time.perf_counter()
    for _ in range(calls):
        torch.bmm(a, b)
    return (time.perf_counter() - start) / calls


total = 0.0
for name, (sa, sb, ta, tb) in CASES.items():
    a, b = torch.randn(sa), torch.randn(sb)
    s = seconds(a.transpose(1, 2) if ta else a, b.transpose(1, 2) if tb else b)
    total += s
    print(f"{name:<36} {s * 1e6:7.1f} us")
print(f"total {total * 1e6:.0f} us a step")
