"""Every write converges: after a kill at any step, the next command (or `recover`) finishes or
undoes it, trusting only its own journals and its own annotated tags."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import WEIGHTS, World, assert_clean

KILLED = -9


def crash(world: World, step: str, *args: str, cwd: Path | None = None) -> None:
    result = world.run(*args, cwd=cwd, env={"ADAPTERGIT_CRASH_AT": step})
    assert result.code == KILLED, f"{step} was not reached: {result.text}"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def converged_at_head(world: World) -> None:
    """The work tree is exactly HEAD's versions, with their weights, and nothing is left over."""
    assert world.git("status", "--porcelain", "--untracked-files=all") == ""
    for folder in (world.reg / "adapters").iterdir():
        manifest = json.loads((folder / "manifest.json").read_text())
        assert sha256(folder / WEIGHTS) == manifest["weights"]["sha256"]
    state = world.reg / ".git" / "adaptergit"
    assert not [p.name for p in state.iterdir() if p.name.startswith(("txn-", "temps-"))]
    cache = world.reg / ".dvc" / "cache" / "files" / "md5"
    assert not [p for p in cache.rglob("*") if p.name.startswith(".")]


def test_a_foreign_annotated_tag_does_not_make_a_killed_commit_recorded(world: World) -> None:
    crash(world, "git.before-refs", "commit", str(world.base / "v3"), "--name", "bot")
    world.git("tag", "-a", "bot@v0.0.3", "-m", "someone else's", "HEAD")  # a teammate's, say
    result = world.ok("recover")
    assert "rolled back" in result.out
    converged_at_head(world)
    assert sha256(world.reg / "adapters" / "bot" / WEIGHTS) == sha256(world.base / "v2" / WEIGHTS)


def test_a_commit_killed_after_its_refs_moved_is_kept(world: World) -> None:
    crash(world, "git.after-refs", "commit", str(world.base / "v3"), "--name", "bot")
    world.ok("status", "--no-remote")  # any command recovers
    converged_at_head(world)
    assert "bot@v0.0.3" in world.git("tag")
    assert sha256(world.reg / "adapters" / "bot" / WEIGHTS) == sha256(world.base / "v3" / WEIGHTS)


def test_a_kill_during_recovery_is_recovered_too(world: World) -> None:
    crash(world, "commit.placed", "commit", str(world.base / "v3"), "--name", "bot")
    crash(world, "txn.restored#2", "recover")
    world.ok("recover")
    converged_at_head(world)
    world.ok("commit", str(world.base / "v3"), "--name", "bot")
    converged_at_head(world)


def test_a_killed_checkout_to_leaves_no_folder_and_its_sibling_is_removed(world: World) -> None:
    out = world.base / "out"
    crash(world, "export.built", "checkout", "bot@v0.0.1", "--to", str(out))
    assert not out.exists()
    assert [p for p in world.base.iterdir() if p.name.startswith(".adaptergit-")]
    world.ok("recover")
    assert not [p for p in world.base.iterdir() if p.name.startswith(".adaptergit-")]
    world.ok("checkout", "bot@v0.0.1", "--to", str(out))
    assert sha256(out / WEIGHTS) == sha256(world.base / "v1" / WEIGHTS)


def test_temporaries_of_others_are_never_touched(world: World) -> None:
    """A temp with no journal (another repository's, in a shared cache) and one whose owner
    is alive stay; only a dead owner's journaled temps go."""
    cache = world.reg / ".dvc" / "cache" / "files" / "md5"
    foreign = cache / ".adaptergit-123-abcd-object-00.tmp"
    foreign.write_bytes(b"another repository's upload")
    state = world.reg / ".git" / "adaptergit"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = Path(f"/proc/{sleeper.pid}/stat").read_bytes()
        start_time = start[start.rfind(b")") + 2 :].split()[19].decode()
        for pid, start_of, tag in ((sleeper.pid, start_time, "live"), (2**22 + 7, "1", "dead")):
            ident = f"{pid}-{tag}"
            temp = cache / f".adaptergit-{ident}-object-1.tmp"
            temp.write_bytes(b"partial")
            (state / f"temps-{ident}.json").write_text(
                json.dumps(
                    {
                        "version": 1,
                        "owner": {"pid": pid, "start": start_of},
                        "id": ident,
                        "remote": None,
                        "paths": [str(temp)],
                        "data": {},
                    }
                )
            )
        world.ok("recover")
        assert foreign.exists()
        assert (cache / f".adaptergit-{sleeper.pid}-live-object-1.tmp").exists()
        assert not (cache / f".adaptergit-{2**22 + 7}-dead-object-1.tmp").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_partial_uploads_of_a_dead_push_are_removed_from_the_remote(world: World) -> None:
    store = world.base / "store"
    world.ok("remote", "add", "store", str(store), "--default")
    world.ok("push")
    md5 = world.md5("bot")
    folder = store / "files" / "md5" / md5[:2]
    ident = f"{2**22 + 9}-dead"
    ours = folder / f".adaptergit-{ident}-Zm9vYmFy.tmp"
    theirs = folder / ".c29tZW9uZSBlbHNl.tmp"
    ours.write_bytes(b"partial")
    theirs.write_bytes(b"someone else's upload in progress")
    state = world.reg / ".git" / "adaptergit"
    (state / f"temps-{ident}.json").write_text(
        json.dumps(
            {
                "version": 1,
                "owner": {"pid": 2**22 + 9, "start": "1"},
                "id": ident,
                "remote": "store",
                "paths": [str(folder / md5[2:])],
                "data": {"sizes": {str(folder / md5[2:]): (folder / md5[2:]).stat().st_size}},
            }
        )
    )
    result = world.ok("recover")
    assert "partial upload" in result.out
    assert not ours.exists() and theirs.exists()
    assert (folder / md5[2:]).exists()
    assert world.ok("recover").out.strip() == "nothing to recover"


@pytest.mark.slow
def test_a_push_killed_mid_upload_converges(world: World) -> None:
    """As a user would: SIGKILL while DVC copies a 64 MB object into a directory remote."""
    from .conftest import write_adapter

    big = write_adapter(world.base / "big", 3.0, dim=1 << 20)
    world.ok("commit", str(big), "--name", "big")
    store = world.base / "store"
    world.ok("remote", "add", "store", str(store), "--default")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "adaptergit"), "push"],
        cwd=world.reg,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial = None
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline and partial is None:
        for path in store.rglob("*.tmp") if store.exists() else []:
            proc.send_signal(signal.SIGSTOP)  # freeze it, then look again
            if path.exists() and path.stat().st_size > 0:
                proc.send_signal(signal.SIGKILL)
                partial = path
            proc.send_signal(signal.SIGCONT)
            break
        time.sleep(0.0005)
    proc.wait()
    if partial is None or not partial.exists():
        pytest.skip("the upload was too fast to catch")
    assert ".adaptergit-" in partial.name
    world.ok("push")
    left = [p for p in store.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert left == []
    assert_clean(world.run("verify", "--remote", "--deep"))
    assert os.path.exists(store)
