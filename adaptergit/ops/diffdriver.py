"""The git diff driver: what ``git diff``, ``git log -p`` and ``git show`` print for a version.

``adaptergit init`` marks every ``manifest.json`` and weights pointer with ``diff=adaptergit`` in
``.gitattributes`` and sets ``diff.adaptergit.textconv`` (gitattributes(5), "Performing text diffs
of binary files"), so git compares readable summaries: a manifest becomes its version, hashes,
base model and one line per module, so the diff of two versions lists exactly the modules that
changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adaptergit import launcher
from adaptergit import tags as tag_grammar
from adaptergit.dvcrepo import DvcRepo, Pointer
from adaptergit.errors import AdapterGitError
from adaptergit.fsutil import atomic_write, read_in_tree
from adaptergit.gitrepo import GitRepo
from adaptergit.layout import (
    CONFIG_FILE,
    GITATTRIBUTES,
    MANIFEST_FILE,
    MANIFEST_GLOB,
    METRICS_FILE,
    POINTER_GLOB,
    adapter_path,
)
from adaptergit.manifest import Manifest, TensorRecord, Version
from adaptergit.metrics import flatten
from adaptergit.peftkeys import parse_key, short_module_name
from adaptergit.text import human_size

DRIVER = "adaptergit"
ATTRIBUTES = (f"{MANIFEST_GLOB} diff={DRIVER}", f"{POINTER_GLOB} diff={DRIVER}")
# The shell function git's textconv command defines and calls (`textconv_command`).
TEXTCONV_FUNCTION = "adaptergit_textconv"
# Weights larger than this (both versions together) are not compared inside `git diff`.
TEXTCONV_MAX_BYTES = 512_000_000


def textconv_command() -> str:
    """The command git runs for the driver (git appends the file's path).

    It runs the adaptergit of the interpreter running now, else the one on PATH, and with neither
    says so in one line and shows the file as it is, so that ``git diff``, ``git log -p`` and
    ``git show`` work wherever git runs (`adaptergit.launcher`).
    """
    lines = launcher.find_lines(
        'textconv "$1"',
        missing=launcher.missing_text("git diff shows adaptergit's files as they are"),
        fallback='exec cat "$1"',
    )
    return f"{TEXTCONV_FUNCTION}() {{ {'; '.join(lines)}; }}; {TEXTCONV_FUNCTION}"


def _is_ours(command: str) -> bool:
    """Whether a ``diff.adaptergit.textconv`` value is one adaptergit wrote (any version)."""
    return TEXTCONV_FUNCTION in command or "adaptergit textconv" in command


def is_configured(git: GitRepo) -> bool:
    """Whether ``diff.adaptergit.textconv`` is set for this repository, and not to the bare
    ``adaptergit textconv`` of older versions (which fails wherever adaptergit is not on PATH;
    ``adaptergit init`` replaces it)."""
    value = git.config_get(f"diff.{DRIVER}.textconv")
    return value is not None and (TEXTCONV_FUNCTION in value or not _is_ours(value))


MAX_ATTRIBUTES_BYTES = 4 << 20


def configure(git: GitRepo) -> list[str]:
    """Set ``diff.adaptergit.textconv`` in .git/config and the attributes; return paths to commit.

    A command an earlier adaptergit wrote (``adaptergit textconv``, which needs adaptergit on
    PATH) is replaced by the current one; a command of the user's own is left alone.

    Not ``cachetextconv``: git would then write notes commits during ``git log -p``, which fails
    outright where no committer identity is configured.
    """
    current = git.config_get(f"diff.{DRIVER}.textconv")
    wanted = textconv_command()
    if current is None or (current != wanted and _is_ours(current)):
        git.set_config(f"diff.{DRIVER}.textconv", wanted)
    path = git.root / GITATTRIBUTES
    # Never through a link: a clone's .gitattributes may point at any file of the user's.
    raw = read_in_tree(git.root, GITATTRIBUTES, MAX_ATTRIBUTES_BYTES)
    text = raw.decode("utf-8", "surrogateescape") if raw is not None else ""
    lines = text.splitlines()
    missing = [line for line in ATTRIBUTES if line not in lines]
    if missing:
        prefix = text if not text or text.endswith("\n") else text + "\n"
        atomic_write(path, (prefix + "\n".join(missing) + "\n").encode("utf-8", "surrogateescape"))
    return [GITATTRIBUTES]


def textconv_lines(
    raw: bytes, metrics: Mapping[str, Any] | None = None, summary: str | None = None
) -> list[str]:
    """A readable, stable summary of a manifest.json or a weights pointer, for ``git diff``.

    Anything that is neither is passed through unchanged.
    """
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict) and "weights" in data and "tensors" in data:
        with contextlib.suppress(AdapterGitError):
            return _manifest_lines(Manifest.from_dict(data), metrics, summary)
    text = raw.decode(errors="replace")
    if text.lstrip().startswith("outs:"):
        try:
            pointer = Pointer.parse(raw)
        except AdapterGitError:
            return text.splitlines()
        size = f"{pointer.size} ({human_size(pointer.size)})" if pointer.size >= 0 else "-"
        return [f"weights {pointer.path}", f"md5     {pointer.md5}", f"size    {size}"]
    return text.splitlines()


def _manifest_lines(
    manifest: Manifest, metrics: Mapping[str, Any] | None, summary: str | None
) -> list[str]:
    base = manifest.base_model
    w = manifest.weights
    lines = [
        f"adapter  {manifest.name} {manifest.version}"
        + (f" (parent {manifest.parent})" if manifest.parent else ""),
        f"created  {manifest.created}",
        f"message  {manifest.message or '-'}",
        f"peft     {manifest.peft_type}",
        f"base     {base.short} [{base.status}] {base.name_or_path or '-'}"
        + (f"@{base.revision}" if base.revision else ""),
        f"weights  sha256 {w.sha256}",
        f"         md5 {w.md5}  {w.size} bytes ({human_size(w.size)})",
    ]
    flat = flatten(metrics or {})
    if flat:
        lines.append("metrics  " + "  ".join(f"{k}={v:.6g}" for k, v in sorted(flat.items())))
    if summary:
        lines.append(f"vs {manifest.parent}  {summary}")
    halves: dict[str, dict[str, TensorRecord]] = {}
    others = []
    for t in manifest.tensors:
        key = parse_key(t.name)
        if key is not None and key.lora_side is not None and key.rest in ("", "weight"):
            halves.setdefault(key.module, {})[key.lora_side] = t
        else:
            others.append(t)
    dtypes = sorted({t.dtype for t in manifest.tensors})
    lines.append(
        f"tensors  {len(manifest.tensors)} in {len(halves) + len(others)} modules ({', '.join(dtypes)})"
    )
    for module in sorted(halves):
        parts = halves[module]
        shapes = " ".join(
            f"{side} {'x'.join(map(str, parts[side].shape))}"
            for side in ("A", "B")
            if side in parts
        )
        digest = hashlib.sha256("".join(parts[s].blake3 for s in sorted(parts)).encode())
        dtype = "/".join(sorted({p.dtype for p in parts.values()}))
        lines.append(f"  {short_module_name(module)}  {shapes} {dtype}  {digest.hexdigest()[:12]}")
    for t in others:
        lines.append(
            f"  {short_module_name(t.name)}  {'x'.join(map(str, t.shape))} {t.dtype}  {t.blake3[:12]}"
        )
    return lines


def textconv_file(path: Path, git: GitRepo | None = None) -> list[str]:
    """`textconv_lines` for a file git hands over, plus what the repository knows about it.

    With the repository at hand, a manifest's lines also get the version's metrics (from its tag)
    and the weights summary against its parent version, when both weights are in the local cache
    and small enough to compare quickly (over TEXTCONV_MAX_BYTES, the line says how to get it).
    """
    raw = Path(path).read_bytes()
    metrics = summary = None
    if git is not None:
        with contextlib.suppress(AdapterGitError):
            manifest = Manifest.from_json(raw)
            tag = tag_grammar.full_ref(tag_grammar.version_tag(manifest.name, manifest.version))
            found = git.read_blob(tag, adapter_path(manifest.name, METRICS_FILE))
            with contextlib.suppress(ValueError, RecursionError):
                loaded = json.loads(found) if found else None
                metrics = loaded if isinstance(loaded, dict) else None
            summary = _parent_summary(git, manifest)
    return textconv_lines(raw, metrics, summary)


def _parent_summary(git: GitRepo, manifest: Manifest) -> str | None:
    """`AdapterDiff.summary` of a manifest's version against its parent, or None."""
    from adaptergit.compare import diff_versions  # numpy: only when there is a parent to compare

    if not manifest.parent:
        return None
    name = manifest.name
    old_tag = tag_grammar.full_ref(tag_grammar.version_tag(name, manifest.parent))
    new_tag = tag_grammar.full_ref(tag_grammar.version_tag(name, manifest.version))
    old_raw, old_cfg, new_cfg = git.read_blobs(
        [
            f"{old_tag}:{adapter_path(name, MANIFEST_FILE)}",
            f"{old_tag}:{adapter_path(name, CONFIG_FILE)}",
            f"{new_tag}:{adapter_path(name, CONFIG_FILE)}",
        ]
    )
    if old_raw is None or old_cfg is None or new_cfg is None:
        return None
    try:
        parent = Manifest.from_json(old_raw)
    except AdapterGitError:
        return None
    total = parent.weights.size + manifest.weights.size
    if total > TEXTCONV_MAX_BYTES:
        return (
            f"weights: {human_size(total)} to compare; "
            f"run `adaptergit diff {name}@{manifest.parent} {name}@{manifest.version}`"
        )
    dvc = DvcRepo(git.root)
    paths = [dvc.cache_path(m.weights.md5) for m in (parent, manifest)]
    if not all(p.is_file() for p in paths):
        return None
    try:
        result = diff_versions(
            Version.of_manifest(parent),
            Version.of_manifest(manifest),
            paths[0],
            paths[1],
            old_config=json.loads(old_cfg),
            new_config=json.loads(new_cfg),
        )
    except (AdapterGitError, OSError, ValueError, RecursionError):
        return None
    return result.summary


__all__ = [
    "ATTRIBUTES",
    "DRIVER",
    "configure",
    "is_configured",
    "textconv_command",
    "textconv_file",
    "textconv_lines",
]
