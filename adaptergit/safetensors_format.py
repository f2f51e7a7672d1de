"""Strict reading of the safetensors header, in plain Python so that no tensor library is loaded.

The format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON (an object, possibly
padded with spaces), then the byte buffer. Each tensor entry gives dtype, shape and data_offsets
relative to the buffer; together the offsets must tile the buffer exactly.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from adaptergit.errors import InvalidSafetensors

# Same bound as the safetensors library (MAX_HEADER_SIZE): a larger header is refused unread.
MAX_HEADER_SIZE = 100_000_000

DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}

FLOAT_DTYPES = frozenset({"F8_E5M2", "F8_E4M3", "F16", "BF16", "F32", "F64"})

_FORBIDDEN_NAME_CHARS = ("\x00", "/", "\\")


@dataclass(frozen=True, kw_only=True, slots=True)
class TensorSpec:
    """One tensor's entry: where its bytes lie in the file (absolute offsets)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        """The tensor's size in bytes (``end - start``)."""
        return self.end - self.start

    @property
    def numel(self) -> int:
        """The number of elements: the product of `shape` (1 for a scalar, shape ``()``)."""
        return math.prod(self.shape)


@dataclass(frozen=True, kw_only=True, slots=True)
class Header:
    """A validated safetensors header: tensors in file order, string metadata, sizes."""

    header_size: int
    data_start: int
    file_size: int
    tensors: tuple[TensorSpec, ...]
    metadata: dict[str, str] | None

    def by_name(self) -> dict[str, TensorSpec]:
        """Tensor name -> its entry."""
        return {t.name: t for t in self.tensors}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _is_unicode(text: str) -> bool:
    # json.loads turns an escaped lone surrogate ("\ud800") into a str that cannot be encoded.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_header(prefix: bytes, file_size: int, path: Path | str = "<bytes>") -> Header:
    """Validate the header held at the start of `prefix` for a file of `file_size` bytes.

    Follows the safetensors format (https://github.com/huggingface/safetensors#format) as its
    Rust reader enforces it: an 8-byte little-endian length N (at most `MAX_HEADER_SIZE`), N
    bytes of UTF-8 JSON starting with ``{``, tensor entries of ``dtype``, ``shape`` and
    ``data_offsets`` that tile the data buffer exactly (no gap, overlap or trailing bytes), and
    an optional ``__metadata__`` of strings. Duplicate keys and lone surrogates are refused.

    Args:
        prefix: the file's first bytes: at least 8 + N of them for a valid header.
        file_size: the whole file's size in bytes.
        path: the file, for messages.

    Returns:
        The header, tensors in file order with absolute byte offsets.

    Raises:
        InvalidSafetensors: anything the format forbids; a Git LFS pointer is named as such.
    """

    def bad(reason: str) -> InvalidSafetensors:
        return InvalidSafetensors(path, reason)

    if file_size < 8 or len(prefix) < 8:
        raise bad(f"file is {file_size} bytes, too short to hold the 8-byte header length")
    (n,) = struct.unpack("<Q", prefix[:8])
    if n > MAX_HEADER_SIZE and prefix[:8] == b"version ":  # "version https://git-lfs..."
        raise bad(
            "this is a Git LFS pointer, not the file: it was cloned without git-lfs; "
            "run `git lfs install && git lfs pull` in that clone"
        )
    if n > MAX_HEADER_SIZE:
        raise bad(f"header length {n} exceeds the limit of {MAX_HEADER_SIZE} bytes")
    if n < 2:
        raise bad(f"header length {n} is too small for a JSON object")
    if 8 + n > file_size:
        raise bad(f"header length {n} runs past the end of the {file_size}-byte file")
    if len(prefix) < 8 + n:
        raise bad("truncated header")
    raw = bytes(prefix[8 : 8 + n])
    if raw[:1] != b"{":
        raise bad("header does not start with a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"header is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        doc = json.loads(text.rstrip(" "), object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise bad(f"header is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad("header is not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise bad("header is not a JSON object")

    metadata = doc.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise bad("__metadata__ is not an object")
        for key, value in metadata.items():
            if not isinstance(value, str):
                raise bad(f"__metadata__ value for {key!r} is not a string")
            if not (_is_unicode(key) and _is_unicode(value)):
                raise bad(f"__metadata__ entry {key!r} holds a lone surrogate, not Unicode text")

    data_start = 8 + n
    buffer_len = file_size - data_start
    specs: list[TensorSpec] = []
    for name, entry in doc.items():
        specs.append(_tensor_spec(name, entry, data_start, buffer_len, bad))

    specs.sort(key=lambda s: (s.start, s.end))
    position = data_start
    for spec in specs:
        if spec.start != position:
            if spec.start < position:
                raise bad(f"tensor {spec.name!r} overlaps the tensor before it")
            raise bad(f"gap of {spec.start - position} bytes before tensor {spec.name!r}")
        position = spec.end
    if position != file_size:
        raise bad(f"{file_size - position} trailing bytes after the last tensor")
    return Header(
        header_size=n,
        data_start=data_start,
        file_size=file_size,
        tensors=tuple(specs),
        metadata=metadata,
    )


def _tensor_spec(name: str, entry: Any, data_start: int, buffer_len: int, bad: Any) -> TensorSpec:
    if not name:
        raise bad("a tensor has an empty name")
    if any(c in name for c in _FORBIDDEN_NAME_CHARS):
        raise bad(f"tensor name {name!r} contains a NUL or path character")
    if name.startswith("__") and name.endswith("__"):
        raise bad(f"tensor name {name!r} is reserved")
    if not _is_unicode(name):
        raise bad(f"tensor name {name!r} holds a lone surrogate, not Unicode text")
    if not isinstance(entry, dict):
        raise bad(f"entry for tensor {name!r} is not an object")
    extra = set(entry) - {"dtype", "shape", "data_offsets"}
    missing = {"dtype", "shape", "data_offsets"} - set(entry)
    if missing:
        raise bad(f"tensor {name!r} lacks {', '.join(sorted(missing))}")
    if extra:
        raise bad(f"tensor {name!r} has unknown fields {', '.join(sorted(extra))}")
    dtype = entry["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise bad(f"tensor {name!r} has unknown dtype {dtype!r}")
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise bad(f"tensor {name!r} has a shape that is not a list of non-negative integers")
    offsets = entry["data_offsets"]
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
    ):
        raise bad(f"tensor {name!r} has data_offsets that are not two integers")
    begin, end = offsets
    if begin < 0 or end < begin:
        raise bad(f"tensor {name!r} has data_offsets [{begin}, {end}] out of order")
    if end > buffer_len:
        raise bad(f"tensor {name!r} ends at byte {end}, past the {buffer_len}-byte data buffer")
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if end - begin != expected:
        raise bad(
            f"tensor {name!r}: shape {shape} of {dtype} needs {expected} bytes, "
            f"data_offsets give {end - begin}"
        )
    return TensorSpec(
        name=name,
        dtype=dtype,
        shape=tuple(shape),
        start=data_start + begin,
        end=data_start + end,
    )


def read_header_from(stream: BinaryIO, file_size: int, path: Path | str) -> Header:
    """Read and validate the header from an open binary stream positioned at byte 0.

    Reads 8 + N bytes at most (none of the tensor data); see `parse_header`.

    Args:
        stream: the file, opened in binary mode.
        file_size: its size in bytes.
        path: the file, for messages.

    Raises:
        InvalidSafetensors: the header breaks the format (see `parse_header`).
    """
    return parse_header(read_prefix(stream, file_size), file_size, path)


def read_prefix(stream: BinaryIO, file_size: int) -> bytes:
    """The bytes `parse_header` needs, read from a stream at byte 0: the 8-byte length and the
    JSON header (only the length when it is out of bounds; `parse_header` then says why)."""
    head = stream.read(8)
    if len(head) < 8:
        return head
    (n,) = struct.unpack("<Q", head)
    if n > MAX_HEADER_SIZE or 8 + n > file_size:
        return head
    return head + stream.read(n)


def read_header(path: Path | str) -> Header:
    """Read and validate the header of the safetensors file at `path`, reading no tensor data."""
    path = Path(path)
    with open(path, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        return read_header_from(stream, size, path)
