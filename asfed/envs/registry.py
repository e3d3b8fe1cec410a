"""The environment registry: name -> batched core class."""

from __future__ import annotations

from asfed.registry import Registry

ENVS: Registry[type] = Registry("env")
