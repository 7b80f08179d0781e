"""The World Models trainer at tiny sizes: the real architectures, narrower, in this process."""

from __future__ import annotations

from gan_envs.trainers.world_model import WorldModelConfig

TINY = dict(max_episodes=0, z_size=8, vae_width=4, vae_batch_size=16, vae_lr=1e-3,
            vae_epochs=50, vae_max_steps=4, hidden_size=16, n_gaussians=2, seq_len=8,
            mdrnn_batch_size=4, mdrnn_lr=1e-2, mdrnn_epochs=50, mdrnn_max_steps=4,
            population=4, generations=1, rollouts=1, rollout_steps=5, eval_rollouts=2,
            select_rollouts=2, workers=0, checkpoint_every=1000, log_every=2)


def tiny(**changes) -> WorldModelConfig:
    """A tiny config with ``changes`` applied."""
    return WorldModelConfig(**{**TINY, **changes})
