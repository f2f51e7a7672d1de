"""What else a cloned registry can commit or tag (no links): one bad folder or tag stops only
itself; every other adapter and command goes on, with one warning naming what was skipped."""

from __future__ import annotations

from .conftest import World, assert_clean


def test_one_unreadable_adapter_folder_does_not_stop_a_pull_of_the_others(world: World) -> None:
    """A clone commits ``adapters/BOT`` whose manifest names an adapter adaptergit refuses:
    `pull` and `fetch` with no refs warn about that folder in one line and bring ``bot``'s
    weights all the same; `verify` still reports it."""
    origin = world.base / "origin.git"
    world.git("init", "-q", "--bare", str(origin), cwd=world.base)
    world.git("remote", "add", "origin", str(origin))
    world.ok("remote", "add", "store", str(world.base / "store"), "--default")
    world.ok("push")
    bad = world.reg / "adapters" / "BOT"
    bad.mkdir()
    manifest = (world.reg / "adapters" / "bot" / "manifest.json").read_text()
    (bad / "manifest.json").write_text(manifest.replace('"name": "bot"', '"name": "BOT"'))
    world.git("add", "adapters/BOT")
    world.git("commit", "-qm", "a stray folder", "--no-verify")
    world.git("push", "-q", "--no-verify", "origin", "main")
    victim = world.base / "victim"
    world.git("clone", "-q", "-b", "main", str(origin), str(victim), cwd=world.base)
    for command in ("fetch", "pull"):
        result = world.run(command, cwd=victim)
        assert_clean(result)
        assert result.code == 0, result.text
        warned = [line for line in result.err.splitlines() if "BOT" in line]
        assert len(warned) == 1 and warned[0].startswith("adaptergit: warning: BOT skipped"), (
            result.err
        )
    weights = victim / "adapters" / "bot" / "adapter_model.safetensors"
    assert weights.read_bytes() == (world.reg / "adapters" / "bot" / weights.name).read_bytes()
    assert world.run("verify", cwd=victim).code != 0


def test_a_version_tag_on_another_versions_commit_does_not_stop_commits(world: World) -> None:
    """``bot@v0.0.7`` tagged by a clone on v0.0.1's commit (whose manifest says v0.0.1): `log`
    skips it with a warning, and a new commit of ``bot`` follows v0.0.2, numbered past v0.0.7
    as GTO numbers, with the same one warning."""
    world.git(
        "tag",
        "-a",
        "bot@v0.0.7",
        "-m",
        "Registering artifact bot version v0.0.7",
        "bot@v0.0.1^{commit}",
    )
    result = world.run("log")
    assert_clean(result)
    assert result.code == 0 and "bot@v0.0.7 skipped" in result.err, result.text
    result = world.run("commit", str(world.base / "v3"), "--name", "bot")
    assert_clean(result)
    assert result.code == 0 and result.out.startswith("bot@v0.0.8 "), result.text
    assert "bot@v0.0.7 skipped" in result.err
    manifest = world.git("show", "bot@v0.0.8:adapters/bot/manifest.json")
    assert '"parent": "v0.0.2"' in manifest
