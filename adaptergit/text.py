"""Text for people: sizes in human units, and untrusted strings made safe to print.

Used by the CLI's rendering, the git diff driver and error messages alike, so the rules are the
same everywhere. Nothing here imports anything heavy: the hooks and the diff driver use it.
"""

from __future__ import annotations

import re

_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def human_size(n: int) -> str:
    """A byte count in SI units, as ``ls -h --si`` and DVC print it: ``512 B``, ``5.1 KB``.

    Args:
        n: a number of bytes (>= 0).

    Never rounds a non-zero size to ``0.0``: anything under 1 KB is given in bytes.
    """
    size = float(n)
    for unit in _UNITS:
        if size < 1000 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover - the loop always returns


# C0 and C1 control characters, DEL, and the Unicode bidirectional overrides and isolates that
# can make a terminal show text other than what is there (CVE-2021-42574, "Trojan Source").
_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_ONE_LINE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, one_line: bool = False) -> str:
    """`text` with control characters escaped (``\\x1b``, ``\\u202e``), safe to print.

    Strings that come from a registry someone else wrote (commit and tag messages, configs,
    manifests) may hold terminal escape sequences; printed raw they can retitle the window,
    clear the screen or hide text. Tabs and newlines are kept unless `one_line`, which also
    escapes them. Lone surrogates (from undecodable bytes) become U+FFFD.

    Args:
        text: any string.
        one_line: escape line breaks and tabs too, for text that must stay on one line.
    """
    if not text.isascii():
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    pattern = _UNSAFE_ONE_LINE if one_line else _UNSAFE
    return pattern.sub(_escape, text)


__all__ = ["human_size", "printable"]
