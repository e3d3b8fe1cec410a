"""Drive a `Simulation` through its rounds, keeping the run folder complete and resumable.

A new run is dealt its secrets (`asfed.dealer`) once its folder exists: the ground truth records
the private seed, parameters and weights, and each agent's own secret goes to its own storage,
before any agent is built. A resumed run reads them back from there, and never draws new ones.
"""

from __future__ import annotations

import errno
import functools
import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from asfed import dealer
from asfed.agents.base import Diverged
from asfed.agents.storage import AgentStore
from asfed.atomic import atomic_write
from asfed.comm import log, record
from asfed.comm.record import PublicRecord
from asfed.config import RunConfig
from asfed.csvfile import checked_rows
from asfed.dealer import Deal
from asfed.engine.loop import FederationFactory, Simulation, prepare
from asfed.engine.placement import check_workers, resolve_device
from asfed.engine.scorer import Scorer
from asfed.engine.world import Trajectory
from asfed.errors import AsfedError
from asfed.plots import learning_curve
from asfed.runs import CHECKPOINT, CONFIG, CURVE, DIVERGED, METRICS, RunFolder

OnRound = Callable[[dict[str, Any]], None]


def start(
    cfg: RunConfig,
    out: Path,
    federation: FederationFactory | None = None,
    workers: int = 1,
    device: str = "cpu",
    private_seed: int | None = None,
) -> tuple[Simulation, RunFolder, list[dict[str, Any]]]:
    """A fresh simulation and run folder (workers, device: see `Simulation`). private_seed:
    the run's secrets' seed (None: fresh OS entropy); recorded in the ground truth only."""
    _, env, _ = prepare(cfg)  # validates before anything is written
    workers = check_workers(workers, env.num_agents)
    device = resolve_device(device)
    if private_seed is not None:
        dealer.check_private_seed(private_seed)
    existed = Path(out).exists()
    run, secrets = _create(cfg, out, env, private_seed, {"workers": workers, "device": device})
    try:
        sim = Simulation(cfg, federation, run.agent_root, workers, device, secrets)
    except BaseException:
        _unmake(run.path, existed)  # a run that never started leaves nothing behind
        raise
    return sim, run, []


def create(cfg: RunConfig, out: Path, private_seed: int | None = None) -> RunFolder:
    """A new run folder, dealt its secrets, with no round played: `resume` starts it. What a
    deployment does first, so each agent's `secret.json` can be moved to its own machine before
    any ClientApp starts (docs/deploy.md)."""
    _, env, _ = prepare(cfg)
    if private_seed is not None:
        dealer.check_private_seed(private_seed)
    run = _create(cfg, out, env, private_seed, {})[0]
    run.unlock()  # written and done: the run's next writer takes the folder
    return run


def _create(
    cfg: RunConfig, out: Path, env: Any, private_seed: int | None, execution: dict[str, Any]
) -> tuple[RunFolder, Deal]:
    existed = Path(out).exists()
    secrets = dealer.deal(env, private_seed)

    def first(run: RunFolder) -> None:  # the secrets exist before the run does
        write_truth_params(run.path, secrets)
        dealer.hand_out(secrets, run.agent_root)

    try:
        run = RunFolder.create(out, cfg, execution, first)
    except BaseException:
        if not existed and not (Path(out) / CONFIG).exists():
            shutil.rmtree(out, ignore_errors=True)
        raise
    return run, secrets


def _unmake(path: Path, existed: bool) -> None:
    """Remove what `start` wrote into `path` (the folder too, if `start` made it)."""
    if not existed:
        shutil.rmtree(path, ignore_errors=True)
        return
    for name in (record.TRUTH, "agents", "config.toml", "versions.json"):
        target = path / name
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


def write_truth_params(folder: Path, secrets: Deal) -> None:
    """The ground truth of a run's secrets: private seed, parameters and weights."""
    record.write_params(folder, secrets.params, secrets.weights)
    dealer.write_private_seed(folder / record.TRUTH, secrets.private_seed)


def read_deal(run: RunFolder, cfg: RunConfig) -> Deal:
    """A run's secrets, from its ground truth (checked against every agent secret kept on
    this machine), or, where the ground truth was never written (a run killed as it started),
    put back together from the agents' own secrets and the ground truth rewritten."""
    _, env, _ = prepare(cfg)
    truth = run.path / record.TRUTH
    n = env.num_agents
    if not (truth / dealer.PRIVATE_SEED).exists():
        agents = [dealer.read_agent_secret(run.agent_root / f"agent_{i}", i) for i in range(n)]
        secrets = dealer.from_agents(agents)
        write_truth_params(run.path, secrets)
        return secrets
    seed = dealer.read_private_seed(truth)
    params, weights = record.read_params(run.path)
    if seed is None:
        agents = [dealer.read_agent_secret(run.agent_root / f"agent_{i}", i) for i in range(n)]
        secrets = dealer.from_agents(agents)
    else:
        secrets = dealer.deal(env, seed)
    if not np.array_equal(secrets.weights, weights) or set(params) != set(secrets.params):
        raise AsfedError(f"{truth} does not match the run's private seed; the run is damaged")
    for secret in secrets.agents:
        storage = run.agent_root / f"agent_{secret.agent_id}"
        if storage.is_dir():  # kept on this machine (elsewhere, the agent checks its own)
            kept = dealer.read_agent_secret(storage, secret.agent_id)
            if not _same_secret(kept, secret):
                raise AsfedError(
                    f"{storage / dealer.SECRET} does not match the run's ground truth; "
                    "the run is damaged"
                )
    return secrets


def _same_secret(a: dealer.AgentSecret, b: dealer.AgentSecret) -> bool:
    return (
        a.agent_id == b.agent_id
        and a.noise_seed == b.noise_seed
        and np.array_equal(a.weights, b.weights)
        and a.params.keys() == b.params.keys()
        and all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    )


def resume_config(path: Path, rounds: int | None = None) -> tuple[RunFolder, RunConfig]:
    """A run folder and its config, optionally extended to `rounds`."""
    run, cfg = RunFolder.open(path)
    if rounds is not None:
        cfg = RunConfig(**{**cfg.to_dict(), "rounds": rounds})
    return run, cfg


def resume(
    path: Path,
    rounds: int | None = None,
    federation: FederationFactory | None = None,
    workers: int = 1,
    device: str = "cpu",
) -> tuple[Simulation, RunFolder, list[dict]]:
    """Reopen a run folder at its last checkpoint (optionally extending it to `rounds`). The
    worker count and device may differ from the first run's (they do not change the numbers).
    The run keeps its secrets: each agent reads its own back from its storage."""
    run, cfg = resume_config(path, rounds)
    run.lock()
    try:
        state = run.load_checkpoint()
        done = check_resumable(run, cfg, state)
        secrets = read_deal(run, cfg)
        sim = Simulation(cfg, federation, run.agent_root, workers, device, secrets)
    except BaseException:
        run.unlock()
        raise
    try:
        if state is not None:
            sim.restore(state)
        elif run.agent_root.is_dir():  # killed before its first checkpoint: start over
            for storage in sorted(run.agent_root.glob("agent_*")):
                AgentStore(storage).truncate_diagnostics(0)
        note = run.note_resume(sim.round)  # a damaged versions.json is refused here
        if note is not None:  # shown where warnings are; versions.json keeps it regardless
            warnings.warn(note, stacklevel=2)
    except BaseException:
        sim.close()
        run.unlock()
        raise
    rows = done[: sim.round]
    run.write_metrics(rows)
    record.drop_rounds(run.path, sim.round)
    # it trains again: an old divergence is stale (`train` records a new one if it diverges)
    (run.path / DIVERGED).unlink(missing_ok=True)
    if rounds is not None:
        run.write_config(cfg)
    return sim, run, rows


def check_resumable(
    run: RunFolder, cfg: RunConfig, state: dict[str, Any] | None
) -> list[dict[str, str]]:
    """The metrics rows a resume keeps, after checking every file against the checkpoint:
    metrics.csv holds whole rounds 0..R-1 (only a tail past the checkpoint may be cut or
    damaged), each logged round below R has its public record and ground truth, and a folder
    whose checkpoint is missing has never had one. Anything else is refused with one line."""
    rows, damaged = checked_rows(run.path / METRICS)
    log.checked_index(run.path)  # a damaged message log is refused before anything runs
    if state is None:  # never checkpointed (killed before the first one finished), or deleted
        first = min(cfg.checkpoint_every, cfg.rounds)
        later = [
            p
            for p in run.agent_root.glob("agent_*/checkpoint-*.pt")
            if not p.stem.endswith(f"-{first}")
        ]
        if later or len(rows) + damaged > first:
            raise AsfedError(
                f"{run.path / CHECKPOINT} is missing, though the run completed rounds past its "
                "first checkpoint: it cannot continue without it (restore the file, or start a "
                "new run)"
            )
        return []
    kept = int(state["round"])
    if len(rows) < kept:
        raise AsfedError(
            f"{run.path / METRICS} holds {len(rows)} whole round(s) before its first damaged or "
            f"missing one, its checkpoint {kept}: the file is damaged (restore it from a copy, "
            "or start a new run)"
        )
    for r in range(0, kept, cfg.log_every):
        for kind in (record.PUBLIC, record.TRUTH):
            if not (run.path / kind / record.round_file(r)).exists():
                raise AsfedError(
                    f"{run.path / kind / record.round_file(r)} is missing (round {r} was "
                    "logged): the run's records are damaged; restore the file or start a new run"
                )
    return rows


def write_records(folder: Path, round_: int, traj: Trajectory, scorer: Scorer) -> None:
    """A recorded round's public record and ground truth (rounds the message log keeps)."""
    if traj.states is None:
        return
    public = PublicRecord(round_, traj.obs, traj.actions, traj.terminated, traj.valid, traj.states)
    record.write_public(folder, public)
    record.write_truth(folder, round_, scorer.rewards(traj.features), traj.features)


def train(
    sim: Simulation, run: RunFolder, rows: list[dict[str, Any]], on_round: OnRound | None = None
) -> list[dict[str, Any]]:
    """Play the remaining rounds; metrics and messages are on disk after every round and a
    checkpoint every `checkpoint_every` rounds and at the end. The run folder's lock is released
    when this returns or fails. A full disk or an unwritable file stops the run with one line
    naming the last checkpoint and the command that continues it."""
    cfg = sim.cfg
    try:
        writer = run.message_log(cfg.log_every, keep_below=sim.round)
        try:
            while sim.round < cfg.rounds:
                try:
                    metrics, messages = sim.run_round()
                except Exception as err:
                    if isinstance(err, Diverged):  # a result, whoever trains: recorded
                        record = {"rounds": len(rows), "error": str(err)}
                        atomic_write(run.path / DIVERGED, (json.dumps(record) + "\n").encode())
                    err.add_note(
                        f"{run.path} keeps the {len(rows)} completed rounds; continue with: "
                        f"asfed simulate --resume {run.path}"
                    )
                    raise
                writer.write_round(int(metrics["round"]), messages)
                write_records(run.path, int(metrics["round"]), sim.last_trajectory, sim.scorer)
                run.append_metrics(metrics, header=not rows)
                rows.append(metrics)
                if sim.round % cfg.checkpoint_every == 0 or sim.round == cfg.rounds:
                    run.save_checkpoint(sim.checkpoint())
                if on_round:
                    on_round(metrics)
        finally:
            writer.close()
        if rows:
            title = f"{cfg.method} on {cfg.env} (seed {cfg.seed}, {sim.topology_name})"
            learning_curve(rows, run.path / CURVE, title, reference_lines(cfg))
    except OSError as err:
        if err.filename is None:  # not a file's fault (a broken pipe to a worker): as it is
            raise
        raise AsfedError(_stopped_by(err, run)) from None
    finally:
        run.unlock()
    return rows


def _stopped_by(err: OSError, run: RunFolder) -> str:
    """One line for an environmental fault: what failed, the last good round, how to go on."""
    what = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
    where = f" writing {err.filename}" if err.filename else ""
    try:
        state = run.load_checkpoint()
        kept = state["round"] if state else 0
    except AsfedError:
        kept = "?"
    return (
        f"stopped: {what}{where}; {run.path} keeps its last checkpoint (after round {kept}); "
        f"once fixed, continue with: asfed simulate --resume {run.path}"
    )


def reference_lines(cfg: RunConfig) -> list[tuple[str, str, float]]:
    """The env's reference returns (kind, label, team return: random policy, best scripted,
    everyone selfish) for a run's curve and a trade-off's frontier, on the report's 512
    episodes (about a second on exchange's default horizon, once per process), so the curve
    and the report draw the same lines."""
    refs = _reference_returns(cfg.env, tuple(sorted(cfg.env_options().items())))
    return [(r.kind, r.label, r.mean) for r in refs.values()]


def random_return(cfg: RunConfig) -> float:
    """A uniformly random policy's team return under the run's env options, for the progress
    bar: a user sees within minutes whether anything is being learned."""
    return _reference_returns(cfg.env, tuple(sorted(cfg.env_options().items())))["random"].mean


@functools.cache
def _reference_returns(env: str, options: tuple) -> dict:
    from asfed.envs.references import reference_returns

    return reference_returns(env, dict(options))
