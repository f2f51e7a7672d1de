"""Metrics of a version: finite numbers, possibly nested, as ``dvc metrics`` reads them."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from adaptergit import strictjson
from adaptergit.errors import InvalidInput, InvalidMetric

METRICS_NAME = "metrics.json"
Metrics = dict[str, Any]


def normalize(metrics: Mapping[str, Any] | None, source: str = "") -> Metrics:
    """Check that every leaf is a finite number (bools and strings are refused); keep nesting.

    Args:
        metrics: the metrics, possibly nested (``{"eval": {"loss": 0.3}}``); None is empty.
        source: where they came from (a file, ``--metric``), for messages.

    Returns:
        A plain-dict copy with the same nesting.

    Raises:
        InvalidMetric: not a mapping, an empty or non-string key, or a leaf that is a bool, a
            string, NaN or infinite.
    """
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise InvalidMetric("(metrics)", metrics, source)
    result: Metrics = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key.strip():
            raise InvalidMetric(str(key), value, source)
        if isinstance(value, Mapping):
            result[key] = normalize(value, source)
        elif (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise InvalidMetric(key, value, source)
        else:
            result[key] = value
    return result


def parse_assignment(text: str) -> tuple[str, float | int]:
    """Parse ``KEY=VALUE`` from the command line; VALUE must be a finite number."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InvalidInput(f"--metric {text!r}: expected KEY=VALUE, e.g. eval_loss=1.92")
    raw = raw.strip()
    try:
        value: float | int = int(raw)
    except ValueError:
        try:
            value = float(raw)
        except ValueError:
            raise InvalidMetric(key, raw, "--metric") from None
    if not math.isfinite(value):
        raise InvalidMetric(key, raw, "--metric")
    return key, value


def load_file(path: Path) -> Metrics:
    """Read a metrics JSON file (an object of numbers, nesting allowed), strictly and bounded."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read the metrics file ({exc.strerror})") from None
    data = strictjson.loads(raw, str(path))
    if not isinstance(data, dict):
        raise InvalidInput(
            f"{path}: expected a JSON object of metrics, found {type(data).__name__}"
        )
    return normalize(data, str(path))


def merge(files: Iterable[Metrics], assignments: Iterable[tuple[str, float | int]]) -> Metrics:
    """Metrics from files, later ones overriding earlier at the top level, then ``KEY=VALUE``
    assignments (``--metric``) over them.

    Args:
        files: metrics read with `load_file`, in command-line order.
        assignments: (key, value) pairs from `parse_assignment`; a key is set at the top level
            as given (a dotted key is not split).
    """
    merged: Metrics = {}
    for data in files:
        merged.update(data)
    for key, value in assignments:
        merged[key] = value
    return merged


def flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float | int]:
    """``{"eval": {"loss": 1}}`` -> ``{"eval.loss": 1}``, for display and comparison.

    Args:
        metrics: the metrics, possibly nested.
        prefix: prepended to every key (used in the recursion).
    """
    flat: dict[str, float | int] = {}
    for key, value in metrics.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{full}."))
        else:
            flat[full] = value
    return flat


def to_json(metrics: Metrics) -> bytes:
    """The ``metrics.json`` bytes: indented JSON, keys sorted, non-ASCII escaped, ending in "\\n"."""
    return (json.dumps(metrics, indent=2, sort_keys=True) + "\n").encode()
