"""The strict safetensors header parser: each rule names its problem; nothing else escapes."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from adaptergit.errors import InvalidSafetensors
from adaptergit.safetensors_format import (
    MAX_HEADER_SIZE,
    parse_header,
    read_header,
    read_header_from,
)

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frame(
    header: bytes | str | dict[str, Any], data: bytes = b"", length: int | None = None
) -> bytes:
    """A safetensors file: length prefix, header, data."""
    if isinstance(header, dict):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode()
    n = len(header) if length is None else length
    return struct.pack("<Q", n) + header + data


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def refused(blob: bytes, *, file_size: int | None = None) -> str:
    """Parse `blob`, expecting a refusal; return its message."""
    with pytest.raises(InvalidSafetensors) as caught:
        parse_header(blob, len(blob) if file_size is None else file_size, "w.safetensors")
    assert caught.value.path == Path("w.safetensors")
    assert str(caught.value).startswith("w.safetensors: not a valid safetensors file: ")
    return caught.value.reason


TWO_F32 = entry("F32", [2], 0, 8)


# --- what is accepted ---------------------------------------------------------------------------


def test_valid_header_gives_absolute_offsets_in_file_order() -> None:
    header = {
        "__metadata__": {"format": "pt"},
        "b": entry("BF16", [2, 2], 0, 8),
        "a": entry("F32", [1], 8, 12),
    }
    blob = frame(header, bytes(12))
    parsed = parse_header(blob, len(blob))
    start = 8 + len(json.dumps(header))
    assert parsed.data_start == start
    assert parsed.file_size == len(blob)
    assert parsed.metadata == {"format": "pt"}
    assert [(t.name, t.dtype, t.shape, t.start, t.end) for t in parsed.tensors] == [
        ("b", "BF16", (2, 2), start, start + 8),
        ("a", "F32", (1,), start + 8, start + 12),
    ]
    assert parsed.by_name()["a"].numel == 1
    assert parsed.by_name()["b"].nbytes == 8


def test_space_padding_scalars_and_empty_tensors_are_accepted() -> None:
    header = json.dumps({"s": entry("F64", [], 0, 8), "e": entry("F32", [0, 3], 8, 8)})
    blob = frame(header + "    ", bytes(8))
    parsed = parse_header(blob, len(blob))
    assert {t.name: t.shape for t in parsed.tensors} == {"s": (), "e": (0, 3)}
    assert parsed.metadata is None


def test_read_header_reads_no_tensor_data(tmp_path: Path) -> None:
    blob = frame({"a": TWO_F32}, bytes(8))
    path = tmp_path / "w.safetensors"
    path.write_bytes(blob)
    assert read_header(path).tensors[0].name == "a"
    stream = io.BytesIO(blob)
    read_header_from(stream, len(blob), path)
    assert stream.tell() == len(blob) - 8


def test_read_header_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\x00" * 4)
    with pytest.raises(InvalidSafetensors, match="too short") as caught:
        read_header(path)
    assert caught.value.path == path


# --- every rule, with the problem named ---------------------------------------------------------


def test_too_short_for_the_length() -> None:
    assert "too short" in refused(b"\x01\x00")


def test_header_length_over_the_limit_is_refused_unread() -> None:
    blob = struct.pack("<Q", MAX_HEADER_SIZE + 1)
    assert "exceeds the limit" in refused(blob, file_size=2 * MAX_HEADER_SIZE)
    stream = io.BytesIO(blob + b"{}")
    with pytest.raises(InvalidSafetensors, match="exceeds the limit"):
        read_header_from(stream, 2 * MAX_HEADER_SIZE, "w")
    assert stream.tell() == 8


def test_header_length_too_small() -> None:
    assert "too small" in refused(frame(b"{", length=1))


def test_header_length_past_end_of_file() -> None:
    assert "runs past the end" in refused(frame(b"{}", length=50))


def test_truncated_header_prefix() -> None:
    blob = frame({"a": TWO_F32}, bytes(8))
    assert "truncated header" in refused(blob[:20], file_size=len(blob))


@pytest.mark.parametrize("text", ['["a"]', '"a"', "  {}", "1234"])
def test_header_that_is_not_an_object(text: str) -> None:
    assert "does not start with a JSON object" in refused(frame(text))


def test_header_not_utf8() -> None:
    reason = refused(frame(b'{"\xff": 1}'))
    assert "not UTF-8" in reason


@pytest.mark.parametrize("text", ["{  ", '{"a": }', '{"a": 1} x', "{'a': 1}"])
def test_header_not_json(text: str) -> None:
    assert "not valid JSON" in refused(frame(text))


def test_header_nested_too_deeply() -> None:
    deep = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert "nested too deeply" in refused(frame(deep))


def test_duplicate_keys() -> None:
    text = f'{{"a": {json.dumps(TWO_F32)}, "a": {json.dumps(TWO_F32)}}}'
    reason = refused(frame(text, bytes(8)))
    assert "duplicate key 'a'" in reason


def test_duplicate_keys_inside_an_entry() -> None:
    text = '{"a": {"dtype": "F32", "dtype": "F16", "shape": [2], "data_offsets": [0, 8]}}'
    assert "duplicate key 'dtype'" in refused(frame(text, bytes(8)))


@pytest.mark.parametrize("dtype", ["F33", "float32", "f32", "", 4, None, [], {}])
def test_unknown_dtype(dtype: object) -> None:
    reason = refused(frame({"a": {**TWO_F32, "dtype": dtype}}, bytes(8)))
    assert "unknown dtype" in reason and "'a'" in reason


@pytest.mark.parametrize("shape", [[-1], [1.0], [True], "2", None, [[2]], {"0": 2}])
def test_bad_shape(shape: object) -> None:
    reason = refused(frame({"a": {**TWO_F32, "shape": shape}}, bytes(8)))
    assert "shape that is not a list of non-negative integers" in reason


@pytest.mark.parametrize("offsets", [[0], [0, 8, 8], ["0", "8"], [0.0, 8.0], [False, True], None])
def test_data_offsets_not_two_integers(offsets: object) -> None:
    reason = refused(frame({"a": {**TWO_F32, "data_offsets": offsets}}, bytes(8)))
    assert "data_offsets that are not two integers" in reason


@pytest.mark.parametrize("offsets", [[8, 0], [-8, 0]])
def test_data_offsets_out_of_order(offsets: list[int]) -> None:
    reason = refused(frame({"a": entry("F32", [0], *offsets)}, bytes(8)))
    assert "out of order" in reason


def test_data_offsets_past_the_buffer() -> None:
    assert "past the 8-byte data buffer" in refused(
        frame({"a": entry("F32", [4], 0, 16)}, bytes(8))
    )


def test_offsets_inconsistent_with_shape() -> None:
    reason = refused(frame({"a": entry("F32", [2, 2], 0, 8)}, bytes(8)))
    assert "needs 16 bytes, data_offsets give 8" in reason


def test_overlapping_tensors() -> None:
    header = {"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)}
    assert "'b' overlaps" in refused(frame(header, bytes(12)))


def test_gap_between_tensors() -> None:
    header = {"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)}
    assert "gap of 4 bytes before tensor 'b'" in refused(frame(header, bytes(12)))


def test_gap_before_the_first_tensor() -> None:
    assert "gap of 4 bytes" in refused(frame({"a": entry("F32", [1], 4, 8)}, bytes(8)))


def test_trailing_bytes() -> None:
    assert "3 trailing bytes" in refused(frame({"a": TWO_F32}, bytes(11)))
    assert "5 trailing bytes" in refused(frame({}, bytes(5)))


@pytest.mark.parametrize("name", ["a\x00b", "a/b", "a\\b"])
def test_nul_and_path_characters_in_names(name: str) -> None:
    assert "NUL or path character" in refused(frame({name: TWO_F32}, bytes(8)))


def test_empty_name() -> None:
    assert "empty name" in refused(frame({"": TWO_F32}, bytes(8)))


@pytest.mark.parametrize("name", ["__metadata2__", "__x__", "____"])
def test_reserved_names(name: str) -> None:
    assert "reserved" in refused(frame({name: TWO_F32}, bytes(8)))


def test_lone_surrogate_in_name() -> None:
    text = '{"a\\ud800": ' + json.dumps(TWO_F32) + "}"
    assert "lone surrogate" in refused(frame(text, bytes(8)))


def test_lone_surrogate_in_metadata() -> None:
    assert "lone surrogate" in refused(frame('{"__metadata__": {"k": "\\udfff"}}'))


@pytest.mark.parametrize("value", [1, 1.5, True, None, ["x"], {"x": "y"}])
def test_metadata_values_must_be_strings(value: object) -> None:
    reason = refused(frame({"__metadata__": {"format": "pt", "k": value}}))
    assert "__metadata__ value for 'k' is not a string" in reason


@pytest.mark.parametrize("value", [[], "pt", 1])
def test_metadata_must_be_an_object(value: object) -> None:
    assert "__metadata__ is not an object" in refused(frame({"__metadata__": value}))


def test_entry_not_an_object() -> None:
    assert "entry for tensor 'a' is not an object" in refused(frame({"a": [1, 2]}))


def test_missing_fields() -> None:
    reason = refused(frame({"a": {"dtype": "F32"}}))
    assert "'a' lacks data_offsets, shape" in reason


def test_unknown_fields() -> None:
    reason = refused(frame({"a": {**TWO_F32, "zz": 1, "extra": 2}}, bytes(8)))
    assert "'a' has unknown fields extra, zz" in reason


# --- properties ---------------------------------------------------------------------------------

TORCH_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}
NUMPY_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "complex64": "C64",
    "int64": "I64",
    "uint32": "U32",
    "uint16": "U16",
    "int8": "I8",
    "bool": "BOOL",
}

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=24).filter(
    lambda s: not (s.startswith("__") and s.endswith("__"))
)
shapes = st.lists(st.integers(min_value=0, max_value=4), max_size=3)
metadata = st.none() | st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)


def _offsets_from_raw_header(blob: bytes) -> tuple[int, dict[str, tuple[int, int]]]:
    (n,) = struct.unpack("<Q", blob[:8])
    doc = json.loads(blob[8 : 8 + n])
    doc.pop("__metadata__", None)
    return 8 + n, {k: tuple(v["data_offsets"]) for k, v in doc.items()}


def _check_round_trip(
    blob: bytes, expected: dict[str, tuple[str, tuple[int, ...]]], meta: Any
) -> None:
    parsed = parse_header(blob, len(blob))
    data_start, offsets = _offsets_from_raw_header(blob)
    assert {t.name: (t.dtype, t.shape) for t in parsed.tensors} == expected
    assert {t.name: (t.start - data_start, t.end - data_start) for t in parsed.tensors} == offsets
    assert parsed.metadata == meta


@PROPERTY
@given(
    tensors=st.dictionaries(
        names, st.tuples(st.sampled_from(sorted(TORCH_DTYPES, key=str)), shapes), max_size=6
    ),
    meta=metadata,
)
def test_files_written_by_safetensors_torch_parse_back(
    tensors: dict[str, tuple[torch.dtype, list[int]]], meta: dict[str, str] | None
) -> None:
    assume(tensors or meta != {})  # safetensors 0.8 writes `{},"__metadata__":{}}` for that
    values = {
        name: torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape).to(dtype)
        for name, (dtype, shape) in tensors.items()
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.safetensors"
        safetensors.torch.save_file(values, path, metadata=meta)
        blob = path.read_bytes()
        assert read_header(path) == parse_header(blob, len(blob), path)
    expected = {n: (TORCH_DTYPES[d], tuple(s)) for n, (d, s) in tensors.items()}
    _check_round_trip(blob, expected, meta)


@PROPERTY
@given(
    tensors=st.dictionaries(
        names, st.tuples(st.sampled_from(sorted(NUMPY_DTYPES)), shapes), max_size=6
    ),
    meta=metadata,
)
def test_files_written_by_safetensors_numpy_parse_back(
    tensors: dict[str, tuple[str, list[int]]], meta: dict[str, str] | None
) -> None:
    assume(tensors or meta != {})  # safetensors 0.8 writes `{},"__metadata__":{}}` for that
    values = {name: np.ones(shape, dtype=dtype) for name, (dtype, shape) in tensors.items()}
    blob = safetensors.numpy.save(values, metadata=meta)
    expected = {n: (NUMPY_DTYPES[d], tuple(s)) for n, (d, s) in tensors.items()}
    _check_round_trip(blob, expected, meta)


def _parses_or_is_refused(blob: bytes, file_size: int | None = None) -> None:
    with contextlib.suppress(InvalidSafetensors):
        parse_header(blob, len(blob) if file_size is None else file_size)


@PROPERTY
@given(blob=st.binary(max_size=200))
def test_random_bytes_parse_or_are_refused(blob: bytes) -> None:
    _parses_or_is_refused(blob)


@PROPERTY
@given(body=st.binary(max_size=120), length=st.integers(min_value=0, max_value=2**64 - 1))
def test_random_length_prefixes_parse_or_are_refused(body: bytes, length: int) -> None:
    _parses_or_is_refused(struct.pack("<Q", length) + b"{" + body)


VALID = frame(
    {
        "__metadata__": {"format": "pt"},
        "base_model.model.q_proj.lora_A.weight": entry("F32", [2, 2], 0, 16),
        "base_model.model.q_proj.lora_B.weight": entry("BF16", [2, 2], 16, 24),
    },
    bytes(range(24)),
)


@PROPERTY
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=len(VALID) - 1), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    ),
    cut=st.integers(min_value=0, max_value=len(VALID)),
)
def test_mutated_bytes_parse_or_are_refused(edits: list[tuple[int, int]], cut: int) -> None:
    blob = bytearray(VALID)
    for position, value in edits:
        blob[position] = value
    _parses_or_is_refused(bytes(blob))
    _parses_or_is_refused(bytes(blob[:cut]))
    _parses_or_is_refused(bytes(blob[:cut]), file_size=len(blob))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
VALID_DOC: dict[str, Any] = json.loads(VALID[8 : 8 + struct.unpack("<Q", VALID[:8])[0]])
VALID_DATA = VALID[8 + struct.unpack("<Q", VALID[:8])[0] :]
TENSOR_NAMES = sorted(k for k in VALID_DOC if k != "__metadata__")
# Where to put a random JSON value: a top-level key, a field of an entry, an element of a list.
places = st.one_of(
    st.tuples(st.sampled_from([*VALID_DOC, "other", "__x__", ""])),
    st.tuples(
        st.sampled_from(TENSOR_NAMES),
        st.sampled_from(["dtype", "shape", "data_offsets", "extra"]),
    ),
    st.tuples(
        st.sampled_from(TENSOR_NAMES),
        st.sampled_from(["shape", "data_offsets"]),
        st.integers(min_value=0, max_value=2),
    ),
    st.tuples(st.just("__metadata__"), st.sampled_from(["format", "other"])),
)


@PROPERTY
@given(
    edits=st.lists(st.tuples(places, json_values), min_size=1, max_size=3),
    pad=st.integers(min_value=-3, max_value=3),
)
def test_mutated_header_fields_parse_or_are_refused(
    edits: list[tuple[tuple[Any, ...], Any]], pad: int
) -> None:
    """Structural mutations reach the rules that random bytes seldom get past the JSON parser to."""
    doc = copy.deepcopy(VALID_DOC)
    for place, value in edits:
        target: object = doc
        for step in place[:-1]:
            target = target[step] if isinstance(target, dict) and step in target else None
        index = place[-1]
        if isinstance(target, dict):
            target[index] = value
        elif isinstance(target, list) and isinstance(index, int):
            if index < len(target):
                target[index] = value
            else:
                target.append(value)
    header = json.dumps(doc).encode()
    _parses_or_is_refused(frame(header, VALID_DATA, length=max(0, len(header) + min(pad, 0))))
    _parses_or_is_refused(frame(header + b" " * max(pad, 0), VALID_DATA))
