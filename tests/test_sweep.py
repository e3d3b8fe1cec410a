"""`asfed sweep`: the grid a scenario expands to, bad input refused before anything is written,
a tiny sweep in a process pool that continues where it stopped and never redoes a finished run,
the same sweep on a local Ray instance with the same numbers, and every scenario at a smoke
budget."""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from asfed.cli.common import ProgressLog
from asfed.config import config_differences, scenario_names
from asfed.engine.flower.localnet import descendants, stop
from asfed.errors import AsfedError
from asfed.experiments.manifest import MANIFEST, read_manifest
from asfed.experiments.plan import load_sweep
from asfed.experiments.runner import (
    Status,
    _ray_task,
    _unpack,
    rounds_done,
    run_sweep,
    train_run,
)
from asfed.report.collect import collect
from tests.test_simulate_cli import CLI, CLI_ENV, asfed, metrics, refused

TINY = """
env = "exchange"
rounds = 2
episodes = 1
horizon = 6
log_every = 1

[sweep]
title = "tiny"
claim = "a test"
methods = ["as", "ippo"]
seeds = 2
"""


def tiny(tmp_path, text: str = TINY):
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return path


def test_a_scenario_expands_to_its_grid_with_names_after_what_varies() -> None:
    fig4 = load_sweep("fig4-rho")
    assert len(fig4.points) == 9 * 5 and fig4.seeds == (1, 2, 3, 4, 5)
    assert fig4.points[0].name == "cleanup_as_rho900_s1"
    assert {p.config.rho for p in fig4.points if p.config.env == "harvest"} == {0.01, 0.1, 1.0}
    fig5 = load_sweep("fig5-ablation", seeds=1)
    rhos = {(p.config.env, p.config.rho) for p in fig5.points}
    assert ("exchange", None) in rhos and ("exchange", 0.0) in rhos  # Table 2's, then ablation
    assert {p.name for p in fig5.points} >= {"exchange_as_s1", "exchange_as_rho0_s1"}
    fig3 = load_sweep("fig3-scalability", methods=["as"], seeds=2, sets=["every=1,2"])
    assert [p.name for p in fig3.points][:3] == [
        "predation_as_agents20_every1_s1",
        "predation_as_agents20_every1_s2",
        "predation_as_agents20_every2_s1",
    ]
    assert all(
        p.config.topology == "random-one" and p.config.engine == "local" for p in fig3.points
    )
    fixed = load_sweep("fig2-exchange", seeds=1, sets=["rounds=3", "rho=none"])
    assert {p.config.rounds for p in fixed.points} == {3}
    assert len(fixed.points) == 5 and fixed.expect["exchange/as"] == (5.0, 7.0)


def test_a_case_that_names_its_method_runs_that_method_alone() -> None:
    plan = load_sweep("cleanup-diagnosis")
    names = [p.name for p in plan.points]
    assert names[-2:] == ["cleanup_ippo_s1", "cleanup_ippo_s2"]  # one IPPO row, not one per rho
    assert {p.config.rho for p in plan.points if p.config.method == "as"} == {None, 10.0, 1.0, 0.0}
    assert plan.methods == ("as", "ippo") and len(plan.points) == 10
    assert all(p.config.rounds == 50 and p.config.episodes == 32 for p in plan.points)


@pytest.mark.parametrize(
    ("sets", "methods", "message"),
    [
        (["rho=abc"], None, "--set rho='abc' is invalid; accepted: a number or none"),
        (["zap=yes"], None, "--set zap='yes' is invalid; accepted: true or false"),
        (["seed=3"], None, "may not vary 'seed'; use --seeds instead"),
        (["rouds=3"], None, "unknown setting 'rouds' in --set; accepted: actor_lr, agents"),
        (["rounds"], None, "--set 'rounds' is invalid; accepted: KEY=VALUE[,VALUE...]"),
        (["agents=4"], None, "run exchange_as_s1 of fig2-exchange.toml: num_agents=4 is outside"),
        ([], ["as", "foo"], "run exchange_foo_s1 of fig2-exchange.toml: unknown method 'foo'"),
    ],
)
def test_bad_command_line_values_are_named(sets, methods, message) -> None:
    with pytest.raises(AsfedError) as err:
        load_sweep("fig2-exchange", methods, None, sets)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[sweep]\nmethod = ['as']\n", "unknown key 'method' in [sweep]"),
        ("[sweep]\nseeds = 0\n", "seeds=0 is invalid; accepted: an integer >= 1"),
        ("[sweep.grid]\nrho = 1.0\n", "grid rho in [sweep]"),
        ("[sweep.grid]\nrho = ['x']\n", "rho='x'"),
        ("[sweep]\ncases = [{seed = 2}]\n", "may not vary 'seed'"),
        ("[sweep]\ncases = [{}, {}]\n", "has two runs named exchange_as_s1"),
        ("[sweep]\nobserve = ['nope']\n", "unknown observer 'nope'; accepted: anticipation"),
        ("[sweep.expect]\n'exchange/as' = [1]\n", "should be [low, high] numbers"),
    ],
)
def test_bad_sweep_tables_are_named(tmp_path, table, message) -> None:
    path = tiny(tmp_path, 'env = "exchange"\n' + table)
    with pytest.raises(AsfedError) as err:
        load_sweep(str(path))
    assert message in str(err.value)


def test_a_tiny_sweep_in_a_pool_continues_where_it_stopped(tmp_path) -> None:
    scenario, out = tiny(tmp_path), tmp_path / "sweep"
    # An interrupted sweep: one run stopped at its round-1 checkpoint, the others not started.
    stopped = load_sweep(str(scenario), ["as"], 1, ["rounds=1"]).points[0]
    train_run(stopped.config, out / stopped.name, private_seed=5)
    res = asfed("sweep", str(scenario), "--workers", "2", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "4 run(s) trained, 0 reused, 0 failed" in res.stdout
    # Not a terminal (a nohup log): plain progress lines, the last one with every run done.
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("progress:")]
    assert lines and lines[-1].startswith("progress: 4/4 runs done, rounds 8/8"), res.stdout
    manifest = read_manifest(out)
    assert [r["name"] for r in manifest["runs"]] == [
        "exchange_as_s1", "exchange_as_s2", "exchange_ippo_s1", "exchange_ippo_s2",
    ]  # fmt: skip
    assert manifest["sessions"][0]["workers"] == 2 and manifest["sessions"][0]["wall_seconds"] > 0
    assert all(r["train_seconds"] > 0 for r in manifest["runs"])
    for run in manifest["runs"]:
        assert len(metrics(out / run["name"])) == 2
    # The resumed run has the numbers of a run trained straight through.
    straight = tmp_path / "straight"
    train_run(load_sweep(str(scenario)).points[0].config, straight, private_seed=5)
    assert metrics(out / "exchange_as_s1") == metrics(straight)
    # Running it again redoes nothing.
    names = [r["name"] for r in manifest["runs"]]
    before = {n: (out / n / "metrics.csv").stat().st_mtime_ns for n in names}
    again = run_sweep(load_sweep(str(scenario)), out, workers=2)
    assert again.trained == () and sorted(again.reused) == names and again.failed == {}
    assert {n: (out / n / "metrics.csv").stat().st_mtime_ns for n in names} == before
    assert len(read_manifest(out)["sessions"]) == 2
    # A --set change is recorded and heads the sweep in reports.
    run_sweep(load_sweep(str(scenario), sets=["rounds=2"]), out)
    assert read_manifest(out)["changes"] == ["rounds=2"]
    (source,) = collect([out])
    assert source.heading == "tiny [changed from the scenario: rounds=2]"


def test_a_sweep_refuses_a_folder_holding_other_runs_and_a_corrupt_manifest(tmp_path) -> None:
    scenario, out = tiny(tmp_path), tmp_path / "sweep"
    plan = load_sweep(str(scenario), ["ippo"], 1)
    run_sweep(plan, out)
    manifest = (out / MANIFEST).read_bytes()
    res = refused("sweep", str(scenario), "--methods", "ippo", "--seeds", "1", "--set",
                "episodes=2", "--out", str(out))  # fmt: skip
    assert res.returncode == 2
    assert "holds a run with episodes=1, the sweep asks episodes=2" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert (out / MANIFEST).read_bytes() == manifest  # nothing written
    (out / MANIFEST).write_text('{"format": 1, "runs": "x"}')
    bad = re.escape(f"cannot read sweep manifest {out / MANIFEST}: no list of runs; accepted:")
    with pytest.raises(AsfedError, match=bad):
        run_sweep(plan, out)
    with pytest.raises(AsfedError, match="cannot read sweep manifest"):
        collect([out])


def test_the_same_sweep_on_a_local_ray_instance_gives_the_same_numbers(tmp_path) -> None:
    scenario = tiny(tmp_path)
    pool, ray = tmp_path / "pool", tmp_path / "ray"
    plan = load_sweep(str(scenario), ["as"], 2)
    run_sweep(plan, pool, private_seed=7)
    res = asfed("sweep", str(scenario), "--methods", "as", "--seeds", "2", "--ray-address",
                "local", "--workers", "2", "--out", str(ray), "--private-seed", "7")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "Ray at local" in res.stdout and "2 run(s) trained" in res.stdout
    assert read_manifest(ray)["sessions"][0]["where"] == "ray:local"
    for point in plan.points:
        assert metrics(ray / point.name) == metrics(pool / point.name)


def test_a_ray_node_without_the_sweep_folder_ships_the_run_back(tmp_path) -> None:
    plan = load_sweep(str(tiny(tmp_path)), ["ippo"], 1)
    point, out = plan.points[0], tmp_path / "driver"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({"id": "another sweep"}))  # not this node's folder
    seconds, data = _ray_task(point.config, str(out / point.name), (), "this sweep", 5)
    assert seconds > 0 and not (out / point.name).exists()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        assert f"{point.name}/metrics.csv" in tar.getnames()
    _unpack(data, out)
    local = tmp_path / "local"
    train_run(point.config, local, private_seed=5)
    assert metrics(out / point.name) == metrics(local)
    assert sorted(p.name for p in out.iterdir()) == sorted([point.name, MANIFEST])


def _kind(cfg) -> tuple:
    """What changes the code a run goes through (not a learning rate, rho or the agent count)."""
    c = cfg.resolved()
    return (c.env, c.method, c.topology, c.every, c.layout)


def test_every_scenario_loads_and_each_of_its_kinds_of_run_trains_a_round(tmp_path) -> None:
    """Every scenario's every point is built and checked; its first point, and every point of a
    kind no scenario before it ran (env, method, topology, cadence, layout), trains 1 round of 1
    episode of 2 steps with the scenario's observers (scenarios with fewer agents first)."""
    smoke = ["rounds=1", "episodes=1", "horizon=2"]
    plans = {name: load_sweep(name, seeds=1, sets=smoke) for name in scenario_names()}
    seen = set()
    for name, plan in sorted(
        plans.items(), key=lambda kv: kv[1].points[0].config.resolved().agents
    ):
        assert plan.points, name
        for i, point in enumerate(plan.points):
            if i > 0 and _kind(point.config) in seen:
                continue
            seen.add(_kind(point.config))
            path = tmp_path / name / point.name
            train_run(point.config, path, plan.observe)
            assert len(metrics(path)) == 1, (name, point.name)
            for observer in plan.observe:
                assert (path / f"{observer}.csv").exists()
        shutil.rmtree(tmp_path / name, ignore_errors=True)
    assert len(seen) > 25


def test_sigterm_stops_a_pooled_sweep_its_workers_and_records_the_session(tmp_path) -> None:
    """A scheduler's SIGTERM (SLURM, `kill`) acts as Ctrl-C: the workers stop too (they do not
    get the signal themselves), the manifest records the session, and the exit code says so."""
    scenario = tiny(tmp_path, TINY.replace("rounds = 2", "rounds = 400"))
    out = tmp_path / "sweep"
    proc = subprocess.Popen(
        [*CLI, "sweep", str(scenario), "--methods", "as", "--workers", "2", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=CLI_ENV,
    )
    try:
        deadline = time.monotonic() + 120
        runs = [out / "exchange_as_s1", out / "exchange_as_s2"]
        while not all(rounds_done(r) >= 1 for r in runs):  # both workers are training
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.2)
        workers = descendants(proc.pid)
        assert workers
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            stop(proc)
    assert proc.returncode == 143, output  # 128 + SIGTERM
    assert "interrupted: finished rounds are kept" in output
    session = read_manifest(out)["sessions"][0]
    assert session["wall_seconds"] > 0 and session["trained"] == []
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    assert all(rounds_done(r) < 400 for r in runs)  # stopped, not finished


def test_a_sweep_logged_to_a_file_says_how_far_it_is_and_how_long_is_left() -> None:
    """Without a terminal rich draws no bar, so a long sweep's log would be silent for hours:
    a line each time runs finish and every `every` seconds, with this sitting's rate."""
    clock = [100.0]
    log = ProgressLog(every=600, clock=lambda: clock[0])
    first = log.line(Status(30, 330, 1, 11))  # 30 rounds were done before this sitting
    assert first == "progress: 1/11 runs done, rounds 30/330"
    clock[0] += 60
    assert log.line(Status(60, 330, 1, 11)) is None  # nothing finished, not 10 min yet
    clock[0] += 60
    line = log.line(Status(90, 330, 2, 11))  # 60 rounds in 2 min: 240 left take 8
    assert line == "progress: 2/11 runs done, rounds 90/330, 30.0 rounds/min, about 8.0 min left"
    clock[0] += 60
    why = "AsfedError: reward-type does not apply to predation"
    failed = log.line(Status(95, 330, 2, 11, "failed navigation_ps_s2", why))  # at once
    assert failed is not None and failed.endswith(f"(failed navigation_ps_s2)\n  {why}")
    assert log.line(Status(96, 330, 2, 11)) is None


def test_a_key_a_run_folder_lacks_is_its_default_when_folders_are_compared() -> None:
    older = {"env": "predation", "method": "as"}  # written before predation_actions existed
    assert config_differences({**older, "predation_actions": "left-right"}, older) == []
    assert config_differences({**older, "predation_actions": "toward-away"}, older) == [
        "predation_actions"
    ]


def test_a_sweep_on_cuda_without_a_gpu_is_one_line_and_writes_nothing(tmp_path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is for machines without one")
    out = tmp_path / "sweep"
    res = refused("sweep", "fig2-exchange", "--seeds", "1", "--device", "cuda", "--out", str(out))
    assert res.returncode == 2 and "finds no CUDA GPU" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and not out.exists()


def test_config_differences_reads_missing_keys_as_defaults_and_skips_what_may_differ() -> None:
    """One comparison for run folders, manifests and archives: a key absent from an older
    config.toml is its default, the allowed keys do not count, dp_sigma follows dp_epsilon."""
    from asfed.config import FIELDS

    base = {"env": "exchange", "method": "as", "seed": 1, "rounds": 10}
    assert config_differences(base, dict(base)) == []
    default_lr = FIELDS["actor_lr"].default
    assert config_differences(base, {**base, "actor_lr": default_lr}) == []
    assert config_differences(base, {**base, "seed": 2, "rounds": 20}) == ["rounds", "seed"]
    assert config_differences(base, {**base, "rounds": 20}, frozenset({"rounds"})) == []
    noisy = {**base, "dp_epsilon": 8.0, "dp_sigma": 1.0}
    extended = {**noisy, "rounds": 20, "dp_sigma": 2.0}
    assert config_differences(noisy, extended, frozenset({"rounds"})) == []
    assert config_differences(noisy, extended, frozenset({"engine"})) == ["dp_sigma", "rounds"]
    assert config_differences(base, {**base, "dp_sigma": 2.0}) == ["dp_sigma"]


def test_a_run_extended_to_more_rounds_drops_its_post_run_files_before_it_trains(tmp_path) -> None:
    """A post-run file of fewer rounds (a trade-off row, anticipation metrics) is stale once the
    run trains on; kept, it would read as the longer run's result until the step rewrote it."""
    from asfed.experiments.observers import ANTICIPATION_FILE, TRADEOFF_POINT_FILE

    scenario, path = tiny(tmp_path), tmp_path / "run"
    short = load_sweep(str(scenario), ["as"], 1, ["rounds=1"]).points[0].config
    train_run(short, path, private_seed=5)
    for name in (TRADEOFF_POINT_FILE, ANTICIPATION_FILE):
        (path / name).write_text("of 1 round")
    seen = []
    longer = load_sweep(str(scenario), ["as"], 1, ["rounds=2"]).points[0].config
    train_run(longer, path, on_round=lambda *a: seen.append((path / TRADEOFF_POINT_FILE).exists()))
    assert seen and not any(seen)
    assert not (path / ANTICIPATION_FILE).exists()  # no observer asked: not written again
