"""Bytes checked end to end, and a mismatch never deletes what another version needs."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from .conftest import World, assert_clean


def _flip(path: Path, offset: int = 300) -> None:
    mode = path.stat().st_mode
    path.chmod(0o644)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ 0xFF]))
    path.chmod(mode & 0o777)


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_lying_manifest_sharing_an_md5_keeps_the_object(world: World) -> None:
    """A teammate's branch records bot's md5 with a wrong sha256 under another name."""
    md5 = world.md5("bot")
    obj = world.cache_object(md5)
    good = _sha256(obj)
    world.git("checkout", "-q", "-b", "teammate")
    evil = world.reg / "adapters" / "evil"
    evil.mkdir()
    for name in (
        "adapter_config.json",
        "metrics.json",
        "adapter_model.safetensors.dvc",
        ".gitignore",
    ):
        (evil / name).write_bytes((world.reg / "adapters" / "bot" / name).read_bytes())
    manifest = json.loads((world.reg / "adapters" / "bot" / "manifest.json").read_text())
    manifest["name"], manifest["weights"]["sha256"] = "evil", "a" * 64
    (evil / "manifest.json").write_text(json.dumps(manifest))
    world.git("add", "adapters/evil")
    world.git("commit", "-qm", "evil", "--no-verify")
    world.git("checkout", "-q", "main")
    # the post-checkout hook restores adapters/evil: refused, object kept
    subprocess.run(["git", "checkout", "-q", "teammate"], cwd=world.reg, capture_output=True)
    subprocess.run(["git", "checkout", "-q", "main"], cwd=world.reg, capture_output=True)
    assert obj.is_file() and _sha256(obj) == good
    result = world.run("checkout", "evil@teammate", "--to", str(world.base / "evil-out"))
    assert_clean(result)
    assert result.code == 3 and "manifest is wrong" in result.err
    assert not (world.base / "evil-out").exists()
    assert obj.is_file() and _sha256(obj) == good
    world.ok("checkout", "bot@v0.0.2", "--to", str(world.base / "out"))
    assert _sha256(world.base / "out" / "adapter_model.safetensors") == good


def test_a_corrupt_cache_object_is_quarantined_then_fetched_again(world: World) -> None:
    world.ok("remote", "add", "store", str(world.base / "store"), "--default")
    world.ok("push")
    md5 = world.md5("bot")
    obj = world.cache_object(md5)
    good = _sha256(obj)
    _flip(obj)
    world.ok("checkout", "bot@v0.0.2", "--to", str(world.base / "out"))
    assert _sha256(obj) == good
    assert _sha256(world.base / "out" / "adapter_model.safetensors") == good
    quarantined = list((world.reg / ".git" / "adaptergit" / "quarantine").iterdir())
    assert len(quarantined) == 1 and _sha256(quarantined[0]) != good


def test_a_corrupt_cache_object_without_remote_is_kept_aside(world: World) -> None:
    obj = world.cache_object(world.md5("bot"))
    _flip(obj)
    result = world.run("checkout", "bot@v0.0.2", "--force")
    assert_clean(result)
    assert result.code == 3 and "is corrupt" in result.err
    assert list((world.reg / ".git" / "adaptergit" / "quarantine").iterdir())


def test_push_refuses_a_bit_rotted_object(world: World) -> None:
    origin = world.base / "origin.git"
    world.git("init", "-q", "--bare", str(origin), cwd=world.base)
    world.git("remote", "add", "origin", str(origin))
    world.ok("remote", "add", "store", str(world.base / "store"), "--default")
    md5 = world.md5("bot")
    _flip(world.cache_object(md5))
    result = world.run("push")
    assert_clean(result)
    assert result.code == 3 and "corrupt" in result.err
    assert not (world.base / "store" / "files" / "md5" / md5[:2] / md5[2:]).exists()
    assert not world.git("ls-remote", str(origin), cwd=world.base).strip()
    # the pre-push hook of a plain `git push` refuses too
    proc = subprocess.run(
        ["git", "push", "-q", "origin", "main", "--tags"], cwd=world.reg, capture_output=True
    )
    assert proc.returncode != 0
    assert not world.git("ls-remote", str(origin), cwd=world.base).strip()


def test_fetch_refuses_a_corrupt_remote_object_and_verify_deep_finds_it(world: World) -> None:
    store = world.base / "store"
    world.ok("remote", "add", "store", str(store), "--default")
    world.ok("push")
    md5 = world.md5("bot")
    remote_obj = store / "files" / "md5" / md5[:2] / md5[2:]
    _flip(remote_obj)
    assert world.run("verify", "--remote").code == 0  # existence alone looks fine
    result = world.run("verify", "--remote", "--deep", "--json")
    assert result.code == 1
    kinds = {p["kind"] for p in json.loads(result.out)["problems"]}
    assert kinds == {"remote-corrupt"}
    victim = world.base / "victim"
    world.git("clone", "-q", str(world.reg), str(victim), cwd=world.base)
    result = world.run("fetch", "bot@v0.0.2", cwd=victim)
    assert_clean(result)
    assert result.code != 0 and "corrupt" in result.err
    cache = victim / ".dvc" / "cache"
    left = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert left == [], left
    # plain `dvc checkout` therefore has nothing corrupt to hand out
    assert not world.cache_object(md5, victim).exists()


def test_checkout_to_leaves_nothing_when_it_fails(world: World) -> None:
    out = world.base / "out"
    obj = world.cache_object(world.md5("bot"))
    _flip(obj)
    result = world.run("checkout", "bot@v0.0.2", "--to", str(out))
    assert result.code == 3
    assert not out.exists()
    assert [p.name for p in world.base.iterdir() if p.name.startswith(".adaptergit-")] == []
    assert os.listdir(world.reg / ".git" / "adaptergit").count("lock") == 1
