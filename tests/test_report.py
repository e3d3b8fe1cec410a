"""`asfed report`: a tiny sweep (AS and IPPO on 2-agent predation, Fig. 7's metrics logged, an
audit and a trade-off beside it) drawn as one self-contained page that loads in headless
Chromium with no console error and shows every plot; the numbers in its tables; the README
section and its verdicts; bad input refused with nothing written."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from math import nan

import numpy as np
import pytest

from asfed.csvfile import read_rows
from asfed.errors import AsfedError
from asfed.experiments.plan import load_sweep
from asfed.experiments.runner import run_sweep
from asfed.experiments.tradeoff import FIELDS
from asfed.report.collect import collect
from asfed.report.page import render
from asfed.report.panels import panels
from asfed.report.results import (
    BEGIN,
    END,
    against_paper,
    against_random,
    replace_section,
    results_markdown,
)
from tests import browser
from tests.test_simulate_cli import asfed, refused

SCENARIO = """
env = "predation"
agents = 2
topology = "full"
rounds = 3
episodes = 2
horizon = 6
log_every = 1

[sweep]
title = "Tiny Fig. 7"
claim = "anticipations approach 'toward'"
methods = ["as", "ippo"]
seeds = 2
observe = ["anticipation"]

[sweep.claims]
"predation/as" = "closest to CPPO"

[sweep.expect]
"predation/as" = [1000.0, 2000.0]
"""
AUDIT = {
    "command": "asfed audit (synthetic, for the report test)",
    "caveat": "leakage = score - actions-only baseline",
    "summaries": [
        {
            "env": "predation", "method": "as", "attack": "reward-inversion", "attacker": "relay",
            "runs": 2, "victims": 2, "measure": "pearson", "score": 0.31, "score_ci": [0.1, 0.5],
            "chance": 0.0, "baseline": 0.05, "baseline_ci": [-0.1, 0.2], "leakage": 0.26,
            "leakage_ci": [0.0, 0.5], "ci_method": "bootstrap over runs", "note": "",
        }
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A finished tiny sweep, with an audit in one run and a trade-off in the folder."""
    root = tmp_path_factory.mktemp("report")
    scenario = root / "tiny7.toml"
    scenario.write_text(SCENARIO)
    folder = root / "sweep"
    outcome = run_sweep(load_sweep(str(scenario)), folder)
    assert outcome.failed == {} and len(outcome.trained) == 4
    png = (folder / "predation_as_s1" / "learning_curve.png").read_bytes()
    audit = folder / "predation_as_s1" / "audit"
    audit.mkdir()
    (audit / "audit.json").write_text(json.dumps(AUDIT))
    (audit / "audit.png").write_bytes(png)
    wide = ",".join(FIELDS)  # every column, and a long run path: the table must still fit
    row = f"as,1.0,1,-3.25,1.0,0.5,0.4,0.41,0.33,0.1,0.05,{folder / ('predation_as_eps1_s1' * 4)}"
    (folder / "tradeoff.csv").write_text(f"{wide}\n{row}\n")
    (folder / "tradeoff.png").write_bytes(png)
    (folder / "frontier.png").write_bytes(png)
    return folder


@pytest.mark.skipif(
    browser.CHROMIUM is None,
    reason="no chromium on PATH: .ci/run installs Debian's chromium package with apt-get, "
    "which was not possible on this machine",
)
def test_the_report_loads_in_headless_chromium_with_every_plot_and_no_error(sweep) -> None:
    out = sweep / "report.html"
    res = asfed("report", str(sweep), "--out", str(out))
    assert res.returncode == 0, res.stderr
    plots = int(re.search(r"\((\d+) plots", res.stdout).group(1))
    # per panel a learning curve and Fig. 7; normalised finals, bytes, the audit, the trade-off
    # and its frontier
    assert plots == 7
    images = "JSON.stringify([Array.from(document.querySelectorAll('img.plot'), i => [i.alt, i.naturalWidth, i.naturalHeight]), innerWidth, document.documentElement.scrollWidth, Array.from(document.querySelectorAll('table'), t => t.getBoundingClientRect().right - document.body.getBoundingClientRect().right)])"  # noqa: E501
    page = browser.load(out.resolve().as_uri(), images, width=1280)
    assert page.console_errors == [] and page.exceptions == [] and page.log_errors == []
    assert all(u.startswith(("file:", "data:")) for u in page.requests), page.requests  # no network
    shown, inner, scroll, past = json.loads(page.value)
    assert inner == 1280 and scroll <= inner  # nothing wider than the window
    assert past and max(past) <= 1, past  # every table within the page's column
    assert len(shown) == plots
    assert all(w > 100 and h > 100 for _, w, h in shown), shown  # every plot decoded and drawn
    alts = [alt for alt, _, _ in shown]
    assert (
        "learning curves: predation, 2 agents" in alts
        and "anticipation: predation, 2 agents" in alts
    )


def test_the_report_tables_hold_the_runs_numbers_and_the_references(sweep) -> None:
    (source,) = collect([sweep])
    (panel,) = panels(source)
    assert panel.title == "predation, 2 agents"
    assert [s.label for s in panel.series] == ["as", "ippo"]
    finals = [
        np.mean([float(r["team_return"]) for r in read_rows(sweep / name / "metrics.csv")])
        for name in ("predation_as_s1", "predation_as_s2")
    ]  # 3 rounds: the final window holds them all
    mean, lo, hi = panel.series[0].final_ci()
    assert mean == pytest.approx(np.mean(finals)) and lo < mean < hi
    refs = panel.references
    assert refs["optimum"].label == "all pursue" and refs["defect"].mean < refs["random"].mean
    assert panel.normalised(refs["random"].mean) == 0
    assert panel.normalised(refs["optimum"].mean) == 1
    page, _ = render([source])
    assert f"{mean:.2f} [{lo:.2f}, {hi:.2f}]" in page
    assert "closest to CPPO" in page and "anticipations approach" in page
    assert "reward-inversion" in page and "0.31 [0.10, 0.50]" in page  # the audit's table
    assert "epsilon_target" in page and "-3.25" in page  # the trade-off's table
    assert "predation_ippo_s2: config.toml" in page
    assert html.escape('topology = "full"') in page
    rows = read_rows(sweep / "predation_as_s1" / "anticipation.csv")
    assert [int(r["round"]) for r in rows] == [0, 1, 2]
    assert all(0 <= float(r["toward"]) <= 1 and float(r["mse"]) >= 0 for r in rows)
    assert read_rows(sweep / "predation_ippo_s1" / "anticipation.csv") == []  # IPPO sends none


def test_the_readme_section_states_the_budget_and_where_asfed_differs(sweep, tmp_path) -> None:
    text = results_markdown(collect([sweep]), "asfed report SWEEP --readme README.md")
    assert (
        "Budget: 3 rounds per run (3 done) of 2 episodes (up to 12 env steps a round), 2 seeds"
        in text
    )
    assert "Wall time" in text
    (as_row, ant) = [
        line for line in text.splitlines() if line.startswith("| predation, 2 agents | as |")
    ]  # the returns' table, then the anticipations'

    assert "closest to CPPO" in as_row and "differs from the paper (1000 to 2000)" in as_row
    # what the anticipations do: AS's first and last logged round, IPPO (none logged) absent
    (ant,) = [
        line for line in text.splitlines() if line.startswith("| predation, 2 agents | as | 2 |")
    ]
    logs = [read_rows(sweep / f"predation_as_s{i}" / "anticipation.csv") for i in (1, 2)]
    entropy = [sum(float(t[i]["entropy"]) for t in logs) / 2 for i in (0, -1)]
    assert f"| 0 to 2 | {entropy[0]:.4f} to {entropy[1]:.4f} |" in ant
    assert "| predation, 2 agents | ippo | 2 |" not in text
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nintro\n\n{BEGIN}\nold numbers\n{END}\n\nafter\n")
    out = tmp_path / "r.html"
    res = asfed("report", str(sweep), "--out", str(out), "--readme", str(readme))
    assert res.returncode == 0, res.stderr
    new = readme.read_text()
    assert new.startswith("# x\n\nintro\n\n" + BEGIN) and new.endswith(END + "\n\nafter\n")
    assert "old numbers" not in new and "#### Tiny Fig. 7" in new
    assert f"`asfed report {sweep} --out {out} --readme {readme}`" in new


def test_bad_input_is_one_clear_line_and_writes_nothing(sweep, tmp_path) -> None:
    with pytest.raises(AsfedError, match="no such folder"):
        collect([tmp_path / "nope"])
    with pytest.raises(AsfedError, match=r"is not a sweep folder \(sweep.json\), a run folder"):
        collect([tmp_path])
    out, readme = tmp_path / "r.html", tmp_path / "README.md"
    readme.write_text("# no markers\n")
    res = refused("report", str(sweep), "--out", str(out), "--readme", str(readme))
    assert res.returncode == 2 and "needs one line <!-- asfed-results:begin -->" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not out.exists() and readme.read_text() == "# no markers\n"


def test_a_final_return_is_placed_against_the_random_policy() -> None:
    assert against_random(3.7, 4.1, 4.21) == "below random (4.21)"
    assert against_random(2.4, 8.0, 4.21) == "indistinguishable from random (4.21)"
    assert against_random(4.5, 5.9, 4.21) == ""
    assert against_random(float("nan"), float("nan"), 4.21) == ""  # one seed: no interval


def test_a_run_written_before_a_setting_existed_joins_the_panel_of_its_default(sweep) -> None:
    (source,) = collect([sweep])
    del source.runs[0].config["predation_actions"]  # as in a run folder from before the option
    (panel,) = panels(source)
    assert panel.title == "predation, 2 agents"
    assert sum(len(s.runs) for s in panel.series) == len(source.runs)


def test_a_final_return_is_placed_against_the_papers_range() -> None:
    assert against_paper(5.6, 5.2, 6.0, 5, 7) == "agrees with the paper (5 to 7)"
    # the case: 2.63 [-14.85, 20.10] has an interval that covers 5-7
    assert against_paper(2.63, -14.85, 20.10, 5, 7).startswith("not distinguishable")
    assert against_paper(2.63, 1.0, 4.0, 5, 7) == "differs from the paper (5 to 7)"
    assert against_paper(2.63, nan, nan, 5, 7) == "differs from the paper (5 to 7)"  # one seed


def test_series_read_in_numeric_order_with_no_noise_named_and_last(sweep) -> None:
    (source,) = collect([sweep])
    run = next(r for r in source.runs if r.config["method"] == "as")
    source.runs = [
        dataclasses.replace(run, config={**run.config, "dp_epsilon": eps})
        for eps in (16.0, None, 4.0, 1.0)
    ]  # the order a sweep's string-sorted folder names would give
    (panel,) = panels(source)
    assert [s.label for s in panel.series] == [
        "as dp_epsilon=1",
        "as dp_epsilon=4",
        "as dp_epsilon=16",
        "as dp_epsilon=none (no noise)",
    ]


def test_a_method_that_does_not_read_rho_is_not_labelled_with_it(sweep) -> None:
    """AS at two rho beside IPPO (cleanup-diagnosis): "as rho=1", "as rho=1000", "ippo"."""
    (source,) = collect([sweep])
    as_run = next(r for r in source.runs if r.config["method"] == "as")
    other = next(r for r in source.runs if r.config["method"] != "as")
    source.runs = [
        dataclasses.replace(as_run, config={**as_run.config, "rho": 1000.0}),
        dataclasses.replace(as_run, config={**as_run.config, "rho": 1.0}),
        dataclasses.replace(other, config={**other.config, "rho": 1000.0}),
    ]
    (panel,) = panels(source)
    method = other.config["method"]
    assert sorted(s.label for s in panel.series) == sorted(["as rho=1", "as rho=1000", method])


def test_a_named_section_is_rewritten_and_the_main_one_kept(tmp_path) -> None:
    page = tmp_path / "results.md"
    named = "<!-- asfed-results:ssd:begin -->\nold ssd\n<!-- asfed-results:ssd:end -->"
    page.write_text(f"# R\n{BEGIN}\nmain\n{END}\n{named}\ntail\n")
    text = replace_section(page, "new ssd", "ssd")
    assert "main" in text and "new ssd" in text and "old ssd" not in text and "tail" in text
    with pytest.raises(AsfedError, match="needs one line <!-- asfed-results:other:begin -->"):
        replace_section(page, "x", "other")
    with pytest.raises(AsfedError, match="section 'a b' is invalid"):
        replace_section(page, "x", "a b")
