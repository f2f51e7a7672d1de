"""Where DVC's cache is: a committed config may not point it (or DVC's site cache) outside.

As DVC's own advisories argue, a ``.dvc/config`` that arrives with ``git clone`` must not decide
where the user's commands write and delete: ``cache.dir`` set there is honoured only inside the
repository, or when the user set the same in their own (local or global) config.
"""

from __future__ import annotations

from pathlib import Path

from adaptergit import Repo
from adaptergit.errors import UnsafePath, UntrustedConfig

from .conftest import World, assert_clean, snapshot


def _commit_config(world: World, key: str, value: str) -> Path:
    section, option = key.split(".")
    config = world.reg / ".dvc" / "config"
    text = config.read_text()
    line = f"    {option} = {value}\n"
    if f"[{section}]" in text:
        text = text.replace(f"[{section}]\n", f"[{section}]\n{line}", 1)
    else:
        text += f"[{section}]\n{line}"
    config.write_text(text)
    world.git("add", ".dvc/config")
    world.git("commit", "-qm", "config", "--no-verify")
    victim = world.base / "victim"
    world.git("clone", "-q", str(world.reg), str(victim), cwd=world.base)
    return victim


def test_committed_cache_dir_outside_is_refused(world: World) -> None:
    other = world.outside / "other-project-cache"
    (other / "files" / "md5" / "ab").mkdir(parents=True)
    (other / "files" / "md5" / "ab" / ("c" * 30)).write_text("their data")
    victim = _commit_config(world, "cache.dir", str(other))
    before = snapshot(world.outside)
    for args in (
        ["commit", str(world.base / "v3"), "--name", "bot"],
        ["checkout", "bot@v0.0.1", "--to", str(world.base / "out")],
        ["gc", "--keep-last", "1"],
        ["verify", "--all"],
        ["status"],
    ):
        result = world.run(*args, cwd=victim)
        assert_clean(result)
        assert result.code == 2 and "cache.dir" in result.err, (args, result.text)
    assert snapshot(world.outside) == before


def test_relative_cache_dir_leaving_the_repository_is_refused(world: World) -> None:
    victim = _commit_config(world, "cache.dir", "../../outside/cache")
    with Repo(victim) as repo:
        try:
            repo.dvc.cache_dir  # noqa: B018
        except UntrustedConfig as exc:
            assert "outside the repository" in str(exc)
        else:
            raise AssertionError("a committed cache.dir outside the repository was honoured")


def test_the_users_own_choice_is_honoured(world: World) -> None:
    shared = world.base / "shared-cache"
    victim = _commit_config(world, "cache.dir", str(shared))
    (victim / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {shared}\n")
    with Repo(victim) as repo:
        assert repo.dvc.cache_dir == shared.resolve()
    result = world.run("commit", str(world.base / "v3"), "--name", "bot", cwd=victim)
    assert result.code == 0, result.text
    assert any((shared / "files" / "md5").rglob("*"))


def test_a_cache_dir_inside_the_repository_is_honoured(world: World) -> None:
    victim = _commit_config(world, "cache.dir", "../dvc-cache")
    with Repo(victim) as repo:
        assert repo.dvc.cache_dir == (victim / "dvc-cache").resolve()


def test_committed_local_config_or_cache_is_refused(world: World) -> None:
    (world.reg / ".dvc" / "config.local").write_text(f"[cache]\n    dir = {world.outside}\n")
    world.git("add", "-f", ".dvc/config.local")
    world.git("commit", "-qm", "sneaky", "--no-verify")
    victim = world.base / "victim"
    world.git("clone", "-q", str(world.reg), str(victim), cwd=world.base)
    with Repo(victim) as repo:
        try:
            repo.dvc.cache_dir  # noqa: B018
        except UnsafePath as exc:
            assert ".dvc/config.local" in str(exc)
        else:
            raise AssertionError("a committed .dvc/config.local was trusted")


def test_committed_site_cache_dir_outside_is_refused(world: World) -> None:
    store = world.base / "store"
    world.ok("remote", "add", "store", str(store), "--default")
    victim = _commit_config(world, "core.site_cache_dir", str(world.outside / "site"))
    # A version of the victim's own, so that push has weights to send (it opens DVC only then).
    world.ok("commit", str(world.base / "v3"), "--name", "bot", cwd=victim)
    result = world.run("push", cwd=victim)
    assert_clean(result)
    assert result.code == 2 and "site_cache_dir" in result.err
    assert not (world.outside / "site").exists()
