"""Run attacks on finished runs and score them against ground truth.

For each run folder and victim, the attack is handed only the attacker's view (`attacks.view`);
scoring alone opens `ground_truth/`. Reward type: the per-episode accuracy against chance 1/K
(plus the run-level guess and a mutual-information lower bound); reward inversion: Pearson and
Spearman correlation and R^2 after an affine calibration, on held-out episodes. Episodes are split
three ways by their index (fit, calibrate, score), so fitting and scoring never share a
transition. Every score has its actions-only baseline beside it; the leakage due to the messages
is the difference. Runs (training seeds) are pooled with bootstrap intervals over runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from asfed.comm import record
from asfed.errors import AsfedError
from attacks import ATTACKS
from attacks.features import rules
from attacks.reward_inversion import RewardEstimate, predict
from attacks.reward_type import NoEvidence, TypeGuess
from attacks.rounds import all_episodes
from attacks.view import AttackerView, load_view, parse_attacker, run_config
from audits import scoring

QUESTIONS = ("reward-type", "reward-inversion")
PREFIX = {"messages": "", "baseline": "baseline_"}


@dataclasses.dataclass
class VictimScore:
    """One (run, victim): `score` and `baseline` on the same measure (None: no evidence)."""

    run: str
    seed: int
    env: str
    method: str
    attack: str
    attacker: str
    victim: int
    chance: float
    score: float | None
    baseline: float
    extra: dict[str, float]
    note: str = ""


def _truth_type(path: Path, view: AttackerView) -> tuple[int, int]:
    """(the victim's true type k, K), from ground truth (scoring only)."""
    with np.load(path / record.TRUTH / "params.npz") as params:
        w = params["reward_weights"][view.victim]
    core = rules(view.env, view.options)
    return core.reward_type_of(w), len(core.reward_type_candidates())


def _folds(view: AttackerView) -> list[set[int]]:
    """Episodes split three ways by their index: fit, calibrate, score."""
    eps = all_episodes(view)
    return [set(eps[i::3].tolist()) for i in range(3)]


def _type_scores(guess: TypeGuess, k_true: int) -> dict[str, float]:
    hits = guess.episode_guesses == k_true
    return {
        "accuracy": float(hits.mean()),
        "episodes": float(len(hits)),
        "run_guess_correct": float(guess.guess == k_true),
    }


def _pooled_mi(guesses: list[tuple[TypeGuess, int]]) -> float:
    """The MI lower bound over every victim's episodes of one run: pooled, the true types are a
    permutation of the K candidates (navigation, exchange), so the labels are spread over the
    types rather than one fixed label per victim. Alternate episodes fit lambda and score."""
    scores = np.concatenate([g.episode_scores for g, _ in guesses])
    labels = np.concatenate([np.full(len(g.episode_scores), k) for g, k in guesses])
    half = np.arange(len(labels)) % 2 == 0
    return scoring.mi_lower_bound(scores[half], labels[half], scores[~half], labels[~half])


def _truth_rewards(path: Path, victim: int, rounds: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = np.zeros(len(rows))
    for r in np.unique(rounds):
        with np.load(path / record.TRUTH / f"round_{int(r):06d}.npz") as data:
            rewards = data["rewards"]
        pub = record.read_public(path, int(r))
        per_row = rewards[pub.valid][:, victim]
        out[rounds == r] = per_row[rows[rounds == r]]
    return out


def _inversion_scores(
    path: Path, view: AttackerView, est: RewardEstimate, folds: list[set[int]]
) -> dict[str, float]:
    calib = predict(view, est, folds[1])
    test = predict(view, est, folds[2])
    calib_true = _truth_rewards(path, view.victim, calib[0], calib[1])
    test_true = _truth_rewards(path, view.victim, test[0], test[1])
    return {
        "pearson": scoring.pearson(test[2], test_true),
        "spearman": scoring.spearman(test[2], test_true),
        "r2_calibrated": scoring.calibrated_r2(calib[2], calib_true, test[2], test_true),
        "transitions": float(len(test_true)),
    }


def audit_run(
    path: Path,
    attacks: str | list[str],
    attacker: str = "relay",
    victims: list[int] | None = None,
) -> list[VictimScore]:
    """Audit one run folder with each of `attacks` (reward-type, reward-inversion)."""
    path = Path(path)
    questions = [attacks] if isinstance(attacks, str) else list(attacks)
    for q in questions:
        if q not in QUESTIONS:
            raise AsfedError(f"unknown attack {q!r} to score; accepted: {', '.join(QUESTIONS)}")
    cfg = run_config(path)
    n = int(cfg.agents or 0)
    listener = parse_attacker(attacker, n)
    if not (path / record.TRUTH / "params.npz").exists():
        raise AsfedError(f"{path} has no ground truth to score against (ground_truth/ missing)")
    chosen = victims if victims is not None else [j for j in range(n) if j != listener]
    out = []
    pooled: dict[str, list] = {"messages": [], "baseline": []}
    for j in chosen:
        view = load_view(path, attacker, j)  # one view per victim: both questions share features
        for q in questions:
            base = dict(
                run=str(path),
                seed=cfg.seed,
                env=cfg.env,
                method=cfg.method,
                attack=q,
                attacker=attacker,
                victim=j,
            )
            if q == "reward-type":
                out.append(_type_row(path, view, base, pooled))
            else:
                out.append(_inversion_row(path, view, base))
    for key, guesses in pooled.items():
        if not guesses:
            continue
        mi, name = _pooled_mi(guesses), PREFIX[key] + "mi_lower_bound"
        for row in out:
            if row.attack == "reward-type" and (key == "baseline" or row.score is not None):
                row.extra[name] = mi
    return out


def _type_row(path: Path, view: AttackerView, base: dict, pooled: dict[str, list]) -> VictimScore:
    impl = ATTACKS.get("reward-type")()
    guess = impl.run(view)  # first: it refuses envs without a discrete reward type
    k_true, k = _truth_type(path, view)
    baseline_guess = impl.baseline(view)
    pooled["baseline"].append((baseline_guess, k_true))
    if not isinstance(guess, NoEvidence):
        pooled["messages"].append((guess, k_true))
    baseline = _type_scores(baseline_guess, k_true)
    extra = {f"baseline_{key}": v for key, v in baseline.items()}
    if isinstance(guess, NoEvidence):
        return VictimScore(
            **base,
            chance=1 / k,
            score=None,
            baseline=baseline["accuracy"],
            extra=extra,
            note=guess.reason,
        )
    found = _type_scores(guess, k_true)
    return VictimScore(
        **base,
        chance=1 / k,
        score=found["accuracy"],
        baseline=baseline["accuracy"],
        extra={**found, **extra},
    )


def _inversion_row(path: Path, view: AttackerView, base: dict) -> VictimScore:
    impl = ATTACKS.get("reward-inversion")()
    folds = _folds(view)
    est = impl.run(view, folds[0])
    baseline = _inversion_scores(path, view, impl.baseline(view, folds[0]), folds)
    extra = {f"baseline_{key}": v for key, v in baseline.items()}
    if isinstance(est, NoEvidence):
        return VictimScore(
            **base,
            chance=0.0,
            score=None,
            baseline=baseline["pearson"],
            extra=extra,
            note=est.reason,
        )
    found = _inversion_scores(path, view, est, folds)
    return VictimScore(
        **base,
        chance=0.0,
        score=found["pearson"],
        baseline=baseline["pearson"],
        extra={**found, **extra},
    )


@dataclasses.dataclass
class Summary:
    """Pooled over runs and victims of one (env, method, attack, attacker)."""

    env: str
    method: str
    attack: str
    attacker: str
    runs: int
    victims: int
    measure: str
    score: float | None
    score_ci: tuple[float, float] | None
    chance: float
    baseline: float
    baseline_ci: tuple[float, float] | None
    leakage: float | None
    leakage_ci: tuple[float, float] | None
    ci_method: str
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _per_run(rows: list[VictimScore], runs: list[str], value) -> list[float]:
    """The mean of `value` over each run's victims, one number per run that has rows."""
    return [
        float(np.mean([value(r) for r in rows if r.run == run]))
        for run in runs
        if any(r.run == run for r in rows)
    ]


def pool(rows: list[VictimScore]) -> list[Summary]:
    """One summary per (env, method, attack, attacker): means over victims within a run, then
    over runs; 95% intervals by bootstrap over runs (with one run: Wilson over the run's
    episode guesses for reward type, none for inversion)."""
    groups: dict[tuple, list[VictimScore]] = {}
    for r in rows:
        groups.setdefault((r.env, r.method, r.attack, r.attacker), []).append(r)
    out = []
    for (env, method, attack, attacker), rs in groups.items():
        runs = sorted({r.run for r in rs})
        scored = [r for r in rs if r.score is not None]
        base = _per_run(rs, runs, lambda r: r.baseline)
        measure = "episode accuracy" if attack == "reward-type" else "Pearson r (held out)"
        silent = sum(1 for r in rs if r.score is None)
        note = (
            f"{attacker} received nothing from the victims ({method} sends nothing it can use)"
            if silent == len(rs)
            else f"{silent} of {len(rs)} victims sent {attacker} nothing"
            if silent
            else ""
        )
        score = _per_run(scored, runs, lambda r: r.score)
        leak = _per_run(scored, runs, lambda r: r.score - r.baseline)
        ci_method = "bootstrap over runs"
        score_ci = scoring.cluster_bootstrap(score)
        if scored and score_ci is None and attack == "reward-type":
            hits = sum(round(r.score * r.extra["episodes"]) for r in scored)
            total = int(sum(r.extra["episodes"] for r in scored))
            score_ci, ci_method = scoring.wilson(hits, total), "Wilson (one run)"
        elif score_ci is None:
            ci_method = "one run: no interval (give several seeds)"
        mean = lambda v: float(np.mean(v)) if v else None  # noqa: E731
        out.append(
            Summary(
                env, method, attack, attacker, len(runs), len(rs), measure,
                mean(score), score_ci, rs[0].chance,
                mean(base), scoring.cluster_bootstrap(base),
                mean(leak), scoring.cluster_bootstrap(leak), ci_method, note,
            )
        )  # fmt: skip
    return out
