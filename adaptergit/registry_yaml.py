"""The registry's ``dvc.yaml``: each adapter as a DVC artifact, with its metrics and params files.

With it, the plain tools read the registry: ``dvc metrics show``, ``dvc metrics diff A B``,
``dvc params diff`` (the adapter's ``adapter_config.json``) and ``dvc artifacts`` all see every
adapter. adaptergit rewrites the file, in the same git commit as each version, from what HEAD
records for every adapter. A ``dvc.yaml`` that adaptergit did not write (no header line) is kept:
adaptergit then only adds or updates its own entries, through ruamel.yaml's round-trip mode (DVC
reads dvc.yaml with it) so that the rest of the file, comments included, stays as it was. Files of
our own are written with PyYAML (installed with DVC), whose YAML 1.1 quoting reads back the same
under YAML 1.2.

Two clones that add or change different adapters both change this one file. So that git merges
and rebases them without a conflict, ``adaptergit init`` registers `merge3` as a git merge driver
for it (``dvc.yaml merge=adaptergit-dvc-yaml`` in ``.gitattributes``): a three-way merge of the
entries by adapter name, the file then rendered afresh. A ``dvc.yaml`` that is not adaptergit's on
every side is left to git's own line merge.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from adaptergit.errors import AdapterGitError, InvalidConfig
from adaptergit.fingerprint import is_hub_id
from adaptergit.layout import (
    ADAPTERS_DIR,
    CONFIG_FILE,
    DVC_YAML,
    MANIFEST_FILE,
    METRICS_FILE,
    adapter_path,
)
from adaptergit.manifest import BaseFingerprint, Manifest
from adaptergit.registry import Registry, config_from_blob

HEADER = (
    "# Written by adaptergit: one DVC artifact per adapter, with its metrics and params.\n"
    "# adaptergit rewrites this file on each commit; delete these lines to manage it yourself\n"
    "# (adaptergit will then only add or update its own entries).\n"
)
_MARK = HEADER.splitlines()[0]
# A dvc.yaml larger than this is refused unread (it arrives with `git clone`).
MAX_BYTES = 4 << 20


@dataclass(frozen=True, kw_only=True, slots=True)
class ArtifactEntry:
    """What dvc.yaml says about one adapter."""

    name: str
    desc: str
    labels: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The artifact's path, ``adapters/NAME``."""
        return adapter_path(self.name)

    @property
    def metrics_file(self) -> str:
        """Its metrics file for ``dvc metrics``, ``adapters/NAME/metrics.json``."""
        return adapter_path(self.name, METRICS_FILE)

    @property
    def params_file(self) -> str:
        """Its params file for ``dvc params``, ``adapters/NAME/adapter_config.json``."""
        return adapter_path(self.name, CONFIG_FILE)

    def to_dict(self) -> dict[str, Any]:
        """DVC's artifact schema: path, type, desc, labels, meta.

        Written by hand, not with `dataclasses.asdict`: DVC's schema (``dvc.yaml``'s
        ``artifacts`` section) has a derived ``path`` and a fixed ``type`` where the record has
        `name`, and leaves empty ``labels`` and ``meta`` out.
        """
        data: dict[str, Any] = {"path": self.path, "type": "model", "desc": self.desc}
        if self.labels:
            data["labels"] = list(self.labels)
        if self.meta:
            data["meta"] = dict(self.meta)
        return data

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> ArtifactEntry:
        """Read one entry of ``dvc.yaml``'s ``artifacts`` section, as `to_dict` writes it.

        Args:
            name: the artifact's name (its key in ``artifacts``).
            data: the entry.

        Raises:
            ValueError: ``labels`` is not a list of strings or ``meta`` not a mapping; the
                message names the key (``artifacts.NAME.labels``).
        """
        labels = data.get("labels") or []
        meta = data.get("meta") or {}
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ValueError(f"artifacts.{name}.labels: expected a list of strings")
        if not isinstance(meta, dict):
            raise ValueError(f"artifacts.{name}.meta: expected a mapping")
        return cls(name=name, desc=str(data.get("desc", "")), labels=tuple(labels), meta=dict(meta))


def entry_for(
    name: str, peft_type: str, config: dict[str, Any] | None, base: BaseFingerprint | None
) -> ArtifactEntry:
    """The artifact entry of an adapter from its latest version's config and base fingerprint.

    Labels are ``peft``, the PEFT method, the task type and ``base:NAME``; ``meta`` carries the
    base model's name and hashes and the config's ``r``, ``lora_alpha`` and ``target_modules``.

    Args:
        name: the adapter.
        peft_type: its PEFT method (``LORA``, ...), as the manifest records it.
        config: its ``adapter_config.json``, or None.
        base: the base-model fingerprint its manifest records, or None.
    """
    config = config or {}
    task = config.get("task_type")
    base_name = base.name_or_path if base is not None else None
    labels = ["peft", peft_type.lower()]
    if isinstance(task, str) and task:
        labels.append(task.lower().replace("_", "-"))
    if base_name:
        labels.append(
            f"base:{base_name if is_hub_id(base_name) else base_name.rstrip('/').rsplit('/', 1)[-1]}"
        )
    meta: dict[str, Any] = {"base_model": base_name}
    if base is not None and base.content_hash:
        meta["base_model_content_hash"] = base.content_hash
        meta["base_model_structure_hash"] = base.structure_hash
    for key in ("r", "lora_alpha", "target_modules"):
        value = config.get(key)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            meta[key] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            meta[key] = sorted(value)
    on = f" for {base_name}" if base_name else ""
    return ArtifactEntry(
        name=name, desc=f"PEFT {peft_type} adapter{on}", labels=tuple(labels), meta=meta
    )


def entries_at(registry: Registry, commit: str | None) -> dict[str, ArtifactEntry]:
    """The entry of every adapter with a manifest at `commit`, read from git objects.

    An adapter whose manifest or config cannot be read is left out rather than failing.

    Args:
        registry: the registry.
        commit: the commit (None: no commit yet, no entries).

    Returns:
        Adapter name -> its entry.
    """
    found: dict[str, ArtifactEntry] = {}
    if commit is None:
        return found
    names = registry.git.list_dir(commit, ADAPTERS_DIR)
    blobs = registry.git.read_blobs(
        [f"{commit}:{adapter_path(n, f)}" for n in names for f in (MANIFEST_FILE, CONFIG_FILE)]
    )
    for i, name in enumerate(names):
        raw = blobs[2 * i]
        if raw is None:
            continue
        try:
            manifest = Manifest.from_json(raw)
            source = f"{adapter_path(name, CONFIG_FILE)} at {commit[:7]}"
            config = config_from_blob(blobs[2 * i + 1], source)  # read in the batch above
        except AdapterGitError:
            continue  # a damaged adapter is not listed rather than failing every commit
        found[name] = entry_for(name, manifest.peft_type, config, manifest.base_model)
    return found


# Strings left unquoted: ones no YAML 1.1 or 1.2 resolver reads as anything but a string.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./+-]*")
_RESERVED = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null"])


def dump_yaml(data: dict[str, Any]) -> str:
    """Plain data as block YAML, keys in the order given, as PyYAML's safe dumper writes it.

    Strings are double-quoted unless they are plain words, so that the text reads back the same
    under YAML 1.1 (PyYAML) and YAML 1.2 (ruamel.yaml, which DVC uses), where ``yes`` and
    ``0E0`` mean different things.

    The shapes adaptergit writes (mappings of strings, numbers, None, booleans and lists of
    those) are written by `_emit`, byte for byte what PyYAML writes (tests/test_interop.py
    checks it against PyYAML): importing PyYAML alone costs 10 ms of each commit's start-up.
    Anything else goes through PyYAML itself.
    """
    text = _emit(data)
    return text if text is not None else _dump_with_pyyaml(data)


def _dump_with_pyyaml(data: dict[str, Any]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML ships no types
        pass

    def string(dumper: Any, value: str) -> Any:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=_string_style(value))

    Dumper.add_representer(str, string)
    text: str = yaml.dump(
        data,
        Dumper=Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=1 << 20,
    )
    return text


def _string_style(value: str) -> str | None:
    """PyYAML's style for a string: None (plain) for a word no resolver reads otherwise."""
    plain = _PLAIN.fullmatch(value) is not None and value.lower() not in _RESERVED
    return None if plain else '"'


# PyYAML's emitter (``Emitter.write_double_quoted``): characters written as escapes, and how.
_ESCAPES = {
    "\0": "0", "\x07": "a", "\x08": "b", "\x09": "t", "\x0a": "n", "\x0b": "v", "\x0c": "f",
    "\x0d": "r", "\x1b": "e", '"': '"', "\\": "\\", "\x85": "N", "\u2028": "L", "\u2029": "P",
}  # fmt: skip
_PRINTABLE = re.compile("[\x20-\x7e\xa0-\ud7ff\ue000-\ufffd]")
_LINE_BREAKS = frozenset("\n\x85\u2028\u2029")
# Longer strings could make PyYAML fold lines or write a key the long way (``? KEY``).
_MAX_KEY, _MAX_STRING = 122, 4096  # a simple key: under 128 characters with "!!str"


def _scalar(value: Any) -> str | None:
    """A scalar as PyYAML's safe representer and emitter write it; None for other values."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        if value != value:
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value).lower()
        return text.replace("e", ".0e", 1) if "." not in text and "e" in text else text
    if type(value) is not str or len(value) > _MAX_STRING:
        return None
    if _string_style(value) is None:
        return value
    out = []
    for ch in value:
        if ch in _ESCAPES and ch != "\xa0":
            out.append("\\" + _ESCAPES[ch])
        elif ch == "\ufeff" or not _PRINTABLE.match(ch):
            code = ord(ch)
            out.append(
                f"\\x{code:02X}"
                if code <= 0xFF
                else f"\\u{code:04X}"
                if code <= 0xFFFF
                else f"\\U{code:08X}"
            )
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _emit(data: dict[str, Any]) -> str | None:
    """`data` as PyYAML's block style writes it (see `dump_yaml`), or None where this does not
    know PyYAML's answer: keys that are not short one-line strings, lists holding containers,
    over-long strings, types other than str, int, float, bool and None."""
    if not data:
        return "{}\n"
    lines: list[str] = []

    def mapping(obj: dict[Any, Any], pad: str) -> bool:
        for key, value in obj.items():
            if type(key) is not str or not key or len(key) > _MAX_KEY or _LINE_BREAKS & set(key):
                return False
            name = _scalar(key)
            if name is None:
                return False
            if type(value) in (dict, list):
                if not value:  # PyYAML writes empty containers in flow style
                    lines.append(f"{pad}{name}: {'{}' if type(value) is dict else '[]'}")
                    continue
                lines.append(f"{pad}{name}:")
                if type(value) is dict:
                    if not mapping(value, pad + "  "):
                        return False
                    continue
                items = [_scalar(item) for item in value]  # at the key's indent, as PyYAML
                if None in items:
                    return False
                lines.extend(f"{pad}- {text}" for text in items)
            else:
                text = _scalar(value)
                if text is None:
                    return False
                lines.append(f"{pad}{name}: {text}")
        return True

    return "\n".join(lines) + "\n" if mapping(data, "") else None


def render(entries: Iterable[ArtifactEntry]) -> bytes:
    """The whole dvc.yaml adaptergit writes, deterministic for the same entries."""
    ordered = sorted(entries, key=lambda e: e.name)
    if not ordered:
        return HEADER.encode()
    doc = {
        "artifacts": {e.name: e.to_dict() for e in ordered},
        "metrics": [e.metrics_file for e in ordered],
        "params": [e.params_file for e in ordered],
    }
    return (HEADER + dump_yaml(doc)).encode()


def is_ours(text: str | bytes | None) -> bool:
    """Whether adaptergit may rewrite this dvc.yaml whole: absent, empty, or with our header."""
    if text is None:
        return True
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text.startswith(_MARK) or not text.strip()


def update(existing: bytes | None, entries: Iterable[ArtifactEntry]) -> bytes:
    """The new dvc.yaml: rendered afresh when adaptergit owns it, else merged into the user's file.

    A user's file is changed through ruamel.yaml's round-trip mode: only our artifacts and
    their ``metrics``/``params`` entries are added or replaced, comments and order stay.

    Args:
        existing: the current dvc.yaml, or None when there is none.
        entries: the adapters' entries.

    Returns:
        The file's new bytes (UTF-8).

    Raises:
        InvalidConfig: a user's dvc.yaml larger than 4 MiB, not valid YAML, or whose
            ``artifacts``, ``metrics`` or ``params`` have the wrong shape.
    """
    entries = list(entries)
    if is_ours(existing):
        return render(entries)
    assert existing is not None
    return _merge(existing, entries)


def _merge(existing: bytes, entries: list[ArtifactEntry]) -> bytes:
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: keeps the user's comments, order and style
    yaml.indent(mapping=2, sequence=4, offset=2)
    if len(existing) > MAX_BYTES:
        raise InvalidConfig(DVC_YAML, f"larger than {MAX_BYTES} bytes")
    try:
        data = yaml.load(existing.decode("utf-8")) or {}
    except Exception as exc:  # ruamel raises many kinds; all mean the same to the user
        raise InvalidConfig(DVC_YAML, f"not valid YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise InvalidConfig(DVC_YAML, "expected a mapping at the top")
    for key in ("metrics", "params"):
        if data.get(key) is not None and not isinstance(data[key], list):
            raise InvalidConfig(DVC_YAML, "expected a list of files", key=key)
    artifacts = data.setdefault("artifacts", {})
    if not isinstance(artifacts, dict):
        raise InvalidConfig(DVC_YAML, "expected a mapping of artifact names", key="artifacts")
    for key in ("metrics", "params"):
        if data.get(key) is None:
            data[key] = []
    for entry in entries:
        artifacts[entry.name] = entry.to_dict()
        if entry.metrics_file not in data["metrics"]:
            data["metrics"].append(entry.metrics_file)
        if entry.params_file not in data["params"]:
            data["params"].append(entry.params_file)
    out = io.StringIO()
    try:
        yaml.dump(data, out)
    except Exception as exc:  # a document ruamel reads but cannot write back
        raise InvalidConfig(DVC_YAML, f"cannot be updated ({type(exc).__name__})") from None
    return out.getvalue().encode()


MERGE_DRIVER = "adaptergit-dvc-yaml"
# Larger than any dvc.yaml of adapters; a bigger one is not parsed (the line merge takes it).
MAX_YAML_BYTES = 16 * 1024 * 1024


def _entries_of(raw: bytes | None) -> dict[str, ArtifactEntry] | None:
    """The artifact entries of an adaptergit-written dvc.yaml; None if it is not one."""
    if raw is None or not raw.strip():
        return {}
    if not is_ours(raw) or len(raw) > MAX_YAML_BYTES:
        return None
    import yaml

    try:
        data = yaml.safe_load(raw.decode())
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
        return None
    if data is None:
        return {}
    artifacts = data.get("artifacts") if isinstance(data, dict) else None
    if not isinstance(artifacts, dict):
        return None if artifacts is not None else {}
    try:
        return {
            str(name): ArtifactEntry.from_dict(str(name), entry)
            for name, entry in artifacts.items()
            if isinstance(entry, dict)
        }
    except ValueError:
        return None


def merge3(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> bytes | None:
    """Merge two clones' dvc.yaml as written by adaptergit: every adapter's entry from the side
    that changed it (ours where both did: its folder conflicts too, and the next commit writes
    the entry again); an adapter removed on one side and unchanged on the other is removed.

    Returns:
        The merged file, or None when some side is not adaptergit's (git's line merge decides).
    """
    sides = [_entries_of(raw) for raw in (base, ours, theirs)]
    if any(side is None for side in sides):
        return None
    b, o, t = (side or {} for side in sides)
    merged: dict[str, ArtifactEntry] = {}
    for name in sorted(set(b) | set(o) | set(t)):
        was, mine, other = b.get(name), o.get(name), t.get(name)
        if mine == other or other == was:
            chosen = mine
        elif mine == was:
            chosen = other
        else:  # both changed it: a change or an addition wins over a removal, else ours
            chosen = mine if mine is not None else other
        if chosen is not None:
            merged[name] = chosen
    return render(merged.values())


__all__ = [
    "HEADER",
    "MERGE_DRIVER",
    "ArtifactEntry",
    "dump_yaml",
    "entries_at",
    "entry_for",
    "is_ours",
    "merge3",
    "render",
    "update",
]
