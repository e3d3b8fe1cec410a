"""Child interpreters resolve imports as their parent does, whatever folder they start in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import asfed
from asfed.interpreters import asfed_source, module_argv


def test_a_child_runs_the_module_with_its_arguments_past_a_decoy_in_its_folder(tmp_path) -> None:
    """`python -m json.tool` started here would import the folder's json package first."""
    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "__init__.py").write_text("raise ImportError('the decoy json')\n")
    data = tmp_path / "data.json"
    data.write_text('{"b": [1, 2]}')
    done = subprocess.run(
        module_argv("json.tool", "--compact", str(data)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '{"b":[1,2]}'


def test_a_childs_sys_path_is_its_parents(tmp_path, monkeypatch) -> None:
    """A probe module, found only on a folder this process put on its sys.path, prints the
    child's sys.path: this process's, every entry absolute, whatever the child's folder."""
    probes = tmp_path / "probes"
    probes.mkdir()
    (probes / "path_probe.py").write_text("import json, sys\nprint(json.dumps(sys.path))\n")
    monkeypatch.syspath_prepend(str(probes))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        module_argv("path_probe"), cwd=elsewhere, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [os.path.abspath(str(p)) for p in sys.path]


def test_asfed_source_is_the_imported_package() -> None:
    assert asfed_source() == str(Path(asfed.__file__).resolve().parent)
