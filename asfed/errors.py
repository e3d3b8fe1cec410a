"""Errors a user can cause, each naming the bad value and what is accepted.

The CLI turns an `AsfedError` into one line on stderr and a non-zero exit; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class AsfedError(ValueError):
    """Bad input from a user: an unknown name, an out-of-range option, a malformed action."""


def accepted(values: object) -> str:
    """Format the accepted values of an option for an error message."""
    if isinstance(values, (list, tuple, set, frozenset, dict)):
        return ", ".join(str(v) for v in sorted(values, key=str))
    return str(values)
