"""Crash points: every write command, killed at every step, converges.

Each command runs once with ``ADAPTERGIT_CRASH_LOG`` to list the steps it passes (see
`adaptergit.fsutil.crash_point`: journal written, files moved aside, each file written, the copy
after its first chunk, the objects before and after the ref transaction, bytes transferred, ...),
then once per step from the same starting state with ``ADAPTERGIT_CRASH_AT=STEP#N``, where it
SIGKILLs itself. After ``adaptergit recover`` the repository must be in the state before the
command or the state after it -- never in between -- with nothing left over anywhere (journals,
temporaries in the cache, the ``--to`` sibling, partial uploads on the remote); and rerunning the
command must reach the state after it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import WEIGHTS, World

KILLED = -9


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Scenario:
    args: list[str]
    prepare: Callable[[World], None] = lambda world: None
    cwd: str = "reg"
    # outputs of a rerun that count as "already done"
    done_words: tuple[str, ...] = field(default_factory=tuple)


def _with_remote(world: World) -> None:
    world.git("init", "-q", "--bare", str(world.base / "origin.git"), cwd=world.base)
    world.git("remote", "add", "origin", str(world.base / "origin.git"))
    world.ok("remote", "add", "store", str(world.base / "store"), "--default")


def _cloned(world: World) -> None:
    _with_remote(world)
    world.ok("push")
    origin, victim = str(world.base / "origin.git"), str(world.base / "victim")
    world.git("clone", "-q", "-b", "main", origin, victim, cwd=world.base)


SCENARIOS = {
    "commit": Scenario(["commit", "{v3}", "--name", "bot"], done_words=("nothing to commit",)),
    "commit-new": Scenario(
        ["commit", "{v3}", "--name", "fresh"], done_words=("nothing to commit",)
    ),
    "checkout": Scenario(["checkout", "bot@v0.0.1"]),
    "checkout-to": Scenario(["checkout", "bot@v0.0.1", "--to", "{out}"]),
    "assign": Scenario(
        ["assign", "bot@v0.0.1", "--stage", "prod"], done_words=("already in stage",)
    ),
    "push": Scenario(["push"], prepare=_with_remote),
    "pull": Scenario(["pull", "bot@v0.0.1"], prepare=_cloned, cwd="victim"),
    "remote-add": Scenario(
        ["remote", "add", "more", "{base}/more"], done_words=("already exists",)
    ),
}


def _state(world: World, cwd: Path) -> dict[str, object]:
    """What must be either before or after: refs, versions checked out, exported files."""
    tags = sorted(world.git("tag", cwd=cwd).split())
    commits = world.git("rev-list", "--count", "HEAD", cwd=cwd).strip()
    adapters = {}
    for folder in sorted((cwd / "adapters").iterdir()) if (cwd / "adapters").is_dir() else []:
        weights = folder / WEIGHTS
        adapters[folder.name] = _sha(weights) if weights.exists() else None
    out = world.base / "out"
    exported = {p.name: _sha(p) for p in sorted(out.iterdir())} if out.exists() else None
    origin = world.base / "origin.git"
    published = (
        sorted(world.git("for-each-ref", "--format=%(refname)", cwd=origin).split())
        if origin.exists()
        else []
    )
    dvc_config = (cwd / ".dvc" / "config").read_text()
    return {
        "tags": tags,
        "commits": commits,
        "adapters": adapters,
        "exported": exported,
        "published": published,
        "dvc_config": dvc_config,
    }


def _consistent(world: World, cwd: Path) -> None:
    """Every adapter folder is exactly a registered version, and nothing is left over."""
    status = world.git("status", "--porcelain", "--untracked-files=all", cwd=cwd)
    assert not [line for line in status.splitlines() if line.startswith("??")], status
    for folder in sorted((cwd / "adapters").iterdir()) if (cwd / "adapters").is_dir() else []:
        manifest = json.loads((folder / "manifest.json").read_text())
        if (folder / WEIGHTS).exists() or world.git("ls-files", "--", str(folder), cwd=cwd) == "":
            # (a fresh clone has no weights yet: only then may they be absent)
            assert _sha(folder / WEIGHTS) == manifest["weights"]["sha256"], folder
        tag = f"{manifest['name']}@{manifest['version']}"
        diff = world.git("diff", "--name-only", tag, "--", f"adapters/{folder.name}", cwd=cwd)
        assert diff == "", (tag, diff)
    state = cwd / ".git" / "adaptergit"
    assert not [p.name for p in state.iterdir() if p.name.startswith(("txn-", "temps-"))]
    for root in (cwd / ".dvc" / "cache", world.base / "store"):
        if root.exists():
            left = [str(p) for p in root.rglob("*") if p.name.startswith(".")]
            assert left == [], left
    siblings = [p.name for p in world.base.iterdir() if p.name.startswith(".adaptergit-")]
    assert siblings == []
    out = world.base / "out"
    if out.exists():
        assert sorted(p.name for p in out.iterdir()) == sorted(
            ["README.md", "adapter_config.json", WEIGHTS, "manifest.json", "metrics.json"]
        )


def _writable_and_retry(func: Callable[[str], object], path: str, _exc: object) -> None:
    os.chmod(os.path.dirname(path), 0o755)
    func(path)


def _reset(pristine: Path, base: Path) -> None:
    for entry in list(base.iterdir()):
        if entry.name == "pristine":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, onerror=_writable_and_retry)
        else:
            entry.unlink()
    for entry in pristine.iterdir():
        target = base / entry.name
        if entry.is_dir():
            shutil.copytree(entry, target, symlinks=True)
        else:
            shutil.copy2(entry, target)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_step_of_every_write_converges(world: World, name: str) -> None:
    scenario = SCENARIOS[name]
    scenario.prepare(world)
    cwd = world.base / scenario.cwd
    args = [
        a.format(v3=world.base / "v3", out=world.base / "out", base=world.base)
        for a in scenario.args
    ]
    pristine = world.base / "pristine"
    pristine.mkdir()
    for entry in list(world.base.iterdir()):
        if entry.name != "pristine":
            (
                shutil.copytree(entry, pristine / entry.name, symlinks=True)
                if entry.is_dir()
                else shutil.copy2(entry, pristine / entry.name)
            )
    before = _state(world, cwd)

    log = world.base.parent / f"{name}-steps.log"
    result = world.run(*args, cwd=cwd, env={"ADAPTERGIT_CRASH_LOG": str(log)})
    assert result.code == 0, result.text
    after = _state(world, cwd)
    assert after != before
    steps = log.read_text().split() if log.exists() else []
    assert steps, "no crash point on this command's path"

    for step in steps:
        _reset(pristine, world.base)
        killed = world.run(*args, cwd=cwd, env={"ADAPTERGIT_CRASH_AT": step})
        assert killed.code == KILLED, (step, killed.text)
        recovered = world.run("recover", cwd=cwd)
        assert recovered.code == 0, (step, recovered.text)
        state = _state(world, cwd)
        assert state in (before, after), (step, state, before, after)
        _consistent(world, cwd)
        rerun = world.run(*args, cwd=cwd)
        assert rerun.code == 0 or any(w in rerun.text for w in scenario.done_words), (
            step,
            rerun.text,
        )
        assert _state(world, cwd) == after, step
        _consistent(world, cwd)
