"""Learners: networks, the PPO core shared by every method, and one module per method.

Nothing here imports Flower or the CLI: the maths is testable alone.
"""

from asfed.agents import as_, cppo, ippo, ps, vps, vs  # noqa: F401 (register the methods)
