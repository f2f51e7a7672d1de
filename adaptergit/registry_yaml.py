"""The registry's ``dvc.yaml``: each adapter as a DVC artifact, with its metrics and params files.

With it, the plain tools read the registry: ``dvc metrics show``, ``dvc metrics diff A B``,
``dvc params diff`` (the adapter's ``adapter_config.json``) and ``dvc artifacts`` all see every
adapter. adaptergit rewrites the file, in the same git commit as each version, from what HEAD
records for every adapter. A ``dvc.yaml`` that adaptergit did not write (no header line) is kept:
adaptergit then only adds or updates its own entries, through ruamel.yaml (a DVC dependency) so
that the rest of the file, comments included, stays as it was.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from adaptergit import yamltext
from adaptergit.config import ADAPTERS_DIR
from adaptergit.errors import AdapterGitError, InvalidConfig
from adaptergit.fingerprint import BaseFingerprint, is_hub_id

DVC_YAML = "dvc.yaml"
HEADER = (
    "# Written by adaptergit: one DVC artifact per adapter, with its metrics and params.\n"
    "# adaptergit rewrites this file on each commit; delete these lines to manage it yourself\n"
    "# (adaptergit will then only add or update its own entries).\n"
)
if TYPE_CHECKING:
    from adaptergit.repo import Repo

_MARK = HEADER.splitlines()[0]


@dataclass(frozen=True, kw_only=True, slots=True)
class ArtifactEntry:
    """What dvc.yaml says about one adapter."""

    name: str
    desc: str
    labels: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"{ADAPTERS_DIR}/{self.name}"

    @property
    def metrics_file(self) -> str:
        return f"{self.path}/metrics.json"

    @property
    def params_file(self) -> str:
        return f"{self.path}/adapter_config.json"

    def to_dict(self) -> dict[str, Any]:
        """DVC's artifact schema: path, type, desc, labels, meta."""
        data: dict[str, Any] = {"path": self.path, "type": "model", "desc": self.desc}
        if self.labels:
            data["labels"] = list(self.labels)
        if self.meta:
            data["meta"] = dict(self.meta)
        return data

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> ArtifactEntry:
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
    """The artifact entry of an adapter from its latest version's config and base fingerprint."""
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


def entries_at(repo: Repo, commit: str | None) -> dict[str, ArtifactEntry]:
    """The entry of every adapter with a manifest at `commit`, read from git objects."""
    import json

    from adaptergit.manifest import MANIFEST_NAME, Manifest

    found: dict[str, ArtifactEntry] = {}
    if commit is None:
        return found
    for name in repo.git.list_dir(commit, ADAPTERS_DIR):
        raw = repo.git.read_blob(commit, f"{ADAPTERS_DIR}/{name}/{MANIFEST_NAME}")
        if raw is None:
            continue
        try:
            manifest = Manifest.from_json(raw)
            raw_config = repo.git.read_blob(commit, f"{ADAPTERS_DIR}/{name}/adapter_config.json")
            config = json.loads(raw_config) if raw_config else None
        except (AdapterGitError, ValueError):
            continue  # a damaged adapter is not listed rather than failing every commit
        found[name] = entry_for(
            name,
            manifest.peft_type,
            config if isinstance(config, dict) else None,
            manifest.base_model,
        )
    return found


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
    return (HEADER + yamltext.dump(doc)).encode()


def is_ours(text: str | bytes | None) -> bool:
    if text is None:
        return True
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return text.startswith(_MARK) or not text.strip()


def update(existing: bytes | None, entries: Iterable[ArtifactEntry]) -> bytes:
    """The new dvc.yaml: rendered afresh when adaptergit owns it, else merged into the user's file."""
    entries = list(entries)
    if is_ours(existing):
        return render(entries)
    assert existing is not None
    return _merge(existing, entries)


def _merge(existing: bytes, entries: list[ArtifactEntry]) -> bytes:
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: keeps the user's comments, order and style
    yaml.indent(mapping=2, sequence=4, offset=2)
    try:
        data = yaml.load(existing.decode()) or {}
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
    yaml.dump(data, out)
    return out.getvalue().encode()


__all__ = [
    "DVC_YAML",
    "HEADER",
    "ArtifactEntry",
    "entries_at",
    "entry_for",
    "is_ours",
    "render",
    "update",
]
