"""Leakage measurement: scoring attacks against ground truth with confidence intervals and chance
and actions-only baselines, DP accounting, and privacy/return trade-off sweeps."""
