"""Rewriting an adapter's directory so that a failure, or a kill, leaves it as it was.

Before the first write, the files about to be replaced are moved aside into the git directory and a
journal names them. Success deletes the journal; failure, or the next command after a kill, puts
the old files back (unless the journal's tag shows the version was recorded after all).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from adaptergit.fsutil import atomic_write, fsync_dir

JOURNAL = "journal.json"
MOVED = "moved"


class DirTransaction:
    def __init__(
        self,
        state_dir: Path,
        target: Path,
        files: Iterable[str],
        tag: str | None = None,
        new_paths: Iterable[Path] = (),
    ):
        self.dir = state_dir / f"txn-{os.getpid()}-{time.monotonic_ns()}"
        self.target = target
        self.files = sorted(set(files))
        self.tag = tag
        # Files elsewhere (a cache object) that this transaction may create: removed on rollback.
        self.new_paths = [str(p) for p in new_paths if not p.exists()]
        self._open = False

    def __enter__(self) -> DirTransaction:
        backup = self.dir / "backup"
        backup.mkdir(parents=True)
        atomic_write(
            self.dir / JOURNAL,
            json.dumps(
                {
                    "target": str(self.target),
                    "files": self.files,
                    "tag": self.tag,
                    "new_paths": self.new_paths,
                }
            ).encode(),
        )
        self._open = True
        for name in self.files:
            src = self.target / name
            if src.exists() or src.is_symlink():
                _move(src, backup / name)
        fsync_dir(backup)
        atomic_write(self.dir / MOVED, b"")  # from here on, target files may be new ones
        self.target.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.done()
        else:
            self.rollback()

    def done(self) -> None:
        if self._open:
            shutil.rmtree(self.dir, ignore_errors=True)
            self._open = False

    def rollback(self) -> None:
        if self._open:
            _restore(self.dir, self.target, self.files, self.new_paths)
            self._open = False


def _move(src: Path, dst: Path) -> None:
    try:
        os.replace(src, dst)
    except OSError:  # another filesystem: copy, then remove
        shutil.copy2(src, dst)
        src.unlink()


def _restore(txn_dir: Path, target: Path, files: list[str], new_paths: list[str]) -> None:
    for path in new_paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    backup = txn_dir / "backup"
    writing_started = (txn_dir / MOVED).exists()
    for name in files:
        dst = target / name
        if writing_started or (backup / name).exists():
            with contextlib.suppress(FileNotFoundError):
                dst.unlink()
        if (backup / name).exists():
            target.mkdir(parents=True, exist_ok=True)
            _move(backup / name, dst)
    with contextlib.suppress(OSError):
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
    shutil.rmtree(txn_dir, ignore_errors=True)


def recover(state_dir: Path, recorded: Callable[[str], bool]) -> list[Path]:
    """Finish or undo transactions a killed command left behind; call it holding the lock."""
    handled = []
    for txn_dir in sorted(state_dir.glob("txn-*")):
        try:
            journal = json.loads((txn_dir / JOURNAL).read_text())
        except (OSError, ValueError):
            shutil.rmtree(txn_dir, ignore_errors=True)  # died before its first write
            continue
        tag = journal.get("tag")
        if tag and recorded(tag):
            shutil.rmtree(txn_dir, ignore_errors=True)
        else:
            _restore(
                txn_dir,
                Path(journal["target"]),
                list(journal["files"]),
                list(journal.get("new_paths", [])),
            )
        handled.append(txn_dir)
    return handled
