"""Policies for collection: any callable ``(observations, infos) -> actions`` for a vector batch.

``"random"`` samples the vector action space (seeded); ``"module:callable"`` imports a callable
(or a class or factory that takes the vector env and returns one); a callable may also be given
directly.

A class is a factory. A function or other callable is a factory when the vector env is its only
required positional parameter (``make(envs)``, ``make(envs, seed=None)``), unless its second
positional parameter is named ``infos`` or ``info`` or it takes ``*args``: then it is a policy
(``act(observations, infos=None)``), as is any callable with two required parameters.

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

from gan_envs._text import first_line, short_repr

__all__ = ["Policy", "RandomPolicy", "load_policy", "policy_name", "policy_target", "PolicyError"]

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


def policy_actions(policy: Policy, observations: np.ndarray, infos: dict[str, Any],
                   action_space: gym.Space) -> np.ndarray:
    """Call ``policy`` and check that it returned one valid action per sub-environment.

    A policy that raises, or returns actions outside the vector env's ``action_space`` (an
    out-of-range index, a wrong shape or type), raises :class:`PolicyError` here, before the
    actions reach the emulators (which may not say what went wrong).

    Example:
        >>> space = gym.spaces.MultiDiscrete([4, 4])
        >>> policy_actions(lambda obs, infos: [1, 3], None, {}, space).tolist()
        [1, 3]
        >>> policy_actions(lambda obs, infos: [1, 7], None, {}, space)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gan_envs.policies.PolicyError: policy <lambda> returned [1, 7], which is not ...
    """
    name = getattr(policy, "__name__", type(policy).__name__)
    try:
        returned = policy(observations, infos)
        if callable(returned):
            raise PolicyError(f"policy {name} returned a callable, {short_repr(returned, 60)}: "
                              f"if {name} is a factory, make the vector env its only required "
                              "parameter (not *args)")
        actions = np.asarray(returned)
    except PolicyError:
        raise
    except Exception as error:  # the user's code: report it as the policy's failure
        raise PolicyError(f"policy {name} raised {type(error).__name__}: "
                          f"{first_line(error)}") from error
    if actions.dtype.kind != "b" and _valid_actions(actions, action_space):
        return actions.copy()  # a policy may refill one array every call: keep what was sent
    shown = np.array2string(actions.ravel()[:8], separator=", ")
    raise PolicyError(f"policy {name} returned {shown}{'...' if actions.size > 8 else ''}, "
                      f"which is not in the action space {action_space}: return one "
                      "valid action per sub-environment"
                      + (" (bool actions: cast them, e.g. (obs[:, 2] > 0).astype(int))"
                         if actions.dtype.kind == "b" else ""))


def _valid_actions(actions: np.ndarray, space: gym.Space) -> bool:
    """Whether ``actions`` lie in ``space``; integer actions of a discrete vector space (every
    batch of an Atari collection) are checked directly, at under half the cost of ``contains``."""
    if isinstance(space, gym.spaces.MultiDiscrete) and actions.dtype.kind in "iu" \
            and actions.shape == space.shape:
        return bool(((actions >= space.start) & (actions < space.start + space.nvec)).all())
    castable = actions.dtype.kind in "iu" or (
        actions.dtype.kind == "f" and isinstance(space, gym.spaces.Box))
    try:
        return bool(space.contains(actions)) or (castable and bool(
            space.contains(actions.astype(space.dtype))))
    except Exception:  # noqa: BLE001 - a value the space cannot even compare
        return False


def load_policy(spec: str | Callable[..., Any], envs: gym.vector.VectorEnv,
                seed: int | None = None) -> Policy:
    """Turn ``"random"``, ``"package.module:name"`` or a callable into a policy for ``envs``.

    ``name`` (or the callable) may be a policy itself, or a class/factory whose only required
    parameter is the vector env (called as ``name(envs)``; ``seed=`` is passed when it accepts
    one). See the module docstring for how the two are told apart.

    Raises:
        PolicyError: the module or attribute does not exist, or it is not callable.
    """
    if callable(spec):
        return _built(spec, policy_name(spec), envs, seed)
    if not isinstance(spec, str):
        raise PolicyError(f"policy must be 'random', 'module:callable' or a callable, got "
                          f"{short_repr(spec, 80)}")
    if spec == "random":
        return RandomPolicy(envs, seed)
    return _built(policy_target(spec), spec, envs, seed)


def policy_target(spec: str) -> Callable[..., Any]:
    """The callable a ``"module:callable"`` spec names, imported; a one-line PolicyError for a
    spec that is not one (a file path), a module that cannot be imported or fails while it is
    imported, or a name it does not hold. ``collect`` calls it before it makes environments.

    Example:
        >>> policy_target("numpy:zeros_like").__name__
        'zeros_like'
        >>> policy_target("./agent.py:act")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        gan_envs.policies.PolicyError: policy './agent.py:act': give a module name, ...
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise PolicyError(f"policy {spec!r} must be 'random' or 'module:callable'")
    if "/" in module_name or "\\" in module_name or module_name.startswith(".") \
            or module_name.endswith(".py"):
        stem = module_name.replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".py")
        raise PolicyError(f"policy {spec!r}: give a module name, not a file: put the file's "
                          f"folder on PYTHONPATH and pass {stem}:{attribute} (e.g. "
                          f"PYTHONPATH=. --policy {stem}:{attribute} for a file in this folder)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        hint = ("; is its folder on PYTHONPATH? (e.g. PYTHONPATH=. for this folder)"
                if error.name == module_name.split(".")[0] else "")
        raise PolicyError(f"policy {spec!r}: cannot import {module_name!r} ({error}){hint}"
                          ) from None
    except Exception as error:  # the user's module failed while importing: name what it raised
        raise PolicyError(f"policy {spec!r}: importing {module_name!r} raised "
                          f"{type(error).__name__}: {first_line(error)}; fix the module") from None
    target = getattr(module, attribute, None)
    if target is None or not callable(target):
        raise PolicyError(f"policy {spec!r}: {module_name} has no callable {attribute!r}")
    return target


def policy_name(policy: str | Callable[..., Any]) -> str:
    """How a policy is recorded in a dataset: a spec as given, a callable as ``module:name``.

    Example:
        >>> policy_name("random"), policy_name(np.zeros_like)
        ('random', 'numpy:zeros_like')
    """
    if isinstance(policy, str):
        return policy
    module = getattr(policy, "__module__", None) or type(policy).__module__
    name = getattr(policy, "__qualname__", None) or type(policy).__qualname__
    return f"{module}:{name}"


def _built(target: Callable[..., Any], spec: str, envs: gym.vector.VectorEnv,
           seed: int | None) -> Policy:
    """``target`` itself if it is a policy, else what its factory call returns."""
    if not _is_factory(target):
        return target
    kwargs = {"seed": seed} if "seed" in _parameters(target) else {}
    attribute = spec.rpartition(":")[2]
    try:
        policy = target(envs, **kwargs)
    except Exception as error:  # the user's code: name it and what it raised
        raise PolicyError(f"policy {spec!r}: {attribute}(envs) raised "
                          f"{type(error).__name__}: {first_line(error)}; pass a policy "
                          "(observations, infos) -> actions, or a factory of one") from error
    if not callable(policy):
        raise PolicyError(f"policy {spec!r}: the factory returned a non-callable "
                          f"{short_repr(policy, 80)}")
    return policy


def _parameters(obj: Any) -> dict[str, inspect.Parameter]:
    try:
        return dict(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
        return {}


def _is_factory(obj: Any) -> bool:
    """A class; or a callable whose only required positional parameter is the vector env,
    unless its second positional parameter is ``infos``/``info`` or it takes ``*args``.

    Example:
        >>> _is_factory(lambda envs: None), _is_factory(lambda envs, seed=None: None)
        (True, True)
        >>> _is_factory(lambda envs, deterministic=False, seed=None: None)
        True
        >>> _is_factory(lambda obs, infos: None), _is_factory(lambda obs, infos=None: None)
        (False, False)
    """
    if inspect.isclass(obj):
        return True
    parameters = list(_parameters(obj).values())
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return False  # f(*args): called as a policy
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if len(positional) >= 2 and positional[1].name in ("infos", "info"):
        return False
    return len(required) == 1
