"""The three World-Models networks (Ha & Schmidhuber, 2018) and their losses.

- :class:`ConvVAE` (V): four strided 4x4 convolutions (32-64-128-256 channels) from a
  ``C x 64 x 64`` frame to a 32-d Gaussian latent, and the mirrored transposed convolutions back.
- :func:`vae_loss`: squared error summed over pixels (values in [0, 1]), optionally weighted
  per pixel, + KL, with the KL-tolerance floor of hardmaru's code (the summed KL is clamped
  below at ``tol * z_size``).
- :func:`moving_mask` and :func:`pixel_weights`: the pixels that differ from a static
  background frame, and the reconstruction weights that make them count (small Atari objects).
- :class:`MDNRNN` (M): an LSTM on ``(z_t, one-hot a_t)``; a mixture of K Gaussians per latent
  dimension for ``z_{t+1}``, a reward head and a done head. :func:`mdn_nll` and
  :func:`mdn_sample` (temperature tau) use its outputs.
- :class:`LinearController` (C): ``a = argmax(W [z, h] + b)`` on numpy, parameters as one flat
  vector for CMA-ES (no torch needed to act).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ConvVAE",
    "vae_loss",
    "moving_mask",
    "pixel_weights",
    "MDNRNN",
    "mdn_nll",
    "mdn_sample",
    "LinearController",
    "frames_to_input",
]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def frames_to_input(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` frames to float32 in [0, 1] (V's input and target scale)."""
    x = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.asarray(frames))
    return x.float().div_(255.0)


# ---------------------------------------------------------------- V
class ConvVAE(nn.Module):
    """Convolutional VAE for ``channels x 64 x 64`` frames in [0, 1].

    Encoder: Conv(4, stride 2) with ``width``, 2, 4 and 8 times ``width`` channels (32-64-128-256
    by default) and ReLU, 64 -> 31 -> 14 -> 6 -> 2 pixels, then linear ``mu`` and ``logvar``.
    Decoder: linear to ``32 * width`` features at 1x1, then transposed convolutions with kernels
    5, 5, 6, 6 (stride 2) back to 64x64 and a sigmoid, as in the paper's appendix.

    Example:
        >>> vae = ConvVAE(channels=3, z_size=8, width=4)
        >>> mu, logvar = vae.encode(torch.zeros(2, 3, 64, 64))
        >>> tuple(mu.shape), tuple(vae.decode(mu).shape)
        ((2, 8), (2, 3, 64, 64))
    """

    def __init__(self, channels: int = 3, z_size: int = 32, width: int = 32) -> None:
        super().__init__()
        self.channels, self.z_size, self.width = channels, z_size, width
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 4, 2), nn.ReLU(),
            nn.Conv2d(2 * w, 4 * w, 4, 2), nn.ReLU(),
            nn.Conv2d(4 * w, 8 * w, 4, 2), nn.ReLU(),
            nn.Flatten(),
        )
        self.fc_mu = nn.Linear(8 * w * 2 * 2, z_size)
        self.fc_logvar = nn.Linear(8 * w * 2 * 2, z_size)
        self.fc_decode = nn.Linear(z_size, 32 * w)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32 * w, 4 * w, 5, 2), nn.ReLU(),
            nn.ConvTranspose2d(4 * w, 2 * w, 5, 2), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 6, 2), nn.ReLU(),
            nn.ConvTranspose2d(w, channels, 6, 2), nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)`` of q(z | x) for frames ``x`` in [0, 1]."""
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Frames in [0, 1] for latents ``z``."""
        return self.decoder(self.fc_decode(z).view(len(z), -1, 1, 1))

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(reconstruction, mu, logvar)`` with z drawn by the reparameterisation trick."""
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator)
        return self.decode(mu + eps * torch.exp(0.5 * logvar)), mu, logvar


def vae_loss(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
    kl_tolerance: float = 0.5, weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, reconstruction, kl)``, each averaged over the batch.

    reconstruction: squared error summed over all ``C*H*W`` pixel values (in [0, 1]), each
    multiplied by ``weight`` when given (a tensor broadcastable to ``x``, e.g. from
    :func:`pixel_weights`; None: all 1, hardmaru's loss);
    kl: KL(q(z|x) || N(0, I)) summed over z and clamped below at ``kl_tolerance * z_size``
    (hardmaru's free bits; 0 disables the clamp). The returned ``kl`` is the unclamped value.

    Example:
        >>> x = torch.full((2, 1, 4, 4), 0.5)
        >>> loss, rec, kl = vae_loss(x, x, torch.zeros(2, 3), torch.zeros(2, 3))
        >>> round(loss.item(), 3), rec.item(), kl.item()
        (1.5, 0.0, 0.0)
        >>> rec = vae_loss(x + 0.1, x, torch.zeros(2, 3), torch.zeros(2, 3), 0.0,
        ...                weight=torch.full_like(x, 2.0))[1]
        >>> round(rec.item(), 4)  # 16 pixel values * 0.1 ** 2 * 2
        0.32
    """
    err = (recon - x).pow(2)
    if weight is not None:
        err = err * weight
    rec = err.flatten(1).sum(dim=1).mean()
    kl_per = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
    floor = kl_tolerance * mu.shape[1]
    kl_term = torch.clamp(kl_per, min=floor) if floor > 0 else kl_per
    return rec + kl_term.mean(), rec, kl_per.mean()


def moving_mask(x: torch.Tensor, background: torch.Tensor, threshold: float = 0.1
                ) -> torch.Tensor:
    """The "moving" pixels of frames ``x`` ``(N, C, H, W)`` in [0, 1]: True where some channel
    differs from ``background`` ``(C, H, W)`` (same scale) by more than ``threshold``. Shaped
    ``(N, 1, H, W)`` (one flag per pixel, for all its channels).

    Example:
        >>> bg = torch.zeros(1, 2, 2)
        >>> x = torch.tensor([[[[0.0, 0.5], [0.05, 0.0]]]])
        >>> moving_mask(x, bg).int().tolist()
        [[[[0, 1], [0, 0]]]]
    """
    return (x - background).abs().amax(dim=1, keepdim=True) > threshold


def pixel_weights(x: torch.Tensor, background: torch.Tensor, moving_weight: float,
                  threshold: float = 0.1) -> torch.Tensor:
    """Reconstruction weights ``(N, 1, H, W)``: ``moving_weight`` on the pixels of
    :func:`moving_mask`, 1 elsewhere (``moving_weight=1``: the plain loss).

    Example:
        >>> bg = torch.zeros(1, 1, 2)
        >>> pixel_weights(torch.tensor([[[[0.0, 1.0]]]]), bg, 10.0).tolist()
        [[[[1.0, 10.0]]]]
    """
    mask = moving_mask(x, background, threshold).to(x.dtype)
    return 1.0 + (float(moving_weight) - 1.0) * mask


# ---------------------------------------------------------------- M
class MDNRNN(nn.Module):
    """LSTM on ``[z_t, one-hot a_t]`` predicting a K-Gaussian mixture per dimension of
    ``z_{t+1}``, the reward ``r_t`` and the done logit of step t.

    Example:
        >>> m = MDNRNN(z_size=4, n_actions=3, hidden_size=8, n_gaussians=2)
        >>> out = m(torch.zeros(2, 5, 4), torch.zeros(2, 5, dtype=torch.long))
        >>> [tuple(t.shape) for t in out[:5]]
        [(2, 5, 4, 2), (2, 5, 4, 2), (2, 5, 4, 2), (2, 5), (2, 5)]
    """

    def __init__(self, z_size: int = 32, n_actions: int = 6, hidden_size: int = 256,
                 n_gaussians: int = 5) -> None:
        super().__init__()
        self.z_size, self.n_actions = z_size, n_actions
        self.hidden_size, self.n_gaussians = hidden_size, n_gaussians
        self.lstm = nn.LSTM(z_size + n_actions, hidden_size, batch_first=True)
        self.mdn = nn.Linear(hidden_size, 3 * z_size * n_gaussians)
        self.reward = nn.Linear(hidden_size, 1)
        self.done = nn.Linear(hidden_size, 1)

    def forward(
        self, z: torch.Tensor, actions: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """``(logpi, mu, logsigma, reward, done_logit, h, state)`` for ``z`` ``(B, T, z)`` and
        integer ``actions`` ``(B, T)``; the mixture tensors are ``(B, T, z, K)``, ``h`` is the
        LSTM output ``(B, T, hidden)``."""
        a = F.one_hot(actions.long(), self.n_actions).to(z.dtype)
        h, state = self.lstm(torch.cat([z, a], dim=-1), state)
        b, t = z.shape[:2]
        params = self.mdn(h).view(b, t, self.z_size, 3, self.n_gaussians)
        logpi = F.log_softmax(params[..., 0, :], dim=-1)
        mu, logsigma = params[..., 1, :], params[..., 2, :].clamp(-7.0, 5.0)
        return (logpi, mu, logsigma, self.reward(h).squeeze(-1), self.done(h).squeeze(-1),
                h, state)


def mdn_nll(logpi: torch.Tensor, mu: torch.Tensor, logsigma: torch.Tensor,
            target: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood (nats) of ``target`` ``(..., z)`` per element, ``(..., z)``.

    Example:
        >>> zero = torch.zeros(1, 1, 1)
        >>> round(mdn_nll(zero, zero, zero, torch.zeros(1, 1)).item(), 4)  # N(0, 1) at 0
        0.9189
    """
    y = target.unsqueeze(-1)
    logp = -0.5 * ((y - mu) * torch.exp(-logsigma)).pow(2) - logsigma - _LOG_SQRT_2PI
    return -torch.logsumexp(logpi + logp, dim=-1)


def mdn_sample(logpi: torch.Tensor, mu: torch.Tensor, logsigma: torch.Tensor,
               temperature: float = 1.0, generator: torch.Generator | None = None,
               uniform: torch.Tensor | None = None, normal: torch.Tensor | None = None
               ) -> torch.Tensor:
    """Draw ``z`` ``(..., z)`` from the mixtures at temperature tau: mixture weights
    ``softmax(logpi / tau)``, standard deviations times ``sqrt(tau)`` (hardmaru's sampling).

    The component is picked by inverse CDF from ``uniform`` and the offset is ``normal`` (both
    shaped like the result, or broadcastable to it); when not given they are drawn with
    ``generator``. Passing the same draws to several rows gives common random numbers.

    Example:
        >>> zero = torch.zeros(2, 3, 1)
        >>> tuple(mdn_sample(zero, zero, zero, 1.15, torch.Generator().manual_seed(0)).shape)
        (2, 3)
    """
    tau = max(float(temperature), 1e-6)
    shape = logpi.shape[:-1]
    if uniform is None:
        uniform = torch.rand(shape, generator=generator)
    if normal is None:
        normal = torch.randn(shape, generator=generator)
    cdf = torch.cumsum(F.softmax(logpi / tau, dim=-1), dim=-1)
    cdf = cdf / cdf[..., -1:]  # ends at exactly 1 (a float32 total can fall short of u < 1)
    # the first component with cdf > u: never one of weight 0, even at u = 0 (`cdf < u`
    # picked component 0 there, and the last one, whatever their weights, past the total)
    k = (cdf <= uniform.expand(shape).unsqueeze(-1)).sum(-1, keepdim=True)
    k = k.clamp(max=logpi.shape[-1] - 1)
    mean = mu.gather(-1, k).squeeze(-1)
    std = torch.exp(logsigma.gather(-1, k).squeeze(-1)) * math.sqrt(tau)
    return mean + std * normal.expand(shape)


# ---------------------------------------------------------------- C
class LinearController:
    """``action = argmax(W @ [z, h] + b)``; the parameters are one flat vector (W then b).

    Example:
        >>> c = LinearController(z_size=2, hidden_size=3, n_actions=4)
        >>> c.num_params
        24
        >>> c.set_params(np.arange(24.0)).act(np.ones((1, 2)), np.ones((1, 3))).tolist()
        [3]
    """

    def __init__(self, z_size: int, hidden_size: int, n_actions: int) -> None:
        self.z_size, self.hidden_size, self.n_actions = z_size, hidden_size, n_actions
        self.weight = np.zeros((n_actions, z_size + hidden_size), np.float32)
        self.bias = np.zeros(n_actions, np.float32)

    @property
    def num_params(self) -> int:
        """Length of the flat parameter vector."""
        return self.weight.size + self.bias.size

    def set_params(self, params: np.ndarray) -> LinearController:
        """Load a flat vector of :attr:`num_params` values; returns self."""
        params = np.asarray(params, np.float32).reshape(-1)
        if params.size != self.num_params:
            raise ValueError(f"LinearController needs {self.num_params} parameters, "
                             f"got {params.size}")
        self.weight = params[: self.weight.size].reshape(self.weight.shape).copy()
        self.bias = params[self.weight.size:].copy()
        return self

    def act(self, z: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Integer actions ``(B,)`` for latents ``(B, z)`` and LSTM outputs ``(B, hidden)``."""
        features = np.concatenate([np.asarray(z), np.asarray(h)], axis=-1)
        return np.argmax(features @ self.weight.T + self.bias, axis=-1)
