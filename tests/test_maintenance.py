"""verify, status and gc with real git, real DVC and a real directory DVC remote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from adaptergit import Repo
from adaptergit.cli import cli, main
from adaptergit.errors import TransferFailed, WeightsMissing
from adaptergit.ops import hooks
from adaptergit.ops.verify import (
    CACHE_CORRUPT,
    CACHE_MISSING,
    LOST,
    REMOTE_MISSING,
    WORKTREE_MISMATCH,
)

from .conftest import MakeAdapter
from .helpers import git

WEIGHTS = "adapter_model.safetensors"


def dvc(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["dvc", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def flip_last_byte(path: Path) -> None:
    """Change one byte, keeping size, mode and mtime: what a bad disk or a stray write leaves."""
    st = path.stat()
    path.chmod(0o644)
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        byte = f.read(1)[0]
        f.seek(-1, os.SEEK_END)
        f.write(bytes([byte ^ 0x01]))
    path.chmod(st.st_mode & 0o777)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def md5_of(repo: Repo, ref: str) -> str:
    version = repo.resolve(ref)
    assert version.manifest is not None
    return version.manifest.weights.md5


def cache_files(repo: Repo) -> set[str]:
    return set(repo.dvc.cache_objects())


def with_remote(repo: Repo, tmp_path: Path) -> Path:
    store = tmp_path / "dvc-remote"
    store.mkdir()
    repo.remote_add("store", str(store), default=True)
    return store


def on_remote(store: Path, md5: str) -> bool:
    return (store / "files" / "md5" / md5[:2] / md5[2:]).is_file()


# --- verify -----------------------------------------------------------------------------------


def test_verify_catches_a_flipped_byte_in_a_read_only_cache_object(
    registry: Repo, make_adapter: MakeAdapter
) -> None:
    registry.commit(make_adapter(seed=1), name="v")
    registry.commit(make_adapter(seed=2), name="v")
    assert registry.verify() == [] and registry.verify(all=True) == []
    obj = registry.dvc.cache_path(md5_of(registry, "v@v0.0.1"))
    assert not os.access(obj, os.W_OK) or (obj.stat().st_mode & 0o222) == 0
    flip_last_byte(obj)
    assert (obj.stat().st_mode & 0o777) == 0o444
    problems = registry.verify("v@v0.0.1")
    assert [(p.ref, p.kind) for p in problems] == [("v@v0.0.1", CACHE_CORRUPT)]
    assert str(obj) in problems[0].line
    assert [p.kind for p in registry.verify(all=True)] == [CACHE_CORRUPT]
    assert registry.verify() == []  # the work tree holds v0.0.2, which is sound
    # The CLI: one line per problem, exit status 1.
    result = CliRunner().invoke(
        cli, ["-C", str(registry.root), "verify", "--all"], catch_exceptions=False
    )
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "v@v0.0.1: DVC cache object" in result.output
    data = json.loads(
        CliRunner().invoke(cli, ["-C", str(registry.root), "verify", "--all", "--json"]).output
    )
    assert data["ok"] is False and data["problems"][0]["kind"] == CACHE_CORRUPT


def test_verify_catches_changed_work_tree_weights_and_missing_cache(
    registry: Repo, make_adapter: MakeAdapter
) -> None:
    registry.commit(make_adapter(seed=1), name="w")
    weights = registry.root / "adapters" / "w" / WEIGHTS
    flip_last_byte(weights)
    problems = registry.verify()
    assert [(p.ref, p.kind, p.path) for p in problems] == [
        ("w@v0.0.1", WORKTREE_MISMATCH, f"adapters/w/{WEIGHTS}")
    ]
    registry.checkout("w", force=True)
    assert registry.verify() == []
    registry.dvc.drop(md5_of(registry, "w"))
    assert [p.kind for p in registry.verify("w")] == [CACHE_MISSING]
    assert registry.verify(all=True) == []  # an --all sweep does not count absent objects


def test_verify_remote_finds_versions_missing_there(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    store = with_remote(registry, tmp_path)
    registry.commit(make_adapter(seed=1), name="r")
    registry.commit(make_adapter(seed=2), name="r")
    registry.push(["r@v0.0.1"])
    problems = registry.verify(remote=True)
    assert [(p.ref, p.kind) for p in problems] == [("r@v0.0.2", REMOTE_MISSING)]
    assert "adaptergit push" in problems[0].detail
    assert registry.verify("r@v0.0.1", remote=True) == []
    registry.dvc.drop(md5_of(registry, "r@v0.0.2"))
    assert [(p.ref, p.kind) for p in registry.verify(all=True, remote=True)] == [("r@v0.0.2", LOST)]
    assert main(["-C", str(registry.root), "verify", "--remote"]) == 1
    with pytest.raises(TransferFailed, match="not in the local cache"):
        registry.push()  # v0.0.2 cannot be uploaded any more: it is lost
    assert on_remote(store, md5_of(registry, "r@v0.0.1"))


# --- status -----------------------------------------------------------------------------------


def test_status_reports_changes_unpushed_missing_and_hooks(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    with_remote(registry, tmp_path)
    for name, seeds in (("a", (1,)), ("b", (2, 3)), ("c", (4,))):
        for seed in seeds:
            registry.commit(make_adapter(seed=seed), name=name)
    registry.push()
    report = registry.status()
    assert report.clean, report
    assert [(a.name, a.state) for a in report.adapters] == [
        ("a", "clean"),
        ("b", "clean"),
        ("c", "clean"),
    ]
    assert report.remote == "store" and report.versions == 4

    (registry.root / "adapters/a/metrics.json").write_text('{"loss": 0.5}\n')
    registry.checkout("b@v0.0.1")
    (registry.root / "adapters/c" / WEIGHTS).unlink()
    registry.commit(make_adapter(seed=5), name="d")  # not pushed
    registry.commit(make_adapter(seed=6), name="e")
    registry.dvc.drop(md5_of(registry, "e"))  # in neither the cache nor the remote
    shutil.rmtree(registry.root / "adapters/e")
    hooks.uninstall(registry.git)
    git(registry.root, "config", "--unset", "diff.adaptergit.textconv")

    report = registry.status()
    states = {a.name: (a.state, a.current, a.latest, a.changed) for a in report.adapters}
    assert states == {
        "a": ("modified", "v0.0.1", "v0.0.1", ("metrics.json",)),
        "b": ("behind", "v0.0.1", "v0.0.2", ()),
        "c": ("missing-weights", "v0.0.1", "v0.0.1", (WEIGHTS,)),
        "d": ("clean", "v0.0.1", "v0.0.1", ()),
        "e": ("deleted", None, "v0.0.1", ()),
    }
    assert report.unpushed == ("d@v0.0.1",)
    assert report.missing == ("e@v0.0.1",)
    assert report.hooks_missing == (
        "pre-commit",
        "post-checkout",
        "post-merge",
        "post-rewrite",
        "pre-push",
    )
    assert not report.driver_configured and not report.clean

    result = CliRunner().invoke(cli, ["-C", str(registry.root), "status"], catch_exceptions=False)
    assert result.exit_code == 0
    out = result.output
    assert "modified" in out and "changed since v0.0.1: metrics.json" in out
    assert "at v0.0.1, latest v0.0.2" in out
    assert "not on DVC remote 'store' (1): d@v0.0.1 (`adaptergit push d@v0.0.1`)" in out
    assert "e@v0.0.1" in out and "hooks not installed" in out
    assert all(len(line) <= 80 for line in out.splitlines() if "hooks" not in line)
    data = json.loads(
        CliRunner().invoke(cli, ["-C", str(registry.root), "status", "--json"]).output
    )
    assert data["unpushed"] == ["d@v0.0.1"] and data["clean"] is False


def test_status_hashes_only_weights_whose_stat_changed(
    registry: Repo, make_adapter: MakeAdapter
) -> None:
    for index, name in enumerate(("p", "q", "s")):
        registry.commit(make_adapter(seed=index + 1), name=name)
    past = 1_600_000_000
    for name in ("p", "q", "s"):  # older than the racy-mtime window, so hashes may be cached
        os.utime(registry.root / "adapters" / name / WEIGHTS, (past, past))
    hashed: list[int] = []

    def count(done: int, total: int) -> None:
        if done == total:
            hashed.append(total)

    assert registry.status(progress=count).clean  # no remote: nothing to push to
    assert len(hashed) == 3
    hashed.clear()
    report = registry.status(progress=count)
    assert hashed == [] and {a.state for a in report.adapters} == {"clean"}
    weights = registry.root / "adapters" / "q" / WEIGHTS
    flip_last_byte(weights)
    os.utime(weights, (past + 10, past + 10))
    report = registry.status(progress=count)
    assert len(hashed) == 1
    assert [(a.name, a.changed) for a in report.adapters if a.state != "clean"] == [
        ("q", (WEIGHTS,))
    ]


# --- gc ---------------------------------------------------------------------------------------


def snapshot_cache(repo: Repo) -> dict[str, bytes]:
    return {oid: repo.dvc.cache_path(oid).read_bytes() for oid in repo.dvc.cache_objects()}


def test_gc_keeps_what_it_must_and_removes_only_the_rest(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    root = registry.root
    order = [("x", 1), ("y", 2), ("x", 3), ("x", 4), ("y", 5)]
    for name, seed in order:
        registry.commit(make_adapter(seed=seed), name=name)
    x1 = registry.resolve("x@v0.0.1")
    git(
        root,
        "tag",
        "-a",
        "x#prod#1",
        "-m",
        "Assigning stage prod to artifact x version v0.0.1",
        x1.commit,
    )
    git(root, "branch", "exp", registry.resolve("y@v0.0.1").commit)  # its tree: x v0.0.1, y v0.0.1
    # The user's own DVC data: committed, and added but not committed.
    (root / "data").mkdir()
    (root / "data" / "train.bin").write_bytes(os.urandom(4096))
    (root / "scratch.bin").write_bytes(os.urandom(2048))
    dvc(root, "add", "-q", "data/train.bin", "scratch.bin")
    git(root, "add", "data/train.bin.dvc", "data/.gitignore")
    git(root, "commit", "-q", "-m", "training data")
    before = snapshot_cache(registry)
    assert len(before) == 7

    assert registry.gc().removed == ()  # no --keep-last: every registered version is kept
    # No DVC remote: the weights gc would drop are their only copy, kept without --force.
    careful = registry.gc(keep_last=1)
    assert careful.removed == () and [i.md5 for i in careful.only_copy] == [
        md5_of(registry, "x@v0.0.2")
    ]
    assert snapshot_cache(registry) == before
    dry = registry.gc(keep_last=1, dry_run=True, force=True)
    x2 = md5_of(registry, "x@v0.0.2")
    assert [(i.md5, i.versions) for i in dry.removed] == [(x2, ("x@v0.0.2",))]
    assert dry.freed == (root / ".dvc" / "cache" / "files" / "md5" / x2[:2] / x2[2:]).stat().st_size
    assert snapshot_cache(registry) == before  # a dry run changes nothing

    report = registry.gc(keep_last=1, force=True)
    assert [i.md5 for i in report.removed] == [x2] and not report.dry_run
    after = snapshot_cache(registry)
    assert after == {k: v for k, v in before.items() if k != x2}  # nothing else touched
    for ref in ("x@v0.0.1", "x@v0.0.3", "y@v0.0.1", "y@v0.0.2"):
        registry.checkout(ref, to=tmp_path / "out" / ref.replace("@", "-"))
    assert set(report.kept) == {"x@v0.0.1", "x@v0.0.3", "y@v0.0.1", "y@v0.0.2"}
    with pytest.raises(WeightsMissing):
        registry.checkout("x@v0.0.2", to=tmp_path / "gone")
    assert "changed" not in dvc(root, "status", "data/train.bin.dvc", "scratch.bin.dvc")

    # Without the branch and the stage, only the latest versions remain.
    git(root, "branch", "-D", "exp")
    report = registry.gc(keep_last=1, keep_stages=False, force=True)
    assert sorted(v for i in report.removed for v in i.versions) == ["x@v0.0.1", "y@v0.0.1"]
    left = snapshot_cache(registry)
    assert len(left) == 4  # x v0.0.3, y v0.0.2, and the user's two files
    (root / "data" / "train.bin").unlink()
    dvc(root, "checkout", "-q", "data/train.bin.dvc")
    assert (root / "data" / "train.bin").stat().st_size == 4096


def test_gc_honours_dropped_tags_and_dvc_directories(
    registry: Repo, make_adapter: MakeAdapter
) -> None:
    root = registry.root
    for seed in (1, 2, 3):
        registry.commit(make_adapter(seed=seed), name="z")
    x1, x2 = md5_of(registry, "z@v0.0.1"), md5_of(registry, "z@v0.0.2")
    # The user exported v0.0.1's weights into a DVC-tracked directory of their own.
    (root / "exports").mkdir()
    registry.checkout("z@v0.0.1", to=root / "exports" / "z1")
    dvc(root, "add", "-q", "exports")
    git(root, "add", "exports.dvc", ".gitignore")
    git(root, "commit", "-q", "-m", "exports")
    git(root, "tag", "-d", "z@v0.0.1", "z@v0.0.2")  # the user drops two versions
    report = registry.gc(force=True)
    assert [i.md5 for i in report.removed] == [x2]
    assert registry.dvc.in_cache(x1)  # still named by exports/ (a .dir listing)
    assert main(["-C", str(root), "gc", "--dry-run"]) == 0


def test_gc_remote_removes_only_dropped_versions_there(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    store = with_remote(registry, tmp_path)
    for seed in (1, 2):
        registry.commit(make_adapter(seed=seed), name="m")
    registry.push()
    m1, m2 = md5_of(registry, "m@v0.0.1"), md5_of(registry, "m@v0.0.2")
    listing = sorted(p.name for p in store.rglob("*") if p.is_file())
    dry = registry.gc(keep_last=1, remote=True, dry_run=True)
    assert [i.md5 for i in dry.remote_removed] == [m1] and dry.remote == "store"
    assert sorted(p.name for p in store.rglob("*") if p.is_file()) == listing
    runner = CliRunner()
    out = runner.invoke(
        cli,
        ["-C", str(registry.root), "gc", "--keep-last", "1", "--remote", "--dry-run"],
        catch_exceptions=False,
    ).output
    assert (
        "would remove 1 object(s)" in out and "from DVC remote 'store'" in out and "m@v0.0.1" in out
    )

    registry.gc(keep_last=1, remote=True)
    assert not on_remote(store, m1) and on_remote(store, m2)
    assert not registry.dvc.in_cache(m1) and registry.dvc.in_cache(m2)
    assert [(p.ref, p.kind) for p in registry.verify(remote=True)] == [("m@v0.0.1", LOST)]
    registry.dvc.drop(m2)  # the kept version still comes back from the remote
    registry.checkout("m@v0.0.2", to=tmp_path / "back")


@pytest.mark.parametrize("command", ["verify", "status", "gc"])
def test_help_describes_each_command(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0 and "Usage: " in result.output
    assert len(result.output.split("\n\n")[1].strip()) > 20


def test_gc_keep_last_plan_keeps_weights_a_kept_version_shares(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    """Five versions, v0.0.3 = v0.0.2's weights with another config: `--keep-last 3` drops only
    v0.0.1's object, the dry run names exactly that, and the shared object stays."""
    second = make_adapter(seed=2)
    third = tmp_path / "third"
    shutil.copytree(second, third)
    config = json.loads((third / "adapter_config.json").read_text())
    config["lora_alpha"] = config["lora_alpha"] * 2
    (third / "adapter_config.json").write_text(json.dumps(config))
    for folder in (make_adapter(seed=1), second, third, make_adapter(seed=4), make_adapter(seed=5)):
        registry.commit(folder, name="bot")
    assert md5_of(registry, "bot@v0.0.2") == md5_of(registry, "bot@v0.0.3")
    before = snapshot_cache(registry)
    kept = registry.gc(keep_last=3)  # no DVC remote: the only copy stays without --force
    assert kept.removed == () and [v for i in kept.only_copy for v in i.versions] == ["bot@v0.0.1"]
    dry = registry.gc(keep_last=3, force=True, dry_run=True)
    assert [(i.md5, i.versions) for i in dry.removed] == [
        (md5_of(registry, "bot@v0.0.1"), ("bot@v0.0.1",))
    ]
    assert snapshot_cache(registry) == before
    report = registry.gc(keep_last=3, force=True)
    assert [i.md5 for i in report.removed] == [md5_of(registry, "bot@v0.0.1")]
    assert set(snapshot_cache(registry)) == set(before) - {md5_of(registry, "bot@v0.0.1")}
    assert registry.verify("bot@v0.0.3") == []
