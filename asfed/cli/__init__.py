"""The `asfed` command line (Typer): one module per command, each a thin shell over the library.

An `AsfedError` (bad user input) becomes one line on stderr and exit code 2; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import click
from rich.console import Console

from asfed.cli import audit, listing, report, simulate, sweep, tradeoff  # noqa: F401 (commands)
from asfed.cli.app import app
from asfed.errors import AsfedError

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: run the app, turning user errors into one clear line and exit code 2."""
    try:
        code = app(standalone_mode=False)
    except AsfedError as err:
        Console(stderr=True).print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as err:  # the environment's faults: a full disk, an unwritable place
        what = err.strerror or str(err)
        where = f": {err.filename}" if err.filename else ""
        Console(stderr=True).print(f"[bold red]error:[/] {what}{where}", highlight=False)
        sys.exit(2)
    except RuntimeError as err:
        if type(err).__name__ != "ClientFailure":  # avoid importing flwr for every command
            raise
        notes = "".join(f"\n{n}" for n in getattr(err, "__notes__", []))
        Console(stderr=True).print(
            f"[bold red]error:[/] {err}{notes}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
