"""The DVC side, and the only module that talks to DVC.

Weights live in DVC's own cache layout (``.dvc/cache/files/md5/ab/cdef...``, read-only files) and
are described by the same ``.dvc`` pointer files that ``dvc add`` writes, so ``dvc checkout``,
``dvc status``, ``dvc push`` and ``dvc pull`` work on them unchanged. Writing the pointer and the
cache object here lets a commit hash and copy the weights in one read; the DVC library itself is
imported only for what needs it (``dvc init``, remotes).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from adaptergit import txn
from adaptergit.errors import (
    AdapterGitError,
    DvcError,
    FileSystemError,
    MissingRemoteSupport,
    UnsafePath,
    UntrustedConfig,
)
from adaptergit.fsutil import (
    WRITE_ERRNOS,
    clone,
    clone_file,
    copy_fd,
    copy_file,
    crash_point,
    fsync_dir,
    link_file,
    read_file,
    safe_path,
)
from adaptergit.hashcache import Progress, md5_sha256_of

if TYPE_CHECKING:
    import threading

DVC_DIR = ".dvc"
CACHE_MODE = 0o444
# DVC's cache.type values (dvc/config_schema.py), and its default.
LINK_TYPES = ("reflink", "hardlink", "symlink", "copy")
DEFAULT_LINK_TYPES = ("reflink", "copy")
# A DVC config or a .dvc pointer file larger than this is not one.
MAX_CONFIG_BYTES = 1 << 20
MAX_POINTER_BYTES = 64 * 1024
# Paths under .dvc/ that belong to each clone: a registry that commits them is refused.
LOCAL_ONLY = (f"{DVC_DIR}/config.local", f"{DVC_DIR}/cache", f"{DVC_DIR}/tmp")
SHARED_DIR_MODE = 0o2775  # DVC's folders in a cache with ``cache.shared = group``


_NAMED_SECTION = re.compile(r'^\s*(\w+)\s+"(.*)"\s*$')


def parse_config(text: str, source: str = ".dvc/config") -> dict[str, dict[str, str]]:
    """Read DVC's INI-style config with configobj, as DVC does (``dvc/config.py``).

    Sections come back flat: ``core``, ``cache``, and ``remote NAME`` for ``['remote "NAME"']``.

    Raises:
        DvcError: the text is not a config configobj can read.
    """
    from configobj import ConfigObj, ConfigObjError

    try:
        conf = ConfigObj(text.splitlines(), interpolation=False, list_values=False)
    except ConfigObjError as exc:
        raise DvcError("config", f"{source}: {exc}") from None
    sections: dict[str, dict[str, str]] = {}
    for name, options in conf.items():
        if not isinstance(options, dict):
            continue
        named = _NAMED_SECTION.match(name)
        key = f"{named[1].lower()} {named[2]}" if named else name.strip().lower()
        sections[key] = {
            str(k).lower(): str(v) for k, v in options.items() if not isinstance(v, dict)
        }
    return sections


@dataclass(frozen=True, kw_only=True, slots=True)
class Pointer:
    """The content of a single-output ``.dvc`` file."""

    md5: str
    size: int
    path: str

    def to_bytes(self) -> bytes:
        """The ``.dvc`` file, byte for byte what ``dvc add`` writes for one file in DVC 3.

        DVC's ``.dvc`` format (https://dvc.org/doc/user-guide/project-structure/dvc-files): one
        output with its ``md5`` (of the file's bytes, hex), ``size`` in bytes, ``hash: md5`` and
        ``path`` relative to the ``.dvc`` file.
        """
        # Byte for byte what `dvc add` writes for one file in DVC 3.
        return (
            f"outs:\n- md5: {self.md5}\n  size: {self.size}\n  hash: md5\n  path: {self.path}\n"
        ).encode()

    @classmethod
    def parse(cls, raw: bytes | str, source: str = ".dvc file") -> Pointer:
        """Read the first output of a ``.dvc`` file: its md5, size (-1 if absent) and path.

        Strict and bounded, since pointers arrive with ``git clone``: at most 64 KB of UTF-8,
        read line by line (no backtracking), the md5 32 lower-case hex digits, the size at most
        20 digits.

        Raises:
            DvcError: anything else, naming `source`.
        """
        if len(raw) > MAX_POINTER_BYTES:
            raise DvcError("pointer", f"{source}: larger than {MAX_POINTER_BYTES} bytes")
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DvcError("pointer", f"{source}: not UTF-8 text") from None
        else:
            text = raw
        found: dict[str, str] = {}
        for line in text.splitlines():
            item = line.strip()
            if item.startswith("-"):
                item = item[1:].lstrip()
            key, sep, value = item.partition(":")
            key, value = key.strip(), value.strip()
            if sep and key in ("md5", "size", "path") and key not in found:
                found[key] = value
        md5, path, size = found.get("md5", ""), found.get("path", ""), found.get("size")
        if md5.startswith(("'", '"')) and md5[-1:] == md5[:1]:
            md5 = md5[1:-1]
        if not (_MD5.fullmatch(md5) and path):
            raise DvcError("pointer", f"{source}: no md5 and path in it")
        if size is not None and not (size.isascii() and size.isdigit() and len(size) <= 20):
            raise DvcError("pointer", f"{source}: size {size[:40]!r} is not a number of bytes")
        return cls(md5=md5, size=int(size) if size else -1, path=path.strip("'\""))


_MD5 = re.compile(r"[0-9a-f]{32}")


class DvcRepo:
    """DVC's view of a repository: where its cache is, and how a file is tracked.

    Args:
        root: the work tree.
        state_dir: adaptergit's state directory, where the journals of temporary files live
            (required to write into the cache).
        tracked: which of some paths git tracks (`GitRepo.tracked`): a registry that commits
            DVC's local config, cache or scratch folder is refused.
        shared_cache: the main work tree's cache, for a linked worktree (``git worktree add``)
            whose config sets no ``cache.dir``: worktrees share it.
    """

    def __init__(
        self,
        root: Path,
        *,
        state_dir: Path | None = None,
        tracked: Callable[[Sequence[str]], list[str]] | None = None,
        shared_cache: Path | None = None,
    ) -> None:
        self.root = root
        self.dvc_dir = root / DVC_DIR
        self.state_dir = state_dir
        self._tracked = tracked
        self._cache_dir: Path | None = None
        self.shared_cache = shared_cache

    @property
    def initialized(self) -> bool:
        """Whether ``dvc init`` ran here (``.dvc/config`` exists)."""
        return (self.dvc_dir / "config").exists()

    def init(self, *, subdir: bool = False) -> list[str]:
        """Run ``dvc init`` unless it was done; return the paths it created for git.

        `subdir`: the folder is not the git repository's top level (``dvc init --subdir``).
        """
        if self.initialized:
            return []
        self._cache_dir = None
        try:
            import logging

            from dvc.repo import Repo

            logger = logging.getLogger("dvc")
            level = logger.level
            logger.setLevel(logging.WARNING)  # DVC announces itself at INFO
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    Repo.init(str(self.root), subdir=subdir)
            finally:
                logger.setLevel(level)
        except Exception as exc:  # DVC raises many kinds; all are one line to the user
            raise DvcError("init", str(exc)) from exc
        return [f"{DVC_DIR}/config", f"{DVC_DIR}/.gitignore", ".dvcignore"]

    # --- configuration, and what a clone may not decide ---------------------------------------

    def use_shared_cache(self) -> bool:
        """In a linked worktree, point plain DVC at the main work tree's cache too (``cache.dir``
        in the worktree's git-ignored ``.dvc/config.local``, as ``dvc cache dir --local``
        would); True if it was written."""
        configured = self.config().get("cache", {}).get("dir")
        if self.shared_cache is None or configured or not self.initialized:
            return False
        from configobj import ConfigObj

        path = self.dvc_dir / "config.local"
        conf = ConfigObj(str(path), interpolation=False, list_values=False)
        conf.setdefault("cache", {})["dir"] = str(self.shared_cache)
        conf.write()
        return True

    def config(self) -> dict[str, dict[str, str]]:
        """The repository's DVC config (.dvc/config, then config.local), as section -> options."""
        merged: dict[str, dict[str, str]] = {}
        for level in ("repo", "local"):
            for section, options in self._level(level).items():
                merged.setdefault(section, {}).update(options)
        return merged

    def _level(self, level: str) -> dict[str, dict[str, str]]:
        """One level of DVC's config: ``repo`` (.dvc/config), ``local``, ``global``, ``system``."""
        if level in ("repo", "local"):
            name = "config" if level == "repo" else "config.local"
            rel = f"{DVC_DIR}/{name}"
            raw = read_file(safe_path(self.root, rel), MAX_CONFIG_BYTES, display=rel)
        else:
            from dvc import dirs  # only when a committed config points outside the repository

            folder = dirs.global_config_dir() if level == "global" else dirs.system_config_dir()
            rel = str(Path(folder) / "config")
            try:
                raw = read_file(Path(rel), MAX_CONFIG_BYTES)
            except AdapterGitError:
                return {}
        if raw is None:
            return {}
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DvcError("config", f"{rel}: not UTF-8 text") from None
        return parse_config(text, rel)

    def _check_local_only(self) -> None:
        """Refuse a registry that commits DVC's local config, cache or scratch folder."""
        if self._tracked is None:
            return
        found = self._tracked(list(LOCAL_ONLY))
        if found:
            raise UnsafePath(
                found[0],
                "is tracked by git, but belongs to each clone (a registry must not supply DVC's "
                "local config, cache or scratch files); remove it with `git rm --cached`",
            )

    def _user_value(self, section: str, key: str) -> str | None:
        """`key` as the user set it in DVC's global or system config (relative to it), if any."""
        from dvc import dirs

        for level, folder in (
            ("global", dirs.global_config_dir()),
            ("system", dirs.system_config_dir()),
        ):
            value = self._level(level).get(section, {}).get(key)
            if value:
                return _resolve(value, Path(folder))
        return None

    def trusted_dir(self, section: str, key: str, default: Path | None) -> Path | None:
        """The directory DVC's `section`.`key` names, honoured the way DVC's advisories argue.

        Set in ``.dvc/config.local`` (the user's, for this clone) or in the global or system
        config: used as it is. Set in the committed ``.dvc/config``: used only inside the
        repository, or when the user's own config names the same directory, or (``cache.dir``)
        for a team's shared cache: the committed config also sets ``cache.shared``, as DVC's
        shared-cache set-up does, and the folder belongs to no other project (no git work tree
        or DVC project holds it), so it cannot be another project's cache.

        Raises:
            UntrustedConfig: the committed config names a directory outside the repository.
            UnsafePath: DVC's local config or cache is tracked by git.
        """
        self._check_local_only()
        local = self._level("local").get(section, {}).get(key)
        if local:
            return Path(_resolve(local, self.dvc_dir))
        committed = self._level("repo").get(section, {}).get(key)
        if committed:
            path = _resolve(committed, self.dvc_dir)
            if _inside(path, self.root) or self._user_value(section, key) == path:
                return Path(path)
            if (section, key) == ("cache", "dir") and self._shared_cache(path):
                return Path(path)
            raise UntrustedConfig(
                f"{DVC_DIR}/config",
                f"{section}.{key}",
                committed,
                f"If you mean it, set it for this clone: `dvc config --local {section}.{key} "
                f"{committed}`",
            )
        return default

    def _shared_cache(self, path: str) -> bool:
        """Whether a committed cache.dir outside the repository is a team's shared cache:
        ``cache.shared`` committed with it, and no project of its own around the folder."""
        if not self._level("repo").get("cache", {}).get("shared"):
            return False
        folder = Path(path)
        for parent in (folder, *folder.parents):
            if (parent / ".git").exists() or (parent / DVC_DIR / "config").exists():
                return False
        return True

    # --- the cache ----------------------------------------------------------------------------

    @property
    def cache_dir(self) -> Path:
        """The DVC cache: ``.dvc/cache`` (a linked worktree's: the main work tree's) unless DVC's
        config (trusted, see `trusted_dir`) moves it."""
        if self._cache_dir is None:
            found = self.trusted_dir("cache", "dir", self.shared_cache or self.dvc_dir / "cache")
            assert found is not None
            self._cache_dir = found
        return self._cache_dir

    def cache_path(self, md5: str) -> Path:
        """Where the cache holds object `md5`: ``files/md5/XX/REST`` (DVC 3's cache layout).

        Args:
            md5: the object's md5, 32 hex digits (``.dir`` suffix kept for directory listings).

        Returns:
            The path, whether or not the object is there.
        """
        return self.cache_dir / "files" / "md5" / md5[:2] / md5[2:]

    def in_cache(self, md5: str) -> bool:
        """Whether the cache holds object `md5` (a regular file at `cache_path`; not re-hashed)."""
        return self.cache_path(md5).is_file()

    def journal_dir(self) -> Path:
        """Where the journals of temporary files go (adaptergit's state directory)."""
        if self.state_dir is None:
            raise DvcError("cache", "no state directory to journal temporary files in")
        return self.state_dir

    def make_cache_dirs(self, path: Path) -> None:
        """Create `path` in the cache as DVC does: with ``cache.shared`` set, every new folder
        is group-writable and setgid (0o2775, whatever the umask), so that each user of a shared
        cache can add objects next to the others' (``dvc_data``'s ``LocalHashFileDB``)."""
        if not self.config().get("cache", {}).get("shared"):
            path.mkdir(parents=True, exist_ok=True)
            return
        missing = []
        while not path.exists() and path != path.parent:
            missing.append(path)
            path = path.parent
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):
                folder.mkdir(SHARED_DIR_MODE)
            with contextlib.suppress(OSError):  # another user's folder: theirs to set
                os.chmod(folder, SHARED_DIR_MODE)

    @contextlib.contextmanager
    def new_cache_object(
        self, workspace: Path | None = None, *, size: int = 0
    ) -> Iterator[NewObject]:
        """A temporary file in the cache to stream weights into; `commit(md5)` files it.

        The temporary is journaled first (`adaptergit.txn.OwnedTemps`): if this process is
        killed, the next command removes it, and nothing else in a shared cache is touched.

        Args:
            workspace: a folder on the work tree's filesystem. When `NewObject.place` will have
                to copy the object (`cache.type` allows no reflink or safe link there), the
                work-tree copy is made into a temporary file in this folder (journaled too):
                see `NewObject`.
            size: the bytes that will be written, which decides how that copy is made.
        """
        base = self.cache_dir / "files" / "md5"
        with txn.owned_temps(self.journal_dir()) as temps:
            tmp = temps.add(base / temps.name("object-"))
            try:
                self.make_cache_dirs(base)
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise FileSystemError(base, exc) from None
            obj = NewObject(self, tmp, os.fdopen(fd, "wb"), size=size)
            try:
                if workspace is not None:
                    obj.copy_alongside(temps.add(workspace / temps.name("copy-")))
                yield obj
            finally:
                obj.discard()

    def present(self, md5s: Iterable[str]) -> set[str]:
        """Which of these objects the cache holds (`in_cache` of many)."""
        base = os.path.join(self.cache_dir, "files", "md5")
        return {m for m in md5s if os.path.isfile(os.path.join(base, m[:2], m[2:]))}

    def _will_copy(self, obj: Path, workspace: Path, probe_fd: int) -> bool:
        """Whether `place` of the new object `obj` into `workspace` will end in a copy: no link
        type before ``copy`` in `link_types` works there (probed while both files are empty)."""
        for kind in self.link_types():
            if kind == "copy":
                return True
            if kind == "reflink":
                with open(obj, "rb") as source:
                    if clone(source.fileno(), probe_fd):
                        return False
            elif not writable_by_us(obj) and (
                kind == "symlink" or os.stat(obj).st_dev == os.stat(workspace).st_dev
            ):
                return False
        return True

    def drop(self, md5: str) -> None:
        """Delete a cache object that a remote is known to hold (``keep_last``)."""
        with contextlib.suppress(FileNotFoundError):
            self.cache_path(md5).unlink()

    def quarantine(self, md5: str) -> Path | None:
        """Move a damaged cache object out of DVC's way (never delete it); return where it went.

        It goes to ``.git/adaptergit/quarantine`` when on the same filesystem, else beside
        itself under a hidden name; a later fetch can then bring a good copy.
        """
        src = self.cache_path(md5)
        if not src.exists():
            return None
        candidates = []
        if self.state_dir is not None:
            candidates.append(self.state_dir / "quarantine" / f"{md5}-{os.getpid()}")
        candidates.append(src.with_name(f".{src.name}.corrupt-{os.getpid()}"))
        for dst in candidates:
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                return dst
            except OSError:
                continue
        return None

    def link_types(self) -> tuple[str, ...]:
        """DVC's ``cache.type``: how a work-tree file is made from a cache object, in order of
        preference, from ``reflink``, ``hardlink``, ``symlink``, ``copy`` (default: reflink,copy)."""
        configured = self.config().get("cache", {}).get("type", "")
        types = tuple(t.strip() for t in configured.split(",") if t.strip() in LINK_TYPES)
        return types or DEFAULT_LINK_TYPES

    def place(self, md5: str, dst: Path, *, tmp_name: str | None = None) -> str:
        """Make `dst` the work-tree file of a cache object, as ``dvc checkout`` does.

        The link types of `link_types` are tried in order. A hard or symbolic link is made only
        when the cache object is read-only to this user: the work-tree file must never be a
        writable alias of a cache object, since writing it in place (as a trainer re-saving the
        folder does) would damage every version sharing that object. Root may write any file, so
        for root those fall through to the next type. When nothing else works, a copy.

        Args:
            md5: the cache object.
            dst: the work-tree file to make (replaced atomically).
            tmp_name: the name of the temporary file in `dst`'s folder (a journal knows it).

        Returns:
            The kind made: "reflink", "hardlink", "symlink" or "copy".
        """
        src = self.cache_path(md5)
        for kind in self.link_types():
            if kind == "copy":
                break
            if kind == "reflink":
                if clone_file(src, dst, tmp_name=tmp_name):
                    return kind
            elif not writable_by_us(src) and link_file(
                src, dst, symbolic=kind == "symlink", tmp_name=tmp_name
            ):
                return kind
        return copy_file(src, dst, tmp_name=tmp_name)

    @staticmethod
    def gitignore_entry(filename: str) -> str:
        """The ``.gitignore`` line DVC writes for a tracked file beside it: ``/FILENAME``."""
        return f"/{filename}"

    # --- listing and garbage collection (adaptergit gc) -------------------------------------

    def cache_objects(self) -> dict[str, int]:
        """md5 (``.dir`` suffix kept) -> size of every object in the cache's ``files/md5`` tree."""
        base = self.cache_dir / "files" / "md5"
        found: dict[str, int] = {}
        try:
            prefixes = list(os.scandir(base))
        except FileNotFoundError:
            return found
        for prefix in prefixes:
            if len(prefix.name) != 2 or not prefix.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(prefix.path):
                oid = prefix.name + entry.name
                if _OBJECT_ID.match(oid) and entry.is_file(follow_symlinks=False):
                    found[oid] = entry.stat(follow_symlinks=False).st_size
        return found

    def remove_objects(self, md5s: Any) -> int:
        """Delete these cache objects (read-only files in writable directories); bytes freed."""
        freed = 0
        for md5 in sorted(set(md5s)):
            path = self.cache_path(md5)
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            freed += size
            with contextlib.suppress(OSError):  # DVC leaves empty prefix directories; so do we
                path.parent.rmdir()
        return freed

    def dir_entries(self, oid: str) -> set[str]:
        """md5s of the files listed by a cached ``.dir`` object (a tracked directory)."""
        try:
            import json

            raw = read_file(self.cache_path(oid), 1 << 30)
            listing = json.loads(raw) if raw is not None else None
        except (AdapterGitError, OSError, ValueError, RecursionError):
            return set()
        if not isinstance(listing, list):
            return set()
        return {e["md5"] for e in listing if isinstance(e, dict) and isinstance(e.get("md5"), str)}


def writable_by_us(path: Path) -> bool:
    """Whether this process may write `path` (always, for root): then a link to it would be a
    writable alias of a cache object."""
    return os.access(path, os.W_OK)


def _resolve(value: str, base: Path) -> str:
    """A directory named in a DVC config: ``~`` expanded, relative to the config's folder."""
    path = Path(os.path.expanduser(value))
    return os.path.realpath(path if path.is_absolute() else base / path)


def _inside(path: str | Path, root: Path) -> bool:
    """Whether `path` (resolved) is `root` or under it, links resolved on both sides."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


_OBJECT_ID = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
_MD5_FIELD = re.compile(r"\bmd5:\s*['\"]?([0-9a-f]{32}(?:\.dir)?)\b")


def md5s_in(text: str) -> set[str]:
    """Every object id a ``.dvc`` file or ``dvc.lock`` refers to (``.dir`` ids included)."""
    return set(_MD5_FIELD.findall(text))


class NewObject:
    """A cache object being written; it becomes visible only once its md5 is known.

    With `copy_alongside`, `place` moves a copy of its own into the work tree instead of copying
    the cache object then. A file of up to `BACKGROUND_COPY_MAX` bytes is copied by the kernel
    from the new object on a thread of its own, started by `written` once the bytes are in: it
    then hides behind the rest of the commit (the git objects, dvc.yaml), where as a third stream
    of the scan it would cost a 67 MB commit 30 ms. A larger file is written as the scan reads
    it (`streams`): its copy would outlast the rest of the commit, while the scan, bound by
    md5, has room for it.
    """

    # The part of a commit after the scan lasts about 50 ms; the kernel copies 150 MB in that.
    BACKGROUND_COPY_MAX = 128 * 1024 * 1024

    def __init__(self, repo: DvcRepo, tmp: Path, stream: BinaryIO, *, size: int = 0) -> None:
        self.repo = repo
        self.tmp = tmp
        self.stream = stream
        self.committed = False
        self.md5: str | None = None
        self.copy_tmp: Path | None = None
        self.copy_stream: BinaryIO | None = None
        self.copy_later = size <= self.BACKGROUND_COPY_MAX
        self._copier: threading.Thread | None = None
        self._copy_error: OSError | None = None

    @property
    def streams(self) -> list[BinaryIO]:
        """Where the weights' bytes go as they are read: the cache object, and the work-tree
        copy of a large file."""
        if self.copy_stream is None or self.copy_later:
            return [self.stream]
        return [self.stream, self.copy_stream]

    def copy_alongside(self, path: Path) -> None:
        """Prepare a work-tree copy at `path` (a journaled temporary name in a folder on the work
        tree's filesystem) if `place` would otherwise have to copy the object."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise FileSystemError(path.parent, exc) from None
        stream = os.fdopen(fd, "wb")
        # The object's mode from the start, so that the probe asks what an alias would allow.
        os.chmod(self.tmp, CACHE_MODE)
        if self.repo._will_copy(self.tmp, path.parent, fd):
            self.copy_tmp, self.copy_stream = path, stream
            return
        stream.close()
        os.unlink(path)

    def written(self) -> None:
        """Every byte is in `stream`: start the work-tree copy, if there is one, on a thread
        (`place` waits for it).

        Raises:
            FileSystemError: the bytes could not be flushed (the disk is full).
        """
        try:
            self.stream.flush()
            if self.copy_stream is None or not self.copy_later:
                return
            src = os.open(self.tmp, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in WRITE_ERRNOS:
                raise FileSystemError(self.tmp, exc) from None
            raise
        import threading  # only commits that copy start one

        size = os.fstat(src).st_size
        dst = self.copy_stream.fileno()
        self._copier = threading.Thread(
            target=self._copy, args=(src, dst, size), name="adaptergit-copy", daemon=True
        )
        self._copier.start()

    def _copy(self, src: int, dst: int, size: int) -> None:
        try:
            copy_fd(src, dst, size)  # no fsync: the cache object is the durable copy
        except OSError as exc:  # handed to the caller by `place`
            self._copy_error = exc
        finally:
            os.close(src)

    def _wait_for_copy(self) -> None:
        if self._copier is not None:
            self._copier.join()
            self._copier = None

    def commit(self, md5: str) -> Path:
        """Make the object visible under its md5: fsync, read-only, renamed into the cache.

        An existing object of that md5 is replaced (ours was just hashed; a damaged one is
        repaired).

        Args:
            md5: the md5 of the bytes written, hex.

        Returns:
            The object's path in the cache.

        Raises:
            FileSystemError: the disk is full, or the cache is not writable.
        """
        dst = self.repo.cache_path(md5)
        try:
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.stream.close()
            if self.copy_stream is not None and not self.copy_later:
                self.copy_stream.flush()
                os.fsync(self.copy_stream.fileno())
                self.copy_stream.close()
            self.repo.make_cache_dirs(dst.parent)
            # Replace even an existing object: ours was just verified, and a damaged one gets
            # repaired.
            os.chmod(self.tmp, CACHE_MODE)
            os.replace(self.tmp, dst)
        except OSError as exc:
            if exc.errno in WRITE_ERRNOS:
                raise FileSystemError(dst, exc) from None
            raise
        fsync_dir(dst.parent)
        self.committed = True
        self.md5 = md5
        return dst

    def place(self, dst: Path, *, tmp_name: str | None = None) -> str:
        """Make `dst` the work-tree file of the committed object (see `DvcRepo.place`): the copy
        written alongside when there is one, moved into place.

        Returns:
            The kind made: "reflink", "hardlink", "symlink" or "copy".

        Raises:
            FileSystemError: the copy could not be written (the disk is full).
        """
        assert self.md5 is not None, "commit the object first"
        if self.copy_tmp is not None and self.copy_stream is not None:
            self._wait_for_copy()
            copy, self.copy_tmp = self.copy_tmp, None
            error, self._copy_error = self._copy_error, None
            try:
                if error is not None:
                    raise error
                self.copy_stream.close()  # flushed: by `commit`, or it went by its descriptor
                os.chmod(copy, 0o644)
                os.replace(copy, dst)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    copy.unlink()
                if exc.errno in WRITE_ERRNOS:
                    raise FileSystemError(dst, exc) from None
                if exc is error:
                    raise
                # another filesystem after all: copied from the cache below
            else:
                fsync_dir(dst.parent)
                return "copy"
        return self.repo.place(self.md5, dst, tmp_name=tmp_name)

    def discard(self) -> None:
        """Close the streams; delete the temporaries `commit` and `place` did not use (idempotent)."""
        self._wait_for_copy()
        for stream in [self.stream, *([self.copy_stream] if self.copy_stream else [])]:
            if not stream.closed:
                with contextlib.suppress(OSError):  # flushing may fail again (disk full)
                    stream.close()
        if not self.committed:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()
        if self.copy_tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self.copy_tmp.unlink()


# --- remotes --------------------------------------------------------------------------------

# Remote options that are secrets: written only to the git-ignored .dvc/config.local.
SECRET_OPTIONS = frozenset(
    {
        "password",
        "passphrase",
        "access_key_id",
        "secret_access_key",
        "session_token",
        "token",
        "key_passphrase",
        "account_key",
        "sas_token",
        "client_secret",
        "credentialpath",
        "gdrive_client_secret",
        "ask_password",
        "keyfile",
    }
)


# DVC's plugin module for each URL scheme it supports through a separate package.
_PLUGINS = {"s3": "dvc_s3", "ssh": "dvc_ssh", "gs": "dvc_gs", "azure": "dvc_azure"}


def require_plugin(url: str) -> None:
    """Check that DVC can reach `url`: the plugin for its scheme (``dvc-s3`` for ``s3://``) loads.

    Raises:
        MissingRemoteSupport: it does not; the message names ``adaptergit[s3]`` (or the package).
    """
    found = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    plugin = _PLUGINS.get(found[1].lower()) if found else None
    if found is None or plugin is None:
        return
    import importlib

    try:
        importlib.import_module(plugin)
    except ImportError:
        raise MissingRemoteSupport(found[1].lower(), plugin.replace("_", "-")) from None


def check_remote(name: str, url: str, options: Mapping[str, str]) -> None:
    """Check, before anything is written, that DVC would take remote `name` at `url` with
    `options`: its plugin loads (`require_plugin`) and DVC's own config schema
    (``dvc.config.Config.validate``) accepts the section.

    Args:
        name: the remote's name.
        url: the remote's URL (a password in it counts as the ``password`` option).
        options: further options, as ``dvc remote modify`` takes them.

    Raises:
        MissingRemoteSupport: the URL's DVC plugin is not installed.
        DvcError: DVC's schema refuses an option (an unknown key, a bad value).
    """
    require_plugin(url)
    from dvc.config import Config

    public, secret = _split_secrets({"url": url, **options})
    try:
        Config.validate({"remote": {name: {**public, **secret}}})
    except Exception as exc:
        raise DvcError("remote add", _one_line(exc)) from exc


def _missing_plugin(message: str) -> str:
    """DVC's "s3 is supported, but requires 'dvc-s3' to be installed" as adaptergit's advice."""
    found = re.search(r"(\w+) is supported, but requires '([\w-]+)'", message)
    if found is None:
        return message
    return str(MissingRemoteSupport(found[1].lower(), found[2]))


@dataclass(frozen=True, kw_only=True, slots=True)
class RemoteInfo:
    """A DVC remote as configured.

    Attributes:
        name: the remote's name.
        url: its URL (``s3://...``, ``ssh://...``, a directory), without a password.
        default: whether it is the default remote (``core.remote``).
    """

    name: str
    url: str
    default: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class TransferOutcome:
    """What a push or fetch of cache objects did.

    Attributes:
        transferred: md5s of the objects that arrived.
        failed: md5s of those that did not.
        error: DVC's reason for the failures, on one line, if any.
    """

    transferred: frozenset[str]
    failed: frozenset[str]
    error: str | None = None


def _split_credentials(url: str) -> tuple[str, str | None]:
    """Take a password out of ``scheme://user:password@host/...``; it belongs in config.local."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    netloc = parts.hostname or ""
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc)), parts.password


def _split_secrets(options: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A remote's options as (public, secret): the `SECRET_OPTIONS`, and a password taken out of
    a ``url`` option, go to the second, for ``.dvc/config.local`` only."""
    options = dict(options)
    if "url" in options:
        options["url"], password = _split_credentials(options["url"])
        if password is not None:
            options["password"] = password
    public = {k: v for k, v in options.items() if k not in SECRET_OPTIONS}
    secret = {k: v for k, v in options.items() if k in SECRET_OPTIONS}
    return public, secret


class DvcRemotes:
    """DVC remotes of a repository, and moving cache objects to and from them.

    An old commit checked out may predate the remote's configuration; `fallback` then supplies
    the text of a newer ``.dvc/config`` (the branch the user came from) to find the remote in.
    """

    def __init__(self, repo: DvcRepo, fallback: Callable[[], str | None] | None = None) -> None:
        self.repo = repo
        self._fallback = fallback
        self._fallback_config: dict[str, dict[str, str]] | None = None
        self._dvc: Any = None

    def _effective(self) -> dict[str, dict[str, str]]:
        config = self.repo.config()
        if config.get("core", {}).get("remote") or self._fallback is None:
            return config
        if self._fallback_config is None:
            text = self._fallback()
            self._fallback_config = parse_config(text) if text else {}
        extra = {
            k: v for k, v in self._fallback_config.items() if k == "core" or k.startswith("remote ")
        }
        if not extra.get("core", {}).get("remote"):
            return config
        merged = {k: dict(v) for k, v in config.items()}
        for section, options in extra.items():
            merged.setdefault(section, {})
            for key, value in options.items():
                merged[section].setdefault(key, value)
        merged["core"]["remote"] = extra["core"]["remote"]
        return merged

    def configured(self) -> list[RemoteInfo]:
        """The remotes, sorted by name; `RemoteInfo.default` marks the default.

        Read from ``.dvc/config`` and ``.dvc/config.local`` (and a newer commit's config when
        this one predates the remote, see the class).

        Raises:
            DvcError: a config file is not valid INI.
        """
        config = self._effective()
        default = config.get("core", {}).get("remote")
        found = {
            section[len("remote ") :]: options.get("url", "")
            for section, options in config.items()
            if section.startswith("remote ")
        }
        return [RemoteInfo(name=n, url=u, default=n == default) for n, u in sorted(found.items())]

    def default(self) -> str | None:
        """The default remote's name (``core.remote``), or None.

        Raises:
            DvcError: a config file is not valid INI.
        """
        return self._effective().get("core", {}).get("remote")

    def add(
        self, name: str, url: str, *, default: bool = False, options: dict[str, str] | None = None
    ) -> None:
        """Add a remote to .dvc/config; secrets (passwords, keys) go to .dvc/config.local only.

        A password in the URL (``ssh://user:pw@host/...``) is moved to ``config.local`` too.

        Args:
            name: the remote's name.
            url: anything DVC takes as a remote URL.
            default: make it the default remote.
            options: further options (`SECRET_OPTIONS` go to ``config.local``).

        Raises:
            DvcError: a remote of that name exists, or DVC refused the config.
        """
        from dvc.config import Config

        public, secret = _split_secrets({"url": url, **(options or {})})
        try:
            config = Config(dvc_dir=str(self.repo.dvc_dir))
            with config.edit("repo") as conf:
                if name in conf["remote"]:
                    raise DvcError("remote add", f"remote {name!r} already exists")
                conf["remote"][name] = public
                if default:
                    conf["core"]["remote"] = name
            if secret:
                with config.edit("local") as conf:
                    conf["remote"].setdefault(name, {}).update(secret)
        except DvcError:
            raise
        except Exception as exc:
            raise DvcError("remote add", str(exc)) from exc

    def set_default(self, name: str) -> None:
        """Make remote `name` the default (in .dvc/config).

        Raises:
            DvcError: there is no remote `name`.
        """
        self._edit_config("remote default", name, {}, (), default=True)

    def remove_remote(self, name: str) -> None:
        """Remove remote `name` from .dvc/config and .dvc/config.local (and as the default).

        Raises:
            DvcError: there is no remote `name`.
        """
        from dvc.config import Config

        if name not in {r.name for r in self.configured()}:
            raise DvcError("remote remove", f"no remote named {name!r}")
        try:
            config = Config(dvc_dir=str(self.repo.dvc_dir))
            for level in ("repo", "local"):
                with config.edit(level) as conf:
                    conf["remote"].pop(name, None)
                    if conf["core"].get("remote") == name:
                        del conf["core"]["remote"]
        except Exception as exc:
            raise DvcError("remote remove", _one_line(exc)) from exc
        self._fallback_config = None

    def modify_remote(self, name: str, options: dict[str, str], unset: Sequence[str] = ()) -> None:
        """Set options of remote `name` (``url``, ``endpointurl``, ...) and unset others.

        Secret options (passwords, keys, a password in the URL) go to the git-ignored
        .dvc/config.local only.

        Raises:
            DvcError: there is no remote `name`, or DVC refuses an option.
        """
        self._edit_config("remote modify", name, options, unset)

    def _edit_config(
        self,
        operation: str,
        name: str,
        options: dict[str, str],
        unset: Sequence[str],
        *,
        default: bool = False,
    ) -> None:
        from dvc.config import Config

        if name not in {r.name for r in self.configured()}:
            raise DvcError(operation, f"no remote named {name!r}")
        public, secret = _split_secrets(options)
        try:
            config = Config(dvc_dir=str(self.repo.dvc_dir))
            with config.edit("repo") as conf:
                if public or unset:
                    section = conf["remote"].setdefault(name, {})
                    section.update(public)
                    for key in unset:
                        section.pop(key, None)
                if default:
                    conf["core"]["remote"] = name
            if secret or unset:
                with config.edit("local") as conf:
                    if secret:
                        conf["remote"].setdefault(name, {}).update(secret)
                    for key in unset:
                        conf["remote"].get(name, {}).pop(key, None)
                    if name in conf["remote"] and not conf["remote"][name]:
                        del conf["remote"][name]
        except Exception as exc:
            raise DvcError(operation, _one_line(exc)) from exc
        self._fallback_config = None

    def _repo(self) -> Any:
        if self._dvc is None:
            # DVC would honour whatever a committed config says: check what a clone may not
            # decide (the cache and DVC's site cache outside the repository) before opening it.
            _ = self.repo.cache_dir
            self.repo.trusted_dir("core", "site_cache_dir", None)
            from dvc.repo import Repo

            own = self.repo.config()
            effective = self._effective()
            override: dict[str, Any] = {}
            if effective != own:  # remotes known only from a newer commit's config
                override = {"core": {"remote": effective["core"]["remote"]}, "remote": {}}
                for section, options in effective.items():
                    if section.startswith("remote "):
                        override["remote"][section[len("remote ") :]] = dict(options)
            self._dvc = Repo(str(self.repo.root), config=override or None)
        return self._dvc

    def close(self) -> None:
        """Close the DVC repository opened for transfers, if any."""
        if self._dvc is not None:
            self._dvc.close()
            self._dvc = None

    @staticmethod
    def _hash_infos(md5s: Any) -> list[Any]:
        from dvc_data.hashfile.hash_info import HashInfo

        return [HashInfo("md5", m) for m in sorted(set(md5s))]

    def missing(self, md5s: Any, remote: str | None = None) -> set[str]:
        """Which of these objects the remote lacks (DVC's ``cloud.status``).

        Args:
            md5s: object ids (md5, hex).
            remote: the remote (default: the default remote).

        Returns:
            The md5s not on the remote.

        Raises:
            DvcError: the remote cannot be asked (unreachable, no credentials).
        """
        try:
            status = self._repo().cloud.status(self._hash_infos(md5s), remote=remote)
        except AdapterGitError:
            raise
        except Exception as exc:
            raise DvcError("status", _one_line(exc)) from exc
        return {h.value for h in (status.new | status.missing)} - {h.value for h in status.ok}

    def local_path(self, remote: str) -> Path | None:
        """The directory of a remote on a local filesystem, or None for any other kind."""
        url = next((r.url for r in self.configured() if r.name == remote), None)
        if url is None:
            return None
        if url.startswith("file://"):
            url = url[len("file://") :]
        elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url) or re.match(r"^[^/]+@[^/:]+:", url):
            return None
        path = Path(os.path.expanduser(url))
        # DVC stores a relative remote path relative to the config file, i.e. to .dvc/.
        return path if path.is_absolute() else (self.repo.dvc_dir / path).resolve()

    def missing_quick(self, md5s: Any, remote: str) -> set[str]:
        """`missing`, answered by stat calls alone when the remote is a local directory.

        DVC's own check of a local remote is the same existence test, but importing DVC costs
        about a second; `adaptergit status` must not.
        """
        base = self.local_path(remote)
        if base is None:
            return self.missing(md5s, remote)
        objects = os.path.join(base, "files", "md5")
        return {m for m in set(md5s) if not os.path.isfile(os.path.join(objects, m[:2], m[2:]))}

    def remove(self, md5s: Any, remote: str) -> set[str]:
        """Delete these objects from the remote through DVC's object database (as ``dvc gc -c``).

        Also removes what killed uploads of this repository left on the remote.

        Args:
            md5s: object ids (md5, hex).
            remote: the remote.

        Returns:
            The md5s that were there and were deleted.

        Raises:
            DvcError: the remote cannot be reached or changed.
        """
        wanted = sorted(set(md5s))
        if not wanted:
            return set()
        try:
            from dvc_data.hashfile.db import get_index

            odb = self._repo().cloud.get_remote_odb(remote, "gc -c", hash_name="md5")
            present = set(odb.oids_exist(wanted))
            paths = [odb.oid_to_path(m) for m in wanted if m in present]
            if paths:
                odb.fs.remove(paths)
                index = get_index(odb)
                if index is not None:
                    index.clear()
            self._recover_remote(remote, odb)
        except AdapterGitError:
            raise
        except Exception as exc:
            raise DvcError("gc", _one_line(exc)) from exc
        return {m for m in wanted if m in present}

    # --- what a killed transfer left on a remote ------------------------------------------------

    def recover_remote(self, remote: str) -> list[str]:
        """Remove what killed uploads of this repository left on `remote`; the paths removed."""
        try:
            odb = self._repo().cloud.get_remote_odb(remote, "push")
            return self._recover_remote(remote, odb)
        except AdapterGitError:
            raise
        except Exception as exc:
            raise DvcError("recover", _one_line(exc)) from exc

    def _recover_remote(self, remote: str, odb: Any) -> list[str]:
        """Clean up after dead uploads to `remote` that this repository's journals name."""
        if self.repo.state_dir is None:
            return []
        removed: list[str] = []
        for pending in txn.pending_remote_temps(self.repo.state_dir, remote):
            removed += _clean_uploads(odb, pending.mark, pending.paths, pending.data)
            txn.forget(pending)
        return removed

    def digests(self, md5s: Any, remote: str) -> dict[str, tuple[str, str] | None]:
        """md5 -> (md5, sha256) of the bytes the remote holds for each object (None if absent).

        Every object is read in full from the remote (``verify --remote --deep``).

        Raises:
            DvcError: the remote cannot be read.
        """
        import hashlib

        found: dict[str, tuple[str, str] | None] = {}
        try:
            odb = self._repo().cloud.get_remote_odb(remote, "verify")
            for md5 in sorted(set(md5s)):
                path = odb.oid_to_path(md5)
                try:
                    stream = odb.fs.open(path, "rb")
                except FileNotFoundError:
                    found[md5] = None
                    continue
                md5_hash, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
                with stream:
                    while chunk := stream.read(_REMOTE_CHUNK):
                        md5_hash.update(chunk)
                        sha.update(chunk)
                found[md5] = (md5_hash.hexdigest(), sha.hexdigest())
        except AdapterGitError:
            raise
        except Exception as exc:
            raise DvcError("verify", _one_line(exc)) from exc
        return found

    def push(
        self, md5s: Any, remote: str | None = None, *, progress: Progress | None = None
    ) -> TransferOutcome:
        """Upload these cache objects to `remote` (DVC's ``push``), reporting bytes to `progress`.

        Failures do not raise: they are in the outcome (`TransferOutcome.failed`, `error`).

        Args:
            md5s: object ids (md5, hex) in the local cache.
            remote: the remote (default: the default remote).
            progress: called with (bytes sent, bytes to send).

        Returns:
            Which objects arrived and which did not.
        """
        return self._transfer("push", md5s, remote, None, progress)

    def fetch(
        self,
        md5s: Any,
        remote: str | None = None,
        total_bytes: int | None = None,
        *,
        progress: Progress | None = None,
        expected: Mapping[str, str] | None = None,
    ) -> TransferOutcome:
        """Download these objects from `remote` into the cache (DVC's ``fetch``), checked first.

        Objects arrive in a journaled staging folder inside the cache; each must hash to its
        md5 (and to the sha256 `expected` maps it to, when given) before it is moved into the
        cache, so a corrupt remote object never reaches it (nor plain ``dvc checkout``).
        """
        return self._transfer("pull", md5s, remote, total_bytes, progress, expected or {})

    def _transfer(
        self,
        direction: str,
        md5s: Any,
        remote: str | None,
        total_bytes: int | None,
        report: Progress | None,
        expected: Mapping[str, str] | None = None,
    ) -> TransferOutcome:
        wanted = set(md5s)
        if not wanted:
            return TransferOutcome(transferred=frozenset(), failed=frozenset())
        if total_bytes is None:
            total_bytes = sum(
                self.repo.cache_path(m).stat().st_size for m in wanted if self.repo.in_cache(m)
            )
        progress = _byte_callback(report, total_bytes)
        try:
            self._repo()  # importing DVC installs its console log handlers; replace them after
        except AdapterGitError:
            raise
        except Exception as exc:
            return TransferOutcome(
                transferred=frozenset(), failed=frozenset(wanted), error=_one_line(exc)
            )
        with _dvc_messages() as messages:
            try:
                if direction == "push":
                    result = self._push(wanted, remote, progress)
                else:
                    result = self._pull(wanted, remote, progress, expected or {})
            except AdapterGitError:
                raise
            except Exception as exc:  # connection refused, auth, missing bucket: all end it
                return TransferOutcome(
                    transferred=frozenset(), failed=frozenset(wanted), error=_one_line(exc)
                )
            finally:
                progress.close()
        transferred, failed, errors = result
        if direction == "pull":
            failed |= {m for m in wanted if not self.repo.in_cache(m)}
        reasons = errors or messages
        return TransferOutcome(
            transferred=frozenset(transferred - failed),
            failed=frozenset(failed),
            error=_missing_plugin(reasons[0]) if failed and reasons else None,
        )

    def _push(
        self, wanted: set[str], remote: str | None, progress: Any
    ) -> tuple[set[str], set[str], list[str]]:
        """DVC's own push from the cache to the remote, reporting bytes to `progress`.

        This is what ``DataCloud.push`` does, with a byte-counting callback in place of DVC's
        file-counting bars (which DVC hides unless its own CLI set up logging). The partial
        uploads DVC makes on a directory remote get names marking them as this push's, and a
        journal lists the objects: if the push is killed, the next push, ``gc --remote`` or
        ``adaptergit recover`` removes exactly those partial files.
        """
        from dvc_data.hashfile.db import get_index

        cloud = self._repo().cloud
        cache = self._repo().cache.local
        name = remote or self.default() or ""
        odb = cloud.get_remote_odb(remote, "push")
        self._recover_remote(name, odb)
        objs = self._hash_infos(wanted)
        sizes = {
            odb.oid_to_path(m): self.repo.cache_path(m).stat().st_size
            for m in sorted(wanted)
            if self.repo.in_cache(m)
        }
        with txn.owned_temps(self.repo.journal_dir(), remote=name) as temps:
            temps.add_many(sizes, sizes=sizes)
            try:
                with _marked_temp_names(temps.mark):
                    result = cloud.transfer(
                        cache,
                        odb,
                        objs,
                        dest_index=get_index(odb),
                        cache_odb=cache,
                        validate_status=cloud._log_missing,
                        callback=progress,
                    )
            except BaseException:
                with contextlib.suppress(Exception):
                    _clean_uploads(odb, temps.mark, tuple(sizes), {"sizes": sizes})
                    temps.cleaned = True
                raise
            if result.failed:
                with contextlib.suppress(Exception):
                    _clean_uploads(odb, temps.mark, tuple(sizes), {"sizes": sizes})
            temps.cleaned = True
        return {h.value for h in result.transferred}, {h.value for h in result.failed}, []

    def _pull(
        self, wanted: set[str], remote: str | None, progress: Any, expected: Mapping[str, str]
    ) -> tuple[set[str], set[str], list[str]]:
        """DVC's own pull from the remote, into a staging folder; each object checked, then
        moved into the cache (see `fetch`)."""
        from dvc_data.hashfile.db import get_index
        from dvc_data.hashfile.db.local import LocalHashFileDB
        from dvc_objects.fs.local import LocalFileSystem

        cloud = self._repo().cloud
        odb = cloud.get_remote_odb(remote, "pull")
        objects = self.repo.cache_dir / "files" / "md5"
        with txn.owned_temps(self.repo.journal_dir()) as temps:
            staging_dir = temps.add(self.repo.cache_dir / temps.name("staging-"))
            try:
                staging_dir.mkdir(parents=True)
            except OSError as exc:
                raise FileSystemError(staging_dir, exc) from None
            staging = LocalHashFileDB(LocalFileSystem(), str(staging_dir))  # type: ignore[no-untyped-call]
            result = cloud.transfer(
                odb,
                staging,
                self._hash_infos(wanted),
                src_index=get_index(odb),
                validate_status=cloud._log_missing,
                callback=progress,
            )
            crash_point("fetch.staged")
            failed = {h.value for h in result.failed}
            errors: list[str] = []
            moved: set[str] = set()
            for h in result.transferred:
                md5 = h.value
                staged = Path(staging.oid_to_path(md5))  # type: ignore[no-untyped-call]
                digest = md5_sha256_of(staged)
                if digest is None or digest[0] != md5:
                    failed.add(md5)
                    errors.append(
                        f"the remote's copy of object {md5} is corrupt (its bytes do not match "
                        "its md5); it was not put in the cache"
                    )
                    continue
                if md5 in expected and digest[1] != expected[md5]:
                    failed.add(md5)
                    errors.append(
                        f"object {md5} does not match the sha256 its manifest records "
                        f"({expected[md5][:12]}, the object hashes to {digest[1][:12]})"
                    )
                dst = objects / md5[:2] / md5[2:]
                try:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    os.chmod(staged, CACHE_MODE)
                    os.replace(staged, dst)
                except OSError as exc:
                    raise FileSystemError(dst, exc) from None
                fsync_dir(dst.parent)
                crash_point("fetch.moved")
                moved.add(md5)
        return moved, failed, errors


_REMOTE_CHUNK = 4 << 20


@contextlib.contextmanager
def _marked_temp_names(mark: str) -> Iterator[None]:
    """Make the partial files DVC writes while uploading carry `mark` (``.adaptergit-ID-``).

    dvc-objects names them ``.<random>.tmp`` (``dvc_objects.fs.utils.tmp_fname``) beside the
    final object; with the journal's mark in the name, a killed upload's partial file is
    provably this repository's, and only such files are ever removed from a shared remote.
    """
    from secrets import token_urlsafe

    from dvc_objects.fs import local as fs_local
    from dvc_objects.fs import utils as fs_utils

    def tmp_fname(prefix: str = "") -> str:
        return f"{prefix}{mark}{token_urlsafe(16)}.tmp"

    saved = [(module, getattr(module, "tmp_fname")) for module in (fs_utils, fs_local)]  # noqa: B009
    for module, _original in saved:
        setattr(module, "tmp_fname", tmp_fname)  # noqa: B010
    try:
        yield
    finally:
        for module, original in saved:
            setattr(module, "tmp_fname", original)  # noqa: B010


def _clean_uploads(odb: Any, mark: str, paths: Sequence[str], data: Mapping[str, Any]) -> list[str]:
    """Remove a dead upload's leftovers on a remote: files carrying its `mark` beside the
    objects it was uploading, and any of those objects whose size is not the one it had (a
    remote that writes in place, such as SFTP, keeps the partial file under the final name)."""
    removed: list[str] = []
    sizes = data.get("sizes") or {}
    fs = odb.fs
    for parent in sorted({fs.parent(p) for p in paths}):
        try:
            entries = fs.ls(parent, detail=False)
        except FileNotFoundError:
            continue
        for entry in entries:
            if mark in fs.name(entry):
                with contextlib.suppress(FileNotFoundError):
                    fs.remove(entry)
                    removed.append(str(entry))
    for path in paths:
        want = sizes.get(path)
        if not isinstance(want, int):
            continue
        try:
            size = fs.size(path)
        except FileNotFoundError:
            continue
        if size is not None and size != want:
            with contextlib.suppress(FileNotFoundError):
                fs.remove(path)
                removed.append(str(path))
    return removed


def _byte_callback(report: Progress | None, total: int) -> Any:
    """An fsspec callback whose per-file children add up bytes moved and pass the running total
    to `report` (done, total); DVC's own bars count files and stay hidden outside its CLI."""
    from fsspec.callbacks import Callback

    done = [0]

    class Child(Callback):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self._reported = 0

        def call(self, *args: Any, **kwargs: Any) -> None:
            delta = int(self.value or 0) - self._reported
            if delta > 0:
                crash_point("transfer.bytes")  # a kill mid-transfer, for the crash-point tests
            if delta > 0 and report is not None:
                self._reported += delta
                done[0] += delta
                report(done[0], total)

    class Parent(Callback):  # type: ignore[misc]
        def branched(self, path_1: Any, path_2: Any, **kwargs: Any) -> Any:
            return Child()

    return Parent()


@contextlib.contextmanager
def _dvc_messages() -> Iterator[list[str]]:
    """Collect what DVC logs at WARNING and above instead of letting it reach stderr.

    DVC reports each failed object on its own line; adaptergit's error is one line naming the
    versions, with the first of DVC's messages as the reason.
    """
    import logging

    messages: list[str] = []

    class Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(" ".join(record.getMessage().split()))

    handler = Collector(level=logging.WARNING)
    loggers = [logging.getLogger(name) for name in ("dvc", "dvc_data", "dvc_objects")]
    saved = [(logger, logger.handlers[:], logger.propagate) for logger in loggers]
    for logger in loggers:  # DVC may have set up its own console handler: stand in for it
        logger.handlers = [handler]
        logger.propagate = False
    try:
        yield messages
    finally:
        for logger, handlers, propagate in saved:
            logger.handlers = handlers
            logger.propagate = propagate


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause).strip() and str(cause).strip() not in text:
        text = f"{text}: {str(cause).strip()}"
    return _missing_plugin(" ".join(text.split()))


@contextlib.contextmanager
def _per_object_queries(fs: Any) -> Iterator[None]:
    """Have DVC ask the remote about each object transferred, never list the remote in full.

    Past a few objects DVC lists a remote of some thousand objects whole to learn which it has
    (`dvc_objects.db.ObjectDB.oids_exist`), so pushing or fetching a few new versions would cost
    in proportion to the whole registry. Turned off as DVC's HTTP remotes have it, for the time
    of the transfer (the filesystem object is shared).
    """
    own = fs.__dict__.get("CAN_TRAVERSE")
    fs.CAN_TRAVERSE = False
    try:
        yield
    finally:
        if own is None:
            del fs.CAN_TRAVERSE
        else:
            fs.CAN_TRAVERSE = own
