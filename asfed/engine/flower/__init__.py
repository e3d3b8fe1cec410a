"""The Flower engine: every agent a Flower ClientApp; the ServerApp is the world and the relay.

Trust model (docs/privacy.md has the table). The world (in the ServerApp) is trusted like nature:
it runs the vectorised environment and every actuator, holding only the secrets its dynamics read
(exchange's box owners; nothing elsewhere) and no reward weight, and it holds each agent's acting
policy (pi^ii only), handed to it after each round; that hand-over is never routed to an agent
and is not part of any attacker's view. The relay (also in the ServerApp) and the neighbours are
curious: they see only the message log. A ClientApp holds its agent's secret (read from its own
storage, never sent by the ServerApp), computes its own rewards from the features the world sends
it, and keeps its networks and optimiser state in Flower's `Context.state` across rounds; it
sends only what its method allows, and the relay forwards each message only to its receiver and
records it. The experimenter's scoring (returns for metrics.csv) runs beside the ServerApp on the
ground truth. Only this package imports flwr.
"""
