"""The version record: what adaptergit writes as ``adapters/NAME/manifest.json`` for each version."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from adaptergit.adapter import TensorRecord
from adaptergit.errors import InvalidManifest
from adaptergit.fingerprint import BaseFingerprint
from adaptergit.refs import SemVer, validate_name

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
_HEX = re.compile(r"^[0-9a-f]+$")


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], source: str) -> Any:
    if key not in data:
        raise InvalidManifest("missing", key=key, source=source)
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidManifest(f"wrong type {type(value).__name__}", key=key, source=source)
    return value


def _hex(data: dict[str, Any], key: str, length: int, source: str) -> str:
    value = _require(data, key, str, source)
    if len(value) != length or not _HEX.match(value):
        raise InvalidManifest(f"expected {length} lower-case hex digits", key=key, source=source)
    return value


@dataclass(frozen=True, kw_only=True, slots=True)
class WeightsInfo:
    """The weights file of one version: its hashes (sha256 for people, md5 for DVC) and size."""

    file: str
    sha256: str
    md5: str
    size: int
    source_format: str = "safetensors"

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "sha256": self.sha256,
            "md5": self.md5,
            "size": self.size,
            "source_format": self.source_format,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest") -> WeightsInfo:
        if not isinstance(data, dict):
            raise InvalidManifest("not an object", key="weights", source=source)
        size = _require(data, "size", int, source)
        if size < 0:
            raise InvalidManifest("negative", key="size", source=source)
        return cls(
            file=_require(data, "file", str, source),
            sha256=_hex(data, "sha256", 64, source),
            md5=_hex(data, "md5", 32, source),
            size=size,
            source_format=data.get("source_format", "safetensors"),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Manifest:
    """Everything recorded about one adapter version, besides its config and metrics files."""

    schema_version: int = SCHEMA_VERSION
    name: str
    version: str
    parent: str | None
    created: str
    message: str
    peft_type: str
    base_model: BaseFingerprint
    weights: WeightsInfo
    tensors: tuple[TensorRecord, ...]
    tool: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "version": self.version,
            "parent": self.parent,
            "created": self.created,
            "message": self.message,
            "peft_type": self.peft_type,
            "base_model": self.base_model.to_dict(),
            "weights": self.weights.to_dict(),
            "tensors": {t.name: t.to_dict() for t in self.tensors},
            "tool": dict(self.tool),
        }

    def to_json(self) -> bytes:
        return (json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest") -> Manifest:
        if not isinstance(data, dict):
            raise InvalidManifest("not a JSON object", source=source)
        schema = _require(data, "schema_version", int, source)
        if schema > SCHEMA_VERSION:
            raise InvalidManifest(
                f"schema version {schema} is newer than this adaptergit understands "
                f"({SCHEMA_VERSION}); upgrade adaptergit",
                source=source,
            )
        if schema < 1:
            raise InvalidManifest(
                f"unknown schema version {schema}", key="schema_version", source=source
            )
        name = _require(data, "name", str, source)
        version = _require(data, "version", str, source)
        try:
            validate_name(name)
            SemVer.parse(version)
        except Exception as exc:
            raise InvalidManifest(str(exc), source=source) from None
        parent = data.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise InvalidManifest("wrong type", key="parent", source=source)
        tensors_raw = _require(data, "tensors", dict, source)
        tool = data.get("tool", {})
        if not isinstance(tool, dict) or not all(isinstance(v, str) for v in tool.values()):
            raise InvalidManifest("expected an object of strings", key="tool", source=source)
        return cls(
            schema_version=schema,
            name=name,
            version=version,
            parent=parent,
            created=_require(data, "created", str, source),
            message=_require(data, "message", str, source),
            peft_type=_require(data, "peft_type", str, source),
            base_model=BaseFingerprint.from_dict(_require(data, "base_model", dict, source)),
            weights=WeightsInfo.from_dict(_require(data, "weights", dict, source), source),
            tensors=tuple(TensorRecord.from_dict(k, v) for k, v in sorted(tensors_raw.items())),
            tool=dict(tool),
        )

    @classmethod
    def from_json(cls, raw: bytes | str, source: str = "manifest") -> Manifest:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise InvalidManifest(f"not valid JSON ({exc})", source=source) from None
        return cls.from_dict(data, source)


@dataclass(frozen=True, kw_only=True, slots=True)
class Version:
    """One recorded adapter version: where it lives in git and what was recorded for it."""

    name: str
    version: str
    commit: str
    tag: str | None
    created: int  # unix seconds when the version was registered
    manifest: Manifest | None
    metrics: dict[str, Any] = field(default_factory=dict)
    stages: tuple[str, ...] = ()
    config: dict[str, Any] | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def semver(self) -> SemVer:
        return SemVer.parse(self.version)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "commit": self.commit,
            "tag": self.tag,
            "created": self.created,
            "stages": list(self.stages),
            "metrics": self.metrics,
            "manifest": self.manifest.to_dict() if self.manifest else None,
        }
        if self.config is not None:
            data["config"] = self.config
        return data
