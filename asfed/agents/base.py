"""What every learner shares: its private slice of a round, its critic, PPO's minibatch loop.

An agent holds only its own secret (`asfed.dealer.AgentSecret`: its reward weights and its DP
noise seed), networks and optimiser state. The engine hands it a `RoundBatch` (the public
trajectory plus its own row of the reward features, from which it computes its own rewards with
its own weights), asks it for the messages it sends at each sharing step, and gives it the
messages delivered to it before each of the K updates. Its network initialisation and minibatch
order come from the public seed (they hold no private fact); its DP noise comes from its secret,
so nobody who knows the public seed can subtract it.

Cadence (Algorithm 1). The paper runs, after every episode, K iterations of: share, compute
advantages (Eq. 17), one update of the policy (Eq. 16) and of the critic (Eq. 18), pi_old <- pi.
The world here rolls out B episodes at once; each of the K updates then takes one gradient step
per episode's worth of samples (the round's M samples split at random into B minibatches), so the
gradient steps per sample are Algorithm 1's: K per episode. The order differs: Algorithm 1 steps
K times on episode 1, then collects episode 2 with the updated policy; here the B episodes are
collected with one policy and each epoch visits them all, with pi_old and the neighbours' shares
refreshed once per epoch (K shares a round, each covering all B episodes: the same rows per
episode as Algorithm 1). `--episodes 1 --minibatches 1` is Algorithm 1 literally.

Algorithm 1's listing also shares once more after the K-th update; nothing reads that share
until the next episode's first share replaces it, so it is not sent (it would hand neighbours
and the relay one snapshot more than any update uses).

Critic (Eq. 18): V_i regresses on the Monte-Carlo return to the episode's end. Every episode ends
at its horizon or earlier, and the horizon is terminal (exchange, navigation and predation put
t / horizon in the state, so a bootstrap V(s_T) would extrapolate to a state never trained on).

No repeated work: a forward pass whose inputs and parameters have not changed since it was last
computed is read from a memo (`memo`), dropped whenever any parameter changes (`params_changed`:
every optimiser step, consensus step and checkpoint load). So the distributions an agent shares at
step k are the ones its update k + 1 starts from (pi_old), and V_i runs once per update. Adam is
PyTorch's fused kernel: the same update rule in one pass over the parameters instead of a dozen
(its rounding differs from the per-tensor loop in the last bits). The policy's and the
critic's minibatch steps, and those of every agent one process holds, run in lockstep: one
backward pass and one Adam call a step (`asfed.agents.lockstep`: the same arithmetic).

Gradient clipping is off, as in the paper; `max_grad_norm` turns it on, taken separately over
each clip group (AS: pi^ii and each pi^ij), so a large anticipation gradient cannot shrink the
own policy's step.
"""

from __future__ import annotations

import dataclasses
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from asfed.agents import fused, lockstep
from asfed.agents.hparams import PPOConfig
from asfed.agents.networks import mlp
from asfed.agents.ppo import discounted_returns, gae, value_loss
from asfed.agents.storage import AgentStore
from asfed.comm.dp import PARAM_KINDS, DPSettings, release, release_update
from asfed.comm.messages import ROW_KINDS, Message
from asfed.comm.topology import Neighbourhoods
from asfed.dealer import AgentSecret
from asfed.errors import AsfedError

Graph = Neighbourhoods


class Diverged(AsfedError):
    """A loss became NaN or infinite: the run stops, its last checkpoint intact."""


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """Everything an agent is built from (nothing about other agents' rewards).

    minibatches: gradient steps per update (Algorithm 1's cadence: one per episode of the round).
    storage: the agent's private folder ("" for none: nothing is written).
    device: where the agent's networks learn ("cpu" or a torch device such as "cuda:0").
    dp: noise the agent adds to every message it sends (`asfed.comm.dp`; None: none).
    share_rows: the fraction of a round's rows AS shares each share (1: all, the paper's).
    compile_steps: run the fused minibatch steps through `torch.compile` (`fused.Stack`).
    """

    agent_id: int
    num_agents: int
    obs_dim: int
    num_actions: int
    potential: frozenset[int]  # agents it may ever exchange messages with
    cfg: PPOConfig
    minibatches: int
    seed: int
    layout: str = "separate"
    storage: str = ""
    dp: DPSettings | None = None
    device: str = "cpu"
    share_rows: float = 1.0
    compile_steps: bool = False


@dataclasses.dataclass
class RoundBatch:
    """One agent's view of a round of B episodes of T steps, as the world hands it over.

    obs float32 `[B, T + 1, D]` (the common state, after each step), actions int `[B, T, N]` (the
    public joint actions), features float `[B, T, F]` (this agent's row of the reward features;
    its reward is `features . w_i`, computed by the agent), terminated bool `[B, T]` (the episode
    ended at step t: by the rules or at the horizon), valid bool `[B, T]` (the step happened
    before the episode ended).
    """

    obs: np.ndarray
    actions: np.ndarray
    features: np.ndarray
    terminated: np.ndarray
    valid: np.ndarray


class Agent(ABC):
    """Base learner: critic V_i on its own rewards plus a method-specific policy."""

    def __init__(self, spec: AgentSpec) -> None:
        """Without a secret (`hold`) the agent is an acting copy: it can act but not learn."""
        self.spec = spec
        self.id = spec.agent_id
        self.secret: AgentSecret | None = None
        self.device = torch.device(spec.device)
        torch.manual_seed(spec.seed)  # network initialisation, reproducible per agent
        self.gen = torch.Generator().manual_seed(spec.seed + 1)  # minibatch order
        self.critic = self.make_critic()
        self.critic_opt = adam(self.critic.parameters(), spec.cfg.critic_lr)
        self.batch: RoundBatch | None = None
        self.store = AgentStore(spec.storage) if spec.storage else None
        self._stats: dict[str, list[float]] = {}
        self.noise: np.random.Generator | None = None  # from the secret (`hold`)
        self._dp_reference: dict[str, torch.Tensor] = {}  # last released parameters, per kind
        self._rounds_done = 0
        self._memo: dict[str, Any] = {}

    def hold(self, secret: AgentSecret) -> None:
        """Take the agent's own secret: its reward weights, and its DP noise stream, seeded from
        the secret so that nothing public can replay it."""
        if secret.agent_id != self.id:
            raise AsfedError(f"agent {self.id} was handed agent {secret.agent_id}'s secret")
        self.secret = secret
        self.noise = np.random.default_rng(secret.noise_seed)

    def make_critic(self) -> nn.Module:
        """V_i(s): obs `[..., D]` -> `[..., 1]`."""
        return mlp([self.spec.obs_dim, *self.spec.cfg.critic_hidden], 1)

    # ---- what the world and the engine call -------------------------------------------------

    @abstractmethod
    def acting_logits(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits of the acting policy. obs `[B, D]` -> `[B, A]` (CPPO: `[B, A^N]`)."""

    def acting_probs(self, obs: torch.Tensor) -> torch.Tensor:
        """The acting policy's distribution on the CPU. obs `[B, D]` (any device) -> `[B, A]`."""
        with torch.no_grad():
            return torch.softmax(self.acting_logits(obs.to(self.device)), -1).cpu()

    def begin_round(self, batch: RoundBatch) -> None:
        """Take this round's slice, compute its own rewards `[B, T]` from its features and its
        own weights, and precompute what the K updates reuse."""
        if self.secret is None:
            raise AsfedError(f"agent {self.id} has no secret: an acting copy cannot learn")
        if batch.features.shape[-1] != self.secret.weights.shape[0]:
            raise AsfedError(
                f"agent {self.id}: features have {batch.features.shape[-1]} columns, its reward "
                f"weights {self.secret.weights.shape[0]}"
            )
        self.batch = batch
        self.rewards = batch.features @ self.secret.weights  # [B, T], float64
        self._obs_all = self.tensor(batch.obs[:, :-1][batch.valid])  # [M, D]
        self._actions = self.tensor(batch.actions[batch.valid])  # [M, N]
        self._obs_seq = self.tensor(batch.obs)  # [B, T + 1, D]
        self._stats = {}
        self.params_changed()

    def place(self) -> None:
        """Move every network to the agent's device (optimiser state follows on first step)."""
        for module in self.modules().values():
            if isinstance(module, nn.Module):
                module.to(self.device)

    def tensor(self, array: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
        """An array as a tensor on the agent's device."""
        return torch.as_tensor(array, dtype=dtype, device=self.device)

    @property
    def compiled(self) -> bool:
        """Whether lockstep runs this agent's fused steps compiled (`fused.Stack`)."""
        return self.spec.compile_steps

    def memo(self, key: str, compute: Callable[[], Any]) -> Any:
        """`compute()`, or its result from earlier in the round if no parameter has changed
        since (the cache `params_changed` empties)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def params_changed(self) -> None:
        """Forget every memoised forward pass (parameters or the round's batch changed)."""
        self._memo.clear()

    def outgoing(self, step: int, round_: int, neighbours: Graph) -> list[Message]:
        """Messages this agent sends at sharing step `step` (0..K-1). Default: none."""
        return []

    def share(self, step: int, round_: int, neighbours: Graph) -> list[Message]:
        """What leaves the agent at sharing step `step`: its messages, each noised by its DP
        mechanism when it has one (so the log holds exactly what was released)."""
        out = self.outgoing(step, round_, neighbours)
        if self.spec.dp is None:
            return out
        released: dict[str, np.ndarray] = {}
        result = []
        for m in out:
            if m.kind not in PARAM_KINDS:
                result.append(release(m, self.spec.dp, self.noise))
                continue
            if m.kind not in released:
                ref = self._dp_reference.get(m.kind)
                if ref is None and self._rounds_done == 0 and step == 0:
                    vector = m.payload.astype(np.float64)  # initial parameters: free
                else:
                    base = np.zeros(m.payload.size) if ref is None else ref.numpy()
                    vector = release_update(m.payload, base, self.spec.dp, self.noise)
                self._dp_reference[m.kind] = torch.as_tensor(vector)
                released[m.kind] = vector
            result.append(dataclasses.replace(m, payload=released[m.kind], nbytes=-1))
        return result

    def to_neighbours(
        self, step: int, round_: int, neighbours: Graph, kind: str, payload: Callable[[], Any]
    ) -> list[Message]:
        """`payload()` to every current neighbour; a per-state payload `[M, ...]` goes only with
        the rows where the pair are neighbours (per-step neighbourhoods)."""
        peers = sorted(neighbours[self.id])
        if not peers:
            return []
        data = payload()
        out = []
        for j in peers:
            rows = neighbours.rows_of(self.id, j) if kind in ROW_KINDS else None
            if rows is None:  # parameters go whole: the pair were neighbours this round
                out.append(Message(round_, step, self.id, j, kind, data))
            else:
                out.append(Message(round_, step, self.id, j, kind, data[rows], rows))
        return out

    def update(self, k: int, inbox: list[Message], neighbours: Graph) -> None:
        """Update k (1..K) with the messages delivered since the previous sharing step (an
        engine holding several agents runs their plans together: `lockstep.run`)."""
        lockstep.run([self.plan_update(k, inbox, neighbours)])

    @abstractmethod
    def plan_update(self, k: int, inbox: list[Message], neighbours: Graph) -> lockstep.Plan:
        """Update k, planned: whatever comes before its minibatch steps (consensus, advantages,
        pi_old) done, the steps themselves as streams for `lockstep.run`."""

    def end_round(self, round_: int) -> None:
        """Close the round: this round's private diagnostics go to the agent's own storage."""
        self._rounds_done += 1
        if self.store is not None and self._stats:
            row = {"round": round_, **{k: lockstep.mean(v) for k, v in sorted(self._stats.items())}}
            self.store.append_diagnostics(row)

    def record(self, **stats: float) -> None:
        """Keep a private statistic of this round (averaged over the K updates)."""
        for key, value in stats.items():
            self._stats.setdefault(key, []).append(float(value))

    # ---- shared machinery -------------------------------------------------------------------

    def values(self) -> np.ndarray:
        """V_i on every state of the round (memoised until the critic changes). Returns float64
        `[B, T + 1]`."""

        def compute() -> np.ndarray:
            with torch.no_grad():
                return self.critic(self._obs_seq)[..., 0].double().cpu().numpy()

        return self.memo("values", compute)

    def advantages(self, values: np.ndarray, rewards: np.ndarray | None = None) -> torch.Tensor:
        """GAE (Eq. 17) of the valid samples under `values` `[B, T + 1]` (own rewards unless
        `rewards` `[B, T]` is given). Returns float32 `[M]`."""
        b = self.batch
        r = self.rewards if rewards is None else rewards
        adv, _ = gae(r, values, b.terminated, self.spec.cfg.gamma, self.spec.cfg.gae_lambda)
        return self.tensor(adv[b.valid], torch.float32)

    def returns(self, rewards: np.ndarray | None = None) -> torch.Tensor:
        """Eq. 18's targets: the discounted return to the episode's end of each valid sample
        (own rewards unless `rewards` `[B, T]` is given). Returns float32 `[M]`."""
        b = self.batch
        r = self.rewards if rewards is None else rewards
        ret = discounted_returns(r, b.terminated, self.spec.cfg.gamma)
        return self.tensor(ret[b.valid], torch.float32)

    def critic_inputs(self) -> torch.Tensor:
        """What the critic reads for each valid sample, `[M, D_critic]` (V_i: the state)."""
        return self._obs_all

    def critic_stream(self, rewards: np.ndarray | None = None) -> lockstep.Stream:
        """One epoch of minibatch regression of the critic on Eq. 18's returns (own rewards
        unless `rewards` `[B, T]` is given); its mean loss is recorded as value_loss."""
        targets = self.returns(rewards)
        inputs = self.critic_inputs()

        def step(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            return value_loss(self.critic(inputs[idx])[:, 0], targets[idx]), {}

        batches = self.minibatches()
        return lockstep.Stream(
            self.critic_opt,
            [list(self.critic.parameters())],
            [functools.partial(step, idx) for idx in batches],
            "value loss",
            summary="value_loss",
            fused=fused_steps(self.critic, inputs, batches, fused.Regression(targets)),
        )

    def minibatches(self) -> list[torch.Tensor]:
        """A fresh random split of the M valid samples into `minibatches` index sets (drawn on
        the CPU, so the order is the same on every device)."""
        m = self._obs_all.shape[0]
        if m == 0:  # every episode of the round was over at reset: nothing to learn from
            return []
        perm = torch.randperm(m, generator=self.gen)
        return [
            idx.to(self.device) for idx in torch.tensor_split(perm, min(self.spec.minibatches, m))
        ]

    def check_loss(self, loss: torch.Tensor, what: str) -> None:
        """A loss that is not finite stops the run (a `Diverged` error naming the round, the
        agent and the loss) before it can reach any parameter."""
        if not bool(torch.isfinite(loss)):
            raise Diverged(
                f"round {self._rounds_done}: agent {self.id}'s {what} is {loss.item()}: training "
                "diverged (try smaller learning rates or rho); the last checkpoint is intact"
            )

    @property
    def clips(self) -> bool:
        """Whether `clip` changes gradients (`max_grad_norm` set)."""
        return self.spec.cfg.max_grad_norm is not None

    def clip(self, groups: list[list[nn.Parameter]]) -> None:
        """With `max_grad_norm` set, clip each group's gradient to that norm on its own."""
        limit = self.spec.cfg.max_grad_norm
        if limit is not None:
            for params in groups:
                nn.utils.clip_grad_norm_(params, limit)

    # ---- what the world acts with -----------------------------------------------------------

    def acting_modules(self) -> dict[str, nn.Module]:
        """The modules `acting_logits` uses: all the world receives of an agent (default none)."""
        return {}

    def acting_state(self) -> dict[str, torch.Tensor]:
        """The acting modules' parameters as one flat state dict (`module.param` keys), on the
        CPU (the world acts there)."""
        return {
            f"{name}.{key}": value.detach().cpu()
            for name, module in self.acting_modules().items()
            for key, value in module.state_dict().items()
        }

    def load_acting_state(self, state: dict[str, torch.Tensor]) -> None:
        for name, module in self.acting_modules().items():
            prefix = f"{name}."
            module.load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )

    # ---- checkpoints (agent-private) --------------------------------------------------------

    def modules(self) -> dict[str, Any]:
        """Everything with state: networks and optimisers (subclasses add theirs)."""
        return {"critic": self.critic, "critic_opt": self.critic_opt}

    def state_dict(self) -> dict[str, Any]:
        out = {k: m.state_dict() for k, m in self.modules().items()}
        out["gen"] = self.gen.get_state()
        out["noise"] = self.noise.bit_generator.state
        out["dp_reference"] = dict(self._dp_reference)
        out["rounds_done"] = self._rounds_done
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.modules().items():
            m.load_state_dict(state[k])
        self.gen.set_state(state["gen"])
        self.noise.bit_generator.state = state["noise"]
        self._dp_reference = dict(state["dp_reference"])
        self._rounds_done = int(state["rounds_done"])
        self.params_changed()

    def save_private(self, round_: int) -> None:
        """Checkpoint to the agent's own storage (the state after `round_` rounds)."""
        if self.store is None:
            raise RuntimeError(f"agent {self.id} has no private storage to checkpoint to")
        for name, module in self.modules().items():
            if isinstance(module, nn.Module) and not all(
                bool(torch.isfinite(p).all()) for p in module.parameters()
            ):
                raise Diverged(
                    f"round {round_}: agent {self.id}'s {name} has non-finite parameters: "
                    "training diverged; the last good checkpoint is kept, this one not written"
                )
        self.store.save_checkpoint(round_, self.state_dict())

    def load_private(self, round_: int) -> None:
        """Continue from the agent's own checkpoint after `round_` rounds; diagnostics of later
        rounds are dropped."""
        if self.store is None:
            raise RuntimeError(f"agent {self.id} has no private storage to resume from")
        self.load_state_dict(self.store.load_checkpoint(round_))
        self.store.truncate_diagnostics(round_)


def fused_steps(
    nets: nn.Module | list[nn.Module], inputs: torch.Tensor, batches: list[torch.Tensor], loss: Any
) -> fused.Steps | None:
    """A stream's steps in `fused`'s form, where its networks are plain Linear-ReLU MLPs of
    one shape and small (`lockstep.SMALL`); None otherwise (they are taped)."""
    nets = nets if isinstance(nets, list) else [nets]
    plain = all(_relu_mlp(net) for net in nets)
    shapes = {tuple(p.shape for p in net.parameters()) for net in nets}
    small = all(p.numel() <= lockstep.SMALL for net in nets for p in net.parameters())
    if not (plain and small and len(shapes) == 1):
        return None
    return fused.Steps(nets, inputs, batches, loss)


def _relu_mlp(net: nn.Module) -> bool:
    """Whether `net` is exactly `networks.mlp`'s pattern: Linear (with bias) and ReLU in turn,
    ending on a Linear (what `fused.Stack` differentiates by hand)."""
    if not isinstance(net, nn.Sequential) or len(net) % 2 == 0:
        return False
    kinds = [nn.Linear if i % 2 == 0 else nn.ReLU for i in range(len(net))]
    return all(type(m) is k for m, k in zip(net, kinds, strict=True)) and all(
        m.bias is not None for m in net[::2]
    )


def adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam with PyTorch's defaults (the paper's optimiser), run by the fused kernel."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def flat_params(module: nn.Module) -> np.ndarray:
    """A module's parameters as one float32 vector (what parameter-sharing methods send)."""
    return torch.nn.utils.parameters_to_vector(module.parameters()).detach().cpu().numpy().copy()


def metropolis_weights(i: int, neighbours: Graph) -> dict[int, float]:
    """Metropolis-Hastings consensus weights of agent i: c_ij = 1 / (1 + max(d_i, d_j)) for
    j in N_i, c_ii = 1 - sum_j c_ij. Symmetric, so the weight matrix is doubly stochastic on any
    undirected graph (uniform weights are not, on line or random-one graphs)."""
    d_i = neighbours.degree(i)
    w = {j: 1.0 / (1 + max(d_i, neighbours.degree(j))) for j in sorted(neighbours[i])}
    w[i] = 1.0 - sum(w.values())
    return w


def consensus_into(
    module: nn.Module, agent: int, received: dict[int, np.ndarray], neighbours: Graph
) -> None:
    """Consensus step: the module's parameters <- sum_j c_ij theta_j over {i} and the neighbours
    whose parameters arrived (Metropolis weights; a neighbour that sent nothing keeps its weight
    on the agent's own parameters)."""
    weights = metropolis_weights(agent, neighbours)
    own = torch.nn.utils.parameters_to_vector(module.parameters()).detach()
    total = own * weights.pop(agent)
    for j, c in weights.items():
        theirs = torch.as_tensor(received[j], device=own.device) if j in received else own
        total = total + c * theirs
    torch.nn.utils.vector_to_parameters(total, module.parameters())
