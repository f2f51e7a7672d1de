"""Validation rules for adapter folders that PEFT saves normally but look odd: AdaLoRA modules
pruned to rank 0 (accepted) and Git LFS pointers where the weights should be (refused, naming LFS)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from adaptergit import Repo
from adaptergit.adapter import lfs_pointer, open_adapter_source, scan_weights
from adaptergit.errors import InvalidAdapter
from adaptergit.layout import CONFIG_FILE, PICKLE_FILE, WEIGHTS_FILE

PREFIX = "base_model.model.model.layers.0.self_attn"


def adalora_folder(path: Path, *, q_rank: int, bad: str | None = None) -> Path:
    """An AdaLoRA folder whose q_proj kept `q_rank` of its ranks (0: pruned away), v_proj 2."""
    path.mkdir(parents=True)
    tensors = {}
    for module, rank in (("q_proj", q_rank), ("v_proj", 2)):
        tensors[f"{PREFIX}.{module}.lora_A"] = np.ones((rank, 8), np.float32)
        tensors[f"{PREFIX}.{module}.lora_B"] = np.ones((8, rank), np.float32)
        tensors[f"{PREFIX}.{module}.lora_E"] = np.ones((rank, 1), np.float32)
    if bad == "zero3":  # a DeepSpeed ZeRO-3 empty shard: 1-D [0]
        tensors[f"{PREFIX}.q_proj.lora_A"] = np.ones((0,), np.float32)
    if bad == "half":  # lora_A pruned but lora_B not: PEFT could not load it
        tensors[f"{PREFIX}.q_proj.lora_B"] = np.ones((8, 2), np.float32)
    save_file(tensors, str(path / WEIGHTS_FILE))
    config = {
        "peft_type": "ADALORA",
        "init_r": 4,
        "target_r": 2,
        "lora_alpha": 8,
        "target_modules": ["q_proj", "v_proj"],
        "task_type": "CAUSAL_LM",
    }
    (path / CONFIG_FILE).write_text(json.dumps(config))
    return path


def test_adalora_rank_zero_module_is_accepted(tmp_path: Path) -> None:
    folder = adalora_folder(tmp_path / "ada", q_rank=0)
    source = open_adapter_source(folder)
    scan = scan_weights(source.weights_path, config=source.config)
    shapes = {
        t.name.rsplit(".", 2)[-2] + "." + t.name.rsplit(".", 1)[-1]: t.shape for t in scan.tensors
    }
    assert shapes["q_proj.lora_A"] == (0, 8) and shapes["q_proj.lora_E"] == (0, 1)
    assert scan.warnings == ()


@pytest.mark.parametrize("bad", ["zero3", "half"])
def test_other_empty_tensors_stay_refused(tmp_path: Path, bad: str) -> None:
    folder = adalora_folder(tmp_path / "ada", q_rank=0, bad=bad)
    source = open_adapter_source(folder)
    with pytest.raises(InvalidAdapter, match="zero-size tensors"):
        scan_weights(source.weights_path, config=source.config)


def test_rank_zero_is_only_adaloras(tmp_path: Path) -> None:
    folder = adalora_folder(tmp_path / "ada", q_rank=0)
    config = json.loads((folder / CONFIG_FILE).read_text())
    (folder / CONFIG_FILE).write_text(json.dumps({**config, "peft_type": "LORA"}))
    source = open_adapter_source(folder)
    with pytest.raises(InvalidAdapter, match="zero-size tensors"):
        scan_weights(source.weights_path, config=source.config)


POINTER = (
    b"version https://git-lfs.github.com/spec/v1\n"
    b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    b"size 67144544\n"
)


@pytest.mark.parametrize("filename", [WEIGHTS_FILE, PICKLE_FILE])
def test_git_lfs_pointer_is_refused_naming_lfs(
    registry: Repo, tmp_path: Path, filename: str
) -> None:
    folder = tmp_path / "cloned-without-lfs"
    folder.mkdir()
    (folder / CONFIG_FILE).write_text('{"peft_type": "LORA", "r": 8}')
    (folder / filename).write_bytes(POINTER)
    assert lfs_pointer(folder / filename) == {
        "version": "https://git-lfs.github.com/spec/v1",
        "oid": "sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393",
        "size": "67144544",
    }
    with pytest.raises(
        InvalidAdapter, match=r"Git LFS pointer of a 67144544-byte file.*git lfs pull"
    ):
        open_adapter_source(folder)
    head = registry.git.head()
    proc = subprocess.run(
        ["adaptergit", "-C", str(registry.root), "commit", str(folder), "--name", "bot"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "LFS" in proc.stderr and registry.git.head() == head


def test_a_file_that_only_mentions_lfs_is_not_a_pointer(tmp_path: Path) -> None:
    path = tmp_path / "w"
    path.write_bytes(b"x" * 8 + POINTER)
    assert lfs_pointer(path) is None
    path.write_bytes(POINTER + b"\0" * 2000)  # too large to be a pointer
    assert lfs_pointer(path) is None


def test_a_base_model_of_lfs_pointers_is_named_as_such(
    tmp_path: Path, base_model_dir: Path
) -> None:
    import shutil

    import adaptergit
    from adaptergit.errors import InvalidBaseModel

    registry = Repo.init(tmp_path / "registry")
    folder = tmp_path / "adapter"
    folder.mkdir()
    save_file(
        {
            f"{PREFIX}.q_proj.lora_A.weight": np.ones((2, 32), np.float32),
            f"{PREFIX}.q_proj.lora_B.weight": np.ones((32, 2), np.float32),
        },
        str(folder / WEIGHTS_FILE),
    )
    (folder / CONFIG_FILE).write_text('{"peft_type": "LORA", "r": 2, "target_modules": ["q_proj"]}')
    registry.commit(folder, name="bot", base_model=base_model_dir)
    clone = tmp_path / "cloned-base"
    shutil.copytree(base_model_dir, clone)
    for weights in clone.glob("*.safetensors"):
        weights.write_bytes(POINTER)
    with pytest.raises(InvalidBaseModel, match="Git LFS pointer"):
        adaptergit.check_base("bot", clone, repo=registry)
    registry.close()


def test_every_safetensors_reader_names_an_lfs_pointer(tmp_path: Path) -> None:
    from adaptergit.errors import InvalidConfig, InvalidSafetensors
    from adaptergit.safetensors_format import read_header

    (tmp_path / "model.safetensors").write_bytes(POINTER)
    with pytest.raises(InvalidSafetensors, match="Git LFS pointer"):
        read_header(tmp_path / "model.safetensors")
    (tmp_path / CONFIG_FILE).write_bytes(POINTER)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"\0" * 8)
    with pytest.raises(InvalidConfig, match="Git LFS pointer"):
        open_adapter_source(tmp_path)
