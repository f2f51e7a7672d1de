"""Journals: every write that can be interrupted converges, by the next command or ``recover``.

Two kinds of journal live in adaptergit's state directory (``.git/adaptergit``):

- `DirTransaction` rewrites files of one folder (``adapters/NAME``, ``dvc.yaml`` at the root,
  ``.dvc/config``). Before the first write, the files about to be replaced are moved (or copied)
  aside into the journal's folder and the journal names them, which existed, and the temporary
  names its copies use. Success deletes the journal; failure, or recovery after a kill, puts the
  old files back and removes the temporaries -- unless the commit the journal was for was
  published after all. That is decided by the exact object the journal recorded just before the
  ref transaction (the version's tag object, or the commit HEAD moves to): a tag of the same name
  made by anyone else (a lightweight tag, a teammate's tag fetched meanwhile) does not count.
- `OwnedTemps` lists temporary files and folders made outside such a folder (a new cache object,
  the sibling folder of ``checkout --to``, a fetch's staging area, uploads on a DVC remote), with
  the owning process. Recovery removes them only once that process is gone, and only paths whose
  names carry the journal's id: another command's or another repository's temporaries, in a shared
  cache for instance, are never touched.

Restoring is idempotent, so a kill during recovery is recovered by the next command too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptergit.fsutil import atomic_write, crash_point, fsync_dir, refuse_non_folder

JOURNAL = "journal.json"
TXN_PREFIX = "txn-"
TEMPS_PREFIX = "temps-"
# Every temporary name adaptergit gives a file carries this mark and its journal's id.
TEMP_MARK = ".adaptergit-"
_MAX_JOURNAL_BYTES = 1 << 20


def _new_id() -> str:
    return f"{os.getpid()}-{os.urandom(4).hex()}"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of process `pid` (``/proc/PID/stat`` field 22), None if gone.

    With the pid it identifies a process even after its pid is reused.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stream:
            raw = stream.read()
    except FileNotFoundError:
        return None
    except OSError:
        return ""  # no /proc: the pid alone must do
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else ""


def _owner() -> dict[str, Any]:
    return {"pid": os.getpid(), "start": _start_time(os.getpid())}


def _alive(owner: Any) -> bool:
    """Whether the process a journal names is still running (and is not this one's namesake)."""
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return False
    pid = owner["pid"]
    if pid == os.getpid():
        return owner.get("start") == _start_time(pid)
    started = _start_time(pid)
    if started is None:
        return False
    if started == "":
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return started == owner.get("start")


def _read_journal(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as stream:
            raw = stream.read(_MAX_JOURNAL_BYTES + 1)
        data = json.loads(raw)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_journal(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, json.dumps(data).encode())


def _remove(path: Path) -> None:
    """Remove a file or a folder tree, whatever its permissions (cache objects are read-only)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, onerror=_make_writable_and_retry)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


def _make_writable_and_retry(func: Callable[..., Any], name: str, _exc: Any) -> None:
    with contextlib.suppress(OSError):
        os.chmod(os.path.dirname(name), 0o755)
        func(name)


# --- rewriting a folder -------------------------------------------------------------------------


class DirTransaction:
    """Replace files of `target` all or nothing; see the module's doc.

    Args:
        state_dir: adaptergit's state directory (journals live there).
        target: the folder whose files are replaced (its path already checked by the caller).
        files: the names of the files that may be replaced, created or removed.
        tag: the version tag the commit this belongs to will publish, if any (informational:
            what counts is the object `published` records).
        new_paths: files elsewhere (a cache object) this transaction may create; removed on
            rollback if they did not exist before.
        copy: copy the files aside instead of moving them, for files edited in place (by DVC).
    """

    def __init__(
        self,
        state_dir: Path,
        target: Path,
        files: Iterable[str],
        tag: str | None = None,
        new_paths: Iterable[Path] = (),
        *,
        copy: bool = False,
    ):
        self.id = _new_id()
        self.copy = copy
        self.dir = state_dir / f"{TXN_PREFIX}{self.id}"
        self.target = target
        self.files = sorted(set(files))
        self.tag = tag
        self.new_paths = [str(p) for p in new_paths if not p.exists()]
        self._journal: dict[str, Any] = {}
        self._open = False

    def tmp_name(self, filename: str) -> str:
        """The temporary name of `filename`'s new copy in `target`: known to the journal."""
        return f".{filename}{TEMP_MARK}{self.id}.tmp"

    def __enter__(self) -> DirTransaction:
        refuse_non_folder(self.target, self.target)  # before the journal: nothing to undo
        backup = self.dir / "backup"
        backup.mkdir(parents=True)
        present = [f for f in self.files if os.path.lexists(self.target / f)]
        self._journal = {
            "version": 2,
            "owner": _owner(),
            "target": str(self.target),
            "files": self.files,
            "present": present,
            "temps": [self.tmp_name(f) for f in self.files],
            "tag": self.tag,
            "new_paths": self.new_paths,
        }
        _write_journal(self.dir / JOURNAL, self._journal)
        self._open = True
        crash_point("txn.journaled")
        for name in present:
            if self.copy:
                _copy_aside(self.target / name, backup / name)
            else:
                _move(self.target / name, backup / name)
            crash_point("txn.moved-aside")
        fsync_dir(backup)
        fsync_dir(self.target)
        self.target.mkdir(parents=True, exist_ok=True)
        return self

    def write(self, filename: str, data: bytes) -> None:
        """Write one of the transaction's files (atomically, under its journaled temp name).

        Args:
            filename: a file name in the target folder, one the transaction was opened for.
            data: its new content.

        Raises:
            FileSystemError: writing failed (the disk is full, permissions).
        """
        atomic_write(self.target / filename, data, tmp_name=self.tmp_name(filename))
        crash_point("txn.wrote")

    def published(self, ref: str, oid: str, commit: str) -> None:
        """Record, just before the ref transaction, what will mean success: `ref` (a version's
        tag, or HEAD) pointing at exactly `oid` (that tag object, or the new `commit`)."""
        if not self._open:
            return
        self._journal.update(ref=ref, oid=oid, commit=commit)
        _write_journal(self.dir / JOURNAL, self._journal)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.done()
        else:
            self.rollback()

    def done(self) -> None:
        """Commit: drop the backup and the journal, keeping the new files (idempotent)."""
        if self._open:
            for temp in self._journal.get("temps", []):
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    (self.target / temp).unlink()
            shutil.rmtree(self.dir, ignore_errors=True)
            self._open = False

    def rollback(self) -> None:
        """Undo: put the backed-up files back as they were and drop the journal (idempotent)."""
        if self._open:
            _restore(self.dir, self._journal)
            self._open = False


def _copy_aside(src: Path, dst: Path) -> None:
    """Copy a file (or a symlink itself) into the backup, whole or not at all."""
    tmp = dst.with_name(dst.name + ".partial")
    shutil.copy2(src, tmp, follow_symlinks=False)
    os.replace(tmp, dst)


def _move(src: Path, dst: Path) -> None:
    """Move a file (or a symlink itself), atomically: a copy across filesystems lands whole."""
    try:
        os.replace(src, dst)
    except OSError:  # another filesystem: copy to a temporary, rename, then remove
        tmp = dst.with_name(dst.name + ".partial")
        shutil.copy2(src, tmp, follow_symlinks=False)
        os.replace(tmp, dst)
        src.unlink()


def _restore(txn_dir: Path, journal: dict[str, Any]) -> None:
    """Put the files a transaction moved aside back, remove what it created; idempotent."""
    target = Path(journal["target"])
    backup = txn_dir / "backup"
    present = set(journal.get("present", journal["files"]))
    for path in journal.get("new_paths", []):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(path)
    for temp in journal.get("temps", []):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            (target / temp).unlink()
    for name in journal["files"]:
        dst = target / name
        if (backup / name).exists() or (backup / name).is_symlink():
            refuse_non_folder(target, target)  # what was moved aside cannot go back yet
            target.mkdir(parents=True, exist_ok=True)
            _move(backup / name, dst)  # over the new file, if any
            crash_point("txn.restored")
        elif name not in present:  # created by the transaction
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                dst.unlink()
        # else: present before and already put back by an earlier (killed) recovery
    with contextlib.suppress(OSError):
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
    shutil.rmtree(txn_dir, ignore_errors=True)


# --- temporaries outside a folder under transaction ---------------------------------------------


class OwnedTemps:
    """Temporary paths of this process, journaled before they are created; see the module's doc.

    Use `name` for every temporary's file name (it carries the journal's id), `add` a path before
    creating it, and `discard` or rename it when done; closing removes whatever is left and the
    journal. `remote` names a DVC remote when the paths are on it (removed by
    `recover_remote_temps`, which can reach it).
    """

    def __init__(self, state_dir: Path, remote: str | None = None) -> None:
        self.id = _new_id()
        self.journal = state_dir / f"{TEMPS_PREFIX}{self.id}.json"
        self.remote = remote
        self.paths: list[str] = []
        self.data: dict[str, Any] = {}
        # A remote's temporaries cannot be removed from here: their journal stays for
        # `recover_remote_temps` unless the caller marks them cleaned up.
        self.cleaned = remote is None

    @property
    def mark(self) -> str:
        """What every temporary name of this journal contains."""
        return f"{TEMP_MARK}{self.id}-"

    def name(self, stem: str = "") -> str:
        """A new hidden temporary name: ``.adaptergit-<id>-<stem><random>.tmp``."""
        return f"{self.mark}{stem}{os.urandom(4).hex()}.tmp"

    def add(self, path: Path | str, **data: Any) -> Path:
        """Journal `path` (and any `data` recovery needs) before it is created; returns it."""
        self.paths.append(str(path))
        self.data.update(data)
        self._save()
        return Path(path)

    def add_many(self, paths: Iterable[Path | str], **data: Any) -> None:
        """Journal several paths at once (see `add`)."""
        self.paths.extend(str(p) for p in paths)
        self.data.update(data)
        self._save()

    def _save(self) -> None:
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        _write_journal(
            self.journal,
            {
                "version": 1,
                "owner": _owner(),
                "id": self.id,
                "remote": self.remote,
                "paths": self.paths,
                "data": self.data,
            },
        )

    def close(self) -> None:
        """Remove the temporaries still there and the journal (a remote's: once `cleaned`)."""
        if self.remote is None:
            for path in self.paths:
                _remove(Path(path))
        if self.cleaned or not self.paths:
            with contextlib.suppress(FileNotFoundError):
                self.journal.unlink()

    def __enter__(self) -> OwnedTemps:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def owned_temps(state_dir: Path, remote: str | None = None) -> Iterator[OwnedTemps]:
    """`OwnedTemps` as a context manager, closed on exit (see `OwnedTemps.close`).

    Args:
        state_dir: adaptergit's state folder, where the journal goes.
        remote: the DVC remote the temporaries are on, if they are on one (their journal then
            stays until they are cleaned up there).
    """
    temps = OwnedTemps(state_dir, remote)
    try:
        yield temps
    finally:
        temps.close()


@dataclass(frozen=True, kw_only=True, slots=True)
class Recovered:
    """One thing recovery did.

    Attributes:
        kind: ``rolled-back`` (an interrupted write undone), ``completed`` (its commit had been
            published: the new files kept) or ``removed-temporaries``.
        target: the folder or what the temporaries were for.
        paths: the files put back, or the temporaries removed.
    """

    kind: str
    target: str
    paths: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, kw_only=True, slots=True)
class RemoteTemps:
    """Temporaries a dead process left on a DVC remote, for `recover_remote_temps`."""

    journal: Path
    remote: str
    mark: str
    paths: tuple[str, ...]
    data: dict[str, Any]


def pending(state_dir: Path) -> bool:
    """Whether any journal is there at all (one directory listing: cheap enough for reads)."""
    try:
        return any(e.name.startswith((TXN_PREFIX, TEMPS_PREFIX)) for e in os.scandir(state_dir))
    except OSError:
        return False


def recover(
    state_dir: Path,
    ref_target: Callable[[str], str | None],
    completed: Callable[[str, list[Path]], None] | None = None,
) -> list[Recovered]:
    """Finish or undo what killed commands left behind; call it holding the repository lock.

    Args:
        state_dir: adaptergit's state directory.
        ref_target: the object id a ref (``refs/tags/NAME``, ``HEAD``) points at, unpeeled, or
            None; a transaction counts as published only if its ref points at the very object it
            recorded.
        completed: called with (commit, files) for a published transaction's files, whose
            index entries the killed command had not updated yet.

    Returns:
        What was done, in order.
    """
    done: list[Recovered] = []
    for txn_dir in sorted(state_dir.glob(f"{TXN_PREFIX}*")):
        journal = _read_journal(txn_dir / JOURNAL)
        if journal is None or not isinstance(journal.get("files"), list):
            shutil.rmtree(txn_dir, ignore_errors=True)  # died before its first write
            continue
        if _alive(journal.get("owner")):
            continue  # a live command's (one not holding the lock: never ours to undo)
        ref, recorded = journal.get("ref"), journal.get("oid")
        target = str(journal.get("target", ""))
        if isinstance(ref, str) and recorded and ref_target(ref) == recorded:
            for temp in journal.get("temps", []):
                with contextlib.suppress(OSError):
                    (Path(target) / temp).unlink()
            if completed is not None and isinstance(journal.get("commit"), str):
                completed(journal["commit"], [Path(target) / f for f in journal["files"]])
            shutil.rmtree(txn_dir, ignore_errors=True)
            done.append(Recovered(kind="completed", target=target))
        else:
            _restore(txn_dir, journal)
            done.append(Recovered(kind="rolled-back", target=target, paths=tuple(journal["files"])))
    for path in sorted(state_dir.glob(f"{TEMPS_PREFIX}*.json")):
        journal = _read_journal(path)
        if journal is None:
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        if journal.get("remote") is not None or _alive(journal.get("owner")):
            continue
        mark = f"{TEMP_MARK}{journal.get('id')}-"
        removed = []
        for temp in journal.get("paths", []):
            temp_path = Path(str(temp))
            if mark in temp_path.name and (temp_path.exists() or temp_path.is_symlink()):
                _remove(temp_path)
                removed.append(str(temp_path))
        with contextlib.suppress(OSError):
            path.unlink()
        if removed:
            done.append(
                Recovered(kind="removed-temporaries", target=str(path.name), paths=tuple(removed))
            )
    return done


def pending_remote_temps(state_dir: Path, remote: str | None = None) -> list[RemoteTemps]:
    """Journals of dead processes' temporaries on DVC remotes (on `remote` only, if given).

    Journals of live processes, and unreadable ones, are left out.

    Args:
        state_dir: adaptergit's state folder.
        remote: only this remote's (default: every remote's).
    """
    found = []
    for path in sorted(state_dir.glob(f"{TEMPS_PREFIX}*.json")):
        journal = _read_journal(path)
        if journal is None or not isinstance(journal.get("remote"), str):
            continue
        if remote is not None and journal["remote"] != remote:
            continue
        if _alive(journal.get("owner")):
            continue
        found.append(
            RemoteTemps(
                journal=path,
                remote=journal["remote"],
                mark=f"{TEMP_MARK}{journal.get('id')}-",
                paths=tuple(str(p) for p in journal.get("paths", [])),
                data=dict(journal.get("data") or {}),
            )
        )
    return found


def forget(temps: RemoteTemps) -> None:
    """Drop a remote temporaries journal once they are cleaned up."""
    with contextlib.suppress(FileNotFoundError):
        temps.journal.unlink()


__all__ = [
    "TEMP_MARK",
    "DirTransaction",
    "OwnedTemps",
    "Recovered",
    "RemoteTemps",
    "forget",
    "owned_temps",
    "pending",
    "pending_remote_temps",
    "recover",
]
