"""How a source's runs are drawn: panels (one problem each) holding series (one learner each).

A panel is the runs that face the same problem: equal env and env options, topology, cadence,
episodes a round. A series is the runs of one learner in a panel: equal method and learner
settings (rho, learning rates, layout, DP), its seeds pooled. Only settings that vary within the
source (panels) or within the panel (series) name them, so Fig. 2's series are "as", "vs", ...
and Fig. 4's are "as rho=900", "as rho=1000", ...

Each panel also carries its env's reference returns (`asfed.envs.references`), computed for its
env options: a uniformly random policy, the best scripted policy, everyone selfish.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any

import numpy as np

from asfed.config import config_value
from asfed.envs.references import Reference, reference_returns
from asfed.report import stats
from asfed.report.collect import Run, Source

# Settings that make a learner, not a problem.
LEARNER = (
    "method", "rho", "actor_lr", "critic_lr", "max_grad_norm", "minibatches", "layout",
    "dp_epsilon", "dp_sigma", "dp_clip", "dp_delta",
)  # fmt: skip
# Settings that name neither: the seed is pooled, the rest do not change the numbers or only
# the length of the curve.
IGNORED = ("seed", "rounds", "log_every", "checkpoint_every", "engine")
# Learner settings only some methods read: a series of another method is not labelled with them
# (IPPO beside AS at several rho is "ippo", not "ippo rho=1000").
READ_BY = {"rho": {"as"}, "layout": {"as"}}
# Env options the references depend on (config key -> make_vec_env option); zap and private
# weights are options of cleanup and harvest only.
ENV_OPTIONS = {"agents": "num_agents", "horizon": "horizon"}
SSD_OPTIONS = ("zap", "private_weights")
PREDATION_OPTIONS = {"predation_actions": "action_frame"}


@dataclasses.dataclass
class Series:
    """One learner's runs in a panel (one per seed)."""

    label: str
    method: str
    runs: list[Run]

    @property
    def finals(self) -> np.ndarray:
        """Each run's final team return `[S]`, runs whose training diverged left out (their
        last rounds before it are not a final return)."""
        return np.array([stats.final(r.team) for r in self.runs if not r.diverged])

    @property
    def diverged(self) -> int:
        """How many of the series' runs diverged."""
        return sum(1 for r in self.runs if r.diverged)

    def final_ci(self) -> tuple[float, float, float]:
        return stats.mean_ci(self.finals)

    def bytes_per_round(self) -> float:
        """Mean bytes the relay carried per round, over rounds and seeds."""
        return float(np.mean([r.bytes_total.mean() for r in self.runs]))

    @property
    def rounds(self) -> int:
        return max(len(r.team) for r in self.runs)


@dataclasses.dataclass
class Panel:
    """The runs facing one problem: its env, a title naming the settings that vary between
    panels, one run's config (the problem's settings) and its series."""

    env: str
    title: str
    config: dict[str, Any]
    series: list[Series]

    @property
    def references(self) -> dict[str, Reference]:
        """The env's reference returns under this panel's options (cached per options)."""
        options = {opt: self.config[k] for k, opt in ENV_OPTIONS.items() if k in self.config}
        if self.env in ("cleanup", "harvest"):
            options.update({k: self.config[k] for k in SSD_OPTIONS if k in self.config})
        if self.env == "predation":
            options.update(
                {o: self.config[k] for k, o in PREDATION_OPTIONS.items() if k in self.config}
            )
        return _references(self.env, tuple(sorted(options.items())))

    def best_scripted(self) -> Reference | None:
        """The best scripted policy's reference (optimum, else the selfish one, e.g. harvest's
        greedy eaters): what 1 means on the normalised scale."""
        refs = [r for k, r in self.references.items() if k != "random"]
        return max(refs, key=lambda r: r.mean) if refs else None

    def normalised(self, value: float) -> float:
        """0 = the random policy, 1 = the best scripted policy."""
        best, rand = self.best_scripted(), self.references["random"]
        if best is None or best.mean == rand.mean:
            return float("nan")
        return (value - rand.mean) / (best.mean - rand.mean)


@cache
def _references(env: str, options: tuple[tuple[str, Any], ...]) -> dict[str, Reference]:
    return reference_returns(env, dict(options))


def _fmt(value: Any, key: str = "") -> str:
    """A setting as a label shows it: None reads as what it means (no DP noise; the paper's
    default), never "None"."""
    if value is None:
        return "none (no noise)" if key == "dp_epsilon" else "paper default"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _order(value: Any) -> tuple:
    """Series order within a panel: numbers ascending, then text, then None (no noise, the
    paper's default) last, so epsilons read 1, 4, 16, 64, none."""
    if value is None:
        return (2, 0.0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _setting(config: dict[str, Any], key: str) -> str:
    return repr(config_value(config, key))


def _varying(configs: list[dict[str, Any]], keys: list[str]) -> list[str]:
    return [k for k in keys if len({_setting(c, k) for c in configs}) > 1]


def panels(source: Source) -> list[Panel]:
    """The source's runs as panels of series, in the order the runs come."""
    configs = [r.config for r in source.runs]
    keys = list(dict.fromkeys(k for c in configs for k in c))
    problem = [k for k in keys if k not in LEARNER and k not in IGNORED]
    shown = [k for k in _varying(configs, problem) if k != "env"]
    groups: dict[tuple, list[Run]] = {}
    for run in source.runs:
        key = tuple(_setting(run.config, k) for k in problem)
        groups.setdefault(key, []).append(run)
    out = []
    for runs in groups.values():
        cfg = runs[0].config
        learner = _varying([r.config for r in runs], [k for k in LEARNER if k != "method"])
        if "dp_epsilon" in learner and "dp_sigma" in learner:
            learner.remove("dp_sigma")  # calibrated from epsilon: it says nothing more
        methods = list(dict.fromkeys(r.config["method"] for r in runs))
        runs = sorted(
            runs,
            key=lambda r: (
                methods.index(r.config["method"]),
                *(_order(config_value(r.config, k)) for k in learner),
            ),
        )
        by_series: dict[str, list[Run]] = {}
        for run in runs:
            method = run.config["method"]
            extra = " ".join(
                f"{k}={_fmt(config_value(run.config, k), k)}"
                for k in learner
                if method in READ_BY.get(k, {method})
            )
            by_series.setdefault(f"{run.config['method']} {extra}".strip(), []).append(run)
        series = [Series(label, rs[0].config["method"], rs) for label, rs in by_series.items()]
        setting = ", ".join(f"{k}={_fmt(config_value(cfg, k), k)}" for k in shown if k != "agents")
        title = f"{cfg['env']}, {cfg.get('agents', '?')} agents" + (
            f", {setting}" if setting else ""
        )
        out.append(Panel(cfg["env"], title, cfg, series))
    return out
