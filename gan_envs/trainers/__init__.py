"""Trainers that consume rollout data: the GAN trainer, sampling, offline evaluation.

Importing this package is cheap (no torch); the names below load their submodule on first use:

- :func:`train_gan`, :class:`GanConfig`, :class:`GanRunSummary` (``gan_envs.trainers.gan``)
- :func:`sample`, :func:`sweep`, :func:`interpolate`, :func:`load_generator` (``.sampling``)
- :func:`evaluate`, :func:`report_table` (``.metrics``)
- :class:`FrameSource`, :class:`ArrayFrameSource`, :class:`EnvFrameSource` (``.data``)
- :func:`make_grid`, :func:`save_png`, :func:`write_video` (``.images``)
- :func:`train_world_model`, :class:`WorldModelConfig`, :class:`WorldModelSummary`,
  :class:`WorldModelError`, :func:`evaluate_world_model`, :func:`metrics_table`, :func:`dream`
  (``.world_model``)
- :class:`EpisodeSource`, :class:`ArrayEpisodeSource`, :func:`collect_random_episodes`
  (``.sequences``)
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "train_gan": "gan", "GanConfig": "gan", "GanRunSummary": "gan", "RECIPES": "gan",
    "sample": "sampling", "sweep": "sampling", "interpolate": "sampling",
    "load_generator": "sampling",
    "evaluate": "metrics", "report_table": "metrics",
    "FrameSource": "data", "ArrayFrameSource": "data", "EnvFrameSource": "data",
    "make_grid": "images", "save_png": "images", "write_video": "images",
    "train_world_model": "world_model", "WorldModelConfig": "world_model",
    "WorldModelSummary": "world_model", "WorldModelError": "world_model",
    "evaluate_world_model": "world_model", "metrics_table": "world_model",
    "dream": "world_model",
    "EpisodeSource": "sequences", "ArrayEpisodeSource": "sequences",
    "collect_random_episodes": "sequences",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
