"""Value sharing (VS, after Du et al. 2022).

Each agent learns V_i on its own rewards and, before each of the K updates, sends its neighbours
V_i on every state of the round (kind `values`, `[B, T + 1]`). Its policy's advantage is GAE of
its own rewards under the neighbourhood-average value V_bar = mean over {i} and N_i of V_j, so
r_i + gamma V_bar(s') - V_bar(s) rewards moves that raise the neighbourhood's value.
"""

from __future__ import annotations

import numpy as np

from asfed.agents.base import Agent, AgentSpec, Graph
from asfed.agents.ippo import PolicyAgent
from asfed.agents.methods import METHODS, Method
from asfed.comm.messages import Message


class VSAgent(PolicyAgent):
    def outgoing(self, step: int, round_: int, neighbours: Graph) -> list[Message]:
        return self.to_neighbours(step, round_, neighbours, "values", self.values)

    def update(self, k: int, inbox: list[Message], neighbours: Graph) -> dict[str, float]:
        shared = [m.payload.astype(np.float64) for m in inbox if m.kind == "values"]
        own = self.values()
        adv = self.advantages(np.mean([own, *shared], axis=0))  # the neighbourhood's V_bar
        return {"policy_loss": self.fit_policy(adv), "value_loss": self.fit_critic(own)}


@METHODS.register("vs")
class ValueSharing(Method):
    name = "vs"
    allowed_kinds = frozenset({"values"})

    def make_agent(self, spec: AgentSpec) -> Agent:
        return VSAgent(spec)
