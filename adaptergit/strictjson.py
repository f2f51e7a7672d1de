"""Reading JSON that someone else wrote: bounded, strict, and failing with one line.

Manifests, adapter configs, metrics and pointers arrive with ``git clone`` and from trainers; a
bad one must fail as `InvalidInput` naming it, never as a ``RecursionError`` or a NaN that crashes
the YAML or the model card later. Strict means: RFC 8259 only (no ``NaN``/``Infinity``, which
Python's ``json`` accepts by default), no duplicate keys, no lone surrogates, bounded size and
nesting depth.
"""

from __future__ import annotations

import json
from typing import Any

from adaptergit.errors import InvalidInput

MAX_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64


class JsonError(InvalidInput):
    """A JSON document that is not acceptable; `source` names it, `reason` says why, `key` where."""

    def __init__(self, source: str, reason: str, key: str | None = None) -> None:
        self.source = source
        self.reason = reason
        self.key = key
        where = f" (key {key!r})" if key else ""
        super().__init__(f"{source}: {reason}{where}")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (RFC 8259 has no NaN or Infinity)")


class _Duplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__("duplicate key")
        self.key = key


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # a key came twice: find the first one that did
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _Duplicate(key)
            seen.add(key)
    return result


def depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), computed without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level) for child in children)
    return deepest


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def loads(
    raw: bytes | str,
    source: str,
    *,
    max_bytes: int = MAX_BYTES,
    max_depth: int | None = MAX_DEPTH,
    check_strings: bool = True,
) -> Any:
    """Parse `raw` strictly; raise `JsonError` naming `source` for anything unacceptable.

    Args:
        raw: the document, UTF-8 bytes or text.
        source: what to call it in errors, e.g. ``adapters/bot/manifest.json at 3f9c2a1``.
        max_bytes: the largest document accepted, in bytes.
        max_depth: the deepest nesting of arrays and objects accepted; None when the caller
            validates the structure itself (the parser's own recursion guard still applies).
        check_strings: refuse lone surrogates (``"\\ud800"``), which cannot be written as UTF-8.

    Raises:
        JsonError: not UTF-8, not JSON, NaN/Infinity, duplicate keys, too large or too deep.
    """
    if len(raw) > max_bytes:
        raise JsonError(source, f"larger than {max_bytes} bytes")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonError(source, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        value = json.loads(raw, parse_constant=_no_constants, object_pairs_hook=_pairs)
    except RecursionError:
        raise JsonError(source, "nested too deeply") from None
    except _Duplicate as exc:
        raise JsonError(source, "duplicate key", key=exc.key) from None
    except ValueError as exc:
        raise JsonError(source, f"not valid JSON ({exc})") from None
    if max_depth is not None and depth(value) > max_depth:
        raise JsonError(source, f"nested more than {max_depth} levels deep")
    # A lone surrogate can only arrive as an escape (valid UTF-8 cannot encode one).
    if check_strings and ("\\ud" in raw or "\\uD" in raw) and _has_lone_surrogate(value):
        raise JsonError(
            source, "holds a lone surrogate (\\ud800-\\udfff), which is not Unicode text"
        )
    return value


__all__ = ["MAX_BYTES", "MAX_DEPTH", "JsonError", "depth", "loads"]
