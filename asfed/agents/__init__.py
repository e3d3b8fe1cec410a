"""Learners: networks, the PPO core shared by every method, and one module per method.

Nothing here imports Flower or the CLI: the maths is testable alone.
"""
