"""Run configuration: scenario TOML + CLI overrides -> one frozen `RunConfig`.

Config flows one way: a named scenario (`scenarios/NAME.toml`, flat keys named as the fields
below) is read, CLI flags that were given override it, and the result is validated once, here,
into a frozen dataclass. Unset choices fall back to the paper's per-env defaults (Table 2 for
rho and learning rates, and the neighbourhoods of section 5.1: `line` for navigation, `distance`
for predation, `full` elsewhere).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import tomllib
import typing
from pathlib import Path
from typing import Any

from asfed.agents.hparams import PPOConfig, paper_config
from asfed.agents.methods import METHODS
from asfed.agents.networks import POLICY_LAYOUTS
from asfed.comm.dp import DPSettings, calibrate_sigma
from asfed.comm.topology import TOPOLOGIES, make_topology
from asfed.envs import ENVS, options_of
from asfed.envs.predation import ACTION_FRAMES
from asfed.errors import AsfedError, accepted

# The repository's scenarios/ (editable installs), else ./scenarios of the working directory.
SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
if not SCENARIO_DIR.is_dir():
    SCENARIO_DIR = Path.cwd() / "scenarios"
DEFAULT_TOPOLOGY = {"navigation": "line", "predation": "distance"}
ENGINES = ("flower", "local")
# Env steps rolled out per round, in parallel copies. Episodes per round default to this over the
# horizon: exchange 32, navigation/cleanup/harvest 96, predation 320. The round's size sets how
# many episodes one policy collects before the K updates, not the gradient steps per sample:
# those are Algorithm 1's (K per episode) at any size, since `minibatches` defaults to one per
# episode (see `asfed.agents.base`). Rounds this size amortise the Flower engine's fixed cost
# per round trip; `episodes = 1` is Algorithm 1's order exactly.
STEPS_PER_ROUND = 9600
# Integers a config may hold: TOML stores signed 64-bit integers; counts stay far below that.
MAX_SEED = 2**63 - 1
MAX_INT = 2**31 - 1
FLOAT_FIELDS = (
    "rho", "actor_lr", "critic_lr", "max_grad_norm", "dp_epsilon", "dp_sigma", "dp_delta",
    "dp_clip", "share_rows",
)  # fmt: skip
# A scenario's optional `[sweep]` table (methods, seeds, grid): `asfed.experiments.plan` reads it.
SWEEP_TABLE = "sweep"
# A scenario key that is not a RunConfig field: the secrets' seed (`asfed.dealer`), never written
# to config.toml. Read by `private_seed_of`.
PRIVATE_SEED_KEY = "private_seed"


def _key(default: Any, help: str, default_in_help: bool = False) -> Any:
    """A RunConfig field with its one-line help: the CLI's options (`asfed.cli.config_options`),
    scenario keys and `--set` all come from this one declaration, so a new key is one edit."""
    text = f"{help} (default: {default})" if default_in_help else help
    return dataclasses.field(default=default, metadata={"help": text})


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run. `None` means "the paper's default for this env"."""

    env: str = _key("exchange", "Environment (see `asfed list`).", default_in_help=True)
    method: str = _key(
        "as", "as, vs, vps, ps, ippo or cppo (cppo: 2 agents).", default_in_help=True
    )
    rounds: int = _key(300, "Training rounds.", default_in_help=True)
    seed: int = _key(
        1,
        "Public seed (episodes, acting, initialisation); with --private-seed, the same seeds "
        "give the same numbers.",
        default_in_help=True,
    )
    # Episodes rolled out per round (B); None: STEPS_PER_ROUND / horizon.
    episodes: int | None = _key(
        None, "Episodes rolled out per round (default: about 9,600 env steps)."
    )
    agents: int | None = _key(None, "Number of agents (env default if unset).")
    horizon: int | None = _key(None, "Episode length (env default if unset).")
    topology: str | None = _key(
        None, "full, line, ring, random-one or distance (paper default per env)."
    )
    every: int = _key(1, "Communicate every k-th round only.", default_in_help=True)
    rho: float | None = _key(None, "AS penalty weight (Table 2 if unset; 0 = ablation).")
    actor_lr: float | None = _key(None, "Actor learning rate (Table 2).")
    critic_lr: float | None = _key(None, "Critic learning rate (Table 1).")
    layout: str = _key(
        "separate", "AS policies: separate (the paper) or multihead.", default_in_help=True
    )
    # Gradient steps per update; None: one per episode (Algorithm 1).
    minibatches: int | None = _key(
        None,
        "Gradient steps per update (default: one per episode of the round, Algorithm 1's K "
        "steps per episode; --episodes 1 --minibatches 1 is Algorithm 1 literally).",
    )
    max_grad_norm: float | None = _key(
        None, "Clip each network's gradient to this norm (default: off, the paper's)."
    )
    compile_steps: bool = _key(
        False,
        "Compile each lockstep minibatch step of Table 2's 128-64 networks, Adam included, as "
        "one torch.compile program: x1.3-1.5 on AS, x1.0-1.2 on IPPO and VS once compiled "
        "(20-60 s a process); equal to the default only to rounding, equal across workers and "
        "engines.",
    )
    engine: str = _key(
        "flower",
        "flower (each agent a Flower ClientApp, on Flower's simulation engine) or local "
        "(in-process, same numbers).",
        default_in_help=True,
    )
    # The message log is recorded every n-th round (AS: ~2.8 MB a round).
    log_every: int = _key(10, "Record messages every n-th round.", default_in_help=True)
    checkpoint_every: int = _key(10, "Checkpoint every n rounds.", default_in_help=True)
    zap: bool = _key(False, "Cleanup/harvest: enable the zap action.")
    private_weights: bool = _key(False, "Cleanup/harvest: draw private apple values.")
    predation_actions: str = _key(
        "left-right",
        "Predation: left-right (section 5's A = {-1, +1}) or toward-away (how the paper words "
        "Fig. 7's task).",
        default_in_help=True,
    )
    dp_epsilon: float | None = _key(
        None,
        "Differential privacy: target epsilon over the run for every shared message (sigma "
        "calibrated; the public trajectory is not covered).",
    )
    dp_sigma: float | None = _key(None, "Or the Gaussian noise multiplier itself.")
    dp_delta: float = _key(1e-5, "DP delta (default: 1e-05).")
    dp_clip: float = _key(
        1.0, "L2 clip of shared vectors: VS values, VPS/PS parameters (default: 1)."
    )
    # A departure from the paper (which shares every row), to cut what AS releases: a message
    # on R' of the R rows has DP sensitivity sqrt(2 R') and so needs sqrt(R / R') less noise.
    share_rows: float = _key(
        1.0,
        "AS: share a random fraction of the round's rows each share (default: 1, every row, "
        "the paper's); under DP the noise shrinks with the rows sent.",
    )

    def __post_init__(self) -> None:
        ENVS.get(self.env)
        METHODS.get(self.method)
        if self.topology is not None:
            TOPOLOGIES.get(self.topology)
        if self.layout not in POLICY_LAYOUTS:
            raise AsfedError(
                f"unknown layout {self.layout!r}; accepted: {accepted(POLICY_LAYOUTS)}"
            )
        if self.engine not in ENGINES:
            raise AsfedError(f"unknown engine {self.engine!r}; accepted: {accepted(ENGINES)}")
        for name in ("rounds", "episodes", "every", "minibatches", "log_every", "checkpoint_every"):
            value = getattr(self, name)
            if name in ("episodes", "minibatches") and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_INT:
                raise AsfedError(f"{name}={value!r} is invalid; accepted: an integer 1..{MAX_INT}")
        for name in ("agents", "horizon"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not 1 <= value <= MAX_INT):
                raise AsfedError(f"{name}={value!r} is invalid; accepted: an integer 1..{MAX_INT}")
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not (0 <= self.seed <= MAX_SEED)
        ):
            raise AsfedError(f"seed={self.seed!r} is invalid; accepted: an integer 0..{MAX_SEED}")
        for name in FLOAT_FIELDS:
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise AsfedError(
                    f"{name}={value} is invalid; accepted: a finite number"
                    + (" (leave dp_epsilon unset for no noise)" if name == "dp_epsilon" else "")
                )
        if (self.zap or self.private_weights) and "zap" not in options_of(self.env):
            raise AsfedError(
                f"zap and private_weights are options of cleanup and harvest, not {self.env!r}"
            )
        if self.predation_actions not in ACTION_FRAMES:
            raise AsfedError(
                f"predation_actions={self.predation_actions!r} is invalid; "
                f"accepted: {accepted(ACTION_FRAMES)}"
            )
        if self.predation_actions != "left-right" and self.env != "predation":
            raise AsfedError(
                f"predation_actions is an option of predation, not {self.env!r}; "
                "accepted: left-right (the default) elsewhere"
            )
        self.ppo()  # validates rho and learning rates
        if self.dp_epsilon is not None and not self.dp_epsilon > 0:
            raise AsfedError(f"dp_epsilon={self.dp_epsilon} is invalid; accepted: a number > 0")
        if self.dp_sigma is not None and not self.dp_sigma > 0:
            raise AsfedError(f"dp_sigma={self.dp_sigma} is invalid; accepted: a number > 0")
        if not 0 < self.dp_delta < 1:
            raise AsfedError(f"dp_delta={self.dp_delta} is invalid; accepted: 0 < delta < 1")
        if not self.dp_clip > 0:
            raise AsfedError(f"dp_clip={self.dp_clip} is invalid; accepted: a number > 0")
        if not 0 < self.share_rows <= 1:
            raise AsfedError(
                f"share_rows={self.share_rows} is invalid; accepted: a fraction 0 < f <= 1"
            )
        if self.share_rows < 1 and self.method != "as":
            raise AsfedError(
                f"share_rows is an option of AS's distributions, not {self.method!r}; "
                "accepted: 1 (the default) for other methods"
            )
        if self.compile_steps and not (os.environ.get("CXX") or shutil.which("g++")):
            raise AsfedError(
                "compile_steps needs a C++ compiler for torch.compile on the CPU (g++ on PATH, "
                "or $CXX) and none was found; accepted: install one (Debian: apt install g++), "
                "or leave compile_steps off"
            )
        if self.private and self.method == "cppo":
            raise AsfedError(
                "cppo shares rewards, which have no DP mechanism; accepted methods "
                "with --dp-*: as, vs, vps, ps, ippo"
            )

    @property
    def private(self) -> bool:
        """Whether shared messages are noised (a DP run)."""
        return self.dp_epsilon is not None or self.dp_sigma is not None

    def release_bound(self) -> int:
        """An upper bound on any agent's releases over the run: every round that communicates
        (with `every` k, rounds 0, k, 2k, ...: sharing every k-th round cuts the releases, so
        the same epsilon buys sqrt(k) times less noise), each of the K shares, each kind the
        method may send, to every agent it could ever neighbour."""
        n = self.agents or ENVS.get(self.env).default_agents
        topology = make_topology(self.topology_name(), n, self.every)
        degree = max(len(topology.potential(i)) for i in range(n))
        kinds = len(METHODS.get(self.method).allowed_kinds)
        talking = len(range(0, self.rounds, self.every))
        return talking * self.ppo().epochs * kinds * degree

    def dp_settings(self) -> DPSettings | None:
        """The agents' DP mechanism: sigma as given (a resolved config records the calibrated
        one, so a resumed or extended run keeps its noise), else calibrated so that the run's
        `release_bound` releases meet dp_epsilon at dp_delta."""
        if not self.private:
            return None
        sigma = self.dp_sigma
        if sigma is None:
            sigma = calibrate_sigma(self.dp_epsilon, self.dp_delta, self.release_bound())
        return DPSettings(sigma=sigma, clip=self.dp_clip, delta=self.dp_delta)

    def ppo(self) -> PPOConfig:
        """The PPO settings: the paper's for this env, with any given override."""
        given = {k: getattr(self, k) for k in ("rho", "actor_lr", "critic_lr", "max_grad_norm")}
        return paper_config(self.env, **{k: v for k, v in given.items() if v is not None})

    def env_horizon(self) -> int:
        """The episode length: as given, else the env's default."""
        return self.horizon or ENVS.get(self.env).default_horizon

    def num_episodes(self) -> int:
        """Episodes per round: as given, else STEPS_PER_ROUND env steps over the horizon."""
        if self.episodes is not None:
            return self.episodes
        return max(1, round(STEPS_PER_ROUND / self.env_horizon()))

    def num_minibatches(self) -> int:
        """Gradient steps per update: as given, else one per episode of the round, so each step
        takes one episode's worth of samples, as Algorithm 1 does."""
        return self.minibatches if self.minibatches is not None else self.num_episodes()

    def topology_name(self) -> str:
        return self.topology or DEFAULT_TOPOLOGY.get(self.env, "full")

    def env_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"num_agents": self.agents, "horizon": self.horizon}
        if "zap" in options_of(self.env):
            opts.update(zap=self.zap, private_weights=self.private_weights)
        if "action_frame" in options_of(self.env):
            opts["action_frame"] = self.predation_actions
        return {k: v for k, v in opts.items() if v is not None}

    def resolved(self) -> RunConfig:
        """The same run with every paper default written out (what config.toml records)."""
        cls = ENVS.get(self.env)
        ppo = self.ppo()
        return dataclasses.replace(
            self,
            agents=self.agents or cls.default_agents,
            episodes=self.num_episodes(),
            minibatches=self.num_minibatches(),
            dp_sigma=dp.sigma if (dp := self.dp_settings()) is not None else None,
            horizon=self.horizon or cls.default_horizon,
            topology=self.topology_name(),
            rho=ppo.rho,
            actor_lr=ppo.actor_lr,
            critic_lr=ppo.critic_lr,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


def config_value(values: dict[str, Any], key: str) -> Any:
    """`values[key]` of a config as written (config.toml), or the field's default where it is
    missing: a run folder written before the key existed ran with the default, and TOML leaves
    out None. Keys that are not RunConfig fields read as None."""
    if key in values:
        return values[key]
    field = FIELDS.get(key)
    if field is None or field.default is dataclasses.MISSING:
        return None
    return field.default


def config_differences(
    want: dict[str, Any], held: dict[str, Any], may_differ: frozenset[str] = frozenset()
) -> list[str]:
    """RunConfig keys whose values differ between two configs as written, sorted; a missing key
    reads as its default (`config_value`). Keys in `may_differ` do not count, nor does dp_sigma
    where `want` sets dp_epsilon and the rounds may differ: sigma is calibrated from epsilon and
    the rounds, so an extended run keeps the noise of its first rounds."""
    skip = set(may_differ)
    if want.get("dp_epsilon") is not None and "rounds" in skip:
        skip.add("dp_sigma")
    keys = FIELDS.keys() - skip
    return sorted(k for k in keys if config_value(want, k) != config_value(held, k))


# Each field's accepted types, from its annotation: `int | None` -> (int, NoneType).
KINDS = {
    name: typing.get_args(hint) or (hint,)
    for name, hint in typing.get_type_hints(RunConfig).items()
}


def _fits(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):  # a bool is an int to isinstance, never to a config
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


def check_types(values: dict[str, Any], source: str) -> None:
    """Raise a clear error for an unknown setting or a value of the wrong type."""
    for key, value in values.items():
        if key not in FIELDS:
            raise AsfedError(f"unknown setting {key!r} in {source}; accepted: {accepted(FIELDS)}")
        kinds = KINDS[key]
        if not _fits(value, kinds):
            names = " or ".join(k.__name__ for k in kinds if k is not type(None))
            raise AsfedError(f"{key}={value!r} in {source} should be {names}")


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict, or a clear error naming the file and the problem."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise AsfedError(f"no such file: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise AsfedError(f"cannot read {path}: {err}") from None


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load_scenario(name_or_path: str) -> dict[str, Any]:
    """A scenario's settings, by name (`scenarios/NAME.toml`) or by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = SCENARIO_DIR / f"{name_or_path}.toml"
        if not path.exists():
            raise AsfedError(
                f"unknown scenario {name_or_path!r}; accepted: {accepted(scenario_names())}"
            )
    values = read_toml(path)
    values.pop(SWEEP_TABLE, None)  # a sweep's grid, read and checked by `asfed sweep` alone
    values.pop(PRIVATE_SEED_KEY, None)  # a secret's seed, not a setting (`private_seed_of`)
    check_types(values, str(path))
    return values


def private_seed_of(scenario: str | None) -> int | None:
    """A scenario's `private_seed` (None if it sets none), checked."""
    if not scenario:
        return None
    path = Path(scenario)
    if path.suffix != ".toml":
        path = SCENARIO_DIR / f"{scenario}.toml"
    value = read_toml(path).get(PRIVATE_SEED_KEY)
    if value is None:
        return None
    from asfed.dealer import check_private_seed

    return check_private_seed(value, f"{PRIVATE_SEED_KEY} in {path}")


def build_config(scenario: str | None = None, **overrides: Any) -> RunConfig:
    """Scenario (if any), then the given overrides (None = not given), into a `RunConfig`."""
    values = load_scenario(scenario) if scenario else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    check_types(given, "the command line")
    merged = {**values, **given}
    if merged.get("dp_epsilon") is not None and merged.get("dp_sigma") is not None:
        raise AsfedError("give dp_epsilon or dp_sigma, not both (sigma is calibrated from epsilon)")
    return RunConfig(**{**values, **given})


def to_toml(values: dict[str, Any]) -> str:
    """A flat dict of str/int/float/bool as TOML (None values are left out)."""
    lines = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        elif isinstance(value, str):
            text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        else:
            raise TypeError(f"cannot write {key}={value!r} as TOML")
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"
