"""Git hooks: installed beside existing ones, fast when idle, strict about weights in git."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adaptergit import Repo
from adaptergit.ops.hooks import HOOK_NAMES, shim

from .conftest import MakeAdapter

ROOT = Path(__file__).resolve().parent.parent


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr)
    return proc


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adaptergit", *args], cwd=cwd, capture_output=True, text=True
    )


def test_repository_hook_scripts_are_shims_that_never_block_git() -> None:
    for name in HOOK_NAMES:
        lines = (ROOT / "hooks" / name).read_text().splitlines()
        assert lines[0] == "#!/bin/sh"
        assert lines[-1] == f'exec adaptergit hook {name} "$@"'
        assert "command -v adaptergit" in lines[-2] and "exit 0" in lines[-2]
        assert os.access(ROOT / "hooks" / name, os.X_OK)
        assert lines[-1] in shim(name)


def test_pre_commit_framework_manifest_lists_every_hook() -> None:
    import yaml  # PyYAML comes with DVC's dependencies

    entries = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert {e["entry"] for e in entries} == {f"adaptergit hook {n}" for n in HOOK_NAMES}


def test_init_installs_hooks_and_status_reports_them(registry: Repo) -> None:
    r = cli(registry.root, "hooks", "status")
    assert r.returncode == 0
    assert all(f"{n}" in r.stdout for n in HOOK_NAMES)
    assert "not installed" not in r.stdout


def test_existing_hook_is_chained_and_restored(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    hook = tmp_path / ".git/hooks/pre-commit"
    marker = tmp_path / "ran"
    hook.write_text(f"#!/bin/sh\necho user-hook >> {marker}\nexit 0\n")
    hook.chmod(0o755)
    Repo.init(tmp_path).close()
    assert "adaptergit hook shim" in hook.read_text()
    (tmp_path / "a.txt").write_text("x\n")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-qm", "a")
    assert marker.read_text() == "user-hook\n"  # the user's hook still runs
    r = cli(tmp_path, "hooks", "status")
    assert "runs pre-commit.adaptergit-chained first" in r.stdout
    cli(tmp_path, "hooks", "uninstall")
    assert hook.read_text().startswith(f"#!/bin/sh\necho user-hook >> {marker}")
    assert not (tmp_path / ".git/hooks/post-checkout").exists()


def test_failing_chained_pre_hook_stops_the_commit(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    hook = tmp_path / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho 'user says no' >&2\nexit 3\n")
    hook.chmod(0o755)
    Repo.init(tmp_path).close()
    (tmp_path / "a.txt").write_text("x\n")
    git(tmp_path, "add", "a.txt")
    r = git(tmp_path, "commit", "-qm", "a", check=False)
    assert r.returncode != 0 and "user says no" in r.stderr


def test_core_hookspath_is_honoured(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "core.hooksPath", ".githooks")
    Repo.init(tmp_path).close()
    assert (tmp_path / ".githooks/pre-push").exists()
    assert not (tmp_path / ".git/hooks/pre-push").exists()


def test_pre_commit_refuses_weight_files(registry: Repo) -> None:
    (registry.root / "model.safetensors").write_bytes(b"\0" * 100)
    (registry.root / "notes.txt").write_text("fine\n")
    git(registry.root, "add", "model.safetensors", "notes.txt")
    r = git(registry.root, "commit", "-qm", "oops", check=False)
    assert r.returncode != 0
    assert "refusing to commit weight files into git: model.safetensors" in r.stderr
    assert "adaptergit commit" in r.stderr
    git(registry.root, "restore", "--staged", "model.safetensors")
    git(registry.root, "commit", "-qm", "notes")


def test_pre_commit_refuses_files_over_the_size_limit(registry: Repo) -> None:
    config = registry.root / ".adaptergit.toml"
    config.write_text(
        config.read_text().replace("max_file_size = 52428800", "max_file_size = 1000")
    )
    (registry.root / "blob.dat").write_bytes(os.urandom(5000))
    git(registry.root, "add", "blob.dat", ".adaptergit.toml")
    r = git(registry.root, "commit", "-qm", "big", check=False)
    assert r.returncode != 0 and "blob.dat" in r.stderr


def test_pre_commit_refuses_manifest_pointer_mismatch(
    registry: Repo, make_adapter: MakeAdapter
) -> None:
    registry.commit(make_adapter(seed=1), name="m")
    manifest_path = registry.root / "adapters/m/manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["weights"]["md5"] = "0" * 32
    manifest_path.write_text(json.dumps(manifest))
    git(registry.root, "add", str(manifest_path))
    r = git(registry.root, "commit", "-qm", "tamper", check=False)
    assert r.returncode != 0
    assert "does not match the manifest" in r.stderr


def test_idle_hooks_return_without_importing_dvc(registry: Repo, make_adapter: MakeAdapter) -> None:
    registry.commit(make_adapter(seed=1), name="m")
    head = git(registry.root, "rev-parse", "HEAD").stdout.strip()
    code = (
        "import sys\n"
        "from adaptergit.cli import main\n"
        f"rc = main(['-C', {str(registry.root)!r}, 'hook', 'post-checkout', {head!r}, {head!r}, '1'])\n"
        "assert rc == 0, rc\n"
        "heavy = [m for m in ('dvc', 'torch', 'numpy', 'git') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_post_checkout_skips_during_rebase_and_file_checkouts(
    registry: Repo, make_adapter: MakeAdapter
) -> None:
    v1 = registry.commit(make_adapter(seed=1), name="m")
    registry.commit(make_adapter(seed=2), name="m")
    weights = registry.root / "adapters/m/adapter_model.safetensors"
    before = weights.read_bytes()
    r = cli(registry.root, "hook", "post-checkout", v1.commit, v1.commit, "0")
    assert r.returncode == 0 and weights.read_bytes() == before
    (registry.root / ".git/rebase-merge").mkdir()
    r = cli(registry.root, "hook", "post-checkout", "HEAD", v1.commit, "1")
    assert r.returncode == 0 and weights.read_bytes() == before


@pytest.mark.parametrize("hook_name", HOOK_NAMES)
def test_each_hook_runs_from_git(registry: Repo, hook_name: str) -> None:
    path = registry.git.hooks_dir() / hook_name
    r = subprocess.run(
        [str(path), *(["HEAD", "HEAD", "1"] if hook_name == "post-checkout" else [])],
        cwd=registry.root,
        input="",
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
