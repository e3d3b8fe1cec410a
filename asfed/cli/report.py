"""`asfed report`: sweeps and runs drawn as one self-contained HTML page."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from asfed.cli.app import app, console
from asfed.errors import AsfedError


@app.command()
def report(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Sweep folders, run folders, or folders of runs (an audit's, a trade-off's)."
        ),
    ],
    out: Annotated[
        Path | None, typer.Option(help="The HTML file (default: report.html in the first folder).")
    ] = None,
    readme: Annotated[
        Path | None,
        typer.Option(
            help="Also rewrite the results section of this Markdown page (between its "
            "asfed-results markers; docs/results.md holds asfed's) from the sweep folders given."
        ),
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Also print the results section as Markdown.")
    ] = False,
    section: Annotated[
        str | None,
        typer.Option(
            help="With --readme: the named section to rewrite (between its "
            "asfed-results:NAME markers) instead of the page's main one."
        ),
    ] = None,
) -> None:
    """Draw sweeps and runs as one self-contained HTML page (plots inline, no network).

    Learning curves with 95% bands over seeds and reference lines (random policy, best scripted
    policy, all selfish), final team returns with CIs, bytes sent per round, Fig. 7's
    anticipation metrics, any audit or trade-off in the folders, and every run's config.

    \b
    asfed report runs/sweep_fig2-main
    asfed report runs/sweep_fig2-exchange --readme docs/results.md
    """
    from asfed.report.collect import collect
    from asfed.report.page import write
    from asfed.report.results import replace_section, results_markdown, write_readme

    if section is not None and readme is None:
        raise AsfedError("--section names a section of the --readme page; give --readme too")
    sources = collect(paths)
    if not any(s.runs or s.tradeoff is not None for s in sources):
        where = ", ".join(str(p) for p in paths)
        raise AsfedError(f"nothing to report: no run in {where} has completed a round")
    new_readme = text = None
    if readme is not None or markdown:
        text = results_markdown(sources, "asfed " + " ".join(sys.argv[1:]))
        if readme is not None:
            new_readme = replace_section(readme, text, section)  # checked before any write
    target = out or Path(paths[0]) / "report.html"
    with console.status("drawing the report..."):
        plots = write(sources, target)
    runs = sum(len(s.runs) for s in sources)
    console.print(f"wrote {target} ({plots} plots, {runs} runs, {len(sources)} section(s))")
    if markdown:
        print(text)
    if new_readme is not None:
        write_readme(readme, new_readme)
        console.print(f"rewrote the results section {section or '(main)'} of {readme}")
