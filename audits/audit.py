"""Run attacks on finished runs and score them against ground truth.

For each run folder and victim, the attack is handed only the attacker's view (`attacks.view`);
scoring alone opens `ground_truth/`. Reward type is asked by three attackers: the one-step
estimator (`reward-type`), the `update` attack, and, given shadow runs, the learned `shadow`
attack; each makes one run-level guess per secret (one agent of one run), scored right or wrong,
beside the actions-only attacker of the same class. Reward inversion: Pearson and Spearman
correlation and R^2 after an affine calibration, on held-out episodes (episodes split three ways
by their index: fit, calibrate, score, so fitting and scoring never share a transition).

Pooling (`pool`) counts independent units only: accuracies and their leakage over secrets
(Clopper-Pearson), ROC curves over secrets' scores, correlations and their leakage over runs
(t intervals); never the episodes or rounds of one run.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

from asfed.comm import record
from asfed.csvfile import read_rows
from asfed.errors import AsfedError
from asfed.runs import FINAL_WINDOW
from attacks import ATTACKS
from attacks.channels import evidence, reading
from attacks.features import rules
from attacks.reward_inversion import RewardEstimate, predict
from attacks.reward_type import NoEvidence, TypeGuess, silence
from attacks.rounds import all_episodes
from attacks.shadow import ShadowModel, features, guesses
from attacks.view import AttackerView, forget_records, load_view, parse_attacker, run_config
from audits import scoring
from audits.empirical import epsilon_lower_bound

TYPE_ATTACKS = ("reward-type", "update", "shadow")  # the attackers asking the reward type
QUESTIONS = (*TYPE_ATTACKS, "reward-inversion")
FPRS = (0.01, 0.001)  # the low false-positive rates TPR is reported at


@dataclasses.dataclass
class VictimScore:
    """One (run, victim) under one attack: `score` and `baseline` on the same measure (reward
    type: 1 if the run-level guess is right; None: no evidence); for reward type, each
    hypothesis's score `[K]` for the attack (`scores`) and the actions-only attacker
    (`baseline_scores`), and the true type (`truth`)."""

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
    scores: list[float] | None = None
    baseline_scores: list[float] | None = None
    truth: int | None = None
    read: str = ""


@dataclasses.dataclass(frozen=True)
class Shadows:
    """The shadow attack's two learned attackers: on the messages' features and on the public
    actions' alone (the same shadows, the same model class)."""

    messages: ShadowModel
    actions: ShadowModel
    runs: int


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
    """The run-level guess (the trial), and the per-episode (or per-round) guesses' share right,
    which is descriptive only: one run's episodes share its secret and its messages."""
    out = {"correct": float(guess.guess == k_true)}
    if len(guess.episode_guesses):
        out["episode_accuracy"] = float((guess.episode_guesses == k_true).mean())
    return out


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
    shadows: Shadows | None = None,
) -> list[VictimScore]:
    """Audit one run folder with each of `attacks` (QUESTIONS; `shadow` needs `shadows`)."""
    path = Path(path)
    questions = [attacks] if isinstance(attacks, str) else list(attacks)
    for q in questions:
        if q not in QUESTIONS:
            raise AsfedError(f"unknown attack {q!r} to score; accepted: {', '.join(QUESTIONS)}")
    if "shadow" in questions and shadows is None:
        raise AsfedError("the shadow attack needs shadow runs (--shadows FOLDER...)")
    cfg = run_config(path)
    n = int(cfg.agents or 0)
    listener = parse_attacker(attacker, n)
    if not (path / record.TRUTH / "params.npz").exists():
        raise AsfedError(f"{path} has no ground truth to score against (ground_truth/ missing)")
    chosen = victims if victims is not None else [j for j in range(n) if j != listener]
    team = _team_return(path)
    try:
        return _audit_victims(path, cfg, questions, attacker, chosen, shadows, team)
    finally:
        forget_records()  # the run's shared records and features: gigabytes on long runs


def _audit_victims(
    path: Path,
    cfg: Any,
    questions: list[str],
    attacker: str,
    chosen: list[int],
    shadows: Shadows | None,
    team: float,
) -> list[VictimScore]:
    """Every chosen victim's rows, in victim order (the victims share the run's features)."""
    out = []
    for j in chosen:
        view = load_view(path, attacker, j)  # one view per victim: the attacks share features
        read = reading(view, evidence(view)).line()
        made: dict = {}  # the cheap attacks' guesses on this view, shared by the type attacks
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
            if q == "reward-inversion":
                row = _inversion_row(path, view, base)
            else:
                row = _type_row(path, view, base, q, shadows, made)
            row.read = read
            row.extra["team_return"] = team
            row.extra["dp_delta"] = cfg.dp_delta if cfg.private else 0.0
            out.append(row)
    return out


def audit_runs(
    paths: list[Path],
    attacks: list[str],
    attacker: str = "relay",
    victims: list[int] | None = None,
    shadows: dict[str, Shadows] | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[VictimScore]:
    """`audit_run` on every run, as rows in run order then victim order, with the runs spread
    over `workers` processes. A run's victims are attacked in one process together, where they
    share the counterfactual features (computed once for every agent): those are most of a
    victim's audit, so splitting a run's victims over processes would compute them again in
    each. Each victim is attacked on its own view with deterministic attacks, so the rows are
    the same for any `workers`. shadows: each run's shadow models, by str(path).
    progress(done, total) counts (run, victim) pairs, reported as each run finishes."""
    shadows = shadows or {}
    report = progress or (lambda done, total: None)
    tasks = []
    for path in paths:
        n = int(run_config(Path(path)).agents or 0)
        listener = parse_attacker(attacker, n)
        chosen = victims if victims is not None else [j for j in range(n) if j != listener]
        tasks.append((Path(path), attacks, attacker, list(chosen), shadows.get(str(path))))
    total, done = sum(len(t[3]) for t in tasks), 0
    report(0, total)
    if workers <= 1 or len(tasks) <= 1:
        out = []
        for task in tasks:
            out += audit_run(*task)
            done += len(task[3])
            report(done, total)
        return out
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        min(workers, len(tasks)), mp_context=ctx, initializer=_init, initargs=(os.getpid(),)
    ) as pool:
        futures = {pool.submit(audit_run, *task): len(task[3]) for task in tasks}
        for future in as_completed(futures):
            done += futures[future]
            report(done, total)
        return [row for f in futures for row in f.result()]


def _init(parent: int) -> None:
    """An attack process: one library thread, killed by the kernel if the audit dies."""
    from asfed.lifetime import die_with_parent
    from asfed.threads import one_thread

    die_with_parent(parent)
    one_thread()


def _team_return(path: Path) -> float:
    """The run's team return over its last FINAL_WINDOW rounds (NaN without metrics): what the
    run had learned when its messages were audited."""
    try:
        rows = read_rows(path / "metrics.csv")[-FINAL_WINDOW:]
        return float(np.mean([float(r["team_return"]) for r in rows])) if rows else math.nan
    except (OSError, KeyError, ValueError):
        return math.nan


def _type_guesses(
    view: AttackerView, attack: str, shadows: Shadows | None, made: dict
) -> tuple[TypeGuess | NoEvidence, TypeGuess]:
    """(the attack's guess, the actions-only attacker's of the same class); `made` keeps the
    cheap attacks' guesses on this view (by `attacks.shadow.COLUMNS` name), made once."""
    first = {"reward-type": "one-step", "update": "update"}
    if not made:
        made.update(guesses(view))
    if attack in first:
        return made[first[attack]], made["actions-only"]
    if attack == "shadow":
        feats = features(view, made)
        if not view.messages:
            guess: TypeGuess | NoEvidence = silence(view)
        else:
            guess = shadows.messages.guess(feats, "shadow")
        return guess, shadows.actions.guess(feats, "shadow-actions")
    raise AsfedError(f"unknown reward-type attack {attack!r}; accepted: {TYPE_ATTACKS}")


def _type_row(
    path: Path, view: AttackerView, base: dict, attack: str, shadows: Shadows | None, made: dict
) -> VictimScore:
    guess, baseline_guess = _type_guesses(view, attack, shadows, made)
    k_true, k = _truth_type(path, view)
    baseline = _type_scores(baseline_guess, k_true)
    extra = {f"baseline_{key}": v for key, v in baseline.items()}
    common = dict(
        chance=1 / k,
        baseline=baseline["correct"],
        baseline_scores=[float(x) for x in baseline_guess.scores],
        truth=k_true,
    )
    if isinstance(guess, NoEvidence):
        return VictimScore(**base, **common, score=None, extra=extra, note=guess.reason)
    found = _type_scores(guess, k_true)
    return VictimScore(
        **base,
        **common,
        score=found["correct"],
        extra={**found, **extra},
        scores=[float(x) for x in guess.scores],
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
    """Pooled over runs and victims of one (env, method, attack, attacker). Reward type: the
    accuracy over secrets with its Clopper-Pearson interval (which takes the secrets of one run
    as independent; they are drawn jointly, a permutation on exchange and navigation, so `extra`
    also holds the accuracy and interval over one secret a run, strictly independent), and the
    actions-only baseline over the same secrets; inversion: the mean over runs of
    each run's mean r, with its t interval; leakage: score - baseline, for the type with the
    difference of the two 97.5% Clopper-Pearson intervals (`scoring.difference_interval`:
    never of zero width), for inversion with a t interval over runs.
    `extra`: AUC and TPR at low FPR of the one-vs-rest tests (attack and baseline), the MI lower
    bound (lambda fitted leave-one-run-out) and the epsilon lower bound over one secret a run."""

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
    extra: dict[str, float] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _per_run(rows: list[VictimScore], runs: list[str], value) -> list[float]:
    """The mean of `value` over each run's victims, one number per run that has rows."""
    return [
        float(np.mean([value(r) for r in rows if r.run == run]))
        for run in runs
        if any(r.run == run for r in rows)
    ]


def _note(rs: list[VictimScore], attacker: str, method: str) -> str:
    silent = sum(1 for r in rs if r.score is None)
    if silent == len(rs):
        return f"{attacker} received nothing from the victims ({method} sends nothing it can use)"
    return f"{silent} of {len(rs)} victims sent {attacker} nothing" if silent else ""


def _roc_extra(rows: list[VictimScore], field: str, prefix: str) -> dict[str, float]:
    """AUC and TPR at FPRS of the pooled one-vs-rest tests on the secrets' scores."""
    have = [r for r in rows if getattr(r, field) is not None]
    if not have:
        return {}
    s, y = scoring.one_vs_rest(
        np.array([getattr(r, field) for r in have]), np.array([r.truth for r in have])
    )
    out = {prefix + "auc": scoring.auc(s, y)}
    for f in FPRS:
        out[f"{prefix}tpr_at_fpr_{f:g}"] = scoring.tpr_at_fpr(s, y, f)
    return out


def _type_extra(rs: list[VictimScore], scored: list[VictimScore]) -> dict[str, float]:
    k = round(1 / rs[0].chance)
    extra: dict[str, float] = {
        "secrets": float(len(scored)),
        "negatives": float(len(scored) * (k - 1)),
    }
    extra |= _roc_extra(scored, "scores", "")
    extra |= _roc_extra(rs, "baseline_scores", "baseline_")
    for prefix, have, field in (("", scored, "scores"), ("baseline_", rs, "baseline_scores")):
        if have:
            extra[prefix + "mi_lower_bound"] = scoring.mi_leave_one_run_out(
                np.array([getattr(r, field) for r in have]),
                np.array([r.truth for r in have]),
                np.array([r.run for r in have]),
            )
    first = {}
    for r in scored:  # one secret a run: independent trials (a run's agents are drawn jointly)
        first.setdefault(r.run, r)
    hits = int(sum(r.score for r in first.values()))
    delta = float(rs[0].extra.get("dp_delta", 0.0))
    extra["epsilon_lower_bound"] = epsilon_lower_bound(hits, len(first), k, delta)
    extra["one_per_run_accuracy"] = hits / len(first) if first else math.nan
    extra["one_per_run_ci"] = scoring.clopper_pearson(hits, len(first)) if first else None
    return extra


def pool(rows: list[VictimScore]) -> list[Summary]:
    """One summary per (env, method, attack, attacker); see `Summary`."""
    groups: dict[tuple, list[VictimScore]] = {}
    for r in rows:
        groups.setdefault((r.env, r.method, r.attack, r.attacker), []).append(r)
    out = []
    for (env, method, attack, attacker), rs in groups.items():
        runs = sorted({r.run for r in rs})
        scored = [r for r in rs if r.score is not None]
        mean = lambda v: float(np.mean(v)) if v else None  # noqa: E731
        if attack == "reward-inversion":
            score = _per_run(scored, runs, lambda r: r.score)
            base = _per_run(rs, runs, lambda r: r.baseline)
            values = (mean(score), scoring.t_interval(score), mean(base), scoring.t_interval(base))
            leak = _per_run(scored, runs, lambda r: r.score - r.baseline)
            leakage, leakage_ci = mean(leak), scoring.t_interval(leak)
            measure, extra = "Pearson r (held out)", {}
            ci_method = f"t over {len(runs)} runs" if len(runs) > 1 else "one run: no interval"
        else:
            same = scored or rs  # the baseline over the secrets the attack scored
            hits, base_hits = sum(r.score for r in scored), sum(r.baseline for r in same)
            values = (
                hits / len(scored) if scored else None,
                scoring.clopper_pearson(int(hits), len(scored)) if scored else None,
                base_hits / len(same),
                scoring.clopper_pearson(int(base_hits), len(same)),
            )
            measure, extra = "accuracy over secrets", _type_extra(rs, scored)
            ci_method = f"Clopper-Pearson over {len(scored)} secrets ({len(runs)} runs)"
            n = len(scored)  # the leakage over the secrets both scored (`same`): conservative
            leakage = (hits - base_hits) / n if n else None
            leakage_ci = scoring.difference_interval(int(hits), n, int(base_hits), n) if n else None
        score, score_ci, baseline, baseline_ci = values
        team = _per_run(rs, runs, lambda r: r.extra.get("team_return", math.nan))
        extra["team_return"] = float(np.nanmean(team)) if np.isfinite(team).any() else math.nan
        extra["team_return_ci"] = scoring.t_interval(team)
        out.append(
            Summary(
                env, method, attack, attacker, len(runs), len(rs), measure,
                score, score_ci, rs[0].chance, baseline, baseline_ci,
                leakage, leakage_ci, ci_method,
                _note(rs, attacker, method), extra,
            )
        )  # fmt: skip
    return out
