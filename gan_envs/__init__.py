"""gan-envs: Gymnasium environments (Atari first) as training data for GANs and world models.

Importing the package registers ``GanAtari/<Game>-v0`` for every Atari ROM that ale-py ships.
Registration is cheap: it imports neither torch nor creates an emulator.

Example:
    >>> import gymnasium as gym
    >>> import gan_envs
    >>> "GanAtari/Breakout-v0" in gym.registry
    True
"""

from __future__ import annotations

from gan_envs.registration import register_gan_atari_envs

__version__ = "0.1.0"
__all__ = ["__version__", "register_gan_atari_envs"]

register_gan_atari_envs()
