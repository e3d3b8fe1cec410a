"""Value-function parameter sharing (VPS, after Zhang et al. 2018).

Each agent fits V_i on its own rewards; before each of the K updates it sends its critic's
parameters to its neighbours (kind `value_params`) and replaces its own with the average of its own
and those received (consensus), so critics drift toward the neighbourhood's average value. The
policy's advantage is GAE of its own rewards under its consensus critic.
"""

from __future__ import annotations

from asfed.agents.base import Agent, AgentSpec, Graph, average_into, flat_params
from asfed.agents.ippo import PolicyAgent
from asfed.agents.methods import METHODS, Method
from asfed.comm.messages import Message


class VPSAgent(PolicyAgent):
    def outgoing(self, step: int, round_: int, neighbours: Graph) -> list[Message]:
        return self.to_neighbours(
            step, round_, neighbours, "value_params", lambda: flat_params(self.critic)
        )

    def update(self, k: int, inbox: list[Message], neighbours: Graph) -> dict[str, float]:
        received = [m.payload for m in inbox if m.kind == "value_params"]
        if received:
            average_into(self.critic, received)
        values = self.values()
        adv = self.advantages(values)
        return {"policy_loss": self.fit_policy(adv), "value_loss": self.fit_critic(values)}


@METHODS.register("vps")
class ValueParameterSharing(Method):
    name = "vps"
    allowed_kinds = frozenset({"value_params"})

    def make_agent(self, spec: AgentSpec) -> Agent:
        return VPSAgent(spec)
