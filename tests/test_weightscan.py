"""The one read of a weights file: hashes, per-tensor checks and copies from the same buffers,
whatever the buffer size, and a clean error when the file changes while it is read."""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
from pathlib import Path
from typing import Any

import blake3
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptergit import Repo, weightscan
from adaptergit.adapter import scan_weights
from adaptergit.errors import InvalidAdapter
from adaptergit.safetensors_format import read_header

TORCH_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F8_E5M2": torch.float8_e5m2,
    "F8_E4M3": torch.float8_e4m3fn,
    "C64": torch.complex64,
    "I32": torch.int32,
}
SPECIALS = ["nan", "inf", "-inf", "-0", "max", "-max", "tiny"]


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor], dtypes: dict[str, str]) -> Path:
    """A safetensors file written by hand, so that any dtype's raw bytes go in as they are."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, tensor in tensors.items():
        raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {
            "dtype": dtypes[name],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


def special(dtype: torch.dtype, kind: str) -> complex | float:
    info = torch.finfo(dtype if not dtype.is_complex else torch.float32)
    return {
        "nan": float("nan"),
        "inf": float("inf"),
        "-inf": float("-inf"),
        "-0": -0.0,
        "max": info.max,
        "-max": -info.max,
        "tiny": info.tiny,
    }[kind]


def reference(tensor: torch.Tensor) -> tuple[int, int, bool]:
    """NaN count, Inf count and all-zero, from torch itself (complex: per component)."""
    values = torch.view_as_real(tensor) if tensor.is_complex() else tensor
    values = values.to(torch.float64)
    return int(values.isnan().sum()), int(values.isinf().sum()), bool((values == 0).all())


@st.composite
def tensor_sets(draw: st.DrawFn) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors: dict[str, torch.Tensor] = {}
    dtypes: dict[str, str] = {}
    for i in range(draw(st.integers(1, 5))):
        name = draw(st.sampled_from(sorted(TORCH_DTYPES)))
        dtype = TORCH_DTYPES[name]
        numel = draw(st.integers(1, 3000))
        if name == "I32":
            tensor = torch.arange(numel, dtype=torch.int32) * -1
        elif draw(st.booleans()):  # a zero tensor, maybe with negative zeros
            base = torch.zeros(numel, dtype=torch.float32)
            if draw(st.booleans()):
                base[:: draw(st.integers(1, 7))] = -0.0
            tensor = base.to(dtype)
        else:
            seed = draw(st.integers(0, 2**16))
            generator = torch.Generator().manual_seed(seed)
            tensor = (torch.randn(numel, generator=generator) * 0.1).to(dtype)
        if name != "I32":
            for _ in range(draw(st.integers(0, 4))):
                index = draw(st.integers(0, numel - 1))
                kind = draw(st.sampled_from(SPECIALS))
                if dtype == torch.float8_e4m3fn and "inf" in kind:
                    kind = "nan"  # the format has no Inf: torch saturates to NaN
                value = special(dtype, kind)
                tensor[index] = torch.tensor(value, dtype=torch.float64).to(dtype)
        tensors[f"t{i}.{name}"] = tensor
        dtypes[f"t{i}.{name}"] = name
    return tensors, dtypes


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    case=tensor_sets(),
    block=st.sampled_from([8, 24, 100, 1000, 4096, 1 << 20]),
    threaded=st.booleans(),
)
def test_scan_matches_torch_for_any_block_size(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[dict[str, torch.Tensor], dict[str, str]],
    block: int,
    threaded: bool,
) -> None:
    """Counts, zero flags, BLAKE3, md5, sha256 and the copy, however blocks cut the tensors."""
    tensors, dtypes = case
    monkeypatch.setattr(weightscan, "BLOCK_SIZE", block)
    monkeypatch.setattr(weightscan, "RING", 2)
    monkeypatch.setattr(weightscan, "THREAD_MIN_SIZE", 0 if threaded else 1 << 40)
    path = write_safetensors(tmp_path / "w.safetensors", tensors, dtypes)
    blob = path.read_bytes()
    header = read_header(path)
    copy = io.BytesIO()
    with open(path, "rb") as stream:
        prefix = stream.read(header.data_start)
        result = weightscan.scan(stream, header, prefix, path, [copy])

    assert copy.getvalue() == blob
    assert result.md5 == hashlib.md5(blob).hexdigest()
    assert result.sha256 == hashlib.sha256(blob).hexdigest()
    for name, tensor in tensors.items():
        check = result.tensors[name]
        spec = header.by_name()[name]
        assert check.blake3 == blake3.blake3(blob[spec.start : spec.end]).hexdigest()
        if dtypes[name] == "I32":
            assert (check.nan, check.inf, check.zero) == (0, 0, False)
            continue
        assert (check.nan, check.inf, check.zero) == reference(tensor), name


def test_scan_reads_into_a_bounded_ring_not_a_map(tmp_path: Path) -> None:
    """No memory map (a truncated file would end in SIGBUS); the buffers are few and fixed."""
    path = write_safetensors(tmp_path / "w.safetensors", {"a": torch.randn(3 << 20)}, {"a": "F32"})
    scan = scan_weights(path)
    assert scan.size == path.stat().st_size
    assert weightscan.RING * weightscan.BLOCK_SIZE <= 64 << 20
    assert "mmap" not in Path(weightscan.__file__).read_text().replace("memory-mapped", "")


def big_adapter(folder: Path, megabytes: int = 40) -> Path:
    """An adapter folder whose weights span many buffers of the ring (several blocks each)."""
    folder.mkdir()
    n = megabytes * (1 << 20) // 8
    torch.manual_seed(0)
    tensors = {
        "base_model.model.q_proj.lora_A.weight": torch.randn(4, n // 4),
        "base_model.model.q_proj.lora_B.weight": torch.randn(n // 4, 4),
    }
    write_safetensors(folder / "adapter_model.safetensors", tensors, dict.fromkeys(tensors, "F32"))
    config = {"peft_type": "LORA", "r": 4, "target_modules": ["q_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def truncating_reads(monkeypatch: pytest.MonkeyPatch, path: Path, after: int = 1) -> None:
    """Truncate `path` (as a trainer re-saving the folder does) once `after` reads were made."""
    real = weightscan._read_into
    calls = [0]

    def read_into(*args: Any) -> int:
        calls[0] += 1
        if calls[0] == after + 1:
            os.truncate(path, 1000)
        return real(*args)

    monkeypatch.setattr(weightscan, "_read_into", read_into)


def test_truncated_mid_read_is_an_error_not_sigbus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = big_adapter(tmp_path / "src")
    weights = src / "adapter_model.safetensors"
    truncating_reads(monkeypatch, weights)
    with pytest.raises(InvalidAdapter, match="changed while it was being read"):
        scan_weights(weights, copy_to=io.BytesIO())


def test_rewritten_mid_read_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same size, new bytes (a trainer saving again): caught by the modification time."""
    src = big_adapter(tmp_path / "src")
    weights = src / "adapter_model.safetensors"
    real = weightscan._read_into
    calls = [0]

    def read_into(*args: Any) -> int:
        calls[0] += 1
        if calls[0] == 2:
            with open(weights, "r+b") as f:
                f.seek(-4, os.SEEK_END)
                f.write(b"\0\0\0\0")
            st = os.stat(weights)
            os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        return real(*args)

    monkeypatch.setattr(weightscan, "_read_into", read_into)
    with pytest.raises(InvalidAdapter, match="changed while it was being read"):
        scan_weights(weights)


def test_commit_of_a_source_truncated_mid_read_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The acceptance case adversary/17: one clean error, no version, no object, no temp."""
    repo = Repo.init(tmp_path / "reg")
    src = big_adapter(tmp_path / "src")
    truncating_reads(monkeypatch, src / "adapter_model.safetensors", after=2)
    head = repo.git.head()
    with pytest.raises(InvalidAdapter, match="changed while it was being read"):
        repo.commit(src, name="big")
    assert repo.git.head() == head
    assert repo.git.tags() == []
    assert not (repo.root / "adapters" / "big").exists()
    cache = repo.dvc.cache_dir
    assert not [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else True
    state = repo.registry.state_dir
    assert not list(state.glob(".adaptergit-*.tmp"))
    repo.close()


def test_cli_truncated_source_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from adaptergit.cli import main

    Repo.init(tmp_path / "reg").close()
    src = big_adapter(tmp_path / "src")
    truncating_reads(monkeypatch, src / "adapter_model.safetensors")
    capsys.readouterr()
    assert main(["-C", str(tmp_path / "reg"), "commit", str(src), "--name", "big"]) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "changed while it was being read" in lines[0], lines
    assert captured.out == ""
