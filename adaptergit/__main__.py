"""The ``adaptergit`` command and ``python -m adaptergit``."""

from __future__ import annotations

import sys


def run() -> None:
    """Entry point; git hooks take a short path that does not load click (~20 ms a hook)."""
    argv = sys.argv[1:]
    if len(argv) >= 2 and argv[0] == "hook":
        from adaptergit.ops.hooks import main as hook_main

        sys.exit(hook_main(argv[1], argv[2:]))
    from adaptergit.cli import run as cli_run

    cli_run()


if __name__ == "__main__":
    run()
