"""Post-run steps: what an experiment computes from a finished run folder, beside training
(Fig. 7's anticipation metrics, a trade-off point's audit). Each writes one file into the run
folder, and a run is finished only once its files exist, so an interrupted step is redone."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asfed.registry import Registry


@dataclasses.dataclass(frozen=True)
class Observer:
    """A post-run step: `write(run folder)` writes `file` into the run folder."""

    write: Callable[[Path], Any]
    file: str


def _anticipation(path: Path) -> Any:
    from audits import anticipation

    return anticipation.write_csv(path)


def _tradeoff_point(path: Path) -> Any:
    from asfed.experiments.tradeoff import write_point

    return write_point(path)


OBSERVERS: Registry[Observer] = Registry("observer")
# The files the steps write (audits.anticipation.CSV; the trade-off reads its own back).
ANTICIPATION_FILE, TRADEOFF_POINT_FILE = "anticipation.csv", "tradeoff_point.json"
OBSERVERS.register("anticipation")(Observer(_anticipation, ANTICIPATION_FILE))
OBSERVERS.register("tradeoff-audit")(Observer(_tradeoff_point, TRADEOFF_POINT_FILE))
