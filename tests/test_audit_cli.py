"""`asfed audit` end to end: a real short run's numbers with their CIs, the files it writes, and
one clear error (writing nothing) for every kind of bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from asfed.config import build_config
from asfed.engine.driver import start, train
from attacks.reward_type import from_messages
from audits import scoring
from tests.attacks.test_attacks import records, soft_optimal, view_with
from tests.test_simulate_cli import asfed, refused


def trained(tmp_path, name: str, private_seed: int = 11, **cfg) -> str:
    cfg = build_config(
        **{
            "env": "navigation",
            "method": "as",
            "rounds": 3,
            "episodes": 4,
            "log_every": 1,
            "engine": "local",
            **cfg,
        }
    )
    sim, run, rows = start(cfg, tmp_path / name, private_seed=private_seed)
    train(sim, run, rows)
    return str(run.path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("audit")
    return {
        "as": trained(base, "as"),
        "as2": trained(base, "as2", seed=2),  # the same private seed as "as"
        "as3": trained(base, "as3", private_seed=12, seed=3),
        "predation": trained(base, "pred", env="predation", agents=3, episodes=2),
    }


def test_a_real_short_as_run_on_navigation_is_audited_with_cis(runs, tmp_path) -> None:
    """The relay's reward-type accuracy on a short AS run, pooled over two seeds, with its CI,
    chance and the actions-only baseline (no threshold: the number is what it is)."""
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(runs["as"], a)
    shutil.copytree(runs["as2"], b)
    res = asfed("audit", str(a), str(b), "--attack", "all")
    assert res.returncode == 0, res.stderr
    assert "leakage = score - actions-only baseline" in res.stdout
    report = json.loads((a / "audit" / "audit.json").read_text())
    assert report["command"].startswith("asfed audit")
    kinds = {s["attack"]: s for s in report["summaries"]}
    assert set(kinds) == {"reward-type", "update", "reward-inversion"}  # shadow needs shadows
    for name in ("reward-type", "update"):
        t = kinds[name]
        assert t["runs"] == 2 and t["victims"] == 6 and t["chance"] == pytest.approx(1 / 3)
        lo, hi = t["score_ci"]
        assert (lo, hi) == pytest.approx(scoring.clopper_pearson(round(t["score"] * 6), 6))
        assert t["leakage"] == pytest.approx(t["score"] - t["baseline"], abs=1e-9)
        assert "over 6 secrets (2 runs)" in t["ci_method"]
        assert 0.0 <= t["extra"]["auc"] <= 1.0 and t["extra"]["negatives"] == 12
    victims = report["victims"]
    assert all("read 3 rounds" in v["read"] for v in victims)  # every logged round read
    for name in ("audit.json", "audit.csv", "audit.png"):
        assert (b / "audit" / name).exists()


def test_shuffled_labels_score_at_chance_and_true_ones_do_not() -> None:
    recs, env = records(episodes=32)
    hits_true = hits_shuffled = total = 0
    rng = np.random.default_rng(1)
    for victim in range(3):
        guess = from_messages(view_with(recs, victim, soft_optimal(recs, env, victim)))
        truth = env.private_params["slot_of"][victim]
        hits_true += int((guess.episode_guesses == truth).sum())
        hits_shuffled += int((guess.episode_guesses == rng.integers(0, 3, 64)).sum())
        total += len(guess.episode_guesses)
    lo, hi = scoring.wilson(hits_shuffled, total)
    assert lo <= 1 / 3 <= hi
    assert scoring.wilson(hits_true, total)[0] > 0.8


def test_wilson_matches_its_closed_form() -> None:
    lo, hi = scoring.wilson(5, 10)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert scoring.wilson(0, 10)[0] == 0.0


def bad(tmp_path, src, *args, edit=None):
    run = tmp_path / "run"
    shutil.copytree(src, run)
    if edit:
        edit(run)
    res = refused("audit", str(run), *args)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "error:" in res.stderr and len(res.stderr.strip().splitlines()) <= 2, res.stderr
    assert not (run / "audit").exists()
    return res.stderr


def test_bad_input_gets_one_clear_error_and_writes_nothing(runs, tmp_path) -> None:
    src = runs["as"]
    (tmp_path / "empty").mkdir()
    res = refused("audit", str(tmp_path / "empty"))
    assert res.returncode == 2 and "is not a run folder" in res.stderr
    cases = [
        ({"edit": lambda r: shutil.rmtree(r / "public")}, "no public record"),
        (
            {"edit": lambda r: (r / "messages.bin").write_bytes(b"\0" * 16)},
            "cannot read the message log",
        ),
        (
            {"edit": lambda r: (r / "public" / "round_000001.npz").write_bytes(b"garbage")},
            "cannot read the message log or public record",
        ),
    ]
    for i, (kw, message) in enumerate(cases):
        assert message in bad(tmp_path / str(i), src, **kw)
    assert "victim 7 does not exist" in bad(tmp_path / "v", src, "--victim", "7")
    assert "attacker 'agent:9' is invalid" in bad(tmp_path / "a", src, "--attacker", "agent:9")
    # navigation's default topology is a line: agent 0 never hears from agent 2
    err = bad(tmp_path / "n", src, "--attacker", "agent:0", "--victim", "2")
    assert "received nothing from agent 2" in err and "not zero leakage" in err
    assert "reward-type does not apply to predation" in bad(tmp_path / "p", runs["predation"])
    assert "unknown attack 'guess'" in bad(tmp_path / "g", src, "--attack", "guess")
    assert "needs shadow runs" in bad(tmp_path / "s", src, "--attack", "shadow")


def test_shadows_that_differ_share_a_seed_or_are_too_few_are_refused(runs, tmp_path) -> None:
    shadows = tmp_path / "shadows"
    shadows.mkdir()
    shutil.copytree(runs["as3"], shadows / "a")
    assert "needs at least 6 secrets from at least 2 runs" in bad(
        tmp_path / "1", runs["as"], "--attack", "shadow", "--shadows", str(shadows)
    )
    shutil.copytree(runs["as"], shadows / "b")  # the target's own seed and secret
    assert "share the public seed 1" in bad(
        tmp_path / "2", runs["as"], "--attack", "shadow", "--shadows", str(shadows)
    )
    shutil.rmtree(shadows / "b")
    shutil.copytree(runs["as2"], shadows / "b")  # another seed, the target's secret
    assert "share their private seed" in bad(
        tmp_path / "4", runs["as"], "--attack", "shadow", "--shadows", str(shadows)
    )
    other = tmp_path / "other"
    (other / "c").parent.mkdir()
    shutil.copytree(runs["as2"], other / "c")
    cfg = other / "c" / "config.toml"
    cfg.write_text(cfg.read_text().replace("episodes = 4", "episodes = 5"))
    err = bad(tmp_path / "3", runs["as"], "--attack", "shadow", "--shadows", str(other))
    assert "differs from target" in err and "episodes: shadow 5 vs target 4" in err


def test_dp_check_audits_a_dp_runs_mechanism_and_refuses_a_run_without_dp(runs, tmp_path) -> None:
    dp_run = trained(tmp_path, "dp", rounds=1, episodes=1, horizon=5, dp_epsilon=4.0)
    res = asfed("audit", dp_run, "--dp-check")
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "accountant epsilon 4 over" in text and "consistent" in text
    res = asfed("audit", runs["as"], "--dp-check")
    assert res.returncode == 2 and "ran without DP" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "dp" / "audit").exists()  # the check writes nothing


def test_train_mode_trains_shadows_once_and_runs_the_shadow_attack(tmp_path) -> None:
    out = tmp_path / "audit"
    args = ("audit", "--env", "exchange", "--methods", "as", "--seeds", "1", "--rounds", "1")
    args += ("--episodes", "1", "--shadow-seeds", "2", "--out", str(out), "--attack", "all")
    res = asfed(*args)
    assert res.returncode == 0, res.stderr
    shadows = sorted(p.name for p in (out / "shadows").iterdir() if p.is_dir())
    assert shadows == ["exchange_as_s1001", "exchange_as_s1002"]
    cache = out / "shadows" / shadows[0] / "audit" / "shadow_features_relay.json"
    assert json.loads(cache.read_text())["version"] >= 1
    report = json.loads((out / "exchange_as_s1" / "audit" / "audit.json").read_text())
    attacks = {s["attack"] for s in report["summaries"]}
    assert attacks == {"reward-type", "update", "shadow", "reward-inversion"}
    before = cache.stat().st_mtime_ns
    assert asfed(*args).returncode == 0  # runs and shadow features reused
    assert cache.stat().st_mtime_ns == before
    res = asfed("audit", str(out / "exchange_as_s1"), "--estimate")
    assert res.returncode == 2 and "--estimate belongs to a train mode" in res.stderr


def test_victims_attacked_on_two_processes_give_the_rows_of_one(runs) -> None:
    """`audit_runs` spreads runs over processes; each victim's attacks are deterministic on
    its own view, so the rows, in run then victim order, are the same."""
    from audits.audit import audit_runs

    paths = [runs["as"], runs["as3"]]
    attacks = ["reward-type", "update", "reward-inversion"]
    seen: list[tuple[int, int]] = []
    one = audit_runs(paths, attacks, workers=1, progress=lambda d, t: seen.append((d, t)))
    two = audit_runs(paths, attacks, workers=2)
    assert seen[0] == (0, 6) and seen[-1] == (6, 6)  # 2 runs x 3 victims
    assert [(r.run, r.victim, r.attack) for r in one] == [(r.run, r.victim, r.attack) for r in two]
    same = json.dumps([dataclasses.asdict(r) for r in one])  # NaN == NaN as text
    assert same == json.dumps([dataclasses.asdict(r) for r in two])


def test_a_runs_victims_share_its_counterfactual_features(runs, monkeypatch) -> None:
    """Every agent's counterfactual features of a (round, actor, hypothesis) are computed once
    for all the victims a process attacks in one run, not once a victim."""
    import attacks.rounds
    import attacks.view
    from audits.audit import audit_run

    calls: list[tuple] = []
    real = attacks.rounds.counterfactual_agents

    def counted(rec, env, options, actor, private):
        calls.append((rec.round, actor, repr(sorted(private.items()))))
        return real(rec, env, options, actor, private)

    monkeypatch.setattr(attacks.rounds, "counterfactual_agents", counted)
    audit_run(runs["as"], ["update", "reward-inversion"], victims=[0])
    alone = len(calls)
    assert not attacks.view._LAST_RECORDS  # let go once the run's victims are done
    calls.clear()
    audit_run(runs["as"], ["update", "reward-inversion"], victims=[0, 1, 2])
    assert alone > 0 and len(set(calls)) == len(calls)  # nothing computed twice
    assert len(calls) < 3 * alone


def test_archived_targets_are_neither_trained_nor_attacked_again(tmp_path) -> None:
    """An audit finished over several sittings: each scored target's victims go to --archive;
    with the run folders gone, the same command trains and attacks nothing and prints the same
    table; an archive made with other attacks is refused."""
    out, archive = tmp_path / "audit", tmp_path / "archive"
    args = ["audit", "--env", "exchange", "--methods", "as", "--seeds", "2", "--rounds", "1"]
    args += ["--episodes", "1", "--shadow-seeds", "2", "--attack", "all", "--markdown"]
    args += ["--out", str(out), "--archive", str(archive), "--workers", "1"]
    first = asfed(*args)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in archive.glob("*.json")) == [
        "exchange_as_s1.json",
        "exchange_as_s2.json",
    ]
    cut = lambda text: text[text.index("| env |") : text.index("wrote audit/")]  # noqa: E731
    table = cut(first.stdout)
    pooled = json.loads((out / "audit" / "audit.json").read_text())
    shutil.rmtree(out)
    again = asfed(*args)
    assert again.returncode == 0, again.stderr
    assert not out.exists() or not (out / "exchange_as_s1").exists()  # nothing trained
    assert cut(again.stdout) == table
    # the pooled table and figure are written beside the plan, from the archive alone
    assert json.loads((out / "audit" / "audit.json").read_text())["victims"] == pooled["victims"]
    assert (out / "audit" / "audit.png").read_bytes()[:4] == b"\x89PNG"
    other = [a if a != "all" else "update" for a in args]
    res = refused(*other)
    assert res.returncode == 2 and "this audit asks relay with update" in " ".join(
        res.stderr.split()
    )
