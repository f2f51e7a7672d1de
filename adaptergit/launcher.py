"""How git finds adaptergit: the shell text of the hook shims and of the diff driver's command.

Git runs hooks and ``textconv`` commands long after ``adaptergit init``, from environments that
may not have adaptergit on PATH (a venv that is not activated, an IDE's git, a GUI client), or
after adaptergit was removed. So the text git runs looks for adaptergit itself, in order:

1. the Python interpreter that installed it (``sys.executable``), if that interpreter and the
   adaptergit package it imported are both still there: ``PYTHON -m adaptergit ...``;
2. ``adaptergit`` on PATH;
3. neither: one line on stderr saying so, and git goes on (a hook does nothing and exits 0, the
   diff driver shows the file as it is).

Nothing here imports more than the standard library: the hook entry point loads this module.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The file that must exist for `python -m adaptergit` to work with the interpreter that wrote a shim.
PACKAGE_MAIN = Path(__file__).resolve().parent / "__main__.py"


def quote(text: str | Path) -> str:
    """`text` quoted for a POSIX shell (``shlex.quote``): paths may hold spaces, quotes, any byte."""
    import shlex

    return shlex.quote(str(text))


def interpreter() -> str:
    """The interpreter running adaptergit now, as found (a venv's ``bin/python`` stays that link,
    so that it still finds the venv's packages)."""
    return sys.executable or "python3"


def find_lines(command: str, *, missing: str, fallback: str) -> list[str]:
    """Shell lines that run ``adaptergit COMMAND`` with the adaptergit found as the module says.

    Args:
        command: the arguments after ``adaptergit``, already shell text (``hook pre-commit "$@"``).
        missing: what to say on stderr when no adaptergit is found (after ``adaptergit: ``);
            it may use ``$py`` for the interpreter that is gone.
        fallback: the shell line that runs then (``exit 0``, ``exec cat "$1"``).

    Returns:
        Lines of POSIX shell; the first two ``exec`` adaptergit, so whatever follows them runs
        only when neither is there.
    """
    return [
        f"py={quote(interpreter())}",
        f'if [ -x "$py" ] && [ -f {quote(PACKAGE_MAIN)} ]; then exec "$py" -m adaptergit {command}; fi',
        f"if command -v adaptergit >/dev/null 2>&1; then exec adaptergit {command}; fi",
        f'echo "adaptergit: {missing}" >&2',
        fallback,
    ]


def missing_text(what: str) -> str:
    """The one line said when adaptergit cannot be found, for `find_lines` (shell text in "...")."""
    return f"not found (not in $py, not on PATH); {what}"


__all__ = ["PACKAGE_MAIN", "find_lines", "interpreter", "missing_text", "quote"]
