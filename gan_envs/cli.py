"""The ``gan-envs`` command line: argument parsing and printing only.

Every command calls a library function that the tests also call directly. Errors a user can
act on (an unknown environment id, a missing file, a bad argument) print one line,
``gan-envs: <what> ...; <fix>``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def _cmd_list(args: argparse.Namespace) -> int:
    from gan_envs.registration import gan_atari_ids

    ids = gan_atari_ids(args.filter)
    if not ids:
        raise CommandError(f"no GanAtari environment matches {args.filter!r}")
    print("\n".join(ids))
    return 0


def _cmd_preview(args: argparse.Namespace) -> int:
    from gan_envs.images import save_png
    from gan_envs.preview import env_preview

    image = env_preview(args.env_ids, snapshots=args.snapshots, steps_between=args.steps,
                        seed=args.seed)
    path = save_png(args.out, image)
    print(f"wrote {path} ({image.shape[1]}x{image.shape[0]})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``gan-envs`` (one sub-command per job)."""
    parser = argparse.ArgumentParser(
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
        "preview", help="raw frames beside processed ones, as a PNG",
        description="Play a random agent in each environment and save raw screens beside "
                    "the processed observations, scaled up so a person can see them.",
    )
    p.add_argument("env_ids", nargs="+", metavar="ENV_ID", help="e.g. GanAtari/Breakout-v0")
    p.add_argument("--out", default="preview.png", help="PNG to write (default: preview.png)")
    p.add_argument("--snapshots", type=_positive_int, default=4, help="frames per env")
    p.add_argument("--steps", type=_non_negative_int, default=25,
                   help="random steps between snapshots")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_preview)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is meant for the user (printed as one line)."""
    import gymnasium as gym

    from gan_envs.registration import UnknownEnvironmentError

    return (CommandError, UnknownEnvironmentError, gym.error.Error, OSError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gan-envs``; return the exit status (0 success, 2 a user error)."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        print("gan-envs: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"gan-envs: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
