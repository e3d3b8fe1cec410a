"""`asfed tradeoff` end to end on a tiny sweep: every point trained, audited and written, finished
points reused, bad epsilons refused."""

from __future__ import annotations

import csv
import math
import os

import numpy as np

from tests.test_simulate_cli import asfed, refused


def test_a_tiny_tradeoff_writes_every_point_and_reuses_finished_ones(tmp_path) -> None:
    out = tmp_path / "sweep"
    args = (
        "tradeoff",
        "--env",
        "navigation",
        "--methods",
        "as",
        "--epsilons",
        "2,inf",
        "--seeds",
        "1",
        "--rounds",
        "2",
        "--episodes",
        "2",
        "--workers",
        "1",
        "--out",
        str(out),
    )
    res = asfed(*args)
    assert res.returncode == 0, res.stderr
    assert "public trajectory" in res.stdout and "not covered" in res.stdout
    with open(out / "tradeoff.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["method"], r["epsilon_target"]) for r in rows] == [("as", "2.0"), ("as", "inf")]
    assert abs(float(rows[0]["epsilon_accountant"]) - 2.0) < 1e-6
    assert rows[1]["epsilon_accountant"] == "inf"
    # navigation's line graph: agent 1 sends to two neighbours, so one neighbour sees half
    assert 0 < float(rows[0]["epsilon_pair"]) < float(rows[0]["epsilon_accountant"])
    assert rows[0]["update_first_hit"] in ("0.0", "1.0")  # a trial is a secret, not an episode
    for r in rows:  # the update attack, the one-step attack and the actions-only attacker
        for field in ("update_accuracy", "type_accuracy", "type_baseline"):
            assert 0.0 <= float(r[field]) <= 1.0, (field, r[field])
    assert "one secret a seed" in " ".join(res.stdout.split())
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert "leakage" in res.stdout and "update" in res.stdout
    import json

    from attacks.shadow import features
    from attacks.view import load_view

    point = json.loads((out / "navigation_as_epsinf_s1" / "tradeoff_point.json").read_text())
    assert point["secrets"], "a point keeps its scored secrets' shadow features"
    for secret in point["secrets"]:  # the same features the shadow attack reads off a view
        view = load_view(out / "navigation_as_epsinf_s1", "relay", secret["victim"])
        assert np.allclose(secret["features"], features(view), atol=1e-12)
    metrics = out / "navigation_as_eps2_s1" / "metrics.csv"
    before = metrics.stat().st_mtime_ns
    assert asfed(*args).returncode == 0
    assert metrics.stat().st_mtime_ns == before  # a finished point is not trained again


def test_a_tradeoff_on_an_env_without_reward_types_audits_the_reward_alone(tmp_path) -> None:
    """Predation's agents have no private reward type (one candidate), so its points are
    audited by reward inversion only: the type fields are NaN (never a made-up 0), and the
    figures draw the inversion leakage instead of failing on an empty type panel."""
    out = tmp_path / "sweep"
    res = asfed(
        "tradeoff", "--env", "predation", "--methods", "as", "--epsilons", "2,inf",
        "--seeds", "1", "--rounds", "2", "--episodes", "2", "--workers", "1", "--out", str(out),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    with open(out / "tradeoff.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epsilon_target"] for r in rows] == ["2.0", "inf"]
    for r in rows:
        assert math.isfinite(float(r["inversion_r"])) and math.isfinite(float(r["team_return"]))
        for field in ("type_accuracy", "update_accuracy", "type_chance", "update_first_hit"):
            assert math.isnan(float(r[field])), (field, r[field])
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_epsilons_are_refused_before_anything_runs(tmp_path) -> None:
    res = refused("tradeoff", "--epsilons", "1,0", "--out", str(tmp_path / "s"))
    assert res.returncode == 2 and "epsilon '0' is invalid" in res.stderr
    assert not (tmp_path / "s").exists()
    res = refused("tradeoff", "--epsilons", "4,1,inf", "--out", str(tmp_path / "s"))
    assert res.returncode == 2 and "is not increasing at '1'" in res.stderr
    res = refused("tradeoff", "--epsilons", "", "--out", str(tmp_path / "s"))
    assert res.returncode == 2 and "epsilon '' is invalid" in res.stderr
    assert not (tmp_path / "s").exists()


SCENARIO = """env = "exchange"
rounds = 2
episodes = 2
log_every = 1

[sweep]
seeds = 1
cases = [{ method = "as", rho = 10.0 }, { method = "vs" }]
"""


def test_a_tradeoff_at_a_scenarios_budget_is_that_sweep_crossed_with_the_epsilons(
    tmp_path,
) -> None:
    scenario = tmp_path / "tiny.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "sweep"
    base = ("tradeoff", "--scenario", str(scenario), "--epsilons", "4,inf", "--workers", "1")
    res = refused(*base, "--rounds", "5", "--out", str(out))
    assert res.returncode == 2 and "not allowed with it: --rounds" in res.stderr
    res = refused(*base, "--methods", "ps", "--out", str(out))
    assert res.returncode == 2 and "no case of method(s) ps; accepted: as, vs" in res.stderr
    res = asfed(*base, "--methods", "vs", "--estimate", "--out", str(out))
    assert res.returncode == 0 and "2 runs" in res.stdout, res.stderr
    res = asfed(*base, "--estimate", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "4 runs" in res.stdout and not out.exists()  # priced, nothing written
    res = asfed(*base, "--out", str(out))
    assert res.returncode == 0, res.stderr
    with open(out / "tradeoff.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["method"], r["epsilon_target"]) for r in rows) == [
        ("as", "4.0"),
        ("as", "inf"),
        ("vs", "4.0"),
        ("vs", "inf"),
    ]
    assert {r["run"].rsplit("/", 1)[1] for r in rows} == {
        "exchange_as_rho10_dp_epsilon4_s1",
        "exchange_as_rho10_dp_epsilonnone_s1",
        "exchange_vs_dp_epsilon4_s1",
        "exchange_vs_dp_epsilonnone_s1",
    }
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted({r["series"] for r in rows}) == ["as rho=10", "vs"]  # one curve a case


def test_the_leakage_interval_is_conservative_and_never_of_zero_width() -> None:
    """Three seeds whose differences agree (update 3/3, actions 1/3 each): a t interval over
    seeds would be [0.67, 0.67]; the difference of 97.5% Clopper-Pearson intervals is wide and
    holds the truth, and its simulated coverage is at least 95%."""
    import numpy as np

    from asfed.experiments.tradeoff import _difference_interval
    from audits.scoring import clopper_pearson

    rows = [{"update_accuracy": 1.0, "type_baseline": 1 / 3, "type_secrets": 3}] * 3
    lo, hi = _difference_interval(rows, 9)
    assert hi - lo > 0.5 and lo < 2 / 3 < hi
    assert lo == clopper_pearson(9, 9, 0.975)[0] - clopper_pearson(3, 9, 0.975)[1]
    rng, (p, q), n, covered = np.random.default_rng(0), (0.7, 0.4), 15, 0
    for _ in range(2000):
        a, b = rng.binomial(n, p), rng.binomial(n, q)
        one = [{"update_accuracy": a / n, "type_baseline": b / n, "type_secrets": n}]
        lo, hi = _difference_interval(one, n)
        covered += lo <= p - q <= hi
    assert covered / 2000 >= 0.95


def test_two_cases_of_one_method_are_two_curves() -> None:
    """privacy-exchange-as-dp's AS with the paper's sharing and AS with its releases cut: two
    series in the summary, not one pooled curve."""
    import math

    from asfed.experiments.tradeoff import scenario_plan, series, summarise

    plan = scenario_plan("privacy-exchange-as-dp", [4096.0, math.inf], 2)
    names = [series(p) for p in plan.points]
    assert sorted(set(names)) == ["as", "as share_rows=0.1 every=4"]
    row = {
        "method": "as", "team_return": 1.0, "epsilon_accountant": 1.0, "epsilon_pair": 1.0,
        "type_secrets": 3, "type_chance": 1 / 3, "type_accuracy": 1.0, "update_accuracy": 1.0,
        "type_baseline": 0.0, "update_first_hit": 1.0, "baseline_first_hit": 0.0,
        "inversion_r": 0.5, "inversion_baseline": 0.0, "secrets": [],
    }  # fmt: skip
    rows = [
        {**row, "series": n, "epsilon_target": p.config.dp_epsilon or math.inf, "seed": s}
        for s, (n, p) in enumerate(zip(names, plan.points, strict=True))
    ]
    summary = summarise(rows)
    assert sorted((s["series"], s["epsilon_target"]) for s in summary) == [
        ("as", 4096.0),
        ("as", math.inf),
        ("as share_rows=0.1 every=4", 4096.0),
        ("as share_rows=0.1 every=4", math.inf),
    ]
    assert all(s["seeds"] == 2 for s in summary)


def test_a_series_whose_leakage_was_not_measured_is_named_not_drawn_at_zero(tmp_path, monkeypatch):
    """AS with its releases cut to a random tenth of the rows leaves the update attack nothing
    to compare: its leakage is NaN, and the frontier says so in the legend (with its team
    returns) instead of placing it at x = 0, the no-leakage line; a series measured in one panel
    only is drawn there and named as unmeasured in the other."""
    from asfed.experiments import tradeoff

    seen = {}
    monkeypatch.setattr(
        tradeoff,
        "legend_outside",
        lambda ax, handles, labels: seen.update(dict.fromkeys(labels)),
    )
    point = lambda series, eps, leak, ret: {  # noqa: E731
        "series": series,
        "epsilon_target": eps,
        "leakage": leak,
        "leakage_ci": None,
        "inversion_leakage": 0.2 if series == "as" and math.isinf(eps) else math.nan,
        "inversion_leakage_ci": None,
        "team_return": ret,
        "team_return_ci": None,
        "type_chance": 1 / 3,
    }
    summary = [
        point("as", math.inf, 0.5, 5.0),
        point("as", 4096.0, 0.0, 4.4),
        point("as cut", math.inf, math.nan, -9.0),
        point("as cut", 4096.0, math.nan, -8.9),
    ]
    tradeoff.frontier(
        tmp_path / "f.png", summary, "exchange", [("random", "uniformly random", 4.2)]
    )
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    cut = [label for label in seen if label.startswith("as cut")]
    assert cut == [
        f"as cut:\n{what} leakage not measured (the\nattack had nothing usable); "
        "team return\n-9.00 to -8.90"
        for what in ("reward type", "reward detail")
    ]
    assert "as" in seen  # drawn in both panels: one entry
    assert not any(label.startswith("as:") for label in seen)


def _archived_grid(out, archive, epsilons: str, seeds: int) -> list[str]:
    """`asfed tradeoff` arguments of a tiny AS grid on navigation, one worker, with --archive
    last (the archive tests replace its value)."""
    return [
        "tradeoff", "--env", "navigation", "--methods", "as", "--epsilons", epsilons,
        "--seeds", str(seeds), "--rounds", "2", "--episodes", "2", "--workers", "1",
        "--out", str(out), "--archive", str(archive),
    ]  # fmt: skip


def test_archived_points_are_not_trained_again_and_a_changed_config_is_refused(tmp_path) -> None:
    """A grid finished over several sittings: every finished point's row goes to --archive;
    with the run folders gone, the same command trains nothing and writes the same rows; an
    archived point whose config differs from the plan's is refused, naming the key."""
    import json
    import shutil

    out, archive = tmp_path / "sweep", tmp_path / "archive"
    args = _archived_grid(out, archive, epsilons="2,inf", seeds=1)
    assert asfed(*args).returncode == 0
    assert sorted(p.name for p in archive.glob("*.json")) == [
        "navigation_as_eps2_s1.json",
        "navigation_as_epsinf_s1.json",
    ]
    first = (out / "tradeoff.csv").read_text()
    longer = [*args[:-1], str(tmp_path / "other")]
    longer[longer.index("--rounds") + 1] = "3"
    res = refused(*longer)  # extended to 3 rounds, the DP point keeps its 2-round noise
    assert res.returncode == 2 and "dp_sigma" in res.stderr and "not archived" in res.stderr
    assert not (tmp_path / "other" / "navigation_as_eps2_s1.json").exists()
    shutil.rmtree(out)
    res = asfed(*args)
    assert res.returncode == 0, res.stderr
    assert not (out / "navigation_as_eps2_s1").exists()  # nothing trained
    assert "2 point(s) from" in " ".join(res.stdout.split())
    assert (out / "tradeoff.csv").read_text() == first
    page = asfed("report", str(out))  # the HTML report of a trade-off drawn from its archive
    assert page.returncode == 0, page.stderr
    html = (out / "report.html").read_text()
    assert "privacy-performance frontier" in html and "read from its archive" in html
    file = archive / "navigation_as_eps2_s1.json"
    entry = json.loads(file.read_text())
    entry["config"]["rho"] = 0.5
    for damage, says in ((json.dumps(entry), "rho=0.5"), ("{not json", "cannot read archived")):
        file.write_text(damage)
        res = refused(*args)
        assert res.returncode == 2 and says in " ".join(res.stderr.split()), res.stderr


def test_the_shadow_attack_takes_a_points_other_seeds_as_its_shadows() -> None:
    """Leave one seed out: with the update column naming every type and the actions column
    noise, the learned message attacker names every secret and the learned actions-only
    attacker does not; with fewer than MIN_SECRETS other secrets nothing is claimed."""
    from asfed.experiments.tradeoff import _shadow_scores

    rng = np.random.default_rng(0)

    def secret(k: int) -> dict:
        x = np.zeros((3, 3))
        x[k, 0] = 1.0  # update: the true type scores highest
        x[:, 1] = rng.normal(size=3)  # one-step: noise
        x[:, 2] = rng.normal(size=3)  # actions-only: noise
        return {"victim": 0, "truth": k, "features": (x - x.mean(0)).tolist()}

    pts = [{"seed": s, "secrets": [secret(k) for k in rng.permutation(3)]} for s in range(1, 6)]
    out = _shadow_scores(pts)
    assert out["shadow_secrets"] == 15 and out["shadow_accuracy"] == 1.0
    assert out["shadow_actions_accuracy"] < 0.7
    assert out["shadow_leakage_ci"][0] > 0  # significant with 15 secrets
    two = _shadow_scores(pts[:2])  # each seed has 3 other secrets: too few to fit
    assert two["shadow_secrets"] == 0 and math.isnan(two["shadow_leakage"])


def test_a_point_is_archived_as_soon_as_it_finishes_not_only_when_the_grid_ends(
    tmp_path,
) -> None:
    """A sitting can end without warning (SIGKILL: no `finally`): each finished point's row is
    in --archive while the grid still trains, so a killed grid loses at most its unfinished
    runs."""
    import json
    import signal
    import subprocess
    import time

    from asfed.experiments.observers import TRADEOFF_POINT_FILE
    from tests.test_simulate_cli import CLI, CLI_ENV

    out, archive = tmp_path / "sweep", tmp_path / "archive"
    args = _archived_grid(out, archive, epsilons="inf", seeds=3)
    proc = subprocess.Popen(
        [*CLI, *args], env=CLI_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not list(archive.glob("*.json")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        third = out / "navigation_as_epsinf_s3" / TRADEOFF_POINT_FILE
        running = proc.poll() is None and not third.exists()  # the grid's last run unfinished
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert running, "the first point was archived only after the grid ended"
    first = sorted(archive.glob("*.json"))[0]
    assert first.name == "navigation_as_epsinf_s1.json"
    assert json.loads(first.read_text())["row"]["seed"] == 1


def test_a_diverged_point_is_a_result_counted_apart_and_never_trained_again(tmp_path) -> None:
    """PS mixes its neighbours' noised parameters into its own: at epsilon 1 the noise blows its
    policy up in the first round (with these secrets: the noise is drawn from them). That
    point's training diverges: the grid still finishes (exit 0), the point's row says where, the
    summary counts it apart from the seeds it averages, it is archived, and the same command
    does not train it into the same divergence again; a damaged record of it is refused."""
    import json
    import shutil

    out, archive = tmp_path / "sweep", tmp_path / "archive"
    args = [
        "tradeoff", "--env", "exchange", "--methods", "ps", "--epsilons", "1,inf",
        "--seeds", "1", "--rounds", "2", "--episodes", "2", "--workers", "1",
        "--private-seed", "2", "--out", str(out), "--archive", str(archive),
    ]  # fmt: skip
    res = asfed(*args)
    assert res.returncode == 0, res.stderr
    said = " ".join(res.stdout.split())
    assert "diverged: exchange_ps_eps1_s1 after" in said and "to train it again" in said
    record = json.loads((out / "exchange_ps_eps1_s1" / "diverged.json").read_text())
    assert "policy loss" in record["error"] and record["rounds"] < 2
    with open(out / "tradeoff.csv") as f:
        rows = {r["epsilon_target"]: r for r in csv.DictReader(f)}
    assert rows["1.0"]["diverged"].startswith("after ") and rows["1.0"]["team_return"] == "nan"
    assert rows["inf"]["diverged"] == "" and math.isfinite(float(rows["inf"]["team_return"]))
    assert "1 of 1" in res.stdout  # the table's diverged column
    assert (out / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((archive / "exchange_ps_eps1_s1.json").read_text())["row"]["diverged"]
    again = asfed(*args)  # the run folder's record: nothing trained
    assert again.returncode == 0 and "0 point(s)" not in again.stdout
    assert (out / "tradeoff.csv").read_text().count("after ") == 1
    shutil.rmtree(out)  # the archive's record: nothing trained either
    res = asfed(*args)
    assert res.returncode == 0, res.stderr
    assert not (out / "exchange_ps_eps1_s1").exists()
    with open(out / "tradeoff.csv") as f:
        assert [r["diverged"] != "" for r in csv.DictReader(f)] == [True, False]


def test_a_damaged_divergence_record_is_refused(tmp_path) -> None:
    from asfed.errors import AsfedError
    from asfed.runs import DIVERGED, diverged

    assert diverged(tmp_path) is None
    (tmp_path / DIVERGED).write_text('{"rounds": "3"}')
    try:
        diverged(tmp_path)
    except AsfedError as err:
        assert "cannot read" in str(err) and "delete the run folder" in str(err)
    else:
        raise AssertionError("a damaged record was read")


def test_a_divergence_counts_only_before_the_rounds_asked_and_a_resume_forgets_it(
    tmp_path,
) -> None:
    """A run that diverged after more rounds than a plan asks has finished that plan's rounds;
    resuming a run (it trains again) drops its old record, so a later finish is not called a
    divergence; an audit, which needs every round, fails on a diverged run."""
    import json

    import pytest

    from asfed.cli.common import exit_if_failed
    from asfed.config import build_config
    from asfed.engine.driver import resume, start, train
    from asfed.experiments.runner import Outcome, diverged_before
    from asfed.runs import DIVERGED

    cfg = build_config(env="navigation", method="ippo", engine="local", episodes=2, rounds=2)
    sim, run, rows = start(cfg, tmp_path / "r", private_seed=1)
    train(sim, run, rows, None)
    (tmp_path / "r" / DIVERGED).write_text(json.dumps({"rounds": 1, "error": "round 1: nan"}))
    assert diverged_before(tmp_path / "r", 2) is not None
    assert diverged_before(tmp_path / "r", 1) is None  # the plan's one round finished
    sim, run, rows = resume(tmp_path / "r", 3)
    train(sim, run, rows, None)
    assert not (tmp_path / "r" / DIVERGED).exists()
    done = Outcome(tmp_path, ("r",), (), {}, {"r": "after 1 rounds: nan"})
    exit_if_failed(done)  # a sweep: a result
    with pytest.raises(SystemExit) as stop:
        exit_if_failed(done, complete=True)  # an audit: a failure
    assert stop.value.code == 1


def test_the_report_leaves_a_diverged_run_out_of_the_final_means() -> None:
    from pathlib import Path

    import numpy as np

    from asfed.report.collect import Run
    from asfed.report.panels import Series

    def run(last: float, gone: str | None) -> Run:
        team = np.full(20, last)
        return Run(Path("x"), {}, team, np.zeros(20), [], None, gone)

    series = Series("ps", "ps", [run(5.0, None), run(7.0, None), run(-50.0, "after 20 rounds")])
    assert list(series.finals) == [5.0, 7.0] and series.diverged == 1


def test_a_run_that_diverges_on_worker_processes_records_where(tmp_path) -> None:
    """Whoever trains a run records its divergence (`driver.train`), and an agent's worker
    process hands the error back as a divergence, not as another error."""
    import json

    out = tmp_path / "run"
    res = asfed(
        "simulate", "--env", "exchange", "--method", "ps", "--dp-epsilon", "1", "--rounds", "3",
        "--episodes", "2", "--workers", "2", "--engine", "local", "--private-seed", "2",
        "--out", str(out),
    )  # fmt: skip
    assert res.returncode != 0 and "training diverged" in res.stderr, res.stderr
    record = json.loads((out / "diverged.json").read_text())
    assert record["rounds"] < 3 and "policy loss" in record["error"]
