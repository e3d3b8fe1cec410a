"""The `asfed` command line (Typer). Each command is a thin shell over the library.

An `AsfedError` (bad user input) becomes one line on stderr and exit code 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import click
import typer
from rich.console import Console
from rich.table import Table

from asfed.envs import ENVS, make_vec_env, names, options_of
from asfed.errors import AsfedError

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


@app.command("list")
def list_envs() -> None:
    """List the registered environments: agents (default and range), actions, horizon, options."""
    table = Table(title="asfed environments")
    for col in ("env", "agents (default, range)", "actions", "horizon", "obs dim", "options"):
        table.add_column(col)
    for name in names():
        cls = ENVS.get(name)
        env = make_vec_env(name, 1, seed=0)
        lo, hi = cls.agents_range
        table.add_row(
            name,
            f"{cls.default_agents} ({lo}-{hi})",
            ", ".join(env.action_names),
            str(env.horizon),
            str(env.obs_dim),
            ", ".join(options_of(name)),
        )
    console.print(table)


def main() -> None:
    """Entry point: run the app, turning user errors into one clear line and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except AsfedError as err:
        Console(stderr=True).print(f"[bold red]error:[/] {err}", highlight=False)
        sys.exit(2)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
