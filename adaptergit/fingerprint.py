"""The base-model fingerprint: which exact weights an adapter belongs to, hashed from safetensors.

Two hashes, both hex BLAKE3 and both independent of how the weights are split into shards:

- structure hash: over the sorted (tensor name, dtype, shape) triples, from headers alone;
- content hash: over the sorted (name, dtype, shape, BLAKE3 of the tensor's raw bytes).

Each line hashed is the compact ASCII JSON array of those values followed by a newline, after a
versioned domain line, so the encoding is unambiguous and can evolve. Per-file tensor hashes are
kept in the HashCache, so fingerprinting an unchanged model again reads only its headers.
The Hugging Face cache is searched on the filesystem alone: no huggingface_hub, no network.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptergit.errors import InvalidBaseModel
from adaptergit.hashcache import FileIdentity, HashCache, default_cache
from adaptergit.manifest import STATUS_UNKNOWN, STATUS_VERIFIED, BaseFingerprint
from adaptergit.safetensors_format import Header, TensorSpec, read_header, read_header_from

if TYPE_CHECKING:
    import logging


def _log() -> logging.Logger:
    """This module's logger; `logging` is imported on the first message (3 ms of start-up)."""
    import logging

    return logging.getLogger(__name__)


TENSOR_HASH_KIND = "tensors-blake3"
INDEX_NAME = "model.safetensors.index.json"

_STRUCTURE_DOMAIN = b"adaptergit base-model structure v1\n"
_CONTENT_DOMAIN = b"adaptergit base-model content v1\n"
# Below this size a tensor is hashed on the calling thread: a thread pool costs more than it saves.
_PARALLEL_MIN_BYTES = 256 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# huggingface_hub's REPO_ID_REGEX, plus its bans on "--", ".." and ids over 96 characters.
_HUB_ID = re.compile(r"(\b[\w\-.]+\b/)?\b[\w\-.]+\b")
_PATH_SUFFIXES = (".safetensors", ".json", ".bin", ".pt", ".pth")

Structure = dict[str, tuple[str, tuple[int, ...]]]


def _kind(value: object) -> str:
    return type(value).__name__


# --- the files of a model ---------------------------------------------------------------------


def _index_file(directory: Path) -> Path | None:
    standard = directory / INDEX_NAME
    if standard.is_file():
        return standard
    others = sorted(directory.glob("*.safetensors.index.json"))
    return others[0] if len(others) == 1 else None


def _read_index(index: Path) -> dict[str, str]:
    """The weight_map of a sharded model's index: tensor name -> shard file name."""
    try:
        doc = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidBaseModel(index, f"cannot read the shard index: {exc}") from None
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()
    ):
        raise InvalidBaseModel(index, "the shard index has no weight_map of tensor name to file")
    for shard in set(weight_map.values()):
        parts = Path(shard).parts
        if not parts or Path(shard).is_absolute() or ".." in parts or "\\" in shard:
            raise InvalidBaseModel(index, f"shard {shard!r} is not a file name inside the model")
    return weight_map


def _layout(path: Path) -> tuple[list[Path], dict[str, str] | None]:
    """The safetensors files of a model, and the index's weight_map when it has one."""
    if path.is_file():
        if path.suffix != ".safetensors":
            raise InvalidBaseModel(path, "only .safetensors weights can be fingerprinted")
        return [path], None
    if not path.is_dir():
        raise InvalidBaseModel(path, "no such file or directory")
    index = _index_file(path)
    if index is not None:
        weight_map = _read_index(index)
        files = [path / shard for shard in sorted(set(weight_map.values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise InvalidBaseModel(
                path, f"shard {missing[0]} named in {index.name} is missing ({len(missing)} in all)"
            )
        if not files:
            raise InvalidBaseModel(path, f"{index.name} lists no tensors")
        return files, weight_map
    files = sorted(
        p for p in path.glob("*.safetensors") if p.is_file() and not p.name.startswith(".")
    )
    if not files:
        raise InvalidBaseModel(
            path, "no .safetensors files found (PyTorch .bin weights are not read)"
        )
    return files, None


def model_files(path: Path) -> list[Path]:
    """A model's safetensors files: the shards its index names, else every *.safetensors, or the file."""
    return _layout(Path(path))[0]


def _merge(
    path: Path, shards: list[tuple[Path, Header]], weight_map: dict[str, str] | None
) -> dict[str, tuple[Path, TensorSpec]]:
    """Tensor name -> (shard, spec) over all shards, refusing duplicates and index mismatches."""
    merged: dict[str, tuple[Path, TensorSpec]] = {}
    for shard, header in shards:
        for spec in header.tensors:
            if spec.name in merged:
                raise InvalidBaseModel(
                    path,
                    f"tensor {spec.name!r} is in both {merged[spec.name][0].name} and {shard.name}",
                )
            merged[spec.name] = (shard, spec)
    if weight_map is not None:
        for name, (shard, _) in merged.items():
            if weight_map.get(name) is None:
                raise InvalidBaseModel(path, f"tensor {name!r} in {shard.name} is not in the index")
            if (path / weight_map[name]) != shard:
                raise InvalidBaseModel(
                    path, f"tensor {name!r} is in {shard.name}, the index says {weight_map[name]}"
                )
        absent = sorted(set(weight_map) - set(merged))
        if absent:
            raise InvalidBaseModel(
                path, f"tensor {absent[0]!r} in the index is in no shard ({len(absent)} in all)"
            )
    return merged


def read_structure(path: Path) -> Structure:
    """Tensor name -> (dtype, shape) over all shards, sorted by name, from headers only."""
    path = Path(path)
    files, weight_map = _layout(path)
    merged = _merge(path, [(f, read_header(f)) for f in files], weight_map)
    return {name: (merged[name][1].dtype, merged[name][1].shape) for name in sorted(merged)}


# --- hashing ----------------------------------------------------------------------------------


def _line(values: list[Any]) -> bytes:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=True).encode("ascii") + b"\n"


def structure_hash(structure: Structure) -> str:
    """Hex BLAKE3 of the sorted (name, dtype, shape) triples."""
    import blake3

    hasher = blake3.blake3(_STRUCTURE_DOMAIN)
    for name in sorted(structure):
        dtype, shape = structure[name]
        hasher.update(_line([name, dtype, list(shape)]))
    return str(hasher.hexdigest())


def _valid_digests(value: Any, header: Header) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == len(header.tensors)
        and all(
            isinstance(value.get(t.name), str) and _HEX64.fullmatch(value[t.name])
            for t in header.tensors
        )
    )


def _hash_tensors(fd: int, header: Header) -> dict[str, str]:
    """BLAKE3 of each tensor's raw bytes, read through a memory map without copying."""
    import blake3

    parallel = blake3.blake3(max_threads=blake3.blake3.AUTO)  # reset() reuses its thread pool
    serial = blake3.blake3()
    digests: dict[str, str] = {}
    with (
        mmap.mmap(fd, header.file_size, access=mmap.ACCESS_READ) as mapped,
        memoryview(mapped) as view,
    ):
        if hasattr(mapped, "madvise") and hasattr(mmap, "MADV_SEQUENTIAL"):
            mapped.madvise(mmap.MADV_SEQUENTIAL)
        for spec in header.tensors:  # in file order, so the reads are sequential
            hasher = parallel if spec.nbytes >= _PARALLEL_MIN_BYTES else serial
            hasher.reset()
            with view[spec.start : spec.end] as data:
                hasher.update(data)
            digests[spec.name] = hasher.hexdigest()
    return digests


def file_tensor_hashes(path: Path, cache: HashCache) -> tuple[Header, dict[str, str]]:
    """A safetensors file's header and per-tensor BLAKE3s, from the cache while it is unchanged.

    Each tensor's raw bytes (little-endian, as stored) are hashed through a memory map; the
    result is cached by the file's (size, mtime_ns, inode), as DVC's state database keys
    hashes, so an unchanged file costs one header read.

    Args:
        path: the ``.safetensors`` file (a link is resolved; the cache keys the real file).
        cache: the hash cache.

    Returns:
        The validated header, and tensor name -> BLAKE3 hex digest.

    Raises:
        InvalidSafetensors: the file breaks the safetensors format.
        OSError: the file cannot be opened or read.
    """
    real = os.path.realpath(path)
    observed_ns = time.time_ns()
    with open(real, "rb") as stream:
        stat = os.fstat(stream.fileno())
        identity = FileIdentity.of(real, stat, observed_ns=observed_ns)
        header = read_header_from(stream, stat.st_size, path)
        cached = cache.get(Path(real), TENSOR_HASH_KIND, identity=identity)
        if cached is not None and _valid_digests(cached, header):
            return header, {t.name: cached[t.name] for t in header.tensors}
        digests = _hash_tensors(stream.fileno(), header)
    cache.put(Path(real), TENSOR_HASH_KIND, digests, identity=identity)
    return header, digests


def fingerprint_model(
    path: Path,
    *,
    name_or_path: str | None = None,
    revision: str | None = None,
    cache: HashCache | None = None,
) -> BaseFingerprint:
    """Hash the safetensors weights at `path` (a model directory or one file).

    Shards are merged by tensor name (through ``model.safetensors.index.json`` when there is
    one), so the hashes do not depend on how the model is split; see the module's doc for the
    exact encoding.

    Args:
        path: a folder of ``*.safetensors`` shards (with their index, if sharded), or one file.
        name_or_path: the name to record (default: `path` as text).
        revision: the revision to record (a Hub commit), if known.
        cache: the hash cache (default: the user's, `default_cache`).

    Returns:
        A ``verified`` fingerprint: structure and content hashes, tensor count, and the
        tensors' total size in bytes.

    Raises:
        InvalidBaseModel: no such path, no safetensors weights, a bad index, or shards that do
            not form one model (a tensor twice, or not where the index says).
        InvalidSafetensors: a shard breaks the safetensors format.
    """
    import blake3

    path = Path(path)
    cache = cache if cache is not None else default_cache()
    files, weight_map = _layout(path)
    shards: list[tuple[Path, Header]] = []
    digests: dict[str, str] = {}
    for file in files:
        header, file_digests = file_tensor_hashes(file, cache)
        shards.append((file, header))
        for name, digest in file_digests.items():
            digests.setdefault(name, digest)  # a duplicate name is refused by _merge below
    merged = _merge(path, shards, weight_map)
    names = sorted(merged)
    content = blake3.blake3(_CONTENT_DOMAIN)
    for name in names:
        spec = merged[name][1]
        content.update(_line([name, spec.dtype, list(spec.shape), digests[name]]))
    structure = {name: (merged[name][1].dtype, merged[name][1].shape) for name in names}
    return BaseFingerprint(
        name_or_path=name_or_path if name_or_path is not None else str(path),
        revision=revision,
        status=STATUS_VERIFIED,
        structure_hash=structure_hash(structure),
        content_hash=str(content.hexdigest()),
        tensors=len(names),
        size=sum(merged[name][1].nbytes for name in names),
    )


# --- finding the base model -------------------------------------------------------------------


def hub_cache_dir() -> Path:
    """Where huggingface_hub keeps models: the same variables, in the same order, as it reads."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface"
    )
    return Path(home).expanduser() / "hub"


def is_hub_id(name: str) -> bool:
    """Whether `name` could be a Hugging Face model id such as "org/name" or "gpt2"."""
    return (
        len(name) <= 96
        and _HUB_ID.fullmatch(name) is not None
        and "--" not in name
        and ".." not in name
        and not name.lower().endswith(_PATH_SUFFIXES)
    )


def _safe_ref(revision: str) -> bool:
    parts = revision.split("/")
    return all(part and part not in (".", "..") for part in parts) and "\\" not in revision


def find_in_hub_cache(repo_id: str, revision: str | None) -> tuple[Path, str] | None:
    """The snapshot directory and commit of `repo_id` at `revision` (default main), if cached.

    Read from the Hugging Face cache's layout (``models--ORG--NAME/refs/REV`` and
    ``snapshots/COMMIT``, as huggingface_hub writes it) on the filesystem alone: no
    network, no huggingface_hub import.

    Args:
        repo_id: a Hub model id (``org/name``).
        revision: a branch, tag or 40-hex commit; None means ``main``.

    Returns:
        (snapshot folder, commit id), or None when it is not cached.
    """
    repo = hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    wanted = revision or "main"
    if _COMMIT.fullmatch(wanted):
        commit = wanted
    elif _safe_ref(wanted):
        try:
            commit = (repo / "refs" / wanted).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not _COMMIT.fullmatch(commit):
            _log().debug("hub cache: refs/%s of %s holds no commit hash", wanted, repo_id)
            return None
    else:
        return None
    snapshot = repo / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    try:
        model_files(snapshot)
    except InvalidBaseModel as exc:  # e.g. only config.json or only .bin weights downloaded
        _log().debug("hub cache: %s is not a usable safetensors model: %s", snapshot, exc)
        return None
    return snapshot, commit


def _snapshot_commit(path: Path) -> str | None:
    """The commit of a path inside a hub-cache snapshot (models--*/snapshots/<commit>/...)."""
    for parent in [path.absolute(), *path.absolute().parents]:
        if (
            _COMMIT.fullmatch(parent.name)
            and parent.parent.name == "snapshots"
            and parent.parent.parent.name.startswith("models--")
        ):
            return parent.name
    return None


def resolve_base_model(
    base_model: str | Path | None, adapter_config: dict[str, Any]
) -> tuple[Path | None, str | None, str | None]:
    """(local path or None, name_or_path, revision) of the base model an adapter belongs to.

    A given path that exists wins; otherwise the name (given, or the adapter config's
    base_model_name_or_path) is looked up in the Hugging Face cache. When found there, the
    revision returned is the resolved commit hash, since branch names move.
    """
    configured = adapter_config.get("base_model_name_or_path")
    configured = configured if isinstance(configured, str) and configured else None
    config_revision = adapter_config.get("revision")
    config_revision = (
        config_revision if isinstance(config_revision, str) and config_revision else None
    )

    if base_model is not None and str(base_model):
        given = str(base_model)
        candidate = Path(given).expanduser()
        if candidate.exists():
            # A relative path means nothing once the command is over: record it absolute.
            label = given if Path(given).is_absolute() else str(candidate.resolve())
            return candidate, label, _snapshot_commit(candidate)
        if isinstance(base_model, Path) or not is_hub_id(given):
            raise InvalidBaseModel(
                candidate, "does not exist and is not a Hugging Face model id like org/name"
            )
        name: str | None = given
        revision = config_revision if given == configured else None
    else:
        name, revision = configured, config_revision
        if name is None:
            return None, None, revision
        local = Path(name).expanduser()
        if local.is_absolute() and local.exists():  # PEFT records local paths as given
            return local, name, _snapshot_commit(local)

    if name is not None and is_hub_id(name):
        found = find_in_hub_cache(name, revision)
        if found is not None:
            return found[0], name, found[1]
    return None, name, revision


def fingerprint_for_adapter(
    base_model: str | Path | None,
    adapter_config: dict[str, Any],
    *,
    cache: HashCache | None = None,
) -> BaseFingerprint:
    """Fingerprint the adapter's base model, or record it as "unknown" when it is not on disk.

    Args:
        base_model: a folder or file, or a Hub id looked up in the local Hugging Face cache;
            None takes the adapter config's ``base_model_name_or_path``.
        adapter_config: the adapter's ``adapter_config.json``.
        cache: the hash cache (default: the user's).

    Returns:
        A ``verified`` fingerprint (`fingerprint_model`), or an ``unknown`` one carrying only
        the name and revision.

    Raises:
        InvalidBaseModel, InvalidSafetensors: as `fingerprint_model`.
    """
    path, name, revision = resolve_base_model(base_model, adapter_config)
    if path is None:
        return BaseFingerprint(
            name_or_path=name,
            revision=revision,
            status=STATUS_UNKNOWN,
            structure_hash=None,
            content_hash=None,
            tensors=None,
            size=None,
        )
    return fingerprint_model(path, name_or_path=name, revision=revision, cache=cache)
