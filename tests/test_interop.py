"""The plain tools read the registry: real dvc and gto commands, real YAML parsers, the Hub card parser."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from adaptergit import Repo, registry_yaml
from adaptergit.layout import CARD_FILE as CARD_NAME

from .conftest import MakeAdapter
from .helpers import git
from .test_stages import gto, tool


def dvc(cwd: Path, *args: str) -> str:
    proc = subprocess.run([tool("dvc"), *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def load_both(text: str) -> tuple[object, object]:
    """The document as PyYAML (YAML 1.1) and ruamel.yaml (YAML 1.2, DVC's parser) read it."""
    return yaml.safe_load(text), YAML(typ="safe", pure=True).load(io.StringIO(text))


@pytest.fixture
def built(registry: Repo, make_adapter: MakeAdapter, base_model_dir: Path) -> Repo:
    """A registry with two versions of `bot` (different r) and one of `helper`."""
    registry.commit(
        make_adapter(seed=1, r=4),
        name="bot",
        metrics={"eval_loss": 2.5, "epoch": 1},
        base_model=base_model_dir,
    )
    registry.commit(
        make_adapter(seed=2, r=8),
        name="bot",
        metrics={"eval_loss": 1.25, "epoch": 2},
        base_model=base_model_dir,
    )
    registry.commit(make_adapter(seed=3), name="helper", metrics={"accuracy": 0.5})
    registry.assign("bot@v0.0.2", "prod")
    return registry


def test_dvc_yaml_lists_each_adapter_and_parses(built: Repo, base_model_dir: Path) -> None:
    text = (built.root / "dvc.yaml").read_text()
    assert git(built.root, "status", "--porcelain") == ""  # committed with the versions
    for doc in load_both(text):
        assert isinstance(doc, dict)
        bot = doc["artifacts"]["bot"]
        assert bot["path"] == "adapters/bot" and bot["type"] == "model"
        assert "lora" in bot["labels"] and f"base:{base_model_dir.name}" in bot["labels"]
        assert bot["meta"]["r"] == 8 and bot["meta"]["base_model"] == str(base_model_dir)
        assert doc["metrics"] == ["adapters/bot/metrics.json", "adapters/helper/metrics.json"]
        assert doc["params"] == [
            "adapters/bot/adapter_config.json",
            "adapters/helper/adapter_config.json",
        ]
    # each version's commit has the dvc.yaml of its time
    first = git(built.root, "show", "bot@v0.0.1:dvc.yaml")
    assert "helper" not in first and "bot:" in first


def test_dvc_metrics_and_params_commands(built: Repo) -> None:
    shown = json.loads(dvc(built.root, "metrics", "show", "--json"))
    metrics = shown[""]["data"]
    assert metrics["adapters/bot/metrics.json"]["data"] == {"eval_loss": 1.25, "epoch": 2}
    assert metrics["adapters/helper/metrics.json"]["data"] == {"accuracy": 0.5}
    diff = json.loads(dvc(built.root, "metrics", "diff", "bot@v0.0.1", "bot@v0.0.2", "--json"))
    loss = diff["adapters/bot/metrics.json"]["eval_loss"]
    assert (loss["old"], loss["new"], loss["diff"]) == (2.5, 1.25, -1.25)
    params = json.loads(dvc(built.root, "params", "diff", "bot@v0.0.1", "bot@v0.0.2", "--json"))
    r = params["adapters/bot/adapter_config.json"]["r"]
    assert (r["old"], r["new"]) == (4, 8)
    text = dvc(built.root, "params", "diff", "bot@v0.0.1", "bot@v0.0.2")
    assert "lora_alpha" in text


def test_dvc_artifacts_get_by_version_and_stage(built: Repo, tmp_path: Path) -> None:
    import hashlib

    for option, ref in ((["--rev", "v0.0.1"], "bot@v0.0.1"), (["--stage", "prod"], "bot@v0.0.2")):
        out = tmp_path / ref
        dvc(built.root, "artifacts", "get", str(built.root), "bot", *option, "-o", str(out))
        manifest = built.resolve(ref).manifest
        assert manifest is not None
        weights = (out / "adapter_model.safetensors").read_bytes()
        assert hashlib.sha256(weights).hexdigest() == manifest.weights.sha256


def test_gto_show_and_history(built: Repo) -> None:
    shown = gto(built.root, "show")
    assert "bot" in shown and "helper" in shown and "v0.0.2" in shown
    history = json.loads(gto(built.root, "history", "bot", "--json"))
    events = {(e["event"], e["version"]) for e in history}
    assert {
        ("registration", "v0.0.1"),
        ("registration", "v0.0.2"),
        ("assignment", "v0.0.2"),
    } <= events


def test_version_registered_with_gto_shows_in_log(built: Repo, make_adapter: MakeAdapter) -> None:
    # gto registers a version of an artifact that adaptergit never committed (no manifest)...
    gto(built.root, "register", "outsider", "--version", "v1.0.0")
    # ...and promotes an adaptergit version
    gto(built.root, "assign", "helper", "--version", "v0.0.1", "--stage", "staging")
    versions = {v.ref: v for v in built.log()}
    # not an adapter version (no manifest): listed apart, so every Version has its manifest
    assert "outsider@v1.0.0" not in versions
    assert [r.tag for r in built.unmanaged()] == ["outsider@v1.0.0"]
    assert versions["helper@v0.0.1"].stages == ("staging",)
    out = subprocess.run(
        [sys.executable, "-m", "adaptergit", "-C", str(built.root), "log"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},  # the STAGES column, untruncated
    )
    assert out.returncode == 0, out.stderr
    assert "outsider@v1.0.0" in out.stdout and "#staging" in out.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "adaptergit", "-C", str(built.root), "show", "outsider"],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 4 and "not committed with adaptergit" in shown.stderr
    # the registry's next commit keeps working alongside it
    built.commit(make_adapter(seed=9), name="helper")


def test_users_own_dvc_yaml_is_kept(registry: Repo, make_adapter: MakeAdapter) -> None:
    own = (
        "# my pipeline\n"
        "stages:\n"
        "  prepare:\n"
        "    cmd: python prepare.py  # keep me\n"
        "metrics:\n"
        "  - eval/summary.json\n"
    )
    (registry.root / "dvc.yaml").write_text(own)
    git(registry.root, "add", "dvc.yaml")
    git(registry.root, "commit", "-q", "-m", "my pipeline", "--no-verify")
    registry.commit(make_adapter(), name="bot", metrics={"eval_loss": 1.0})
    text = (registry.root / "dvc.yaml").read_text()
    assert "# keep me" in text and "# my pipeline" in text
    doc = yaml.safe_load(text)
    assert doc["stages"]["prepare"]["cmd"] == "python prepare.py"
    assert doc["metrics"] == ["eval/summary.json", "adapters/bot/metrics.json"]
    assert doc["artifacts"]["bot"]["type"] == "model"


def test_broken_dvc_yaml_of_the_user_is_refused_untouched(
    registry: Repo, make_adapter: MakeAdapter
) -> None:
    from adaptergit.errors import InvalidConfig

    (registry.root / "dvc.yaml").write_text("stages: [unclosed\n")
    head = registry.git.head()
    with pytest.raises(InvalidConfig, match=r"dvc.yaml: not valid YAML"):
        registry.commit(make_adapter(), name="bot")
    assert (registry.root / "dvc.yaml").read_text() == "stages: [unclosed\n"
    assert registry.git.head() == head and not (registry.root / "adapters" / "bot").exists()


def test_failed_commit_restores_dvc_yaml(registry: Repo, make_adapter: MakeAdapter) -> None:
    registry.commit(make_adapter(seed=1), name="bot")
    before = (registry.root / "dvc.yaml").read_bytes()
    lock = registry.root / ".git" / "refs" / "tags" / "other@v0.0.1.lock"
    lock.write_text("")  # git's ref transaction will fail
    with pytest.raises(Exception, match="git"):
        registry.commit(make_adapter(seed=2), name="other")
    lock.unlink()
    assert (registry.root / "dvc.yaml").read_bytes() == before
    assert git(registry.root, "status", "--porcelain") == ""


def test_checkout_to_writes_a_hub_model_card(built: Repo, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    folder = built.checkout("bot#prod", to=tmp_path / "export")
    card = ModelCard.load(folder / CARD_NAME)
    data = card.data
    assert data.library_name == "peft"
    assert "adaptergit" in data.tags and "lora" in data.tags
    assert data.pipeline_tag == "text-generation"
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results == {"eval_loss": 1.25}  # epoch is bookkeeping, not a result
    version = built.resolve("bot@v0.0.2")
    assert "bot@v0.0.2" in card.text and version.commit in card.text
    assert version.manifest is not None
    assert version.manifest.base_model.content_hash in card.text
    # an in-place checkout does not get one
    built.checkout("bot@v0.0.1", force=True)
    assert not (built.root / "adapters" / "bot" / CARD_NAME).exists()


def test_model_card_names_a_hub_base_model() -> None:
    from huggingface_hub import ModelCard, ModelCardData

    from adaptergit.manifest import BaseFingerprint, Manifest, Version, WeightsInfo
    from adaptergit.modelcard import render

    manifest = Manifest(
        name="bot",
        version="v0.1.0",
        parent=None,
        created="2025-01-01T00:00:00+00:00",
        message="classifier",
        peft_type="LORA",
        base_model=BaseFingerprint(
            name_or_path="meta-llama/Llama-3.2-1B",
            revision=None,
            status="unknown",
            structure_hash=None,
            content_hash=None,
            tensors=None,
            size=None,
        ),
        weights=WeightsInfo(
            file="adapter_model.safetensors", sha256="0" * 64, md5="0" * 32, size=1
        ),
        tensors=(),
    )
    version = Version(
        name="bot",
        version="v0.1.0",
        commit="c" * 40,
        tag="bot@v0.1.0",
        created=0,
        manifest=manifest,
    )
    card = ModelCard(render(version, {"task_type": "SEQ_CLS"}).decode())
    assert isinstance(card.data, ModelCardData)  # RepoCard types .data as the base CardData
    assert card.data.base_model == "meta-llama/Llama-3.2-1B"
    assert "base_model:adapter:meta-llama/Llama-3.2-1B" in (card.data.tags or [])
    assert card.data.pipeline_tag == "text-classification"
    assert "AutoModelForSequenceClassification" in card.text


# --- the YAML writer --------------------------------------------------------------------------

_keys = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=8
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
    | st.sampled_from(
        ["yes", "No", "on", "null", "~", "1.0", "1e3", "0x1F", "- a", "a: b", "#x", ""]
    )
)
_data = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _data, max_size=5))
def test_yaml_writer_round_trips_in_both_parsers(data: dict[str, object]) -> None:
    text = registry_yaml.dump_yaml(data)
    for parsed in load_both(text):
        assert _normal(parsed) == _normal(data)


_any_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=10)


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(
        _keys | _any_text | st.sampled_from(["", "yes", "a" * 122, "a" * 123, "é" * 130]),
        _data | st.sampled_from(["x" * 4096, "x " * 3000, 1e16, 1e-5, float("inf"), -0.0]),
        max_size=5,
    )
)
def test_yaml_writer_writes_what_pyyaml_writes(data: dict[str, object]) -> None:
    """The emitter written for start-up time agrees with PyYAML byte for byte, or leaves the
    data to PyYAML."""
    fast = registry_yaml._emit(data)
    if fast is not None:
        assert fast == registry_yaml._dump_with_pyyaml(data)


def test_yaml_writer_writes_registry_files_itself() -> None:
    """dvc.yaml and a model card's front matter never need PyYAML (10 ms of start-up)."""
    entry = registry_yaml.entry_for(
        "bot",
        "LORA",
        {
            "r": 8,
            "lora_alpha": 16.0,
            "target_modules": ["v_proj", "q_proj"],
            "task_type": "CAUSAL_LM",
        },
        None,
    )
    doc = {"artifacts": {"bot": entry.to_dict()}, "metrics": [], "params": ["a: b", "\u2028é😀"]}
    fast = registry_yaml._emit(doc)
    assert fast is not None and fast == registry_yaml._dump_with_pyyaml(doc)
    assert "lora_alpha: 16.0" in fast


def _normal(value: object) -> object:
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, float) and value == 0.0:
        return math.copysign(0.0, value)
    return value


def test_registry_yaml_is_deterministic() -> None:
    entries = [
        registry_yaml.ArtifactEntry(name="b", desc="PEFT LORA adapter", labels=("peft",)),
        registry_yaml.ArtifactEntry(name="a", desc="x: y", meta={"r": 8}),
    ]
    one = registry_yaml.render(entries)
    assert one == registry_yaml.render(list(reversed(entries)))
    assert registry_yaml.is_ours(one)
    doc = yaml.safe_load(one)
    assert list(doc["artifacts"]) == ["a", "b"]
    back = registry_yaml.ArtifactEntry.from_dict("a", doc["artifacts"]["a"])
    assert back == entries[1]
