"""Hyperparameters of the paper's appendix A.3 (Tables 1 and 2), one frozen record per env."""

from __future__ import annotations

import dataclasses
import math

from asfed.errors import AsfedError, accepted


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """The PPO core's settings. Table 1 is common to all envs; Table 2 varies per env."""

    actor_hidden: tuple[int, ...]
    critic_hidden: tuple[int, ...]
    actor_lr: float
    critic_lr: float = 1e-4
    gamma: float = 0.99
    gae_lambda: float = 0.98
    clip: float = 0.2
    epochs: int = 3  # the paper's update iterations K
    rho: float = 0.0  # AS penalty weight (Table 2); 0 is the paper's ablation
    max_grad_norm: float | None = None  # the paper clips no gradients; set to clip per group

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rho) and self.rho >= 0):
            raise AsfedError(f"rho={self.rho} is invalid; accepted: a finite number >= 0")
        for name in ("actor_lr", "critic_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise AsfedError(f"{name}={value} is invalid; accepted: a finite number > 0")
        if not (0 <= self.gamma <= 1 and 0 <= self.gae_lambda <= 1):
            raise AsfedError(
                f"gamma={self.gamma}, gae_lambda={self.gae_lambda}; accepted: numbers in [0, 1]"
            )
        if not 0 < self.clip < 1:
            raise AsfedError(f"clip={self.clip} is invalid; accepted: 0 < clip < 1")
        if self.max_grad_norm is not None and not (
            math.isfinite(self.max_grad_norm) and self.max_grad_norm > 0
        ):
            raise AsfedError(
                f"max_grad_norm={self.max_grad_norm} is invalid; accepted: a finite number > 0 "
                "(or unset)"
            )
        if self.epochs < 1:
            raise AsfedError(f"epochs={self.epochs} is invalid; accepted: an integer >= 1")


_SMALL, _LARGE = (128, 64), (1024, 256)

PAPER = {
    "cleanup": PPOConfig(_LARGE, _LARGE, actor_lr=5e-5, rho=1e3),
    "harvest": PPOConfig(_LARGE, _LARGE, actor_lr=5e-5, rho=0.1),
    "predation": PPOConfig(_SMALL, _SMALL, actor_lr=1e-4, rho=0.1),
    "navigation": PPOConfig(_SMALL, _SMALL, actor_lr=5e-5, rho=1e4),
    "exchange": PPOConfig(_SMALL, _SMALL, actor_lr=5e-5, rho=1e4),
}


def paper_config(env: str, **overrides: object) -> PPOConfig:
    """The paper's settings for `env`, with any field overridden."""
    if env not in PAPER:
        raise AsfedError(f"no paper hyperparameters for env {env!r}; accepted: {accepted(PAPER)}")
    fields = {f.name for f in dataclasses.fields(PPOConfig)}
    for key in overrides:
        if key not in fields:
            raise AsfedError(f"unknown PPO setting {key!r}; accepted: {accepted(fields)}")
    return dataclasses.replace(PAPER[env], **overrides)
