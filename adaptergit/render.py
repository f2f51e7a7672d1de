"""Turning records into what people read (tables that fit the terminal) and scripts parse (JSON).

The CLI's half of presentation: it may use click (for colours). Every string that came from a
registry (messages, configs, names in manifests) goes through `printable`, so a registry someone
else wrote cannot send escape sequences to the terminal. A `width` of None means no limit: output
to a pipe or a file is never cut.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from adaptergit.manifest import Version
from adaptergit.metrics import flatten
from adaptergit.peftkeys import short_module_name
from adaptergit.text import human_size, printable

if TYPE_CHECKING:
    from adaptergit.compare import AdapterDiff, ModuleChange
    from adaptergit.ops.gc import GcReport
    from adaptergit.ops.status import StatusReport

_KEY_METRIC_HINTS = ("loss", "acc", "f1", "bleu", "rouge", "ppl", "perplexity", "score")


def short_base(version: Version) -> str:
    """The first 12 hex digits of the version's base-model content hash, or ``unknown``."""
    return version.manifest.base_model.short


def key_metrics(metrics: dict[str, Any], limit: int | None = 2) -> str:
    """``key=value`` of the `limit` most telling metrics (losses, accuracies first), 4 digits;
    with `limit` None, every metric at full precision."""
    flat = flatten(metrics)
    if not flat:
        return ""
    ranked = sorted(flat, key=lambda k: (not any(h in k.lower() for h in _KEY_METRIC_HINTS), k))
    if limit is None:
        return " ".join(f"{k}={flat[k]!r}" for k in ranked)
    return " ".join(f"{k}={_num(flat[k])}" for k in ranked[:limit])


def _num(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _date(ts: int) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def commit_line(version: Version) -> str:
    """``NAME@vX.Y.Z 3f9c2a1 base 7d41c09be2aa 67.1 MB``: what ``commit`` prints."""
    return (
        f"{version.ref} {version.commit[:7]} base {short_base(version)} "
        f"{human_size(version.manifest.weights.size)}"
    )


def log_table(versions: Sequence[Version], width: int | None = None) -> list[str]:
    """One line per version: date, version, commit, key metrics, base model, stages, message.

    Args:
        versions: the versions, in the order to print them.
        width: the terminal's width in columns; None (a pipe or a file): nothing is cut.
    """
    single = len({v.name for v in versions}) <= 1
    rows = []
    for v in versions:
        label = v.version if single else v.ref
        stages = " ".join(f"#{s}" for s in v.stages)
        message = printable(v.manifest.message, one_line=True)
        rows.append(
            [
                _date(v.created),
                label,
                v.commit[:7],
                printable(key_metrics(v.metrics, 2 if width else None), one_line=True),
                short_base(v)[:8],
                stages,
                message,
            ]
        )
    if not rows:
        return []
    header = ["DATE", "VERSION", "COMMIT", "METRICS", "BASE", "STAGES", "MESSAGE"]
    # Drop empty optional columns, then size the rest.
    keep = [i for i in range(len(header)) if i < 3 or any(r[i] for r in rows)]
    header = [header[i] for i in keep]
    rows = [[r[i] for i in keep] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    # Too wide: give up message, then metrics, characters first; the other columns stay whole.
    for column, floor in (("MESSAGE", 8), ("METRICS", 12)):
        excess = sum(widths) + 2 * (len(widths) - 1) - (width or 0)
        if width is not None and excess > 0 and column in header:
            i = header.index(column)
            widths[i] = max(floor, widths[i] - excess)
    lines = []
    for cells in [header, *rows]:
        cut = [_fit(c, w) for c, w in zip(cells, widths, strict=True)]
        line = "  ".join(c.ljust(w) for c, w in zip(cut, widths, strict=True)).rstrip()
        lines.append(line[: width - 1] + "…" if width is not None and len(line) > width else line)
    return lines


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def show_lines(version: Version) -> list[str]:
    """Everything recorded for one version, one field a line."""
    m = version.manifest
    lines = [
        f"adapter   {version.name}",
        f"version   {version.version}"
        + (f"   stages: {', '.join(version.stages)}" if version.stages else ""),
        f"commit    {version.commit}",
        f"tag       {version.tag or '-'}",
        f"date      {_date(version.created)}",
    ]
    base = m.base_model
    lines += [
        f"message   {printable(m.message) or '-'}",
        f"parent    {m.parent or '-'}",
        f"peft      {printable(m.peft_type, one_line=True)}",
        f"base      {printable(base.name_or_path or '-', one_line=True)}"
        + (f" (revision {base.revision})" if base.revision else "")
        + f"  [{base.status}]",
    ]
    if base.content_hash:
        lines.append(f"          structure {base.structure_hash}")
        lines.append(f"          content   {base.content_hash}")
    w = m.weights
    lines += [
        f"weights   {w.file}  {human_size(w.size)}  sha256 {w.sha256}",
        f"          md5 {w.md5} (DVC)"
        + (f"  converted from {w.source_format}" if w.source_format != "safetensors" else ""),
        f"tensors   {len(m.tensors)}  ({', '.join(sorted({t.dtype for t in m.tensors}))})",
    ]
    flat = flatten(version.metrics)
    if flat:
        lines.append("metrics   " + "  ".join(f"{k}={_num(v)}" for k, v in flat.items()))
    if version.config:
        keys = ("r", "lora_alpha", "lora_dropout", "target_modules", "modules_to_save", "task_type")
        summary = [
            printable(f"{k}={version.config[k]}", one_line=True)
            for k in keys
            if version.config.get(k) is not None
        ]
        if summary:
            lines.append("config    " + "  ".join(summary))
    tools = printable("  ".join(f"{k} {v}" for k, v in m.tool.items()), one_line=True)
    lines.append(f"tools     {tools}")
    return lines


def to_json(data: Any) -> str:
    """Indented JSON; non-finite floats (which JSON lacks) become strings."""
    return json.dumps(_finite(data), indent=2, ensure_ascii=False)


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities replaced by strings, so that the JSON is valid."""
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


# --- diff, status, verify, gc -----------------------------------------------------------------

_STYLES: dict[str, dict[str, Any]] = {
    "red": {"fg": "red"},
    "green": {"fg": "green"},
    "yellow": {"fg": "yellow"},
    "bold": {"bold": True},
    "dim": {"dim": True},
}


def paint(text: str, style: str, color: bool) -> str:
    """`text` in a terminal style when `color` (the CLI passes True only on a terminal).

    Args:
        text: the text; empty text is returned as it is.
        style: a key of `_STYLES` (``red``, ``green``, ``yellow``, ``bold``, ``dim``), drawn with
            ``click.style``'s ANSI codes.
        color: whether to style at all.
    """
    return click.style(text, **_STYLES[style]) if color and text else text


def _cut(text: str, width: int | None) -> str:
    """`text` cut to `width` columns with an ellipsis; None: whole."""
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def _fit_left(text: str, width: int) -> str:
    """Shorten from the left (module names differ at their end)."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, list | dict):
        return json.dumps(
            sorted(value)
            if isinstance(value, list) and all(isinstance(v, str) for v in value)
            else value,
            ensure_ascii=False,
        )
    return printable(str(value), one_line=True)


def _rel(value: float | None) -> str:
    if value is None:
        return "-"
    if value != value or value in (float("inf"), float("-inf")):
        return "inf"
    return f"{value:.3g}"


def diff_lines(diff: AdapterDiff, width: int | None = None, color: bool = False) -> list[str]:
    """An `AdapterDiff` as people read it: config, metrics, base model, then changed modules.

    Args:
        diff: the comparison.
        width: the terminal's width in columns; None: nothing is cut.
        color: style the output for a terminal.
    """
    from adaptergit.compare import ADDED, CHANGED, REMOVED, RESHAPED

    lines = [paint(f"{diff.old} -> {diff.new}", "bold", color)]
    for i, change in enumerate(diff.config):
        label = "config   " if i == 0 else "         "
        text = f"{label}{printable(change.key, one_line=True)}: {_value(change.old)} -> {_value(change.new)}"
        lines.append(_cut(text, width))
    if not diff.config:
        lines.append("config   unchanged")
    key_width = min(max((len(m.key) for m in diff.metrics), default=0), 28)
    for i, m in enumerate(diff.metrics):
        label = "metrics  " if i == 0 else "         "
        delta = m.delta
        text = f"{label}{printable(m.key, one_line=True):<{key_width}}  {_value(m.old)} -> {_value(m.new)}"
        if delta is not None and delta != 0:
            text += f"  ({'+' if delta > 0 else ''}{_num(delta)})"
        if m.improved is True:
            text += " " + paint("better", "green", color)
        elif m.improved is False:
            text += " " + paint("worse", "red", color)
        lines.append(text)
    base = diff.base
    if base.same is True:
        lines.append(f"base     same ({base.basis} {base.old})")
    elif base.same is False:
        lines.append(
            paint(f"base     DIFFERENT ({base.basis} {base.old} -> {base.new})", "yellow", color)
        )
    else:
        lines.append("base     unknown (no base-model fingerprint for both versions)")
    summary = printable(diff.summary, one_line=True)
    while (
        width is not None and len(summary) > width and ", " in summary.rpartition("; largest: ")[2]
    ):
        summary = summary.rsplit(", ", 1)[0]  # fewer of the largest changes, whole ones
    lines.append(_cut(summary, width))
    if diff.per_tensor_note is not None:
        lines.append(_cut(printable(diff.per_tensor_note, one_line=True), width))
    changed = diff.changed_modules
    if not changed:
        return lines
    # MODULE  STATUS  REL.CHANGE  COSINE  SHAPE
    shapes = [_shape_text(m) for m in changed]
    shape_w = max(5, *(len(s) for s in shapes))
    fixed = 2 + 9 + 2 + 10 + 2 + 7 + 2 + shape_w
    longest = max(len(short_module_name(m.name)) for m in changed)
    name_w = max(12, min(longest, width - fixed) if width is not None else longest)
    header = f"{'MODULE':<{name_w}}  {'STATUS':<9}  {'REL.CHANGE':>10}  {'COSINE':>7}  SHAPE"
    lines.append(paint(header, "dim", color))
    styles = {ADDED: "green", REMOVED: "red", RESHAPED: "yellow", CHANGED: "bold"}
    for module, shape in zip(changed, shapes, strict=True):
        status = paint(f"{module.status:<9}", styles.get(module.status, "dim"), color)
        cosine = "-" if module.cosine is None else f"{module.cosine:.4f}"
        name = _fit_left(printable(short_module_name(module.name), one_line=True), name_w)
        lines.append(
            f"{name:<{name_w}}  {status}  {_rel(module.rel_change):>10}  {cosine:>7}  {shape}".rstrip()
        )
    return lines


def _shape_text(m: ModuleChange) -> str:
    def one(shape: Any, rank: Any) -> str:
        if shape is None:
            return "-"
        return "x".join(map(str, shape)) + (f" r{rank}" if rank is not None else "")

    old, new = one(m.shape_old, m.rank_old), one(m.shape_new, m.rank_new)
    return old if old == new else f"{old} -> {new}"


def status_lines(report: StatusReport, color: bool = False) -> list[str]:
    """A `StatusReport`: what differs, what is not on the remote, what set-up is missing.

    Args:
        report: the report to render.
        color: style states with ANSI colours (a terminal only).

    Returns:
        The lines for ``adaptergit status``, without newlines.
    """
    lines = []
    dirty = report.dirty
    name_w = max((len(a.name) for a in dirty), default=0)
    for a in dirty:
        if a.state == "behind":
            what = f"at {a.current}, latest {a.latest} (`adaptergit checkout {a.name}` to update)"
        elif a.state == "modified":
            what = f"changed since {a.current or a.latest}: {', '.join(a.changed)}"
        elif a.state == "missing-weights":
            what = f"weights missing (`adaptergit checkout {a.name}` restores {a.current})"
        elif a.state == "stale":
            what = (
                f"weights are {a.name}@{a.weights_of}'s, the files {a.current}'s "
                f"(`adaptergit checkout {a.name}@{a.current}` puts its weights back)"
            )
        elif a.state == "untagged":
            what = (
                f"at {a.current} as committed at HEAD, but its tag {a.name}@{a.current} is not "
                "here (`git fetch --tags`)"
            )
        elif a.state == "conflict":
            what = (
                f"merge conflict in adapters/{a.name} (keep one side with `git checkout --ours` "
                f"or `--theirs -- adapters/{a.name}`, then `adaptergit checkout {a.name}@VERSION`)"
            )
        elif a.state == "deleted":
            what = f"deleted from the work tree (latest {a.latest})"
        else:
            what = "no version recorded yet (`adaptergit commit`)"
        style = (
            "red" if a.state in ("modified", "deleted", "missing-weights", "conflict") else "yellow"
        )
        name = printable(a.name, one_line=True)  # a folder name a clone may have chosen
        lines.append(f"{paint(f'{a.state:<15}', style, color)} {name:<{name_w}}  {what}")
    if report.unpushed:
        lines.append(
            paint(f"not on DVC remote {report.remote!r} ({len(report.unpushed)}):", "yellow", color)
            + " "
            + ", ".join(report.unpushed)
            + f" (`{_push_command(report.unpushed)}`)"
        )
    if report.missing:
        where = "the DVC cache nor the remote" if report.remote else "the DVC cache (and no remote)"
        lines.append(
            paint(f"weights in neither {where} ({len(report.missing)}):", "red", color)
            + " "
            + ", ".join(report.missing)
        )
    if report.remote is None and report.versions:
        lines.append(
            "no default DVC remote: weights exist only here (`adaptergit remote add NAME URL --default`)"
        )
    if report.hooks_missing:
        lines.append(
            paint("hooks not installed:", "yellow", color)
            + f" {', '.join(report.hooks_missing)} (`adaptergit hooks install`)"
        )
    if not report.driver_configured:
        lines.append(
            paint("git diff driver not configured:", "yellow", color) + " run `adaptergit init`"
        )
    if not lines and not report.adapters and not report.versions:
        lines.append("clean: no adapters yet (record one with `adaptergit commit DIR --name NAME`)")
    if not lines:
        clean = len(report.adapters)
        where = f" and on DVC remote {report.remote!r}" if report.remote else ""
        lines.append(
            f"clean: {clean} adapter(s) match their latest versions; the weights of all "
            f"{report.versions} version(s) are local{where}"
        )
    return lines


def gc_lines(report: GcReport) -> list[str]:
    """A `GcReport`: each object removed (or to be removed) with its versions and size."""
    verb = "would remove" if report.dry_run else "removed"
    lines = []
    for where, items, total in (
        ("the DVC cache", report.removed, report.freed),
        (f"DVC remote {report.remote!r}", report.remote_removed, report.remote_freed),
    ):
        if where.startswith("DVC remote") and report.remote is None:
            continue
        lines.append(f"{verb} {len(items)} object(s), {human_size(total)}, from {where}")
        for item in items:
            owners = ", ".join(item.versions) or "(no registered version)"
            size = human_size(item.size) if item.size >= 0 else "?"
            lines.append(f"  {item.md5[:12]}  {size:>9}  {owners}")
    if report.only_copy:
        refs = ", ".join(v for item in report.only_copy for v in item.versions) or "?"
        lines.append(
            f"kept {len(report.only_copy)} object(s) that no DVC remote holds, the only copy "
            f"({refs}): push them first, or pass --force to delete them"
        )
    if report.not_ours:
        refs = ", ".join(v for item in report.not_ours for v in item.versions) or "?"
        lines.append(
            f"left {len(report.not_ours)} object(s) alone whose bytes are not what a version "
            f"recorded ({refs}): not provably this registry's"
        )
    lines.append(f"kept the weights of {len(report.kept)} version(s)")
    return lines


def _push_command(refs: tuple[str, ...]) -> str:
    """The push that uploads `refs`' weights: named, since a plain ``adaptergit push`` uploads
    only the versions not yet published, and a published version's weights can go missing from
    the remote (a teammate's ``gc --remote`` during the push that published them)."""
    named = " ".join(printable(ref, one_line=True) for ref in refs[:5])
    return f"adaptergit push {named}" + (" ..." if len(refs) > 5 else "")
