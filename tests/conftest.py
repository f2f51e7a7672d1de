"""Test-session fixtures: isolation from the user's git config, and small real adapters."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    import torch
    from peft import PeftModel
    from transformers import LlamaForCausalLM, PreTrainedModel

    from adaptergit import Repo

    from .servers import S3Server, SSHServer


@pytest.fixture(autouse=True)
def isolate(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test away from the user's git config, caches and Hugging Face hub."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.delenv("GIT_WORK_TREE", raising=False)
    monkeypatch.delenv("GIT_INDEX_FILE", raising=False)
    for var in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{var}_NAME", "Ada Tester")
        monkeypatch.setenv(f"GIT_{var}_EMAIL", "ada@example.com")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home / ".cache" / "huggingface"))
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(home / ".cache" / "dvc-site"))
    monkeypatch.setenv("ADAPTERGIT_CACHE_DIR", str(home / ".cache" / "adaptergit"))
    os.environ.pop("ADAPTERGIT_LOCK_TIMEOUT", None)


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


# --- small real models, built from configs (nothing is downloaded) ----------------------------

TINY_LLAMA: dict[str, Any] = dict(
    vocab_size=128,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=64,
)


def tiny_base_model(seed: int = 0) -> LlamaForCausalLM:
    """A tiny Llama causal LM with deterministic weights."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**TINY_LLAMA))
    model.eval()  # type: ignore[no-untyped-call]  # transformers leaves PreTrainedModel.eval untyped
    return model


def tiny_peft_model(
    base: PreTrainedModel | None = None,
    *,
    seed: int = 1,
    r: int = 4,
    modules_to_save: list[str] | None = None,
    dtype: torch.dtype | None = None,
) -> PeftModel:
    """A LoRA on the tiny base whose B matrices are random, as if trained."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    base = base if base is not None else tiny_base_model()
    config = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=["q_proj", "v_proj"],
        modules_to_save=modules_to_save,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    assert isinstance(model, PeftModel)  # not a PeftMixedModel: mixed=False
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    if dtype is not None:
        model = model.to(dtype)
    model.eval()
    return model


@pytest.fixture(scope="session")
def base_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny base model saved as safetensors, as a model directory on disk."""
    path = tmp_path_factory.mktemp("base-model")
    tiny_base_model().save_pretrained(path, safe_serialization=True)
    return path


class MakeAdapter(Protocol):
    """The `make_adapter` fixture: save a tiny LoRA (see `tiny_peft_model`), return its folder."""

    def __call__(
        self,
        seed: int = 1,
        *,
        safe: bool = True,
        r: int = 4,
        modules_to_save: list[str] | None = None,
        dtype: torch.dtype | None = None,
    ) -> Path: ...


@pytest.fixture
def make_adapter(tmp_path: Path) -> MakeAdapter:
    """Save a tiny LoRA adapter with PEFT's save_pretrained and return its folder."""
    counter = iter(range(10_000))

    def make(
        seed: int = 1,
        *,
        safe: bool = True,
        r: int = 4,
        modules_to_save: list[str] | None = None,
        dtype: torch.dtype | None = None,
    ) -> Path:
        folder = tmp_path / f"adapter-{seed}-{next(counter)}"
        model = tiny_peft_model(seed=seed, r=r, modules_to_save=modules_to_save, dtype=dtype)
        model.save_pretrained(str(folder), safe_serialization=safe)
        return folder

    return make


class NumpyAdapter(Protocol):
    """The `numpy_adapter` fixture: write a tiny LoRA folder without torch, return it."""

    def __call__(self, seed: int = 1, *, folder: Path | None = None) -> Path: ...


@pytest.fixture
def numpy_adapter(tmp_path: Path) -> NumpyAdapter:
    """Write a tiny LoRA folder with numpy and safetensors only (no torch): 2 layers x q/v, r=4,
    hidden 32, random A and B from `seed`; return the folder."""
    import json

    import numpy as np
    from safetensors.numpy import save_file

    def make(seed: int = 1, *, folder: Path | None = None) -> Path:
        folder = folder or tmp_path / f"numpy-adapter-{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        tensors = {}
        for layer in range(2):
            for module in ("q_proj", "v_proj"):
                prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
                tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((4, 32), dtype=np.float32)
                tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((32, 4), dtype=np.float32)
        save_file(tensors, str(folder / "adapter_model.safetensors"))
        config = {
            "peft_type": "LORA",
            "r": 4,
            "lora_alpha": 8,
            "target_modules": ["q_proj", "v_proj"],
            "task_type": "CAUSAL_LM",
        }
        (folder / "adapter_config.json").write_text(json.dumps(config))
        return folder

    return make


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Repo]:
    """A fresh adaptergit registry."""
    from adaptergit import Repo

    repo = Repo.init(tmp_path / "registry")
    yield repo
    repo.close()


# --- real servers on 127.0.0.1 -------------------------------------------------------------


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip every test that needs sshd from one place, so that a machine without it gets one
    summary line naming the package, not one per test (see `servers.needs`)."""
    from .servers import needs_sshd

    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    if (
        "ssh_server" in getattr(item, "fixturenames", ())
        or item.get_closest_marker("sshd") is not None
        or "ssh" in params
    ):
        needs_sshd()


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    from .servers import SSHServer

    server = SSHServer(tmp_path_factory.mktemp("sshd")).setup().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from .servers import S3Server

    server = S3Server().start()
    yield server
    server.stop()


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A short id for a long string parameter, as pytest 9.2 makes by default and older
    releases do not: the id goes into ``PYTEST_CURRENT_TEST``, and an environment variable
    longer than 128 KiB makes every program the test starts fail with E2BIG."""
    if isinstance(val, str | bytes) and len(val) > 100:
        return f"{argname}-{len(val)}-chars"
    return None
