"""`actions-only`: both questions answered from the public record alone (the victim's observed
actions, behavioural cloning in the same model family as the message attacks).

Every audit runs it beside each attack: leakage due to the messages is the attack's score minus
this baseline's. Registered as an attack of its own so that it is listed (`asfed list`) by name.
"""

from __future__ import annotations

from typing import Any

from attacks import reward_inversion, reward_type
from attacks.registry import ATTACKS, Attack
from attacks.view import AttackerView


@ATTACKS.register("actions-only")
class ActionsOnly(Attack):
    """Reward type and reward from the victim's public actions alone."""

    name = "actions-only"

    def run(self, view: AttackerView) -> dict[str, Any]:
        return {
            "reward-type": reward_type.from_actions(view),
            "reward-inversion": reward_inversion.from_actions(view),
        }

    def baseline(self, view: AttackerView) -> dict[str, Any]:
        return self.run(view)
