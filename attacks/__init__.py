"""Inference attacks: pure functions of an attacker's view (the messages it received and the
public record) to estimates of an agent's private reward. Attacks never read an agent's
internals, ground truth, checkpoints or metrics: that is the threat model of DESIGN.md
section 5, kept in code (`attacks.view.AttackerView` holds nothing else)."""

from attacks import actions_only, reward_inversion, reward_type, update  # noqa: F401  (registration)
from attacks.registry import ATTACKS, Attack

__all__ = ["ATTACKS", "Attack"]
