"""Child Python interpreters that import the very code this process imports.

`python -m asfed.X` puts the child's working directory first on its sys.path, so a child started
from a folder holding another asfed (a second checkout, an older commit) runs that asfed's code
beside this process's, silently: a benchmark of an earlier commit, started from today's checkout,
timed the earlier world with today's workers this way. A child started by `module_argv` ignores
its working directory (`-P`) and takes this process's sys.path before it imports anything of
ours, so it resolves every import as this process does.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

# Run in the child by `python -P -c`: argv[1] this process's sys.path (JSON), argv[2] the module.
_BOOT = (
    "import json, runpy, sys; sys.path[:] = json.loads(sys.argv.pop(1)); "
    "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)"
)


def module_argv(module: str, *args: str) -> list[str]:
    """The argv that runs `module` as `python -m module args...` would (the same sys.argv[1:] in
    the child), in this interpreter, on this process's sys.path (every entry made absolute
    now, '' as this process's working directory), not on one the child's working directory
    prepends."""
    path = [os.path.abspath(str(p)) for p in sys.path]
    return [sys.executable, "-P", "-c", _BOOT, json.dumps(path), module, *args]


def asfed_source() -> str:
    """Where this process's asfed package was imported from (its folder, resolved): what a child
    reports so its parent can refuse one that runs other code."""
    return str(Path(__file__).resolve().parent)  # this module is asfed's own
