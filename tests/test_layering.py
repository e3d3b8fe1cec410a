"""The layering docs/architecture.md draws, checked on the source.

Packages form layers; a module imports only from its own layer or below, so the maths (envs,
agents, comm) knows no runtime, the engine knows no experiment, `audits` never trains and
`attacks` sees only the attacker's view. Only the Flower engine imports flwr.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLWR = re.compile(r"^\s*(from|import)\s+flwr\b", re.M)

# Lowest first. A module may import from its own layer and the layers below it.
LAYERS = [
    ("foundation", ["asfed.errors", "asfed.atomic", "asfed.registry", "asfed.csvfile",
                    "asfed.folders", "asfed.lifetime", "asfed.interpreters", "asfed.intervals",
                    "asfed.plots", "asfed.dealer"]),
    ("maths", ["asfed.envs", "asfed.comm", "asfed.agents"]),
    ("config", ["asfed", "asfed.config", "asfed.runs"]),
    ("engine", ["asfed.engine"]),
    ("attacks", ["attacks"]),
    ("audits", ["audits"]),
    ("experiments", ["asfed.experiments"]),
    ("report", ["asfed.report"]),
    ("cli", ["asfed.cli"]),
]  # fmt: skip


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every absolute import in a file, at any depth (lazy imports count)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _layer(module: str) -> int | None:
    """The layer of a module of ours (the longest matching prefix), None for others."""
    best, depth = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and p.count(".") > depth:
                best, depth = i, p.count(".")
    return best


def sources(*parts: str) -> list[Path]:
    return sorted(ROOT.joinpath(*parts).rglob("*.py"))


def ours() -> list[Path]:
    return sources("asfed") + sources("attacks") + sources("audits")


def test_every_module_is_in_a_layer() -> None:
    assert [str(p) for p in ours() if _layer(_module(p)) is None] == []


def test_no_import_reaches_up_a_layer() -> None:
    upward = []
    for path in ours():
        here = _layer(_module(path))
        for target in _imports(path):
            there = _layer(target)
            if there is not None and there > here:
                upward.append(f"{_module(path)} ({LAYERS[here][0]}) -> {target}")
    assert upward == []


def test_the_layer_check_catches_an_upward_import() -> None:
    # the rule itself: an env importing the engine, or audits the runner, reads as upward
    assert _layer("asfed.envs.exchange") < _layer("asfed.engine.driver")
    assert _layer("audits.audit") < _layer("asfed.experiments.runner")
    assert _layer("asfed.experiments.runner") < _layer("asfed.cli.sweep")
    assert _layer("asfed.report.page") > _layer("asfed.experiments.manifest")


def test_audits_never_train() -> None:
    """audits/ measures finished runs: no engine, no experiment, no optimiser step."""
    offenders = []
    for path in sources("audits"):
        text = path.read_text()
        for target in _imports(path):
            if target.startswith(("asfed.engine", "asfed.experiments")):
                offenders.append(f"{path.name} imports {target}")
        if re.search(r"\.backward\(|\boptim\.|\.step\(\)", text):
            offenders.append(f"{path.name} steps an optimiser")
    assert offenders == []


def test_attacks_see_only_the_attackers_view() -> None:
    """An attack reads what the attacker received and the public record (attacks.view), never
    a secret: no dealer, no engine (its scorer holds the weights), no ground truth, no agent's
    private storage."""
    offenders = []
    for path in sources("attacks"):
        for target in _imports(path):
            if target.startswith(("asfed.dealer", "asfed.engine", "asfed.runs", "audits")):
                offenders.append(f"{path.name} imports {target}")
        if re.search(r"ground_truth|secret\.json|private_seed|agents/agent_", path.read_text()):
            offenders.append(f"{path.name} names a secret's file")
    assert offenders == []


def test_only_the_flower_engine_imports_flwr() -> None:
    flower = ROOT / "asfed" / "engine" / "flower"
    offenders = [
        str(p.relative_to(ROOT))
        for p in ours()
        if flower not in p.parents and FLWR.search(p.read_text())
    ]
    assert offenders == []
    assert any(FLWR.search(p.read_text()) for p in flower.rglob("*.py"))


def test_no_two_modules_share_a_name_across_packages_unless_one_concept() -> None:
    """A reader guesses what a file holds from its name: a stem in two packages must be the
    same concept: a package's registry or base class, a command and what it runs, the Flower
    federation and the interface it implements."""
    same_concept = {"__init__", "registry", "base", "federation", "audit", "tradeoff"}
    seen: dict[str, list[str]] = {}
    for path in ours():
        seen.setdefault(path.stem, []).append(str(path.relative_to(ROOT)))
    clashes = {k: v for k, v in seen.items() if len(v) > 1 and k not in same_concept}
    assert clashes == {}
