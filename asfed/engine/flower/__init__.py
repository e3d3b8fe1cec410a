"""The Flower engine: every agent a Flower ClientApp; the ServerApp is the world and the relay.

Trust model. The world (in the ServerApp) is trusted like nature: it runs the vectorised
environment, computes every reward and runs every actuator, so it holds each agent's acting
policy (pi^ii only), handed to it after each round; that hand-over is never routed to an agent
and is not part of any attacker's view. The relay (also in the ServerApp) and the neighbours are
curious: they see only the message log. A ClientApp holds its agent's private reward stream (the
world sends it its own rewards and no other agent's), networks and optimiser state, kept in
Flower's `Context.state` across rounds; it sends only what its method allows, and the relay
forwards each message only to its receiver and records it. Only this package imports flwr.
"""
