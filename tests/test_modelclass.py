"""The one model of what an adapter applies to: which class, in which order; and folders that hold
several adapters."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from adaptergit import Repo
from adaptergit.errors import AdapterGitWarning, SeveralAdapters, UnknownPeftAdapter
from adaptergit.modelclass import model_class, read_base_config

MAPPING = {"base_model_class": "LlamaForCausalLM", "parent_library": "transformers.models.llama"}


@pytest.mark.parametrize(
    ("adapter", "base", "expected"),
    [
        # PEFT's own record of the class wins
        (
            {"auto_mapping": MAPPING},
            {"architectures": ["LlamaModel"]},
            ("LlamaForCausalLM", "auto_mapping"),
        ),
        # then the base's config.json
        (
            {},
            {"architectures": ["BertForSequenceClassification"]},
            ("BertForSequenceClassification", "architectures"),
        ),
        # ... if it fits the task type; else the task's Auto class
        (
            {"task_type": "CAUSAL_LM"},
            {"architectures": ["LlamaModel"]},
            ("AutoModelForCausalLM", "task_type"),
        ),
        (
            {"task_type": "CAUSAL_LM"},
            {"architectures": ["GPT2LMHeadModel"]},
            ("GPT2LMHeadModel", "architectures"),
        ),
        ({"task_type": "SEQ_2_SEQ_LM"}, None, ("AutoModelForSeq2SeqLM", "task_type")),
        (
            {"task_type": "SEQ_CLS"},
            {"architectures": ["LlamaForCausalLM"]},
            ("AutoModelForSequenceClassification", "task_type"),
        ),
        # nothing known
        ({}, None, ("AutoModel", "default")),
        # only transformers classes are ever named, and only valid identifiers
        (
            {"auto_mapping": {"base_model_class": "Evil", "parent_library": "os"}},
            None,
            ("AutoModel", "default"),
        ),
        (
            {
                "auto_mapping": {
                    "base_model_class": "x; import os",
                    "parent_library": "transformers",
                }
            },
            {"architectures": ["../../x"]},
            ("AutoModel", "default"),
        ),
    ],
)
def test_the_class_comes_from_auto_mapping_then_architectures_then_task_type(
    adapter: dict[str, object], base: dict[str, object] | None, expected: tuple[str, str]
) -> None:
    found = model_class(adapter, base)
    assert (found.name, found.source) == expected


def test_base_config_is_read_strictly(tmp_path: Path) -> None:
    assert read_base_config(tmp_path) is None
    (tmp_path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], "x": NaN}')
    assert read_base_config(tmp_path) is None
    (tmp_path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    assert read_base_config(tmp_path / "model.safetensors") == {
        "architectures": ["LlamaForCausalLM"]
    }


def test_base_check_record_round_trips() -> None:
    from adaptergit.loading import BaseCheck
    from adaptergit.manifest import BaseFingerprint

    fingerprint = BaseFingerprint(
        name_or_path="org/x",
        revision=None,
        status="unknown",
        structure_hash=None,
        content_hash=None,
        tensors=None,
        size=None,
    )
    check = BaseCheck(
        ref="a@v0.0.1",
        status="exact",
        modules=4,
        expected=fingerprint,
        actual=fingerprint,
        base="x",
        model_class="LlamaForCausalLM",
        resize_embeddings=140,
    )
    assert BaseCheck.from_dict(json.loads(json.dumps(check.to_dict()))) == check


# --- folders holding several adapters -------------------------------------------------------------


@pytest.fixture
def two_adapters(tmp_path: Path) -> Path:
    """A two-adapter PeftModel saved as PEFT saves it: default at the top, task_b in task_b/."""
    from peft import LoraConfig, get_peft_model

    from .conftest import tiny_base_model

    model = get_peft_model(
        tiny_base_model(), LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False)
    )
    model.add_adapter("task_b", LoraConfig(r=2, target_modules=["v_proj"], init_lora_weights=False))
    model.save_pretrained(str(tmp_path / "both"))
    return tmp_path / "both"


def test_a_folder_of_several_adapters_is_never_trimmed(registry: Repo, two_adapters: Path) -> None:
    head = registry.git.head()
    with pytest.raises(SeveralAdapters) as caught:
        registry.commit(two_adapters, name="both")
    assert caught.value.adapters == {"default": two_adapters, "task_b": two_adapters / "task_b"}
    assert "task_b" in str(caught.value) and "--adapter" in str(caught.value)
    assert registry.git.head() == head
    proc = subprocess.run(
        ["adaptergit", "-C", str(registry.root), "commit", str(two_adapters), "--name", "both"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "task_b" in proc.stderr


def test_pick_one_or_record_all_in_one_commit(registry: Repo, two_adapters: Path) -> None:
    proc = subprocess.run(
        [
            "adaptergit",
            "-C",
            str(registry.root),
            "commit",
            str(two_adapters),
            "--name",
            "b",
            "--adapter",
            "task_b",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    weights = (registry.root / "adapters" / "b" / "adapter_model.safetensors").read_bytes()
    assert weights == (two_adapters / "task_b" / "adapter_model.safetensors").read_bytes()
    registry.registry.refresh()
    versions = registry.commit(two_adapters, names={"default": "first", "task_b": "second"})
    assert [v.ref for v in versions] == ["first@v0.0.1", "second@v0.0.1"]
    assert len({v.commit for v in versions}) == 1
    with pytest.raises(UnknownPeftAdapter, match="task_c"):
        registry.commit(two_adapters, name="c", adapter_name="task_c")


def test_a_folder_with_only_a_sub_adapter_commits_it_saying_so(
    registry: Repo, two_adapters: Path, tmp_path: Path
) -> None:
    import shutil

    only = tmp_path / "selected"
    shutil.copytree(
        two_adapters / "task_b", only / "task_b"
    )  # save_pretrained(selected_adapters=...)
    with pytest.warns(AdapterGitWarning, match="committing PEFT adapter 'task_b'"):
        version = registry.commit(only, name="sel")
    assert version.weights.sha256 == registry.resolve("sel").weights.sha256
