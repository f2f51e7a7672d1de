"""The adapter on disk: finding it, reading its config, scanning its weights, converting pickles."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any

import blake3
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from adaptergit import weightscan
from adaptergit.adapter import (
    UNTRAINED_LORA_WARNING,
    WeightsScan,
    convert_pickle,
    load_adapter_config,
    open_adapter_source,
    scan_weights,
)
from adaptergit.errors import (
    InvalidAdapter,
    InvalidConfig,
    InvalidManifest,
    InvalidSafetensors,
    MissingDependency,
    UnsafePickle,
)
from adaptergit.layout import CONFIG_FILE as CONFIG_NAME
from adaptergit.layout import PICKLE_FILE as PICKLE_NAME
from adaptergit.layout import WEIGHTS_FILE as WEIGHTS_NAME
from adaptergit.manifest import TensorRecord

LORA_CONFIG = {"peft_type": "LORA", "r": 4, "target_modules": ["q_proj", "v_proj"]}
PREFIX = "base_model.model.model.layers"


@pytest.fixture(scope="module")
def peft_adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny Llama with LoRA on q_proj and v_proj, saved untrained, trained, and as a pickle."""
    root = tmp_path_factory.mktemp("peft")
    with pytest.MonkeyPatch.context() as env:  # module scope runs before the autouse isolation
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("HF_HOME", str(root / "hf-home"))
        return _build_peft_adapters(root)


def _build_peft_adapters(root: Path) -> dict[str, Path]:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=128,
        intermediate_size=128,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(
            LlamaForCausalLM(config), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
        )
        model.save_pretrained(str(root / "untrained"))
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_()
        model.save_pretrained(str(root / "trained"))
        model.save_pretrained(str(root / "trained-bin"), safe_serialization=False)
    return {name: root / name for name in ("untrained", "trained", "trained-bin")}


def write_weights(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    save_file(tensors, path, metadata={"format": "pt"})
    return path


def raw_bytes(tensor: torch.Tensor) -> bytes:
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def lora_pair(layer: int, module: str) -> dict[str, torch.Tensor]:
    key = f"{PREFIX}.{layer}.self_attn.{module}"
    return {f"{key}.lora_A.weight": torch.ones(2, 8), f"{key}.lora_B.weight": torch.ones(8, 2)}


# --- open_adapter_source ------------------------------------------------------------------------


def test_open_adapter_source_reads_a_peft_adapter(peft_adapters: dict[str, Path]) -> None:
    source = open_adapter_source(str(peft_adapters["trained"]))
    config_path = peft_adapters["trained"] / CONFIG_NAME
    assert source.directory == peft_adapters["trained"]
    assert source.weights_path == peft_adapters["trained"] / WEIGHTS_NAME
    assert source.weights_format == "safetensors"
    assert source.config_bytes == config_path.read_bytes()
    assert source.config == json.loads(config_path.read_bytes())
    assert source.config["peft_type"] == "LORA"


def test_open_adapter_source_falls_back_to_the_pickle(peft_adapters: dict[str, Path]) -> None:
    source = open_adapter_source(peft_adapters["trained-bin"])
    assert source.weights_path == peft_adapters["trained-bin"] / PICKLE_NAME
    assert source.weights_format == "pytorch"


def test_open_adapter_source_prefers_safetensors_over_the_pickle(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text('{"peft_type": "LORA"}')
    (tmp_path / PICKLE_NAME).write_bytes(b"x")
    (tmp_path / WEIGHTS_NAME).write_bytes(b"x")
    assert open_adapter_source(tmp_path).weights_format == "safetensors"


def test_open_adapter_source_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidAdapter, match="no such directory"):
        open_adapter_source(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidAdapter, match="not a directory") as caught:
        open_adapter_source(tmp_path / "file")
    assert caught.value.path == tmp_path / "file"


def test_open_adapter_source_needs_the_config(tmp_path: Path) -> None:
    (tmp_path / WEIGHTS_NAME).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    with pytest.raises(InvalidAdapter) as caught:
        open_adapter_source(tmp_path)
    assert f"{CONFIG_NAME} not found" in str(caught.value)
    assert f"the directory holds {WEIGHTS_NAME}, sub/" in str(caught.value)


def test_open_adapter_source_needs_weights(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text('{"peft_type": "LORA"}')
    (tmp_path / "README.md").write_text("hi")
    (tmp_path / WEIGHTS_NAME).mkdir()  # a directory is not a weights file
    with pytest.raises(InvalidAdapter) as caught:
        open_adapter_source(tmp_path)
    message = str(caught.value)
    assert f"expected {WEIGHTS_NAME} (or {PICKLE_NAME})" in message
    assert f"holds README.md, {CONFIG_NAME}, {WEIGHTS_NAME}/" in message


def test_open_adapter_source_checks_the_config(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text("[]")
    (tmp_path / WEIGHTS_NAME).write_bytes(b"x")
    with pytest.raises(InvalidConfig, match="expected a JSON object"):
        open_adapter_source(tmp_path)


# --- load_adapter_config ------------------------------------------------------------------------


def test_load_adapter_config_keeps_the_bytes_as_they_are(tmp_path: Path) -> None:
    raw = b'{\n  "peft_type": "LORA",\n  "r": 8,\n  "note": "caf\xc3\xa9"\n}'
    (tmp_path / CONFIG_NAME).write_bytes(raw)
    config, config_bytes = load_adapter_config(tmp_path / CONFIG_NAME)
    assert config == {"peft_type": "LORA", "r": 8, "note": "café"}
    assert config_bytes == raw


@pytest.mark.parametrize(
    ("raw", "fragment", "key"),
    [
        (b'{"peft_type": "LORA",', "not valid JSON", None),
        (b"", "not valid JSON", None),
        (b"[1, 2]", "expected a JSON object, found a JSON array", None),
        (b'"LORA"', "expected a JSON object, found a JSON string", None),
        (b"null", "expected a JSON object, found a JSON null", None),
        (b'{"r": 8}', "missing required key", "peft_type"),
        (b'{"peft_type": ""}', "must be a non-empty string", "peft_type"),
        (b'{"peft_type": "  "}', "must be a non-empty string", "peft_type"),
        (b'{"peft_type": 3}', "must be a non-empty string, got 3", "peft_type"),
        (b'{"peft_type": "LORA", "r": 4, "r": 8}', "duplicate key", "r"),
        (b'{"peft_type": "LORA", "x": {"a": 1, "a": 2}}', "duplicate key", "a"),
        (b'{"peft_type": "LOR\xff"}', "not UTF-8", None),
        (b'\xef\xbb\xbf{"peft_type": "LORA"}', "not valid JSON", None),
        (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply", None),
    ],
)
def test_load_adapter_config_refuses(
    tmp_path: Path, raw: bytes, fragment: str, key: str | None
) -> None:
    path = tmp_path / CONFIG_NAME
    path.write_bytes(raw)
    with pytest.raises(InvalidConfig) as caught:
        load_adapter_config(path)
    assert fragment in caught.value.reason
    assert caught.value.key == key
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: ")


def test_load_adapter_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match="file not found"):
        load_adapter_config(tmp_path / CONFIG_NAME)


# --- TensorRecord -------------------------------------------------------------------------------


def test_tensor_record_round_trip() -> None:
    record = TensorRecord(name="a.weight", dtype="BF16", shape=(4, 0), blake3="ab" * 32)
    data = record.to_dict()
    assert data == {"dtype": "BF16", "shape": [4, 0], "blake3": "ab" * 32}
    assert json.loads(json.dumps(data)) == data
    assert TensorRecord.from_dict("a.weight", data) == record


@pytest.mark.parametrize(
    ("data", "key", "fragment"),
    [
        ([], "w", "must be an object"),
        ({"dtype": "F32", "shape": [1]}, "w.blake3", "lacks blake3"),
        ({"dtype": "F32", "shape": [1], "blake3": "ab" * 32, "zz": 1}, "w.zz", "unknown fields zz"),
        (
            {"dtype": "F33", "shape": [1], "blake3": "ab" * 32},
            "w.dtype",
            "unknown safetensors dtype",
        ),
        ({"dtype": ["F32"], "shape": [1], "blake3": "ab" * 32}, "w.dtype", "unknown"),
        ({"dtype": "F32", "shape": [-1], "blake3": "ab" * 32}, "w.shape", "non-negative"),
        ({"dtype": "F32", "shape": [True], "blake3": "ab" * 32}, "w.shape", "non-negative"),
        ({"dtype": "F32", "shape": "1", "blake3": "ab" * 32}, "w.shape", "list"),
        ({"dtype": "F32", "shape": [1], "blake3": "AB" * 32}, "w.blake3", "64 lowercase hex"),
        ({"dtype": "F32", "shape": [1], "blake3": "ab"}, "w.blake3", "64 lowercase hex"),
    ],
)
def test_tensor_record_from_dict_names_the_bad_key(data: Any, key: str, fragment: str) -> None:
    with pytest.raises(InvalidManifest) as caught:
        TensorRecord.from_dict("w", data)
    assert caught.value.key == key
    assert fragment in caught.value.reason


# --- scan_weights -------------------------------------------------------------------------------


def test_scan_of_a_real_peft_adapter(peft_adapters: dict[str, Path]) -> None:
    source = open_adapter_source(peft_adapters["trained"])
    blob = source.weights_path.read_bytes()
    copy = io.BytesIO()
    scan = scan_weights(source.weights_path, config=source.config, copy_to=copy)

    assert isinstance(scan, WeightsScan)
    assert scan.size == len(blob)
    assert scan.sha256 == hashlib.sha256(blob).hexdigest()
    assert scan.md5 == hashlib.md5(blob).hexdigest()
    assert copy.getvalue() == blob
    assert scan.metadata == {"format": "pt"}
    assert scan.warnings == ()

    names = [t.name for t in scan.tensors]
    assert names == sorted(names)
    expected = load_file(source.weights_path)
    assert set(names) == set(expected) and len(names) == 8
    for record in scan.tensors:
        tensor = expected[record.name]
        assert record.dtype == "F32"
        assert record.shape == tuple(tensor.shape)
        assert record.blake3 == blake3.blake3(raw_bytes(tensor)).hexdigest()
    assert {t.shape for t in scan.tensors} == {(4, 64), (64, 4)}


def test_scan_copies_and_hashes_a_multi_chunk_file(tmp_path: Path) -> None:
    """Large enough for the md5 thread and for tensors that span several chunks."""
    torch.manual_seed(1)
    tensors = {
        "big.lora_A.weight": torch.randn(5 * 1024 * 1024 // 4),  # 5 MiB, more than one chunk
        "big.lora_B.weight": torch.randn(1024, 1024).to(torch.bfloat16),
        "small": torch.arange(7, dtype=torch.int64),
    }
    path = write_weights(tmp_path / "w.safetensors", tensors)
    blob = path.read_bytes()
    assert len(blob) > weightscan.THREAD_MIN_SIZE + weightscan.BLOCK_SIZE
    with open(tmp_path / "copy", "wb", buffering=0) as raw_out:  # unbuffered: partial writes
        scan = scan_weights(path, copy_to=raw_out)
    assert (tmp_path / "copy").read_bytes() == blob
    assert scan.sha256 == hashlib.sha256(blob).hexdigest()
    assert scan.md5 == hashlib.md5(blob).hexdigest()
    records = {t.name: t for t in scan.tensors}
    for name, tensor in tensors.items():
        assert records[name].blake3 == blake3.blake3(raw_bytes(tensor)).hexdigest()
    assert records["big.lora_B.weight"].dtype == "BF16"
    assert records["small"].dtype == "I64"


NONFINITE_CASES = [
    (torch.float32, "F32", float("nan"), "NaN"),
    (torch.float32, "F32", float("inf"), "Inf"),
    (torch.float32, "F32", float("-inf"), "Inf"),
    (torch.bfloat16, "BF16", float("nan"), "NaN"),
    (torch.bfloat16, "BF16", float("inf"), "Inf"),
    (torch.bfloat16, "BF16", float("-inf"), "Inf"),
    (torch.float16, "F16", float("nan"), "NaN"),
    (torch.float16, "F16", float("-inf"), "Inf"),
    (torch.float64, "F64", float("nan"), "NaN"),
    (torch.float64, "F64", float("inf"), "Inf"),
    (torch.float8_e5m2, "F8_E5M2", float("nan"), "NaN"),
    (torch.float8_e5m2, "F8_E5M2", float("inf"), "Inf"),
    (torch.float8_e4m3fn, "F8_E4M3", float("nan"), "NaN"),
]


@pytest.mark.parametrize(("dtype", "name", "value", "kind"), NONFINITE_CASES)
def test_nonfinite_values_are_refused(
    tmp_path: Path, dtype: torch.dtype, name: str, value: float, kind: str
) -> None:
    bad = torch.zeros(3, 5, dtype=dtype)
    bad[2, 4] = value
    path = write_weights(
        tmp_path / "w.safetensors", {"fine": torch.ones(4), "layer.lora_A.weight": bad}
    )
    with pytest.raises(InvalidAdapter) as caught:
        scan_weights(path)
    assert caught.value.path == path
    assert f"tensor 'layer.lora_A.weight' ({name} [3, 5]) holds {kind} (1 value)" in str(
        caught.value
    )


def test_nonfinite_value_at_the_end_of_a_large_tensor(tmp_path: Path) -> None:
    f32 = torch.zeros(200_001)
    f32[-1] = float("nan")
    bf16 = torch.zeros(200_001, dtype=torch.bfloat16)
    bf16[-1] = float("inf")
    bf16[0] = float("nan")
    path = write_weights(tmp_path / "w.safetensors", {"a": f32, "b": bf16})
    with pytest.raises(InvalidAdapter) as caught:
        scan_weights(path)
    message = str(caught.value)
    assert "tensor 'a' (F32 [200001]) holds NaN (1 value)" in message
    assert "tensor 'b' (BF16 [200001]) holds NaN (1 value) and Inf (1 value)" in message


@pytest.mark.parametrize(
    "dtype",
    [
        torch.float64,
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.float8_e5m2,
        torch.float8_e4m3fn,
    ],
)
def test_finite_extremes_are_accepted(tmp_path: Path, dtype: torch.dtype) -> None:
    info = torch.finfo(dtype)
    values = torch.tensor(
        [info.max, info.min, info.tiny, -info.tiny, 0.0, -0.0], dtype=torch.float64
    )
    subnormal = info.smallest_normal / 2
    tensor = torch.cat([values, torch.tensor([subnormal, -subnormal], dtype=torch.float64)])
    path = write_weights(tmp_path / "w.safetensors", {"w": tensor.to(dtype)})
    scan = scan_weights(path)
    assert scan.tensors[0].shape == (8,)


def test_integer_tensors_are_not_checked_as_floats(tmp_path: Path) -> None:
    path = write_weights(
        tmp_path / "w.safetensors",
        {
            "i": torch.full((4,), -1, dtype=torch.int32),
            "u": torch.full((4,), 255, dtype=torch.uint8),
        },
    )
    assert [t.dtype for t in scan_weights(path).tensors] == ["I32", "U8"]


def test_zero_size_tensor_is_refused_before_any_copy(tmp_path: Path) -> None:
    path = write_weights(
        tmp_path / "w.safetensors", {"fine": torch.ones(2), "layer.lora_A.weight": torch.ones(0, 4)}
    )
    copy = io.BytesIO()
    with pytest.raises(InvalidAdapter) as caught:
        scan_weights(path, copy_to=copy)
    assert "zero-size tensors" in str(caught.value)
    assert "'layer.lora_A.weight' (shape [0, 4])" in str(caught.value)
    assert copy.getvalue() == b""


def test_weights_without_tensors_are_refused(tmp_path: Path) -> None:
    path = write_weights(tmp_path / "w.safetensors", {})
    with pytest.raises(InvalidAdapter, match="holds no tensors"):
        scan_weights(path)


def test_scan_refuses_a_bad_header_and_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    with pytest.raises(InvalidAdapter, match="cannot read the weights"):
        scan_weights(path)
    path.write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00[]")
    with pytest.raises(InvalidSafetensors, match="does not start with a JSON object"):
        scan_weights(path)
    path.write_bytes(b"")
    with pytest.raises(InvalidSafetensors, match="too short"):
        scan_weights(path)


# --- warnings -----------------------------------------------------------------------------------


def test_untrained_lora_is_a_warning(peft_adapters: dict[str, Path]) -> None:
    source = open_adapter_source(peft_adapters["untrained"])
    scan = scan_weights(source.weights_path, config=source.config)
    assert scan.warnings == (UNTRAINED_LORA_WARNING,)
    assert "looks untrained" in UNTRAINED_LORA_WARNING
    assert scan_weights(source.weights_path).warnings == ()  # no config, no opinion


def test_negative_zero_counts_as_untrained(tmp_path: Path) -> None:
    tensors = lora_pair(0, "q_proj")
    tensors[f"{PREFIX}.0.self_attn.q_proj.lora_B.weight"] = torch.full((8, 2), -0.0).to(
        torch.bfloat16
    )
    path = write_weights(tmp_path / "w.safetensors", tensors)
    assert scan_weights(path, config=LORA_CONFIG).warnings == (UNTRAINED_LORA_WARNING,)
    other = {**LORA_CONFIG, "peft_type": "LOHA"}
    assert scan_weights(path, config=other).warnings == ()


def test_one_trained_b_matrix_is_enough(tmp_path: Path) -> None:
    tensors = {**lora_pair(0, "q_proj"), **lora_pair(0, "v_proj")}
    tensors[f"{PREFIX}.0.self_attn.q_proj.lora_B.weight"] = torch.zeros(8, 2)
    path = write_weights(tmp_path / "w.safetensors", tensors)
    assert scan_weights(path, config=LORA_CONFIG).warnings == ()


def test_tensors_outside_target_modules_are_a_warning(peft_adapters: dict[str, Path]) -> None:
    source = open_adapter_source(peft_adapters["trained"])
    config = {**source.config, "target_modules": ["q_proj"]}
    (warning,) = scan_weights(source.weights_path, config=config).warnings
    assert warning == (
        "4 tensors in 2 modules that match none of target_modules ['q_proj']: "
        "model.layers.0.self_attn.v_proj, model.layers.1.self_attn.v_proj"
    )


@pytest.mark.parametrize(
    ("targets", "strays"),
    [
        (r".*\.(q|v)_proj", None),
        (r"model\.layers\.\d+\.self_attn\.(q_proj|v_proj)", None),  # as PEFT: no PeftModel prefix
        (r"q_proj|v_proj", "model.layers.0.self_attn.q_proj"),  # fullmatch, not search
        (r"model\.layers\.0\..*", "model.layers.1.self_attn.q_proj"),
        ("all-linear", None),
        (["self_attn.q_proj", "v_proj"], None),
        (["proj"], "model.layers.0.self_attn.q_proj"),  # a whole name component, not a substring
    ],
)
def test_target_modules_are_matched_as_peft_matches_them(
    peft_adapters: dict[str, Path], targets: str | list[str], strays: str | None
) -> None:
    source = open_adapter_source(peft_adapters["trained"])
    config = {**source.config, "target_modules": targets}
    found = scan_weights(source.weights_path, config=config).warnings
    if strays is None:
        assert found == ()
    else:
        (warning,) = found
        assert "match none of target_modules" in warning and strays in warning


def test_target_modules_check_ignores_what_is_not_an_adapter_layer(tmp_path: Path) -> None:
    tensors = {
        **lora_pair(0, "q_proj"),
        "base_model.model.lm_head.weight": torch.ones(2, 2),  # a module to save
        "base_model.model.score.modules_to_save.weight": torch.ones(2),
        f"{PREFIX}.0.mlp.up_proj.lora_A.weight": torch.ones(2, 2),
    }
    path = write_weights(tmp_path / "w.safetensors", tensors)
    config = {**LORA_CONFIG, "target_modules": ["q_proj"]}
    assert scan_weights(path, config={**config, "modules_to_save": ["up_proj"]}).warnings == ()
    (warning,) = scan_weights(path, config=config).warnings
    assert "1 tensor in 1 module" in warning and "model.layers.0.mlp.up_proj" in warning
    for quiet in (
        {**config, "target_modules": None},
        {**config, "target_parameters": ["mlp.experts.down_proj"]},
        {**config, "peft_type": "PREFIX_TUNING"},
        {"peft_type": "LORA"},
    ):
        assert scan_weights(path, config=quiet).warnings == ()


def test_invalid_target_modules_regex_is_a_warning(peft_adapters: dict[str, Path]) -> None:
    source = open_adapter_source(peft_adapters["trained"])
    config = {**source.config, "target_modules": "q_proj("}
    (warning,) = scan_weights(source.weights_path, config=config).warnings
    assert "is not a valid regular expression" in warning


# --- convert_pickle -----------------------------------------------------------------------------


def _source_tensors() -> dict[str, torch.Tensor]:
    torch.manual_seed(2)
    base = torch.randn(6, 4)
    with_nan = torch.randn(5)
    with_nan[1] = float("nan")
    tied = torch.randn(3, 3)
    return {
        "f32": base,
        "bf16": torch.randn(4, 8).to(torch.bfloat16),
        "f16": torch.randn(2, 3).half(),
        "f64": torch.randn(2).double(),
        "f8": torch.randn(4).to(torch.float8_e4m3fn),
        "i64": torch.arange(5),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(1.5),
        "nan": with_nan,
        "negzero": torch.tensor([-0.0, 0.0]),
        "transposed": base.t(),  # non-contiguous, and shares a storage with f32
        "row": base[2],  # a view into f32's storage
        "tied_a": tied,
        "tied_b": tied,  # PEFT's tied weights: one tensor under two names
    }


def _assert_bitwise_equal(path: Path, expected: dict[str, torch.Tensor]) -> None:
    converted = load_file(path)
    assert set(converted) == set(expected)
    for name, tensor in expected.items():
        assert converted[name].dtype == tensor.dtype, name
        assert converted[name].shape == tensor.shape, name
        assert raw_bytes(converted[name]) == raw_bytes(tensor), name
    with safe_open(path, framework="pt") as opened:
        assert opened.metadata() == {"format": "pt"}


@pytest.mark.parametrize("zipped", [True, False])
def test_convert_pickle_round_trip(tmp_path: Path, zipped: bool) -> None:
    tensors = _source_tensors()
    if not zipped:
        del tensors["f8"]  # torch's legacy format cannot hold float8 at all
    bin_path = tmp_path / PICKLE_NAME
    torch.save(tensors, bin_path, _use_new_zipfile_serialization=zipped)
    out = tmp_path / "out"
    out.mkdir()
    dst = out / WEIGHTS_NAME
    dst.write_bytes(b"stale")  # replaced whole
    convert_pickle(bin_path, dst)
    _assert_bitwise_equal(dst, tensors)
    assert os.listdir(out) == [WEIGHTS_NAME]


def test_convert_a_real_peft_pickle(peft_adapters: dict[str, Path], tmp_path: Path) -> None:
    dst = tmp_path / WEIGHTS_NAME
    convert_pickle(peft_adapters["trained-bin"] / PICKLE_NAME, dst)
    reference = peft_adapters["trained"] / WEIGHTS_NAME
    _assert_bitwise_equal(dst, load_file(reference))
    assert scan_weights(dst).tensors == scan_weights(reference).tensors


class _Evil:
    """Unpickling this runs a shell command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _save_torch(payload: Any, path: Path) -> None:
    torch.save(payload, path)


def _save_torch_legacy(payload: Any, path: Path) -> None:
    torch.save(payload, path, _use_new_zipfile_serialization=False)


def _save_pickle(payload: Any, path: Path, protocol: int) -> None:
    with open(path, "wb") as stream:
        pickle.dump(payload, stream, protocol=protocol)


@pytest.mark.parametrize(
    "save",
    [
        _save_torch,
        _save_torch_legacy,
        lambda payload, path: _save_pickle(payload, path, 2),
        lambda payload, path: _save_pickle(payload, path, pickle.HIGHEST_PROTOCOL),
    ],
    ids=["torch-zip", "torch-legacy", "pickle-2", "pickle-highest"],
)
def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path, save: Any) -> None:
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    bin_path = tmp_path / PICKLE_NAME
    save({"w": torch.ones(2), "evil": _Evil(marker)}, bin_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafePickle) as caught:
        convert_pickle(bin_path, out / WEIGHTS_NAME)
    assert caught.value.path == bin_path
    assert "without executing code" in str(caught.value)
    assert caught.value.reason and "Weights only load failed" not in caught.value.reason
    assert not marker.exists()
    assert os.listdir(out) == []


def test_malicious_global_is_named(tmp_path: Path) -> None:
    bin_path = tmp_path / PICKLE_NAME
    torch.save({"evil": _Evil(tmp_path / "m")}, bin_path)
    with pytest.raises(UnsafePickle, match=r"GLOBAL posix\.system"):
        convert_pickle(bin_path, tmp_path / WEIGHTS_NAME)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ([torch.ones(2)], "expected a mapping of tensor names to tensors, found list"),
        (torch.ones(2), "found Tensor"),
        ({"a": {"b": torch.ones(2)}}, "'a' holds a dict, not a tensor"),
        ({"a": 1}, "'a' holds a int, not a tensor"),
        ({1: torch.ones(2)}, "tensor names must be strings"),
        ({"a/b": torch.ones(2)}, "contains a NUL or path character"),
        ({"__x__": torch.ones(2)}, "is reserved"),
        ({"s": torch.ones(2, 2).to_sparse()}, "sparse or quantized"),
    ],
)
def test_convert_pickle_refuses_what_is_not_a_flat_tensor_mapping(
    tmp_path: Path, payload: Any, fragment: str
) -> None:
    bin_path = tmp_path / PICKLE_NAME
    torch.save(payload, bin_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidAdapter) as caught:
        convert_pickle(bin_path, out / WEIGHTS_NAME)
    assert fragment in str(caught.value)
    assert caught.value.path == bin_path
    assert os.listdir(out) == []


def test_convert_pickle_refuses_a_damaged_file(tmp_path: Path) -> None:
    bin_path = tmp_path / PICKLE_NAME
    torch.save({"w": torch.ones(1000)}, bin_path)
    bin_path.write_bytes(bin_path.read_bytes()[:600])
    with pytest.raises(InvalidAdapter, match="not a readable PyTorch checkpoint"):
        convert_pickle(bin_path, tmp_path / WEIGHTS_NAME)
    bin_path.write_bytes(b"")
    with pytest.raises(InvalidAdapter, match="the file is empty"):
        convert_pickle(bin_path, tmp_path / WEIGHTS_NAME)
    with pytest.raises(InvalidAdapter, match="cannot read"):
        convert_pickle(tmp_path / "missing.bin", tmp_path / WEIGHTS_NAME)
    assert not (tmp_path / WEIGHTS_NAME).exists()


def test_convert_pickle_without_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # what `import torch` sees when it is absent
    with pytest.raises(MissingDependency, match="needs torch"):
        convert_pickle(tmp_path / PICKLE_NAME, tmp_path / WEIGHTS_NAME)


# --- imports ------------------------------------------------------------------------------------


def test_importing_adapter_loads_no_heavy_modules() -> None:
    code = (
        "import sys, adaptergit.adapter\n"
        "heavy = {'torch', 'numpy', 'safetensors', 'peft', 'transformers'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
