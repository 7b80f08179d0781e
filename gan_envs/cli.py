"""The ``gan-envs`` command line: argument parsing and printing only.

Every command calls a library function that the tests also call directly. Errors a user can
act on (an unknown environment id, a missing file, a bad argument) print one line,
``gan-envs: <what> ...; <fix>``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gan_envs._text import counted, first_line

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _cmd_list(args: argparse.Namespace) -> int:
    from gan_envs.registration import gan_atari_ids

    ids = gan_atari_ids(args.filter)
    if not ids:
        import difflib

        every = gan_atari_ids()
        games = {i.split("/")[-1].rsplit("-", 1)[0].lower(): i for i in every}
        close = difflib.get_close_matches(str(args.filter).lower(), games, n=3, cutoff=0.5)
        hint = (f"did you mean {', '.join(games[g] for g in close)}?" if close else
                f"`gan-envs list` prints all {len(every)}")
        raise CommandError(f"no GanAtari environment matches {args.filter!r}; {hint}")
    print("\n".join(ids))
    return 0


def _is_dataset_path(text: str) -> bool:
    # any case: `preview DATA.H5` was taken for an environment id ("unknown environment")
    return text.lower().endswith((".h5", ".hdf5")) or Path(text).is_file()


def _cmd_preview(args: argparse.Namespace) -> int:
    from gan_envs.images import check_png_path, save_png
    from gan_envs.preview import (
        MAX_PER_ENV,
        MAX_SNAPSHOTS,
        MAX_STEPS_BETWEEN,
        dataset_preview,
        env_preview,
    )

    check_png_path(args.out)  # before the environments play
    for source in args.sources:
        if not source:  # Path("") is "." (it said " is a folder")
            raise CommandError(f"an empty argument {source!r} where an environment id or "
                               "DATA.h5 goes; e.g. gan-envs preview GanAtari/Pong-v0")
        if Path(source).is_dir():
            raise CommandError(f"{source} is a folder; preview takes environment ids or one "
                               "dataset file (DATA.h5)")
    dataset = any(_is_dataset_path(s) for s in args.sources)
    given = {"--snapshots": args.snapshots, "--steps": args.steps, "--per-env": args.per_env}
    wrong = [option for option, value in given.items()
             if value is not None and (option == "--per-env") != dataset]
    if wrong:
        takes = ("a dataset preview takes --per-env" if dataset
                 else "an environment preview takes --snapshots and --steps")
        raise CommandError(f"{wrong[0]} is for previews of "
                           f"{'environment ids' if dataset else 'a dataset (DATA.h5)'}; {takes}")
    for option, high in (("--snapshots", MAX_SNAPSHOTS), ("--steps", MAX_STEPS_BETWEEN),
                         ("--per-env", MAX_PER_ENV)):
        if given[option] is not None and given[option] > high:
            raise CommandError(f"{option} must be at most {high:,}, got {given[option]:,}")
    if dataset:
        if len(args.sources) > 1:
            raise CommandError(f"preview shows one dataset or several environment ids, got "
                               f"{' '.join(args.sources)}; run it once per dataset")
        image = dataset_preview(args.sources[0], per_env=args.per_env or 16, seed=args.seed)
    else:
        image = env_preview(args.sources, snapshots=args.snapshots or 4,
                            steps_between=25 if args.steps is None else args.steps,
                            seed=args.seed)
    path = save_png(args.out, image)
    print(f"wrote {path} ({image.shape[1]}x{image.shape[0]})")
    return 0


def _resume_command(argv: Sequence[str]) -> str:
    words = [w for w in argv if w != "--overwrite"]
    if "--resume" not in words:
        words.append("--resume")
    return shlex.join(["gan-envs", *words])


def _cmd_collect(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gan_envs.collect import CollectConfig, collect
    from gan_envs.datasets import DatasetWriteError

    config = CollectConfig(
        env_ids=args.env_ids, out=args.out, steps=args.steps, episodes=args.episodes,
        num_envs=args.num_envs, seed=args.seed, policy=args.policy, size=args.size,
        compression=args.compression, resume=args.resume, overwrite=args.overwrite,
        command=shlex.join(["gan-envs", *args.argv]),
    )
    target = config.steps if config.steps is not None else config.episodes
    unit = "step" if config.steps is not None else "episode"
    bars: list[tqdm] = []  # made at the first report, after the output checks passed
    last = {"steps": 0, "episodes": 0}

    def progress(p) -> None:
        if not bars:
            bars.append(tqdm(total=target, unit=unit, dynamic_ncols=True,
                             desc=Path(args.out).name))
        bar = bars[0]
        bar.update((p.steps if config.steps is not None else p.episodes) - bar.n)
        bar.set_postfix(episodes=p.episodes, MiB=f"{p.bytes_written / 2**20:.1f}", refresh=False)
        last.update(steps=p.steps, episodes=p.episodes)

    before = _file_state(Path(args.out))
    try:
        summary = collect(config, progress=progress)
    except KeyboardInterrupt:
        for bar in bars:
            bar.close()
        if not Path(args.out).exists():
            print("gan-envs: interrupted before anything was written", file=sys.stderr)
            return 130
        if config.overwrite and _file_state(Path(args.out)) == before:  # not yet replaced
            print(f"gan-envs: interrupted before anything was written; {args.out} is as it "
                  "was", file=sys.stderr)
            return 130
        episodes = _episodes_in(Path(args.out), last["episodes"])  # a resumed file's too
        kept = counted(episodes, "finished episode")
        print(f"gan-envs: interrupted; {kept} {'is' if episodes == 1 else 'are'} safe "
              f"in {args.out}. Continue with:\n"
              f"  {_resume_command(args.argv)}", file=sys.stderr)
        return 130
    except DatasetWriteError as error:  # disk full: committed episodes are intact
        for bar in bars:
            bar.close()
        reason = str(error).split("; free space")[0]
        print(f"gan-envs: {reason}; free space, then continue with: "
              f"{_resume_command(args.argv)}", file=sys.stderr)
        return 1
    except BaseException:  # close the bar first: its last redraw came after the error's line
        for bar in bars:
            bar.close()
        raise
    if config.resume and summary.steps == summary.resumed_from_steps:  # the target was met
        for bar in bars:
            bar.close()
        goal = (f"--steps {config.steps:,}" if config.steps is not None
                else f"--episodes {config.episodes:,}")
        print(f"{summary.path} already holds {counted(summary.episodes, 'episode')} and "
              f"{counted(summary.steps, 'step')} ({goal} is met): nothing to collect; raise "
              f"{goal.split()[0]} to add more")
        return 0
    for bar in bars:  # the file's final size: the last report came before the writer closed
        bar.update(max(0, target - bar.n))
        bar.set_postfix(episodes=summary.episodes,
                        MiB=f"{Path(summary.path).stat().st_size / 2**20:.1f}", refresh=False)
        bar.close()
    blank = f", {counted(summary.blank_frames, 'blank frame')}" if summary.blank_frames else ""
    print(f"wrote {summary.path}: {counted(summary.episodes, 'episode')}, "
          f"{counted(summary.steps, 'step')}, {counted(summary.frames, 'frame')}{blank} from "
          f"{', '.join(summary.env_ids)}")
    return 0


def _file_state(path: Path) -> tuple[int, int, int] | None:
    """``path``'s inode, modification time and size (None when it does not exist)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _episodes_in(path: Path, otherwise: int) -> int:
    """How many episodes the rollout file ``path`` holds (``otherwise`` if it cannot be read)."""
    from gan_envs.datasets import DatasetError, RolloutReader

    try:
        with RolloutReader(path) as reader:
            return reader.num_episodes
    except (DatasetError, OSError):
        return otherwise


def _cmd_info(args: argparse.Namespace) -> int:
    from gan_envs.info import dataset_info, format_info

    if not args.path:  # Path("") is "." (it said ". is a folder")
        raise CommandError("an empty DATA.h5 argument; pass the path of a rollout .h5 file")
    info = dataset_info(args.path)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from gan_envs.datasets import verify

    if not args.path:  # Path("") is "." (it said ". is a folder")
        raise CommandError("an empty DATA.h5 argument; pass the path of a rollout .h5 file")
    report = verify(args.path)  # a missing path, a folder or a pipe: one line, exit 2
    print(report)
    return 0 if report.ok else 1


def _frame_source(args: argparse.Namespace):
    """The training frames: one dataset file, or live environments with ``--source env``."""
    from gan_envs.trainers.data import DatasetFrameSource, EnvFrameSource

    if args.source == "env":
        from gan_envs.registration import resolve_env_id

        for text in args.inputs:
            if _is_dataset_path(text):
                raise CommandError(f"{text} is a dataset file, not an environment id; drop "
                                   "--source env to train on it")
        if args.in_memory:
            raise CommandError("--in-memory loads a dataset into RAM, and live environments "
                               "(--source env) have none; drop --in-memory")
        if args.env:
            raise CommandError("--env picks games of a dataset; with --source env the "
                               "environment ids themselves are the games: drop --env")
        if args.size is not None and not 1 <= args.size <= 1024:
            raise CommandError(f"--size must be in [1, 1024] (the frame side of live "
                               f"environments), got {args.size:,}")
        return EnvFrameSource([resolve_env_id(e) for e in args.inputs],
                              size=64 if args.size is None else args.size, seed=args.seed)
    if args.size is not None:
        raise CommandError(f"--size {args.size} sets the frame size of live environments "
                           "(--source env); a dataset's frames keep the size they were "
                           "collected at (gan-envs collect --size)")
    if len(args.inputs) != 1:
        raise CommandError(f"train gan reads one dataset file, got {args.inputs}; "
                           "use --source env for environment ids")
    return DatasetFrameSource(args.inputs[0], env_ids=args.env, in_memory=args.in_memory)


def _cmd_train_gan(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gan_envs.trainers.gan import GanConfig, train_gan

    config = GanConfig(
        iterations=args.iterations, recipe=args.recipe, arch=args.arch,
        batch_size=args.batch_size, loss=args.loss, lr_d=args.lr_d, lr_g=args.lr_g,
        spectral_norm=args.spectral_norm, ema_decay=args.ema, diffaugment=args.diffaugment,
        width=args.width, d_width=args.d_width, seed=args.seed, sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every, channels_last=args.channels_last,
        conditional=args.conditional, bf16=args.bf16, mbstd_group=args.mbstd_group,
        diversity=args.diversity, pack=args.pack, r1=args.r1, r2=args.r2,
        template=args.template,
        template_lr=args.template_lr, modes=args.modes, g_head=args.g_head,
        g_norm=args.g_norm,
        lr_decay=args.lr_decay,
        env_shares=None if args.env_shares is None else tuple(args.env_shares),
        template_mask=args.template_mask, template_gate=args.template_gate,
        template_mask_init=args.template_mask_init, standing_stats=args.standing_stats,
    )
    _check_new_run_dir(args.out)
    if args.resume:
        _check_typed_defaults(args, config)
    source = _frame_source(args)
    bars: list[tqdm] = []  # made at the first iteration, after the checks passed

    def progress(iteration: int, metrics: dict[str, float]) -> None:
        if not bars:
            bars.append(tqdm(total=args.iterations, initial=iteration - 1, unit="it",
                             dynamic_ncols=True, desc="train gan"))
        bars[0].update(1)
        bars[0].set_postfix({k: f"{v:.3f}" for k, v in metrics.items()}, refresh=False)

    try:
        summary = train_gan(config, source, args.out, resume=args.resume, progress=progress)
    except KeyboardInterrupt:
        print(f"\ngan-envs: interrupted; a checkpoint is in {args.out}. Continue with:\n"
              f"  {_resume_command(args.argv)}", file=sys.stderr)
        return 130
    finally:
        for bar in bars:
            bar.close()
        close = getattr(source, "close", None)
        if close is not None:
            close()
    print(f"trained {summary.iterations} iterations ({summary.iterations_per_second:.2f} it/s) "
          f"into {summary.run_dir}")
    for label, path in (("last grid", summary.last_grid), ("video", summary.video),
                        ("checkpoint", summary.checkpoint)):
        if path is not None:
            print(f"  {label}: {path}")
    return 0


_GAN_FIELDS_OF_OPTIONS = {"ema": "ema_decay"}


def _check_typed_defaults(args: argparse.Namespace, config: Any) -> None:
    """Refuse ``--resume`` with a setting typed at its default value that the run was trained
    with another value of (the library cannot tell a typed default from an absent option)."""
    import dataclasses

    from gan_envs.trainers.gan import _RESUMABLE_CHANGES, GanConfig

    try:  # the run's resolved settings, as train_gan wrote them (its checkpoint is larger)
        saved = json.loads((Path(args.out) / "config.json").read_text())
    except (OSError, ValueError):
        return  # train_gan says what is missing or damaged
    typed = {token.split("=", 1)[0] for token in args.argv if token.startswith("--")}
    defaults = {f.name: f.default for f in dataclasses.fields(GanConfig)}
    for action in args.command_parser._actions:
        field = _GAN_FIELDS_OF_OPTIONS.get(action.dest, action.dest)
        if not typed & set(action.option_strings) or field in _RESUMABLE_CHANGES \
                or field not in defaults or defaults[field] is None or field not in saved:
            continue
        asked = getattr(config, field)
        if asked == defaults[field] and asked != saved[field]:
            raise CommandError(f"{args.out} was trained with {field}={saved[field]!r}, not "
                               f"{asked!r}; resume with the same settings (only --iterations "
                               "and the output intervals may change)")


def _parse_set(items: Sequence[str]) -> dict[int, float]:
    values = {}
    for item in items:
        dim, sep, value = item.partition("=")
        try:
            number, given = int(dim), _finite_float(value)
        except (ValueError, argparse.ArgumentTypeError):
            raise CommandError(f"--set takes DIM=VALUE with a finite VALUE (e.g. 3=1.5), got "
                               f"{item!r}") from None
        if not sep:
            raise CommandError(f"--set takes DIM=VALUE (e.g. 3=1.5), got {item!r}")
        if number in values:  # the last one silently won
            raise CommandError(f"--set gives dimension {number} twice ({number}={values[number]:g} "
                               f"and {item}); give each DIM once")
        values[number] = given
    return values


def _cmd_sample(args: argparse.Namespace) -> int:
    from gan_envs.images import check_png_path, make_grid, save_png
    from gan_envs.trainers import sampling

    check_png_path(args.out)
    _check_run_dir(args.run_dir)
    _check_sample_options(args)
    seed = 0 if args.seed is None else args.seed
    steps = 8 if args.sweep_steps is None else args.sweep_steps

    if args.sweep is not None:
        images = sampling.sweep(args.run_dir, args.sweep,
                                -3.0 if args.sweep_from is None else args.sweep_from,
                                3.0 if args.sweep_to is None else args.sweep_to,
                                steps, seed=seed, env=args.env, ema=args.ema)
        nrow = len(images)
    elif args.interpolate is not None:
        images = sampling.interpolate(args.run_dir, *args.interpolate, steps=steps,
                                      env=args.env, ema=args.ema)
        nrow = len(images)
    else:
        n = 64 if args.n is None else args.n
        if n > sampling.MAX_SAMPLES:
            raise CommandError(f"--n {n} is more than one grid holds (at most "
                               f"{sampling.MAX_SAMPLES}); for more frames call "
                               "gan_envs.trainers.sampling.sample in batches")
        images = sampling.sample(args.run_dir, n=n, seed=seed, latent=args.latent or "normal",
                                 set_dims=_parse_set(args.set or []), env=args.env,
                                 ema=args.ema)
        nrow = 8
    if images.ndim != 4:
        raise CommandError(f"{args.run_dir} generates vectors {images.shape[1:]}, not images; "
                           "use gan_envs.trainers.sampling.sample() for them")
    grid = make_grid(images, nrow=nrow, upscale=args.upscale)
    path = save_png(args.out, grid)
    print(f"wrote {path} ({len(images)} images)")
    return 0


#: the options each kind of ``sample`` output reads (the others were ignored, exit 0)
_SAMPLE_OPTIONS = {
    "a grid": {"--n": "n", "--seed": "seed", "--latent": "latent", "--set": "set"},
    "a --sweep strip": {"--seed": "seed", "--from": "sweep_from", "--to": "sweep_to",
                        "--steps": "sweep_steps"},
    "an --interpolate strip": {"--steps": "sweep_steps"},
}


def _check_sample_options(args: argparse.Namespace) -> None:
    """Refuse options the chosen output does not read (``--steps`` for a grid, ``--n`` for a
    sweep, ...) instead of ignoring them."""
    if args.sweep is not None and args.interpolate is not None:
        raise CommandError("--sweep and --interpolate each make a strip; give one of them")
    kind = ("a --sweep strip" if args.sweep is not None else
            "an --interpolate strip" if args.interpolate is not None else "a grid")
    reads = _SAMPLE_OPTIONS[kind]
    every = {option: dest for options in _SAMPLE_OPTIONS.values()
             for option, dest in options.items()}
    for option, dest in every.items():
        if getattr(args, dest) is not None and option not in reads:
            takes = ", ".join(reads)
            other = " or ".join(k for k, options in _SAMPLE_OPTIONS.items() if option in options)
            raise CommandError(f"{option} does not apply to {kind} (it reads {takes}); drop "
                               f"{option}, or make {other}")


def _check_run_dir(run_dir: str) -> None:
    """A RUN_DIR argument that names a file (a dataset, a checkpoint) is one line saying so."""
    if Path(run_dir).is_file():
        raise CommandError(f"{run_dir} is a file; RUN_DIR is the folder a `gan-envs train` "
                           f"run wrote (give {Path(run_dir).parent} if this is its checkpoint)"
                           if Path(run_dir).suffix == ".pt" else
                           f"{run_dir} is a file; RUN_DIR is the folder a `gan-envs train` run "
                           "wrote (its --out)")


def _check_new_run_dir(out: str) -> None:
    """``train --out`` must be a folder (new or a run's), not a file such as the dataset."""
    if Path(out).exists() and not Path(out).is_dir():
        raise CommandError(f"{out} is a file; --out is the run's folder: give a new name such "
                           f"as runs/{Path(out).stem or 'run'}")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from gan_envs.outputs import check_output_file, write_bytes_atomically
    from gan_envs.trainers.data import DatasetFrameSource
    from gan_envs.trainers.metrics import (
        MAX_DRAWS,
        MAX_EVAL_FRAMES,
        draws_table,
        evaluate,
        evaluate_draws,
        report_table,
    )
    from gan_envs.trainers.sampling import load_generator

    _check_run_dir(args.run_dir)
    if args.json:  # before the evaluation, and never over the dataset
        check_output_file(args.json, ".json", "reports")
    if not 10 <= args.n <= MAX_EVAL_FRAMES:
        raise CommandError(f"--n (frames per set) must be in [10, {MAX_EVAL_FRAMES:,}], got "
                           f"{args.n:,}")
    if args.draws > MAX_DRAWS:
        raise CommandError(f"--draws must be at most {MAX_DRAWS} (a draw takes ~12 s at --n "
                           f"1000), got {args.draws:,}")
    source = DatasetFrameSource(args.data)
    run_ids = list(load_generator(args.run_dir).env_ids or [])
    if run_ids and set(run_ids) < set(source.env_ids):  # a run trained with --env: its games
        source.close()
        source = DatasetFrameSource(args.data, env_ids=run_ids)
        print(f"  scoring on the run's games of {args.data}: {', '.join(run_ids)}",
              file=sys.stderr)
    options = dict(n=args.n, ema=args.ema, classifier_steps=args.classifier_steps,
                   progress=lambda stage: print(f"  {stage}", file=sys.stderr))
    try:
        if args.draws > 1:  # seeds seed, seed + 1, ...: the median over the draws
            report = evaluate_draws(args.run_dir, source,
                                    range(args.seed, args.seed + args.draws), **options)
        else:
            report = evaluate(args.run_dir, source, seed=args.seed, **options)
    finally:
        source.close()
    print(draws_table(report) if args.draws > 1 else report_table(report))
    if args.json:
        write_bytes_atomically(args.json, json.dumps(report, indent=2).encode())
        print(f"wrote {args.json}")
    return 0


# WorldModelConfig fields that `train world-model` sets from an option of the same name.
_WM_OPTIONS = ("vae_epochs", "vae_max_steps", "mdrnn_epochs", "mdrnn_max_steps", "population",
               "generations", "rollouts", "rollout_steps", "max_episodes", "vae_lr",
               "moving_weight", "select_rollouts", "eval_rollouts", "temperature", "workers",
               "seed", "env_id", "controller_env")


def _wm_option_names(message: str) -> str:
    """A WorldModelError about config fields, with the fields the CLI sets named as its options:
    ``vae_lr must ...`` -> ``--vae-lr must ...``, ``trained with vae_lr=0.001`` -> ``trained
    with --vae-lr 0.001``, ``fresh_seeds=False`` -> ``--fixed-seeds``."""
    import re

    message = re.sub(r"\bfresh_seeds=(True|False)",
                     lambda m: "--fixed-seeds" if m[1] == "False" else "no --fixed-seeds", message)
    for name in _WM_OPTIONS:
        option = "--" + name.replace("_", "-")
        message = re.sub(rf"\b{name}='?([^',;]*)'?", rf"{option} \1", message)
        message = re.sub(rf"^{name} ", f"{option} ", message)
    return message


#: the ``train world-model`` options that only one stage reads (typed for a call that does not
#: run that stage, they were ignored, exit 0). --seed, --quick and --max-episodes are read by
#: every stage; --workers, like --threads, says how to run, not what to train: taken with any.
_WM_STAGE_OPTIONS = {
    "vae": {"--vae-epochs": "vae_epochs", "--vae-max-steps": "vae_max_steps",
            "--vae-lr": "vae_lr", "--moving-weight": "moving_weight"},
    "mdrnn": {"--mdrnn-epochs": "mdrnn_epochs", "--mdrnn-max-steps": "mdrnn_max_steps"},
    "controller": {"--controller-env": "controller_env", "--env-id": "env_id",
                   "--temperature": "temperature", "--population": "population",
                   "--generations": "generations", "--rollouts": "rollouts",
                   "--rollout-steps": "rollout_steps", "--fixed-seeds": "fixed_seeds",
                   "--select-rollouts": "select_rollouts", "--eval-rollouts": "eval_rollouts"},
}


def _check_wm_stage_options(args: argparse.Namespace) -> None:
    """Refuse an option typed for a stage that ``--stage`` does not run (``--stage vae
    --temperature 1.5``) instead of ignoring it. A typed value is one that is not None (the
    parser's defaults are None; --fixed-seeds is a flag: True when typed)."""
    runs = ("vae", "mdrnn", "controller") if args.stage == "all" else (args.stage,)
    for stage, options in _WM_STAGE_OPTIONS.items():
        if stage in runs:
            continue
        for option, dest in options.items():
            value = getattr(args, dest)
            if value is not None and value is not False:
                raise CommandError(f"{option} is read by the {stage} stage; drop it or pass "
                                   f"--stage {stage}|all")


def _cmd_train_world_model(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from gan_envs.datasets import RolloutReader
    from gan_envs.trainers.world_model import (
        WorldModelConfig,
        WorldModelError,
        check_evaluation,
        evaluate_world_model,
        metrics_table,
        stage_config,
        train_world_model,
    )

    _check_wm_stage_options(args)
    if args.temperature is not None and args.controller_env != "dream":
        raise CommandError("--temperature is tau of M's dream, where only --controller-env dream "
                           "plays: add --controller-env dream or leave --temperature out")

    # options left out take WorldModelConfig's defaults (controller_env 'real', workers 2, ...)
    # (--seed and --env-id are passed below: the parser gives them values of their own)
    overrides = {k: getattr(args, k) for k in _WM_OPTIONS
                 if k not in ("seed", "env_id") and getattr(args, k) is not None}
    _check_new_run_dir(args.out)
    if args.stage in ("mdrnn", "controller") and (Path(args.out) / "vae.pt").is_file():
        # V's options are refused here (V does not run), and V's settings must match vae.pt's:
        # take them from it (a V trained with --vae-lr 1e-4 needed it typed at every stage)
        try:
            trained = stage_config(args.out, "vae")
        except WorldModelError as error:
            raise CommandError(str(error)) from None
        overrides.update({dest: getattr(trained, dest)
                          for dest in _WM_STAGE_OPTIONS["vae"].values()})
    config = WorldModelConfig(seed=args.seed, quick=args.quick, env_id=args.env_id,
                              fresh_seeds=not args.fixed_seeds, **overrides)
    bars: dict[str, tqdm] = {}

    def progress(stage: str, step: int, metrics: dict[str, float]) -> None:
        if "total" in metrics:  # a stage begins
            bars[stage] = tqdm(total=int(metrics["total"]), initial=step, desc=stage,
                               dynamic_ncols=True, unit="step")
            return
        bar = bars.get(stage)
        if bar is not None:
            bar.update(step - bar.n)
            bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)

    try:
        config.resolved()
    except WorldModelError as error:
        raise CommandError(_wm_option_names(str(error))) from None
    reader = RolloutReader(args.data)
    try:
        if args.evaluate:  # no held-out episodes is an error now, not after the training
            check_evaluation(config, reader)
        try:
            summary = train_world_model(config, reader, args.out, stage=args.stage,
                                        resume=args.resume, progress=progress)
        except WorldModelError as error:
            raise CommandError(_wm_option_names(str(error))) from None
        for bar in bars.values():
            bar.close()
        for name, stage in summary.stages.items():
            print(f"{name}: step {stage.steps}/{stage.total} in {stage.seconds:.0f} s")
        print(f"trained {', '.join(summary.stages)} into {args.out}")
        if args.evaluate:  # typed --eval-rollouts / --workers count even where C did not run
            results = evaluate_world_model(args.out, reader, rollouts=args.eval_rollouts,
                                           workers=args.workers)
            print(metrics_table(results))
            print(f"wrote {Path(args.out) / 'metrics.json'}")
    except KeyboardInterrupt:
        print(f"\ngan-envs: interrupted; checkpoints are in {args.out}. Continue with:\n"
              f"  {_resume_command(args.argv)}", file=sys.stderr)
        return 130
    finally:
        for bar in bars.values():
            bar.close()
        reader.close()
    return 0


def _cmd_dream(args: argparse.Namespace) -> int:
    from gan_envs.datasets import RolloutReader
    from gan_envs.trainers.world_model import dream

    _check_run_dir(args.run_dir)
    if args.episode is not None and not args.data:
        raise CommandError("--episode picks an episode of --data DATA.h5: add --data, or leave "
                           "--episode out to dream beside a live episode")
    reader = RolloutReader(args.data) if args.data else None
    try:
        frames = dream(args.run_dir, steps=args.steps, seed=args.seed,
                       temperature=args.temperature, source=reader,
                       start_episode=(args.episode or 0) if reader is not None else None,
                       out=args.out, fps=args.fps)
    finally:
        if reader is not None:
            reader.close()
    print(f"wrote {args.out} ({len(frames)} frames: real left, dream right)")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse without abbreviations: ``--wid 512`` is an error, not ``--width 512`` (a
    resumed run compares the options typed with the ones it was trained with, by full name).
    Sub-command parsers are built with this class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``gan-envs`` (one sub-command per job)."""
    parser = _Parser(
        prog="gan-envs",
        description="Turn Gymnasium environments into training data for GANs and world models.",
    )
    from gan_envs import __version__

    parser.add_argument("--version", action="version", version=f"gan-envs {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("list", help="list the registered GanAtari environment ids")
    p.add_argument("filter", nargs="?", help="only ids containing this text (any case)")
    p.set_defaults(func=_cmd_list)

    p = commands.add_parser(
        "preview", help="a PNG of environments (raw beside processed) or of a dataset",
        description="ENV_ID...: play a random agent in each environment and save raw screens "
                    "beside the processed observations, scaled up so a person can see them. "
                    "DATA.h5: a grid of random frames per environment of a dataset.",
    )
    p.add_argument("sources", nargs="+", metavar="ENV_ID|DATA.h5",
                   help="e.g. GanAtari/Breakout-v0, or one dataset file")
    p.add_argument("--out", default="preview.png", help="PNG to write (default: preview.png)")
    p.add_argument("--snapshots", type=_positive_int,
                   help="ENV_ID: frames per env (default 4, at most 64)")
    p.add_argument("--steps", type=_non_negative_int,
                   help="ENV_ID: random steps between snapshots (default 25, at most 10,000)")
    p.add_argument("--per-env", type=_positive_int,
                   help="DATA.h5: frames per environment (default 16, at most 1,024)")
    p.add_argument("--seed", type=_seed, default=0)
    p.set_defaults(func=_cmd_preview)

    p = commands.add_parser(
        "collect", help="collect rollouts from environments into one HDF5 dataset",
        description="Play a policy in every environment (num-envs copies each, in parallel) "
                    "and write one mixed dataset, balanced by steps. Ctrl-C keeps every "
                    "finished episode; --resume continues to the target.",
    )
    p.add_argument("env_ids", nargs="+", metavar="ENV_ID",
                   help="e.g. GanAtari/Breakout-v0 GanAtari/Pong-v0, or CartPole-v1")
    p.add_argument("--out", required=True, help="the HDF5 file to write")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--steps", type=_positive_int, help="total environment steps")
    target.add_argument("--episodes", type=_positive_int, help="total complete episodes")
    p.add_argument("--num-envs", type=_positive_int, default=8,
                   help="parallel copies of each environment (default 8)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--policy", default="random",
                   help="random (default) or MODULE:CALLABLE, see docs/collect.md")
    p.add_argument("--size", type=_positive_int,
                   help="GanAtari ids: frame size (default 64)")
    p.add_argument("--compression", choices=["gzip", "lzf", "none"], default=None,
                   help="lossless codec (default: gzip, see docs/dataset-format.md)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue an interrupted file")
    mode.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=_cmd_collect)

    p = commands.add_parser("info", help="what a dataset holds")
    p.add_argument("path", metavar="DATA.h5")
    p.add_argument("--json", action="store_true", help="print JSON for machines")
    p.set_defaults(func=_cmd_info)

    p = commands.add_parser(
        "verify", help="check a dataset's checksums, shapes and episode table",
        description="Decode every chunk (HDF5 checks each fletcher32 checksum) and check the "
                    "episode table. Exit status 0 when sound, 1 naming the first bad episode.",
    )
    p.add_argument("path", metavar="DATA.h5")
    p.set_defaults(func=_cmd_verify)

    train = commands.add_parser("train", help="train a GAN or a world model on a dataset")
    trainers = train.add_subparsers(dest="trainer", required=True, metavar="TRAINER")
    p = trainers.add_parser(
        "gan", help="train a GAN (DCGAN or MLP) on the frames of a dataset",
        description="Train a GAN on the frames of a dataset (or, with --source env, of live "
                    "environments as the tutorial does). Writes checkpoints, sample grids, "
                    "log.jsonl and (image runs) training.mp4 into --out; --resume continues. "
                    "See docs/gan.md.",
    )
    p.add_argument("inputs", nargs="+", metavar="DATA.h5|ENV_ID")
    p.add_argument("--out", required=True, help="the run directory")
    p.add_argument("--source", choices=["dataset", "env"], default="dataset")
    p.add_argument("--iterations", type=_positive_int, default=10_000)
    p.add_argument("--recipe", choices=["fast", "tutorial"], default="fast",
                   help="defaults for the options below (default: fast)")
    p.add_argument("--arch", choices=["dcgan", "mlp"], default="dcgan")
    p.add_argument("--batch-size", type=_positive_int)
    p.add_argument("--loss", choices=["bce", "hinge", "rpgan"])
    p.add_argument("--lr-d", type=_finite_float, help="discriminator learning rate")
    p.add_argument("--lr-g", type=_finite_float, help="generator learning rate")
    p.add_argument("--spectral-norm", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--ema", type=_finite_float, help="generator EMA decay (0: off)")
    p.add_argument("--standing-stats", type=_int, metavar="N",
                   help="latents the EMA generator runs to measure its BatchNorm statistics "
                        "before each grid and checkpoint (0: the EMA of G's running "
                        "statistics; fast: 1024)")
    p.add_argument("--diffaugment", help="'translation', 'color', both comma-separated, or ''")
    p.add_argument("--width", type=_positive_int, default=512, help="widest layer (default 512)")
    p.add_argument("--d-width", type=_positive_int,
                   help="the discriminator's widest layer (default: --width)")
    p.add_argument("--env", nargs="+", action="extend",
                   help="DATA.h5: train on frames of these env ids only (repeatable)")
    p.add_argument("--size", type=_positive_int,
                   help="frame size for --source env (default 64)")
    p.add_argument("--in-memory", action="store_true", help="DATA.h5: load it into RAM")
    p.add_argument("--sample-every", type=_positive_int, default=500)
    p.add_argument("--checkpoint-every", type=_positive_int, default=1000)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--conditional", action=argparse.BooleanOptionalAction, default=None,
                   help="condition G and D on the env label (default: on for the fast recipe "
                        "with two or more envs)")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast for the forward passes (a numerics change)")
    p.add_argument("--mbstd-group", type=_int, metavar="G",
                   help="minibatch-std feature in D over groups of G frames, or over each "
                        "game's frames for a conditional D (0: off; default: the recipe's)")
    p.add_argument("--diversity", type=_finite_float, metavar="W",
                   help="weight of the diversity term that pushes same-label latent pairs "
                        "apart up to the real frames' spread (0: off; default: the recipe's)")
    p.add_argument("--pack", type=_positive_int, metavar="M",
                   help="PacGAN: D judges packs of M frames of one game stacked along the "
                        "channels (1: off; default: the recipe's)")
    p.add_argument("--r1", type=_finite_float, metavar="GAMMA",
                   help="weight of the R1 gradient penalty on real frames, applied every 16 "
                        "D steps (0: off; default: the recipe's)")
    p.add_argument("--r2", type=_finite_float, metavar="GAMMA",
                   help="weight of the R2 gradient penalty on generated frames, applied with "
                        "R1 every 16 D steps (0: off, both recipes)")
    p.add_argument("--template", type=_int, metavar="K",
                   help="K learned output templates per game (started at the medians of K "
                        "clusters of its screens) that G draws its differences from (0: off; "
                        "default: the recipe's)")
    p.add_argument("--lr-decay", type=_finite_float, metavar="F",
                   help="let both learning rates fall linearly to 0 over the last fraction F of "
                        "the iterations (0: constant; default: the recipe's)")
    p.add_argument("--env-shares", type=_share, nargs="+", action="extend", metavar="S",
                   help="each env's share of the training batches, in the dataset's env order "
                        "(e.g. 1 2 1; normalised); samples keep the data's mix (default: the "
                        "data's proportions)")
    p.add_argument("--template-mask", action=argparse.BooleanOptionalAction, default=None,
                   help="a mask channel in G that blends its frames with their template, so "
                        "flat backgrounds can stay exact (needs templates; default: the "
                        "recipe's: on in fast with DCGAN templates, --no-template-mask "
                        "turns it off)")
    p.add_argument("--template-gate", type=_finite_float, default=0.0, metavar="G",
                   help="a fixed blend of G's frames with their template, t + G * (frame - t), "
                        "in place of the recipe's mask (needs templates; 0: off, the default)")
    p.add_argument("--template-mask-init", type=_finite_float, default=0.0, metavar="A",
                   help="the template mask's starting logit: it starts sigmoid(A) open "
                        "(-2: about 0.12; 0, the default: about one half; needs the mask)")
    p.add_argument("--template-lr", type=_finite_float, metavar="X",
                   help="the templates' learning rate as a multiple of G's (0: fixed; "
                        "default: the recipe's)")
    p.add_argument("--modes", type=_int, metavar="K",
                   help="split each game into K modes (k-means clusters of its screens, e.g. "
                        "AirRaid's two backgrounds) and condition G and D on them (0: off; "
                        "default: the recipe's)")
    p.add_argument("--g-head", choices=["transpose", "pixelshuffle"],
                   help="the DCGAN generator's last layer: the book's transposed convolution "
                        "or a 3x3 convolution and a pixel shuffle (default: the recipe's)")
    p.add_argument("--g-norm", choices=["batch", "conditional"],
                   help="the DCGAN generator's normalisation: the book's BatchNorm, or a gain "
                        "and bias per game (and mode) (default: the recipe's, batch)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    _add_threads(p)
    p.set_defaults(func=_cmd_train_gan, command_parser=p)

    p = trainers.add_parser(
        "world-model", help="train World Models (VAE, MDN-RNN, CMA-ES controller) on a dataset",
        description="Train V (a conv VAE), M (an MDN-RNN on V's latents and the actions) and C "
                    "(a linear controller trained by CMA-ES in the real env or in M's dream) "
                    "on a dataset of 64x64 frames with actions. An option that only a stage "
                    "--stage does not run reads is refused; a later stage takes V's settings "
                    "from vae.pt. See docs/world-models.md.",
    )
    p.add_argument("data", metavar="DATA.h5")
    p.add_argument("--out", required=True, help="the run directory")
    p.add_argument("--stage", choices=["vae", "mdrnn", "controller", "all"], default="all")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes for every stage (smoke test; V and M stop after 15 batches "
                        "unless --vae-max-steps / --mdrnn-max-steps say otherwise)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--env-id", help="the env C plays (default: the dataset's only env id)")
    p.add_argument("--controller-env", choices=["real", "dream"],
                   help="where controller candidates play (default real)")
    p.add_argument("--workers", type=_non_negative_int,
                   help="processes playing controller candidates (default 2, at most 64; "
                        "0: in this process)")
    p.add_argument("--temperature", type=_finite_float,
                   help="tau of M's sampling with --controller-env dream (default 1)")
    p.add_argument("--vae-epochs", type=_positive_int)
    p.add_argument("--vae-lr", type=_finite_float, help="V's Adam learning rate (default 1e-3)")
    p.add_argument("--moving-weight", type=_finite_float,
                   help="V's reconstruction weight of the pixels that differ from the dataset's "
                        "background (default 10; 1: the plain loss)")
    p.add_argument("--vae-max-steps", type=_non_negative_int, metavar="N",
                   help="stop V after N batches (0: no cap; default: none, --quick: 15)")
    p.add_argument("--mdrnn-epochs", type=_positive_int)
    p.add_argument("--mdrnn-max-steps", type=_non_negative_int, metavar="N",
                   help="stop M after N batches (0: no cap; default: none, --quick: 15)")
    p.add_argument("--population", type=_positive_int)
    p.add_argument("--generations", type=_non_negative_int)
    p.add_argument("--rollouts", type=_positive_int, help="episodes per candidate")
    p.add_argument("--fixed-seeds", action="store_true",
                   help="every CMA-ES generation plays the same seeds (default: new ones)")
    p.add_argument("--select-rollouts", type=_non_negative_int,
                   help="episodes on the selection seeds that pick the controller kept "
                        "(default 8; 0: the best training fitness)")
    p.add_argument("--eval-rollouts", type=_positive_int,
                   help="episodes of the evaluation (--evaluate; default 8)")
    p.add_argument("--rollout-steps", type=_positive_int, help="step cap of one episode")
    p.add_argument("--max-episodes", type=_non_negative_int, help="use the first N episodes")
    p.add_argument("--evaluate", action="store_true",
                   help="then print the metric table and write metrics.json")
    _add_threads(p)
    p.set_defaults(func=_cmd_train_world_model)

    p = commands.add_parser(
        "dream", help="a video of an imagined rollout beside a real one",
        description="Decode M's imagined rollout with V beside a real rollout from the same "
                    "start and actions: a dataset episode (--data, --episode) or a live episode "
                    "of the run's env played by its controller.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", default="dream.mp4")
    p.add_argument("--steps", type=_positive_int, default=200)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--temperature", type=_finite_float, default=1.0)
    p.add_argument("--data", metavar="DATA.h5", help="take the real side from this dataset")
    p.add_argument("--episode", type=_non_negative_int,
                   help="the episode of --data to start from (default 0)")
    p.add_argument("--fps", type=_finite_float, default=15.0)
    _add_threads(p)
    p.set_defaults(func=_cmd_dream)

    p = commands.add_parser(
        "sample", help="a grid of GAN samples, a latent sweep or an interpolation",
        description="Sample a trained GAN. Latent exploration: --latent zeros|ones|normal, "
                    "--set DIM=VALUE, --sweep DIM (a strip from --from to --to), "
                    "--interpolate SEED_A SEED_B.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", default="samples.png")
    p.add_argument("--n", type=_positive_int, help="grid: samples (default 64, at most 4,096)")
    p.add_argument("--seed", type=_seed, help="grid or --sweep: latents' seed (default 0)")
    p.add_argument("--latent", choices=["normal", "zeros", "ones"],
                   help="grid: the latents (default normal)")
    p.add_argument("--set", nargs="+", action="extend", metavar="DIM=VALUE",
                   help="grid: fix latent dimensions (repeatable; each DIM once)")
    p.add_argument("--sweep", type=_int, metavar="DIM",
                   help="a strip sweeping latent dimension DIM")
    p.add_argument("--from", dest="sweep_from", type=_finite_float,
                   help="--sweep: first value (default -3)")
    p.add_argument("--to", dest="sweep_to", type=_finite_float,
                   help="--sweep: last value (default 3)")
    p.add_argument("--steps", dest="sweep_steps", type=_positive_int,
                   help="--sweep or --interpolate: frames in the strip (default 8)")
    p.add_argument("--interpolate", nargs=2, type=_seed, metavar=("SEED_A", "SEED_B"),
                   help="a strip from SEED_A's latent to SEED_B's")
    p.add_argument("--upscale", type=_positive_int, default=2)
    p.add_argument("--env", metavar="ENV_ID",
                   help="conditional runs: draw this env only (an env id or a unique part of one)")
    _add_ema_choice(p)
    _add_threads(p)
    p.set_defaults(func=_cmd_sample)

    p = commands.add_parser(
        "evaluate", help="score a GAN run against a dataset (offline FD, KID, precision/recall)",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("data", metavar="DATA.h5")
    p.add_argument("--n", type=_positive_int, default=1000, help="frames per set")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--classifier-steps", type=_positive_int, default=600,
                   help="training steps of the feature network (cached in RUN_DIR)")
    p.add_argument("--draws", type=_positive_int, default=1,
                   help="evaluate at seeds SEED, SEED+1, ... and report the median over this "
                        "many draws (steadier where a few frames lie far from the rest)")
    p.add_argument("--json", metavar="REPORT.json", help="also write the report as JSON")
    _add_ema_choice(p)
    _add_threads(p)
    p.set_defaults(func=_cmd_evaluate)
    return parser


def _add_ema_choice(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                   help="use the run's EMA generator when it kept one (--no-ema: the raw "
                        "generator; with the fast recipe its distance is higher, see docs/gan.md)")


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_positive_int, metavar="N",
                   help="torch CPU threads (default: torch's, one per core); use 1 when other "
                        "jobs share the cores: two threads on a busy core can run ~17x slower")


def _whole(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what}, got {text!r}") from None


def _int(text: str) -> int:
    return _whole(text, "must be a whole number")


def _positive_int(text: str) -> int:
    value = _whole(text, "must be a whole number >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seed(text: str) -> int:
    value = _whole(text, "a seed is a whole number in [0, 2**63)")
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"a seed must lie in [0, 2**63), got {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _share(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes one number per env, separated by spaces "
                                         f"(e.g. --env-shares 1 2 1), got {text!r}") from None


def _non_negative_int(text: str) -> int:
    value = _whole(text, "must be a whole number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is meant for the user (printed as one line)."""
    import gymnasium as gym

    # ValueError covers DatasetError, CollectError, PolicyError, UnknownEnvironmentError,
    # WorldModelError and the trainers' argument checks: all raise one-line messages.
    return (CommandError, ValueError, OSError, gym.error.Error)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gan-envs``; return the exit status (0 success, 2 a user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    from gan_envs.registration import quiet_emulator_banner

    quiet_emulator_banner()  # ALE's start-up banner: stderr is for errors and progress
    func: Callable[[argparse.Namespace], int] = args.func
    threads = getattr(args, "threads", None)
    if threads:  # for this command only (main() may run inside a larger program)
        import torch

        threads_before = torch.get_num_threads()
        torch.set_num_threads(threads)
    try:
        return func(args)
    except KeyboardInterrupt:
        print("gan-envs: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (`gan-envs info x | head`)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 1
    except _user_errors() as error:
        message = first_line(error, repr(error))
        print(f"gan-envs: {message}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if threads:
            torch.set_num_threads(threads_before)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
