"""The registry end to end with real git, real DVC, real PEFT adapters."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from adaptergit import Repo
from adaptergit.errors import (
    DestinationNotEmpty,
    NothingToCommit,
    UncommittedChanges,
    UnknownAdapter,
    UnknownRevision,
    UnknownVersion,
    VersionExists,
    VersionNotNewer,
    WeightsMissing,
)

from .conftest import MakeAdapter, tiny_base_model, tiny_peft_model
from .helpers import git


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_init_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "reg"
    Repo.init(path).close()
    head = git(path, "rev-parse", "HEAD")
    assert (path / ".dvc" / "config").exists()
    assert (path / ".adaptergit.toml").exists()
    Repo.init(path).close()
    assert git(path, "rev-parse", "HEAD") == head
    assert git(path, "status", "--porcelain") == ""


def test_init_inside_existing_repo_keeps_user_work(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    (tmp_path / "train.py").write_text("print('hi')\n")
    git(tmp_path, "add", "train.py")
    Repo.init(tmp_path).close()
    # The user's staged file is still staged, not swept into the set-up commit.
    assert "A  train.py" in git(tmp_path, "status", "--porcelain")
    assert "train.py" not in git(tmp_path, "show", "--name-only", "HEAD")


def test_commit_writes_dvc_tracked_version(registry: Repo, make_adapter: MakeAdapter) -> None:
    src = make_adapter(seed=1)
    v = registry.commit(src, name="tiny", metrics={"eval_loss": 1.5}, message="first")
    assert v.version == "v0.0.1"
    folder = registry.root / "adapters" / "tiny"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        [
            ".gitignore",
            "adapter_config.json",
            "adapter_model.safetensors",
            "adapter_model.safetensors.dvc",
            "manifest.json",
            "metrics.json",
        ]
    )
    # git holds the pointer, not the weights
    tracked = git(registry.root, "ls-tree", "-r", "--name-only", "HEAD", "adapters/tiny").split()
    assert "adapters/tiny/adapter_model.safetensors" not in tracked
    assert "adapters/tiny/adapter_model.safetensors.dvc" in tracked
    assert git(registry.root, "status", "--porcelain") == ""
    # annotated GTO tag on the commit
    assert git(registry.root, "cat-file", "-t", "tiny@v0.0.1").strip() == "tag"
    assert git(registry.root, "rev-parse", "tiny@v0.0.1^{commit}").strip() == v.commit
    # weights identical to the source, manifest matches
    assert sha256(folder / "adapter_model.safetensors") == sha256(src / "adapter_model.safetensors")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["weights"]["sha256"] == sha256(src / "adapter_model.safetensors")
    assert manifest["schema_version"] == 1 and manifest["parent"] is None
    assert manifest["base_model"]["status"] == "unknown"
    assert json.loads((folder / "metrics.json").read_text()) == {"eval_loss": 1.5}
    # the plain DVC tool agrees the workspace is in sync with the pointer
    out = subprocess.run(
        ["dvc", "status", "adapters/tiny/adapter_model.safetensors.dvc"],
        cwd=registry.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "up to date" in out.lower() or out.strip() == ""


def test_versions_bump_and_nothing_to_commit(registry: Repo, make_adapter: MakeAdapter) -> None:
    a, b, c = make_adapter(seed=1), make_adapter(seed=2), make_adapter(seed=3)
    assert registry.commit(a, name="x").version == "v0.0.1"
    with pytest.raises(NothingToCommit, match=r"identical to x@v0\.0\.1"):
        registry.commit(a, name="x", metrics={"loss": 1.0})
    assert registry.commit(b, name="x", bump="minor").version == "v0.1.0"
    with pytest.raises(VersionExists):
        registry.commit(c, name="x", version="v0.1.0")
    with pytest.raises(VersionNotNewer):
        registry.commit(c, name="x", version="v0.0.5")
    v = registry.commit(c, name="x", version="v2.0.0")
    assert v.manifest is not None and v.manifest.parent == "v0.1.0"
    assert [x.version for x in registry.log("x")] == ["v2.0.0", "v0.1.0", "v0.0.1"]


def test_commit_leaves_other_staged_work_alone(registry: Repo, make_adapter: MakeAdapter) -> None:
    (registry.root / "notes.txt").write_text("wip\n")
    git(registry.root, "add", "notes.txt")
    v = registry.commit(make_adapter(), name="x")
    assert git(registry.root, "show", "--name-only", "--format=", v.commit).split() == [
        "adapters/x/.gitignore",
        "adapters/x/adapter_config.json",
        "adapters/x/adapter_model.safetensors.dvc",
        "adapters/x/manifest.json",
        "adapters/x/metrics.json",
        "dvc.yaml",  # the registry's DVC artifacts, metrics and params, updated with each version
    ]
    assert git(registry.root, "status", "--porcelain").splitlines() == ["A  notes.txt"]


def test_peft_round_trip_logits(registry: Repo, tmp_path: Path) -> None:
    """v1 saved, trained further to v2; v1 checked out and loaded by PEFT gives v1's logits."""
    import torch
    from peft import PeftModel

    torch.manual_seed(0)
    model = tiny_peft_model(seed=1)
    inputs = torch.randint(0, 128, (2, 8))
    with torch.no_grad():
        v1_logits = model(inputs).logits
    model.save_pretrained(str(tmp_path / "v1"))
    registry.commit(tmp_path / "v1", name="rt", metrics={"loss": 2.0})

    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        loss = model(inputs, labels=inputs).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(str(tmp_path / "v2"))
    v2 = registry.commit(tmp_path / "v2", name="rt", metrics={"loss": float(loss)})

    out = registry.checkout("rt@v0.0.1", to=tmp_path / "out")
    loaded = PeftModel.from_pretrained(tiny_base_model(), out)
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(loaded(inputs).logits, v1_logits)
    # and v2 is what is in the working tree
    assert sha256(registry.root / "adapters/rt/adapter_model.safetensors") == (
        v2.manifest.weights.sha256 if v2.manifest else ""
    )


@pytest.mark.parametrize(
    "kind", ["bf16", "bin", "modules_to_save"], ids=["bf16", "pickle-bin", "modules_to_save"]
)
def test_adapter_variants_round_trip(registry: Repo, tmp_path: Path, kind: str) -> None:
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file

    kwargs: dict[str, Any] = {}
    if kind == "bf16":
        kwargs["dtype"] = torch.bfloat16
    if kind == "modules_to_save":
        kwargs["modules_to_save"] = ["lm_head"]
    model = tiny_peft_model(seed=5, **kwargs)
    src = tmp_path / "src"
    model.save_pretrained(str(src), safe_serialization=kind != "bin")
    if kind == "bin":
        assert (src / "adapter_model.bin").exists()
    v = registry.commit(src, name=f"var-{kind.replace('_', '-')}")
    out = registry.checkout(v.ref, to=tmp_path / "out")
    saved = load_file(out / "adapter_model.safetensors")
    if kind == "bin":
        original = torch.load(src / "adapter_model.bin", weights_only=True)
        assert v.manifest is not None and v.manifest.weights.source_format == "pytorch"
    else:
        original = load_file(src / "adapter_model.safetensors")
    assert saved.keys() == original.keys()
    for key in saved:
        assert saved[key].dtype == original[key].dtype
        assert torch.equal(saved[key], original[key])
    if kind == "modules_to_save":
        assert any("lm_head" in k for k in saved)

    def load(folder: Path) -> PeftModel:
        base = tiny_base_model()
        if kind == "bf16":
            base = base.to(torch.bfloat16)  # type: ignore[arg-type]  # transformers: @wraps(Module.to) hides the bound signature
        return PeftModel.from_pretrained(base, folder).eval()

    # PEFT loads the checked-out folder exactly as it loads the original one.
    inputs = torch.randint(0, 128, (1, 6))
    with torch.no_grad():
        assert torch.equal(load(out)(inputs).logits, load(src)(inputs).logits)


def test_clone_at_tag_holds_exactly_v1(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    v1 = registry.commit(make_adapter(seed=1), name="c", metrics={"acc": 0.5})
    registry.commit(make_adapter(seed=2), name="c", metrics={"acc": 0.7})
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--branch", "c@v0.0.1", str(registry.root), str(clone)],
        check=True,
        capture_output=True,
    )
    for f in (
        "adapter_config.json",
        "manifest.json",
        "adapter_model.safetensors.dvc",
        "metrics.json",
    ):
        assert (clone / "adapters/c" / f).read_bytes() == subprocess.run(
            ["git", "show", f"{v1.commit}:adapters/c/{f}"],
            cwd=registry.root,
            capture_output=True,
            check=True,
        ).stdout
    assert json.loads((clone / "adapters/c/manifest.json").read_text())["version"] == "v0.0.1"
    assert json.loads((clone / "adapters/c/metrics.json").read_text()) == {"acc": 0.5}


def test_checkout_in_place_and_dirty_protection(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    a, b = make_adapter(seed=1), make_adapter(seed=2)
    registry.commit(a, name="p")
    registry.commit(b, name="p")
    head = git(registry.root, "rev-parse", "HEAD")
    folder = registry.root / "adapters/p"
    registry.checkout("p@v0.0.1")
    assert sha256(folder / "adapter_model.safetensors") == sha256(a / "adapter_model.safetensors")
    assert git(registry.root, "rev-parse", "HEAD") == head  # HEAD did not move
    # switching between recorded versions needs no --force
    registry.checkout("p")
    assert sha256(folder / "adapter_model.safetensors") == sha256(b / "adapter_model.safetensors")
    # a local edit that no version records is protected
    (folder / "metrics.json").write_text('{"loss": 0.1}\n')
    with pytest.raises(UncommittedChanges, match=r"metrics\.json"):
        registry.checkout("p@v0.0.1")
    assert (folder / "metrics.json").read_text() == '{"loss": 0.1}\n'
    registry.checkout("p@v0.0.1", force=True)
    assert json.loads((folder / "metrics.json").read_text()) == {}


def test_checkout_to_dir_touches_nothing_else(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    registry.commit(make_adapter(seed=1), name="t")
    before = git(registry.root, "status", "--porcelain", "--ignored")
    out = registry.checkout("t", to=tmp_path / "dest")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",  # a Hugging Face model card
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.json",
        "metrics.json",
    ]
    assert git(registry.root, "status", "--porcelain", "--ignored") == before
    with pytest.raises(DestinationNotEmpty):
        registry.checkout("t", to=out)
    registry.checkout("t", to=out, force=True)


def test_refs_resolve(registry: Repo, make_adapter: MakeAdapter) -> None:
    v1 = registry.commit(make_adapter(seed=1), name="r")
    v2 = registry.commit(make_adapter(seed=2), name="r")
    assert registry.resolve("r").version == v2.version
    assert registry.resolve("r@latest").version == v2.version
    assert registry.resolve("r@v0.0.1").commit == v1.commit
    assert registry.resolve(f"r@{v1.commit[:8]}").version == "v0.0.1"
    assert registry.resolve("r@HEAD~1").version == "v0.0.1"
    with pytest.raises(UnknownAdapter, match="adapters here: r"):
        registry.resolve("nope")
    with pytest.raises(UnknownVersion, match=r"its versions: v0\.0\.1, v0\.0\.2"):
        registry.resolve("r@v9.9.9")
    with pytest.raises(UnknownRevision):
        registry.resolve("r@no-such-branch")
    shown = registry.show("r@v0.0.1")
    assert shown.config is not None and shown.config["peft_type"] == "LORA"


def test_missing_weights_in_cache(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    v = registry.commit(make_adapter(seed=1), name="m")
    assert v.manifest is not None
    shutil.rmtree(registry.root / ".dvc" / "cache")
    with pytest.raises(WeightsMissing, match="not in the DVC cache"):
        registry.checkout("m", to=tmp_path / "o")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_plain_dvc_checkout_restores_weights(registry: Repo, make_adapter: MakeAdapter) -> None:
    src = make_adapter(seed=3)
    registry.commit(src, name="d")
    weights = registry.root / "adapters/d/adapter_model.safetensors"
    weights.unlink()
    subprocess.run(["dvc", "checkout", "-q"], cwd=registry.root, check=True, capture_output=True)
    assert sha256(weights) == sha256(src / "adapter_model.safetensors")


def test_gto_reads_versions(registry: Repo, make_adapter: MakeAdapter) -> None:
    pytest.importorskip("gto")
    registry.commit(make_adapter(seed=1), name="g")
    registry.commit(make_adapter(seed=2), name="g")
    out = subprocess.run(
        ["gto", "show", "g", "--json"],
        cwd=registry.root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    versions = {v["version"] for v in json.loads(out)}
    assert versions == {"v0.0.1", "v0.0.2"}


def test_init_inside_another_work_tree_makes_a_registry_folder_of_it(tmp_path: Path) -> None:
    # Was: a nested repository of its own (which the outer one records as a gitlink, so its
    # clones lose the registry). Now the registry is a folder of the enclosing repository, as
    # `dvc init --subdir`; tests/test_team.py covers working in it.
    outer = tmp_path / "project"
    outer.mkdir()
    git(outer, "init", "-q")
    git(outer, "commit", "-q", "--allow-empty", "-m", "outer")
    Repo.init(outer / "registry").close()
    assert not (outer / "registry" / ".git").exists()
    assert (outer / "registry" / ".dvc" / "config").is_file()
    assert "registry/.adaptergit.toml" in git(outer, "ls-files")
    assert git(outer, "tag", "-l") == ""


def test_commit_records_base_model_fingerprint(
    registry: Repo, make_adapter: MakeAdapter, base_model_dir: Path
) -> None:
    from adaptergit.fingerprint import fingerprint_model

    v = registry.commit(make_adapter(seed=1), name="b", base_model=base_model_dir)
    assert v.manifest is not None
    base = v.manifest.base_model
    expected = fingerprint_model(base_model_dir)
    assert base.status == "verified"
    assert base.content_hash == expected.content_hash
    assert base.structure_hash == expected.structure_hash
    shown = registry.show("b")
    assert (
        shown.manifest is not None and shown.manifest.base_model.content_hash == base.content_hash
    )
    # Without a base model on disk the name is recorded and the fingerprint marked unknown.
    v2 = registry.commit(make_adapter(seed=2), name="b")
    assert v2.manifest is not None and v2.manifest.base_model.status == "unknown"
