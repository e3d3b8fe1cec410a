"""The command-line options that mirror `RunConfig`, built from its one declaration (each
field's type, default and help, `asfed.config._key`), so a new config key needs no CLI edit.

`with_config_options(command)` gives `command` one `--<field>` option per field (None: not
given, the scenario's or the paper's default applies) ahead of its own options; the command
receives them as keyword arguments named as the fields.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from asfed.config import RunConfig


def config_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per RunConfig field: `Annotated[T | None, typer.Option(help)]`."""
    hints = typing.get_type_hints(RunConfig)
    params = []
    for field in dataclasses.fields(RunConfig):
        kind = hints[field.name]
        optional = kind if type(None) in typing.get_args(kind) else kind | None
        option = typer.Option(help=field.metadata["help"])
        params.append(
            inspect.Parameter(
                field.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[optional, option],
            )
        )
    return params


def with_config_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command(**own, **config)` with the config's options first, as Typer reads signatures."""
    own = list(inspect.signature(command, eval_str=True).parameters.values())
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p.kind != p.VAR_KEYWORD]
    command.__signature__ = inspect.Signature(config_parameters() + own)  # type: ignore[attr-defined]
    return command
