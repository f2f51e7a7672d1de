"""The version record: what adaptergit writes as ``adapters/NAME/manifest.json`` for each version.

Records are frozen dataclasses; ``to_dict`` is derived with `dataclasses.asdict` and ``from_dict``
validates, naming the offending key path in errors (``weights.size``, ``tensors.<name>.shape``),
in the manner of pypa/packaging's ``direct_url.py``. A manifest carries ``schema_version``; one
newer than this adaptergit understands raises `NewerSchema`, which readers treat as "skip this
version with a warning" and writers as "refuse to touch this adapter".
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from adaptergit import strictjson
from adaptergit.errors import InvalidManifest
from adaptergit.refs import SemVer, validate_name
from adaptergit.safetensors_format import DTYPE_SIZES

SCHEMA_VERSION = 1
MAX_MANIFEST_BYTES = 64 * 1024 * 1024

_HEX = re.compile(r"[0-9a-f]+")
_HEX64 = re.compile(r"[0-9a-f]{64}")

# The base model's fingerprint status: hashed from its files, or not known (no base given).
STATUS_VERIFIED = "verified"
STATUS_UNKNOWN = "unknown"
STATUSES = (STATUS_VERIFIED, STATUS_UNKNOWN)


class NewerSchema(InvalidManifest):
    """A manifest written by a newer adaptergit (a higher ``schema_version``)."""

    def __init__(self, schema: int, source: str) -> None:
        self.schema = schema
        super().__init__(
            f"schema version {schema} is newer than this adaptergit understands "
            f"({SCHEMA_VERSION}); upgrade adaptergit",
            source=source,
        )


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """A record's field names (`dataclasses.fields` is slow enough to matter in ``log``)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _json_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """`dataclasses.asdict` factory: tuples become JSON lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in items}


class _Fields:
    """Typed access to one JSON object of a manifest; errors name ``prefix.key`` and the source."""

    def __init__(self, data: Any, source: str, prefix: str = "") -> None:
        self.source = source
        self.prefix = prefix
        if not isinstance(data, dict):
            raise InvalidManifest(
                f"must be an object, got {type(data).__name__}",
                key=prefix.rstrip(".") or None,
                source=source,
            )
        self.data: dict[str, Any] = data

    def error(self, key: str, reason: str) -> InvalidManifest:
        return InvalidManifest(reason, key=f"{self.prefix}{key}", source=self.source)

    def only(self, allowed: tuple[str, ...]) -> None:
        unknown = sorted(k for k in self.data if k not in allowed)
        if unknown:
            raise self.error(unknown[0], "unknown field")

    def get(self, key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
        if key not in self.data:
            if optional:
                return None
            raise self.error(key, "missing")
        value = self.data[key]
        if value is None and optional:
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise self.error(key, f"wrong type {type(value).__name__}")
        return value

    def count(self, key: str, *, optional: bool = False) -> int | None:
        value = self.get(key, int, optional=optional)
        if value is not None and value < 0:
            raise self.error(key, "must not be negative")
        return value  # type: ignore[no-any-return]

    def hexdigest(self, key: str, length: int, *, optional: bool = False) -> str | None:
        value = self.get(key, str, optional=optional)
        if value is not None and (len(value) != length or not _HEX.fullmatch(value)):
            raise self.error(key, f"expected {length} lower-case hex digits")
        return value  # type: ignore[no-any-return]

    def nested(self, key: str) -> _Fields:
        return _Fields(self.get(key, dict), self.source, f"{self.prefix}{key}.")


@dataclass(frozen=True, kw_only=True, slots=True)
class TensorRecord:
    """One tensor of an adapter as the manifest records it (its name is its key there).

    Attributes:
        name: the tensor's name in ``adapter_model.safetensors``.
        dtype: its safetensors dtype (``F32``, ``BF16``, ...).
        shape: its shape.
        blake3: BLAKE3 of its raw bytes, hex.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    blake3: str

    def to_dict(self) -> dict[str, Any]:
        """Its manifest entry: ``dtype``, ``shape`` (a list) and ``blake3``; the name is the key."""
        data = dataclasses.asdict(self, dict_factory=_json_dict)
        del data["name"]
        return data

    @classmethod
    def _checked(cls, name: str, dtype: str, shape: tuple[int, ...], blake3: str) -> TensorRecord:
        """A record of values already checked, built without the generated ``__init__`` (whose
        keyword call is most of the cost of reading a manifest: ``log`` builds thousands)."""
        record = object.__new__(cls)
        set_field = object.__setattr__
        set_field(record, "name", name)
        set_field(record, "dtype", dtype)
        set_field(record, "shape", shape)
        set_field(record, "blake3", blake3)
        return record

    @classmethod
    def from_dict(
        cls, name: str, data: Any, source: str = "manifest", prefix: str = ""
    ) -> TensorRecord:
        """Build a record from its manifest entry; errors name the key as ``<tensor>.<field>``
        (after `prefix`: ``tensors.`` within a manifest)."""

        # The common case, a well-formed entry, checked in one expression: `log` reads every
        # tensor of every version. Anything else takes the path below, which names the fault.
        if (
            type(data) is dict
            and len(data) == 3
            and type(dtype := data.get("dtype")) is str
            and dtype in DTYPE_SIZES
            and type(shape := data.get("shape")) is list
            and all(type(d) is int and d >= 0 for d in shape)
            and type(digest := data.get("blake3")) is str
            and _HEX64.fullmatch(digest)
            and type(name) is str
            and name
        ):
            return cls._checked(name, dtype, tuple(shape), digest)

        def bad(reason: str, key: str) -> InvalidManifest:
            return InvalidManifest(reason, key=f"{prefix}{key}", source=source)

        if not isinstance(name, str) or not name:
            raise bad("tensor name must be a non-empty string", str(name))
        if not isinstance(data, dict):
            raise bad(f"tensor entry must be an object, got {type(data).__name__}", name)
        missing = {"dtype", "shape", "blake3"} - data.keys()
        if missing:
            raise bad(f"tensor entry lacks {', '.join(sorted(missing))}", f"{name}.{min(missing)}")
        unknown = sorted(map(str, data.keys() - {"dtype", "shape", "blake3"}))
        if unknown:
            raise bad(
                f"tensor entry has unknown fields {', '.join(unknown)}", f"{name}.{unknown[0]}"
            )
        dtype = data["dtype"]
        if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
            raise bad(f"unknown safetensors dtype {dtype!r}", f"{name}.dtype")
        shape = data["shape"]
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            raise bad(
                f"shape must be a list of non-negative integers, got {shape!r}", f"{name}.shape"
            )
        digest = data["blake3"]
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise bad(f"blake3 must be 64 lowercase hex digits, got {digest!r}", f"{name}.blake3")
        return cls(name=name, dtype=dtype, shape=tuple(shape), blake3=digest)


_HEX_RUN = re.compile(r"[0-9a-f]*")


def _well_formed_tensors(raw: dict[str, Any]) -> tuple[TensorRecord, ...] | None:
    """The records of a manifest's tensor entries, sorted by name, when every entry is well formed
    (what `TensorRecord.from_dict` accepts, checked in one loop and one regex for all digests:
    ``log`` reads thousands of manifests); None otherwise, and the caller checks entry by entry."""
    records = []
    digests = []
    for name, entry in sorted(raw.items()):
        if type(entry) is not dict or len(entry) != 3 or type(name) is not str or not name:
            return None
        dtype, shape, digest = entry.get("dtype"), entry.get("shape"), entry.get("blake3")
        if (
            type(dtype) is not str
            or dtype not in DTYPE_SIZES
            or type(shape) is not list
            or type(digest) is not str
            or len(digest) != 64
        ):
            return None
        for dim in shape:
            if type(dim) is not int or dim < 0:
                return None
        digests.append(digest)
        records.append(TensorRecord._checked(name, dtype, tuple(shape), digest))
    if not records or not _HEX_RUN.fullmatch("".join(digests)):
        return None
    return tuple(records)


@dataclass(frozen=True, kw_only=True, slots=True)
class BaseFingerprint:
    """The base model an adapter version was made for, and how sure we are of its weights.

    Attributes:
        name_or_path: the hub id or folder the user named, or None.
        revision: the hub snapshot's commit, when the base came from the Hugging Face cache.
        status: `STATUS_VERIFIED` (hashed from its files) or `STATUS_UNKNOWN`.
        structure_hash: BLAKE3 over (name, dtype, shape) of every tensor (see `fingerprint`).
        content_hash: BLAKE3 over the same plus every tensor's own BLAKE3.
        tensors: how many tensors the base has.
        size: the bytes of tensor data.
    """

    name_or_path: str | None
    revision: str | None
    status: str
    structure_hash: str | None
    content_hash: str | None
    tensors: int | None
    size: int | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields, as the manifest's ``base_model`` holds it."""
        return dataclasses.asdict(self, dict_factory=_json_dict)

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest", prefix: str = "") -> BaseFingerprint:
        """Validate a dict written by `to_dict`; errors name the offending key.

        Args:
            data: the parsed JSON object.
            source: what was read (a path and commit), for messages.
            prefix: the key path before these keys (``base_model.`` within a manifest).

        Raises:
            InvalidManifest: not an object, a missing or unknown key, a bad status, hash (64 hex
                digits) or count, or values that contradict the status (a ``verified`` base needs
                every hash and count, an ``unknown`` one has none).
        """
        names = _field_names(cls)
        fields = _Fields(data, source, prefix)
        fields.only(names)
        for key in names:
            if key not in fields.data:
                raise fields.error(key, "missing")
        for key in ("name_or_path", "revision"):
            value = fields.get(key, str, optional=True)
            if value == "":
                raise fields.error(key, "expected a non-empty string or null")
        status = fields.get("status", str)
        if status not in STATUSES:
            raise fields.error("status", f"expected one of {', '.join(STATUSES)}, got {status!r}")
        for key in ("structure_hash", "content_hash"):
            fields.hexdigest(key, 64, optional=True)
        for key in ("tensors", "size"):
            fields.count(key, optional=True)
        for key in ("structure_hash", "content_hash", "tensors", "size"):
            if status == STATUS_VERIFIED and fields.data[key] is None:
                raise fields.error(key, "a verified base model needs a value here")
            if status == STATUS_UNKNOWN and fields.data[key] is not None:
                raise fields.error(key, "an unknown base model cannot have a value here")
        return cls(**{key: fields.data[key] for key in names})

    @property
    def short(self) -> str:
        """The first 12 hex digits of the content hash, or ``unknown``."""
        return self.content_hash[:12] if self.content_hash else "unknown"


@dataclass(frozen=True, kw_only=True, slots=True)
class WeightsInfo:
    """The weights file of one version: its hashes (sha256 for people, md5 for DVC) and size.

    Attributes:
        file: the file name in the adapter folder (``adapter_model.safetensors``).
        sha256: SHA-256 of the file, hex.
        md5: MD5 of the file, hex: DVC's object id in its cache and remotes.
        size: the file's size in bytes.
        source_format: ``safetensors``, or ``pytorch`` when converted from a pickle.
    """

    file: str
    sha256: str
    md5: str
    size: int
    source_format: str = "safetensors"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields, as the manifest's ``weights`` holds it."""
        return dataclasses.asdict(self, dict_factory=_json_dict)

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest", prefix: str = "") -> WeightsInfo:
        """Validate a dict written by `to_dict`; errors name the offending key.

        Args:
            data: the parsed JSON object.
            source: what was read, for messages.
            prefix: the key path before these keys (``weights.`` within a manifest).

        Raises:
            InvalidManifest: not an object, an unknown key, a file that is not a plain file name,
                a sha256 that is not 64 hex digits or an md5 not 32, or a size that is not a count
                of bytes.
        """
        fields = _Fields(data, source, prefix)
        fields.only(_field_names(cls))
        file = fields.get("file", str)
        if not file or "/" in file or "\\" in file or file in (".", ".."):
            raise fields.error("file", "expected a plain file name")
        sha256, md5 = fields.hexdigest("sha256", 64), fields.hexdigest("md5", 32)
        size = fields.count("size")
        source_format = fields.get("source_format", str, optional=True) or "safetensors"
        assert sha256 is not None and md5 is not None and size is not None
        return cls(file=file, sha256=sha256, md5=md5, size=size, source_format=source_format)


@dataclass(frozen=True, kw_only=True, slots=True)
class Manifest:
    """Everything recorded about one adapter version, besides its config and metrics files.

    Attributes:
        schema_version: the manifest format (`SCHEMA_VERSION` when written by this adaptergit).
        name: the adapter's registry name.
        version: its version, ``vX.Y.Z``.
        parent: the version it was committed after, or None for the first.
        created: when it was committed, ISO 8601 in UTC.
        message: the user's message.
        peft_type: PEFT's ``peft_type`` from the config (``LORA``, ``IA3``, ...).
        base_model: the base model's fingerprint.
        weights: the weights file's hashes and size.
        tensors: every tensor's dtype, shape and BLAKE3, sorted by name.
        tool: versions of adaptergit, Python and the libraries that wrote it.
    """

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
        """The manifest as its file holds it: the fields, with ``tensors`` an object keyed by
        tensor name (each `TensorRecord.to_dict`), in the order the file has them.
        """
        # The tensors are keyed by name in the file; asdict would copy them first as a list.
        data = dataclasses.asdict(dataclasses.replace(self, tensors=()), dict_factory=_json_dict)
        data["tensors"] = {t.name: t.to_dict() for t in self.tensors}
        return data

    def to_json(self) -> bytes:
        """The manifest file's bytes: indented UTF-8 JSON ending in a newline."""
        return (json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest") -> Manifest:
        """Validate a parsed manifest.

        Raises:
            NewerSchema: written by a newer adaptergit.
            InvalidManifest: anything else wrong, naming the key path.
        """
        fields = _Fields(data, source)
        schema = fields.get("schema_version", int)
        if schema > SCHEMA_VERSION:
            raise NewerSchema(schema, source)
        if schema < 1:
            raise fields.error("schema_version", f"unknown schema version {schema}")
        fields.only(_field_names(cls))
        name = fields.get("name", str)
        version = fields.get("version", str)
        try:
            validate_name(name)
        except InvalidManifest:
            raise
        except Exception as exc:
            raise fields.error("name", str(exc)) from None
        if not SemVer.is_valid(version):
            raise fields.error("version", f"{version!r} is not a version vX.Y.Z")
        parent = fields.get("parent", str, optional=True)
        if parent is not None and not SemVer.is_valid(parent):
            raise fields.error("parent", f"{parent!r} is not a version vX.Y.Z")
        tensors_raw = fields.get("tensors", dict)
        tool = fields.get("tool", dict, optional=True) or {}
        if not all(isinstance(v, str) for v in tool.values()):
            raise fields.error("tool", "expected an object of strings")
        return cls(
            schema_version=schema,
            name=name,
            version=version,
            parent=parent,
            created=fields.get("created", str),
            message=fields.get("message", str),
            peft_type=fields.get("peft_type", str),
            base_model=BaseFingerprint.from_dict(
                fields.get("base_model", dict), source, "base_model."
            ),
            weights=WeightsInfo.from_dict(fields.get("weights", dict), source, "weights."),
            tensors=_well_formed_tensors(tensors_raw)
            or tuple(
                TensorRecord.from_dict(k, v, source, "tensors.")
                for k, v in sorted(tensors_raw.items())
            ),
            tool=dict(tool),
        )

    @classmethod
    def from_json(cls, raw: bytes | str, source: str = "manifest") -> Manifest:
        """Parse a manifest file's bytes (strict, bounded JSON; see `strictjson`).

        Args:
            raw: the file's bytes (at most `MAX_MANIFEST_BYTES`, 64 MiB), or its text.
            source: what was read (``adapters/NAME/manifest.json at abc1234``), for messages.

        Raises:
            NewerSchema: written by a newer adaptergit.
            InvalidManifest: not strict JSON (duplicate keys, NaN, too large), or a field that does
                not validate (see `from_dict`), naming the key path.
        """
        try:
            data = strictjson.loads(raw, source, max_bytes=MAX_MANIFEST_BYTES, max_depth=None)
        except strictjson.JsonError as exc:
            raise InvalidManifest(exc.reason, source=source) from None
        return cls.from_dict(data, source)


@dataclass(frozen=True, kw_only=True, slots=True)
class Version:
    """One recorded adapter version: where it lives in git and what was recorded for it.

    Attributes:
        name: the adapter's name.
        version: ``vX.Y.Z``.
        commit: the git commit that holds it.
        tag: its registration tag ``NAME@vX.Y.Z``, or None when it was named by a revision.
        created: when it was registered, unix seconds (the tag's date).
        manifest: its manifest.
        metrics: its metrics (``metrics.json``), nested as recorded.
        stages: the GTO stages it holds.
        config: its ``adapter_config.json`` when asked for (``show``, ``diff``), else None.
    """

    name: str
    version: str
    commit: str
    tag: str | None
    created: int
    manifest: Manifest
    metrics: dict[str, Any] = field(default_factory=dict)
    stages: tuple[str, ...] = ()
    config: dict[str, Any] | None = None

    @property
    def ref(self) -> str:
        """``NAME@vX.Y.Z``: how users name this version."""
        return f"{self.name}@{self.version}"

    @property
    def semver(self) -> SemVer:
        """The version, parsed (`adaptergit.refs.SemVer`).

        Raises:
            InvalidVersion: `version` is not ``vX.Y.Z`` (a revision label of ``NAME@REV``).
        """
        return SemVer.parse(self.version)

    @property
    def weights(self) -> WeightsInfo:
        """The manifest's weights record."""
        return self.manifest.weights

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the fields, ``ref``, and the manifest as its file holds it.

        Written by hand, not with `dataclasses.asdict`: it adds the derived ``ref``, writes the
        manifest through `Manifest.to_dict` (tensors keyed by name, as in the file, which `asdict`
        would turn into a list) and leaves ``config`` out when it was not read.
        """
        data: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "config"
        }
        data["ref"] = self.ref
        data["stages"] = list(self.stages)
        data["manifest"] = self.manifest.to_dict()
        if self.config is not None:
            data["config"] = self.config
        return data

    @classmethod
    def of_manifest(cls, manifest: Manifest, **known: Any) -> Version:
        """A version known only from its manifest (a work-tree copy): no commit or tag."""
        values: dict[str, Any] = {
            "name": manifest.name,
            "version": manifest.version,
            "commit": "",
            "tag": None,
            "created": 0,
            **known,
        }
        return cls(manifest=manifest, **values)


__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "STATUS_UNKNOWN",
    "STATUS_VERIFIED",
    "BaseFingerprint",
    "Manifest",
    "NewerSchema",
    "TensorRecord",
    "Version",
    "WeightsInfo",
]
