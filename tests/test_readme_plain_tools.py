"""The README's plain-tool commands, run exactly as written in a fresh clone (no adaptergit
hooks), whatever the order of `init`, `remote add` and `commit`: plain DVC reaches every
version, with `init --remote` from the start, or after the README's `dvc remote add --local -d`
recipe for versions committed before the remote."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from adaptergit import Repo

from .conftest import NumpyAdapter
from .test_stages import tool

NAME = "support-bot"


def sh(cwd: Path, *args: str) -> str:
    program = tool(args[0]) if args[0] in ("dvc", "gto") else args[0]
    proc = subprocess.run([program, *args[1:]], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr}"
    return proc.stdout


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(params=["init --remote", "remote add later"])
def clone(
    request: pytest.FixtureRequest, tmp_path: Path, numpy_adapter: NumpyAdapter
) -> tuple[Path, list[str]]:
    """A fresh clone of a pushed registry with two versions (v0.0.2 in #prod); the sha256 of each
    version's weights."""
    store = tmp_path / "store"
    late = request.param == "remote add later"
    repo = Repo.init(tmp_path / "registry", remote=None if late else str(store))
    srcs = [numpy_adapter(1), numpy_adapter(2)]
    repo.commit(srcs[0], name=NAME, metrics={"eval_loss": 2.0})
    if late:  # the README's first order: a version, then the remote
        added = repo.remote_add("store", str(store), default=True)
        assert added.older == (f"{NAME}@v0.0.1",)
    repo.commit(srcs[1], name=NAME, metrics={"eval_loss": 1.0})
    repo.assign(f"{NAME}@v0.0.2", "prod")
    sh(tmp_path, "git", "init", "-q", "--bare", "origin.git")
    sh(repo.root, "git", "remote", "add", "origin", str(tmp_path / "origin.git"))
    repo.push()
    repo.close()
    sh(tmp_path, "git", "clone", "-q", "origin.git", "clone")
    root = tmp_path / "clone"
    if late:  # as the README says, once per clone
        sh(root, "dvc", "remote", "add", "--local", "-d", "store", str(store))
    return root, [sha256(s / "adapter_model.safetensors") for s in srcs]


def test_plain_dvc_reaches_every_version(clone: tuple[Path, list[str]], tmp_path: Path) -> None:
    root, shas = clone
    weights = root / "adapters" / NAME / "adapter_model.safetensors"
    sh(root, "dvc", "pull")
    assert sha256(weights) == shas[1]
    sh(root, "dvc", "fetch", "--all-tags")
    sh(root, "git", "checkout", "-q", f"{NAME}@v0.0.1")
    sh(root, "dvc", "checkout")
    assert sha256(weights) == shas[0]
    assert "up to date" in sh(root, "dvc", "status")
    sh(root, "dvc", "push")
    sh(root, "git", "checkout", "-q", "-")
    sh(root, "dvc", "checkout")
    assert sha256(weights) == shas[1]
    for option, sha in ((["--rev", "v0.0.1"], shas[0]), (["--stage", "prod"], shas[1])):
        out = tmp_path / f"artifact-{option[1]}"
        sh(root, "dvc", "artifacts", "get", ".", NAME, *option, "-o", str(out))
        assert sha256(out / "adapter_model.safetensors") == sha


def test_plain_dvc_and_gto_read_versions(clone: tuple[Path, list[str]]) -> None:
    root, _shas = clone
    shown = json.loads(sh(root, "dvc", "metrics", "show", "--json"))
    assert shown[""]["data"][f"adapters/{NAME}/metrics.json"]["data"] == {"eval_loss": 1.0}
    diff = sh(root, "dvc", "metrics", "diff", f"{NAME}@v0.0.1", f"{NAME}@v0.0.2")
    assert "eval_loss" in diff
    sh(root, "dvc", "params", "diff", f"{NAME}@v0.0.1", f"{NAME}@v0.0.2")
    assert "v0.0.2" in sh(root, "gto", "show")
    assert "prod" in sh(root, "gto", "history", NAME)
