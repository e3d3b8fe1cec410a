"""Experiments: grids of runs with a post-step. A sweep, a trade-off and an audit's training are
all a plan (`plan`) trained by one runner (`runner`: a process pool or Ray, one resume, one
progress report) under one manifest (`manifest`), each run then finished by its post-run steps
(`observers`: nothing, the anticipation metrics, or a trade-off point's audit). `budget`
estimates a plan's cost before it runs.

Layering: this package sits above the engine (it trains) and above `audits` (whose measurements
are post-run steps); nothing below imports it.
"""
