"""What a rollout dataset holds, as a JSON-friendly dict (``gan-envs info``).

Example:
    >>> import tempfile, pathlib
    >>> from gan_envs.collect import CollectConfig, collect
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "cartpole.h5"
    >>> _ = collect(CollectConfig(["CartPole-v1"], path, episodes=4, num_envs=2))
    >>> info = dataset_info(path)
    >>> info["episodes"], info["envs"][0]["env_id"], info["codec"]
    (4, 'CartPole-v1', 'gzip')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["dataset_info", "format_info"]


def _stats(values: np.ndarray) -> dict[str, float | None]:
    """Mean, std, min and max; None where there are no values or the value is not finite (a
    damaged table's NaN return: JSON has no number for it)."""
    if len(values) == 0:
        return {"mean": None, "std": None, "min": None, "max": None}
    stats = {"mean": values.mean(), "std": values.std(), "min": values.min(),
             "max": values.max()}
    return {k: float(v) if np.isfinite(v) else None for k, v in stats.items()}


def _plain(value: Any) -> Any:
    """A metadata value as JSON has it: an attribute someone set to an array or a NaN made
    ``info --json`` a traceback or print ``NaN``, which is not JSON."""
    if isinstance(value, (np.ndarray, np.generic)):
        value = value.tolist()
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if value is None or isinstance(value, (str, int)) else str(value)


def dataset_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Counts per environment, return statistics, size on disk, codec, versions, command.

    Reads only the episode table, the blank flags and the metadata: fast on any size.
    """
    from gan_envs.datasets import RolloutReader

    path = Path(path)
    with RolloutReader(path) as reader:
        table = reader.episode_table
        meta = reader.metadata
        blank_per_frame = reader.blank_flags() if reader.has_blank_frame else None
        frame_env = reader.frame_env_index()
        envs = []
        unlabelled = bool((table["env_index"] < 0).any())  # written without env_ids
        for index, env_id in [*enumerate(reader.env_ids), *([(-1, None)] if unlabelled else [])]:
            rows = table[table["env_index"] == index]
            envs.append({
                "env_id": env_id,
                "episodes": int(len(rows)),
                "steps": int(rows["length"].sum()),
                "frames": int((rows["length"] + 1).sum()),
                "blank_frames": None if blank_per_frame is None
                else int(blank_per_frame[frame_env == index].sum()),
                "terminated": int(rows["terminated"].sum()),
                "truncated": int(rows["truncated"].sum()),
                "return": _stats(rows["return"].astype(np.float64)),
                "length": _stats(rows["length"].astype(np.float64)),
            })
        codec = reader.compression
        return {
            "path": str(path),
            "format": f"{meta.get('format')} {meta.get('format_version')}",
            "episodes": reader.num_episodes,
            "steps": reader.num_steps,
            "frames": reader.num_frames,
            "blank_frames": None if blank_per_frame is None else int(blank_per_frame.sum()),
            "observation_space": str(reader.observation_space),
            "action_space": str(reader.action_space),
            "size_bytes": path.stat().st_size,
            "bytes_per_frame": (path.stat().st_size / reader.num_frames if reader.num_frames
                                else None),  # no frames: the file's size is all overhead
            "codec": codec or "none",
            "envs": envs,
            "policy": _plain(meta.get("policy")),
            "seed": _plain(meta.get("seed")),
            "command": _plain(meta.get("command")),
            "created": _plain(meta.get("created")),
            "wrappers": _plain(meta.get("wrappers")),
            "versions": _plain(meta.get("versions")),
        }


def format_info(info: dict[str, Any]) -> str:
    """The human-readable table ``gan-envs info`` prints."""
    size_mb = info["size_bytes"] / 2**20
    names = [env["env_id"] or "(no env id)" for env in info["envs"]]
    wide = max([28, *map(len, names)])  # a longer id pushed its row's columns out of line
    lines = [
        f"{info['path']}  ({info['format']}, {size_mb:.1f} MiB, {info['codec']}, "
        + ("no frames)" if info["bytes_per_frame"] is None
           else f"{info['bytes_per_frame']:.0f} B/frame)"),
        f"  episodes {info['episodes']}, steps {info['steps']}, frames {info['frames']}"
        + ("" if info["blank_frames"] is None else f", blank frames {info['blank_frames']}"),
        f"  observations {info['observation_space']}, actions {info['action_space']}",
        "",
        f"  {'env':{wide}s} {'episodes':>8s} {'steps':>8s} {'blank':>6s} {'return mean ± std':>19s}"
        f" {'min':>7s} {'max':>7s}",
    ]
    for env, name in zip(info["envs"], names, strict=True):
        r = env["return"]
        ret = "-" if r["mean"] is None or r["std"] is None \
            else f"{r['mean']:8.2f} ± {r['std']:<8.2f}"
        lo = "-" if r["min"] is None else f"{r['min']:.1f}"
        hi = "-" if r["max"] is None else f"{r['max']:.1f}"
        blank = "-" if env["blank_frames"] is None else str(env["blank_frames"])
        lines.append(f"  {name:{wide}s} {env['episodes']:8d} {env['steps']:8d} "
                     f"{blank:>6s} {ret:>19s} {lo:>7s} {hi:>7s}")
    recorded = info["versions"]  # informational: shown as it is when not the writer's dict
    versions = (", ".join(f"{k} {v}" for k, v in recorded.items() if v)
                if isinstance(recorded, dict) else str(recorded))
    policy, seed, created = ("-" if info[k] in (None, "") else info[k]  # not "policy , seed None"
                             for k in ("policy", "seed", "created"))
    lines += ["", f"  policy {policy}, seed {seed}, created {created}",
              f"  versions: {versions}", f"  command: {info['command']}"]
    return "\n".join(lines)
