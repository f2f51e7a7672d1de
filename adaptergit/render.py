"""Turning records into what people read (tables that fit 80 columns) and scripts parse (JSON)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from adaptergit.manifest import Version
from adaptergit.metrics import flatten

_KEY_METRIC_HINTS = ("loss", "acc", "f1", "bleu", "rouge", "ppl", "perplexity", "score")


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def short_base(version: Version) -> str:
    if version.manifest is None:
        return "-"
    return version.manifest.base_model.short


def key_metrics(metrics: dict[str, Any], limit: int = 2) -> str:
    flat = flatten(metrics)
    if not flat:
        return ""
    ranked = sorted(
        flat, key=lambda k: (not any(h in k.lower() for h in _KEY_METRIC_HINTS), k)
    )[:limit]
    return " ".join(f"{k}={_num(flat[k])}" for k in ranked)


def _num(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _date(ts: int) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def commit_line(version: Version) -> str:
    assert version.manifest is not None
    return (
        f"{version.ref} {version.commit[:7]} base {short_base(version)} "
        f"{human_size(version.manifest.weights.size)}"
    )


def log_table(versions: Sequence[Version], width: int | None = None) -> list[str]:
    """One line per version: date, version, commit, key metrics, base model, stages, message."""
    width = width or min(shutil.get_terminal_size((80, 24)).columns, 160)
    single = len({v.name for v in versions}) <= 1
    rows = []
    for v in versions:
        label = v.version if single else v.ref
        stages = " ".join(f"#{s}" for s in v.stages)
        message = v.manifest.message if v.manifest else ""
        rows.append(
            [_date(v.created), label, v.commit[:7], key_metrics(v.metrics), short_base(v)[:8], stages, message]
        )
    if not rows:
        return []
    header = ["DATE", "VERSION", "COMMIT", "METRICS", "BASE", "STAGES", "MESSAGE"]
    # Drop empty optional columns, then size the rest.
    keep = [i for i in range(len(header)) if i < 3 or any(r[i] for r in rows)]
    header = [header[i] for i in keep]
    rows = [[r[i] for i in keep] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = []
    for cells in [header, *rows]:
        line = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
        if len(line) > width:
            line = line[: width - 1] + "…"
        lines.append(line)
    return lines


def show_lines(version: Version) -> list[str]:
    m = version.manifest
    lines = [
        f"adapter   {version.name}",
        f"version   {version.version}" + (f"   stages: {', '.join(version.stages)}" if version.stages else ""),
        f"commit    {version.commit}",
        f"tag       {version.tag or '-'}",
        f"date      {_date(version.created)}",
    ]
    if m is None:
        lines.append("manifest  (none: registered outside adaptergit)")
        return lines
    base = m.base_model
    lines += [
        f"message   {m.message or '-'}",
        f"parent    {m.parent or '-'}",
        f"peft      {m.peft_type}",
        f"base      {base.name_or_path or '-'}"
        + (f" (revision {base.revision})" if base.revision else "")
        + f"  [{base.status}]",
    ]
    if base.content_hash:
        lines.append(f"          structure {base.structure_hash}")
        lines.append(f"          content   {base.content_hash}")
    w = m.weights
    lines += [
        f"weights   {w.file}  {human_size(w.size)}  sha256 {w.sha256}",
        f"          md5 {w.md5} (DVC)" + (f"  converted from {w.source_format}" if w.source_format != "safetensors" else ""),
        f"tensors   {len(m.tensors)}  ({', '.join(sorted({t.dtype for t in m.tensors}))})",
    ]
    flat = flatten(version.metrics)
    if flat:
        lines.append("metrics   " + "  ".join(f"{k}={_num(v)}" for k, v in flat.items()))
    if version.config:
        keys = ("r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save", "task_type")
        summary = [f"{k}={version.config[k]}" for k in keys if version.config.get(k) is not None]
        if summary:
            lines.append("config    " + "  ".join(summary))
    tools = "  ".join(f"{k} {v}" for k, v in m.tool.items())
    lines.append(f"tools     {tools}")
    return lines


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
