"""The trainers' image helpers live in :mod:`gan_envs.images` (shared with previews)."""

from gan_envs.images import make_grid, save_png, to_uint8, write_video

__all__ = ["to_uint8", "make_grid", "save_png", "write_video"]
