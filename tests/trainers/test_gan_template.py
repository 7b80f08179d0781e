"""The generator's output templates (``template=K``): shapes, initialisation, training, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gan_runs import assert_resume_is_exact
from hypothesis import given, settings
from hypothesis import strategies as st

from gan_envs.trainers.data import ArrayFrameSource
from gan_envs.trainers.gan import GanConfig, load_checkpoint, train_gan
from gan_envs.trainers.models import (
    TEMPLATE_CLAMP,
    build_models,
    init_template,
    template_frames,
)
from gan_envs.trainers.sampling import load_generator


def _zero_residual(generator: torch.nn.Module) -> None:
    """Zero the last layer, so that the generator draws its templates and nothing else."""
    last = generator.net[-1]
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)


@pytest.mark.parametrize("arch, shape", [("dcgan", (3, 32, 32)), ("mlp", (5,))])
@pytest.mark.parametrize("num_classes", [0, 3])
@pytest.mark.parametrize("templates", [1, 2])
def test_zero_templates_change_nothing(arch, shape, num_classes, templates):
    torch.manual_seed(0)
    plain, _ = build_models(arch, shape, latent_dim=8, width=16, num_classes=num_classes)
    torch.manual_seed(0)
    with_template, _ = build_models(arch, shape, latent_dim=8, width=16,
                                    num_classes=num_classes, template=templates)
    assert "template" not in plain.state_dict()
    assert with_template.template.shape[0] == max(num_classes, 1) * templates
    extra = {"template"} | ({"template_choice.weight", "template_choice.bias"}
                            if templates > 1 else set())
    assert set(with_template.state_dict()) - extra == set(plain.state_dict())
    labels = (torch.tensor([0, 2]),) if num_classes else ()
    z = torch.randn(2, 8)
    plain.eval(), with_template.eval()
    # all-zero templates add nothing: the same weights draw the same frames
    assert torch.equal(plain(z, *labels), with_template(z, *labels))


@settings(max_examples=25, deadline=None)
@given(num_classes=st.sampled_from([0, 2, 3]),
       values=st.lists(st.integers(0, 255), min_size=3, max_size=3),
       labels=st.lists(st.integers(0, 2), min_size=1, max_size=6))
def test_a_zero_residual_draws_each_labels_template(num_classes, values, labels):
    g, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16,
                        num_classes=num_classes, template=1)
    _zero_residual(g)
    k = max(num_classes, 1)
    pixels = torch.tensor(values[:k], dtype=torch.float32)
    frames = (pixels / 127.5 - 1).reshape(k, 1, 1, 1, 1).expand(k, 1, 3, 32, 32)
    init_template(g, frames)
    y = torch.tensor(labels) % k
    out = g.eval()(torch.randn(len(labels), 8), *((y,) if num_classes else ()))
    drawn = ((out + 1) * 127.5).round()  # quantised as the data and the evaluation are
    expected = pixels[y if num_classes else torch.zeros_like(y)]
    assert torch.equal(drawn[:, :, 5, 7], expected[:, None].expand(-1, 3))
    assert out.abs().max() <= TEMPLATE_CLAMP + 1e-6


def test_the_choice_layer_picks_among_a_labels_templates():
    g, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16, num_classes=2,
                        template=2)
    _zero_residual(g)
    # label 0: templates of pixel 0 and 200; label 1: 100 and 50
    pixels = torch.tensor([[0.0, 200.0], [100.0, 50.0]])
    init_template(g, (pixels / 127.5 - 1).reshape(2, 2, 1, 1, 1).expand(2, 2, 3, 32, 32))
    with torch.no_grad():  # the choice follows the sign of z[0]: > 0 picks the second
        g.template_choice.weight.zero_()
        g.template_choice.weight[1, 0] = 10.0
        g.template_choice.bias.zero_()
    z = torch.zeros(4, 8)
    z[:, 0] = torch.tensor([-5.0, 5.0, -5.0, 5.0])
    out = g.eval()(z, torch.tensor([0, 0, 1, 1]))
    drawn = ((out[:, 0, 3, 3] + 1) * 127.5).round()
    assert drawn.tolist() == [0.0, 200.0, 100.0, 50.0]
    z[:, 0] = torch.tensor([-0.01, 0.01, -0.01, 0.01])  # nearly undecided: still one template
    g.train()
    out = g(z, torch.tensor([0, 0, 1, 1]))
    drawn = ((out[:, 0, 3, 3] + 1) * 127.5).round()
    assert drawn.tolist() == [0.0, 200.0, 100.0, 50.0]  # never a blend of two screens
    out[:, 0, 3, 3].sum().backward()  # the choice learns through the softmax
    assert g.template_choice.weight.grad[:, 0].abs().sum() > 0


@settings(max_examples=25, deadline=None)
@given(kinds=st.lists(st.sampled_from([0, 60, 120, 180, 240]), min_size=1, max_size=3,
                      unique=True),
       counts=st.lists(st.integers(3, 8), min_size=3, max_size=3),
       seed=st.integers(0, 100))
def test_template_frames_finds_each_kind_of_screen(kinds, counts, seed):
    # screens of a few flat colours, each with one slightly odd pixel somewhere (a sprite):
    # k templates find the k kinds, and the medians leave the odd pixels out
    rng = np.random.default_rng(seed)
    counts = counts[:len(kinds)]
    frames = []
    for value, count in zip(kinds, counts, strict=True):
        block = np.full((count, 2, 6, 6), float(value))
        spots = rng.permutation(36)[:count]  # a different pixel in each screen
        block[np.arange(count), :, spots // 6, spots % 6] += 10
        frames.append(block)
    order = rng.permutation(sum(counts))
    got = template_frames(torch.from_numpy(np.concatenate(frames)[order]).float(), len(kinds))
    assert got.shape == (len(kinds), 2, 6, 6)
    clean = sorted(float(v) for v in kinds)
    assert sorted(float(t[0, 0, 0]) for t in got) == clean
    assert all(bool((t == t[0, 0, 0]).all()) for t in got)
    if counts.count(max(counts)) == 1:  # the largest cluster comes first
        assert float(got[0, 0, 0, 0]) == kinds[counts.index(max(counts))]


def test_template_frames_leave_out_rare_screens_and_refuse_no_frames():
    same = torch.zeros(4, 3)
    got = template_frames(same, 2)
    assert got.shape == (2, 3) and torch.equal(got[0], same[0])
    rare = torch.cat([torch.zeros(40, 3), torch.ones(1, 3)])  # one odd screen in 41: 2.4 %
    assert template_frames(rare, 2).tolist() == [[0.0] * 3, [0.0] * 3]
    assert template_frames(rare, 2, min_share=0.02).tolist() == [[0.0] * 3, [1.0] * 3]
    with pytest.raises(ValueError, match="no frames"):
        template_frames(torch.zeros(0, 3), 2)


def test_init_template_refuses_the_wrong_shape_or_a_plain_generator():
    g, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16, num_classes=2,
                        template=1)
    with pytest.raises(ValueError, match="2 label") as excinfo:
        init_template(g, torch.zeros(3, 1, 3, 32, 32))
    assert "\n" not in str(excinfo.value)
    plain, _ = build_models("dcgan", (3, 32, 32), latent_dim=8, width=16)
    with pytest.raises(ValueError, match="template >= 1"):
        init_template(plain, torch.zeros(1, 1, 3, 32, 32))



def test_training_starts_from_each_games_screens(tmp_path, tiny, two_games):
    train_gan(GanConfig(iterations=0, template=2, modes=0, template_mask=False, **tiny),
              two_games(), tmp_path / "two")
    saved = load_checkpoint(tmp_path / "two")
    assert saved["config"]["template"] == 2
    assert saved["generator"]["template"].shape == (4, 3, 32, 32)  # label-major
    assert saved["version"] == 3  # 5 with a mask
    drawn = ((torch.tanh(saved["generator"]["template"]) + 1) * 127.5).round()
    drawn = drawn.reshape(2, 2, 3, 32, 32)
    assert (drawn[0] == 0).all()  # black has one kind of screen: both templates black
    colours = sorted(tuple(drawn[1, k, :, 0, 0].tolist()) for k in range(2))
    assert colours == [(100.0, 100.0, 100.0), (112.0, 0.0, 92.0)]
    assert (drawn[1] == drawn[1, :, :, :1, :1]).all()  # the spots are not in the templates
    assert torch.equal(saved["generator_ema"]["template"], saved["generator"]["template"])
    train_gan(GanConfig(iterations=0, template=1, modes=0, conditional=False, **tiny),
              two_games(), tmp_path / "pooled")
    pooled = load_checkpoint(tmp_path / "pooled")["generator"]["template"]
    assert pooled.shape == (1, 3, 32, 32)


def test_template_run_trains_resumes_exactly_and_samples(tmp_path, atari32, tiny):
    config = dict(template=2, modes=0, template_lr=1.0, **tiny)
    straight = assert_resume_is_exact(config, atari32, tmp_path)
    train_gan(GanConfig(iterations=0, **config), atari32, tmp_path / "start")
    start = load_checkpoint(tmp_path / "start")["generator"]
    for name in ("template", "template_choice.weight"):  # both are trained
        assert not torch.equal(straight["generator"][name], start[name])
    run = load_generator(tmp_path / "split")
    images = run.generate(torch.zeros(4, tiny["latent_dim"]),
                          labels=torch.tensor([0, 0, 1, 1]))
    assert images.shape == (4, 3, 32, 32) and images.dtype == np.uint8


def test_recipe_templates_and_bad_counts_are_one_line(tmp_path, atari32, tiny):
    assert GanConfig().resolved((3, 64, 64)).template == 1  # one per mode, since session 7
    assert GanConfig(recipe="tutorial").resolved((3, 64, 64)).template == 0
    with pytest.raises(ValueError, match="template must be 0") as excinfo:
        GanConfig(template=-1).resolved((3, 64, 64))
    assert "\n" not in str(excinfo.value)
    with pytest.raises(ValueError, match="--modes 0") as excinfo:  # K >= 2 needs no modes
        GanConfig(template=2).resolved((3, 64, 64))
    assert "\n" not in str(excinfo.value)
    train_gan(GanConfig(iterations=1, template=0, modes=0, **tiny), atari32, tmp_path)
    with pytest.raises(ValueError, match="other template"):
        train_gan(GanConfig(iterations=2, template=2, modes=0, **tiny), atari32, tmp_path,
                  resume=True)


def test_template_lr_zero_keeps_the_data_medians(tmp_path, atari32, tiny):
    config = dict(template=2, modes=0, **tiny)
    train_gan(GanConfig(iterations=0, **config), atari32, tmp_path / "start")
    train_gan(GanConfig(iterations=3, template_lr=0.0, **config), atari32, tmp_path / "fixed")
    start = load_checkpoint(tmp_path / "start")["generator"]
    fixed = load_checkpoint(tmp_path / "fixed")
    assert torch.equal(fixed["generator"]["template"], start["template"])
    assert torch.equal(fixed["generator_ema"]["template"], start["template"])
    assert not torch.equal(fixed["generator"]["template_choice.weight"],
                           start["template_choice.weight"])
    assert fixed["config"]["template_lr"] == 0.0
    for bad, message in [(dict(template=2, modes=0, template_lr=-1.0), "finite multiple"),
                         (dict(template=0, template_lr=0.5), "acts only on templates")]:
        with pytest.raises(ValueError, match=message) as excinfo:
            GanConfig(**bad).resolved((3, 64, 64))
        assert "\n" not in str(excinfo.value)


def test_templates_with_channels_last_and_bf16(tmp_path, atari32, tiny):
    train_gan(GanConfig(iterations=2, template=2, modes=0, channels_last=True, bf16=True,
                        **tiny), atari32, tmp_path)
    saved = load_checkpoint(tmp_path)
    assert saved["generator"]["template"].shape == (4, 3, 32, 32)
    assert torch.isfinite(saved["generator"]["template"]).all()


def test_templates_on_vector_observations_with_the_mlp(tmp_path, tiny):
    rng = np.random.default_rng(0)
    states = np.concatenate([rng.normal(0, 0.1, (60, 4)), rng.normal(3, 0.1, (60, 4))])
    source = ArrayFrameSource(states.astype(np.float32))
    train_gan(GanConfig(iterations=0, arch="mlp", template=2, modes=0, **tiny), source, tmp_path)
    saved = load_checkpoint(tmp_path)
    assert saved["generator"]["template"].shape == (2, 4)
    # the two kinds of state, in the trainer's [-1, 1] scaling, one per template
    drawn = torch.tanh(saved["generator"]["template"]) * saved["scale"]["half_range"] \
        + saved["scale"]["center"]
    assert sorted(round(float(t.mean())) for t in drawn) == [0, 3]


def test_a_run_saved_before_templates_resumes_without_them(tmp_path, atari32, tiny):
    train_gan(GanConfig(iterations=1, template=0, modes=0, **tiny), atari32, tmp_path)
    path = tmp_path / "checkpoint.pt"
    old = torch.load(path, weights_only=False)
    for key in ("template", "template_lr", "modes"):
        del old["config"][key]
    old["version"] = 2
    torch.save(old, path)
    summary = train_gan(GanConfig(iterations=2, **tiny), atari32, tmp_path, resume=True)
    assert summary.iterations == 2
    saved = load_checkpoint(tmp_path)
    assert saved["config"]["template"] == 0 and "template" not in saved["generator"]
    assert saved["version"] == 2


def test_templates_start_from_the_data_without_the_diversity_term(tmp_path, tiny, two_games):
    # the probe draw is shared with the diversity term's scale; templates alone still draw it
    train_gan(GanConfig(iterations=0, template=2, modes=0, diversity=0.0, **tiny), two_games(),
              tmp_path)
    saved = load_checkpoint(tmp_path)
    assert saved["pair_scale"] is None
    drawn = ((torch.tanh(saved["generator"]["template"]) + 1) * 127.5).round()
    colours = sorted(tuple(drawn.reshape(2, 2, 3, 32, 32)[1, k, :, 0, 0].tolist())
                     for k in range(2))
    assert colours == [(100.0, 100.0, 100.0), (112.0, 0.0, 92.0)]
