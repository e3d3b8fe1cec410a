"""Sweeps: a grid of runs (scenario x methods x seeds x overrides), each a normal run folder under
one sweep folder with a manifest, trained in a process pool or on a Ray cluster.

A scenario (`scenarios/NAME.toml`) gives the base settings as flat `RunConfig` keys; its optional
`[sweep]` table gives the grid:

    [sweep]
    title = "Fig. 2: ..."           # what the experiment is (the report's heading)
    claim = "..."                   # what the paper says it shows (the report quotes it)
    methods = ["as", "vs"]          # default: the scenario's method
    seeds = 5                       # seeds 1..N (default 5)
    observe = ["anticipation"]      # post-run metrics written into each run folder
    cases = [{}, {rho = 0.0}]       # explicit override sets (default: one empty set), each
                                    # crossed with the grid
    [sweep.grid]                    # axes, crossed: key = [values]
    env = ["cleanup", "exchange"]
    [sweep.claims]                  # what the paper says, per "env/method", "method" or "env"
    "exchange/as" = "about 6"
    [sweep.expect]                  # the range a number in the paper implies (same keys)
    "exchange/as" = [5.0, 7.0]

`asfed sweep NAME --set key=v1,v2` makes `key` an axis with those values (replacing the
scenario's axis, case values or base value); `--methods` and `--seeds` replace the table's. Every
run's config is built and checked before anything runs, so a bad value writes nothing.

The sweep folder holds `sweep.json` (the manifest, `asfed.sweeps`: the scenario's text, every
run's name, point, resolved config and training time, and each session that ran it) and one run
folder per point,
named `<env>_<method>[_<key><value>...]_s<seed>` after the keys its grid and cases vary. Running
the same sweep again continues it: finished runs (all their rounds in `metrics.csv`, and their
observed metrics written) are never redone, interrupted ones resume from their last checkpoint
(the same numbers as an uninterrupted run), and more rounds extend them. A run folder whose config
differs from its point's (other than rounds and logging cadence) is refused, naming the keys.

Runs use the local engine (the Flower engine gives the same numbers and message log, tested, but
starts Ray per run), one torch thread each. `workers = 1` trains in this process, one run after
another; more workers use a process pool over the cores; `ray_address` sends each run as a Ray
task (`"local"` starts a local instance; a cluster needs asfed installed on every node). Ray
tasks train in place when their node sees the sweep folder (a shared filesystem), else in a
temporary folder whose contents come back to the driver when the run ends.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import io
import itertools
import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asfed.config import (
    FIELDS,
    KINDS,
    SCENARIO_DIR,
    SWEEP_TABLE,
    RunConfig,
    build_config,
    check_types,
    config_value,
    load_scenario,
    read_toml,
    scenario_names,
)
from asfed.csvfile import checked_rows
from asfed.errors import AsfedError, accepted
from asfed.folders import FolderLock, make_folder
from asfed.lifetime import guard_descendants
from asfed.registry import Registry
from asfed.sweeps import FORMAT, MANIFEST, read_manifest, write_manifest
from audits import anticipation

OnRound = Callable[[dict[str, Any]], None]

SWEEP_KEYS = (
    "title", "claim", "methods", "seeds", "observe", "cases", "grid", "claims", "expect",
)  # fmt: skip
# Keys no grid, case or --set may vary: seeds and methods have their own options, and sweeps
# run the local engine.
RESERVED = {"seed": "--seeds", "method": "--methods or [sweep] methods", "engine": "nothing"}
# Config keys that may differ between a run folder and its point: more rounds extend a run; the
# logging cadence and the engine do not change the numbers.
MAY_DIFFER = {"rounds", "log_every", "checkpoint_every", "engine"}


@dataclasses.dataclass(frozen=True)
class Observer:
    """A post-run metric: `write(run folder)` writes `file` into the run folder."""

    write: Callable[[Path], Any]
    file: str


OBSERVERS: Registry[Observer] = Registry("observer")
OBSERVERS.register("anticipation")(Observer(anticipation.write_csv, anticipation.CSV))


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of a sweep: its folder name, the keys its grid and case set (`point`), the config."""

    name: str
    point: dict[str, Any]
    config: RunConfig


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A scenario's grid, checked: every point's config is valid."""

    scenario: str
    scenario_path: Path
    scenario_text: str
    title: str
    claim: str
    claims: dict[str, str]
    expect: dict[str, tuple[float, float]]
    methods: tuple[str, ...]
    seeds: tuple[int, ...]
    observe: tuple[str, ...]
    points: tuple[Point, ...]
    sets: tuple[str, ...] = ()  # the --set changes to the scenario, as given


@dataclasses.dataclass
class Status:
    """Where a sweep stands, for a progress display."""

    rounds_done: int
    rounds_total: int
    runs_done: int
    runs_total: int
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """A finished sweep: its folder, the runs trained now, reused, and failed (name -> error)."""

    folder: Path
    trained: tuple[str, ...]
    reused: tuple[str, ...]
    failed: dict[str, str]


# ---- the grid ---------------------------------------------------------------------------------


def _scenario_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not path.exists():
            raise AsfedError(f"no such file: {path}")
        return path
    path = SCENARIO_DIR / f"{name_or_path}.toml"
    if not path.exists():
        raise AsfedError(
            f"unknown scenario {name_or_path!r}; accepted: {accepted(scenario_names())}"
        )
    return path


NAMES = {bool: "true or false", int: "an integer", float: "a number", type(None): "none"}


def parse_value(key: str, text: str) -> Any:
    """One `--set` value as `key`'s type (`none`: the paper's default, where the key has one)."""
    kinds = KINDS[key]
    low = text.strip().lower()
    if low == "none" and type(None) in kinds:
        return None
    if bool in kinds and low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        if kind in kinds:
            try:
                return kind(text)
            except ValueError:
                continue
    if str in kinds:
        return text.strip()
    names = " or ".join(NAMES[k] for k in kinds if k in NAMES)
    raise AsfedError(f"--set {key}={text!r} is invalid; accepted: {names}")


def parse_set(text: str) -> tuple[str, list[Any]]:
    """`key=v1,v2` -> (key, [v1, v2]), typed as the `RunConfig` field `key`."""
    key, sep, values = text.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not values.strip():
        raise AsfedError(f"--set {text!r} is invalid; accepted: KEY=VALUE[,VALUE...]")
    _check_key(key, "--set")
    return key, [parse_value(key, v) for v in values.split(",")]


def _check_key(key: str, source: str) -> None:
    if key in RESERVED:
        raise AsfedError(f"{source} may not vary {key!r}; use {RESERVED[key]} instead")
    if key not in FIELDS:
        settable = sorted(set(FIELDS) - set(RESERVED))
        raise AsfedError(f"unknown setting {key!r} in {source}; accepted: {accepted(settable)}")


def _table(raw: Any, source: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise AsfedError(f"{source} should be a table")
    return raw


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("/", "-").replace(" ", "-")


def _name(values: dict[str, Any], varying: list[str], seed: int) -> str:
    parts = [values.get("env", FIELDS["env"].default), values["method"]]
    parts += [f"{k}{_fmt(values[k])}" for k in varying if k != "env" and k in values]
    return "_".join(str(p) for p in parts) + f"_s{seed}"


def _axes(
    spec: dict[str, Any], base: dict[str, Any], sets: list[str], source: str
) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
    """The grid's axes and cases, checked, with the `--set` changes applied (to `base` too)."""
    grid: dict[str, list[Any]] = {}
    for key, values in _table(spec.get("grid", {}), f"grid in {source}").items():
        _check_key(key, source)
        if not isinstance(values, list) or not values:
            raise AsfedError(f"grid {key} in {source} should be a non-empty list of values")
        for v in values:
            check_types({key: v}, source)
        grid[key] = values
    cases = spec.get("cases", [{}])
    if not isinstance(cases, list) or not cases or not all(isinstance(c, dict) for c in cases):
        raise AsfedError(f"cases in {source} should be a non-empty list of tables")
    for case in cases:
        for key in case:
            _check_key(key, source)
        check_types(case, source)
    given: set[str] = set()
    for text in sets:
        key, values = parse_set(text)
        if key in given:
            raise AsfedError(
                f"--set {key} is given twice; give it once, with every value: --set {key}=a,b"
            )
        given.add(key)
        base.pop(key, None)
        cases = [{k: v for k, v in c.items() if k != key} for c in cases]
        grid.pop(key, None)
        if len(values) == 1:
            base[key] = values[0]
        else:
            grid[key] = values
    return grid, cases


def _claims(spec: dict[str, Any], source: str) -> tuple[dict, dict]:
    """The paper's claims and the ranges its numbers imply, checked."""
    claims = _table(spec.get("claims", {}), f"claims in {source}")
    expect = _table(spec.get("expect", {}), f"expect in {source}")
    for key, bounds in expect.items():
        numbers = isinstance(bounds, list) and len(bounds) == 2
        if not numbers or any(
            isinstance(b, bool) or not isinstance(b, int | float) for b in bounds
        ):
            raise AsfedError(f"expect {key!r} in {source} should be [low, high] numbers")
    return (
        {str(k): str(v) for k, v in claims.items()},
        {str(k): (float(v[0]), float(v[1])) for k, v in expect.items()},
    )


def _expand(
    base: dict[str, Any],
    grid: dict[str, list[Any]],
    cases: list[dict[str, Any]],
    methods: list[str],
    seeds: int,
    scenario: str,
) -> list[Point]:
    """Every point: cases x grid x methods x seeds, each config built and checked."""
    from asfed.engine.loop import prepare

    varying = list(dict.fromkeys([k for c in cases for k in c] + list(grid)))
    points: list[Point] = []
    checked: set[tuple] = set()
    for case in cases:
        for combo in itertools.product(*grid.values()):
            values = {**base, **case, **dict(zip(grid, combo, strict=True))}
            for method in methods:
                for seed in range(1, seeds + 1):
                    settings = {**values, "method": method, "seed": seed}
                    name = _name(settings, varying, seed)
                    try:  # one process per run (the pool is the sweep's), one torch thread
                        cfg = build_config(None, **settings, engine="local")
                        key = tuple(sorted((k, str(v)) for k, v in settings.items() if k != "seed"))
                        if key not in checked:  # the env, method and topology agree
                            prepare(dataclasses.replace(cfg, episodes=1))
                            checked.add(key)
                    except AsfedError as err:
                        raise AsfedError(f"run {name} of {scenario}: {err}") from None
                    point = {k: settings[k] for k in varying if k in settings}
                    points.append(Point(name, {"method": method, **point}, cfg))
    counts = collections.Counter(p.name for p in points)
    twice = sorted(n for n, c in counts.items() if c > 1)
    if twice:
        raise AsfedError(f"{scenario} has two runs named {twice[0]}; make its cases differ")
    return points


def load_sweep(
    scenario: str,
    methods: list[str] | None = None,
    seeds: int | None = None,
    sets: list[str] | None = None,
) -> Sweep:
    """The scenario's grid with the command line's changes, every point built and checked."""
    path = _scenario_path(scenario)
    source = f"[{SWEEP_TABLE}] of {path}"
    spec = _table(read_toml(path).get(SWEEP_TABLE, {}), source)
    unknown = sorted(set(spec) - set(SWEEP_KEYS))
    if unknown:
        raise AsfedError(
            f"unknown key {unknown[0]!r} in {source}; accepted: {accepted(SWEEP_KEYS)}"
        )
    base = load_scenario(str(path))  # the flat keys, checked
    base.pop("seed", None)  # seeds come from [sweep] seeds or --seeds
    base.pop("engine", None)  # sweeps run the local engine
    grid, cases = _axes(spec, base, list(sets or []), source)
    method_list = list(methods) if methods else spec.get("methods") or [base.get("method", "as")]
    if not isinstance(method_list, list) or not all(isinstance(m, str) for m in method_list):
        raise AsfedError(f"methods in {source} should be a list of method names")
    base.pop("method", None)
    n_seeds = seeds if seeds is not None else spec.get("seeds", 5)
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise AsfedError(f"seeds={n_seeds!r} is invalid; accepted: an integer >= 1")
    observe = spec.get("observe", [])
    if not isinstance(observe, list):
        raise AsfedError(f"observe in {source} should be a list; accepted: {OBSERVERS.names()}")
    for name in observe:
        OBSERVERS.get(name)
    claims, expect = _claims(spec, source)
    return Sweep(
        scenario=path.stem,
        scenario_path=path,
        scenario_text=_public_text(path.read_text()),
        title=str(spec.get("title", path.stem)),
        claim=str(spec.get("claim", "")),
        claims=claims,
        expect=expect,
        methods=tuple(method_list),
        seeds=tuple(range(1, n_seeds + 1)),
        observe=tuple(observe),
        points=tuple(_expand(base, grid, cases, method_list, n_seeds, path.name)),
        sets=tuple(sets or ()),
    )


def _public_text(text: str) -> str:
    """A scenario's text for the manifest, without its private seed's value (a secret)."""
    return re.sub(
        r"(?m)^\s*private_seed\s*=.*$", "# private_seed: kept in the sweep's ground_truth/", text
    )


# ---- the manifest -----------------------------------------------------------------------------


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """RunConfig keys whose values differ, a missing key read as its default (MAY_DIFFER keys
    do not count)."""
    skip = set(MAY_DIFFER)
    if a.get("dp_epsilon") is not None:
        skip.add("dp_sigma")  # calibrated to the rounds, which may differ
    keys = (a.keys() | b.keys()) & FIELDS.keys()
    return sorted(k for k in keys if k not in skip and config_value(a, k) != config_value(b, k))


def _check_folder(point: Point, path: Path) -> None:
    """Refuse a run folder that holds a different run than this point's."""
    from asfed.runs import CONFIG

    if not (path / CONFIG).exists():
        return
    held = read_toml(path / CONFIG)
    want = point.config.resolved().to_dict()
    diff = _differences(want, held)
    if diff:
        k = diff[0]
        raise AsfedError(
            f"{path} holds a run with {k}={config_value(held, k)!r}, the sweep asks "
            f"{k}={config_value(want, k)!r}"
            f"{' (and ' + ', '.join(diff[1:]) + ')' if diff[1:] else ''}; choose another --out"
        )


def check_folder(sweep: Sweep, folder: Path) -> dict[str, Any]:
    """The folder's manifest ({} if new), after checking that it and every run folder in it
    hold this sweep's runs; writes nothing."""
    folder = Path(folder)
    old = read_manifest(folder) or {}
    if old and old.get("scenario") != sweep.scenario:
        raise AsfedError(
            f"{folder} holds a sweep of scenario {old.get('scenario')!r}, not "
            f"{sweep.scenario!r}; choose another --out"
        )
    listed = {r["name"]: r for r in old.get("runs", [])}
    for p in sweep.points:
        _check_folder(p, folder / p.name)
        if p.name in listed:
            want, held = p.config.resolved().to_dict(), listed[p.name]["config"]
            diff = _differences(want, held)
            if diff:
                raise AsfedError(
                    f"{folder / MANIFEST} lists run {p.name} with "
                    f"{diff[0]}={config_value(held, diff[0])!r}, "
                    f"the sweep asks {want[diff[0]]!r}; choose another --out"
                )
    return old


def plan_manifest(sweep: Sweep, folder: Path, session: dict[str, Any]) -> dict[str, Any]:
    """Create or extend the manifest (runs are added, never dropped) with this session, after
    `check_folder`, so a refused sweep writes nothing."""
    old = check_folder(sweep, folder)
    runs = {r["name"]: r for r in old.get("runs", [])}
    for p in sweep.points:
        entry = {"name": p.name, "point": p.point, "config": p.config.resolved().to_dict()}
        entry["train_seconds"] = runs.get(p.name, {}).get("train_seconds", 0.0)
        runs[p.name] = entry
    data = {
        "format": FORMAT,
        "id": old.get("id") or uuid.uuid4().hex,
        "scenario": sweep.scenario,
        "scenario_toml": sweep.scenario_text,
        "title": sweep.title,
        "claim": sweep.claim,
        "claims": {**old.get("claims", {}), **sweep.claims},
        "expect": {**old.get("expect", {}), **{k: list(v) for k, v in sweep.expect.items()}},
        "observe": sorted(set(old.get("observe", [])) | set(sweep.observe)),
        "changes": list(dict.fromkeys([*old.get("changes", []), *sweep.sets])),
        "sessions": [*old.get("sessions", []), session],
        "runs": list(runs.values()),
    }
    write_manifest(folder, data)
    return data


# ---- one run ----------------------------------------------------------------------------------


def rounds_done(path: Path) -> int:
    """Rounds in a run folder's metrics.csv (0 if none), counted without parsing it."""
    try:
        with open(Path(path) / "metrics.csv", "rb") as f:
            return max(0, f.read().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def finished(path: Path, cfg: RunConfig, observe: tuple[str, ...]) -> bool:
    """Whether a run folder holds all its rounds, whole, and its observed metrics (a damaged
    metrics.csv is not finished: the run's resume repairs a tail or refuses the damage)."""
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
) -> float:
    """Train one run to its rounds (resuming what is on disk), then write its observed metrics;
    returns the seconds it took. Runs in a worker process (or in this one, with one worker).
    private_seed: a new run's secrets' seed (None: fresh entropy; a resumed run keeps its own)."""
    import torch

    from asfed.engine.driver import resume, start, train
    from asfed.runs import CONFIG

    began = time.perf_counter()
    torch.set_num_threads(1)
    path = Path(path)
    if rounds_done(path) < cfg.rounds:
        if (path / CONFIG).exists():
            sim, run, rows = resume(path, cfg.rounds)
        else:
            sim, run, rows = start(cfg, path, private_seed=private_seed)
        try:
            train(sim, run, rows, on_round)
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
) -> tuple[float, bytes]:
    """A run as a Ray task: in place where this node sees the sweep folder (its manifest has
    this sweep's id), else in a temporary folder returned as a tar archive (b"": in place)."""
    folder = Path(path)
    try:
        in_place = json.loads((folder.parent / MANIFEST).read_text()).get("id") == sweep_id
    except (OSError, ValueError):
        in_place = False
    if in_place:
        return train_run(cfg, folder, observe, None, private_seed), b""
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / folder.name
        seconds = train_run(cfg, run, observe, None, private_seed)
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
        return _run_locked(sweep, folder, workers, ray_address, on_status, session, private_seed)
    finally:
        lock.release()


def _run_locked(sweep, folder, workers, ray_address, on_status, session, private_seed) -> Outcome:
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
    todo = [p for p in sweep.points if not finished(paths[p.name], p.config, sweep.observe)]
    reused = tuple(p.name for p in sweep.points if p not in todo)
    total = sum(p.config.rounds for p in sweep.points)
    failed: dict[str, str] = {}
    seconds: dict[str, float] = {}
    done_runs = set(reused)
    last = [0.0]

    def status(note: str = "") -> None:
        if on_status is None or (not note and time.perf_counter() - last[0] < 0.5):
            return  # at most twice a second, unless something happened
        last[0] = time.perf_counter()
        rounds = sum(min(rounds_done(paths[p.name]), p.config.rounds) for p in sweep.points)
        on_status(Status(rounds, total, len(done_runs), len(sweep.points), note))

    def settle(point: Point, took: float, error: BaseException | None) -> None:
        seconds[point.name] = seconds.get(point.name, 0.0) + took
        if error is None:
            done_runs.add(point.name)
            status(f"finished {point.name}")
        else:
            failed[point.name] = f"{type(error).__name__}: {error}"
            status(f"failed {point.name}")

    status("starting")
    try:
        if ray_address is not None:
            _run_ray(
                todo, paths, secret, sweep.observe, manifest["id"], ray_address, workers, settle
            )
        elif workers == 1:
            _run_inline(todo, paths, secret, sweep.observe, settle, status)
        else:
            _run_pool(todo, paths, secret, sweep.observe, workers, settle, status)
    finally:
        session["wall_seconds"] = round(time.perf_counter() - began, 1)
        session["trained"] = sorted(n for n in seconds if n not in failed)
        session["failed"] = sorted(failed)
        for run in manifest["runs"]:
            if run["name"] in seconds:
                run["train_seconds"] = round(
                    run.get("train_seconds", 0.0) + seconds[run["name"]], 1
                )
        write_manifest(folder, manifest)
    trained = tuple(p.name for p in todo if p.name not in failed)
    return Outcome(folder, trained, reused, failed)


def _run_inline(todo, paths, secret, observe, settle: Settle, status) -> None:
    for p in todo:
        began = time.perf_counter()
        try:
            train_run(p.config, paths[p.name], observe, lambda _m: status(), secret[p.name])
        except Exception as err:  # the next run still trains; the error is reported
            settle(p, time.perf_counter() - began, err)
        else:
            settle(p, time.perf_counter() - began, None)


def _run_pool(todo, paths, secret, observe, workers: int, settle: Settle, status) -> None:
    ctx = multiprocessing.get_context("spawn")
    others = set(multiprocessing.active_children())  # a caller's own children are not ours
    pool = cf.ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),)
    )
    try:
        futures = {
            pool.submit(train_run, p.config, paths[p.name], observe, None, secret[p.name]): p
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
    todo, paths, secret, observe, sweep_id: str, address: str, workers: int, settle
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
        task = ray.remote(num_cpus=1)(_ray_task)
        refs = {
            task.remote(p.config, str(paths[p.name]), observe, sweep_id, secret[p.name]): p
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


def default_folder(sweep: Sweep) -> Path:
    """Where a sweep goes unless told: runs/sweep_<scenario>."""
    return Path("runs") / f"sweep_{sweep.scenario}"
