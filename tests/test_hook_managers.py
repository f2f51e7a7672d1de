"""adaptergit's hooks beside every way a repository runs git hooks, with the real tools.

Each set-up is a real repository: plain ``.git/hooks``, ``core.hooksPath`` (relative, committed,
absolute, shared with repositories that are not registries), husky 9 installed through npm,
lefthook and the pre-commit framework from PyPI. In each, the team's hook keeps running as before,
adaptergit's runs too, and ``adaptergit hooks uninstall`` puts every file back byte for byte.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from adaptergit import Repo
from adaptergit.errors import AdapterGitWarning

from .conftest import NumpyAdapter
from .servers import needs

WEIGHTS = "adapters/bot/adapter_model.safetensors"


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {proc.stderr}")
    return proc


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adaptergit", *args], cwd=cwd, capture_output=True, text=True
    )


def snapshot(*folders: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folders`: path -> (bytes, permission bits)."""
    found = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")) if folder.exists() else []:
            if path.is_file() and "node_modules" not in path.parts:
                found[str(path)] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
    return found


def new_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def weights_refused(root: Path) -> subprocess.CompletedProcess[str]:
    """Stage a weights file and try to commit it: adaptergit's pre-commit refuses it."""
    (root / "stray.safetensors").write_bytes(b"\0" * 64)
    git(root, "add", "stray.safetensors")
    r = git(root, "commit", "-qm", "stray weights", check=False)
    git(root, "rm", "-q", "--cached", "stray.safetensors")
    (root / "stray.safetensors").unlink()
    return r


def two_versions(root: Path, numpy_adapter: NumpyAdapter) -> tuple[bytes, bytes]:
    """Commit bot@v0.0.1 and bot@v0.0.2; return their weights."""
    repo = Repo(root)
    first, second = numpy_adapter(1), numpy_adapter(2)
    repo.commit(first, name="bot")
    repo.commit(second, name="bot")
    repo.close()
    return (
        (first / "adapter_model.safetensors").read_bytes(),
        (second / "adapter_model.safetensors").read_bytes(),
    )


def checkout_brings_weights(root: Path, v1: bytes, v2: bytes) -> None:
    """`git checkout TAG` runs adaptergit's post-checkout, which puts the version's weights back."""
    git(root, "checkout", "-q", "bot@v0.0.1")
    assert (root / WEIGHTS).read_bytes() == v1
    git(root, "checkout", "-q", "main")
    assert (root / WEIGHTS).read_bytes() == v2


# --- plain git hooks ----------------------------------------------------------------------------


def test_existing_hook_keeps_its_name_and_runs_first(
    tmp_path: Path, numpy_adapter: NumpyAdapter
) -> None:
    """A hook that dispatches on its own name ($0), as husky 4 and overcommit do, still works."""
    root = new_repo(tmp_path / "reg")
    log = tmp_path / "team.log"
    hook = root / ".git/hooks/pre-commit"
    hook.write_text(f'#!/bin/sh\necho "$(basename "$0") $#" >> {log}\n')
    hook.chmod(0o750)
    before = snapshot(root / ".git/hooks")
    Repo.init(root).close()
    assert "adaptergit hook shim" in hook.read_text()
    (root / "a.txt").write_text("a\n")
    git(root, "add", "a.txt")
    git(root, "commit", "-qm", "a")
    assert log.read_text().splitlines()[-1] == "pre-commit 0"
    r = weights_refused(root)
    assert r.returncode == 1 and "refusing to commit weight files" in r.stderr
    v1, v2 = two_versions(root, numpy_adapter)
    checkout_brings_weights(root, v1, v2)
    r = cli(root, "hooks", "uninstall")
    assert r.returncode == 0, r.stderr
    assert snapshot(root / ".git/hooks") == before
    assert not (root / ".git/adaptergit/hook").exists()


def test_relative_hooks_path_committed_by_the_team(tmp_path: Path) -> None:
    root = new_repo(tmp_path / "reg")
    hooks = root / ".githooks"
    hooks.mkdir()
    log = tmp_path / "team.log"
    (hooks / "pre-commit").write_text(f"#!/bin/sh\necho team >> {log}\n")
    (hooks / "pre-commit").chmod(0o755)
    git(root, "config", "core.hooksPath", ".githooks")
    git(root, "add", ".githooks")
    git(root, "commit", "-qm", "team hooks")
    before = snapshot(hooks)
    (root / "sub").mkdir()
    Repo.init(root).close()
    r = cli(root / "sub", "hooks", "install")  # from a subdirectory: the same folder
    assert r.returncode == 0, r.stderr
    assert not (root / "sub/.githooks").exists()
    assert not (root / ".git/hooks/pre-commit").exists()
    assert "runs pre-commit.adaptergit-chained first" in cli(root, "hooks", "status").stdout
    (root / "b.txt").write_text("b\n")
    git(root, "add", "b.txt")
    git(root, "commit", "-qm", "b")
    assert log.read_text().count("team") == 2
    assert weights_refused(root).returncode == 1
    cli(root, "hooks", "uninstall")
    assert snapshot(hooks) == before
    assert git(root, "status", "--porcelain").stdout == ""


def test_absolute_hooks_path_is_created_and_removed(tmp_path: Path) -> None:
    root = new_repo(tmp_path / "reg")
    hooks = tmp_path / "elsewhere" / "hooks"
    git(root, "config", "core.hooksPath", str(hooks))
    Repo.init(root).close()
    assert (hooks / "pre-push").exists()
    assert weights_refused(root).returncode == 1
    cli(root, "hooks", "uninstall")
    assert not (tmp_path / "elsewhere").exists()


def test_hooks_path_shared_with_other_repositories(tmp_path: Path) -> None:
    """A global core.hooksPath: adaptergit's hooks do nothing in a repository that is no registry."""
    hooks = tmp_path / "global-hooks"
    git(tmp_path, "config", "--global", "core.hooksPath", str(hooks))
    Repo.init(tmp_path / "reg").close()
    other = new_repo(tmp_path / "other")
    (other / "model.bin").write_bytes(b"\0" * 10)
    git(other, "add", "model.bin")
    r = git(other, "commit", "-qm", "a binary in a repository of its own", check=False)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


def test_foreign_hook_in_both_places_is_refused_cleanly(tmp_path: Path) -> None:
    root = new_repo(tmp_path / "reg")
    for name in ("pre-push", "pre-push.adaptergit-chained"):
        (root / ".git/hooks" / name).write_text("#!/bin/sh\nexit 0\n")
    before = snapshot(root / ".git/hooks")
    with pytest.warns(AdapterGitWarning, match="merge them by hand"):
        Repo.init(root).close()  # the registry is made; the hook that cannot be chained is named
    r = cli(root, "hooks", "install")
    assert r.returncode == 1 and "merge them by hand" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    cli(root, "hooks", "uninstall")
    assert snapshot(root / ".git/hooks") == before


# --- husky (npm) --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def husky_npm(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """`install(major)`: a folder with that husky installed by npm (node_modules), to copy."""
    needs("npm", "nodejs and npm (apt-get install nodejs npm)")
    installed: dict[int, Path] = {}
    cache = tmp_path_factory.mktemp("npm-cache")

    def install(major: int) -> Path:
        if major not in installed:
            folder = tmp_path_factory.mktemp(f"husky{major}")
            # The npm registry is the one network service the suite uses: a transient failure
            # there (a reset, a 5xx) is retried, by npm per request and here as a whole.
            env = {
                **os.environ,
                "npm_config_cache": str(cache),
                "npm_config_fetch_retries": "5",
                "npm_config_fetch_retry_mintimeout": "2000",
            }
            install_args = ["install", "--no-audit", "--no-fund", f"husky@{major}"]
            ok = subprocess.run(["npm", "init", "-y"], cwd=folder, capture_output=True).returncode
            for attempt in range(3):
                if attempt:
                    time.sleep(5 * attempt)
                r = subprocess.run(["npm", *install_args], cwd=folder, capture_output=True, env=env)
                if r.returncode == 0:
                    break
            needs(
                f"husky@{major}",
                "husky from the npm registry (network): "
                + (r.stderr.decode(errors="replace").strip().splitlines() or ["npm failed"])[-1],
                found=ok == 0 and r.returncode == 0,
            )
            installed[major] = folder
        return installed[major]

    return install


def husky_repo(root: Path, major: int, log: Path) -> None:
    """Set husky `major` up in the git repository `root` as its docs say, with a team hook."""
    if major >= 9:  # husky init: core.hooksPath .husky/_, hooks in .husky/NAME run by sh -e
        r = subprocess.run(
            ["node", "node_modules/husky/bin.js", "init"], cwd=root, capture_output=True
        )
        assert r.returncode == 0, r.stderr
        assert git(root, "config", "core.hooksPath").stdout.strip() == ".husky/_"
        (root / ".husky/pre-commit").write_text(f'echo "husky lint" >> "{log}"\n')
    else:  # husky install: core.hooksPath .husky, whose scripts git runs (husky add writes them)
        r = subprocess.run(
            ["node", "node_modules/husky/lib/bin.js", "install"], cwd=root, capture_output=True
        )
        assert r.returncode == 0, r.stderr
        assert git(root, "config", "core.hooksPath").stdout.strip() == ".husky"
        hook = root / ".husky/pre-commit"
        hook.write_text(
            '#!/usr/bin/env sh\n. "$(dirname -- "$0")/_/husky.sh"\n\n'
            f'echo "husky lint" >> "{log}"\n'
        )
        hook.chmod(0o755)


@pytest.mark.parametrize("major", [9, 8])
def test_husky(
    tmp_path: Path, husky_npm: Callable[[int], Path], numpy_adapter: NumpyAdapter, major: int
) -> None:
    root = tmp_path / "reg"
    shutil.copytree(husky_npm(major), root)
    new_repo(root)
    log = tmp_path / "team.log"
    husky_repo(root, major, log)
    (root / ".gitignore").write_text("node_modules\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "husky")
    assert log.read_text().count("husky lint") == 1
    before = snapshot(root / ".husky")
    status_before = git(root, "status", "--porcelain").stdout

    r = cli(root, "init", ".")
    assert r.returncode == 0, r.stderr
    assert "husky runs adaptergit's hooks from .husky/pre-commit" in r.stdout
    assert "installed via husky (.husky/pre-commit)" in cli(root, "hooks", "status").stdout
    (root / "notes.txt").write_text("n\n")
    git(root, "add", "notes.txt")
    git(root, "commit", "-qm", "notes")
    assert log.read_text().count("husky lint") == 2  # the team's hook still runs
    r = weights_refused(root)
    assert r.returncode != 0 and "refusing to commit weight files" in r.stderr
    v1, v2 = two_versions(root, numpy_adapter)
    checkout_brings_weights(root, v1, v2)

    r = cli(root, "hooks", "uninstall")
    assert r.returncode == 0, r.stderr
    assert snapshot(root / ".husky") == before
    assert git(root, "status", "--porcelain").stdout == status_before


# --- lefthook (PyPI) ----------------------------------------------------------------------------


def test_lefthook(tmp_path: Path, numpy_adapter: NumpyAdapter) -> None:
    needs("lefthook", "lefthook (pip install lefthook; in the dev extra)")
    root = new_repo(tmp_path / "reg")
    log = tmp_path / "team.log"
    (root / "lefthook.yml").write_text(
        f"pre-commit:\n  commands:\n    lint:\n      run: echo lint >> {log}\n"
    )
    (root / ".gitignore").write_text("lefthook-local.yml\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "lefthook", "--no-verify")
    subprocess.run(["lefthook", "install"], cwd=root, check=True, capture_output=True)
    before = snapshot(root / ".git/hooks", root / ".git/info")

    Repo.init(root).close()
    states = cli(root, "hooks", "status").stdout
    assert "pre-commit     installed via lefthook (lefthook-local.yml)" in states
    assert "post-checkout  installed\n" in states  # lefthook does not run that hook: a shim does
    assert "lefthook" in (root / ".git/hooks/pre-commit").read_text()  # lefthook's script stays
    (root / "c.txt").write_text("c\n")
    git(root, "add", "c.txt")
    git(root, "commit", "-qm", "c")
    assert log.read_text().count("lint") == 1
    r = weights_refused(root)
    assert r.returncode != 0 and "refusing to commit weight files" in r.stderr
    # lefthook re-syncs its hooks (as after `npm install`): adaptergit's entry stays in its config
    subprocess.run(["lefthook", "install", "--force"], cwd=root, check=True, capture_output=True)
    assert weights_refused(root).returncode != 0
    v1, v2 = two_versions(root, numpy_adapter)
    checkout_brings_weights(root, v1, v2)

    r = cli(root, "hooks", "uninstall")
    assert r.returncode == 0, r.stderr
    assert not (root / "lefthook-local.yml").exists()
    assert snapshot(root / ".git/hooks", root / ".git/info") == before


def test_lefthook_installed_after_adaptergit(tmp_path: Path) -> None:
    """`lefthook install` (a teammate's `npm install`) moves other hooks aside as NAME.old and
    never runs them: adaptergit's entry in lefthook-local.yml keeps its hook running."""
    needs("lefthook", "lefthook (pip install lefthook; in the dev extra)")
    root = new_repo(tmp_path / "reg")
    log = tmp_path / "team.log"
    (root / "lefthook.yml").write_text(
        f"pre-commit:\n  commands:\n    lint:\n      run: echo lint >> {log}\n"
    )
    Repo.init(root).close()
    subprocess.run(["lefthook", "install"], cwd=root, check=True, capture_output=True)
    assert (root / ".git/hooks/pre-commit.old").exists()  # our shim, moved aside by lefthook
    assert "pre-commit     installed via lefthook" in cli(root, "hooks", "status").stdout
    r = weights_refused(root)
    assert r.returncode != 0 and "refusing to commit weight files" in r.stderr
    assert log.read_text().count("lint") == 1
    cli(root, "hooks", "uninstall")
    assert not (root / ".git/hooks/pre-commit.old").exists()
    assert not (root / "lefthook-local.yml").exists()


@pytest.mark.parametrize(
    "local",
    ["hello\n", "pre-push: [1, 2]\n", "a: [\n", "pre-push:\n  commands: 5\n", "- x\n"],
)
def test_a_malformed_lefthook_local_yml_is_one_clean_line(tmp_path: Path, local: str) -> None:
    root = new_repo(tmp_path / "reg")
    (root / "lefthook.yml").write_text("pre-push:\n  commands:\n    x:\n      run: 'true'\n")
    (root / "lefthook-local.yml").write_text(local)
    r = cli(root, "hooks", "install")
    err = r.stderr.strip()
    assert r.returncode == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("adaptergit: error: lefthook-local.yml: "), err
    assert (root / "lefthook-local.yml").read_text() == local


def test_empty_entries_in_lefthook_local_yml_are_filled_in(tmp_path: Path) -> None:
    root = new_repo(tmp_path / "reg")
    (root / "lefthook.yml").write_text("pre-push:\n  commands:\n    x:\n      run: 'true'\n")
    (root / "lefthook-local.yml").write_text("pre-push:\n")
    r = cli(root, "hooks", "install")
    assert r.returncode == 0, r.stderr
    assert "adaptergit" in (root / "lefthook-local.yml").read_text()


# --- the pre-commit framework (PyPI) -------------------------------------------------------------


def test_pre_commit_framework(tmp_path: Path, numpy_adapter: NumpyAdapter) -> None:
    needs("pre-commit", "pre-commit (pip install pre-commit; in the dev extra)")
    root = new_repo(tmp_path / "reg")
    log = tmp_path / "team.log"
    (root / ".pre-commit-config.yaml").write_text(
        "repos:\n- repo: local\n  hooks:\n  - id: lint\n    name: team lint\n"
        f"    entry: sh -c 'echo lint >> {log}'\n    language: system\n"
        "    pass_filenames: false\n    always_run: true\n"
    )
    git(root, "add", "-A")
    git(root, "commit", "-qm", "pre-commit config")
    for hook_type in ("pre-commit", "pre-push"):
        subprocess.run(
            ["pre-commit", "install", "-t", hook_type], cwd=root, check=True, capture_output=True
        )
    before = snapshot(root / ".git/hooks")

    Repo.init(root).close()
    states = cli(root, "hooks", "status").stdout
    assert "installed via pre-commit (pre-commit.legacy)" in states
    assert "pre-commit" in (root / ".git/hooks/pre-commit").read_text()  # the framework's script
    (root / "d.txt").write_text("d\n")
    git(root, "add", "d.txt")
    git(root, "commit", "-qm", "d")
    assert log.read_text().count("lint") == 1
    r = weights_refused(root)
    assert r.returncode != 0 and "refusing to commit weight files" in r.stderr
    v1, v2 = two_versions(root, numpy_adapter)
    checkout_brings_weights(root, v1, v2)

    r = cli(root, "hooks", "uninstall")
    assert r.returncode == 0, r.stderr
    assert snapshot(root / ".git/hooks") == before


def test_husky_set_up_after_adaptergit(
    tmp_path: Path, husky_npm: Callable[[int], Path], numpy_adapter: NumpyAdapter
) -> None:
    """A fresh clone of a husky project: adaptergit's hooks run before `npm install` sets husky
    up, and after it (through .husky/NAME), never twice."""
    root = tmp_path / "reg"
    shutil.copytree(husky_npm(9), root)
    new_repo(root)
    log = tmp_path / "team.log"
    husky_repo(root, 9, log)
    git(root, "config", "--unset", "core.hooksPath")  # as in a clone before `npm install`
    Repo.init(root).close()
    assert "adaptergit" in (root / ".husky/pre-commit").read_text()
    r = weights_refused(root)  # the shim in .git/hooks
    assert r.returncode != 0 and r.stderr.count("refusing to commit weight files") == 1
    assert not log.exists()
    prepare = subprocess.run(["node", "node_modules/husky/bin.js"], cwd=root, capture_output=True)
    assert prepare.returncode == 0, prepare.stderr  # husky's `prepare`: core.hooksPath .husky/_
    r = weights_refused(root)  # now through husky
    assert r.returncode != 0 and r.stderr.count("refusing to commit weight files") == 1
    assert log.read_text().count("husky lint") == 1
    cli(root, "hooks", "uninstall")
    assert "adaptergit" not in (root / ".husky/pre-commit").read_text()
    assert not (root / ".husky/post-checkout").exists()


def test_an_older_shim_is_reported_and_refreshed(registry: Repo) -> None:
    """A shim of an older adaptergit (`exec adaptergit`: git fails without it) shows as not
    installed until `hooks install` rewrites it."""
    hook = registry.git.hooks_dir() / "pre-commit"
    hook.write_text(
        "#!/bin/sh\n# adaptergit hook shim (pre-commit): old\nexec adaptergit hook pre-commit\n"
    )
    assert "pre-commit     not installed" in cli(registry.root, "hooks", "status").stdout
    assert cli(registry.root, "hooks", "install").returncode == 0
    assert "not on PATH" in hook.read_text()
    assert not hook.with_name("pre-commit.adaptergit-chained").exists()
