"""Test configuration: importing gan_envs registers the GanAtari ids for every test."""

import gan_envs  # noqa: F401
