"""A fresh folder for agents' private storage where a test has no tmp_path at hand; removed when
the test session ends, so the suite leaves nothing in the system's temporary folder."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch() -> Path:
    """A new empty folder (under the system's temporary folder), removed at exit."""
    path = Path(tempfile.mkdtemp(prefix="asfed-agents-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
