"""One thread per process for torch and for numpy's BLAS and OpenMP pools.

asfed parallelises by process (a run per worker, an agent per client), so a second library thread
only contends for a core another process holds. Measured on the 2-core machine with two training
processes beside an audit: numpy's OpenBLAS, left at its default of one thread per core, spent
9.5 s in vector products that took 1.0 s single-threaded, and one victim's reward inversion took
84 s instead of 57 s. The thread count does not change a run's numbers (checked byte for byte on
exchange and navigation with DP noise).
"""

from __future__ import annotations


def one_thread() -> None:
    """Limit torch and every BLAS/OpenMP pool loaded in this process to one thread (libraries
    loaded later keep their defaults: call it after importing numpy and torch)."""
    import threadpoolctl
    import torch

    torch.set_num_threads(1)
    threadpoolctl.threadpool_limits(1)
