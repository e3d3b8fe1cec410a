"""The round loop, the same for every engine (how agents are reached is a `Federation`).

A round: (1) the world rolls out B episodes with the agents' acting policies; (2) the topology
gives this round's neighbourhoods (per step for `distance`); (3) each agent receives its own
slice; (4) Algorithm 1's K sharing steps and K updates run (share, update; see
`asfed.agents.base` for the cadence), every message passing through the relay, which refuses what
the method may not send and records the rest.

Who holds what (see `asfed.dealer`): the world (`env`) holds only the secrets its dynamics read
and computes no reward; each agent holds its own secret and computes its own rewards; the relay
holds none; the experimenter's `Scorer` holds the ground-truth weights and computes the returns
that metrics.csv records, with the neighbourhood degree and the bytes and messages the relay
carried. Agents' private diagnostics and checkpoints stay in each agent's own storage
(`asfed.agents.storage`).

Same seed, same numbers: torch runs on one intra-op thread, because the thread count changes the
order of floating-point reductions (and so the numbers) and buys little on networks this small.
Cores are used by agents instead: `workers` processes update W agents at once
(`asfed.engine.workers`), with the same numbers for any W.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from asfed.agents.base import AgentSpec
from asfed.agents.methods import METHODS, Method
from asfed.allocator import keep_freed_memory
from asfed.comm.dp import ReleaseAccountant
from asfed.comm.messages import Message
from asfed.comm.relay import Relay
from asfed.comm.topology import Topology, make_topology
from asfed.config import RunConfig
from asfed.dealer import Deal, deal, hand_out
from asfed.engine.federation import Federation, LocalFederation
from asfed.engine.placement import check_workers, resolve_device
from asfed.engine.scorer import Scorer
from asfed.engine.workers import WorkerFederation
from asfed.engine.world import rollout
from asfed.envs import ENVS, make_vec_env
from asfed.envs.base import VecEnv
from asfed.errors import AsfedError
from asfed.threads import one_thread

FederationFactory = Callable[[Method, list[AgentSpec]], Federation]


def prepare(cfg: RunConfig) -> tuple[Method, VecEnv, Topology]:
    """Build and cross-check what a run needs, raising a clear error for any bad combination,
    before any engine starts or anything is written."""
    method = METHODS.get(cfg.method)()
    env = make_vec_env(cfg.env, cfg.num_episodes(), seed=cfg.seed, **cfg.env_options())
    method.check(cfg.env, env.num_agents)
    topology = make_topology(cfg.topology_name(), env.num_agents, cfg.every)
    check_memory(cfg, env)
    env_cls = ENVS.get(cfg.env)
    if topology.needs_positions and env_cls.agent_positions is VecEnv.agent_positions:
        raise AsfedError(
            f"topology {cfg.topology_name()!r} needs agent positions, which {cfg.env!r} "
            "lacks; accepted: predation"
        )
    return method, env, topology


def round_bytes(cfg: RunConfig, env: VecEnv) -> int:
    """A lower bound on the bytes one round's trajectory holds in memory: the states `[B, T + 1,
    D]` (float32), reward features `[B, T, N, F]` (float64) and joint actions `[B, T, N]`."""
    b, t, n = cfg.num_episodes(), env.horizon, env.num_agents
    return b * (t + 1) * env.obs_dim * 4 + b * t * n * (len(env.feature_names) * 8 + 8)


def check_memory(cfg: RunConfig, env: VecEnv) -> None:
    """Refuse a round that cannot fit in this machine's available memory, before it starts."""
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: line.split()[1] for line in f}
        available = int(info["MemAvailable"]) * 1024
    except (OSError, KeyError, ValueError, IndexError):
        return  # not Linux: the round will find out
    need = round_bytes(cfg, env)
    if need > available:
        raise AsfedError(
            f"episodes={cfg.num_episodes()} needs at least {need / 2**30:.1f} GiB a round, more "
            f"than the {available / 2**30:.1f} GiB available; accepted: fewer --episodes"
        )


class Simulation:
    """One run of one method on one env, advanced a round at a time."""

    def __init__(
        self,
        cfg: RunConfig,
        federation: FederationFactory | None = None,
        agent_root: Path | None = None,
        workers: int = 1,
        device: str = "cpu",
        secrets: Deal | None = None,
        private_seed: int | None = None,
    ) -> None:
        """agent_root: where each agent keeps its private folder (`agent_<i>/`), its secret
        included, which each agent reads itself; None: agents write nothing (checkpoints then need
        a root) and are handed their secrets in memory. workers: processes the local engine
        spreads the agents over (1: all in this process). device: where the learners compute
        (`cpu`, `cuda[:N]`, `auto`); rollouts stay on the CPU's vectorised envs. secrets: the
        run's deal (None: dealt here from `private_seed`, or from OS entropy if that is None,
        and handed out to the agents' storage)."""
        one_thread()
        keep_freed_memory()
        self.cfg = cfg
        self.method, self.env, self.topology = prepare(cfg)
        if secrets is None:  # standalone (tests, estimates): deal afresh, as the driver would
            secrets = deal(self.env, private_seed)
            if agent_root is not None:
                hand_out(secrets, agent_root)
        self.env.set_private(secrets.world_part(self.env.dynamics_keys()))  # nature's part only
        self.scorer = Scorer(secrets.weights)  # the experimenter's, apart from world and relay
        in_memory = list(secrets.agents) if agent_root is None else None
        self.topology_name = cfg.topology_name()
        n = self.env.num_agents
        self.device = resolve_device(device)
        self.workers = check_workers(workers, n)
        self.ppo = cfg.ppo()
        acting, topo, *agent_seeds = np.random.SeedSequence(cfg.seed).spawn(2 + n)
        self.dp = cfg.dp_settings()
        self.accountant = (
            ReleaseAccountant(n, self.dp.sigma, self.dp.delta) if self.dp is not None else None
        )
        self.acting_rng = np.random.default_rng(acting)
        self.topology_rng = np.random.default_rng(topo)
        self.specs = [
            AgentSpec(
                agent_id=i,
                num_agents=n,
                obs_dim=self.env.obs_dim,
                num_actions=self.env.num_actions,
                potential=self.topology.potential(i),
                cfg=self.ppo,
                minibatches=cfg.num_minibatches(),
                seed=int(agent_seeds[i].generate_state(1)[0]),
                layout=cfg.layout,
                storage=str(agent_root / f"agent_{i}") if agent_root is not None else "",
                dp=self.dp,
                device=self.device,
                share_rows=cfg.share_rows,
                compile_steps=cfg.compile_steps,
            )
            for i in range(n)
        ]
        if federation is not None:
            if agent_root is None:
                raise AsfedError(
                    "a federation of clients needs agent storage: each agent reads its secret "
                    "from there"
                )
            self.federation = federation(self.method, self.specs)
        elif self.workers > 1:
            self.federation = WorkerFederation(self.method, self.specs, self.workers, in_memory)
        else:
            self.federation = LocalFederation(self.method, self.specs, in_memory)
        self.relay = Relay(n, self.method.allowed_kinds, self.method.hub)
        self.round = 0

    @property
    def num_agents(self) -> int:
        return self.env.num_agents

    def close(self) -> None:
        """Stop the federation's worker processes, if any (the run can no longer advance)."""
        self.federation.close()

    def run_round(self) -> tuple[dict[str, float], list[Message]]:
        """Play one round. Returns its metrics and the messages the relay recorded."""
        recorded = self.round % self.cfg.log_every == 0  # the rounds the message log keeps
        traj = rollout(self.env, self.method, self.federation.acting, self.acting_rng, recorded)
        self.last_trajectory = traj
        graph = self.topology.neighbours(self.round, self.topology_rng, traj.valid_positions())
        n = self.num_agents
        self.relay.start_round()
        outgoing = self.federation.begin(self.round, [traj.slice_for(i) for i in range(n)], graph)
        k_updates = self.ppo.epochs
        for k in range(1, k_updates + 1):
            for msg in outgoing:
                self.relay.send(msg, graph)
            inboxes = [self.relay.collect(i) for i in range(n)]
            outgoing = self.federation.update(k, self.round, inboxes, graph, last=k == k_updates)
        if outgoing:
            raise RuntimeError("a message after the round's last update would feed no update")

        episodes = traj.features.shape[0]
        returns = self.scorer.returns(traj.features)  # [N], mean over episodes
        metrics: dict[str, float] = {"round": self.round, "team_return": float(returns.sum())}
        metrics.update({f"return_{i}": float(r) for i, r in enumerate(returns)})
        metrics.update({f"bytes_{i}": int(b) for i, b in enumerate(self.relay.bytes_sent)})
        metrics["bytes_total"] = int(self.relay.bytes_sent.sum())
        metrics["bytes_per_episode"] = metrics["bytes_total"] / episodes
        metrics["messages"] = len(self.relay.record)
        metrics["neighbours_mean"] = graph.mean_degree()
        if self.accountant is not None:
            senders = np.array([m.sender for m in self.relay.record], dtype=np.int64)
            receivers = np.array([m.receiver for m in self.relay.record], dtype=np.int64)
            sent = np.bincount(senders, minlength=n)  # one release per message
            pairs = np.bincount(senders * n + receivers, minlength=n * n).reshape(n, n)
            self.accountant.add(sent, pairs)
            eps = self.accountant.epsilons()
            metrics["epsilon"] = float(eps.max())  # messages only, not the public trajectory
            metrics["epsilon_pair"] = self.accountant.pair_epsilon()  # direct only: not a bound
            metrics.update({f"epsilon_{i}": float(e) for i, e in enumerate(eps)})
        self.round += 1
        return metrics, list(self.relay.record)

    # ---- checkpoints ------------------------------------------------------------------------

    def checkpoint(self) -> dict[str, Any]:
        """Every agent checkpoints itself to its own storage; returns the world's state (round,
        generators, the env's episode count), which holds nothing of any agent."""
        self.federation.checkpoint(self.round)
        return {
            "round": self.round,
            "num_agents": self.num_agents,
            "accountant": self.accountant.state_dict() if self.accountant is not None else None,
            "acting_rng": self.acting_rng.bit_generator.state,
            "topology_rng": self.topology_rng.bit_generator.state,
            "env_resets": self.env.reset_count,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from the world's state; each agent reloads its own checkpoint of that round."""
        missing = {"round", "num_agents", "acting_rng", "topology_rng", "env_resets"} - set(state)
        if missing or "agents" in state:
            raise AsfedError(
                "the checkpoint was written by an older asfed (agents' states in the world's "
                "checkpoint); start a new run"
            )
        if state["num_agents"] != self.num_agents:
            raise AsfedError(
                f"checkpoint has {state['num_agents']} agents, the config {self.num_agents}"
            )
        self.federation.restore(state["round"])
        if self.accountant is not None and state.get("accountant") is not None:
            self.accountant.load_state_dict(state["accountant"])
        self.acting_rng.bit_generator.state = state["acting_rng"]
        self.topology_rng.bit_generator.state = state["topology_rng"]
        self.env.reset_count = state["env_resets"]
        self.round = state["round"]
