"""Regular expressions from untrusted configs, matched in bounded time.

PEFT lets ``target_modules`` (and the keys of ``rank_pattern`` / ``alpha_pattern``) be regular
expressions, and an adapter downloaded from anywhere may hold one that backtracks for ever
(``(a*)*b`` against ``aaaa...``). Python's ``re`` cannot be interrupted, so these are matched with
the ``regex`` package, whose matching functions take a timeout, against one time budget per check
(``limits.regex_timeout`` in ``.adaptergit.toml``).
"""

from __future__ import annotations

import time
from typing import Any


class PatternTimeout(Exception):
    """The time budget ran out: the check that used the pattern is skipped."""


class PatternError(Exception):
    """The pattern is not a valid regular expression."""


class BoundedPattern:
    """A compiled pattern whose matches share one time budget.

    Args:
        pattern: the regular expression (Python ``re`` syntax).
        budget: seconds all matches with this object may take together.

    Raises:
        PatternError: `pattern` does not compile.
    """

    def __init__(self, pattern: str, budget: float) -> None:
        import regex  # only when a config holds a pattern

        self._regex: Any = regex
        try:
            self._compiled = regex.compile(pattern)
        except (regex.error, RecursionError, OverflowError, ValueError) as exc:
            raise PatternError(str(exc)) from None
        self._deadline = time.monotonic() + budget

    def _remaining(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise PatternTimeout
        return left

    def fullmatch(self, text: str) -> bool:
        """Whether the whole of `text` matches.

        Raises:
            PatternTimeout: the budget ran out.
        """
        try:
            return self._compiled.fullmatch(text, timeout=self._remaining()) is not None
        except TimeoutError:
            raise PatternTimeout from None

    def match(self, text: str) -> Any:
        """The match at the start of `text`, or None.

        Raises:
            PatternTimeout: the budget ran out.
        """
        try:
            return self._compiled.match(text, timeout=self._remaining())
        except TimeoutError:
            raise PatternTimeout from None


__all__ = ["BoundedPattern", "PatternError", "PatternTimeout"]
