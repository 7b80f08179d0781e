"""What every benchmark script does around its ``main()``, run from the command line.

Imported under ``if __name__ == "__main__":`` (the scripts' folder is then on ``sys.path``;
tests that load a script as a module never run it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from gan_envs._text import first_line


def run_script(main: Callable[[], object]) -> None:
    """Run ``main``; the library's one-line errors (a missing or wrong ``--data``, a bad
    ``--variant``) end the script with that line and exit status 1, as ``gan-envs`` does."""
    try:
        main()
    except (OSError, ValueError) as error:
        sys.exit(f"{Path(sys.argv[0]).name}: {first_line(error)}")
