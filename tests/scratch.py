"""A fresh folder for agents' private storage where a test has no tmp_path at hand."""

from __future__ import annotations

import tempfile
from pathlib import Path


def scratch() -> Path:
    """A new empty folder (under the system's temporary folder)."""
    return Path(tempfile.mkdtemp(prefix="asfed-agents-"))
