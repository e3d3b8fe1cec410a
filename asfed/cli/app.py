"""The Typer app and the console every command prints to; the commands register themselves on
`app` from their own modules (`asfed.cli`)."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    help="Anticipation Sharing and its baselines for reward-private cooperative MARL.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@app.callback()
def _root() -> None:
    """Simulate, audit and trade off privacy in reward-private cooperative MARL.

    Start with `asfed list` to see the environments.
    """
