"""adaptergit diff: numbers against full-matrix torch, module changes, config/metrics, git's driver."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptergit import Repo
from adaptergit.cli import cli, main
from adaptergit.compare import (
    ADDED,
    CHANGED,
    REMOVED,
    RESHAPED,
    UNCHANGED,
    better_direction,
    compare_weights,
    config_changes,
    lora_scaling,
)

from .conftest import tiny_peft_model
from .helpers import git

PREFIX = "base_model.model.model.layers"


def naive(
    old: dict[str, Any], new: dict[str, Any], s_old: float, s_new: float
) -> dict[str, tuple[float, float]]:
    """module -> (relative change, cosine), from full d_out x d_in updates in float64 torch."""
    import torch

    result = {}
    for key in old:
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[: -len(".lora_A.weight")]
        a1, b1 = old[key].double(), old[f"{module}.lora_B.weight"].double()
        a2, b2 = new[key].double(), new[f"{module}.lora_B.weight"].double()
        dw1, dw2 = s_old * (b1 @ a1), s_new * (b2 @ a2)
        rel = float(torch.linalg.norm(dw2 - dw1) / torch.linalg.norm(dw1))
        cos = float((dw1 * dw2).sum() / (torch.linalg.norm(dw1) * torch.linalg.norm(dw2)))
        result[module] = (rel, cos)
    return result


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_lora_numbers_match_full_matrices(registry: Repo, tmp_path: Path, dtype: str) -> None:
    import torch
    from safetensors.torch import load_file

    kind = getattr(torch, dtype)
    src = {}
    for label, seed, r in (("v1", 1, 4), ("v2", 2, 8)):
        src[label] = tmp_path / label
        tiny_peft_model(seed=seed, r=r, dtype=kind).save_pretrained(str(src[label]))
        registry.commit(src[label], name="d")
    result = registry.diff("d@v0.0.1", "d@v0.0.2")
    old = load_file(src["v1"] / "adapter_model.safetensors")
    new = load_file(src["v2"] / "adapter_model.safetensors")
    assert {t.dtype for t in old.values()} == {kind}
    expected = naive(old, new, 8 / 4, 16 / 8)  # lora_alpha = 2r in both
    modules = {m.name: m for m in result.modules}
    assert set(modules) == set(expected) and len(expected) == 4
    for name, (rel, cos) in expected.items():
        m = modules[name]
        assert m.status == CHANGED and m.kind == "lora"
        assert (m.rank_old, m.rank_new) == (4, 8) and m.shape_old == m.shape_new == (32, 32)
        assert m.rel_change == pytest.approx(rel, rel=1e-9)
        assert m.cosine == pytest.approx(cos, rel=1e-9, abs=1e-12)
    # largest change first
    rels = [m.rel_change for m in result.modules]
    assert rels == sorted((r for r in rels if r is not None), reverse=True)
    assert result.summary.startswith("weights: 4 of 4 modules changed; largest: ")


def write_adapter(path: Path, tensors: dict[str, Any]) -> Path:
    from safetensors.numpy import save_file

    save_file(tensors, str(path))
    return path


def lora(rng: Any, d_out: int, d_in: int, r: int) -> tuple[Any, Any]:
    import numpy as np

    return (
        rng.standard_normal((r, d_in)).astype(np.float32),
        rng.standard_normal((d_out, r)).astype(np.float32),
    )


def test_added_removed_reshaped_and_plain_tensors(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    keep_a, keep_b = lora(rng, 16, 12, 4)
    old: dict[str, Any] = {
        f"{PREFIX}.0.q.lora_A.weight": keep_a,
        f"{PREFIX}.0.q.lora_B.weight": keep_b,
        f"{PREFIX}.0.v.lora_A.weight": lora(rng, 16, 12, 4)[0],
        f"{PREFIX}.0.v.lora_B.weight": lora(rng, 16, 12, 4)[1],
        f"{PREFIX}.0.o.lora_A.weight": lora(rng, 16, 12, 4)[0],
        f"{PREFIX}.0.o.lora_B.weight": lora(rng, 16, 12, 4)[1],
        "base_model.model.lm_head.weight": rng.standard_normal((10, 12)).astype(np.float32),
    }
    head = old["base_model.model.lm_head.weight"].copy()
    head[0, 0] += 1.0
    new: dict[str, Any] = {
        f"{PREFIX}.0.q.lora_A.weight": keep_a,
        f"{PREFIX}.0.q.lora_B.weight": keep_b,
        f"{PREFIX}.0.k.lora_A.weight": lora(rng, 16, 12, 4)[0],  # added
        f"{PREFIX}.0.k.lora_B.weight": lora(rng, 16, 12, 4)[1],
        f"{PREFIX}.0.o.lora_A.weight": lora(rng, 20, 12, 4)[0],  # reshaped: d_out 16 -> 20
        f"{PREFIX}.0.o.lora_B.weight": lora(rng, 20, 12, 4)[1],
        "base_model.model.lm_head.weight": head,
    }
    changes = compare_weights(
        write_adapter(tmp_path / "old.safetensors", old),
        write_adapter(tmp_path / "new.safetensors", new),
        old_config={"r": 4, "lora_alpha": 8},
        new_config={"r": 4, "lora_alpha": 8},
    )
    by_name = {c.name: c for c in changes}
    assert by_name[f"{PREFIX}.0.k"].status == ADDED
    assert by_name[f"{PREFIX}.0.v"].status == REMOVED
    reshaped = by_name[f"{PREFIX}.0.o"]
    assert reshaped.status == RESHAPED
    assert (reshaped.shape_old, reshaped.shape_new) == ((16, 12), (20, 12))
    assert by_name[f"{PREFIX}.0.q"].status == UNCHANGED  # read, and found equal
    headc = by_name["base_model.model.lm_head.weight"]
    assert headc.kind == "tensor" and headc.status == CHANGED
    assert headc.rel_change == pytest.approx(
        1.0 / float(np.linalg.norm(old["base_model.model.lm_head.weight"]))
    )
    assert [c.status for c in changes] == [ADDED, REMOVED, RESHAPED, CHANGED, UNCHANGED]


def test_scaling_follows_peft() -> None:
    config = {
        "r": 8,
        "lora_alpha": 16,
        "rank_pattern": {"layers.0.self_attn.q_proj": 4},
        "alpha_pattern": {"v_proj": 32},
    }
    q0 = f"{PREFIX}.0.self_attn.q_proj"
    assert lora_scaling(config, q0, 4) == 16 / 4
    assert lora_scaling(config, f"{PREFIX}.1.self_attn.q_proj", 8) == 16 / 8
    assert lora_scaling(config, f"{PREFIX}.3.self_attn.v_proj", 8) == 32 / 8
    assert lora_scaling({"r": 16, "lora_alpha": 16, "use_rslora": True}, q0, 16) == 16 / 4
    assert lora_scaling(None, q0, 4) == 1.0


@settings(max_examples=25, deadline=None)
@given(
    d_out=st.integers(1, 24),
    d_in=st.integers(1, 24),
    r1=st.integers(1, 6),
    r2=st.integers(1, 6),
    alpha1=st.sampled_from([1, 8, 16]),
    alpha2=st.sampled_from([1, 8, 16]),
    rslora=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_factored_numbers_equal_full_matrices(
    d_out: int, d_in: int, r1: int, r2: int, alpha1: int, alpha2: int, rslora: bool, seed: int
) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    a1, b1 = lora(rng, d_out, d_in, r1)
    a2, b2 = lora(rng, d_out, d_in, r2)
    c1 = {"r": r1, "lora_alpha": alpha1, "use_rslora": rslora}
    c2 = {"r": r2, "lora_alpha": alpha2, "use_rslora": rslora}
    with tempfile.TemporaryDirectory() as tmp:
        old = write_adapter(Path(tmp) / "a", {"m.lora_A.weight": a1, "m.lora_B.weight": b1})
        new = write_adapter(Path(tmp) / "b", {"m.lora_A.weight": a2, "m.lora_B.weight": b2})
        (change,) = compare_weights(old, new, old_config=c1, new_config=c2)
    s1 = alpha1 / (math.sqrt(r1) if rslora else r1)
    s2 = alpha2 / (math.sqrt(r2) if rslora else r2)
    dw1 = s1 * (b1.astype(np.float64) @ a1.astype(np.float64))
    dw2 = s2 * (b2.astype(np.float64) @ a2.astype(np.float64))
    n1, n2 = np.linalg.norm(dw1), np.linalg.norm(dw2)
    assert change.norm_old == pytest.approx(n1, rel=1e-9)
    assert change.norm_new == pytest.approx(n2, rel=1e-9)
    assert change.rel_change == pytest.approx(np.linalg.norm(dw2 - dw1) / n1, rel=1e-6, abs=1e-9)
    assert change.cosine == pytest.approx(float((dw1 * dw2).sum() / (n1 * n2)), abs=1e-9)


def test_bf16_is_widened_exactly(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(0)
    a = torch.randn(4, 16).to(torch.bfloat16)
    b1, b2 = torch.randn(8, 4).to(torch.bfloat16), torch.randn(8, 4).to(torch.bfloat16)
    save_file({"m.lora_A.weight": a, "m.lora_B.weight": b1}, str(tmp_path / "a"))
    save_file({"m.lora_A.weight": a, "m.lora_B.weight": b2}, str(tmp_path / "b"))
    (change,) = compare_weights(tmp_path / "a", tmp_path / "b")
    dw1, dw2 = b1.double() @ a.double(), b2.double() @ a.double()
    assert change.dtype_old == "BF16"
    assert change.norm_old == pytest.approx(float(torch.linalg.norm(dw1)), rel=1e-12)
    assert change.rel_change == pytest.approx(
        float(torch.linalg.norm(dw2 - dw1) / torch.linalg.norm(dw1)), rel=1e-9
    )


def test_config_metrics_base_and_modules_via_peft(registry: Repo, tmp_path: Path) -> None:
    """q,v r=4 -> q,k r=4 with lm_head saved: k added, v removed, config and metrics changes."""
    from peft import LoraConfig, get_peft_model

    from .conftest import tiny_base_model

    one = tmp_path / "one"
    tiny_peft_model(seed=1).save_pretrained(str(one))
    registry.commit(
        one, name="m", metrics={"eval_loss": 2.0, "accuracy": 0.5, "steps": 100, "old_only": 1}
    )
    two = tmp_path / "two"
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["k_proj", "q_proj"], lora_dropout=0.1)
    get_peft_model(tiny_base_model(), config).save_pretrained(str(two))
    registry.commit(two, name="m", metrics={"eval_loss": 2.5, "accuracy": 0.75, "steps": 200})
    result = registry.diff("m@v0.0.1", "m")
    keys = {c.key: c for c in result.config}
    assert keys["lora_dropout"].new == 0.1
    assert "target_modules" in keys and "r" not in keys
    assert config_changes({"target_modules": ["q", "v"]}, {"target_modules": ["v", "q"]}) == []
    metrics = {m.key: m for m in result.metrics}
    assert metrics["eval_loss"].better == "lower" and metrics["eval_loss"].improved is False
    assert metrics["eval_loss"].delta == pytest.approx(0.5)
    assert metrics["accuracy"].better == "higher" and metrics["accuracy"].improved is True
    assert metrics["steps"].better is None and metrics["steps"].improved is None
    assert metrics["old_only"].new is None and metrics["old_only"].delta is None
    assert result.base.same is None  # no base model fingerprint was recorded
    statuses = {m.name.split(".")[-1] + m.name.split(".")[-3]: m.status for m in result.modules}
    assert statuses == {
        "k_proj0": ADDED,
        "k_proj1": ADDED,
        "v_proj0": REMOVED,
        "v_proj1": REMOVED,
        "q_proj0": CHANGED,
        "q_proj1": CHANGED,
    }
    assert result.summary.startswith("weights: 6 of 6 modules changed (2 added, 2 removed)")


@pytest.mark.parametrize(
    ("key", "direction"),
    [
        ("eval_loss", "lower"),
        ("eval.loss", "lower"),
        ("perplexity", "lower"),
        ("wer", "lower"),
        ("accuracy", "higher"),
        ("eval_acc", "higher"),
        ("rougeL", "higher"),
        ("f1", "higher"),
        ("pass@1", "higher"),
        ("epoch", None),
        ("learning_rate", None),
    ],
)
def test_better_direction(key: str, direction: str | None) -> None:
    assert better_direction(key) == direction


def test_same_weights_are_not_read(registry: Repo, tmp_path: Path) -> None:
    src = tmp_path / "a"
    tiny_peft_model(seed=1).save_pretrained(str(src))
    v1 = registry.commit(src, name="s", metrics={"loss": 1.0})
    config = json.loads((src / "adapter_config.json").read_text())
    config["lora_dropout"] = 0.3
    (src / "adapter_config.json").write_text(json.dumps(config))
    registry.commit(src, name="s")
    assert v1.manifest is not None
    registry.dvc.drop(v1.manifest.weights.md5)  # nothing needs the files
    result = registry.diff("s@v0.0.1", "s@v0.0.2")
    assert result.weights_identical
    assert {m.status for m in result.modules} == {UNCHANGED} and len(result.modules) == 4
    assert [c.key for c in result.config] == ["lora_dropout"]
    assert result.summary == "weights: none of 4 modules changed (identical files)"


def test_diff_cli_table_fits_80_columns_and_json(registry: Repo, tmp_path: Path) -> None:
    for seed in (1, 2):
        src = tmp_path / f"v{seed}"
        tiny_peft_model(seed=seed, modules_to_save=["lm_head"]).save_pretrained(str(src))
        registry.commit(src, name="a-rather-long-adapter-name", metrics={"eval_loss": 3.0 - seed})
    runner = CliRunner()
    args = [
        "-C",
        str(registry.root),
        "diff",
        "a-rather-long-adapter-name@v0.0.1",
        "a-rather-long-adapter-name",
    ]
    table = runner.invoke(cli, args, catch_exceptions=False, env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "\x1b[" not in table.output  # no colour off a terminal
    assert any(line.startswith("MODULE") for line in lines)
    assert not any("lm_head" in line for line in lines[6:])  # unchanged modules are not listed
    assert "eval_loss" in table.output and "better" in table.output
    data = json.loads(runner.invoke(cli, [*args, "--json"], catch_exceptions=False).output)
    assert (data["modules"]["total"], data["modules"]["changed"], data["modules"]["unchanged"]) == (
        5,
        4,
        1,
    )
    assert data["metrics"] == [
        {
            "key": "eval_loss",
            "old": 2.0,
            "new": 1.0,
            "delta": -1.0,
            "better": "lower",
            "improved": True,
        }
    ]
    first = data["module_changes"][0]
    assert {"name", "status", "rel_change", "cosine", "shape_old", "rank_new"} <= set(first)


def test_git_log_p_shows_summary_through_the_driver(registry: Repo, tmp_path: Path) -> None:
    for seed in (1, 2):
        src = tmp_path / f"v{seed}"
        tiny_peft_model(seed=seed).save_pretrained(str(src))
        registry.commit(src, name="g", metrics={"eval_loss": 3.0 - seed})
    assert "diff=adaptergit" in (registry.root / ".gitattributes").read_text()
    log = git(registry.root, "log", "-p", "-1", "--", "adapters/g")
    assert "+adapter  g v0.0.2 (parent v0.0.1)" in log
    assert "+vs v0.0.1  weights: 4 of 4 modules changed; largest:" in log
    assert "-metrics  eval_loss=2" in log and "+metrics  eval_loss=1" in log
    assert "+  layers.0.self_attn.q_proj  A 4x32 B 32x4 F32" in log
    assert "+md5 " in log.replace("+md5     ", "+md5 ")  # the pointer, readable too
    plain = git(
        registry.root,
        "diff",
        "--no-textconv",
        "g@v0.0.1",
        "g@v0.0.2",
        "--",
        "adapters/g/manifest.json",
    )
    assert '"sha256"' in plain  # plain JSON without the driver


def test_init_adds_the_driver_to_an_existing_registry(registry: Repo) -> None:
    root = registry.root
    git(root, "config", "--unset", "diff.adaptergit.textconv")
    git(root, "rm", "-q", ".gitattributes")
    git(root, "commit", "-q", "-m", "an older registry")
    Repo.init(root).close()
    assert git(root, "config", "--get", "diff.adaptergit.textconv").strip().endswith("textconv")
    assert "adapters/*/manifest.json diff=adaptergit" in (root / ".gitattributes").read_text()
    assert git(root, "status", "--porcelain") == ""
    assert ".gitattributes" in git(root, "show", "--name-only", "--format=", "HEAD")
    head = git(root, "rev-parse", "HEAD")
    Repo.init(root).close()  # and again: nothing to do
    assert git(root, "rev-parse", "HEAD") == head


def test_textconv_command_passes_other_files_through(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello\nworld\n")
    assert main(["-C", str(tmp_path), "textconv", str(other)]) == 0


def test_diff_of_unknown_version_is_one_line(
    registry: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "v"
    tiny_peft_model(seed=1).save_pretrained(str(src))
    registry.commit(src, name="u")
    assert main(["-C", str(registry.root), "diff", "u@v0.0.1", "u@v9.0.0"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no version 'v9.0.0'" in err


def test_diff_help() -> None:
    result = CliRunner().invoke(cli, ["diff", "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "relative change and cosine similarity" in result.output
