"""Inference attacks: pure functions from a slice of the message log (plus the public trajectory)
to estimates of an agent's private facts. Attacks never read an agent's internals: that is the
threat model of DESIGN.md section 5, kept in code."""
