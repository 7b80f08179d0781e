"""Review 29: the World-Models maths of ``wm_models`` against independent float64 references
(torch.distributions, numpy): V's loss and reparameterisation, M's mixture likelihood and
temperature sampling, M's masked reward/done losses, C's parameter layout; gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Categorical, MixtureSameFamily, Normal, kl_divergence

from gan_envs.trainers.wm_models import (
    MDNRNN,
    ConvVAE,
    LinearController,
    mdn_nll,
    mdn_sample,
    vae_loss,
)
from gan_envs.trainers.world_model import _mdrnn_losses

D = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _mixture(logits: torch.Tensor, mu: torch.Tensor, logsigma: torch.Tensor
             ) -> MixtureSameFamily:
    return MixtureSameFamily(Categorical(logits=logits), Normal(mu, logsigma.exp()))


# ---------------------------------------------------------------- V
@pytest.mark.parametrize("tol", [0.0, 0.5, 2.0])
def test_vae_loss_matches_closed_form_kl_and_summed_error(tol):
    g = _gen(1)
    mu = torch.randn(64, 32, generator=g, dtype=D) * 2
    logvar = torch.randn(64, 32, generator=g, dtype=D) * 3
    x = torch.rand(64, 3, 8, 8, generator=g, dtype=D)
    recon = torch.rand(64, 3, 8, 8, generator=g, dtype=D)
    weight = 1.0 + 9.0 * (torch.rand(64, 1, 8, 8, generator=g, dtype=D) > 0.9)
    loss, rec, kl = vae_loss(recon, x, mu, logvar, tol, weight)
    kl_ref = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1).numpy()
    err = ((recon - x).numpy() ** 2) * weight.numpy()  # weight broadcasts over channels
    rec_ref = err.reshape(64, -1).sum(1).mean()
    # hardmaru: tf.maximum(kl per example, tol * z_size), then the batch mean
    loss_ref = rec_ref + np.maximum(kl_ref, tol * 32).mean()
    assert abs(rec.item() - rec_ref) < 1e-10
    assert abs(kl.item() - kl_ref.mean()) < 1e-10  # the logged KL is the unclamped mean
    assert abs(loss.item() - loss_ref) < 1e-10


def test_vae_reparameterisation_draws_mu_plus_sigma_eps():
    vae = ConvVAE(channels=1, z_size=4, width=2).double()
    x = torch.rand(3, 1, 64, 64, generator=_gen(2), dtype=D)
    recon, mu, logvar = vae(x, _gen(7))
    eps = torch.randn(mu.shape, generator=_gen(7))
    assert torch.equal(recon, vae.decode(mu + eps * torch.exp(0.5 * logvar)))
    # the z fed to the decoder is distributed as N(mu, exp(logvar))
    vae.decode = lambda z: z  # type: ignore[method-assign]
    xs = x[:1].expand(20000, -1, -1, -1)
    with torch.no_grad():
        z, mu, logvar = vae(xs, _gen(3))
    sd = torch.exp(0.5 * logvar[0])
    assert ((z.mean(0) - mu[0]).abs() < 5 * sd / math.sqrt(20000)).all()
    assert ((z.std(0) / sd - 1).abs() < 0.03).all()


def test_vae_loss_gradcheck():
    g = _gen(4)
    x = torch.rand(2, 1, 3, 3, generator=g, dtype=D)
    recon = torch.rand(2, 1, 3, 3, generator=g, dtype=D, requires_grad=True)
    mu = torch.randn(2, 3, generator=g, dtype=D, requires_grad=True)
    logvar = torch.randn(2, 3, generator=g, dtype=D, requires_grad=True)
    for tol in (0.0, 0.5, 50.0):  # none, some and all examples at the floor (away from the kink)
        kl = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(1)
        assert ((kl - tol * 3).abs() > 1e-3).all()
        assert torch.autograd.gradcheck(
            lambda r, m, lv, tol=tol: vae_loss(r, x, m, lv, tol)[0], (recon, mu, logvar))


# ---------------------------------------------------------------- M: likelihood
@pytest.mark.parametrize("scale,logsigma_low", [(1.0, -1.0), (30.0, -7.0), (1e4, -7.0)])
def test_mdn_nll_matches_mixture_same_family(scale, logsigma_low):
    g = _gen(5)
    logits = torch.randn(50, 8, 5, generator=g, dtype=D) * scale
    mu = torch.randn(50, 8, 5, generator=g, dtype=D) * 3
    logsigma = logsigma_low + (5 - logsigma_low) * torch.rand(50, 8, 5, generator=g, dtype=D)
    y = torch.randn(50, 8, generator=g, dtype=D) * 5
    ref = -_mixture(logits, mu, logsigma).log_prob(y)
    got = mdn_nll(F.log_softmax(logits, -1), mu, logsigma, y)
    assert (got - ref).abs().max().item() < 1e-9 * max(1.0, ref.abs().max().item())
    # float32: against the reference on the same inputs rounded to float32 (the rounding of y
    # and mu alone moves an NLL of 1e6 at sigma = e^-7 by more than its float32 ulp)
    f32 = [t.float() for t in (logits, mu, logsigma, y)]
    ref32 = -_mixture(*[t.double() for t in f32[:3]]).log_prob(f32[3].double())
    got32 = mdn_nll(F.log_softmax(f32[0], -1), *f32[1:])
    assert torch.isfinite(got32).all()
    assert ((got32.double() - ref32).abs() / ref32.abs().clamp(min=1.0)).max().item() < 2e-6


@settings(max_examples=40, deadline=None)
@given(k=st.integers(1, 6), seed=st.integers(0, 2**31 - 1),
       scale=st.sampled_from([0.1, 1.0, 100.0]), spread=st.sampled_from([1.0, 1e3]))
def test_mdn_nll_property(k, seed, scale, spread):
    g = _gen(seed)
    logits = torch.randn(4, 3, k, generator=g, dtype=D) * scale
    mu = torch.randn(4, 3, k, generator=g, dtype=D)
    logsigma = torch.empty(4, 3, k, dtype=D).uniform_(-7, 5, generator=g)
    y = torch.randn(4, 3, generator=g, dtype=D) * spread
    ref = -_mixture(logits, mu, logsigma).log_prob(y)
    got = mdn_nll(F.log_softmax(logits, -1), mu, logsigma, y)
    assert torch.allclose(got, ref, rtol=1e-10, atol=1e-10)


def test_mdn_nll_gradcheck_and_finite_gradients_on_extremes():
    g = _gen(6)
    logits = torch.randn(2, 3, 4, generator=g, dtype=D, requires_grad=True)
    mu = torch.randn(2, 3, 4, generator=g, dtype=D, requires_grad=True)
    logsigma = torch.randn(2, 3, 4, generator=g, dtype=D, requires_grad=True)
    y = torch.randn(2, 3, generator=g, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, c, d: mdn_nll(F.log_softmax(a, -1), b, c, d), (logits, mu, logsigma, y))
    # float32 extremes the model can emit: huge logit gaps, sigma at the -7 clamp, far targets
    logits = (torch.randn(8, 4, 5, generator=g) * 1e4).requires_grad_()
    logsigma = torch.full((8, 4, 5), -7.0, requires_grad=True)
    mu = torch.randn(8, 4, 5, generator=g).requires_grad_()
    y = torch.randn(8, 4, generator=g) * 1e3
    nll = mdn_nll(F.log_softmax(logits, -1), mu, logsigma, y)
    nll.sum().backward()
    assert torch.isfinite(nll).all()
    for t in (logits, mu, logsigma):
        assert torch.isfinite(t.grad).all()


def test_mdnrnn_heads_per_dimension_normalised_and_clamped():
    torch.manual_seed(0)
    m = MDNRNN(z_size=5, n_actions=3, hidden_size=8, n_gaussians=4)
    with torch.no_grad():
        m.mdn.weight.mul_(1e3)  # push the head to extremes
    z = torch.randn(2, 6, 5) * 100
    logpi, mu, logsigma, reward, done, h, _ = m(z, torch.randint(0, 3, (2, 6)))
    assert torch.allclose(torch.logsumexp(logpi, -1), torch.zeros(2, 6, 5), atol=1e-5)
    assert logsigma.min() >= -7 and logsigma.max() <= 5
    assert all(torch.isfinite(t).all() for t in (logpi, mu, logsigma, reward, done, h))
    # a mixture per latent dimension (the paper's choice): weights differ between dimensions
    assert not torch.allclose(logpi[..., 0, :], logpi[..., 1, :])


# ---------------------------------------------------------------- M: sampling
def test_mdn_sample_picks_the_inverse_cdf_component_at_temperature():
    g = _gen(8)
    logits = torch.randn(200, 4, generator=g, dtype=D) * 2
    logpi = F.log_softmax(logits, -1)
    mu = torch.randn(200, 4, generator=g, dtype=D)
    logsigma = torch.randn(200, 4, generator=g, dtype=D) * 0.5
    u = torch.rand(200, generator=g, dtype=D)
    n = torch.randn(200, generator=g, dtype=D)
    for tau in (0.3, 1.0, 1.7):
        w = torch.softmax(logpi / tau, -1).numpy()  # paper: logits / tau
        cdf = np.cumsum(w, -1)
        keep = (np.abs(cdf - u.numpy()[:, None]) > 1e-9).all(1)
        k = np.array([np.searchsorted(c, x, side="right")
                      for c, x in zip(cdf, u.numpy(), strict=True)])
        ref = (mu.numpy()[np.arange(200), k]
               + np.exp(logsigma.numpy()[np.arange(200), k]) * math.sqrt(tau) * n.numpy())
        got = mdn_sample(logpi, mu, logsigma, tau, uniform=u, normal=n).numpy()
        assert np.abs(got - ref)[keep].max() < 1e-12


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_mdn_sample_distribution_matches_tempered_mixture(tau):
    logits = torch.tensor([0.3, -1.0, 1.2])
    mu = torch.tensor([-2.0, 0.5, 3.0])
    logsigma = torch.tensor([-0.5, 0.2, -1.0])
    n = 40000
    z = mdn_sample(logits.log_softmax(-1).expand(n, 3), mu.expand(n, 3),
                   logsigma.expand(n, 3), tau, _gen(9)).double()
    ref = _mixture((logits / tau).double(), mu.double(),
                   logsigma.double() + 0.5 * math.log(tau))
    # Kolmogorov-Smirnov distance against the exact mixture CDF (1% critical value 1.63/sqrt(n))
    zs = z.sort().values
    cdf = (ref.mixture_distribution.probs * ref.component_distribution.cdf(zs[:, None])).sum(1)
    emp = torch.arange(1, n + 1, dtype=D) / n
    assert (cdf - emp).abs().max().item() < 1.63 / math.sqrt(n)


def test_mdn_sample_never_picks_a_zero_weight_component():
    """u = 0 (torch.rand returns 0.0 with probability 2**-24 per draw; the dream draws tens of
    millions) picked component 0 even when its weight is exactly 0 (`cdf < u` is all False);
    and a uniform past a float32 cdf total a hair under 1 took the last component whatever
    its weight."""
    mu, ls, zero = torch.tensor([[-100.0, 0.0]]), torch.zeros(1, 2), torch.zeros(1)
    z = mdn_sample(torch.log(torch.tensor([[0.0, 1.0]])), mu, ls, 1.0, uniform=zero,
                   normal=zero)
    assert z.item() == 0.0
    lowtemp = torch.log_softmax(torch.tensor([[0.0, 20.0]]), -1)  # weight 0 at tau = 0.1
    assert mdn_sample(lowtemp, mu, ls, 0.1, uniform=zero, normal=zero).item() == 0.0
    # float32 weights summing to 1 - 2**-23 and a last component of weight 0
    logpi = torch.log_softmax(torch.tensor([[1.1837595701217651, 0.5145329236984253, -200.0]]),
                              -1)
    assert float(torch.softmax(logpi, -1).cumsum(-1)[0, -1]) < 1.0 - 2**-24
    u = torch.tensor([1.0 - 2**-24])  # the largest torch.rand value
    z = mdn_sample(logpi, torch.tensor([[1.0, 2.0, -100.0]]), torch.zeros(1, 3), 1.0,
                   uniform=u, normal=zero)
    assert z.item() == 2.0


# ---------------------------------------------------------------- M: masked losses
def test_mdrnn_losses_mask_padded_steps():
    torch.manual_seed(1)
    m = MDNRNN(z_size=3, n_actions=2, hidden_size=6, n_gaussians=2).double()
    g = _gen(10)
    L, n = 5, 3  # window 1 holds only 3 real steps
    z = torch.randn(2, L + 1, 3, generator=g, dtype=D)
    batch = {"actions": torch.randint(0, 2, (2, L), generator=g),
             "rewards": torch.randn(2, L, generator=g, dtype=D),
             "dones": (torch.rand(2, L, generator=g) > 0.7).double(),
             "mask": torch.ones(2, L, dtype=D)}
    batch["mask"][1, n:] = 0
    loss, parts = _mdrnn_losses(m, batch, z, (0.7, 1.3))
    # reference: each window on its real steps only, one mean over all real steps
    nll, mse, bce = [], [], []
    for b, steps in ((0, L), (1, n)):
        logpi, mu, ls, r, d, _, _ = m(z[b:b + 1, :steps], batch["actions"][b:b + 1, :steps])
        nll.append(-_mixture(logpi, mu, ls).log_prob(z[b:b + 1, 1:steps + 1]).mean(-1))
        mse.append((r - batch["rewards"][b, :steps]) ** 2)
        p = torch.sigmoid(d)
        y = batch["dones"][b, :steps]
        bce.append(-(y * torch.log(p) + (1 - y) * torch.log1p(-p)))
    ref = [torch.cat(t, 1).mean().item() for t in (nll, mse, bce)]
    assert parts["nll"] == pytest.approx(ref[0], abs=1e-10)
    assert parts["reward_mse"] == pytest.approx(ref[1], abs=1e-10)
    assert parts["done_bce"] == pytest.approx(ref[2], abs=1e-10)
    assert loss.item() == pytest.approx(ref[0] + 0.7 * ref[1] + 1.3 * ref[2], abs=1e-10)
    # whatever the padding holds, the loss is the same
    z2 = z.clone()
    z2[1, n + 1:] = 1e3
    batch2 = {**batch, "rewards": batch["rewards"].clone(), "dones": batch["dones"].clone()}
    batch2["rewards"][1, n:] = 1e6
    batch2["dones"][1, n:] = 1.0
    assert _mdrnn_losses(m, batch2, z2, (0.7, 1.3))[0].item() == pytest.approx(loss.item(),
                                                                                abs=1e-10)


# ---------------------------------------------------------------- C
def test_linear_controller_layout_and_action():
    z_size, hidden, n_actions = 3, 4, 5
    c = LinearController(z_size, hidden, n_actions)
    assert c.num_params == n_actions * (z_size + hidden) + n_actions
    params = np.random.default_rng(0).standard_normal(c.num_params)
    z = np.random.default_rng(1).standard_normal((50, z_size))
    h = np.random.default_rng(2).standard_normal((50, hidden))
    w = params[: n_actions * (z_size + hidden)].reshape(n_actions, z_size + hidden)
    ref = np.argmax(np.concatenate([z, h], 1) @ w.T + params[-n_actions:], 1)
    assert np.array_equal(c.set_params(params).act(z, h), ref)
    # the dream's batched controller (world_model._dream_returns) reads the same layout
    wt = torch.from_numpy(params[: n_actions * (z_size + hidden)]).view(1, n_actions, -1)
    logits = torch.einsum("bad,bd->ba", wt.expand(50, -1, -1),
                          torch.from_numpy(np.concatenate([z, h], 1)))
    assert np.array_equal((logits + torch.from_numpy(params[-n_actions:])).argmax(1).numpy(),
                          ref)
