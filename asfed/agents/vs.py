"""Value sharing (VS), as Du et al. 2022 (DMPO) define it.

What crosses: each agent's value outputs on the round's samples. In DMPO (the authors' code,
`PKU-MARL/Model-Based-MARL`, `DPPO._process_traj`) agent j computes its advantage Â_j from its own
reward and its own critic V_j (GAE, Eq. 17), and agent i's policy ascends the neighbourhood's
advantage sum_{j in N_i + i} Â_j. So a move that costs i but pays a neighbour registers as the
benefit it is. V_j(s) alone could not be used that way without j's rewards, so what j shares
(kind `values`, `[M]`, or the rows where the pair are neighbours) is Â_j, the value outputs of its
critic combined along its trajectory. The asfed paper's one line ("updated based on the average
value") reads as r_i + gamma V_bar(s') - V_bar(s), which cannot see a benefit to others; we follow
the cited paper. We average instead of DMPO's sum (the paper says "average"; a constant factor
only, and the PPO core does not normalise advantages, so the mean keeps IPPO's scale). Critics are
fitted on own rewards (Eq. 18); nothing else is shared.
"""

from __future__ import annotations

import torch

from asfed.agents.base import Agent, AgentSpec, Graph
from asfed.agents.ippo import PolicyAgent
from asfed.agents.methods import METHODS, Method
from asfed.comm.messages import Message


class VSAgent(PolicyAgent):
    def own_advantages(self) -> torch.Tensor:
        """Â_i (GAE of own reward and critic) on the round's samples, `[M]`: what step k shares
        is what update k + 1 ascends (memoised until the critic changes)."""
        return self.memo("own_advantages", lambda: self.advantages(self.values()))

    def outgoing(self, step: int, round_: int, neighbours: Graph) -> list[Message]:
        return self.to_neighbours(
            step, round_, neighbours, "values", lambda: self.own_advantages().cpu().numpy()
        )

    def policy_advantages(self, inbox: list[Message], neighbours: Graph) -> torch.Tensor:
        """mean over {i} and the neighbours that shared on each sample of Â_j, `[M]`."""
        total = self.own_advantages().double()
        count = torch.ones_like(total)
        for m in inbox:
            if m.kind != "values":
                continue
            payload = self.tensor(m.payload, torch.float64)
            rows = slice(None) if m.rows is None else self.tensor(m.rows, torch.long)
            total[rows] += payload
            count[rows] += 1
        return (total / count).float()


@METHODS.register("vs")
class ValueSharing(Method):
    name = "vs"
    allowed_kinds = frozenset({"values"})

    def make_agent(self, spec: AgentSpec) -> Agent:
        return VSAgent(spec)
