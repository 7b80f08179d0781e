"""Standing statistics: the EMA generator's BatchNorm statistics measured on its own
activations (``standing_stats``, ``models.standing_statistics``)."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from gan_runs import (
    assert_cli_refuses,
    assert_refused,
    assert_resume_is_exact,
    load_benchmark,
    resume_as_saved_before,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from gan_envs.trainers.gan import GanConfig, load_checkpoint, train_gan
from gan_envs.trainers.models import DCGANGenerator, MLPGenerator, standing_statistics
from gan_envs.trainers.sampling import load_generator


def _norms(net: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]


def _batch_moments(generator: nn.Module, z: torch.Tensor, labels: torch.Tensor | None
                   ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each BatchNorm layer's input mean and unbiased variance per channel over one
    training-mode forward of ``z`` (on a copy: the generator keeps its own buffers)."""
    net = copy.deepcopy(generator).train()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    hooks = [m.register_forward_hook(
        lambda m, x, y: seen.append((x[0].mean(dim=(0, 2, 3)),
                                     x[0].var(dim=(0, 2, 3), unbiased=True))))
             for m in _norms(net)]
    with torch.no_grad():
        net(z, labels) if labels is not None else net(z)
    for h in hooks:
        h.remove()
    return seen


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), batches=st.integers(1, 4), batch=st.integers(2, 12),
       extra=st.integers(0, 11), conditional=st.booleans())
def test_the_statistics_are_the_mean_of_the_generator_s_own_batch_moments(
        seed, batches, batch, extra, conditional):
    """Every BatchNorm layer ends up holding the average, over the batches, of its input's
    per-batch mean and (unbiased) variance in training mode, a short last batch counting as
    one and a last batch of one frame left out; weights and the original generator stay as
    they were, and the copy is in eval mode."""
    torch.manual_seed(seed)
    g = DCGANGenerator((3, 32, 32), latent_dim=8, width=16, num_classes=2 if conditional else 0)
    with torch.no_grad():  # running stats far from the defaults, so a no-op would show
        for m in _norms(g):
            m.running_mean.fill_(5.0)
            m.running_var.fill_(9.0)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    rng = torch.Generator().manual_seed(seed)
    extra %= batch  # a last batch shorter than the others (0: none; 1: one frame, dropped)
    z = torch.randn(batches * batch + extra, 8, generator=rng)
    labels = torch.randint(0, 2, (len(z),), generator=rng) if conditional else None
    standing = standing_statistics(g, z, labels, batch_size=batch)
    assert not standing.training
    for k, v in g.state_dict().items():
        assert torch.equal(v, before[k]), k  # the original is untouched
    for name, p in standing.named_parameters():
        assert torch.equal(p, dict(g.named_parameters())[name]), name
    starts = [i * batch for i in range(batches)] + ([batches * batch] if extra >= 2 else [])
    per_batch = [_batch_moments(g, z[i:i + batch],
                                None if labels is None else labels[i:i + batch])
                 for i in starts]
    for layer, m in enumerate(_norms(standing)):
        mean = torch.stack([b[layer][0] for b in per_batch]).mean(dim=0)
        var = torch.stack([b[layer][1] for b in per_batch]).mean(dim=0)
        torch.testing.assert_close(m.running_mean, mean, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(m.running_var, var, rtol=1e-4, atol=1e-5)
        assert int(m.num_batches_tracked) == len(starts) and m.momentum == 0.1


def test_a_generator_without_batchnorm_comes_back_equal_and_bad_inputs_are_one_line():
    g = MLPGenerator((4,), latent_dim=8, width=16)
    same = standing_statistics(g, torch.randn(10, 8))
    assert all(torch.equal(v, g.state_dict()[k]) for k, v in same.state_dict().items())
    dc = DCGANGenerator((3, 32, 32), latent_dim=8, width=16)
    for kwargs, message in [(dict(latents=torch.randn(1, 8)), "need >= 2 latents"),
                            (dict(latents=torch.randn(8, 8), batch_size=1), "batches of >= 2"),
                            (dict(latents=torch.randn(8, 8), labels=torch.zeros(3)),
                             "one label per latent")]:
        with pytest.raises(ValueError, match=message):
            standing_statistics(dc, **kwargs)


def test_the_fast_recipe_saves_standing_statistics_and_changes_no_weight(tmp_path, atari32,
                                                                        tiny):
    """Same seed with and without: the same weights everywhere (the EMA's too) and the same
    losses; only the EMA generator's BatchNorm buffers differ, measured over 1,024 latents in
    the training batch size; the grids come from that generator."""
    assert GanConfig().resolved((3, 64, 64), num_envs=3).standing_stats == 1024
    config = dict(iterations=3, sample_every=3, log_every=1, **tiny)
    train_gan(GanConfig(**config), atari32, tmp_path / "on")
    train_gan(GanConfig(standing_stats=0, **config), atari32, tmp_path / "off")
    on, off = load_checkpoint(tmp_path / "on"), load_checkpoint(tmp_path / "off")
    assert on["config"]["standing_stats"] == 1024 and off["config"]["standing_stats"] == 0
    for net in ("generator", "discriminator"):
        assert all(torch.equal(v, off[net][k]) for k, v in on[net].items()), net
    buffers = [k for k in on["generator_ema"] if "running_" in k]
    assert buffers
    for k, v in on["generator_ema"].items():
        if "running_" in k:
            assert not torch.equal(v, off["generator_ema"][k]), k
        elif k.endswith("num_batches_tracked"):
            assert int(v) == math.ceil(1024 / tiny["batch_size"]), k
        else:
            assert torch.equal(v, off["generator_ema"][k]), k
    losses = [[{k: v for k, v in json.loads(line).items() if k != "seconds"}
               for line in (tmp_path / d / "log.jsonl").open()] for d in ("on", "off")]
    assert losses[0] == losses[1] and len(losses[0]) == 3
    # sampling reads the measured statistics: the two runs' samples differ
    z = torch.randn(8, tiny["latent_dim"])
    a, b = (load_generator(tmp_path / d).generate(z) for d in ("on", "off"))
    assert a.shape == b.shape and (a != b).any()
    grids = [(tmp_path / d / "samples" / "iter_000003.png").read_bytes() for d in ("on", "off")]
    assert grids[0] != grids[1]


def test_a_run_with_standing_statistics_resumes_exactly_and_old_runs_resume_without(
        tmp_path, atari32, tiny):
    straight = assert_resume_is_exact(dict(standing_stats=64, log_every=1, **tiny), atari32,
                                      tmp_path / "exact")
    assert straight["config"]["standing_stats"] == 64
    resume_as_saved_before("standing_stats", tiny, atari32, tmp_path / "old", old=0)
    assert load_checkpoint(tmp_path / "old")["config"]["standing_stats"] == 0
    with pytest.raises(ValueError, match="other standing_stats"):
        train_gan(GanConfig(iterations=3, standing_stats=64, **tiny), atari32, tmp_path / "old",
                  resume=True)


def test_the_recipe_measures_only_where_there_is_an_ema_of_batchnorm_layers():
    """0 for the tutorial, a run without an EMA, the MLP (no BatchNorm) and batches of one."""
    assert GanConfig(recipe="tutorial").resolved((3, 64, 64)).standing_stats == 0
    assert GanConfig(ema_decay=0.0).resolved((3, 64, 64), num_envs=3).standing_stats == 0
    assert GanConfig(arch="mlp").resolved((4,)).standing_stats == 0
    assert GanConfig(batch_size=1, pack=1).resolved((3, 32, 32)).standing_stats == 0


@pytest.mark.parametrize(("config", "message"), [
    (dict(standing_stats=-1), r"^standing_stats must be 0 \(off\) or 2 to 65,536 latents"),
    (dict(standing_stats=1), r"^standing_stats must be 0 \(off\) or 2 to 65,536 latents"),
    (dict(standing_stats=10**8), r"^standing_stats must be 0 \(off\) or 2 to 65,536 latents, "
                                 r"got 100,000,000"),
    (dict(standing_stats=64, ema_decay=0.0),
     r"^standing_stats=64 measures the EMA generator.*--ema 0\.999.*--standing-stats 0\)$"),
    (dict(standing_stats=64, arch="mlp"), r"^standing_stats=64 .* the mlp generator has none"),
    (dict(standing_stats=64, batch_size=1, pack=1), r"^standing_stats=64 .* batch_size=1 is too"),
])
def test_settings_that_cannot_apply_are_one_line_errors(config, message, tmp_path, atari32,
                                                        tiny):
    assert_refused({**tiny, **config}, message, atari32, tmp_path)


def test_the_command_line_takes_a_count_and_names_a_bad_one(tmp_path, capsys):
    assert_cli_refuses(["--ema", "0", "--standing-stats", "64"],
                       "standing_stats=64 measures the EMA", tmp_path, capsys)


def test_the_benchmark_re_measures_as_the_trainer_does(tmp_path, tiny_run):
    """On the run's own latents (the default) the copy of a run trained with 1,024 latents is
    the saved checkpoint exactly; on 64 other ones only the BatchNorm statistics move."""
    bench = load_benchmark("standing_stats")
    saved = load_checkpoint(tiny_run)
    assert saved["config"]["standing_stats"] == 1024
    bench.restat_run(tiny_run, tmp_path / "same", frames=1024)
    same = load_checkpoint(tmp_path / "same")
    for k, v in saved["generator_ema"].items():
        assert torch.equal(v, same["generator_ema"][k]), k
    bench.restat_run(tiny_run, tmp_path / "other", frames=64, seed=7)
    other = load_checkpoint(tmp_path / "other")
    moved = [k for k, v in saved["generator_ema"].items()
             if not torch.equal(v, other["generator_ema"][k])]
    assert moved and all("running_" in k or k.endswith("num_batches_tracked") for k in moved)
    assert int(other["generator_ema"]["net.1.num_batches_tracked"]) == \
        math.ceil(64 / saved["config"]["batch_size"])
    assert all(torch.equal(v, other["generator"][k]) for k, v in saved["generator"].items())
    no_ema = load_checkpoint(tiny_run)
    no_ema["generator_ema"] = None
    (tmp_path / "no_ema").mkdir()
    torch.save(no_ema, tmp_path / "no_ema" / "checkpoint.pt")
    with pytest.raises(ValueError, match="has no EMA generator"):
        bench.restat_run(tmp_path / "no_ema", tmp_path / "copy2", frames=64)
