"""Anticipation Sharing (paper section 4.3, Algorithm 1).

Agent i holds its policy pi^ii, an anticipation pi^ij for every agent j it may ever neighbour,
and V_i. Before each of the K updates it sends each current neighbour j its action distributions
pi^ii(.|s) and its anticipation of j, pi^ij(.|s), on the round's states (kinds `policy_dist` and
`anticipation`, each `[M, A]` for the M states of the round, or only the rows where the pair are
neighbours under a per-step topology). Each update recomputes GAE with the current critic, takes
one epoch of minibatch steps on the dual clipped objective (`asfed.agents.as_loss`) against the
pre-update networks (Algorithm 1 sets pi_old <- pi after each update) and fits V_i: K shares and
K updates a round (see `asfed.agents.base` for the cadence and the share that is not sent).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import torch
from torch import nn

from asfed.agents import fused, lockstep
from asfed.agents.as_loss import NeighbourTerms, as_loss, as_loss_grad
from asfed.agents.base import Agent, AgentSpec, Graph, adam, fused_steps
from asfed.agents.methods import METHODS, Method
from asfed.agents.networks import POLICY_LAYOUTS
from asfed.agents.ppo import old_log_probs
from asfed.comm.messages import Message
from asfed.errors import AsfedError, accepted


class ASAgent(Agent):
    """One AS learner."""

    def __init__(self, spec: AgentSpec) -> None:
        super().__init__(spec)
        if spec.layout not in POLICY_LAYOUTS:
            raise AsfedError(
                f"unknown policy layout {spec.layout!r}; accepted: {accepted(POLICY_LAYOUTS)}"
            )
        others = {j: spec.num_actions for j in sorted(spec.potential)}
        self.policy = POLICY_LAYOUTS[spec.layout](
            spec.obs_dim, spec.cfg.actor_hidden, spec.num_actions, others
        )
        self.actor_opt = adam(self.policy.parameters(), spec.cfg.actor_lr)

    def acting_logits(self, obs: torch.Tensor) -> torch.Tensor:
        return self.policy.own_logits(obs)

    def acting_modules(self) -> dict[str, nn.Module]:
        """pi^ii only (with the shared torso in the multi-head layout): never anticipations."""
        torso = getattr(self.policy, "torso", None)
        return {"own": self.policy.own, **({"torso": torso} if torso is not None else {})}

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """pi^ii (with the torso, in the multi-head layout) and each pi^ij, clipped apart."""
        own = [*self.policy.own.parameters()]
        torso = getattr(self.policy, "torso", None)
        if torso is not None:
            own += list(torso.parameters())
        return [own, *(list(net.parameters()) for net in self.policy.anticipations.values())]

    def round_logits(self, peers: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """pi^ii's logits `[M, A]` and pi^ij's for j in `peers` `[P, M, A]` on the round's M
        states, memoised until the policy changes: what step k shares is what update k + 1
        starts from."""

        def compute() -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                return self.policy.logits(self._obs_all, peers)

        return self.memo(f"round_logits{tuple(peers)}", compute)

    def outgoing(self, step: int, round_: int, neighbours: Graph) -> list[Message]:
        peers = sorted(neighbours[self.id])
        if not peers:
            return []
        own, ants = self.round_logits(peers)
        own_p = torch.softmax(own, -1).cpu().numpy()
        ants_p = torch.softmax(ants, -1).cpu().numpy()
        out = []
        for pos, j in enumerate(peers):
            rows = self._sampled(neighbours.rows_of(self.id, j), len(own_p), round_, step, j)
            for kind, dist in (("policy_dist", own_p), ("anticipation", ants_p[pos])):
                if rows is None:
                    out.append(Message(round_, step, self.id, j, kind, dist))
                else:
                    out.append(Message(round_, step, self.id, j, kind, dist[rows], rows))
        return out

    def _sampled(
        self, rows: np.ndarray | None, m: int, round_: int, step: int, j: int
    ) -> np.ndarray | None:
        """The rows sent to j: with `share_rows` f < 1, a random f of them (at least one, sorted;
        both kinds on the same rows), drawn from the public seed, round, step and pair, so every
        engine and worker count sends the same rows; which rows went is public anyway."""
        frac = self.spec.share_rows
        if frac >= 1:
            return rows
        pool = np.arange(m) if rows is None else np.asarray(rows)
        rng = np.random.default_rng([self.spec.seed, round_, step, j])
        keep = max(1, round(frac * len(pool)))
        return np.sort(rng.choice(pool, size=keep, replace=False)).astype(np.int32)

    def _shared(self, inbox: list[Message], peers: list[int]) -> dict[str, torch.Tensor | None]:
        """What the neighbours shared, spread over the round's M states and stacked in `peers`'
        order: "policy_dist" `[P, M, A]` (pi^jj), "anticipation" `[P, M, A]` (pi^ji), both
        uniform off the rows j sent, and "mask" bool `[P, M]`, the states where j sent both
        (None when every j sent both on every state). Every peer must have sent both kinds."""
        m, a = self._obs_all.shape[0], self.spec.num_actions
        pos = {j: p for p, j in enumerate(peers)}
        kinds = ("policy_dist", "anticipation")
        shared = {
            kind: torch.full((len(peers), m, a), 1.0 / a, device=self.device) for kind in kinds
        }
        seen = {
            kind: torch.zeros(len(peers), m, dtype=torch.bool, device=self.device) for kind in kinds
        }
        got: set[tuple[int, str]] = set()
        for msg in inbox:
            if msg.sender not in pos or msg.kind not in shared:
                raise RuntimeError(
                    f"agent {self.id}: a {msg.kind!r} message from {msg.sender}, who is not a "
                    f"neighbour this round ({peers}) or not an AS kind"
                )
            p, payload = pos[msg.sender], self.tensor(msg.payload)
            rows = slice(None) if msg.rows is None else self.tensor(msg.rows, torch.long)
            shared[msg.kind][p, rows] = payload
            seen[msg.kind][p, rows] = True
            got.add((msg.sender, msg.kind))
        missing = [(j, kind) for kind in kinds for j in peers if (j, kind) not in got]
        if missing:
            raise RuntimeError(f"agent {self.id}: no shares from neighbours (j, kind): {missing}")
        mask = seen["policy_dist"] & seen["anticipation"]
        return {**shared, "mask": None if bool(mask.all()) else mask}

    def plan_update(self, k: int, inbox: list[Message], neighbours: Graph) -> lockstep.Plan:
        peers = sorted(neighbours[self.id])
        shared = self._shared(inbox, peers)
        acts = self._actions
        me = self.id
        peer_acts = acts[:, peers].T  # [P, M]
        own_old, ants_old = self.round_logits(peers)
        with torch.no_grad():
            logp_old = old_log_probs(own_old).gather(1, acts[:, me : me + 1])[:, 0]
            ant_logp_old = old_log_probs(ants_old).gather(-1, peer_acts[..., None])[..., 0]
        adv = self.advantages(self.values())
        mask = shared["mask"]

        def step(idx: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            own_logits, ants = self.policy.logits(self._obs_all[idx], peers)
            return loss_at(own_logits, ants, idx)

        def block(ants: torch.Tensor, idx: torch.Tensor) -> NeighbourTerms | None:
            """All neighbours as one block `[P, T, ...]` (None without neighbours)."""
            if not peers:
                return None
            return NeighbourTerms(
                ant_logits=ants,
                ant_logp_old=ant_logp_old[:, idx],
                actions=peer_acts[:, idx],
                shared_policy=shared["policy_dist"][:, idx],
                shared_anticipation=shared["anticipation"][:, idx],
                mask=None if mask is None else mask[:, idx],
            )

        def loss_at(
            own_logits: torch.Tensor, ants: torch.Tensor, idx: torch.Tensor
        ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            terms = block(ants, idx)
            parts = as_loss(
                own_logits,
                acts[idx, me],
                logp_old[idx],
                adv[idx],
                [] if terms is None else [terms],
                clip=self.spec.cfg.clip,
                rho=self.spec.cfg.rho,
            )
            stats = {"policy_loss": parts.loss, "penalty": parts.penalty, "kappa": parts.kappa}
            return parts.loss, stats

        def written_out(
            out: torch.Tensor, idx: torch.Tensor
        ) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
            """`loss_at` on the stacked outputs `[1 + P, T, A]`, with its gradient written out
            (`as_loss_grad`) for the fused steps."""
            parts, d_own, d_ants = as_loss_grad(
                out[0],
                acts[idx, me],
                logp_old[idx],
                adv[idx],
                block(out[1:], idx),
                clip=self.spec.cfg.clip,
                rho=self.spec.cfg.rho,
            )
            stats = {"policy_loss": parts.loss, "penalty": parts.penalty, "kappa": parts.kappa}
            grad = d_own[None] if d_ants is None else torch.cat([d_own[None], d_ants])
            return parts.loss, stats, grad

        batches = self.minibatches()
        steps = [functools.partial(step, idx) for idx in batches]
        nets = self.policy.networks(peers)  # own, then each peer's anticipation; [] if not MLPs
        data = [(acts[:, me], 0), (logp_old, 0), (adv, 0)]
        if peers:
            data += [(ant_logp_old, 1), (peer_acts, 1)]
            data += [(shared["policy_dist"], 1), (shared["anticipation"], 1)]
            data += [] if mask is None else [(mask, 1)]
        pure = functools.partial(
            written_head,
            peers=bool(peers),
            masked=mask is not None,
            clip=self.spec.cfg.clip,
            rho=self.spec.cfg.rho,
        )
        head = fused.Head(written_out, written=True, pure=pure, data=data)
        policy = lockstep.Stream(
            self.actor_opt,
            self.clip_groups(),
            steps,
            "policy loss",
            fused=fused_steps(nets, self._obs_all, batches, head) if nets else None,
        )
        return lockstep.Plan(self, [policy, self.critic_stream()])

    def modules(self) -> dict[str, Any]:
        return {**super().modules(), "policy": self.policy, "actor_opt": self.actor_opt}


def written_head(
    out: torch.Tensor,
    data: list[torch.Tensor],
    peers: bool,
    masked: bool,
    clip: float,
    rho: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
    """`ASAgent`'s written policy head as a function of tensors alone (`fused.Head.pure`):
    outputs `[1 + P, T, A]` (own, then each peer's anticipation) and data narrowed to the
    step's T rows: own actions, logp_old and advantages `[T]`, then with peers the
    anticipations' logp_old and the peers' actions `[P, T]`, what they shared `[P, T, A]`
    twice, and the mask `[P, T]` if `masked`. The same arithmetic as the agent's `written_out`."""
    own_actions, logp_old, adv = data[:3]
    block = None
    if peers:
        ant_logp_old, peer_acts, shared_policy, shared_anticipation = data[3:7]
        block = NeighbourTerms(
            ant_logits=out[1:],
            ant_logp_old=ant_logp_old,
            actions=peer_acts,
            shared_policy=shared_policy,
            shared_anticipation=shared_anticipation,
            mask=data[7] if masked else None,
        )
    parts, d_own, d_ants = as_loss_grad(
        out[0], own_actions, logp_old, adv, block, clip=clip, rho=rho
    )
    stats = {"policy_loss": parts.loss, "penalty": parts.penalty, "kappa": parts.kappa}
    grad = d_own[None] if d_ants is None else torch.cat([d_own[None], d_ants])
    return parts.loss, stats, grad


@METHODS.register("as")
class AnticipationSharing(Method):
    """AS: share action distributions and anticipations with neighbours only."""

    name = "as"
    allowed_kinds = frozenset({"policy_dist", "anticipation"})

    def make_agent(self, spec: AgentSpec) -> Agent:
        return ASAgent(spec)
