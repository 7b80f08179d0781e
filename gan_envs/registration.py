"""``GanAtari/<Game>-v0``: every ale-py Atari game with the GAN frame stack applied.

``import gan_envs`` calls :func:`register_gan_atari_envs`, which registers one id per
``ALE/<Game>-v5`` id (same names, same ALE settings). Registering only writes specs: no
emulator is created and torch is not imported.

The single-env entry point :func:`make_gan_atari` builds ALE v5 semantics (frameskip 4, sticky
actions 0.25) → :class:`~gan_envs.wrappers.ResizeFrame` → :class:`~gan_envs.wrappers.ChannelFirst`
→ :class:`~gan_envs.wrappers.ScaleFloat` → :class:`~gan_envs.wrappers.FlickerFilter`.
The vector entry point :func:`make_gan_atari_vector` (used by ``gym.make_vec``) runs ale-py's
C++ ``AtariVectorEnv``, which resizes with ``INTER_AREA`` itself, then the vector wrappers.

Example:
    >>> import gymnasium as gym
    >>> import gan_envs
    >>> env = gym.make("GanAtari/Breakout-v0")
    >>> env.observation_space
    Box(-1.0, 1.0, (3, 64, 64), float32)
    >>> env.close()
    >>> gan_atari_ids("pong")
    ['GanAtari/Pong-v0']
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from gan_envs._numbers import is_real, whole_number
from gan_envs._text import short_repr
from gan_envs.wrappers import (
    FLICKER_MODES,
    AsyncObservations,
    ChannelFirst,
    FlickerFilter,
    ResizeFrame,
    ScaleFloat,
    VectorChannelFirst,
    VectorFlickerFilter,
    VectorScaleFloat,
    check_scale_bounds,
    normalize_size,
)

__all__ = [
    "NAMESPACE",
    "UnknownEnvironmentError",
    "register_gan_atari_envs",
    "gan_atari_ids",
    "make_gan_atari",
    "make_gan_atari_vector",
    "quiet_emulator_banner",
    "resolve_env_id",
]

NAMESPACE = "GanAtari"
VERSION = 0


class UnknownEnvironmentError(ValueError):
    """An environment id that Gymnasium does not know; the message suggests close ids."""


def register_gan_atari_envs() -> list[str]:
    """Register ``GanAtari/<Game>-v0`` for every ``ALE/<Game>-v5``; return the ids (idempotent)."""
    import ale_py  # noqa: F401  (importing ale_py registers the ALE ids; it starts no emulator)

    ids = []
    for spec in list(gym.registry.values()):
        if spec.namespace != "ALE" or spec.version != 5:
            continue
        env_id = f"{NAMESPACE}/{spec.name}-v{VERSION}"
        ids.append(env_id)
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="gan_envs.registration:make_gan_atari",
            vector_entry_point="gan_envs.registration:make_gan_atari_vector",
            kwargs=dict(spec.kwargs),
            max_episode_steps=spec.max_episode_steps,
            nondeterministic=spec.nondeterministic,
        )
    return ids


def gan_atari_ids(pattern: str | None = None) -> list[str]:
    """The registered GanAtari ids, sorted, optionally those containing ``pattern`` (any case)."""
    ids = sorted(i for i, s in gym.registry.items() if s.namespace == NAMESPACE)
    if pattern:
        ids = [i for i in ids if pattern.lower() in i.lower()]
    return ids


def resolve_env_id(env_id: str) -> str:
    """Return ``env_id`` if Gymnasium knows it, else raise with the closest known ids.

    ``module:Namespace/Name-vN`` ids are resolved by importing the module, as ``gym.make`` does.

    Raises:
        UnknownEnvironmentError: one line naming the id and the closest matches.
    """
    module, _, bare = env_id.rpartition(":")
    if module:
        import importlib

        try:
            importlib.import_module(module)
        except ImportError as error:
            raise UnknownEnvironmentError(
                f"unknown environment {env_id!r}: cannot import module {module!r} ({error})"
            ) from None
    if bare in gym.registry:
        return bare
    close = _closest_ids(bare)
    hint = f"did you mean {', '.join(close)}?" if close else "run `gan-envs list` to see the ids"
    raise UnknownEnvironmentError(f"unknown environment {env_id!r}; {hint}")


def _closest_ids(env_id: str, n: int = 3) -> list[str]:
    """Known ids whose name is closest to ``env_id``'s, same namespace first."""
    namespace, _, rest = env_id.rpartition("/")
    name = rest.split("-v")[0].lower()
    by_name: dict[str, list[str]] = {}
    for known, spec in gym.registry.items():
        by_name.setdefault(spec.name.lower(), []).append(known)
    names = difflib.get_close_matches(name, list(by_name), n=n, cutoff=0.7)
    found = [i for nm in names for i in by_name[nm]]
    found.sort(key=lambda i: (gym.registry[i].namespace != (namespace or None), i))
    return found[:n]


def _check_stack_options(size: Any, scale: Any, flicker: Any, obs_type: str,
                         flicker_threshold: Any, flicker_max_skip: Any) -> tuple:
    """Validate the GanAtari keyword arguments, naming them as the user typed them (the same
    for ``gym.make`` and ``gym.make_vec``); return (size_hw, scale_pair_or_None)."""
    size_hw = normalize_size(size, "GanAtari")
    if scale is not None:
        if not (isinstance(scale, (tuple, list)) and len(scale) == 2):
            raise TypeError(
                f"GanAtari scale must be a (low, high) pair or None for uint8, got {scale!r}"
            )
        scale = check_scale_bounds(scale[0], scale[1], "GanAtari scale")
    try:
        threshold = float(flicker_threshold)
    except (TypeError, ValueError):
        raise TypeError(f"GanAtari flicker_threshold must be a number, got "
                        f"{flicker_threshold!r}") from None
    if not 0.0 <= threshold < 255.0:
        raise ValueError(f"GanAtari flicker_threshold is on the 0-255 scale: 0 <= t < 255, got "
                         f"{flicker_threshold!r}")
    if isinstance(flicker_max_skip, bool) or not isinstance(flicker_max_skip, (int, np.integer)):
        raise TypeError(f"GanAtari flicker_max_skip must be an int, got {flicker_max_skip!r}")
    if flicker_max_skip < 1:
        raise ValueError(f"GanAtari flicker_max_skip must be a whole number >= 1, got "
                         f"{flicker_max_skip!r}")
    if flicker is not None and flicker not in FLICKER_MODES:
        raise ValueError(
            f"GanAtari flicker must be one of {FLICKER_MODES} or None, got {flicker!r}"
        )
    if obs_type not in ("rgb", "grayscale"):
        raise ValueError(
            f"GanAtari obs_type must be 'rgb' or 'grayscale' (frames), got {obs_type!r}; "
            "use ALE/<Game>-v5 for RAM observations"
        )
    return size_hw, scale


#: The GanAtari keywords of the frame stack (the rest go to ale-py).
_STACK_KEYWORDS = ("size", "scale", "flicker", "flicker_threshold", "flicker_max_skip", "obs_type")
#: Keywords only ``gym.make_vec`` takes.
_VECTOR_KEYWORDS = ("num_envs", "num_threads", "max_episode_steps", "autoreset_mode")
#: ale-py's vector env keeps seeds and frame limits in a C ``int``.
_MAX_C_INT = 2**31 - 1


def quiet_emulator_banner() -> None:
    """Keep only ALE's warnings and errors: it prints its name and Stella's on stderr at every
    emulator start, which would interleave with a command's progress bars and errors."""
    try:
        import ale_py

        ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Warning)
    except (ImportError, AttributeError):
        pass


@functools.cache
def _atari_parameters() -> dict[str, inspect.Parameter]:
    """The keywords ``ale_py.env.AtariEnv`` takes, less those GanAtari sets itself."""
    from ale_py.env import AtariEnv

    return {k: v for k, v in inspect.signature(AtariEnv).parameters.items()
            if k not in ("game", "obs_type")}


def _check_ale_options(options: dict[str, Any], *, vector: bool) -> dict[str, Any]:
    """ALE keywords checked and normalised before an emulator starts (ale-py accepts a
    ``repeat_action_probability`` of 1.5, reads ``full_action_space="no"`` as True, refuses
    the list JSON makes of a ``frameskip`` pair, and its vector env raises multi-line binding
    errors); a one-line error naming the keyword otherwise."""
    allowed = list(_atari_parameters()) + list(_VECTOR_KEYWORDS if vector else ())
    for name in options:
        if name not in allowed:
            known = list(_STACK_KEYWORDS) + allowed
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = (f"did you mean {close[0]}?" if close
                    else f"it takes {', '.join(sorted(known))}")
            raise TypeError(f"GanAtari got an unknown keyword argument {name!r}; {hint}")
    out = dict(options)
    if "frameskip" in out:
        skip = out["frameskip"]
        try:
            if isinstance(skip, (tuple, list)) and len(skip) == 2:
                low, high = (whole_number(v, "frameskip", low=1) for v in skip)
                if low >= high:
                    raise ValueError
                out["frameskip"] = (low, high)
            else:
                out["frameskip"] = whole_number(skip, "frameskip", low=1)
        except ValueError:
            raise ValueError(f"GanAtari frameskip must be a whole number >= 1 or a (low, high) "
                             f"pair with 1 <= low < high, got {skip!r}") from None
    if "repeat_action_probability" in out:
        p = out["repeat_action_probability"]
        if not (is_real(p) and 0.0 <= float(p) <= 1.0):
            raise ValueError(f"GanAtari repeat_action_probability must be a number in [0, 1], "
                             f"got {p!r}")
        out["repeat_action_probability"] = float(p)
    for name in ("full_action_space", "continuous", "sound_obs"):
        if name in out:
            if not isinstance(out[name], (bool, np.bool_)):
                raise TypeError(f"GanAtari {name} must be True or False, got {out[name]!r}")
            out[name] = bool(out[name])
    if out.get("sound_obs"):
        raise ValueError("GanAtari sound_obs=True makes Dict observations (image and sound), "
                         "which the frame wrappers cannot take; use ALE/<Game>-v5 for sound")
    if "continuous_action_threshold" in out:
        t = out["continuous_action_threshold"]
        if not (is_real(t) and math.isfinite(float(t))):
            raise ValueError(f"GanAtari continuous_action_threshold must be a finite number, "
                             f"got {t!r}")
    for name in ("max_num_frames_per_episode", "max_episode_steps"):
        if out.get(name) is not None:
            out[name] = whole_number(out[name], f"GanAtari {name} (None for no limit)", low=1)
    for name in ("mode", "difficulty"):
        if out.get(name) is not None:
            out[name] = whole_number(out[name], f"GanAtari {name}")
    if out.get("render_mode") not in (None, "rgb_array", "human"):
        raise ValueError(f"GanAtari render_mode must be None, 'rgb_array' or 'human', got "
                         f"{out['render_mode']!r}")
    if "num_threads" in out:
        out["num_threads"] = whole_number(out["num_threads"], "GanAtari num_threads "
                                          "(0 for one per core)")
    if "autoreset_mode" in out:
        try:
            out["autoreset_mode"] = gym.vector.AutoresetMode(out["autoreset_mode"])
        except ValueError:
            modes = ", ".join(repr(m.value) for m in gym.vector.AutoresetMode)
            raise ValueError(f"GanAtari autoreset_mode must be one of {modes}, got "
                             f"{out['autoreset_mode']!r}") from None
    return out


def _new_atari_env(game: str, obs_type: str, ale_kwargs: dict[str, Any]) -> gym.Env:
    """``AtariEnv``; a mode or difficulty the game lacks is named with the ones it has."""
    from ale_py.env import AtariEnv

    try:
        return AtariEnv(game=game, obs_type=obs_type, **ale_kwargs)
    except RuntimeError as error:
        text = str(error)
        for name, plural, getter, says in (
                ("mode", "modes", "getAvailableModes", "Invalid game mode"),
                ("difficulty", "difficulties", "getAvailableDifficulties", "Invalid difficulty")):
            if says in text:
                import ale_py
                from ale_py import roms

                ale = ale_py.ALEInterface()
                ale.setLoggerMode(ale_py.LoggerMode.Error)
                ale.loadROM(roms.get_rom_path(game))
                values = [int(v) for v in getattr(ale, getter)()]
                raise ValueError(f"GanAtari {name} {ale_kwargs.get(name)!r} is not one of "
                                 f"{game}'s {plural}: {values}") from None
        raise


def make_gan_atari(
    game: str,
    *,
    size: int | Sequence[int] = 64,
    scale: Sequence[float] | None = (-1.0, 1.0),
    flicker: str | None = "hold",
    flicker_threshold: float = 0.01,
    flicker_max_skip: int = 32,
    obs_type: str = "rgb",
    **ale_kwargs: Any,
) -> gym.Env:
    """Build one GanAtari environment (the ``entry_point`` of every ``GanAtari/*-v0`` id).

    Args:
        game: ale-py's ROM id, e.g. ``"breakout"``.
        size: output frame size, an int or ``(height, width)``.
        scale: ``(low, high)`` for float32 frames, or ``None`` to keep uint8.
        flicker: ``"hold"``, ``"skip"``, ``"flag"`` or ``None`` (no filter).
        flicker_threshold: blank when the mean pixel (0-255 scale) is <= this.
        flicker_max_skip: at most this many extra steps in ``"skip"`` mode.
        obs_type: ``"rgb"`` (3 channels) or ``"grayscale"`` (1 channel).
        **ale_kwargs: passed to ``ale_py.env.AtariEnv`` (``frameskip``,
            ``repeat_action_probability``, ``full_action_space``, ``mode``, ``difficulty``,
            ``max_num_frames_per_episode``, ``render_mode``, ...).
    """
    size_hw, scale = _check_stack_options(size, scale, flicker, obs_type, flicker_threshold,
                                          flicker_max_skip)
    ale_kwargs = _check_ale_options(ale_kwargs, vector=False)
    env: gym.Env = _new_atari_env(game, obs_type, ale_kwargs)
    env = ChannelFirst(ResizeFrame(env, size=size if isinstance(size, int) else list(size_hw)))
    if scale is not None:
        env = ScaleFloat(env, low=scale[0], high=scale[1])
    if flicker is not None:
        env = FlickerFilter(env, threshold=flicker_threshold, mode=flicker,
                            max_skip=flicker_max_skip)
    layer = env
    while layer is not layer.unwrapped:  # the id's keywords describe these: keep them out of
        layer.in_factory_stack = True    # env.spec, so that gym.make(env.spec, size=32) and
        layer = layer.env                # gym.make_vec(env.spec) work (docs/wrappers.md)
    return env


def make_gan_atari_vector(
    game: str,
    num_envs: int = 1,
    *,
    size: int | Sequence[int] = 64,
    scale: Sequence[float] | None = (-1.0, 1.0),
    flicker: str | None = "hold",
    flicker_threshold: float = 0.01,
    flicker_max_skip: int = 32,
    obs_type: str = "rgb",
    frameskip: int | Sequence[int] = 4,
    repeat_action_probability: float = 0.25,
    full_action_space: bool = False,
    max_num_frames_per_episode: int | None = 108000,
    num_threads: int = 0,
    max_episode_steps: int | None = None,
    autoreset_mode: str | gym.vector.AutoresetMode = gym.vector.AutoresetMode.NEXT_STEP,
    **other_kwargs: Any,
) -> gym.vector.VectorEnv:
    """Build ``num_envs`` GanAtari environments (the ``vector_entry_point``).

    The fast path is ale-py's C++ ``AtariVectorEnv`` with ALE v5 semantics (no max-pooling,
    no no-op starts, no fire reset, no reward clipping), which resizes with ``INTER_AREA``
    itself. Options it cannot express (``flicker="skip"``, a ``mode``/``difficulty``, a random
    ``frameskip`` range, ``render_mode``, ...) fall back to a ``SyncVectorEnv`` of
    :func:`make_gan_atari` environments with the same observation space.
    ``max_episode_steps`` truncates as ``gym.make``'s ``TimeLimit`` does, and ``autoreset_mode``
    is Gymnasium's (both paths).
    """
    size_hw, scale = _check_stack_options(size, scale, flicker, obs_type, flicker_threshold,
                                          flicker_max_skip)
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"GanAtari num_envs must be a whole number >= 1, got {num_envs!r}")
    num_envs = int(num_envs)
    options = _check_ale_options(
        dict(frameskip=frameskip, repeat_action_probability=repeat_action_probability,
             full_action_space=full_action_space,
             max_num_frames_per_episode=max_num_frames_per_episode, num_threads=num_threads,
             max_episode_steps=max_episode_steps, autoreset_mode=autoreset_mode,
             **other_kwargs), vector=True)
    steps, autoreset = options.pop("max_episode_steps"), options.pop("autoreset_mode")
    threads = options.pop("num_threads")
    stack = dict(size=size, scale=scale, flicker=flicker, flicker_threshold=flicker_threshold,
                 flicker_max_skip=flicker_max_skip, obs_type=obs_type)
    defaults = {k: v.default for k, v in _atari_parameters().items()}
    fast = (flicker != "skip" and isinstance(options["frameskip"], int)
            and autoreset == gym.vector.AutoresetMode.NEXT_STEP  # ale-py refuses the others
            and all(options[k] == defaults[k] for k in other_kwargs
                    if k != "continuous_action_threshold"))
    if not fast:
        def make_one() -> gym.Env:
            env = make_gan_atari(game, **stack, **options)
            return env if steps is None else gym.wrappers.TimeLimit(env, steps)

        return gym.vector.SyncVectorEnv([make_one for _ in range(num_envs)],
                                        autoreset_mode=autoreset)

    from ale_py.vector_env import AtariVectorEnv

    # ALE counts frames; a step is `frameskip` frames, so N steps end where N * frameskip do
    frames = [v for v in (options["max_num_frames_per_episode"],
                          None if steps is None else steps * options["frameskip"])
              if v is not None]
    envs: gym.vector.VectorEnv = AtariVectorEnv(
        game,
        num_envs,
        img_height=size_hw[0],
        img_width=size_hw[1],
        grayscale=obs_type == "grayscale",
        stack_num=1,
        frameskip=options["frameskip"],
        maxpool=False,
        noop_max=0,
        use_fire_reset=False,
        reward_clipping=False,
        episodic_life=False,
        repeat_action_probability=options["repeat_action_probability"],
        full_action_space=options["full_action_space"],
        max_num_frames_per_episode=min(frames + [_MAX_C_INT]),  # None: no limit
        num_threads=threads,
        autoreset_mode=autoreset,
    )
    envs = _CheckedInputs(envs)
    if obs_type == "rgb":  # (N, 1, H, W, 3): drop the frame-stack axis, then channels first
        envs = VectorChannelFirst(_DropStackAxis(envs), copy=False)  # fresh arrays every step
    # grayscale frames arrive as (N, 1, H, W): the stack axis already is the channel axis
    if scale is not None:
        envs = VectorScaleFloat(envs, low=scale[0], high=scale[1])
    if flicker is not None:
        envs = VectorFlickerFilter(envs, threshold=flicker_threshold, mode=flicker)
    return envs


class _CheckedInputs(AsyncObservations, gym.vector.VectorWrapper):
    """Gymnasium inputs for ``AtariVectorEnv``: lists of actions and seeds become arrays, and an
    action outside the action space is refused (ale-py's vector env waits forever on one)."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        self._n = int(env.single_action_space.n)

    def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None):
        if options and "reset_mask" in options:
            options = {**options, "reset_mask": np.asarray(options["reset_mask"], dtype=bool)}
        count = (self.num_envs if not options or "reset_mask" not in options
                 else int(options["reset_mask"].sum()))
        return self.env.reset(seed=self._seeds(seed, count), options=options)

    def _seeds(self, seed: Any, count: int) -> int | np.ndarray | None:
        """None, an int (``seed + i`` for the i-th env reset) or one seed (or None) per env
        reset, as ale-py takes them; it waves negative seeds through and raises a multi-line
        binding error for a float or a seed past a C int."""
        if seed is None:
            return None
        top = _MAX_C_INT
        what = "GanAtari vector env: seed (seed + i seeds the i-th env)"
        if not isinstance(seed, (list, tuple, np.ndarray)):
            return whole_number(seed, what, high=top - max(count - 1, 0))
        if len(seed) != count:
            raise ValueError(f"GanAtari vector env: seed must be an int or one seed per "
                             f"sub-environment being reset ({count}), got {len(seed)} seeds")
        what = "GanAtari vector env: each seed (or None)"
        return np.array([-1 if s is None else whole_number(s, what, high=top) for s in seed],
                        dtype=np.int64)

    def step(self, actions: Any):
        return self.env.step(self._actions(actions))

    def send(self, actions: Any) -> None:
        self.env.send(self._actions(actions))

    def observations(self, observations: np.ndarray) -> np.ndarray:
        return observations

    def _actions(self, actions: Any) -> np.ndarray:
        arr = np.asarray(actions)
        if (arr.shape != (self.num_envs,) or arr.dtype.kind not in "iu"
                or (len(arr) and (arr.min() < 0 or arr.max() >= self._n))):
            raise ValueError(f"GanAtari vector env: actions must be {self.num_envs} whole "
                             f"numbers in [0, {self._n}), got {short_repr(actions, 80)}")
        return arr.astype(np.int64, copy=False)  # ale-py asserts int32 or int64


class _DropStackAxis(AsyncObservations, gym.vector.VectorObservationWrapper):
    """``AtariVectorEnv`` frames ``(N, 1, H, W, C)`` as ``(N, H, W, C)`` (a view)."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        super().__init__(env)
        space = env.single_observation_space
        self.single_observation_space = gym.spaces.Box(
            low=space.low[0], high=space.high[0], dtype=space.dtype
        )
        self.observation_space = gym.vector.utils.batch_space(
            self.single_observation_space, self.num_envs
        )

    def observations(self, observations):
        return observations[:, 0]
