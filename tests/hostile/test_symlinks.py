"""Symbolic links a cloned registry can commit: never followed out of the work tree.

Each test plays the attacker with plain git (commit a link where adaptergit expects a file or a
folder), clones the registry as the victim, runs the victim's commands and hooks, and asserts that
nothing outside the work tree changed or was read into git, and that every refusal is one line
naming the path.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from .conftest import World, assert_clean, snapshot


def _clone(world: World) -> Path:
    victim = world.base / "victim"
    world.git("clone", "-q", str(world.reg), str(victim), cwd=world.base)
    return victim


def test_symlinked_dvc_yaml_is_never_read_into_a_commit(world: World) -> None:
    secret = world.outside / "secret.yaml"
    before = snapshot(world.outside)
    (world.reg / "dvc.yaml").unlink()
    (world.reg / "dvc.yaml").symlink_to(secret)
    world.git("add", "dvc.yaml")
    world.git("commit", "-qm", "tidy", "--no-verify")
    victim = _clone(world)
    result = world.run("commit", str(world.base / "v3"), "--name", "bot", cwd=victim)
    assert_clean(result)
    assert result.code == 2 and "dvc.yaml" in result.err and "symbolic link" in result.err
    assert b"FAKE-SECRET-TOKEN" not in world.all_objects_text(victim)
    assert snapshot(world.outside) == before


@pytest.mark.parametrize("link", ["adapters/bot/.gitignore", "adapters/bot/manifest.json"])
def test_symlinked_files_in_the_adapter_folder(world: World, link: str) -> None:
    secret = world.outside / "secret.yaml"
    before = snapshot(world.outside)
    (world.reg / link).unlink()
    (world.reg / link).symlink_to(secret)
    world.git("add", link)
    world.git("commit", "-qm", "tidy", "--no-verify")
    victim = _clone(world)
    for args in (
        ["commit", str(world.base / "v3"), "--name", "bot"],
        ["checkout", "bot@v0.0.1"],
        ["checkout", "bot@v0.0.1", "--force"],
        ["status"],
        ["verify"],
    ):
        result = world.run(*args, cwd=victim)
        assert_clean(result)
    world.ok("hooks", "install", cwd=victim)  # a clone has none; the user installs them
    for rev in ("bot@v0.0.1", "main"):  # the post-checkout hook reads adapters/bot
        world.git("checkout", "-q", "-f", rev, cwd=victim, check=False)
    assert b"FAKE-SECRET-TOKEN" not in world.all_objects_text(victim)
    assert snapshot(world.outside) == before


def test_symlinked_adapters_folder_is_refused_by_every_command(world: World) -> None:
    store = world.base / "store"
    world.ok("remote", "add", "store", str(store), "--default")
    world.ok("push")
    world.git("rm", "-rq", "--cached", "adapters")
    for entry in sorted((world.reg / "adapters").rglob("*"), reverse=True):
        entry.unlink() if not entry.is_dir() else entry.rmdir()
    (world.reg / "adapters").rmdir()
    (world.reg / "adapters").symlink_to(world.outside)
    world.git("add", "adapters")
    world.git("commit", "-qm", "move adapters", "--no-verify")
    victim = _clone(world)
    before = snapshot(world.outside)
    for args in (
        ["pull", "bot@v0.0.1"],
        ["checkout", "bot@v0.0.1"],
        ["checkout", "bot@v0.0.1", "--force"],
        ["commit", str(world.base / "v3"), "--name", "bot"],
        ["status"],
        ["verify"],
        ["gc"],
    ):
        result = world.run(*args, cwd=victim)
        assert_clean(result)
        assert snapshot(world.outside) == before, args
    result = world.run("checkout", "bot@v0.0.1", "--force", cwd=victim)
    assert result.code == 2 and "adapters: is a symbolic link" in result.err
    # A plain `git checkout` runs the post-checkout hook; git itself refuses paths beyond links.
    world.git("checkout", "-q", "bot@v0.0.1", cwd=victim, check=False)
    assert snapshot(world.outside) == before


def test_symlinked_adapter_folder_is_refused(world: World) -> None:
    world.git("rm", "-rq", "--cached", "adapters/bot")
    for entry in (world.reg / "adapters" / "bot").iterdir():
        entry.unlink()
    (world.reg / "adapters" / "bot").rmdir()
    (world.reg / "adapters" / "bot").symlink_to(world.outside / "bot")
    world.git("add", "adapters/bot")
    world.git("commit", "-qm", "link", "--no-verify")
    victim = _clone(world)
    before = snapshot(world.outside)
    for args in (
        ["checkout", "bot@v0.0.1", "--force"],
        ["commit", str(world.base / "v3"), "--name", "bot"],
    ):
        result = world.run(*args, cwd=victim)
        assert_clean(result)
        assert result.code == 2 and "adapters/bot: is a symbolic link" in result.err
    assert snapshot(world.outside) == before


def test_symlinked_gitattributes_and_dvc_config(world: World) -> None:
    secret = world.outside / "secret.yaml"
    before = snapshot(world.outside)
    for name in (".gitattributes", ".dvc/config"):
        target = world.reg / name
        content = target.read_bytes()
        target.unlink()
        (world.outside / Path(name).name).write_bytes(content)
        target.symlink_to(world.outside / Path(name).name if name == ".dvc/config" else secret)
        world.git("add", name)
    world.git("commit", "-qm", "links", "--no-verify")
    victim = _clone(world)
    before = snapshot(world.outside)
    for args in (
        ["init", "."],
        ["remote", "add", "x", str(world.base / "x")],
        ["commit", str(world.base / "v3"), "--name", "bot"],
        ["checkout", "bot@v0.0.1", "--force"],
    ):
        result = world.run(*args, cwd=victim)
        assert_clean(result)
        assert result.code != 0, (args, result.text)
    assert b"FAKE-SECRET-TOKEN" not in world.all_objects_text(victim)
    assert snapshot(world.outside) == before


def test_a_symlinked_weights_file_is_an_unrecorded_change_never_read(world: World) -> None:
    weights = world.reg / "adapters" / "bot" / "adapter_model.safetensors"
    weights.unlink()
    weights.symlink_to(world.outside / "secret.yaml")
    before = snapshot(world.outside)
    result = world.run("checkout", "bot@v0.0.1")
    assert result.code == 1 and "adapter_model.safetensors" in result.err
    world.ok("checkout", "bot@v0.0.1", "--force")
    assert not weights.is_symlink() and weights.is_file()
    assert snapshot(world.outside) == before


def test_fifo_in_the_work_tree_or_cache_does_not_hang(world: World) -> None:
    md5 = world.md5("bot")
    obj = world.cache_object(md5)
    obj.chmod(0o644)
    obj.unlink()
    os.mkfifo(obj)
    weights = world.reg / "adapters" / "bot" / "adapter_model.safetensors"
    weights.unlink()
    os.mkfifo(weights)
    for args in (
        ["checkout", "bot@v0.0.2", "--force"],
        ["checkout", "bot@v0.0.2", "--to", str(world.base / "out")],
        ["verify"],
        ["verify", "--all"],
        ["status", "--no-remote"],
        ["diff", "bot@v0.0.1", "bot@v0.0.2"],
        ["gc", "--dry-run"],
    ):
        result = world.run(*args)  # the subprocess timeout fails the test on a hang
        assert_clean(result)
    src = world.base / "v3"
    (src / "adapter_config.json").unlink()
    os.mkfifo(src / "adapter_config.json")
    result = world.run("commit", str(src), "--name", "fifo")
    assert result.code == 2 and "not a regular file" in result.err


@pytest.mark.parametrize(
    ("link", "target"),
    [
        (".husky", "outside"),  # a folder: install would write five hook scripts into it
        (".husky/pre-commit", "outside/secret.yaml"),  # a file: its bytes would be copied in
        ("lefthook-local.yml", "outside/secret.yaml"),  # read, merged and written back
    ],
)
def test_hook_manager_files_linked_out_of_the_work_tree(
    world: World, link: str, target: str
) -> None:
    (world.reg / "package.json").write_text('{"devDependencies": {"husky": "^9"}}\n')
    (world.reg / "lefthook.yml").write_text("pre-push:\n  commands:\n    x:\n      run: 'true'\n")
    (world.reg / link).parent.mkdir(parents=True, exist_ok=True)
    (world.reg / link).symlink_to(world.base / target)
    world.git("add", "package.json", "lefthook.yml", link)
    world.git("commit", "-qm", "hook managers", "--no-verify")
    victim = _clone(world)
    before = snapshot(world.outside)
    for args in (["init", "."], ["hooks", "install"]):  # the README's step for every clone
        result = world.run(*args, cwd=victim)
        assert_clean(result)
        assert link in result.err and "symbolic link" in result.err, result.text
    assert snapshot(world.outside) == before
    assert sorted(p.name for p in world.outside.iterdir()) == ["bot", "secret.yaml"]
    assert (victim / link).is_symlink()  # left as it was, neither followed nor replaced
    world.git("add", "-A", cwd=victim)
    assert b"FAKE-SECRET-TOKEN" not in world.git("diff", "--cached", cwd=victim).encode()


@pytest.mark.parametrize("swap", ["adapters/bot", "adapters"])
def test_a_file_where_a_folder_belongs_is_refused_and_leaves_nothing(
    world: World, swap: str
) -> None:
    """A clone that commits a file in place of ``adapters/bot`` (or ``adapters``): every write
    is refused in one line before anything is journaled, so nothing is left for `recover` and
    other adapters are unaffected."""
    world.git("rm", "-rq", swap)
    shutil.rmtree(world.reg / swap)  # the weights, which git does not track
    (world.reg / swap).write_text("not a folder\n")
    world.git("add", swap)
    world.git("commit", "-qm", "a file in its place", "--no-verify")
    victim = _clone(world)
    world.ok("init", ".", cwd=victim)
    for args in (
        ["checkout", "bot@v0.0.2"],
        ["checkout", "bot@v0.0.2", "--force"],
        ["commit", str(world.base / "v3"), "--name", "bot"],
    ):
        result = world.run(*args, cwd=victim)
        assert_clean(result)
        assert result.code == 2, result.text
        assert "not a folder" in result.err or "under a file" in result.err, result.err
        assert not list((victim / ".git" / "adaptergit").glob("txn-*")), args
    assert world.ok("recover", cwd=victim).out.strip() == "nothing to recover"
    assert (victim / swap).read_text() == "not a folder\n"
    if swap == "adapters/bot":  # another adapter is still committed as usual
        world.ok("commit", str(world.base / "v3"), "--name", "other", cwd=victim)


def test_recovery_converges_when_its_folder_became_a_file(world: World) -> None:
    """A journal for ``adapters/bot`` whose folder is now a file: its temporaries cannot exist,
    so recovery removes the journal."""
    target = world.reg / "adapters" / "bot"
    journal = world.reg / ".git" / "adaptergit" / "txn-1-deadbeef"
    (journal / "backup").mkdir(parents=True)
    (journal / "journal.json").write_text(
        json.dumps(
            {
                "version": 2,
                "owner": {"pid": 999_999_999, "host": "gone", "start": 0},
                "target": str(target),
                "files": [".gitignore"],
                "present": [],
                "temps": [".gitignore.adaptergit-1-deadbeef.tmp"],
                "tag": None,
                "new_paths": [],
            }
        )
    )
    shutil.rmtree(target)
    target.write_text("not a folder\n")
    result = world.run("recover")
    assert_clean(result)
    assert result.code == 0 and not journal.exists(), result.text
