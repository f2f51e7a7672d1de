"""Loading a version onto a base model: the fingerprint check, then PEFT, with real models."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import adaptergit
from adaptergit import Repo
from adaptergit.cli import cli, main
from adaptergit.errors import (
    AdapterGitWarning,
    BaseModelMismatch,
    BaseModelUnverifiable,
    IncompatibleBaseModel,
)
from adaptergit.loading import BaseCheck, required_shapes

from .conftest import TINY_LLAMA, tiny_base_model, tiny_peft_model

PROBE = torch.tensor([[1, 5, 9, 2, 7]])


def save_base(path: Path, seed: int = 0, **overrides: int) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    LlamaForCausalLM(LlamaConfig(**{**TINY_LLAMA, **overrides})).save_pretrained(path)
    return path


# The `versioned` fixture: the registry, and the version's logits on PROBE.
Versioned = tuple[Repo, torch.Tensor]


@pytest.fixture
def versioned(registry: Repo, base_model_dir: Path, tmp_path: Path) -> Versioned:
    """A version trained (randomly) on the tiny base, and its outputs on a probe."""
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_model_dir)
    model = tiny_peft_model(base, seed=4)
    with torch.no_grad():
        expected = model(PROBE).logits
    version = registry.commit(model, name="bot", metrics={"eval_loss": 1.0})
    assert version.manifest is not None
    assert version.manifest.base_model.name_or_path == str(base_model_dir)
    return registry, expected


def test_load_on_the_exact_base(versioned: Versioned, base_model_dir: Path) -> None:
    repo, expected = versioned
    with warnings.catch_warnings():
        warnings.simplefilter("error", AdapterGitWarning)
        model = adaptergit.load("bot@v0.0.1", base_model_dir, repo=repo.root)
    from peft import PeftModel

    assert isinstance(model, PeftModel)
    with torch.no_grad():
        assert torch.equal(model(PROBE).logits, expected)
    check = adaptergit.check_base("bot", base_model_dir, repo=repo)
    assert check.exact and check.modules == 4  # q_proj and v_proj in 2 layers
    assert BaseCheck.from_dict(json.loads(json.dumps(check.to_dict()))) == check


def test_check_reads_headers_and_cached_hashes_only(
    registry: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The base was fingerprinted at commit time: loading hashes none of its tensors again."""
    import os

    from transformers import AutoModelForCausalLM

    from adaptergit import fingerprint

    base_dir = save_base(tmp_path / "base", seed=0)
    for f in base_dir.iterdir():  # downloaded a while ago (fresher files are not trusted)
        os.utime(f, (1_700_000_000, 1_700_000_000))
    registry.commit(tiny_peft_model(AutoModelForCausalLM.from_pretrained(base_dir)), name="bot")
    hashed: list[object] = []
    real = fingerprint._hash_tensors

    def spy(*a: Any) -> dict[str, str]:
        hashed.append(a)
        return real(*a)

    monkeypatch.setattr(fingerprint, "_hash_tensors", spy)
    assert adaptergit.check_base("bot", base_dir, repo=registry).exact
    adaptergit.load("bot", base_dir, repo=registry)
    assert hashed == []


def test_other_weights_raise_unless_allowed(versioned: Versioned, tmp_path: Path) -> None:
    repo, expected = versioned
    other = save_base(tmp_path / "other-base", seed=5)
    with pytest.raises(BaseModelMismatch) as info:
        adaptergit.load("bot", other, repo=repo)
    assert info.value.kind == "weights" and "allow_base_mismatch" in str(info.value)
    with pytest.warns(AdapterGitWarning, match="loading it anyway"):
        model = adaptergit.load("bot", other, repo=repo, allow_base_mismatch=True)
    with torch.no_grad():
        assert not torch.equal(model(PROBE).logits, expected)


def test_other_tensors_that_fit_are_a_structure_mismatch(
    versioned: Versioned, tmp_path: Path
) -> None:
    repo, _ = versioned
    deeper = save_base(tmp_path / "deeper", num_hidden_layers=3)
    with pytest.raises(BaseModelMismatch) as info:
        adaptergit.check_base("bot", deeper, repo=repo)
    assert info.value.kind == "structure"
    with pytest.warns(AdapterGitWarning):
        check = adaptergit.check_base("bot", deeper, repo=repo, allow_base_mismatch=True)
    assert check.status == "structure-differs"


def test_shapes_that_do_not_fit_always_raise_naming_the_module(
    versioned: Versioned, tmp_path: Path
) -> None:
    repo, _ = versioned
    wider = save_base(tmp_path / "wider", hidden_size=48, intermediate_size=96)
    for allow in (False, True):
        with pytest.raises(IncompatibleBaseModel) as info:
            adaptergit.load("bot", wider, repo=repo, allow_base_mismatch=allow)
        assert info.value.module == "model.layers.0.self_attn.q_proj"
        assert info.value.expected == (32, 32) and info.value.actual == (48, 48)
        assert "model.layers.0.self_attn.q_proj" in str(info.value)
    shallow = save_base(tmp_path / "shallow", num_hidden_layers=1)
    with pytest.raises(IncompatibleBaseModel, match=r"layers.1.self_attn.q_proj.*no such module"):
        adaptergit.check_base("bot", shallow, repo=repo)


def test_loaded_model_as_base(versioned: Versioned, base_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    repo, expected = versioned
    base = AutoModelForCausalLM.from_pretrained(base_model_dir)  # knows its folder
    model = adaptergit.load("bot", base, repo=repo)
    with torch.no_grad():
        assert torch.equal(model(PROBE).logits, expected)
    # built in memory: no folder to fingerprint
    with pytest.raises(BaseModelUnverifiable, match="base_model_path"):
        adaptergit.load("bot", tiny_base_model(), repo=repo)
    with pytest.warns(AdapterGitWarning, match="not checked"):
        check = adaptergit.check_base("bot", tiny_base_model(), repo=repo, allow_base_mismatch=True)
    assert check.status == "unverified" and check.actual is None
    model = adaptergit.load("bot", tiny_base_model(), repo=repo, base_model_path=base_model_dir)
    with torch.no_grad():
        assert torch.equal(model(PROBE).logits, expected)
    # a model in memory with the wrong shapes is refused from its modules alone
    from transformers import LlamaConfig, LlamaForCausalLM

    wide = LlamaForCausalLM(LlamaConfig(**{**TINY_LLAMA, "hidden_size": 48}))
    with pytest.raises(IncompatibleBaseModel):
        adaptergit.load("bot", wide, repo=repo, allow_base_mismatch=True)


def test_version_without_fingerprint_is_checked_by_shapes(
    registry: Repo, base_model_dir: Path
) -> None:
    model = tiny_peft_model(seed=2)  # built in memory: the base is "unknown" in the manifest
    version = registry.commit(model, name="bot")
    assert version.manifest is not None and version.manifest.base_model.status == "unknown"
    with pytest.warns(AdapterGitWarning, match="only the shapes"):
        check = adaptergit.check_base("bot", base_model_dir, repo=registry)
    assert check.status == "unrecorded"


def test_stage_refs_load(versioned: Versioned, base_model_dir: Path) -> None:
    repo, expected = versioned
    repo.assign("bot", "prod")
    model = adaptergit.load("bot#prod", base_model_dir, repo=repo)
    with torch.no_grad():
        assert torch.equal(model(PROBE).logits, expected)


def test_cli_verify_base_model(
    versioned: Versioned, base_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo, _ = versioned
    root = str(repo.root)
    result = CliRunner().invoke(
        cli,
        ["-C", root, "verify", "bot", "--base-model", str(base_model_dir)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    assert result.output.startswith("bot@v0.0.1: the base model matches exactly")
    data = json.loads(
        CliRunner()
        .invoke(cli, ["-C", root, "verify", "bot", "--base-model", str(base_model_dir), "--json"])
        .output
    )
    assert data["status"] == "exact"
    other = save_base(tmp_path / "other", seed=3)
    wider = save_base(tmp_path / "wider", hidden_size=48, intermediate_size=96)
    capsys.readouterr()
    assert main(["-C", root, "verify", "bot", "--base-model", str(other)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "adaptergit: error: bot@v0.0.1 was trained on base model" in err
    assert main(["-C", root, "verify", "bot", "--base-model", str(other), "--allow-mismatch"]) == 0
    assert "other weights" in capsys.readouterr().out
    assert main(["-C", root, "verify", "bot", "--base-model", str(wider)]) == 1
    assert "model.layers.0.self_attn.q_proj" in capsys.readouterr().err


def test_required_shapes_from_the_manifest() -> None:
    from adaptergit.manifest import BaseFingerprint, Manifest, TensorRecord, WeightsInfo

    def rec(name: str, *shape: int) -> TensorRecord:
        return TensorRecord(name=name, dtype="F32", shape=shape, blake3="0" * 64)

    manifest = Manifest(
        name="m",
        version="v0.0.1",
        parent=None,
        created="",
        message="",
        peft_type="LORA",
        base_model=BaseFingerprint(
            name_or_path=None,
            revision=None,
            status="unknown",
            structure_hash=None,
            content_hash=None,
            tensors=None,
            size=None,
        ),
        weights=WeightsInfo(file="w", sha256="0" * 64, md5="0" * 32, size=0),
        tensors=(
            rec("base_model.model.h.10.attn.c_attn.lora_A.weight", 4, 64),
            rec("base_model.model.h.10.attn.c_attn.lora_B.weight", 192, 4),
            rec("base_model.model.h.2.attn.c_attn.lora_A.weight", 4, 64),
            rec("base_model.model.h.2.attn.c_attn.lora_B.weight", 192, 4),
            rec("base_model.model.wte.lora_embedding_A", 4, 1000),
            rec("base_model.model.wte.lora_embedding_B", 64, 4),
            rec("base_model.model.lm_head.modules_to_save.weight", 1000, 64),
        ),
    )
    # GPT-2's Conv1D stores (in, out): fan_in_fan_out flips the expectation
    assert required_shapes(manifest, {"fan_in_fan_out": True}) == {
        "h.2.attn.c_attn": (64, 192),
        "h.10.attn.c_attn": (64, 192),  # natural order: layer 2 before layer 10
        "wte": (1000, 64),
    }
    assert required_shapes(manifest, {})["h.2.attn.c_attn"] == (192, 64)
