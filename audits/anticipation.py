"""Fig. 7 of the paper: do AS's anticipations come to match the policies they anticipate?

Read from a finished run's message log and public records, so training is untouched and the
numbers are exactly what the agents exchanged. For each logged round and each ordered pair
(i anticipates j) that exchanged messages, at the round's last sharing step (the latest policies
of the round; an AS run's anticipation pi^ij and j's own pi^jj on the same states):

    mse_<i>_<j>     mean over the states both messages cover and over j's actions of
                    (pi^jj(a|s) - pi^ij(a|s))^2: the paper's "MSE between the probability of the
                    action chosen by an agent and the anticipated action given by the other"
                    (with two actions, as in 2-agent predation, the two readings coincide)
    toward_<i>_<j>  predation only: the mean over states where j still hunts (not yet holding)
                    of pi^ij(toward the prey | s), the expected fraction of i's anticipated
                    actions for j that move toward the prey (the paper's top row of Fig. 7)
    entropy_<j>     the mean over those states of the entropy (nats) of j's own pi^jj as j
                    shared it (DP noise included, if any), on the states of the first pair
                    (i, j) in order: an MSE near 0 says little while both sides are still
                    uniform (log A), which this column tells apart (exchange-diagnosis)

`python -m audits.anticipation RUN [--round R]` prints, for predation, how often each predator
moved toward the prey with the prey on either side of it (`toward_by_side`, any method), and
each shared distribution's agreement with the actions the rollout took (`action_agreement`): how
often each predator's own policy points toward the prey, how often its sampled action did, the
mean probability it gave the action it took, and the same probability under each anticipation of
it. It is how the README reads a collapsed pair; a payload that does not fit its round's public
record is an error naming the round and sender.

`python -m audits.anticipation RUN RUN ... --across [--round R]` summarises several runs (the
seeds of one setting): per logged round, `toward`, `mse` and `entropy` as the mean and 95%
Student-t interval over the runs, and each run's value (`across`). The README's cross-seed Fig. 7
numbers come from it.

`anticipation.csv` in the run folder holds, per logged round: `round`, `mse`, `toward` and
`entropy` (the means over pairs, and over agents) and every pair's and agent's column. Rounds
the log did not keep (see `log_every`) have no row.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from asfed.comm.log import INDEX, read_log
from asfed.comm.messages import Message
from asfed.comm.record import PublicRecord, logged_rounds, read_public
from asfed.csvfile import write_rows
from asfed.errors import AsfedError
from asfed.intervals import mean_ci
from asfed.runs import RunFolder

CSV = "anticipation.csv"


def _full(msg: Message, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """A message's payload spread over the round's `rows` states: (dist `[M, A]`, covered `[M]`).
    A payload that does not fit the round's public record is an error, not a misread."""
    if msg.rows is None:
        if len(msg.payload) != rows:
            raise AsfedError(
                f"round {msg.round}: a {msg.kind} from agent {msg.sender} covers "
                f"{len(msg.payload)} states, its public record {rows}"
            )
        return msg.payload, np.ones(len(msg.payload), bool)
    if len(msg.rows) and (int(msg.rows.max()) >= rows or int(msg.rows.min()) < 0):
        raise AsfedError(
            f"round {msg.round}: a {msg.kind} from agent {msg.sender} points past its public "
            f"record's {rows} states"
        )
    dist = np.zeros((rows, msg.payload.shape[1]), np.float32)
    covered = np.zeros(rows, bool)
    dist[msg.rows], covered[msg.rows] = msg.payload, True
    return dist, covered


def _toward(
    obs: np.ndarray, j: int, n: int, frame: str = "left-right"
) -> tuple[np.ndarray, np.ndarray]:
    """Predation: the action index toward the prey for agent j on each row of `obs` `[M, D]`
    (left-right frame: right, 1, where x_j < x_prey; toward-away: always 1), and whether j
    still hunts there."""
    hunting = obs[:, n + j] < 0.5
    if frame == "toward-away":
        return np.ones(len(obs), np.int64), hunting
    if frame != "left-right":
        raise AsfedError(f"unknown predation frame {frame!r}; accepted: left-right, toward-away")
    return (obs[:, j] < 0).astype(np.int64), hunting


def round_metrics(
    folder: Path | None,
    round_: int,
    messages: list[Message],
    env: str,
    n: int,
    frame: str = "left-right",
) -> dict:
    """One logged round's row of `anticipation.csv` (see the module docstring); `folder` (its
    public record) is read only for predation or partial payloads; `frame` is predation's
    action frame (`predation_actions`)."""
    last = max(m.step for m in messages)
    sent = {(m.sender, m.receiver, m.kind): m for m in messages if m.step == last}
    partial = any(m.rows is not None for m in sent.values())
    public = read_public(folder, round_) if env == "predation" or partial else None
    row: dict[str, Any] = {"round": round_}
    mses, towards = [], []
    entropies: dict[int, float] = {}
    for (i, j, kind), ant in sorted(sent.items()):
        own = sent.get((j, i, "policy_dist"))
        if kind != "anticipation" or own is None:
            continue
        m = public.num_rows if public is not None else len(ant.payload)
        pij, seen_a = _full(ant, m)
        pjj, seen_p = _full(own, m)
        both = seen_a & seen_p
        if not both.any():
            continue
        mse = float(((pjj[both] - pij[both]) ** 2).mean())
        row[f"mse_{i}_{j}"] = mse
        mses.append(mse)
        if j not in entropies:
            q = np.clip(pjj[both], 1e-12, 1.0)
            entropies[j] = float(-(q * np.log(q)).sum(-1).mean())
            row[f"entropy_{j}"] = entropies[j]
        if env == "predation":
            toward, hunting = _toward(public.row_obs(), j, n, frame)
            keep = both & hunting
            if keep.any():
                p = float(pij[keep, toward[keep]].mean())
                row[f"toward_{i}_{j}"] = p
                towards.append(p)
    row["mse"] = float(np.mean(mses)) if mses else float("nan")
    row["entropy"] = float(np.mean(list(entropies.values()))) if entropies else float("nan")
    if env == "predation":
        row["toward"] = float(np.mean(towards)) if towards else float("nan")
    return row


def anticipation_rows(folder: Path) -> list[dict[str, Any]]:
    """Every logged round's row, from the run folder's message log (none if it sent no
    anticipations: a method other than AS, or nothing logged)."""
    folder = Path(folder)
    if not (folder / INDEX).exists():
        return []
    _, cfg = RunFolder.open(folder)
    cfg = cfg.resolved()
    by_round: dict[int, list[Message]] = defaultdict(list)
    for msg in read_log(folder):
        if msg.kind in ("anticipation", "policy_dist"):
            by_round[msg.round].append(msg)
    return [
        round_metrics(folder, r, msgs, cfg.env, cfg.agents, cfg.predation_actions)
        for r, msgs in sorted(by_round.items())
        if any(m.kind == "anticipation" for m in msgs)
    ]


ACROSS = ("toward", "mse", "entropy")


def across(folders: list[Path]) -> list[dict[str, Any]]:
    """Per round logged in every run: for each of `ACROSS` the mean and 95% t-interval over the
    runs that have a value (`<metric>`, `<metric>_low`, `<metric>_high`; `<metric>_n` of them:
    `toward` is NaN in a round where no anticipated predator still hunted) and each run's value
    in `folders`' order (`<metric>_runs`, NaN kept). A run that sent no anticipations is an
    error naming it (the summary would otherwise quietly cover fewer seeds)."""
    tables = []
    for folder in folders:
        rows = anticipation_rows(folder)
        if not rows:
            raise AsfedError(
                f"{folder} has no anticipations in its message log; accepted: AS run folders"
            )
        tables.append({r["round"]: r for r in rows})
    common = sorted(set.intersection(*(set(t) for t in tables)))
    out = []
    for r in common:
        row: dict[str, Any] = {"round": r, "runs": len(tables)}
        for key in ACROSS:
            values = [float(t[r].get(key, np.nan)) for t in tables]
            row[key], row[f"{key}_low"], row[f"{key}_high"] = mean_ci(values)
            row[f"{key}_runs"] = values
            row[f"{key}_n"] = int(np.isfinite(values).sum())
        out.append(row)
    return out


def write_csv(folder: Path) -> Path:
    """Write `anticipation.csv` into the run folder (atomically; empty where the run sent no
    anticipations, so that a sweep knows it was looked at)."""
    rows = anticipation_rows(folder)
    fields = list(dict.fromkeys(k for r in rows for k in r))  # every pair seen in any round
    path = Path(folder) / CSV
    write_rows(path, [{k: r.get(k, "") for k in fields} for r in rows])
    return path


def action_agreement(
    messages: list[Message], public: PublicRecord, n: int, frame: str = "left-right"
) -> list[dict[str, Any]]:
    """Predation: one row per shared distribution of a round (`messages`), ordered by step,
    kind and pair, on the states where the distribution's subject j still hunts and the message
    covers: `step`, `kind`, `sender`, `subject` (j: the sender for `policy_dist`, the receiver
    for `anticipation`), `states`, `toward` (mean probability of j's action toward the prey),
    `p_taken` (mean probability of the action j took in the rollout) and, for `policy_dist`,
    `taken_toward` (the fraction of those actions that went toward the prey); `frame` is the
    run's `predation_actions`."""
    obs, acts = public.row_obs(), public.row_actions()
    m = public.num_rows
    out = []
    for msg in sorted(messages, key=lambda x: (x.step, x.kind, x.sender, x.receiver)):
        if msg.kind not in ("policy_dist", "anticipation"):
            continue
        j = msg.sender if msg.kind == "policy_dist" else msg.receiver
        dist, seen = _full(msg, m)
        toward, hunting = _toward(obs, j, n, frame)
        keep = seen & hunting
        row: dict[str, Any] = {
            "step": msg.step,
            "kind": msg.kind,
            "sender": msg.sender,
            "subject": j,
            "states": int(keep.sum()),
            "toward": float(dist[keep, toward[keep]].mean()) if keep.any() else float("nan"),
            "p_taken": float(dist[keep, acts[keep, j]].mean()) if keep.any() else float("nan"),
        }
        if msg.kind == "policy_dist":
            hit = acts[keep, j] == toward[keep]
            row["taken_toward"] = float(hit.mean()) if keep.any() else float("nan")
        out.append(row)
    return out


def toward_by_side(public: PublicRecord, n: int, frame: str = "left-right") -> list[dict[str, Any]]:
    """Predation, any method (the public record only): per agent j, the fraction of j's actions
    that went toward the prey on the states where j hunts, apart for the prey lying right of j
    (`prey_right`, over `n_right` states) and left of it (`prey_left`, `n_left`). A left-right
    policy blind to the state shows as 1 and 0 (or 0 and 1): it pursues on one side only."""
    obs, acts = public.row_obs(), public.row_actions()
    out = []
    for j in range(n):
        toward, hunting = _toward(obs, j, n, frame)
        hit = acts[:, j] == toward
        row: dict[str, Any] = {"agent": j}
        for side, where in (("right", obs[:, j] < 0), ("left", obs[:, j] > 0)):
            keep = hunting & where
            row[f"prey_{side}"] = float(hit[keep].mean()) if keep.any() else float("nan")
            row[f"n_{side}"] = int(keep.sum())
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    """Print `toward_by_side` (any method) and `action_agreement` (AS: its shared
    distributions) for a predation run's logged rounds, or one of them."""
    parser = argparse.ArgumentParser(
        prog="python -m audits.anticipation",
        description="Predation: how often each predator moved toward the prey, by the side the "
        "prey lies on, and how each shared distribution agrees with the actions taken.",
    )
    parser.add_argument(
        "run",
        type=Path,
        nargs="+",
        help="a predation run folder (any method; AS adds its messages); several with --across",
    )
    parser.add_argument("--round", type=int, help="one logged round (default: every one)")
    parser.add_argument(
        "--across",
        action="store_true",
        help="summarise the runs (seeds of one setting; AS, any env): toward, MSE and entropy "
        "per round as mean [95%% t-interval] over the runs, then each run's value",
    )
    args = parser.parse_args(argv)
    if args.across:
        _print_across(parser, args.run, args.round)
        return
    if len(args.run) > 1:
        parser.exit(2, "error: several run folders need --across (a summary over them)\n")
    args.run = args.run[0]
    try:
        _require_log(args.run)
        cfg = RunFolder.open(args.run)[1].resolved()
        if cfg.env != "predation":
            raise AsfedError(f"env {cfg.env!r} has no 'toward the prey'; accepted: predation")
        by_round: dict[int, list[Message]] = defaultdict(list)
        for r in logged_rounds(args.run):  # IPPO sends nothing but its rollouts are recorded
            by_round[r] = []
        for msg in read_log(args.run):
            by_round[msg.round].append(msg)
        rounds = sorted(by_round) if args.round is None else [args.round]
        if args.round is not None and args.round not in by_round:
            logged = ", ".join(map(str, sorted(by_round)))
            raise AsfedError(f"round {args.round} was not logged; accepted: {logged}")
    except AsfedError as err:
        parser.exit(2, f"error: {err}\n")
    for r in rounds:
        print(f"round {r}")
        public = read_public(args.run, r)
        for side in toward_by_side(public, cfg.agents, cfg.predation_actions):
            print(
                f"  agent {side['agent']} moved toward the prey on {side['prey_right']:.3f} of "
                f"{side['n_right']} states with the prey on its right, {side['prey_left']:.3f} of "
                f"{side['n_left']} with it on its left"
            )
        for row in action_agreement(by_round[r], public, cfg.agents, cfg.predation_actions):
            who = (
                f"pi^{row['subject']}{row['subject']}"
                if row["kind"] == "policy_dist"
                else (f"pi^{row['sender']}{row['subject']}")
            )
            extra = f" taken toward {row['taken_toward']:.3f}" if "taken_toward" in row else ""
            print(
                f"  step {row['step']} {who}: toward {row['toward']:.3f}{extra} "
                f"p(taken) {row['p_taken']:.3f} on {row['states']} states"
            )


def _require_log(run: Path) -> None:
    if not (run / INDEX).exists():
        raise AsfedError(f"{run} has no message log ({INDEX}); accepted: a run folder")


def _print_across(parser: argparse.ArgumentParser, runs: list[Path], round_: int | None) -> None:
    try:
        for run in runs:
            _require_log(run)
        rows = across(runs)
        if round_ is not None:
            logged = ", ".join(str(r["round"]) for r in rows) or "none (no round is in all)"
            rows = [r for r in rows if r["round"] == round_]
            if not rows:
                raise AsfedError(f"round {round_} is not logged in every run; accepted: {logged}")
    except AsfedError as err:
        parser.exit(2, f"error: {err}\n")
    print(f"{len(runs)} runs: " + ", ".join(str(r) for r in runs))
    for row in rows:
        parts = []
        for key in ACROSS:
            if np.isnan(row[key]):
                continue
            each = " ".join(f"{v:.3f}" for v in row[f"{key}_runs"])
            low, high, n = row[f"{key}_low"], row[f"{key}_high"], row[f"{key}_n"]
            over = "" if n == row["runs"] else f" over {n} runs"
            parts.append(f"{key} {row[key]:.3f} [{low:.3f}, {high:.3f}]{over} ({each})")
        print(f"round {row['round']}: " + "; ".join(parts))


if __name__ == "__main__":
    main()
