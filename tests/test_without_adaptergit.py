"""Plain git never fails because of adaptergit: with adaptergit uninstalled (its package folder,
then its whole venv, removed) and not on PATH, `git log -p`, `git show`, `git diff`,
`git checkout`, `git commit` and `git push` all work, each saying in one line what it skipped."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import adaptergit

from .conftest import NumpyAdapter

PACKAGE = Path(adaptergit.__file__).resolve().parent


def throwaway_venv(where: Path) -> tuple[Path, Path]:
    """A venv whose only adaptergit is a copy of this one; return (its python, the copy)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    site_packages = next((where / "lib").glob("python*/site-packages"))
    copy = site_packages / "adaptergit"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    # The dependencies come from this interpreter, minus every adaptergit it knows of.
    deps = where / "deps"
    deps.mkdir()
    for folder in site.getsitepackages():
        for entry in Path(folder).iterdir():
            if entry.name.startswith(("adaptergit", "__editable__")) or entry.suffix == ".pth":
                continue
            if not (deps / entry.name).exists():
                (deps / entry.name).symlink_to(entry)
    (site_packages / "deps.pth").write_text(f"{deps}\n")
    return where / "bin" / "python", copy


def path_without_adaptergit(tmp_path: Path) -> str:
    """PATH with no folder holding an `adaptergit` (git stays reachable)."""
    kept = [
        d for d in os.environ["PATH"].split(os.pathsep) if d and not Path(d, "adaptergit").exists()
    ]
    gitonly = tmp_path / "gitonly"
    gitonly.mkdir()
    if not shutil.which("git", path=os.pathsep.join(kept)):
        (gitonly / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    return os.pathsep.join([str(gitonly), *kept])


def run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def skipped_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_plain_git_with_adaptergit_uninstalled(tmp_path: Path, numpy_adapter: NumpyAdapter) -> None:
    python, copy = throwaway_venv(tmp_path / "venv")
    env = {**os.environ, "PATH": path_without_adaptergit(tmp_path)}
    for seed in (1, 2):
        numpy_adapter(seed, folder=tmp_path / f"a{seed}")
    setup = [
        [str(python), "-m", "adaptergit", "init", "reg"],
        [str(python), "-m", "adaptergit", "-C", "reg", "commit", "a1", "--name", "bot"],
        [str(python), "-m", "adaptergit", "-C", "reg", "commit", "a2", "--name", "bot"],
        ["git", "init", "-q", "--bare", "origin.git"],
        ["git", "-C", "reg", "remote", "add", "origin", str(tmp_path / "origin.git")],
    ]
    for command in setup:
        r = run(tmp_path, env, *command)
        assert r.returncode == 0, r.stderr
    reg = tmp_path / "reg"
    assert str(python) in run(reg, env, "git", "config", "diff.adaptergit.textconv").stdout

    # Installed but not on PATH: the diff driver and the hooks find it through its Python.
    r = run(reg, env, "git", "diff", "bot@v0.0.1", "bot@v0.0.2")
    assert r.returncode == 0 and "adapter  bot v0.0.2" in r.stdout, r.stderr

    shutil.rmtree(copy)  # adaptergit uninstalled: its folder is gone, its Python is still there
    for command in (
        ["git", "log", "-p", "-1"],
        ["git", "show", "bot@v0.0.2"],
        ["git", "diff", "bot@v0.0.1", "bot@v0.0.2"],
    ):
        r = run(reg, env, *command)
        assert r.returncode == 0, (command, r.stderr)
        assert '"schema_version"' in r.stdout  # the manifests, shown as they are
        lines = skipped_lines(r.stderr)
        assert lines and all(line.startswith("adaptergit: not found") for line in lines), lines
    r = run(reg, env, "git", "checkout", "-q", "bot@v0.0.1")
    assert r.returncode == 0, r.stderr
    assert skipped_lines(r.stderr) == [
        f"adaptergit: not found (not in {python}, not on PATH); its post-checkout hook did nothing"
    ]
    for command in (["git", "checkout", "-q", "-"], ["git", "push", "-q", "origin", "HEAD"]):
        r = run(reg, env, *command)
        assert r.returncode == 0, (command, r.stderr)
        assert len(skipped_lines(r.stderr)) == 1, r.stderr

    shutil.rmtree(tmp_path / "venv")  # the whole venv, interpreter and all
    (reg / "notes.md").write_text("notes\n")
    for command in (
        ["git", "add", "notes.md"],
        ["git", "commit", "-q", "-m", "notes"],
        ["git", "push", "-q", "origin", "HEAD"],
        ["git", "checkout", "-q", "bot@v0.0.1"],
        ["git", "log", "-p", "-2"],
        ["git", "show", "bot@v0.0.1"],
    ):
        r = run(reg, env, *command)
        assert r.returncode == 0, (command, r.stderr)

    # adaptergit back on PATH (another install): the hooks and the driver use that one.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    r = run(reg, env, "git", "diff", "bot@v0.0.1", "bot@v0.0.2")
    assert r.returncode == 0 and "adapter  bot v0.0.2" in r.stdout, r.stderr
    assert r.stderr == ""
