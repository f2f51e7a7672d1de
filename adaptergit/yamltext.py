"""Plain data (dicts, lists, strings, numbers, booleans, None) written as YAML, without a YAML library.

The output is deterministic (keys in the order given) and reads back to the same data under both
YAML 1.1 (PyYAML) and YAML 1.2 (ruamel.yaml, which DVC uses): strings are left plain only when no
resolver could take them for anything else, and quoted as JSON otherwise (a JSON string is a valid
YAML double-quoted scalar); floats always carry a '.' and a signed exponent.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./+-]*")
# Words some YAML resolver reads as a boolean or null (YAML 1.1 is the widest).
_RESERVED = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null"])


# What YAML does not allow in a stream, or reads as a line break (NEL, LS, PS) even when quoted.
_NOT_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ufffe\uffff\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def scalar(value: Any) -> str:
    """One scalar as YAML text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value!r} as YAML")
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        if e and exponent[0] not in "+-":
            exponent = "+" + exponent
        return mantissa + (f"e{exponent}" if e else "")
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
            return value
        return _NOT_PRINTABLE.sub(_escape, json.dumps(value, ensure_ascii=False))
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (Mapping, list, tuple)) or len(value) == 0


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[]"
    return scalar(value)


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"mapping keys must be strings, got {key!r}")
            if _is_scalar(item):
                out.append(f"{pad}{scalar(key)}: {_inline(item)}")
            else:
                out.append(f"{pad}{scalar(key)}:")
                out.extend(_lines(item, indent + 2))
        return out
    if isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            if _is_scalar(item):
                out.append(f"{pad}- {_inline(item)}")
            else:
                nested = _lines(item, indent + 2)
                out.append(f"{pad}- {nested[0].lstrip()}")
                out.extend(nested[1:])
        return out
    return [pad + scalar(value)]


def dump(data: Mapping[str, Any]) -> str:
    """A YAML document for a mapping, ending with a newline."""
    if not data:
        return "{}\n"
    return "\n".join(_lines(data, 0)) + "\n"


__all__ = ["dump", "scalar"]
