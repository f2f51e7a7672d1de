"""The adapter on disk: finding its files, reading its config, scanning and converting weights."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from adaptergit import peftkeys, strictjson, weightscan
from adaptergit.config import DEFAULT_REGEX_TIMEOUT, Limits
from adaptergit.errors import (
    AdapterGitError,
    InvalidAdapter,
    InvalidConfig,
    InvalidSafetensors,
    MissingDependency,
    UnsafePickle,
)
from adaptergit.fsutil import open_regular
from adaptergit.layout import CONFIG_FILE, PICKLE_FILE, WEIGHTS_FILE
from adaptergit.manifest import TensorRecord
from adaptergit.patterns import BoundedPattern, PatternError, PatternTimeout
from adaptergit.safetensors_format import (
    Header,
    TensorSpec,
    parse_header,
    read_header,
    read_prefix,
)
from adaptergit.weightscan import TensorCheck

if TYPE_CHECKING:
    import threading

# adapter_config.json is a few kB; anything this large is not one, and is refused unparsed.
MAX_CONFIG_SIZE = 16 * 1024 * 1024

UNTRAINED_LORA_WARNING = "LoRA B matrices are all zero: this adapter looks untrained"


# --- records ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class WeightsScan:
    """What one read of a safetensors weights file learned: whole-file hashes, tensors, warnings."""

    size: int
    sha256: str
    md5: str
    tensors: tuple[TensorRecord, ...]
    metadata: dict[str, str] | None
    warnings: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class AdapterSource:
    """An adapter directory as found: parsed config, the config's exact bytes, the weights file."""

    directory: Path
    config: dict[str, Any]
    config_bytes: bytes
    weights_path: Path
    weights_format: str  # "safetensors" | "pytorch"


# --- the directory and its config ---------------------------------------------------------------


def open_adapter_source(src: Path | str) -> AdapterSource:
    """Find an adapter's config and weights in `src`, preferring safetensors over a pickle."""
    directory = Path(src)
    if not directory.exists():
        raise InvalidAdapter(directory, "no such directory")
    if not directory.is_dir():
        raise InvalidAdapter(
            directory,
            f"not a directory; expected an adapter directory holding {CONFIG_FILE} "
            f"and {WEIGHTS_FILE}",
        )
    config_path = directory / CONFIG_FILE
    for path in (config_path, directory / WEIGHTS_FILE, directory / PICKLE_FILE):
        if os.path.lexists(path) and not (path.is_file() or path.is_dir()):  # a FIFO blocks
            raise InvalidAdapter(directory, f"{path.name} is not a regular file")
    if not config_path.is_file():
        raise InvalidAdapter(
            directory, f"{CONFIG_FILE} not found; the directory holds {_contents(directory)}"
        )
    weights_path = directory / WEIGHTS_FILE
    weights_format = "safetensors"
    if not weights_path.is_file():
        weights_path = directory / PICKLE_FILE
        weights_format = "pytorch"
        if not weights_path.is_file():
            raise InvalidAdapter(
                directory,
                f"no weights: expected {WEIGHTS_FILE} (or {PICKLE_FILE}); "
                f"the directory holds {_contents(directory)}",
            )
    _refuse_lfs_pointer(weights_path)
    config, config_bytes = load_adapter_config(config_path)
    if str(config.get("peft_type", "")).upper() in _COMPOSITE_METHODS:
        parts = sorted(name for name in find_adapters(directory) if name != DEFAULT_ADAPTER)
        raise InvalidAdapter(
            directory,
            f"an X-LoRA adapter (peft_type {config['peft_type']}) keeps its sub-adapters in "
            f"folders of their own ({', '.join(parts) or 'none found'}): adaptergit records one "
            "adapter per version; commit each sub-adapter's folder on its own",
        )
    return AdapterSource(
        directory=directory,
        config=config,
        config_bytes=config_bytes,
        weights_path=weights_path,
        weights_format=weights_format,
    )


# PEFT's name for the adapter ``save_pretrained`` writes at the top of the folder; the others go
# to a sub-folder named after them (``peft_model.PeftModel.save_pretrained``).
DEFAULT_ADAPTER = "default"
# Methods whose sub-folders are parts of the one adapter, not adapters of their own.
_COMPOSITE_METHODS = frozenset({"XLORA"})


def find_adapters(src: Path | str) -> dict[str, Path]:
    """The PEFT adapters a ``save_pretrained`` folder holds: PEFT adapter name -> folder.

    The folder's own adapter is `DEFAULT_ADAPTER`; each sub-folder holding an
    ``adapter_config.json`` is the adapter of its name (a multi-adapter ``save_pretrained``,
    or Trainer checkpoints). The sub-folders of an X-LoRA adapter are its parts, not adapters.
    An empty result means no adapter at all (`open_adapter_source` says what is missing).
    """
    directory = Path(src)
    found: dict[str, Path] = {}
    top = directory / CONFIG_FILE
    if top.is_file():
        found[DEFAULT_ADAPTER] = directory
        try:
            config, _raw = load_adapter_config(top)
        except InvalidConfig:
            return found  # the folder's own adapter is refused as it is
        if str(config.get("peft_type", "")).upper() in _COMPOSITE_METHODS:
            return found
    try:
        children = sorted(p for p in directory.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return found
    for child in children:
        if (child / CONFIG_FILE).is_file() and child.name != DEFAULT_ADAPTER:
            found[child.name] = child
    return found


# The first line of every Git LFS pointer file (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md);
# a pointer is at most 1024 bytes.
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"
_LFS_POINTER_MAX = 1024


def lfs_pointer(path: Path) -> dict[str, str] | None:
    """The fields of a Git LFS pointer file (``oid``, ``size``, ...), or None if `path` is not one.

    A clone made without git-lfs holds these small text files where the weights should be.
    """
    try:
        with open(path, "rb") as stream:
            head = stream.read(_LFS_POINTER_MAX + 1)
    except OSError:
        return None
    if len(head) > _LFS_POINTER_MAX or not head.startswith(LFS_POINTER_PREFIX):
        return None
    fields = {}
    for line in head.decode("utf-8", errors="replace").splitlines():
        key, _, value = line.partition(" ")
        if key and value:
            fields[key] = value.strip()
    return fields


def _refuse_lfs_pointer(path: Path) -> None:
    fields = lfs_pointer(path)
    if fields is None:
        return
    size = fields.get("size", "")
    what = f" of a {size}-byte file" if size.isdigit() else ""
    raise InvalidAdapter(
        path,
        f"this is a Git LFS pointer{what}, not the weights: the folder was cloned without "
        "git-lfs; run `git lfs install && git lfs pull` in that clone, then commit again",
    )


def _contents(directory: Path, limit: int = 10) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    except OSError as exc:
        return f"nothing readable ({exc.strerror or exc})"
    if not names:
        return "nothing (it is empty)"
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def load_adapter_config(path: Path) -> tuple[dict[str, Any], bytes]:
    """Read adapter_config.json: a UTF-8 JSON object without duplicate keys, with a peft_type."""
    path = Path(path)
    try:
        with open_regular(path, follow=True) as stream:  # never blocks on a FIFO
            raw = stream.read(MAX_CONFIG_SIZE + 1)
    except FileNotFoundError:
        raise InvalidConfig(path, "file not found") from None
    except OSError as exc:
        raise InvalidConfig(path, f"cannot read the file: {exc.strerror or exc}") from None
    except AdapterGitError as exc:
        raise InvalidConfig(path, str(exc)) from None
    if raw.startswith(LFS_POINTER_PREFIX):
        raise InvalidConfig(
            path, "this is a Git LFS pointer, not the config: run `git lfs pull` in that clone"
        )
    try:
        doc = strictjson.loads(raw, str(path), max_bytes=MAX_CONFIG_SIZE)
    except strictjson.JsonError as exc:
        raise InvalidConfig(path, exc.reason, key=exc.key) from None
    if not isinstance(doc, dict):
        raise InvalidConfig(path, f"expected a JSON object, found a JSON {_json_kind(doc)}")
    peft_type = doc.get("peft_type")
    if peft_type is None:
        raise InvalidConfig(path, "missing required key", key="peft_type")
    if not isinstance(peft_type, str) or not peft_type.strip():
        raise InvalidConfig(path, f"must be a non-empty string, got {peft_type!r}", key="peft_type")
    return doc, raw


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


# --- scanning the weights -----------------------------------------------------------------------


def scan_weights(
    path: Path,
    *,
    config: dict[str, Any] | None = None,
    copy_to: BinaryIO | Sequence[BinaryIO] | None = None,
    regex_timeout: float = DEFAULT_REGEX_TIMEOUT,
    cancel: threading.Event | None = None,
) -> WeightsScan:
    """Validate a safetensors file and hash it, reading its bytes once (and copying them if asked).

    Args:
        path: the weights file.
        config: the adapter's config, for warnings that depend on it (untrained LoRA, modules
            outside target_modules); None for no warnings.
        copy_to: streams that receive a copy of the file's bytes as they are read.
        regex_timeout: bounds, in seconds, the matching of a ``target_modules`` regular
            expression from `config` against the tensors' modules (the check is skipped with a
            warning past it).
        cancel: stops the scan once set, at its next read of at most 256 KiB (a scan on a
            thread of its own whose result is no longer wanted).

    Raises:
        ScanCancelled: `cancel` was set.
        InvalidAdapter: the file cannot be read, changed while it was read, or fails a check.
        InvalidSafetensors: its header is malformed.
        OSError: writing to `copy_to` failed. On any error `copy_to` may have received part of the
            file; the caller throws that copy away.
    """
    path = Path(path)
    outputs: Sequence[BinaryIO]
    if copy_to is None:
        outputs = ()
    elif isinstance(copy_to, (list, tuple)):
        outputs = copy_to
    else:
        outputs = (copy_to,)  # type: ignore[assignment]
    try:
        stream = open(path, "rb")  # noqa: SIM115 (closed below; errors opening it are ours)
    except OSError as exc:
        raise InvalidAdapter(path, f"cannot read the weights: {exc.strerror or exc}") from None
    with stream:
        try:
            before = os.fstat(stream.fileno())
            prefix = read_prefix(stream, before.st_size)
        except OSError as exc:
            raise InvalidAdapter(path, f"cannot read the weights: {exc.strerror or exc}") from None
        header = parse_header(prefix, before.st_size, path)
        _refuse_empty(header, path, config)
        reads = _ReadErrors(stream, path, cancel)
        result = weightscan.scan(reads, header, prefix, path, outputs)
        after = os.fstat(stream.fileno())
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise InvalidAdapter(
            path, "the file changed while it was being read (is something still writing it?)"
        )
    checks = result.tensors

    problems = [
        problem
        for spec in header.tensors
        if (problem := _nonfinite_problem(spec, checks[spec.name])) is not None
    ]
    if problems:
        raise InvalidAdapter(path, _problem_listing(problems))

    by_name = sorted(header.tensors, key=lambda s: s.name)
    records = tuple(
        TensorRecord(name=s.name, dtype=s.dtype, shape=s.shape, blake3=checks[s.name].blake3)
        for s in by_name
    )
    notes = () if config is None else tuple(_config_warnings(config, header, checks, regex_timeout))
    return WeightsScan(
        size=header.file_size,
        sha256=result.sha256,
        md5=result.md5,
        tensors=records,
        metadata=header.metadata,
        warnings=notes,
    )


def _refuse_empty(header: Header, path: Path, config: dict[str, Any] | None = None) -> None:
    """No tensors, or tensors with no elements (what DeepSpeed ZeRO-3 saves when its shards were
    not gathered), are refused; AdaLoRA's modules pruned to rank 0 are not empty but normal."""
    if not header.tensors:
        raise InvalidAdapter(path, "the weights file holds no tensors")
    pruned = peftkeys.rank_zero_modules(
        [(s.name, s.shape) for s in header.tensors], (config or {}).get("peft_type")
    )
    empty = [
        s
        for s in header.tensors
        if s.numel == 0 and not ((k := peftkeys.parse_key(s.name)) and k.module in pruned)
    ]
    if empty:
        described = [f"{s.name!r} (shape {list(s.shape)})" for s in empty]
        raise InvalidAdapter(path, f"zero-size tensors, with no elements: {_listing(described, 5)}")


class ScanCancelled(Exception):
    """`scan_weights` stopped because its `cancel` event was set; never shown to a user."""


class _ReadErrors:
    """A weights stream whose read errors are `InvalidAdapter` (a failed write stays an OSError),
    and which stops the scan with `ScanCancelled` once `cancel` is set."""

    def __init__(self, stream: BinaryIO, path: Path, cancel: threading.Event | None) -> None:
        self.stream = stream
        self.path = path
        self.cancel = cancel

    def readinto(self, buffer: memoryview, /) -> int | None:
        if self.cancel is not None and self.cancel.is_set():
            raise ScanCancelled(str(self.path))
        try:
            return self.stream.readinto(buffer)  # type: ignore[attr-defined, no-any-return]
        except OSError as exc:
            reason = exc.strerror or exc
            raise InvalidAdapter(self.path, f"cannot read the weights: {reason}") from None


def _nonfinite_problem(spec: TensorSpec, peak: TensorCheck) -> str | None:
    if not (peak.nan or peak.inf):
        return None
    found = " and ".join(
        f"{kind} ({_plural(count, 'value')})"
        for kind, count in (("NaN", peak.nan), ("Inf", peak.inf))
        if count
    )
    return f"tensor {spec.name!r} ({spec.dtype} {list(spec.shape)}) holds {found}"


def _problem_listing(problems: list[str]) -> str:
    shown = "; ".join(problems[:3])
    more = len(problems) - 3
    return shown + (f"; and {more} more tensors with NaN or Inf values" if more > 0 else "")


def _listing(items: list[str], limit: int) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


# --- warnings that need the config --------------------------------------------------------------


def _config_warnings(
    config: dict[str, Any],
    header: Header,
    peaks: dict[str, TensorCheck],
    regex_timeout: float = DEFAULT_REGEX_TIMEOUT,
) -> Iterator[str]:
    peft_type = config.get("peft_type")
    peft_type = peft_type.upper() if isinstance(peft_type, str) else ""
    if peft_type == "LORA":
        b_tensors = [
            s for s in header.tensors if (k := peftkeys.parse_key(s.name)) and k.lora_side == "B"
        ]
        if b_tensors and all(peaks[s.name].zero for s in b_tensors):
            yield UNTRAINED_LORA_WARNING
    layer_prefix = peftkeys.layer_prefix(peft_type)
    if layer_prefix is not None:
        warning = _target_modules_warning(
            config, [s.name for s in header.tensors], layer_prefix, regex_timeout
        )
        if warning:
            yield warning


def _target_modules_warning(
    config: dict[str, Any],
    names: list[str],
    layer_prefix: str,
    regex_timeout: float = DEFAULT_REGEX_TIMEOUT,
) -> str | None:
    """Name the adapter-layer modules that match none of target_modules, matched as PEFT does.

    A regular expression is matched within `regex_timeout` seconds in all (`patterns`): an
    adapter from anywhere may hold one that backtracks for ever.
    """
    targets = config.get("target_modules")
    if not targets or config.get("target_parameters"):
        return None  # nothing to compare with, or layers placed by parameter name instead
    matches: Callable[[str], bool]
    if isinstance(targets, str):
        if targets == "all-linear":
            return None  # resolved against the base model, which is not here
        try:
            pattern = BoundedPattern(targets, regex_timeout)
        except PatternError as exc:
            return f"target_modules {targets!r} is not a valid regular expression ({exc})"
        matches = pattern.fullmatch
    elif isinstance(targets, list) and all(isinstance(t, str) for t in targets):
        suffixes = tuple("." + t for t in targets)
        exact = frozenset(targets)
        matches = lambda module: module in exact or module.endswith(suffixes)  # noqa: E731
    else:
        return None
    saved = config.get("modules_to_save") or []
    saved = [m for m in saved if isinstance(m, str)] if isinstance(saved, list) else []

    strays: dict[str, int] = {}
    for name in names:
        key = peftkeys.parse_key(name, layer_prefix)
        if key is None or not key.model_module or not peftkeys.is_module_level(key.module):
            continue  # not an adapter-layer tensor (a module to save, a shared projection, ...)
        module = key.model_module
        if any(f".{m}." in f".{module}." for m in saved):
            continue
        try:
            matched = matches(module)
        except PatternTimeout:
            return (
                f"target_modules {targets!r} took more than {regex_timeout:g} s to match the "
                "adapter's modules (a regular expression that backtracks); they were not checked, "
                "and PEFT may hang on it too (limits.regex_timeout in .adaptergit.toml)"
            )
        if not matched:
            strays[module] = strays.get(module, 0) + 1
    if not strays:
        return None
    tensors = sum(strays.values())
    return (
        f"{_plural(tensors, 'tensor')} in {_plural(len(strays), 'module')} that match none of "
        f"target_modules {targets!r}: {_listing(sorted(strays), 3)}"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# --- converting a pickle ------------------------------------------------------------------------


def convert_pickle(bin_path: Path, dst: Path, limits: Limits | None = None) -> None:
    """Turn adapter_model.bin into safetensors at `dst` without executing code from the pickle.

    Tensors are bounded before anything is materialised: none may be a view whose elements
    overlap in memory (a stride-0 "expanded" tensor of a few bytes would be written out at its
    full size), nor exceed `limits` (elements per tensor, bytes in all).

    Raises:
        UnsafePickle: the pickle wants to run code or build other objects.
        InvalidAdapter: anything else wrong with it, or a limit exceeded.
    """
    bin_path, dst = Path(bin_path), Path(dst)
    try:
        import torch
    except ImportError:
        raise MissingDependency(
            "torch", f"converting {PICKLE_FILE} to safetensors", "pip install 'adaptergit[torch]'"
        ) from None
    from safetensors import safe_open
    from safetensors.torch import save_file

    tensors = _load_pickle(torch, bin_path, limits or Limits())
    import tempfile  # only to convert a pickle

    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            save_file(tensors, tmp, metadata={"format": "pt"})
        except Exception as exc:  # unsupported dtype or layout
            raise InvalidAdapter(bin_path, f"cannot be written as safetensors: {exc}") from None
        try:
            read_header(tmp)
        except InvalidSafetensors as exc:
            raise InvalidAdapter(bin_path, f"cannot be converted: {exc.reason}") from None
        with safe_open(tmp, framework="pt") as written:
            if written.metadata() != {"format": "pt"} or set(written.keys()) != set(tensors):
                raise InvalidAdapter(bin_path, "the converted file does not hold the same tensors")
            for name, tensor in tensors.items():
                if not _same_tensor(torch, tensor, written.get_tensor(name)):
                    raise InvalidAdapter(
                        bin_path, f"tensor {name!r} changed in conversion to safetensors"
                    )
        with open(tmp, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(dst.parent)


def _load_pickle(torch: Any, bin_path: Path, limits: Limits) -> dict[str, Any]:
    """Load with the weights-only unpickler, as a flat str -> Tensor mapping ready to save."""
    import pickle

    try:
        with open(bin_path, "rb") as stream:
            magic = stream.read(4)
    except OSError as exc:
        raise InvalidAdapter(bin_path, f"cannot read: {exc.strerror or exc}") from None
    if not magic:
        raise InvalidAdapter(bin_path, "the file is empty")
    # torch can memory-map only its zip format; the legacy format is read whole.
    use_mmap = magic == b"PK\x03\x04"
    try:
        with warnings.catch_warnings():  # torch's advice about pickle protocols; ours is below
            warnings.simplefilter("ignore")
            loaded = torch.load(bin_path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as exc:
        raise UnsafePickle(bin_path, _unpickler_reason(str(exc))) from None
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise InvalidAdapter(bin_path, f"not a readable PyTorch checkpoint ({detail})") from None

    if not isinstance(loaded, dict):
        raise InvalidAdapter(
            bin_path,
            f"expected a mapping of tensor names to tensors, found {type(loaded).__name__}",
        )
    storages: dict[int, list[str]] = {}
    total = 0
    for name, value in loaded.items():
        if not isinstance(name, str):
            raise InvalidAdapter(bin_path, f"tensor names must be strings, found {name!r}")
        if not isinstance(value, torch.Tensor):
            raise InvalidAdapter(
                bin_path,
                f"{name!r} holds a {type(value).__name__}, not a tensor; "
                "expected a flat mapping of names to tensors",
            )
        if value.layout != torch.strided or value.is_quantized:
            raise InvalidAdapter(bin_path, f"tensor {name!r} is sparse or quantized")
        total += _bounded_size(bin_path, name, value, limits)
        if value.numel():
            storages.setdefault(value.untyped_storage().data_ptr(), []).append(name)
    if total > limits.max_pickle_bytes:
        raise InvalidAdapter(
            bin_path,
            f"its tensors take {total} bytes once converted, more than limits.max_pickle_bytes "
            f"({limits.max_pickle_bytes}) in .adaptergit.toml",
        )
    shared = {name for names in storages.values() if len(names) > 1 for name in names}
    tensors: dict[str, Any] = {}
    for name, value in loaded.items():
        value = value.detach()
        if name in shared or not value.is_contiguous():
            # tied weights share a storage, which safetensors refuses; give each its own copy
            value = value.clone(memory_format=torch.contiguous_format)
        tensors[name] = value
    return tensors


def _bounded_size(bin_path: Path, name: str, value: Any, limits: Limits) -> int:
    """The bytes `value` takes once converted, refused past `limits` or when its elements
    overlap in memory (an expanded view: more elements than its storage holds)."""
    numel = int(value.numel())
    if numel > limits.max_tensor_elements:
        raise InvalidAdapter(
            bin_path,
            f"tensor {name!r} has {numel} elements, more than limits.max_tensor_elements "
            f"({limits.max_tensor_elements}) in .adaptergit.toml",
        )
    size = numel * int(value.element_size())
    stored = int(value.untyped_storage().nbytes()) if numel else 0
    if size > stored:
        raise InvalidAdapter(
            bin_path,
            f"tensor {name!r} (shape {list(value.shape)}) is an expanded view: {numel} elements "
            f"backed by {stored} bytes of storage, which converting would write out in full "
            f"({size} bytes); save the tensor itself (.contiguous()) instead",
        )
    return size


def _unpickler_reason(message: str) -> str:
    """What torch's long weights-only message says was refused, without its boilerplate."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", message)
    _, marker, detail = text.partition("WeightsUnpickler error:")
    if marker:
        text = detail
    boilerplate = ("Weights only load failed", "Check the documentation", "Please file an issue")
    paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
    kept = [p for p in paragraphs if p and not p.startswith(boilerplate)]
    if not kept:
        return "the weights-only unpickler refused it"
    # torch goes on to suggest allowlisting the global, which is not advice for untrusted files
    refusal, advice, _ = kept[0].partition(". Please use")
    return refusal + "." if advice else kept[0]


def _same_tensor(torch: Any, a: Any, b: Any) -> bool:
    """Same dtype, shape and bytes (so NaN equals NaN and -0.0 differs from 0.0)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    try:
        return bool(torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)))
    except RuntimeError:  # a dtype that has no byte view
        return bool(torch.equal(a, b))


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every filesystem can sync a directory
    finally:
        os.close(fd)
