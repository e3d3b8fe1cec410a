"""The dealer: draws a run's secrets from a private seed and hands each holder only its part.

Nothing public determines a secret. The public `seed` (config.toml, the message log, every spec)
keys the episodes, the acting draws, network initialisation and minibatch order; the private
reward parameters and every agent's DP noise come from the run's *private seed* instead, which by
default is 128 bits of OS entropy and with `--private-seed N` is N (exact reproduction).

From the private seed, `numpy.random.SeedSequence` spawns one child for nature's draw of the
private reward parameters (`VecEnv.draw_private`: a joint draw, since exchange's and navigation's
owners are a permutation) and one child per agent for that agent's noise. Each holder then gets
only its part:

- agent i: its own component of every private parameter, its reward weights `w_i [D]` and its
  noise seed (`AgentSecret`, in its private storage as `secret.json`), never the private seed,
  which would give away every other agent's;
- the world: the parameters its dynamics read (`VecEnv.dynamics_keys`: exchange's box owners, as
  nature holds them; nothing in the other envs);
- the experimenter's scoring: every weight, to compute returns (`asfed.engine.scorer`);
- the ground truth (`ground_truth/`, read by scoring only, never by an attack): the private seed,
  the parameters and the weights, so a run can be reproduced and audited.

The relay holds none of it. On resume each agent reads its secret back from its own storage; a
missing or unreadable secret is an error, never a fresh draw.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path
from typing import Any

import numpy as np

from asfed.atomic import atomic_write
from asfed.errors import AsfedError

SECRET = "secret.json"  # in each agent's private storage
PRIVATE_SEED = "private_seed.json"  # in ground_truth/
MAX_PRIVATE_SEED = 2**128 - 1


def new_private_seed() -> int:
    """A fresh private seed: 128 bits of OS entropy."""
    return secrets.randbits(128)


def check_private_seed(value: Any, where: str = "--private-seed") -> int:
    """`value` as a private seed, or one clear error naming it and what is accepted."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise AsfedError(f"{where}={value!r} is invalid; accepted: an integer 0..2**128-1")
    if not 0 <= int(value) <= MAX_PRIVATE_SEED:
        raise AsfedError(f"{where}={value} is invalid; accepted: an integer 0..2**128-1")
    return int(value)


def derive_private_seed(parent: int, name: str) -> int:
    """Run `name`'s private seed within a sweep whose private seed is `parent`: distinct runs get
    independent secrets, and the sweep's one seed reproduces them all."""
    seq = np.random.SeedSequence(check_private_seed(parent), spawn_key=tuple(name.encode()))
    return int.from_bytes(seq.generate_state(4, np.uint32).tobytes(), "little")


@dataclasses.dataclass(frozen=True, eq=False)
class AgentSecret:
    """What agent i alone holds: `params` (its own component of each private parameter),
    `weights` float64 `[D]` (its reward is `features . weights`) and `noise_seed` (its DP
    noise stream)."""

    agent_id: int
    params: dict[str, Any]
    weights: np.ndarray
    noise_seed: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "agent_id": self.agent_id,
                "params": {k: np.asarray(v).tolist() for k, v in self.params.items()},
                "weights": self.weights.tolist(),
                "noise_seed": str(self.noise_seed),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> AgentSecret:
        try:
            data = json.loads(text)
            weights = np.asarray(data["weights"], np.float64)
            secret = cls(
                agent_id=int(data["agent_id"]),
                params={k: np.asarray(v) for k, v in dict(data["params"]).items()},
                weights=weights,
                noise_seed=int(data["noise_seed"]),
            )
        except (ValueError, KeyError, TypeError) as err:
            raise AsfedError(f"{where} is not a readable agent secret ({err})") from None
        if weights.ndim != 1 or not np.isfinite(weights).all():
            raise AsfedError(f"{where} holds no finite weight vector")
        return secret


@dataclasses.dataclass(frozen=True, eq=False)
class Deal:
    """A run's secrets: `params` `{name: [N, ...]}`, `weights` float64 `[N, D]`, one
    `AgentSecret` per agent, and the private seed they came from (None where unknown)."""

    params: dict[str, np.ndarray]
    weights: np.ndarray
    agents: tuple[AgentSecret, ...]
    private_seed: int | None

    def world_part(self, dynamics_keys: list[str]) -> dict[str, np.ndarray]:
        """The parameters the world's dynamics read (exchange: `box_of`; elsewhere none)."""
        return {k: self.params[k].copy() for k in dynamics_keys}


def deal(env: Any, private_seed: int | None = None) -> Deal:
    """Draw the secrets of a run on `env` (a `VecEnv` with the run's agent count and options)
    from `private_seed` (None: a fresh one from OS entropy)."""
    seed = new_private_seed() if private_seed is None else check_private_seed(private_seed)
    nature, *agents = np.random.SeedSequence(seed).spawn(1 + env.num_agents)
    params = {k: np.asarray(v) for k, v in env.draw_private(np.random.default_rng(nature)).items()}
    weights = env.weights_of(params)
    secrets_ = tuple(
        AgentSecret(
            agent_id=i,
            params={k: np.asarray(v[i]) for k, v in params.items()},
            weights=weights[i].copy(),
            noise_seed=int.from_bytes(agents[i].generate_state(4, np.uint32).tobytes(), "little"),
        )
        for i in range(env.num_agents)
    )
    return Deal(params, weights, secrets_, seed)


def from_agents(agents: list[AgentSecret]) -> Deal:
    """The deal put back together from every agent's own secret (the private seed is then
    unknown): what a resume uses where the ground truth was never written."""
    agents = sorted(agents, key=lambda a: a.agent_id)
    params = {k: np.stack([np.asarray(a.params[k]) for a in agents]) for k in agents[0].params}
    weights = np.stack([a.weights for a in agents])
    return Deal(params, weights, tuple(agents), None)


# ---- storage ----------------------------------------------------------------------------------


def write_agent_secret(storage: str | Path, secret: AgentSecret) -> None:
    """Put agent i's secret in its private storage (atomically)."""
    path = Path(storage)
    path.mkdir(parents=True, exist_ok=True)
    atomic_write(path / SECRET, secret.to_json().encode())


def hand_out(deal_: Deal, agent_root: str | Path) -> None:
    """Each agent's own secret into its own storage, `<agent_root>/agent_<i>/secret.json`."""
    for secret in deal_.agents:
        write_agent_secret(Path(agent_root) / f"agent_{secret.agent_id}", secret)


def read_agent_secret(storage: str | Path, agent_id: int) -> AgentSecret:
    """Agent `agent_id`'s secret from its private storage; a clear error if missing or damaged
    (a resume never draws a new secret)."""
    path = Path(storage) / SECRET
    if not str(storage):
        raise AsfedError(f"agent {agent_id} has no private storage, so no secret to read")
    if not path.is_file():
        raise AsfedError(
            f"agent {agent_id}'s secret {path} is missing: the run cannot continue without it "
            "(its private reward and noise would change); restore the file or start a new run"
        )
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise AsfedError(f"cannot read agent {agent_id}'s secret {path}: {err}") from None
    secret = AgentSecret.from_json(text, str(path))
    if secret.agent_id != agent_id:
        raise AsfedError(f"{path} is agent {secret.agent_id}'s secret, not agent {agent_id}'s")
    return secret


def write_private_seed(truth: Path, private_seed: int | None) -> None:
    """Record the private seed in the ground truth (None: unknown, e.g. rebuilt from agents)."""
    truth.mkdir(parents=True, exist_ok=True)
    value = None if private_seed is None else str(private_seed)
    atomic_write(truth / PRIVATE_SEED, json.dumps({"private_seed": value}).encode())


def read_private_seed(truth: Path) -> int | None:
    """The private seed the ground truth records (None if unknown); a clear error if damaged."""
    path = truth / PRIVATE_SEED
    try:
        value = json.loads(path.read_text())["private_seed"]
        return None if value is None else check_private_seed(int(value), str(path))
    except FileNotFoundError:
        raise AsfedError(f"{path} is missing") from None
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise AsfedError(f"{path} is damaged ({err})") from None
