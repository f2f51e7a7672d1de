"""Bounded resources: backtracking patterns, pickle bombs, oversized and deeply nested inputs."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest

from adaptergit.compare import lora_scaling
from adaptergit.config import RepoConfig
from adaptergit.errors import InvalidConfig

from .conftest import WEIGHTS, World, assert_clean


def _adapter_with_modules(folder: Path, module: str, target_modules: object) -> Path:
    folder.mkdir(parents=True)
    tensors = {
        f"base_model.model.{module}.lora_A.weight": (2, 4),
        f"base_model.model.{module}.lora_B.weight": (4, 2),
    }
    header, data = {}, b""
    for key, shape in tensors.items():
        raw = struct.pack("<f", 1.0) * (shape[0] * shape[1])
        header[key] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    (folder / WEIGHTS).write_bytes(struct.pack("<Q", len(text)) + text + data)
    config = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": target_modules}
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def test_a_backtracking_target_modules_pattern_does_not_hang_commit(world: World) -> None:
    (world.reg / ".adaptergit.toml").write_text(
        (world.reg / ".adaptergit.toml").read_text() + "\n[limits]\nregex_timeout = 0.2\n"
    )
    src = _adapter_with_modules(world.base / "redos", "a" * 40, "(a|aa)+$b")
    started = time.monotonic()
    result = world.run("commit", str(src), "--name", "redos")
    assert time.monotonic() - started < 15
    assert result.code == 0, result.text
    assert "took more than 0.2 s" in result.err


def test_a_backtracking_rank_pattern_is_a_clean_error() -> None:
    config = {"r": 8, "lora_alpha": 16, "rank_pattern": {"(a|aa)+$b": 4}}
    started = time.monotonic()
    with pytest.raises(InvalidConfig, match="rank_pattern"):
        lora_scaling(config, "base_model.model." + "a" * 40 + ".lora_A", 8)
    assert time.monotonic() - started < 5
    assert lora_scaling({"r": "x", "lora_alpha": [1]}, "m", 4) == 1.0  # junk values: no crash


def _pickle(folder: Path, tensors: dict) -> Path:  # type: ignore[type-arg]
    import torch

    folder.mkdir(parents=True)
    torch.save(tensors, folder / "adapter_model.bin")
    (folder / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]})
    )
    return folder


def test_an_expanded_view_in_a_pickle_is_refused(world: World) -> None:
    import torch

    one = torch.ones(1)
    src = _pickle(
        world.base / "bomb",
        {"base_model.model.q_proj.lora_A.weight": torch.as_strided(one, (1024, 1024), (0, 0))},
    )
    result = world.run("commit", str(src), "--name", "bomb")
    assert_clean(result)
    assert result.code == 2 and "expanded view" in result.err
    assert "bomb@v0.0.1" not in world.git("tag")
    cache = world.reg / ".dvc" / "cache" / "files" / "md5"
    assert not [p for p in cache.rglob("*") if p.name.startswith(".")]


def test_pickle_limits_come_from_the_configuration(world: World) -> None:
    import torch

    src = _pickle(world.base / "big", {"base_model.model.q_proj.lora_A.weight": torch.ones(4, 8)})
    config = world.reg / ".adaptergit.toml"
    config.write_text(config.read_text() + "\n[limits]\nmax_tensor_elements = 16\n")
    result = world.run("commit", str(src), "--name", "big")
    assert result.code == 2 and "limits.max_tensor_elements" in result.err
    config.write_text(
        config.read_text().replace("max_tensor_elements = 16", "max_pickle_bytes = 64")
    )
    result = world.run("commit", str(src), "--name", "big")
    assert result.code == 2 and "limits.max_pickle_bytes" in result.err


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 5000 + "]" * 5000,
        "[limits]\nregex_timeout = -1\n",
        "[limits]\nmax_tensor_elements = true\n",
        "[limits]\nmax_header_bytes = 100000001\n",
        "limits = 3\n",
        "\udcff = 1",
    ],
)
def test_a_bad_configuration_is_one_clean_error(tmp_path: Path, text: str) -> None:
    (tmp_path / ".adaptergit.toml").write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(InvalidConfig):
        RepoConfig.load(tmp_path)


def test_deep_toml_through_the_cli(world: World) -> None:
    (world.reg / ".adaptergit.toml").write_text("a = " + "[" * 5000 + "]" * 5000)
    result = world.run("commit", str(world.base / "v3"), "--name", "bot")
    assert_clean(result)
    assert result.code == 2 and ".adaptergit.toml" in result.err


def test_header_and_json_sizes_come_from_the_configuration(world: World) -> None:
    config = world.reg / ".adaptergit.toml"
    base = config.read_text()
    config.write_text(base + "\n[limits]\nmax_json_bytes = 10\n")
    result = world.run("commit", str(world.base / "v3"), "--name", "bot")
    assert result.code == 2 and "limits.max_json_bytes" in result.err
    config.write_text(base + "\n[limits]\nmax_header_bytes = 64\n")
    result = world.run("commit", str(world.base / "v3"), "--name", "bot")
    assert result.code == 2 and "limits.max_header_bytes" in result.err
    config.write_text(base)
    world.ok("commit", str(world.base / "v3"), "--name", "bot")
