"""How a commit puts the weights into the DVC cache and the work tree: DVC's ``cache.type`` link
types, never a writable alias of a cache object, and copies that survive a killed commit."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from adaptergit import Repo
from adaptergit.fsutil import copy_file
from adaptergit.txn import TEMP_MARK

from .conftest import MakeAdapter

WEIGHTS = "adapter_model.safetensors"


def set_cache_type(repo: Repo, value: str) -> None:
    with open(repo.root / ".dvc" / "config", "a") as config:
        config.write(f"[cache]\n    type = {value}\n")


def work_tree_and_object(repo: Repo, name: str) -> tuple[Path, Path]:
    version = repo.resolve(name)
    return repo.root / "adapters" / name / WEIGHTS, repo.dvc.cache_path(version.weights.md5)


def assert_not_a_writable_alias(weights: Path, obj: Path) -> None:
    """The work-tree file is its own file, or an alias this user cannot write through."""
    if weights.is_symlink() or os.stat(weights).st_ino == os.stat(obj).st_ino:
        assert os.path.samefile(weights, obj)
        assert not os.access(weights, os.W_OK)
    else:
        assert os.stat(weights).st_mode & stat.S_IWUSR


def test_default_cache_type_gives_an_independent_copy(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    src = make_adapter()
    registry.commit(src, name="bot")
    weights, obj = work_tree_and_object(registry, "bot")
    assert registry.dvc.link_types() == ("reflink", "copy")
    assert weights.read_bytes() == obj.read_bytes() == (src / WEIGHTS).read_bytes()
    assert not weights.is_symlink()
    assert os.stat(weights).st_ino != os.stat(obj).st_ino
    assert stat.S_IMODE(os.stat(weights).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(obj).st_mode) == 0o444
    # Writing the work-tree file in place (a trainer saving into the folder) spares the cache.
    with open(weights, "r+b") as f:
        f.write(b"\0" * 16)
    assert obj.read_bytes() == (src / WEIGHTS).read_bytes()


@pytest.mark.parametrize("kind", ["hardlink", "symlink", "hardlink,symlink,copy", "symlink,copy"])
def test_links_are_never_writable_aliases(
    registry: Repo, make_adapter: MakeAdapter, kind: str
) -> None:
    """As DVC's cache.type asks, but a link only where this user cannot write the object (root
    can write anything: root gets a copy)."""
    set_cache_type(registry, kind)
    src = make_adapter()
    registry.commit(src, name="bot")
    weights, obj = work_tree_and_object(registry, "bot")
    assert weights.read_bytes() == (src / WEIGHTS).read_bytes()
    assert_not_a_writable_alias(weights, obj)
    if os.geteuid() != 0 and kind.startswith("hardlink"):
        assert os.stat(weights).st_ino == os.stat(obj).st_ino
    problems = registry.verify("bot")
    assert problems == []


def test_place_follows_link_types_in_order(registry: Repo, make_adapter: MakeAdapter) -> None:
    set_cache_type(registry, "reflink,hardlink,copy")
    assert registry.dvc.link_types() == ("reflink", "hardlink", "copy")
    registry.commit(make_adapter(), name="bot")
    weights, obj = work_tree_and_object(registry, "bot")
    kind = registry.dvc.place(registry.resolve("bot").weights.md5, weights)
    assert kind in ("reflink", "hardlink", "copy")
    assert kind != "hardlink" or os.geteuid() != 0
    assert_not_a_writable_alias(weights, obj)


def test_copy_file_falls_back_to_an_ordinary_copy(tmp_path: Path) -> None:
    """Without reflinks (ext4, tmpfs) a plain copy: no file-to-file sendfile, which macOS lacks."""
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20) + b"end")
    dst = tmp_path / "sub" / "dst.bin"
    kind = copy_file(src, dst)
    assert kind in ("reflink", "copy")
    assert dst.read_bytes() == src.read_bytes()
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o644
    assert not [p for p in dst.parent.iterdir() if p.name != "dst.bin"]


@pytest.mark.parametrize("how", ["after the scan", "during the scan"])
def test_work_tree_copy_made_alongside(
    registry: Repo, make_adapter: MakeAdapter, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """With the default cache.type on a filesystem without reflinks the work-tree copy is
    made alongside (from the new cache object on a thread while the commit goes on, or for a
    large file as the scan reads it), then moved in: no temporary file stays behind."""
    from adaptergit.dvcrepo import NewObject

    if how == "during the scan":
        monkeypatch.setattr(NewObject, "BACKGROUND_COPY_MAX", 0)
    src = make_adapter()
    registry.commit(src, name="bot")
    state = registry.registry.state_dir
    assert not list(state.glob(f"{TEMP_MARK}*"))
    assert not [
        p for p in (registry.root / "adapters" / "bot").iterdir() if p.name.startswith(".a")
    ]
    weights, _obj = work_tree_and_object(registry, "bot")
    assert weights.read_bytes() == (src / WEIGHTS).read_bytes()


def test_a_killed_commits_work_tree_copy_is_removed(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    """A commit killed while it streams leaves its work-tree copy in adaptergit's state
    directory; it was journaled first, so the next command removes it."""
    import signal
    import subprocess
    import sys

    src = make_adapter()
    script = (
        "import os, signal, sys\n"
        "from adaptergit import Repo, dvcrepo\n"
        "real = dvcrepo.NewObject.commit\n"
        "def killed(self, md5):\n"
        "    assert self.copy_tmp is not None and self.copy_tmp.exists()\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "dvcrepo.NewObject.commit = killed\n"
        "Repo(sys.argv[1]).commit(sys.argv[2], name='bot')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(registry.root), str(src)])
    assert proc.returncode == -signal.SIGKILL
    state = registry.registry.state_dir
    assert list(state.glob(f"{TEMP_MARK}*"))  # the copy the killed commit was writing
    registry.commit(src, name="bot")
    assert not list(state.glob(f"{TEMP_MARK}*"))
    assert not [p for p in registry.dvc.cache_dir.rglob("*") if p.name.startswith(TEMP_MARK)]


@pytest.mark.parametrize("kind", ["hardlink", "symlink"])
def test_links_for_a_user_who_cannot_write_the_cache(
    registry: Repo, make_adapter: MakeAdapter, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """What a user other than root gets: the link itself, to the read-only object."""
    from adaptergit import dvcrepo

    monkeypatch.setattr(dvcrepo, "writable_by_us", lambda path: False)
    set_cache_type(registry, kind)
    src = make_adapter()
    registry.commit(src, name="bot")
    weights, obj = work_tree_and_object(registry, "bot")
    assert os.path.samefile(weights, obj)
    assert weights.is_symlink() == (kind == "symlink")
    assert stat.S_IMODE(os.stat(weights).st_mode) == 0o444
    assert weights.read_bytes() == (src / WEIGHTS).read_bytes()
    assert not list(registry.registry.state_dir.glob(f"{TEMP_MARK}*"))
    assert registry.verify("bot") == []
    assert registry.status().clean or registry.status().dirty == ()


def test_a_failed_work_tree_copy_changes_nothing(
    registry: Repo, make_adapter: MakeAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up while the work-tree copy is made on its thread: the commit fails with
    the one-line error, before any ref moves, and the registry is as it was."""
    import errno
    import subprocess

    from adaptergit import dvcrepo
    from adaptergit.errors import FileSystemError

    first = make_adapter(seed=1)
    registry.commit(first, name="bot")
    before = subprocess.run(
        ["git", "for-each-ref"], cwd=registry.root, capture_output=True, text=True
    ).stdout
    objects = sorted(p for p in registry.dvc.cache_dir.rglob("*") if p.is_file())

    def full(src: int, dst: int, size: int) -> None:
        os.write(dst, b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(dvcrepo, "copy_fd", full)
    with pytest.raises(FileSystemError, match="No space left"):
        registry.commit(make_adapter(seed=2), name="bot")
    after = subprocess.run(
        ["git", "for-each-ref"], cwd=registry.root, capture_output=True, text=True
    ).stdout
    assert after == before
    assert sorted(p for p in registry.dvc.cache_dir.rglob("*") if p.is_file()) == objects
    weights, _obj = work_tree_and_object(registry, "bot")
    assert weights.read_bytes() == (first / WEIGHTS).read_bytes()
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=registry.root, capture_output=True, text=True
    )
    assert status.stdout == ""
    assert not list(registry.registry.state_dir.glob(f"{TEMP_MARK}*"))


def test_a_refused_commit_stops_its_scan_and_leaves_nothing(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    """The weights are read on a thread from before the lock is taken: a commit refused
    meanwhile (a detached HEAD) stops that read and leaves no cache object or temporary."""
    import subprocess

    from adaptergit.errors import DetachedHead, InvalidInput

    registry.commit(make_adapter(seed=1), name="bot")
    objects = sorted(p for p in registry.dvc.cache_dir.rglob("*") if p.is_file())
    subprocess.run(["git", "checkout", "-q", "--detach"], cwd=registry.root, check=True)
    with pytest.raises(DetachedHead):
        registry.commit(make_adapter(seed=3), name="bot")
    subprocess.run(["git", "checkout", "-q", "-"], cwd=registry.root, check=True)
    bad = make_adapter(seed=4)
    (bad / WEIGHTS).write_bytes((bad / WEIGHTS).read_bytes()[:-4])  # cut short
    with pytest.raises(InvalidInput):  # a malformed safetensors file
        registry.commit(bad, name="bot")
    assert sorted(p for p in registry.dvc.cache_dir.rglob("*") if p.is_file()) == objects
    state = registry.registry.state_dir
    assert not list(state.glob(f"{TEMP_MARK}*"))
    assert not [p for p in state.iterdir() if p.name.startswith(("txn-", "temps-"))]
    assert registry.commit(make_adapter(seed=5), name="bot").version == "v0.0.2"


def test_copy_fd_falls_back_where_the_kernel_cannot_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`copy_fd` copies through a buffer where copy_file_range is refused (ENOSYS, EXDEV)."""
    import errno

    from adaptergit.fsutil import copy_fd

    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "src").write_bytes(data)

    def refused(*_args: object) -> int:
        raise OSError(errno.ENOSYS, "no kernel copy")

    for patch in (False, True):
        if patch:
            monkeypatch.setattr(os, "copy_file_range", refused, raising=False)
        src = os.open(tmp_path / "src", os.O_RDONLY)
        dst = os.open(tmp_path / f"dst{patch}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            copy_fd(src, dst, len(data))
        finally:
            os.close(src)
            os.close(dst)
        assert (tmp_path / f"dst{patch}").read_bytes() == data
