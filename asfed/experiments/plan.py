"""A scenario's grid, checked: every run of an experiment (scenario x methods x seeds x
overrides), each with its folder name and its built config, before anything runs.

A scenario (`scenarios/NAME.toml`) gives the base settings as flat `RunConfig` keys; its optional
`[sweep]` table gives the grid:

    [sweep]
    title = "Fig. 2: ..."           # what the experiment is (the report's heading)
    claim = "..."                   # what the paper says it shows (the report quotes it)
    methods = ["as", "vs"]          # default: the scenario's method
    seeds = 5                       # seeds 1..N (default 5)
    observe = ["anticipation"]      # post-run steps, each writing a file into the run folder
    cases = [{}, {rho = 0.0}]       # explicit override sets (default: one empty set), each
                                    # crossed with the grid; a case that names its `method`
                                    # runs that method alone (e.g. {method = "ippo"})
    [sweep.grid]                    # axes, crossed: key = [values]
    env = ["cleanup", "exchange"]
    [sweep.claims]                  # what the paper says, per "env/method", "method" or "env"
    "exchange/as" = "about 6"
    [sweep.expect]                  # the range a number in the paper implies (same keys)
    "exchange/as" = [5.0, 7.0]

`asfed sweep NAME --set key=v1,v2` makes `key` an axis with those values (replacing the
scenario's axis, case values or base value); `--methods` and `--seeds` replace the table's. Every
run's config is built and checked before anything runs, so a bad value writes nothing. Grids
built in code (a trade-off's, an audit's) are `Sweep`s too (`code_plan`), so one runner trains
them all.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import re
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
    load_scenario,
    read_toml,
    scenario_names,
)
from asfed.errors import AsfedError, accepted
from asfed.experiments.observers import OBSERVERS

SWEEP_KEYS = (
    "title", "claim", "methods", "seeds", "observe", "cases", "grid", "claims", "expect",
)  # fmt: skip
# Keys no grid, case or --set may vary: seeds and methods have their own options, and sweeps
# run the local engine.
RESERVED = {"seed": "--seeds", "method": "--methods or [sweep] methods", "engine": "nothing"}


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
    if value is None:  # `--set key=none`: the paper's default
        return "none"
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
            if key != "method":  # a case may name its method: a run of its own (an IPPO row)
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

    varying = list(dict.fromkeys([k for c in cases for k in c if k != "method"] + list(grid)))
    points: list[Point] = []
    checked: set[tuple] = set()
    for case in cases:
        for combo in itertools.product(*grid.values()):
            values = {**base, **case, **dict(zip(grid, combo, strict=True))}
            for method in [values.pop("method")] if "method" in values else methods:
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
        scenario_text=_public_text(path.read_text()),
        title=str(spec.get("title", path.stem)),
        claim=str(spec.get("claim", "")),
        claims=claims,
        expect=expect,
        methods=tuple(
            dict.fromkeys([*method_list, *(c["method"] for c in cases if "method" in c)])
        ),
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


def code_plan(
    scenario: str, title: str, points: list[Point], observe: tuple[str, ...] = ()
) -> Sweep:
    """A grid built in code (a trade-off's, an audit's runs) as a `Sweep`, so the one runner
    trains it; the manifest's scenario text lists its points, since no file holds them."""
    for name in observe:
        OBSERVERS.get(name)
    twice = sorted(n for n, c in collections.Counter(p.name for p in points).items() if c > 1)
    if twice:
        raise AsfedError(f"{scenario} lists run {twice[0]} twice; give each value once")
    methods = tuple(dict.fromkeys(p.config.method for p in points))
    seeds = tuple(sorted({p.config.seed for p in points}))
    text = f"# built by asfed, not read from a scenario file: {title}\n" + "".join(
        f"# {p.name}: {p.point}\n" for p in points
    )
    return Sweep(scenario, text, title, "", {}, {}, methods, seeds, observe, tuple(points))


def default_folder(sweep: Sweep) -> Path:
    """Where a sweep goes unless told: runs/sweep_<scenario>."""
    return Path("runs") / f"sweep_{sweep.scenario}"
