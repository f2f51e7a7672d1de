"""adaptergit sees the work tree as git does: line endings and filters, merges in progress and
resolved, sparse checkouts, versions whose tags are not fetched. Each scenario compares
``adaptergit status`` and ``checkout`` with what plain ``git status`` reports."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from adaptergit import Repo
from adaptergit.errors import GitViewConflict, UncommittedChanges

from .conftest import NumpyAdapter
from .servers import needs

WEIGHTS = "adapters/bot/adapter_model.safetensors"


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def states(repo: Repo) -> dict[str, str]:
    return {a.name: a.state for a in repo.status(remote=False).adapters}


def crlf_adapter(numpy_adapter: NumpyAdapter, seed: int) -> Path:
    folder = numpy_adapter(seed)
    config = folder / "adapter_config.json"
    text = json.dumps(json.loads(config.read_text()), indent=2)
    config.write_bytes(text.replace("\n", "\r\n").encode())
    return folder


def test_autocrlf_and_a_crlf_config(tmp_path: Path, numpy_adapter: NumpyAdapter) -> None:
    root = tmp_path / "reg"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "core.autocrlf", "true")
    repo = Repo.init(root)
    first = crlf_adapter(numpy_adapter, 1)
    repo.commit(first, name="bot")
    repo.commit(crlf_adapter(numpy_adapter, 2), name="bot")
    assert git(root, "status", "--porcelain") == ""
    assert states(repo) == {"bot": "clean"}
    repo.checkout("bot@v0.0.1")  # nothing is edited: no --force needed
    assert (root / WEIGHTS).read_bytes() == (first / "adapter_model.safetensors").read_bytes()
    assert states(repo) == {"bot": "behind"}
    repo.checkout("bot@v0.0.2")
    assert git(root, "status", "--porcelain") == ""
    assert states(repo) == {"bot": "clean"}
    repo.close()


def test_eol_attribute_and_git_checkout(registry: Repo, numpy_adapter: NumpyAdapter) -> None:
    root = registry.root
    (root / ".gitattributes").write_text(
        (root / ".gitattributes").read_text() + "*.json text eol=crlf\n"
    )
    git(root, "add", ".gitattributes")
    git(root, "commit", "-qm", "json files in CRLF")
    registry.commit(numpy_adapter(1), name="bot")
    registry.commit(numpy_adapter(2), name="bot")
    git(root, "checkout", "-q", "bot@v0.0.1")  # git writes the JSON files with CRLF
    assert b"\r\n" in (root / "adapters/bot/manifest.json").read_bytes()
    assert git(root, "status", "--porcelain") == ""
    assert states(registry) == {"bot": "behind"}
    git(root, "checkout", "-q", "-")
    assert states(registry) == {"bot": "clean"}


def test_clean_filter_of_git_lfs(registry: Repo, numpy_adapter: NumpyAdapter) -> None:
    needs("git-lfs", "git-lfs")
    root = registry.root
    git(root, "lfs", "install", "--local", "--skip-repo")  # the filters; hooks are ours
    git(root, "lfs", "track", "adapters/*/metrics.json")
    git(root, "add", ".gitattributes")
    git(root, "commit", "-qm", "metrics through LFS")
    registry.commit(numpy_adapter(1), name="bot", metrics={"loss": 1.0})
    registry.commit(numpy_adapter(2), name="bot", metrics={"loss": 0.5})
    blob = git(root, "cat-file", "-p", "bot@v0.0.2:adapters/bot/metrics.json")
    assert blob.startswith("version https://git-lfs")  # git stores the pointer
    assert git(root, "status", "--porcelain") == ""
    assert states(registry) == {"bot": "clean"}
    registry.checkout("bot@v0.0.1")


def test_merge_conflict_then_resolved(registry: Repo, numpy_adapter: NumpyAdapter) -> None:
    root = registry.root
    registry.commit(numpy_adapter(1), name="bot")
    git(root, "checkout", "-q", "-b", "exp-a")
    a = numpy_adapter(2)
    registry.commit(a, name="bot")
    git(root, "checkout", "-q", "-")
    git(root, "checkout", "-q", "-b", "exp-b")
    registry.commit(numpy_adapter(3), name="bot")
    merge = subprocess.run(["git", "merge", "exp-a"], cwd=root, capture_output=True, text=True)
    assert merge.returncode != 0
    assert "UU adapters/bot/manifest.json" in git(root, "status", "--porcelain")
    assert states(registry)["bot"] == "conflict"
    with pytest.raises(GitViewConflict, match="merge conflicts"):
        registry.checkout("bot@v0.0.2")
    git(root, "checkout", "--theirs", "--", "adapters/bot", "dvc.yaml")
    git(root, "add", "adapters/bot", "dvc.yaml")
    git(root, "commit", "-qm", "keep exp-a's adapter")
    assert git(root, "status", "--porcelain") == ""
    report = registry.status(remote=False)
    (bot,) = report.adapters
    assert (bot.state, bot.current, bot.weights_of) == ("stale", "v0.0.2", "v0.0.3")
    registry.checkout("bot@v0.0.2")  # the weights on disk are recorded: no --force
    assert (root / WEIGHTS).read_bytes() == (a / "adapter_model.safetensors").read_bytes()
    assert states(registry)["bot"] == "behind"


def test_edited_weights_are_still_unrecorded(registry: Repo, numpy_adapter: NumpyAdapter) -> None:
    registry.commit(numpy_adapter(1), name="bot")
    registry.commit(numpy_adapter(2), name="bot")
    weights = registry.root / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    assert states(registry) == {"bot": "modified"}
    with pytest.raises(UncommittedChanges):
        registry.checkout("bot@v0.0.1")


def test_sparse_checkout(registry: Repo, numpy_adapter: NumpyAdapter, tmp_path: Path) -> None:
    root = registry.root
    registry.commit(numpy_adapter(1), name="kept")
    registry.commit(numpy_adapter(2), name="other")
    git(root, "sparse-checkout", "set", "--no-cone", "/*", "!/adapters/other/")
    assert not (root / "adapters/other/manifest.json").exists()  # the ignored weights stay
    assert git(root, "status", "--porcelain") == ""
    assert states(registry) == {"kept": "clean"}
    with pytest.raises(GitViewConflict, match="sparse"):
        registry.checkout("other")
    folder = registry.checkout("other", to=tmp_path / "export")
    assert (folder / "adapter_model.safetensors").exists()


def test_version_whose_tag_was_not_fetched(tmp_path: Path, numpy_adapter: NumpyAdapter) -> None:
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    repo = Repo.init(tmp_path / "reg", remote=str(tmp_path / "store"))
    git(repo.root, "remote", "add", "origin", str(origin))
    repo.commit(numpy_adapter(1), name="bot")
    repo.push()
    git(tmp_path, "clone", "-q", str(origin), "clone")
    clone = Repo(tmp_path / "clone")
    assert clone.pull().fetched == ("bot@v0.0.1",)  # no refs: what is checked out
    second = numpy_adapter(2)
    repo.commit(second, name="bot")
    repo.push()
    branch = git(repo.root, "branch", "--show-current").strip()
    git(clone.root, "pull", "-q", "origin", branch)  # an explicit refspec: no new tags
    clone.pull()  # the clone has no hooks: bring the weights HEAD's manifest names
    assert (clone.root / WEIGHTS).read_bytes() == (
        second / "adapter_model.safetensors"
    ).read_bytes()
    assert git(clone.root, "status", "--porcelain") == ""
    (bot,) = clone.status(remote=False).adapters
    assert (bot.state, bot.current, bot.latest) == ("untagged", "v0.0.2", "v0.0.1")
    clone.checkout("bot@v0.0.1")  # HEAD's files and weights are committed: nothing is lost
    git(clone.root, "fetch", "-q", "--tags")
    clone.checkout("bot@v0.0.2")
    assert states(Repo(clone.root)) == {"bot": "clean"}
    clone.close()
    repo.close()
