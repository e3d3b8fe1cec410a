"""The README and docs/ hold together: every relative link resolves (to a file, and to a heading
where it names one), and every `asfed` command in a fenced block parses against today's CLI
(its options exist and take the values given), and each command's --help exits 0."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer.main
from typer.testing import CliRunner

from asfed.cli import app
from asfed.config import scenario_names

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "scenarios/README.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    fenced, out = False, set()
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            out.add(_slug(line.lstrip("#")))
    return out


def _fenced_commands(page: Path) -> list[str]:
    """Each `asfed ...` command in the page's fenced blocks (continuations joined, comments cut,
    `a && b` split)."""
    commands, fenced, shell, block = [], False, False, []
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            if fenced and shell:
                text = "\n".join(block).replace("\\\n", " ")
                for cmd in text.splitlines():
                    for part in cmd.split("&&"):
                        if part.strip().startswith("asfed "):
                            commands.append(part.strip())
            block, fenced = [], not fenced
            shell = line[3:].strip() in ("bash", "sh", "shell", "console", "")
        elif fenced:
            block.append(line)
    return commands


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # an external URL: not checked offline
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{target} (no such heading)")
    assert broken == []


def test_the_link_check_finds_a_broken_link(tmp_path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Top\n[ok](page.md#top) [gone](missing.md) [bad](page.md#nowhere)\n")
    found = [t for t in LINK.findall(page.read_text())]
    assert found == ["page.md#top", "missing.md", "page.md#nowhere"]
    assert "top" in _anchors(page) and "nowhere" not in _anchors(page)


COMMANDS = sorted({c for page in PAGES for c in _fenced_commands(page)})


def test_the_docs_show_every_command() -> None:
    shown = {shlex.split(c, comments=True)[1] for c in COMMANDS}
    assert {"simulate", "audit", "tradeoff", "sweep", "report"} <= shown


@pytest.mark.parametrize("command", COMMANDS)
def test_every_documented_command_parses(command: str) -> None:
    group = typer.main.get_command(app)
    words = shlex.split(command, comments=True)[1:]
    name, args = words[0], words[1:]
    sub = group.get_command(click.Context(group), name)
    assert sub is not None, f"no command {name!r}"
    if "--help" in args:
        return
    with sub.make_context(name, args, resilient_parsing=False) as ctx:
        assert ctx.params  # parsed: every option exists and took its value
    scenario = ctx.params.get("scenario")
    if scenario and not scenario.endswith(".toml"):
        assert scenario in scenario_names(), f"no scenario {scenario!r}"


@pytest.mark.parametrize("name", ["list", "simulate", "audit", "tradeoff", "sweep", "report"])
def test_every_command_has_help(name: str) -> None:
    res = CliRunner().invoke(app, [name, "--help"])
    assert res.exit_code == 0, res.output
