"""World-Models trainer: shapes, each stage lowers its loss, V's moving-pixel weights and the
stored background, exact resume, the latent cache, the controller's fresh seeds, selection and
workers, evaluation (with the moving-pixel MSE), dream, and the one-line errors. Tiny sizes
throughout."""

from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from wm_tiny import tiny

from gan_envs.trainers import world_model as wm
from gan_envs.trainers.sequences import (
    ArrayEpisodeSource,
    EpisodeSource,
    split_episodes,
    window_index,
)
from gan_envs.trainers.wm_models import (
    MDNRNN,
    ConvVAE,
    LinearController,
    frames_to_input,
    mdn_nll,
    mdn_sample,
    moving_mask,
    pixel_weights,
    vae_loss,
)
from gan_envs.trainers.world_model import (
    WorldModelError,
    background_frame,
    dream,
    encode_latents,
    evaluate_world_model,
    load_stage,
    metrics_table,
    train_world_model,
)


def dot_episodes(n: int = 3, steps: int = 24, seed: int = 0) -> ArrayEpisodeSource:
    """Grey frames with a static band and a white 3x3 dot at a random place in every frame:
    the dot is all the "moving" pixels (0.2 % of the frame)."""
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(n):
        obs = np.full((steps + 1, 1, 64, 64), 60, np.uint8)
        obs[:, :, 50:54, :] = 160
        for k in range(steps + 1):
            y, x = rng.integers(4, 44), rng.integers(0, 61)
            obs[k, :, y:y + 3, x:x + 3] = 255
        episodes.append({"observations": obs, "actions": np.zeros(steps, np.int64)})
    return ArrayEpisodeSource(episodes, ["GanAtari/Pong-v0"], gym.spaces.Discrete(6))


@pytest.fixture(scope="session")
def trained(tmp_path_factory, pong):
    """A run with all three stages trained (tiny)."""
    run = tmp_path_factory.mktemp("wm_run")
    torch.set_num_threads(1)
    train_world_model(tiny(), pong, run)
    return run


# ---------------------------------------------------------------- shapes and sources
def test_vae_has_the_papers_architecture():
    vae = ConvVAE(channels=3, z_size=32)
    convs = [m for m in vae.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256]
    assert {c.kernel_size for c in convs} == {(4, 4)} and {c.stride for c in convs} == {(2, 2)}
    recon, mu, logvar = vae(torch.rand(2, 3, 64, 64))
    assert recon.shape == (2, 3, 64, 64) and mu.shape == logvar.shape == (2, 32)
    assert 0 <= recon.min() and recon.max() <= 1


def test_mdrnn_and_controller_shapes():
    m = MDNRNN(z_size=6, n_actions=4, hidden_size=10, n_gaussians=5)
    logpi, mu, logsigma, reward, done, h, state = m(torch.zeros(3, 7, 6), torch.ones(3, 7))
    assert logpi.shape == mu.shape == logsigma.shape == (3, 7, 6, 5)
    assert reward.shape == done.shape == (3, 7) and h.shape == (3, 7, 10)
    assert torch.allclose(logpi.exp().sum(-1), torch.ones(3, 7, 6))
    assert mdn_nll(logpi, mu, logsigma, torch.zeros(3, 7, 6)).shape == (3, 7, 6)
    assert mdn_sample(logpi, mu, logsigma, 1.15).shape == (3, 7, 6)
    c = LinearController(6, 10, 4)
    assert c.num_params == 4 * 16 + 4
    assert c.set_params(np.ones(c.num_params)).act(np.zeros((5, 6)), np.zeros((5, 10))).shape \
        == (5,)


def test_mdn_sample_at_low_temperature_picks_the_likeliest_mean():
    logpi = torch.log(torch.tensor([[0.1, 0.9]]))
    mu = torch.tensor([[-5.0, 3.0]])
    z = mdn_sample(logpi, mu, torch.full((1, 2), -9.0), temperature=0.01,
                   generator=torch.Generator().manual_seed(0))
    assert z.item() == pytest.approx(3.0, abs=1e-3)


def test_source_protocol_and_episode_arrays(pong):
    assert isinstance(pong, EpisodeSource)
    ep = pong.episode(0)
    t = len(ep["actions"])
    assert ep["observations"].shape == (t + 1, 3, 64, 64) and ep["observations"].dtype == np.uint8
    assert ep["rewards"].dtype == np.float32 and ep["terminations"].dtype == bool
    assert ep["truncations"][-1] or ep["terminations"][-1]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=6), st.integers(1, 12))
def test_windows_cover_each_episode_once_and_never_cross_it(lengths, seq_len):
    windows = window_index(lengths, seq_len)
    covered = [np.zeros(n, int) for n in lengths]
    for e, s in windows:
        covered[e][s:s + seq_len] += 1
        assert 0 <= s < lengths[e]
    assert all((c == 1).all() for c in covered)


def test_split_holds_out_the_last_episodes():
    train, held = split_episodes(5, 0.1)
    assert train.tolist() == [0, 1, 2, 3] and held.tolist() == [4]


# ---------------------------------------------------------------- each stage lowers its loss
def _vae_fixed_batch_loss(vae: ConvVAE, frames: np.ndarray) -> float:
    x = frames_to_input(frames)
    mu, logvar = vae.encode(x)
    return vae_loss(vae.decode(mu), x, mu, logvar, kl_tolerance=0.0)[0].item()


def test_vae_stage_lowers_its_loss_on_a_fixed_batch(tmp_path, pong):
    cfg = tiny(vae_max_steps=12, vae_lr=3e-3)
    summary = train_world_model(cfg, pong, tmp_path, stage="vae")
    assert summary.stages["vae"].steps == 12
    frames = pong.episode(0)["observations"][:16]
    torch.manual_seed(cfg.seed)
    untrained = ConvVAE(3, cfg.z_size, cfg.vae_width)
    trained_vae = wm._vae_from(load_stage(tmp_path, "vae"))
    with torch.no_grad():
        assert _vae_fixed_batch_loss(trained_vae, frames) < 0.9 * _vae_fixed_batch_loss(
            untrained, frames)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [2, 4, 6, 8, 10, 12]
    assert {"loss", "mse", "kl"} <= set(log[0])


def test_pixel_weights_up_weight_what_differs_from_the_background():
    background = torch.zeros(3, 4, 4)
    x = torch.zeros(2, 3, 4, 4)
    x[0, 1, 2, 3] = 0.5  # one channel of one pixel
    x[1, :, 0, 0] = 0.05  # below the threshold
    mask = moving_mask(x, background, 0.1)
    assert mask.shape == (2, 1, 4, 4) and mask.sum() == 1 and mask[0, 0, 2, 3]
    w = pixel_weights(x, background, 10.0, 0.1)
    assert w[0, 0, 2, 3] == 10 and (w.sum() - 10) == 2 * 16 - 1
    assert torch.equal(pixel_weights(x, background, 1.0), torch.ones(2, 1, 4, 4))
    rec = vae_loss(x * 0, x, torch.zeros(2, 2), torch.zeros(2, 2), 0.0, w)[1]
    plain = vae_loss(x * 0, x, torch.zeros(2, 2), torch.zeros(2, 2), 0.0)[1]
    assert rec.item() == pytest.approx(plain.item() + 9 * 0.25 / 2, rel=1e-5)


def test_weighted_vae_lowers_its_weighted_loss_on_a_fixed_batch(tmp_path, pong):
    cfg = tiny(vae_max_steps=12, vae_lr=3e-3, moving_weight=10.0)
    train_world_model(cfg, pong, tmp_path, stage="vae")
    ckpt = load_stage(tmp_path, "vae")
    background = frames_to_input(ckpt["background"])
    x = frames_to_input(pong.episode(0)["observations"][:16])
    weight = pixel_weights(x, background, 10.0, cfg.moving_threshold)
    assert weight.max() == 10  # the ball and the paddles move in Pong
    torch.manual_seed(cfg.seed)
    untrained = ConvVAE(3, cfg.z_size, cfg.vae_width)
    with torch.no_grad():
        losses = []
        for vae in (untrained, wm._vae_from(ckpt)):
            mu, logvar = vae.encode(x)
            losses.append(vae_loss(vae.decode(mu), x, mu, logvar, 0.0, weight)[0].item())
    assert losses[1] < 0.9 * losses[0]
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert {"loss", "mse", "mse_moving", "kl"} <= set(log[-1])


def test_weights_make_v_reconstruct_a_small_moving_dot_better(tmp_path):
    """Same V, data and steps: up-weighting the moving pixels lowers their held-out MSE."""
    dots = dot_episodes()
    moving = {}
    for weight in (1.0, 20.0):
        run = tmp_path / str(weight)
        train_world_model(tiny(moving_weight=weight, vae_max_steps=30, vae_lr=3e-3), dots, run,
                          stage="vae")
        moving[weight] = evaluate_world_model(run, dots)["vae"]["mse_moving"]
    assert moving[20.0] < 0.95 * moving[1.0]


def test_background_is_stored_and_reloaded_on_resume(tmp_path, pong, monkeypatch):
    train_world_model(tiny(vae_max_steps=3), pong, tmp_path, stage="vae")
    ckpt = load_stage(tmp_path, "vae")
    train, _ = split_episodes(pong.num_episodes, 0.1)
    expected = background_frame(pong, train)
    assert ckpt["background"].dtype == np.uint8 and ckpt["background"].shape == (3, 64, 64)
    assert np.array_equal(ckpt["background"], expected)
    # the resumed stage uses the stored background and never recomputes it
    marked = expected.copy()
    marked[:, 0, 0] = 77
    torch.save({**ckpt, "background": marked}, tmp_path / "vae.pt")

    def no_recompute(*args):
        raise AssertionError("the background was recomputed")

    monkeypatch.setattr(wm, "background_frame", no_recompute)
    train_world_model(tiny(vae_max_steps=5), pong, tmp_path, stage="vae", resume=True)
    resumed = load_stage(tmp_path, "vae")
    assert resumed["step"] == 5 and np.array_equal(resumed["background"], marked)


def test_moving_pixel_metric_scores_the_background_as_the_baseline(trained, pong, tmp_path,
                                                                    monkeypatch):
    _copy_run(trained, tmp_path, ("vae.pt",))
    background = frames_to_input(load_stage(trained, "vae")["background"])

    class BackgroundVAE:  # a V that always decodes the background
        def encode(self, x):
            return torch.zeros(len(x), 8), torch.zeros(len(x), 8)

        def decode(self, z):
            return background.expand(len(z), -1, -1, -1)

    monkeypatch.setattr(wm, "_vae_from", lambda ckpt: BackgroundVAE())
    r = evaluate_world_model(tmp_path, pong)["vae"]
    assert 0 < r["moving_fraction"] < 0.2
    assert r["mse_moving"] == pytest.approx(r["mse_moving_background"], rel=1e-6)
    assert r["mse_moving"] > 10 * r["mse"]  # moving pixels are where a background model fails
    assert "moving pixels" in metrics_table({"vae": r})
    x = torch.rand(2, 3, 4, 4)
    mask = torch.rand(2, 3, 4, 4) > 0.5
    assert wm._masked_mse(x, x, mask) == 0.0 and wm._masked_mse(x, x, mask & False) is None


def test_mdrnn_stage_lowers_its_loss_on_a_fixed_batch(tmp_path, pong):
    cfg = tiny(mdrnn_max_steps=15)
    train_world_model(cfg, pong, tmp_path, stage="vae")
    summary = train_world_model(cfg, pong, tmp_path, stage="mdrnn")
    assert summary.stages["mdrnn"].steps == 15 and summary.latents_reused is False
    lat, reused = encode_latents(tmp_path, pong)
    assert reused
    train, _ = split_episodes(len(lat["lengths"]), cfg.holdout_fraction)
    batch = wm._window_batch(lat, train, window_index(lat["lengths"][train], 8)[:4], 8)
    torch.manual_seed(cfg.seed + 1)
    untrained = MDNRNN(cfg.z_size, 6, cfg.hidden_size, cfg.n_gaussians)
    trained_m = wm._mdrnn_from(load_stage(tmp_path, "mdrnn"))
    with torch.no_grad():
        before = wm._mdrnn_losses(untrained, batch, batch["mu"], (1.0, 1.0))[0].item()
        after = wm._mdrnn_losses(trained_m, batch, batch["mu"], (1.0, 1.0))[0].item()
    assert after < before


def test_cma_search_improves_a_toy_fitness():
    es = wm._new_es(5, tiny(population=8))
    target = np.arange(5) / 10
    first = None
    for _ in range(15):
        xs = np.asarray(es.ask())
        losses = ((xs - target) ** 2).sum(axis=1)
        first = losses.mean() if first is None else first
        es.tell(list(xs), list(losses))
    assert ((es.mean - target) ** 2).sum() < 0.2 * first


def _copy_run(src, dst, names=("vae.pt", "mdrnn.pt", "latents.npz")) -> None:
    dst.mkdir(exist_ok=True)
    for name in names:
        (dst / name).write_bytes((src / name).read_bytes())


def test_controller_in_the_dream_keeps_the_best_on_the_selection_seeds(trained, pong, tmp_path):
    _copy_run(trained, tmp_path)
    cfg = tiny(controller_env="dream", generations=3, rollouts=2, rollout_steps=6)
    summary = train_world_model(cfg, pong, tmp_path, stage="controller")
    ckpt = load_stage(tmp_path, "controller")
    history = ckpt["history"]
    assert len(history) == 3 and summary.stages["controller"].steps == 3
    assert ckpt["best_params"].shape == (6 * (8 + 16 + 1),)
    # the kept controller is the best re-play on the selection seeds, not the best training fitness
    assert ckpt["best_fitness"] == max(max(r["select_top"], r["select_mean"]) for r in history)
    assert [r["best"] for r in history] == list(np.maximum.accumulate(
        [max(r["select_top"], r["select_mean"]) for r in history]))
    assert ckpt["selection_seeds"] == [60_000, 60_001]
    assert summary.latents_reused is None
    # select_rollouts=0: the old rule, the best training fitness
    plain = tmp_path / "plain"
    _copy_run(trained, plain)
    train_world_model(dataclasses.replace(cfg, select_rollouts=0), pong, plain,
                      stage="controller")
    ckpt = load_stage(plain, "controller")
    assert ckpt["best_fitness"] == max(row["max"] for row in ckpt["history"])
    assert "select_top" not in ckpt["history"][0]


@pytest.mark.parametrize("fresh", [True, False])
def test_controller_seeds_fresh_per_generation_and_disjoint(trained, pong, tmp_path,
                                                             monkeypatch, fresh):
    _copy_run(trained, tmp_path)
    played = []
    original = wm._dream_returns

    def spy(m, lat, train, params, seeds, *args):
        played.append((len(params), list(seeds)))
        return original(m, lat, train, params, seeds, *args)

    monkeypatch.setattr(wm, "_dream_returns", spy)
    cfg = tiny(controller_env="dream", generations=3, rollouts=2, rollout_steps=4,
               fresh_seeds=fresh)
    train_world_model(cfg, pong, tmp_path, stage="controller")
    training = [seeds for n, seeds in played if n == cfg.population]
    selection = [seeds for n, seeds in played if n == 2]
    if fresh:
        assert training == [[10_000, 10_001], [10_002, 10_003], [10_004, 10_005]]
    else:
        assert training == [[10_000, 10_001]] * 3
    assert selection == [[60_000, 60_001]] * 3  # the best candidate and the CMA-ES mean
    evaluation = {10_000 + 100_000 + i for i in range(cfg.eval_rollouts)}
    used = {s for seeds in training for s in seeds}
    assert not used & set(selection[0]) and not used & evaluation


def test_controller_workers_match_the_in_process_search(trained, pong, tmp_path):
    """Two spawned workers load V and M from the files and give the same returns."""
    for name in ("vae.pt", "mdrnn.pt"):
        (tmp_path / name).write_bytes((trained / name).read_bytes())
    train_world_model(tiny(workers=2), pong, tmp_path, stage="controller")
    parallel = load_stage(tmp_path, "controller")["history"]
    in_process = load_stage(trained, "controller")["history"]
    assert parallel == in_process


# ---------------------------------------------------------------- resume and the cache
def _same_state(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("stage", ["vae", "mdrnn"])
def test_resume_equals_an_uninterrupted_run(tmp_path, pong, trained, stage):
    steps = {"vae_max_steps": 6} if stage == "vae" else {"mdrnn_max_steps": 6}
    half = {k: 3 for k in steps}
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for run in (straight, resumed):
        run.mkdir()
        if stage == "mdrnn":
            (run / "vae.pt").write_bytes((trained / "vae.pt").read_bytes())
    train_world_model(tiny(**steps), pong, straight, stage=stage)
    train_world_model(tiny(**half), pong, resumed, stage=stage)
    with (resumed / "log.jsonl").open("a") as log:  # a kill can cut the last line short
        log.write(f'{{"stage": "{stage}", "step": 4, "lo')
    summary = train_world_model(tiny(**steps), pong, resumed, stage=stage, resume=True)
    assert summary.stages[stage].start_step == 3 and summary.stages[stage].steps == 6
    a, b = load_stage(straight, stage), load_stage(resumed, stage)
    assert _same_state(a["model"], b["model"])
    log = [json.loads(line) for line in (resumed / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [2, 3, 4, 6]  # 3: the end of the first call


def test_checkpoints_from_before_the_new_options_keep_their_old_behaviour(trained, pong,
                                                                         tmp_path):
    ckpt = load_stage(trained, "vae")
    old = {k: v for k, v in ckpt.items() if k != "background"}
    old["config"] = {k: v for k, v in ckpt["config"].items()
                     if k not in ("moving_weight", "moving_threshold")}
    torch.save(old, tmp_path / "vae.pt")
    with pytest.raises(WorldModelError, match="trained with moving_weight=1.0"):
        train_world_model(tiny(vae_max_steps=5), pong, tmp_path, stage="vae", resume=True)
    assert "mse_moving" in evaluate_world_model(tmp_path, pong)["vae"]  # background computed


def test_controller_resume_continues_the_search(tmp_path, trained, pong):
    for name in ("vae.pt", "mdrnn.pt", "latents.npz"):
        (tmp_path / name).write_bytes((trained / name).read_bytes())
    cfg = tiny(controller_env="dream", generations=1)
    straight = tmp_path / "straight"
    straight.mkdir()
    for name in ("vae.pt", "mdrnn.pt", "latents.npz"):
        (straight / name).write_bytes((trained / name).read_bytes())
    train_world_model(dataclasses.replace(cfg, generations=2), pong, straight, stage="controller")
    train_world_model(cfg, pong, tmp_path, stage="controller")
    train_world_model(dataclasses.replace(cfg, generations=2), pong, tmp_path,
                      stage="controller", resume=True)
    assert load_stage(tmp_path, "controller")["history"] == \
        load_stage(straight, "controller")["history"]


def test_latents_are_re_encoded_only_when_v_changed(tmp_path, pong):
    train_world_model(tiny(vae_max_steps=2), pong, tmp_path, stage="vae")
    _, reused = encode_latents(tmp_path, pong)
    assert not reused
    mtime = (tmp_path / "latents.npz").stat().st_mtime_ns
    assert encode_latents(tmp_path, pong)[1] and \
        (tmp_path / "latents.npz").stat().st_mtime_ns == mtime
    train_world_model(tiny(vae_max_steps=3), pong, tmp_path, stage="vae", resume=True)
    assert not encode_latents(tmp_path, pong)[1]


def test_progress_reports_the_total_first(tmp_path, pong):
    calls = []
    train_world_model(tiny(vae_max_steps=2), pong, tmp_path, stage="vae",
                      progress=lambda *a: calls.append(a))
    assert calls[0] == ("vae", 0, {"total": 2.0})
    assert [c[1] for c in calls[1:]] == [1, 2]


# ---------------------------------------------------------------- evaluation and dream
def test_evaluation_compares_each_stage_with_its_baseline(trained, pong):
    results = evaluate_world_model(trained, pong)
    assert results["vae"]["mse"] > 0 and results["vae"]["frames"] == 25
    assert results["vae"]["mse_moving"] > 0 and results["vae"]["mse_moving_mean_frame"] > 0
    assert {"nll", "nll_copy_last_z", "gain", "nll_mu", "nll_copy_last_z_mu"} <= set(
        results["mdrnn"])
    ctl = results["controller"]
    assert len(ctl["returns"]) == len(ctl["random_returns"]) == 2
    assert json.loads((trained / "metrics.json").read_text()) == json.loads(json.dumps(results))
    table = metrics_table(results)
    assert "copy last z" in table and "random policy" in table


def test_dream_puts_real_and_imagined_frames_side_by_side(trained, pong, tmp_path):
    video = dream(trained, steps=4, out=tmp_path / "dream.mp4", upscale=1)
    assert video.shape == (5, 68, 134, 3) and video.dtype == np.uint8
    assert (tmp_path / "dream.mp4").stat().st_size > 0
    from_data = dream(trained, steps=3, source=pong, start_episode=1, upscale=1)
    assert np.array_equal(from_data[0][2:66, 2:66], pong.episode(1)["observations"][0]
                          .transpose(1, 2, 0))


# ---------------------------------------------------------------- one-line errors
def _episodes(obs_shape=(3, 64, 64), actions=True, n=2):
    eps = []
    for _ in range(n):
        ep = {"observations": np.zeros((5, *obs_shape), np.uint8)}
        if actions:
            ep["actions"] = np.zeros(4, np.int64)
        eps.append(ep)
    return eps


@pytest.mark.parametrize("source, message", [
    (ArrayEpisodeSource(_episodes(actions=False), ["GanAtari/Pong-v0"], gym.spaces.Discrete(6)),
     "has no actions"),
    (ArrayEpisodeSource(_episodes((8,)), ["GanAtari/Pong-v0"], gym.spaces.Discrete(6)),
     "vector observations"),
    (ArrayEpisodeSource(_episodes((3, 32, 32)), ["GanAtari/Pong-v0"], gym.spaces.Discrete(6)),
     "needs 64x64 frames"),
    (ArrayEpisodeSource(_episodes(), ["CartPole-v1"], gym.spaces.Box(-1, 1, (2,))),
     "needs Discrete actions"),
])
def test_bad_datasets_get_one_line_errors(tmp_path, source, message):
    with pytest.raises(WorldModelError, match=message) as err:
        train_world_model(tiny(), source, tmp_path)
    assert "\n" not in str(err.value)


def test_a_missing_earlier_stage_says_which_to_run(tmp_path, pong):
    with pytest.raises(WorldModelError, match="has no vae.pt: run .*--stage vae"):
        train_world_model(tiny(), pong, tmp_path, stage="mdrnn")
    new = tmp_path / "new"
    with pytest.raises(WorldModelError, match="has no vae.pt: run .*--stage vae"):
        train_world_model(tiny(), pong, new, stage="controller")
    assert not new.exists()  # a folder holding only config.json was left behind


def test_env_id_is_checked_at_every_stage(tmp_path, pong):
    """``--env-id Foo-v0 --stage vae`` trained V and recorded the id; only the controller
    stage found it wrong."""
    with pytest.raises(WorldModelError, match=r"env id 'CartPole-v1' does not match the "
                       r"dataset's \['GanAtari/Pong-v0'\]; pass one of them"):
        train_world_model(tiny(env_id="CartPole-v1"), pong, tmp_path / "run", stage="vae")
    assert not (tmp_path / "run").exists()


def test_env_id_must_match_the_dataset(trained, pong, tmp_path):
    for name in ("vae.pt", "mdrnn.pt"):
        (tmp_path / name).write_bytes((trained / name).read_bytes())
    with pytest.raises(WorldModelError, match="does not match the dataset's"):
        train_world_model(tiny(env_id="GanAtari/Breakout-v0"), pong, tmp_path,
                          stage="controller")
    other = ArrayEpisodeSource([pong.episode(0), pong.episode(1)], ["GanAtari/Breakout-v0"],
                               pong.action_space)
    with pytest.raises(WorldModelError, match="was trained on .*Pong|the dataset Discrete"):
        train_world_model(tiny(), other, tmp_path, stage="controller")


def test_existing_checkpoints_and_changed_settings_are_refused(trained, pong, tmp_path):
    (tmp_path / "vae.pt").write_bytes((trained / "vae.pt").read_bytes())
    with pytest.raises(WorldModelError, match="already holds vae.pt: resume it"):
        train_world_model(tiny(), pong, tmp_path, stage="vae")
    with pytest.raises(WorldModelError, match="trained with z_size=8"):
        train_world_model(tiny(z_size=16), pong, tmp_path, stage="vae", resume=True)
    with pytest.raises(WorldModelError, match="unknown stage"):
        train_world_model(tiny(), pong, tmp_path, stage="policy")


def test_ctrl_c_checkpoints_the_last_step_then_resume_finishes(tmp_path, pong):
    def interrupt(stage, step, metrics):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_world_model(tiny(vae_max_steps=6), pong, tmp_path, stage="vae", progress=interrupt)
    assert load_stage(tmp_path, "vae")["step"] == 3
    summary = train_world_model(tiny(vae_max_steps=6), pong, tmp_path, stage="vae", resume=True)
    assert (summary.stages["vae"].start_step, summary.stages["vae"].steps) == (3, 6)


def test_evaluating_a_run_without_held_out_episodes_names_holdout_fraction(tmp_path, pong):
    train_world_model(tiny(holdout_fraction=0.0), pong, tmp_path, stage="vae")
    with pytest.raises(WorldModelError, match="trained with holdout_fraction=0: train it with "
                                              "holdout_fraction > 0"):
        evaluate_world_model(tmp_path, pong)
