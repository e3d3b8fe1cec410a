"""The attack registry: every attack by name (`asfed list` prints them)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from asfed.registry import Registry
from attacks.view import AttackerView

ATTACKS: Registry[type] = Registry("attack")


class Attack(ABC):
    """An attack is a pure function of an attacker's view (`run`), with the actions-only
    baseline that answers the same question from the public record alone (`baseline`)."""

    name: str

    @abstractmethod
    def run(self, view: AttackerView) -> Any:
        """The attack's estimate from the messages (or `NoEvidence`)."""

    @abstractmethod
    def baseline(self, view: AttackerView) -> Any:
        """The same question answered from the public record alone."""
