"""`asfed list`: what can be run (environments, methods, topologies, attacks)."""

from __future__ import annotations

from rich.table import Table

from asfed.cli.app import app, console
from asfed.envs import ENVS, make_vec_env, names, options_of


@app.command("list")
def list_registered() -> None:
    """List the environments (agents, actions, horizon, options), methods and topologies."""
    table = Table(title="asfed environments")
    for col in ("env", "agents (default, range)", "actions", "horizon", "obs dim", "options"):
        table.add_column(col)
    for name in names():
        cls = ENVS.get(name)
        env = make_vec_env(name, 1, seed=0)
        lo, hi = cls.agents_range
        table.add_row(
            name,
            f"{cls.default_agents} ({lo}-{hi})",
            ", ".join(env.action_names),
            str(env.horizon),
            str(env.obs_dim),
            ", ".join(options_of(name)),
        )
    console.print(table)

    from asfed.agents.methods import METHODS
    from asfed.comm.topology import TOPOLOGIES

    methods = Table(title="methods")
    methods.add_column("method")
    methods.add_column("may send (only to neighbours)")
    for name in METHODS.names():
        kinds = sorted(METHODS.get(name).allowed_kinds)
        methods.add_row(name, ", ".join(kinds) or "nothing")
    console.print(methods)
    topologies = Table(title="topologies (any with --every k)")
    topologies.add_column("topology")
    topologies.add_column("neighbours")
    for name in TOPOLOGIES.names():
        doc = (TOPOLOGIES.get(name).__doc__ or "").strip().splitlines()[0]
        topologies.add_row(name, doc)
    console.print(topologies)

    import attacks.shadow
    from attacks import ATTACKS
    from audits.audit import QUESTIONS

    def summary(doc: str | None) -> str:  # a docstring's first sentence, over its lines
        text = " ".join((doc or "").strip().split("\n\n")[0].split())
        return text.split(". ")[0].removesuffix(".")

    table = Table(title="attacks (asfed audit --attack NAME, or all)")
    table.add_column("attack")
    table.add_column("what it estimates")
    for name in QUESTIONS:
        text = attacks.shadow.SUMMARY if name == "shadow" else summary(ATTACKS.get(name).__doc__)
        table.add_row(name, text)
    table.add_row(
        "actions-only",
        "The baseline run beside every attack, not an --attack: "
        + summary(ATTACKS.get("actions-only").__doc__).lower(),
    )
    console.print(table)
