"""Drive a `Simulation` through its rounds, keeping the run folder complete and resumable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from asfed.comm import record
from asfed.comm.record import PublicRecord
from asfed.config import RunConfig
from asfed.engine.loop import FederationFactory, Simulation
from asfed.engine.world import Trajectory
from asfed.plots import learning_curve
from asfed.runs import CURVE, RunFolder

OnRound = Callable[[dict[str, Any]], None]


def start(
    cfg: RunConfig,
    out: Path,
    federation: FederationFactory | None = None,
    workers: int = 1,
    device: str = "cpu",
) -> tuple[Simulation, RunFolder, list[dict[str, Any]]]:
    """A fresh simulation and run folder (workers, device: see `Simulation`)."""
    run = RunFolder(out)
    # validates before anything is written
    sim = Simulation(cfg, federation, run.agent_root, workers, device)
    try:
        run = RunFolder.create(out, cfg, {"workers": sim.workers, "device": sim.device})
    except BaseException:
        sim.close()
        raise
    record.write_params(run.path, sim.env.private_params, sim.env.reward_weights)
    return sim, run, []


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
    worker count and device may differ from the first run's (they do not change the numbers)."""
    run, cfg = resume_config(path, rounds)
    sim = Simulation(cfg, federation, run.agent_root, workers, device)
    try:
        state = run.load_checkpoint()
        if state is not None:
            sim.restore(state)
    except BaseException:
        sim.close()
        raise
    rows = [r for r in run.read_metrics() if int(r["round"]) < sim.round]
    run.write_metrics(rows)
    record.drop_rounds(run.path, sim.round)
    if rounds is not None:
        run.write_config(cfg)
    return sim, run, rows


def write_records(folder: Path, round_: int, traj: Trajectory) -> None:
    """A recorded round's public record and ground truth (rounds the message log keeps)."""
    if traj.states is None:
        return
    public = PublicRecord(round_, traj.obs, traj.actions, traj.terminated, traj.valid, traj.states)
    record.write_public(folder, public)
    record.write_truth(folder, round_, traj.rewards, traj.features)


def train(
    sim: Simulation, run: RunFolder, rows: list[dict[str, Any]], on_round: OnRound | None = None
) -> list[dict[str, Any]]:
    """Play the remaining rounds; metrics and messages are on disk after every round and a
    checkpoint every `checkpoint_every` rounds and at the end."""
    cfg = sim.cfg
    log = run.message_log(cfg.log_every, keep_below=sim.round)
    try:
        while sim.round < cfg.rounds:
            try:
                metrics, messages = sim.run_round()
            except Exception as err:
                err.add_note(
                    f"{run.path} keeps the {len(rows)} completed rounds; continue with: "
                    f"asfed simulate --resume {run.path}"
                )
                raise
            log.write_round(int(metrics["round"]), messages)
            write_records(run.path, int(metrics["round"]), sim.last_trajectory)
            run.append_metrics(metrics, header=not rows)
            rows.append(metrics)
            if sim.round % cfg.checkpoint_every == 0 or sim.round == cfg.rounds:
                run.save_checkpoint(sim.checkpoint())
            if on_round:
                on_round(metrics)
    finally:
        log.close()
    if rows:
        title = f"{cfg.method} on {cfg.env} (seed {cfg.seed}, {sim.topology_name})"
        learning_curve(rows, run.path / CURVE, title)
    return rows
