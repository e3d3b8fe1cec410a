"""What several commands share: the command line as a manifest records it, the private seed
option, and running an experiment's plan behind one progress display (runs done of total, time
left) that stops cleanly on Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from asfed.cli.app import console
from asfed.errors import AsfedError

if TYPE_CHECKING:
    from asfed.experiments.plan import Sweep
    from asfed.experiments.runner import Outcome, Status


def command_line() -> str:
    """This command line as the manifest records it, with any private seed's value left out."""
    args, hide = [], False
    for arg in sys.argv[1:]:
        if hide:
            args.append("<private>")
            hide = False
        elif arg == "--private-seed":
            args.append(arg)
            hide = True
        elif arg.startswith("--private-seed="):
            args.append("--private-seed=<private>")
        else:
            args.append(arg)
    return "asfed " + " ".join(args)


def private_seed(given: str | None, scenario: str | None) -> int | None:
    """--private-seed as an integer (a 128-bit one does not fit an int option), else the
    scenario's; one clear error for anything else."""
    from asfed.config import private_seed_of
    from asfed.dealer import check_private_seed

    if given is None:
        return private_seed_of(scenario)
    text = given.strip()
    if not (text.isascii() and text.isdigit()):
        raise AsfedError(f"--private-seed={given!r} is invalid; accepted: an integer 0..2**128-1")
    return check_private_seed(int(text))


def workers_or_cores(workers: int | None) -> int:
    """--workers, checked, or every core."""
    import os

    cores = workers if workers is not None else os.cpu_count() or 1
    if cores < 1:
        raise AsfedError(f"workers={workers} is invalid; accepted: an integer >= 1")
    return cores


def check_seeds(seeds: int) -> list[int]:
    """--seeds N as the seeds 1..N."""
    if seeds < 1:
        raise AsfedError(f"seeds={seeds} is invalid; accepted: an integer >= 1")
    return list(range(1, seeds + 1))


def method_list(text: str) -> list[str]:
    """`as, vs` -> ["as", "vs"]."""
    return [m.strip() for m in text.split(",") if m.strip()]


def run_plan(
    plan: Sweep,
    folder: Path,
    workers: int,
    ray_address: str | None = None,
    secret_seed: int | None = None,
    device: str = "cpu",
    on_run_done: Callable[[], None] | None = None,
) -> Outcome:
    """Train a plan with the experiments' runner behind a progress bar (rounds, runs done of
    total, time left). Ctrl-C or SIGTERM stops the workers and exits 130 or 143, finished rounds
    kept; a failed run is in the outcome (`exit_if_failed`), after the others finished.
    `on_run_done` is called in this process, which holds the sweep's folder, each time more
    runs have finished (a trade-off archives them then, not only at the end)."""
    from asfed.experiments.manifest import check_folder
    from asfed.experiments.runner import run_sweep

    check_folder(plan, folder)  # a refused folder fails here, before the progress bar shows
    columns = (
        TextColumn("rounds"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[runs]} runs done  {task.fields[note]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("sweep", total=None, runs="-", note="")
        seen = [0]
        log = None if console.is_terminal else ProgressLog()

        def show(s) -> None:
            runs = f"{s.runs_done}/{s.runs_total}"
            bar.update(task, completed=s.rounds_done, total=s.rounds_total, runs=runs, note=s.note)
            if log is not None and (line := log.line(s)):
                console.print(line, highlight=False)
            if on_run_done is not None and s.runs_done > seen[0]:
                seen[0] = s.runs_done
                on_run_done()

        try:
            with sigterm_interrupts():
                done = run_sweep(
                    plan, folder, workers, ray_address, show, command_line(), secret_seed, device
                )
        except KeyboardInterrupt as stop:
            console.print("interrupted: finished rounds are kept; the same command continues")
            sys.exit(143 if isinstance(stop, Terminated) else 130)  # 128 + the signal
    return done


class ProgressLog:
    """A sweep's progress as plain lines, for a console that is not a terminal (a `nohup` log,
    where rich's bar draws nothing until the end): a line when more runs have finished, and
    at least every `every` seconds, with the rounds' rate this sitting and the time left at
    that rate; a failed run's error at once (else it shows only when the whole sweep ends)."""

    def __init__(self, every: float = 600.0, clock: Callable[[], float] | None = None) -> None:
        import time

        self.every = every
        self.clock = clock or time.monotonic
        self.start: tuple[float, int] | None = None  # (time, rounds done) at the first status
        self.last: tuple[float, int] = (-math.inf, -1)  # (time, runs done) at the last line

    def line(self, s: Status) -> str | None:
        """The line to print for status `s`, or None (nothing new and not yet `every`)."""
        from asfed.report.results import duration

        now = self.clock()
        if self.start is None:
            self.start = (now, s.rounds_done)
        failed = s.note.startswith("failed")  # a failure does not count as a run done
        if s.runs_done == self.last[1] and now - self.last[0] < self.every and not failed:
            return None
        self.last = (now, s.runs_done)
        elapsed, trained = now - self.start[0], s.rounds_done - self.start[1]
        left = ""
        if trained > 0 and elapsed > 0:
            rate = trained / elapsed
            rest = duration((s.rounds_total - s.rounds_done) / rate)
            left = f", {rate * 60:.1f} rounds/min, about {rest} left"
        note = f" ({s.note})" if s.note else ""
        error = f"\n  {s.error}" if s.error else ""  # why, at once: not only when the grid ends
        return (
            f"progress: {s.runs_done}/{s.runs_total} runs done, rounds "
            f"{s.rounds_done}/{s.rounds_total}{left}{note}{error}"
        )


def exit_if_failed(done: Outcome, complete: bool = False) -> None:
    """Name the runs that diverged (a result: kept, not retrained), then list the runs that
    failed, on stderr, and exit 1 (the others are kept). With `complete` (an audit, which
    needs every run's rounds) a diverged run fails too."""
    for name, where in done.diverged.items():
        console.print(
            f"[yellow]diverged:[/] {name} {where} (its result, kept; to train it again delete "
            f"{done.folder / name}, and its file in the --archive if it was archived)",
            highlight=False,
            soft_wrap=True,
        )
    if complete and done.diverged:
        failed = {
            **done.failed,
            **{n: "diverged: an audit needs every round" for n in done.diverged},
        }
        done = dataclasses.replace(done, failed=failed)
    if not done.failed:
        return
    err = Console(stderr=True)
    for name, message in done.failed.items():
        err.print(f"[bold red]failed:[/] {name}: {message}", highlight=False, soft_wrap=True)
    err.print("fix the cause and run the same command: finished runs are kept")
    sys.exit(1)


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: handled as Ctrl-C is, but the exit code says which (143, not 130)."""


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM acts as Ctrl-C while a plan runs: batch schedulers (SLURM, Kubernetes) and
    `kill` send it, and the runner must still stop its workers and record the session in its
    manifest. Only in the main thread, where Python allows handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise Terminated

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:  # a handler installed from C reads as None: restore the default then
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)


def progress_columns(what: str) -> tuple:
    """A progress bar's columns: what, the bar, done of total, time left."""
    return (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())


def print_estimate(plan: Sweep, workers: int) -> None:
    """`--estimate`: one timed round per distinct setting of a plan, then the plan's cost."""
    from asfed.experiments.budget import Cost, estimate, settings, wall_seconds
    from asfed.report.results import duration

    console.print(f"timing one round of each of {len(settings(plan))} setting(s), one thread")

    def show(c: Cost) -> None:
        console.print(
            f"  {c.setting}: {c.seconds_per_round:.2f} s a round x {c.rounds} rounds "
            f"({c.runs} runs) = {duration(c.seconds)}"
        )

    costs = estimate(plan, on_cost=show)
    total = sum(c.seconds for c in costs)
    console.print(
        f"[bold]{plan.scenario}[/]: {len(plan.points)} runs, {duration(total)} of training on "
        f"one process; about {duration(wall_seconds(costs, workers))} on {workers} process(es)"
    )
