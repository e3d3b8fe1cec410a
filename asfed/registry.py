"""One small registry pattern for everything chosen by name (envs, methods, topologies, attacks).

Names map to objects through `@registry.register("name")`; an unknown name raises an `AsfedError`
that lists what is registered, and registering a name twice raises, so no `if/elif` on names is
ever needed and no name silently shadows another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from asfed.errors import AsfedError, accepted

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object mapping for one kind of thing (e.g. "env")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers its target under `name`."""

        def decorate(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        """The object registered as `name`, or a clear error listing the accepted names."""
        try:
            return self._items[name]
        except KeyError:
            raise AsfedError(
                f"unknown {self.kind} {name!r}; accepted: {accepted(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)
