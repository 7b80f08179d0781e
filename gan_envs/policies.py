"""Policies for collection: any callable ``(observations, infos) -> actions`` for a vector batch.

``"random"`` samples the vector action space (seeded); ``"module:callable"`` imports a callable
(or a class or factory that takes the vector env and returns one).

Example:
    >>> import gymnasium as gym, numpy as np
    >>> envs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    >>> policy = load_policy("random", envs, seed=0)
    >>> obs, infos = envs.reset(seed=0)
    >>> policy(obs, infos).shape
    (2,)
    >>> envs.close()
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["Policy", "RandomPolicy", "load_policy", "PolicyError"]

Policy = Callable[[np.ndarray, dict[str, Any]], np.ndarray]


class PolicyError(ValueError):
    """A policy spec that cannot be loaded, or a policy that returns bad actions."""


class RandomPolicy:
    """Uniformly random actions from a vector env's action space, reproducible from ``seed``."""

    def __init__(self, envs: gym.vector.VectorEnv, seed: int | None = None) -> None:
        self.action_space = envs.action_space
        self.action_space.seed(seed)

    def __call__(self, observations: np.ndarray, infos: dict[str, Any]) -> np.ndarray:
        return np.asarray(self.action_space.sample())


def load_policy(spec: str, envs: gym.vector.VectorEnv, seed: int | None = None) -> Policy:
    """Turn ``"random"`` or ``"package.module:name"`` into a policy for ``envs``.

    ``name`` may be a policy itself, or a class/factory whose only required parameter is the
    vector env (called as ``name(envs)``; ``seed=`` is passed when it accepts one).

    Raises:
        PolicyError: the module or attribute does not exist, or it is not callable.
    """
    if spec == "random":
        return RandomPolicy(envs, seed)
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise PolicyError(f"policy {spec!r} must be 'random' or 'module:callable'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise PolicyError(f"policy {spec!r}: cannot import {module_name!r} ({error})") from None
    target = getattr(module, attribute, None)
    if target is None or not callable(target):
        raise PolicyError(f"policy {spec!r}: {module_name} has no callable {attribute!r}")
    if _is_factory(target):
        kwargs = {"seed": seed} if "seed" in _parameters(target) else {}
        target = target(envs, **kwargs)
        if not callable(target):
            raise PolicyError(f"policy {spec!r}: the factory returned a non-callable {target!r}")
    return target


def _parameters(obj: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        return {}


def _is_factory(obj: Any) -> bool:
    """A class, or a callable whose required parameters are fewer than a policy's two."""
    if inspect.isclass(obj):
        return True
    required = [p for p in _parameters(obj).values()
                if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) == 1
