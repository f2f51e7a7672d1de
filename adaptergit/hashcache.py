"""A persistent cache of file hashes keyed by file identity, so a second use never re-reads weights.

Like DVC's state database, an entry is trusted only while the file's identity is unchanged:
its real path, size, mtime_ns, inode and device. Storage is one SQLite database rather than many
small JSON files because SQLite gives atomic, crash-safe updates and safe concurrent use by several
processes (WAL journal, busy timeout) in a single file that is easy to bound and to throw away;
`sqlite3` is stdlib and imported only when the cache is first touched.

The cache is an optimisation and never fails its caller: a missing, unwritable, locked or corrupt
database is logged at debug level and treated as a miss (a corrupt one is rebuilt once).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging
    import sqlite3


def _log() -> logging.Logger:
    """This module's logger; `logging` is imported on the first message (3 ms of start-up)."""
    import logging

    return logging.getLogger(__name__)


# progress(done_bytes, total_bytes): called as files are read; the CLI draws a bar from it.
Progress = Callable[[int, int], None]
_CHUNK = 8 << 20

DB_NAME = "hashes.sqlite"
# A write landing in the same timestamp tick as the file's last change leaves mtime unchanged
# (git's "racily clean" problem). Hashes of files modified this recently before they were stat'ed
# are not stored; 2 s covers the coarsest common granularity (FAT, some network filesystems).
RACY_WINDOW_NS = 2_000_000_000
MAX_ENTRIES = 20_000
BUSY_TIMEOUT_S = 2.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hashes (
    path TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    device INTEGER NOT NULL,
    value TEXT NOT NULL,
    stored_ns INTEGER NOT NULL,
    PRIMARY KEY (path, kind)
)
"""
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


@dataclass(frozen=True, kw_only=True, slots=True)
class FileIdentity:
    """What a cached hash is tied to, plus when it was observed (for the racy-mtime check)."""

    path: str
    size: int
    mtime_ns: int
    inode: int
    device: int
    observed_ns: int

    @classmethod
    def of(
        cls,
        path: Path | str,
        stat: os.stat_result | None = None,
        *,
        observed_ns: int | None = None,
        resolved: bool = False,
    ) -> FileIdentity:
        """Stat `path`, or take `stat` (fstat of an open descriptor) made at `observed_ns`.

        Args:
            path: the file; links are resolved, the identity is the real file's.
            stat: its stat result, when the caller has one (taken from the open file it hashes).
            observed_ns: when `stat` was taken, ``time.time_ns()`` (default: now).
            resolved: `path` is already its own real path (no symbolic link on the way), which
                spares the `os.path.realpath` walk (a stat per component; `status` does it per
                adapter).

        Raises:
            OSError: `path` cannot be stat'ed (only without `stat`).
        """
        if observed_ns is None:
            observed_ns = time.time_ns()
        real = os.fspath(path) if resolved else os.path.realpath(path)
        st = stat if stat is not None else os.stat(real)
        return cls(
            path=real,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            inode=st.st_ino,
            device=st.st_dev,
            observed_ns=observed_ns,
        )

    def same_file(self, other: FileIdentity) -> bool:
        """Whether `other` is the same unchanged file: equal real path, size in bytes,
        mtime_ns, inode and device (the key DVC's state database uses, plus the path).
        """
        return (self.path, self.size, self.mtime_ns, self.inode, self.device) == (
            other.path,
            other.size,
            other.mtime_ns,
            other.inode,
            other.device,
        )

    @property
    def racy(self) -> bool:
        """True when a same-size rewrite could still go unnoticed by mtime."""
        return self.mtime_ns >= self.observed_ns - RACY_WINDOW_NS


def cache_dir() -> Path:
    """$ADAPTERGIT_CACHE_DIR, else $XDG_CACHE_HOME/adaptergit, else ~/.cache/adaptergit."""
    explicit = os.environ.get("ADAPTERGIT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "adaptergit"


class HashCache:
    """File hashes by (kind, file identity), stored as JSON values in a SQLite database."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else cache_dir()
        self.path = self.directory / DB_NAME
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._disabled = False
        self._rebuilt = False

    def __repr__(self) -> str:
        return f"HashCache({str(self.directory)!r})"

    def get(self, path: Path, kind: str, *, identity: FileIdentity | None = None) -> Any | None:
        """The value stored for `path` and `kind`, or None unless the file is unchanged since.

        `identity` (from FileIdentity.of) saves a stat when the caller already holds one.
        """
        try:
            ident = identity if identity is not None else FileIdentity.of(path)
        except OSError as exc:
            _log().debug("hash cache: cannot stat %s: %s", path, exc)
            return None
        row = self._run(
            "get",
            lambda conn: conn.execute(
                "SELECT size, mtime_ns, inode, device, value FROM hashes WHERE path = ? AND kind = ?",
                (ident.path, kind),
            ).fetchone(),
        )
        if row is None or tuple(row[:4]) != (ident.size, ident.mtime_ns, ident.inode, ident.device):
            return None
        try:
            return json.loads(row[4])
        except ValueError as exc:
            _log().debug("hash cache: unreadable value for %s (%s): %s", ident.path, kind, exc)
            return None

    def put(
        self, path: Path, kind: str, value: Any, *, identity: FileIdentity | None = None
    ) -> None:
        """Remember `value` for the current content of `path`.

        Pass the `identity` observed *before* reading the file: the value is then stored only if
        the file is still that same file now, so a change during hashing is never cached.
        """
        try:
            now = FileIdentity.of(path)
        except OSError as exc:
            _log().debug("hash cache: cannot stat %s: %s", path, exc)
            return
        ident = identity if identity is not None else now
        if not ident.same_file(now):
            _log().debug("hash cache: %s changed while it was read; not cached", ident.path)
            return
        if ident.racy:
            _log().debug("hash cache: %s was modified too recently to trust mtime", ident.path)
            return
        try:
            text = json.dumps(value, separators=(",", ":"), sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            _log().debug("hash cache: value for %s is not JSON: %s", ident.path, exc)
            return

        def store(conn: sqlite3.Connection) -> None:
            with conn:  # commits, or rolls back on error
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(
                    "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        ident.path,
                        kind,
                        ident.size,
                        ident.mtime_ns,
                        ident.inode,
                        ident.device,
                        text,
                        time.time_ns(),
                    ),
                )
                conn.execute(
                    "DELETE FROM hashes WHERE rowid NOT IN "
                    "(SELECT rowid FROM hashes ORDER BY stored_ns DESC LIMIT ?)",
                    (MAX_ENTRIES,),
                )

        self._run("put", store)

    def close(self) -> None:
        """Close the database connection (reopened if the cache is used again)."""
        with self._lock:
            self._close_locked()

    # --- connection handling ----------------------------------------------------------------

    def _run(self, what: str, operation: Any) -> Any:
        """Run `operation(connection)`; on any database trouble log it and answer None."""
        import sqlite3

        with self._lock:
            while not self._disabled:
                try:
                    return operation(self._connection())
                except (OSError, sqlite3.Error) as exc:
                    self._close_locked()
                    _log().debug("hash cache %s: %s failed: %s", self.path, what, exc)
                    code = getattr(exc, "sqlite_errorcode", None)
                    if code not in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
                        return None  # locked, read-only, disk full...: a miss this time
                    if not self._discard_corrupt(exc):
                        self._disabled = True
            return None

    def _connection(self) -> sqlite3.Connection:
        import sqlite3

        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None  # a connection inherited over fork must not be used
        self.directory.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                try:  # persistent once set; a read-only cache can still answer lookups
                    conn.execute("PRAGMA journal_mode = WAL")
                except sqlite3.OperationalError as exc:
                    _log().debug("hash cache %s: cannot enable WAL: %s", self.path, exc)
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _close_locked(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:  # closing a broken connection must not fail the caller
                _log().debug("hash cache %s: close failed: %s", self.path, exc)
        self._conn = None

    def _discard_corrupt(self, exc: Exception) -> bool:
        """Remove a corrupt database once so that the next connection starts a fresh one."""
        if self._rebuilt:
            return False
        self._rebuilt = True
        _log().debug("hash cache %s is corrupt (%s); starting a new one", self.path, exc)
        try:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        except OSError as err:
            _log().debug("hash cache %s: cannot remove it: %s", self.path, err)
            return False
        return True


def default_cache() -> HashCache:
    """A cache in the default directory (see `cache_dir`), read from the environment now."""
    return HashCache()


SHA256_KIND = "sha256"


def file_sha256(
    path: Path,
    cache: HashCache | None = None,
    compute: Callable[[Path], str | None] | None = None,
) -> str | None:
    """sha256 of a file, read only when its identity (size, mtime, inode) changed since the last
    time; None if it cannot be read. `compute` hashes it when needed (default: a plain read)."""
    cache = cache if cache is not None else default_cache()
    try:
        identity = FileIdentity.of(
            path
        )  # taken before reading: a file changed meanwhile is not cached
    except OSError:
        return None
    found = cache.get(path, SHA256_KIND, identity=identity)
    if isinstance(found, str):
        return found
    digest = (compute or _read_sha256)(path)
    if digest is not None:
        cache.put(path, SHA256_KIND, digest, identity=identity)
    return digest


def _read_sha256(path: Path) -> str | None:
    return sha256_of(path)


class _Meter:
    """Adds up bytes hashed by several threads and reports them to a Progress callback."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self.progress = progress
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        if self.progress is None:
            return
        with self._lock:
            self.done += n
            self.progress(self.done, self.total)


def sha256_of(
    path: Path, progress: Progress | None = None, *, _meter: _Meter | None = None
) -> str | None:
    """The sha256 of a file's bytes, read in full whatever its mode; None if it is unreadable.

    Args:
        path: the file.
        progress: called with (bytes done, bytes in all) as the file is read.
    """
    import hashlib

    if _meter is None and progress is not None:
        try:
            _meter = _Meter(os.stat(path).st_size, progress)
        except OSError:
            return None
    from adaptergit.errors import AdapterGitError
    from adaptergit.fsutil import open_regular

    digest = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    try:
        with open_regular(path, follow=True) as f:  # a FIFO would block for ever
            while n := f.readinto(buf):
                digest.update(view[:n])
                if _meter is not None:
                    _meter.add(n)
    except (OSError, AdapterGitError):
        return None
    return digest.hexdigest()


def md5_sha256_of(path: Path) -> tuple[str, str] | None:
    """(md5, sha256) of a regular file's bytes in one read (md5 on a second thread, since
    hashlib releases the GIL); None if it cannot be read, is a symlink or is no regular file.

    md5 is DVC's object id, sha256 what a manifest records: checking both tells a damaged
    object (md5 differs) from a manifest that is wrong about a sound one (only sha256 differs).
    """
    import hashlib
    from concurrent.futures import Future, ThreadPoolExecutor

    from adaptergit.errors import AdapterGitError
    from adaptergit.fsutil import open_regular

    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    try:
        with open_regular(path) as f, ThreadPoolExecutor(max_workers=1) as pool:
            pending: Future[None] | None = None
            while chunk := f.read(_CHUNK):
                if pending is not None:
                    pending.result()
                pending = pool.submit(md5.update, chunk)
                sha.update(chunk)
            if pending is not None:
                pending.result()
    except (OSError, AdapterGitError):
        return None
    return md5.hexdigest(), sha.hexdigest()


def sha256_files(paths: Sequence[Path], progress: Progress | None = None) -> list[str | None]:
    """sha256 of each path (None for one that cannot be read), reading them on a few threads:
    hashlib releases the GIL on large buffers.

    Args:
        paths: the files.
        progress: called with (bytes done, bytes in all) over all of them.
    """
    total = 0
    for p in paths:
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    meter = _Meter(total, progress)
    workers = max(1, min(len(paths), os.cpu_count() or 1, 4))
    if workers == 1:
        return [sha256_of(p, _meter=meter) for p in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: sha256_of(p, _meter=meter), paths))
