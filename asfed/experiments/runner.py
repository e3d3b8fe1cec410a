"""The one runner of experiments: every run of a plan (`asfed.experiments.plan`) that is not
finished is trained, in this process, a process pool or on a Ray cluster, then its post-run steps
(`asfed.experiments.observers`) write their files. Sweeps, trade-offs and an audit's training all
run here, so they share one lifetime rule (a worker dies with the sweep's process), one resume,
one progress report (`Status`) and one manifest (`asfed.experiments.manifest`).

Running the same plan again continues it: finished runs (all their rounds in `metrics.csv`, and
their observed files written) are never redone, interrupted ones resume from their last
checkpoint (the same numbers as an uninterrupted run), and more rounds extend them.

A run whose training diverges (a loss turned NaN or infinite: `asfed.agents.base.Diverged`) has
a result, not a fault: where it diverged is written to `diverged.json` in its folder, the run
counts as finished (running the plan again does not train it into the same divergence), and the
outcome lists it apart (`Outcome.diverged`). A learning rate too large, or DP noise mixed into
shared parameters, diverges from the same seed every time; delete the folder to train it again.

Runs use the local engine (the Flower engine gives the same numbers and message log, tested, but
starts Ray per run), one torch thread each. `workers = 1` trains in this process, one run after
another; more workers use a process pool over the cores; `ray_address` sends each run as a Ray
task (`"local"` starts a local instance; a cluster needs asfed installed on every node). Ray
tasks train in place when their node sees the sweep folder (a shared filesystem), else in a
temporary folder whose contents come back to the driver when the run ends.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import io
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asfed.config import RunConfig
from asfed.csvfile import checked_rows
from asfed.errors import AsfedError
from asfed.experiments.manifest import MANIFEST, check_folder, plan_manifest, write_manifest
from asfed.experiments.observers import OBSERVERS
from asfed.experiments.plan import Point, Sweep
from asfed.folders import FolderLock, make_folder
from asfed.lifetime import guard_descendants
from asfed.runs import diverged

OnRound = Callable[[dict[str, Any]], None]


@dataclasses.dataclass
class Status:
    """Where a sweep stands, for a progress display."""

    rounds_done: int
    rounds_total: int
    runs_done: int
    runs_total: int
    note: str = ""
    error: str = ""  # a failed run's error, for a log to show at once (the bar shows the note)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A finished sweep: its folder, the runs trained now, reused, and failed (name -> error);
    diverged: the plan's runs whose training diverged (name -> where), trained now or before."""

    folder: Path
    trained: tuple[str, ...]
    reused: tuple[str, ...]
    failed: dict[str, str]
    diverged: dict[str, str] = dataclasses.field(default_factory=dict)


# ---- one run ----------------------------------------------------------------------------------


def rounds_done(path: Path) -> int:
    """Rounds in a run folder's metrics.csv (0 if none), counted without parsing it."""
    try:
        with open(Path(path) / "metrics.csv", "rb") as f:
            return max(0, f.read().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def diverged_before(path: Path, rounds: int) -> dict[str, Any] | None:
    """The run's divergence record (`asfed.runs.diverged`) if it diverged before `rounds`: a
    run that diverged after more rounds than a plan asks has finished that plan's rounds."""
    where = diverged(path)
    return where if where is not None and where["rounds"] < rounds else None


def finished(path: Path, cfg: RunConfig, observe: tuple[str, ...]) -> bool:
    """Whether a run folder holds all its rounds, whole, and its observed metrics (a damaged
    metrics.csv is not finished: the run's resume repairs a tail or refuses the damage), or whose
    training diverged (`DIVERGED`: that is its result)."""
    if diverged_before(path, cfg.rounds) is not None:
        return True
    if rounds_done(path) < cfg.rounds:
        return False
    rows, damaged = checked_rows(Path(path) / "metrics.csv")
    if damaged or len(rows) < cfg.rounds:
        return False
    return all((Path(path) / OBSERVERS.get(name).file).exists() for name in observe)


def train_run(
    cfg: RunConfig,
    path: Path,
    observe: tuple[str, ...] = (),
    on_round: OnRound | None = None,
    private_seed: int | None = None,
    device: str = "cpu",
) -> float:
    """Train one run to its rounds (resuming what is on disk), then write its observed metrics;
    returns the seconds it took. Runs in a worker process (or in this one, with one worker).
    private_seed: a new run's secrets' seed (None: fresh entropy; a resumed run keeps its own).
    device: where its learners compute (cpu, cuda, cuda:N; the numbers need not match cpu's)."""
    from asfed.agents.base import Diverged
    from asfed.allocator import keep_freed_memory
    from asfed.engine.driver import resume, start, train
    from asfed.runs import CONFIG
    from asfed.threads import one_thread

    began = time.perf_counter()
    one_thread()
    keep_freed_memory()
    path = Path(path)
    if rounds_done(path) < cfg.rounds:
        if (path / CONFIG).exists():
            sim, run, rows = resume(path, cfg.rounds, device=device)
        else:
            sim, run, rows = start(cfg, path, device=device, private_seed=private_seed)
        for name in OBSERVERS.names():  # results of fewer rounds: stale until written again
            (path / OBSERVERS.get(name).file).unlink(missing_ok=True)
        try:
            train(sim, run, rows, on_round)
        except Diverged:  # a result (the module's docstring): `train` recorded it
            return time.perf_counter() - began
        finally:
            getattr(sim, "close", lambda: None)()
    for name in observe:
        OBSERVERS.get(name).write(path)
    return time.perf_counter() - began


def _init_worker(parent: int | None = None) -> None:
    """A pool worker: one thread, and killed by the kernel if the sweep's process dies."""
    from asfed.lifetime import die_with_parent

    die_with_parent(parent)
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"


def _ray_task(
    cfg: RunConfig,
    path: str,
    observe: tuple[str, ...],
    sweep_id: str,
    private_seed: int | None = None,
    device: str = "cpu",
) -> tuple[float, bytes]:
    """A run as a Ray task: in place where this node sees the sweep folder (its manifest has
    this sweep's id), else in a temporary folder returned as a tar archive (b"": in place)."""
    folder = Path(path)
    try:
        in_place = json.loads((folder.parent / MANIFEST).read_text()).get("id") == sweep_id
    except (OSError, ValueError):
        in_place = False
    if in_place:
        return train_run(cfg, folder, observe, None, private_seed, device), b""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / folder.name
        seconds = train_run(cfg, run, observe, None, private_seed, device)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(run, arcname=folder.name)
        return seconds, buf.getvalue()


def _unpack(data: bytes, folder: Path) -> None:
    """A run shipped back by a Ray task, put in place whole (replacing any partial copy)."""
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".incoming-"))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(staging, filter="data")
        (name,) = [p.name for p in staging.iterdir()]
        target = folder / name
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ---- the sweep --------------------------------------------------------------------------------

Settle = Callable[[Point, float, BaseException | None], None]


def run_sweep(
    sweep: Sweep,
    folder: Path,
    workers: int = 1,
    ray_address: str | None = None,
    on_status: Callable[[Status], None] | None = None,
    command: str = "",
    private_seed: int | None = None,
    device: str = "cpu",
) -> Outcome:
    """Train every point that is not finished; see the module docstring. A run that fails does
    not stop the others; its error comes back in `Outcome.failed`. The manifest records the
    session (command, wall time) and each run's training time, also when interrupted.

    Secrets: every new run draws its own. With `private_seed`, run NAME's is
    `derive_private_seed(private_seed, NAME)`, and the sweep's seed is kept apart from the
    manifest, in `<folder>/ground_truth/`, as a run folder keeps its own (each run's own
    ground truth records its seed either way)."""

    if workers < 1:
        raise AsfedError(f"workers={workers} is invalid; accepted: an integer >= 1")
    folder = Path(folder)
    session = {
        "command": command or " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_seconds": None,  # unknown until it ends (a killed session keeps null)
        "workers": workers,
        "where": f"ray:{ray_address}" if ray_address is not None else "processes",
    }
    check_folder(sweep, folder)  # refuse a wrong folder before taking it
    make_folder(folder, "--out")
    lock = FolderLock(folder, "sweep").acquire()
    try:
        return _run_locked(
            sweep, folder, workers, ray_address, on_status, session, private_seed, device
        )
    finally:
        lock.release()


def _run_locked(
    sweep, folder, workers, ray_address, on_status, session, private_seed, device
) -> Outcome:
    from asfed.dealer import (
        PRIVATE_SEED,
        derive_private_seed,
        read_private_seed,
        write_private_seed,
    )

    truth = folder / "ground_truth"
    kept = read_private_seed(truth) if (truth / PRIVATE_SEED).exists() else None
    if private_seed is not None and kept is not None and kept != private_seed:
        raise AsfedError(
            f"{folder} was swept with another private seed ({truth / PRIVATE_SEED}); give "
            "the same one, or choose another --out"
        )
    manifest = plan_manifest(sweep, folder, session)
    if private_seed is not None:
        write_private_seed(truth, private_seed)
    began = time.perf_counter()
    paths = {p.name: folder / p.name for p in sweep.points}
    secret = {
        p.name: None if private_seed is None else derive_private_seed(private_seed, p.name)
        for p in sweep.points
    }
    how = {"device": device}  # each run's keyword arguments to train_run beyond its own
    todo = [p for p in sweep.points if not finished(paths[p.name], p.config, sweep.observe)]
    reused = tuple(p.name for p in sweep.points if p not in todo)
    total = sum(p.config.rounds for p in sweep.points)
    failed: dict[str, str] = {}
    seconds: dict[str, float] = {}
    done_runs = set(reused)
    last = [0.0]

    def status(note: str = "", error: str = "") -> None:
        if on_status is None or (not note and time.perf_counter() - last[0] < 0.5):
            return  # at most twice a second, unless something happened
        last[0] = time.perf_counter()
        rounds = sum(min(rounds_done(paths[p.name]), p.config.rounds) for p in sweep.points)
        on_status(Status(rounds, total, len(done_runs), len(sweep.points), note, error))

    before = {r["name"]: r.get("train_seconds", 0.0) for r in manifest["runs"]}

    def record() -> None:
        """The session so far into the manifest (atomically): written as each run ends and
        when the session ends, so a session killed outright keeps what had finished."""
        session["wall_seconds"] = round(time.perf_counter() - began, 1)
        session["trained"] = sorted(n for n in seconds if n not in failed)
        session["failed"] = sorted(failed)
        for run in manifest["runs"]:
            if run["name"] in seconds:
                run["train_seconds"] = round(before[run["name"]] + seconds[run["name"]], 1)
        write_manifest(folder, manifest)

    def settle(point: Point, took: float, error: BaseException | None) -> None:
        seconds[point.name] = seconds.get(point.name, 0.0) + took
        if error is None:
            done_runs.add(point.name)
            status(f"finished {point.name}")
        else:
            failed[point.name] = f"{type(error).__name__}: {error}"
            status(f"failed {point.name}", failed[point.name])
        record()

    status("starting")
    try:
        if ray_address is not None:
            _run_ray(
                todo,
                paths,
                secret,
                sweep.observe,
                manifest["id"],
                ray_address,
                workers,
                settle,
                how,
            )
        elif workers == 1:
            _run_inline(todo, paths, secret, sweep.observe, settle, status, how)
        else:
            _run_pool(todo, paths, secret, sweep.observe, workers, settle, status, how)
    finally:
        record()
    trained = tuple(p.name for p in todo if p.name not in failed)
    where = {
        p.name: diverged_before(paths[p.name], p.config.rounds)
        for p in sweep.points
        if p.name not in failed
    }
    gone = {name: f"after {r['rounds']} rounds: {r['error']}" for name, r in where.items() if r}
    return Outcome(folder, trained, reused, failed, gone)


def _run_inline(todo, paths, secret, observe, settle: Settle, status, how) -> None:
    for p in todo:
        began = time.perf_counter()
        try:
            train_run(p.config, paths[p.name], observe, lambda _m: status(), secret[p.name], **how)
        except Exception as err:  # the next run still trains; the error is reported
            settle(p, time.perf_counter() - began, err)
        else:
            settle(p, time.perf_counter() - began, None)


def _run_pool(todo, paths, secret, observe, workers: int, settle: Settle, status, how) -> None:
    ctx = multiprocessing.get_context("spawn")
    others = set(multiprocessing.active_children())  # a caller's own children are not ours
    pool = cf.ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),)
    )
    try:
        futures = {
            pool.submit(train_run, p.config, paths[p.name], observe, None, secret[p.name], **how): p
            for p in todo
        }
        submitted = time.perf_counter()
        pending = set(futures)
        while pending:
            ready, pending = cf.wait(pending, timeout=1.0, return_when=cf.FIRST_COMPLETED)
            for fut in ready:
                err = fut.exception()
                took = fut.result() if err is None else time.perf_counter() - submitted
                settle(futures[fut], took, err)
            status()
    except BaseException:
        # Interrupted (Ctrl-C, or a SIGTERM sent to this process alone, as `kill` does): stop
        # the runs in flight rather than wait for them to finish. Run files are written
        # atomically, so a killed run leaves no half-written file and the same command resumes
        # it from its last checkpoint.
        for child in set(multiprocessing.active_children()) - others:
            child.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_ray(
    todo, paths, secret, observe, sweep_id: str, address: str, workers: int, settle, how
) -> None:
    import logging
    import warnings

    import ray

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address == "local":
            options["num_cpus"] = workers
        sigterm = signal.getsignal(signal.SIGTERM)
        guard_descendants()  # Ray's own processes outlive a killed driver
        ray.init(address=address, logging_level=logging.WARNING, **options)
        if sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)  # ray.init installs its own sys.exit
    try:
        device = how["device"]
        if device == "auto":  # cuda where the cluster has GPUs (a task without one sees none)
            device = "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
        gpus = 1 if device.startswith("cuda") else 0  # a learner on cuda holds a node's GPU
        task = ray.remote(num_cpus=1, num_gpus=gpus)(_ray_task)
        refs = {
            task.remote(p.config, str(paths[p.name]), observe, sweep_id, secret[p.name], device): p
            for p in todo
        }
        submitted = time.perf_counter()
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in ready:
                point = refs[ref]
                try:
                    took, data = ray.get(ref)
                    if data:
                        _unpack(data, paths[point.name].parent)
                except Exception as err:  # a task's error names its run; the rest go on
                    settle(
                        point, time.perf_counter() - submitted, getattr(err, "cause", None) or err
                    )
                else:
                    settle(point, took, None)
    finally:
        ray.shutdown()
