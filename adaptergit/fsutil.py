"""Durable file writes, safe paths and the repository lock: nothing half-written, nothing
followed out of the work tree, one writer at a time.

A registry someone else made is untrusted: ``git clone`` can put a symbolic link where adaptergit
expects ``adapters/NAME`` or ``dvc.yaml``, or a FIFO where it expects a file. `safe_path` refuses
any link on the way to a path it manages, `read_file` reads only regular files (bounded, never
following a link, never blocking on a FIFO) and `open_regular` opens one for a long read.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from adaptergit.errors import FileSystemError, InvalidInput, RepositoryBusy, UnsafePath

# Errors that only writing can cause: reported as FileSystemError naming the file written.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})

# --- fault injection (the crash-point tests) -------------------------------------------------

CRASH_ENV = "ADAPTERGIT_CRASH_AT"
CRASH_LOG_ENV = "ADAPTERGIT_CRASH_LOG"
_crash_counts: dict[str, int] = {}


def crash_point(step: str) -> None:
    """A named step of a write at which the crash-point tests kill the process.

    With ``ADAPTERGIT_CRASH_LOG=FILE`` every step passed is appended to FILE as ``STEP#N`` (its
    N-th occurrence in this process); with ``ADAPTERGIT_CRASH_AT=STEP#N`` (or ``STEP``, the
    first) the process sends itself SIGKILL there, as a power cut or ``kill -9`` would. Costs two
    environment look-ups when neither is set.
    """
    log, at = os.environ.get(CRASH_LOG_ENV), os.environ.get(CRASH_ENV)
    if not log and not at:
        return
    count = _crash_counts[step] = _crash_counts.get(step, 0) + 1
    here = f"{step}#{count}"
    if log:
        with open(log, "a") as stream:
            stream.write(here + "\n")
    if at and at in (here, step if count == 1 else None):
        os.kill(os.getpid(), signal.SIGKILL)


# --- paths a registry can booby-trap ---------------------------------------------------------


def safe_path(root: Path, rel: str | PurePosixPath) -> Path:
    """``root/rel``, refused if `rel` leaves `root` or any part of it below `root` is a symlink.

    `rel` is a POSIX path relative to the work tree (``adapters/bot/manifest.json``). Parts that
    do not exist yet are fine (they will be created as real directories and files).

    Raises:
        UnsafePath: a part of `rel` is a symbolic link (or `rel` is absolute or holds ``..``).
    """
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise UnsafePath(str(rel), "is not a path inside the work tree")
    current = root
    for i, part in enumerate(parts):
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            break
        except OSError as exc:
            raise FileSystemError(current, exc, "read") from None
        if stat.S_ISLNK(mode):
            where = "/".join(parts[: i + 1])
            raise UnsafePath(where, f"is a symbolic link (to {_link_target(current)})")
    return root.joinpath(*parts)


def safe_folder(root: Path, rel: str | PurePosixPath) -> Path:
    """`safe_path` for a folder adaptergit writes into (``adapters/NAME``): refused too when it
    exists as something other than a folder, or lies under a file (a clone may commit a file in
    its place), since nothing could be written or put back there.

    Raises:
        UnsafePath: a part of `rel` is a symbolic link, or `rel` is not (under) a folder.
    """
    path = safe_path(root, rel)
    refuse_non_folder(path, rel)
    return path


def refuse_non_folder(path: Path, display: str | PurePosixPath | Path) -> None:
    """Refuse `path` if it exists as something other than a folder or lies under a file.

    Raises:
        UnsafePath: naming `display`.
    """
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise UnsafePath(
            str(display), "lies under a file, not a folder (move that file away)"
        ) from None
    except OSError as exc:
        raise FileSystemError(path, exc, "read") from None
    if not stat.S_ISDIR(mode):
        raise UnsafePath(str(display), "is not a folder (move or delete it first)")


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def open_regular(
    path: Path, *, display: Path | str | None = None, follow: bool = False
) -> io.BufferedReader:
    """Open a regular file for reading, without following a final symlink or blocking on a FIFO.

    `follow` allows a final symlink (to a regular file): for files the user placed, such as
    weights DVC checked out as a link into its cache.

    Raises:
        FileNotFoundError: it does not exist.
        UnsafePath: it is a symbolic link, a FIFO, a device or a directory.
        FileSystemError: it cannot be opened.
    """
    name = display if display is not None else path
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafePath(name, f"is a symbolic link (to {_link_target(path)})") from None
        raise FileSystemError(name, exc, "read") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(name, f"is not a regular file ({_kind(st.st_mode)})")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        stream: io.BufferedReader = os.fdopen(fd, "rb")
        return stream
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def read_file(path: Path, max_bytes: int, *, display: Path | str | None = None) -> bytes | None:
    """The bytes of a regular file of at most `max_bytes`, or None when it does not exist.

    Never follows a final symlink and never blocks on a FIFO (check the parents with
    `safe_path`).

    Raises:
        UnsafePath: it is a symbolic link or not a regular file.
        InvalidInput: it is larger than `max_bytes`.
        FileSystemError: it cannot be read.
    """
    name = display if display is not None else path
    try:
        stream = open_regular(path, display=name)
    except (FileNotFoundError, NotADirectoryError):
        return None
    with stream:
        try:
            data = stream.read(max_bytes + 1)
        except OSError as exc:
            raise FileSystemError(name, exc, "read") from None
    if len(data) > max_bytes:
        raise InvalidInput(f"{name}: larger than {max_bytes} bytes, which no such file is")
    return data


def read_in_tree(root: Path, rel: str, max_bytes: int) -> bytes | None:
    """`read_file` of ``root/rel`` after `safe_path`: no link anywhere on the way.

    Args:
        root: the work tree.
        rel: a ``/``-separated path inside it.
        max_bytes: the largest file accepted, in bytes.

    Returns:
        The file's bytes, or None when it does not exist.

    Raises:
        UnsafePath: `rel` leaves the work tree, or a folder on the way or the file itself is a
            symbolic link (or the file is no regular file).
        InvalidInput: the file is larger than `max_bytes`.
        FileSystemError: it cannot be read.
    """
    return read_file(safe_path(root, rel), max_bytes, display=rel)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(
    path: Path, mode: int = 0o644, *, tmp_name: str | None = None
) -> Iterator[tuple[Path, int]]:
    """Yield (temp path, fd) in `path`'s directory; on success fsync and rename over `path`.

    `tmp_name` names the temporary file (a journal knows it, so recovery can remove it after a
    kill); by default a random hidden name. A full disk, a read-only filesystem or a quota while
    writing raises `FileSystemError` naming `path`.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        if tmp_name is None:  # as tempfile.mkstemp, without its import on every command
            tmp = path.parent / f".{path.name}.{os.urandom(8).hex()}.tmp"
        else:
            tmp = path.parent / tmp_name
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()  # left by this same journal before a kill
        fd = os.open(tmp, flags, 0o600)
    except OSError as exc:
        raise FileSystemError(path, exc) from None
    try:
        yield tmp, fd
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            raise FileSystemError(path, exc) from None
        raise


def atomic_write(
    path: Path, data: bytes, mode: int = 0o644, *, tmp_name: str | None = None
) -> None:
    """Write `data` to `path` so that readers see either the old or the whole new file.

    A temporary file in the same folder is written, fsynced and renamed over `path`, and the
    folder fsynced (`atomic_output`).

    Args:
        path: the file.
        data: its new content.
        mode: the new file's permission bits.
        tmp_name: the temporary file's name (a journal's, so recovery can remove it).

    Raises:
        FileSystemError: writing failed (the disk is full, permissions), naming `path`.
    """
    with atomic_output(path, mode, tmp_name=tmp_name) as (_tmp, fd):
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]


def copy_file(src: Path, dst: Path, mode: int = 0o644, *, tmp_name: str | None = None) -> str:
    """Copy src to dst atomically, letting the kernel move the bytes.

    A reflink (the new file shares the source's blocks until either is written: btrfs, XFS) when
    the filesystem can, else an ordinary copy (`shutil.copyfile`: sendfile on Linux, fcopyfile on
    macOS, where file-to-file sendfile does not exist). Either way `dst` is a file of its own with
    `mode`. `src` must be a regular file (a FIFO or a symlink is refused, see `open_regular`);
    `tmp_name` as for `atomic_output`.

    Returns:
        "reflink" or "copy": how the bytes got there.
    """
    with open_regular(src) as fin, atomic_output(dst, mode, tmp_name=tmp_name) as (tmp, fd):
        if clone(fin.fileno(), fd):
            return "reflink"
        import shutil  # not on the hooks' start-up path

        shutil.copyfile(src, tmp)
    return "copy"


def clone_file(src: Path, dst: Path, mode: int = 0o644, *, tmp_name: str | None = None) -> bool:
    """Reflink src to dst atomically; False (and nothing written) where the filesystem cannot.

    A reflink (Linux ``FICLONE``, as DVC's ``cache.type = reflink``) shares the source's blocks
    until either file is written: no bytes are copied.

    Args:
        src: a regular file (a symbolic link or FIFO is refused, see `open_regular`).
        dst: the file to make, replaced atomically.
        mode: its permission bits.
        tmp_name: the temporary file's name in `dst`'s folder (a journal knows it).

    Returns:
        True if `dst` now shares `src`'s blocks.

    Raises:
        UnsafePath: `src` is a symbolic link or not a regular file.
        FileSystemError: `src` cannot be read or `dst`'s folder written.
    """
    try:
        with open_regular(src) as fin, atomic_output(dst, mode, tmp_name=tmp_name) as (_tmp, fd):
            if not clone(fin.fileno(), fd):
                raise _NoClone
    except _NoClone:
        return False
    return True


class _NoClone(Exception):
    """Unwinds `atomic_output` (deleting its temporary file) when a reflink is not possible."""


def link_file(src: Path, dst: Path, *, symbolic: bool = False, tmp_name: str | None = None) -> bool:
    """Replace dst with a hard link (or a symbolic link to the absolute path) of src, atomically.

    `tmp_name` names the link made first in `dst`'s folder (a journal knows it).

    Returns:
        False, with dst untouched, when the link cannot be made (another filesystem, no link
        support, a permission).
    """
    tmp = dst.parent / (tmp_name or f".{dst.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # left by this same journal before a kill
        if symbolic:
            os.symlink(os.path.abspath(src), tmp)
        else:
            os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    fsync_dir(dst.parent)
    return True


# A copy starts the kernel's write-back this often, so that the final fsync waits only for the
# last stretch instead of the whole file (the kernel's own write-back may not start for 30 s).
WRITEBACK_EVERY = 32 * 1024 * 1024


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Have the kernel start writing these bytes of `fd`'s file to disk, and return at once.

    POSIX_FADV_DONTNEED on dirty pages queues their write-back (Linux); the pages being written
    stay cached. Elsewhere (no posix_fadvise: macOS) nothing is done: the fsync does it all.

    Args:
        fd: a file open for writing.
        offset, length: the byte range written.
    """
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with contextlib.suppress(OSError):  # advice: a failure changes nothing
            advise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def copy_fd(src_fd: int, dst_fd: int, size: int) -> None:
    """Copy the first `size` bytes of `src_fd`'s file to `dst_fd` (both at offset 0), in the
    kernel where it can (Linux ``copy_file_range``), else through a 1 MiB buffer.

    Args:
        src_fd: a regular file open for reading, positioned at 0.
        dst_fd: a new, empty regular file open for writing.
        size: bytes to copy.

    Raises:
        OSError: reading or writing failed (ENOSPC when the disk is full), or the file ended
            before `size` bytes.
    """
    done = 0
    kernel = hasattr(os, "copy_file_range")
    while done < size:
        if kernel:
            try:
                n = os.copy_file_range(src_fd, dst_fd, size - done)
            except OSError as exc:  # no kernel copy here (EXDEV before Linux 5.3, ENOSYS)
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                kernel = False
                continue
        else:
            data = os.read(src_fd, min(size - done, 1 << 20))
            n = len(data)
            view = memoryview(data)
            while view:
                view = view[os.write(dst_fd, view) :]
        if n == 0:
            raise OSError(errno.EIO, "the file ended early")
        done += n


def clone(src_fd: int, dst_fd: int) -> bool:
    """Reflink: make dst_fd's file share src_fd's blocks (Linux FICLONE; both files open, the
    source for reading). False where the filesystem or the platform cannot."""
    try:
        fcntl.ioctl(dst_fd, _FICLONE, src_fd)
    except OSError:
        return False
    return True


_FICLONE = 0x40049409  # Linux ioctl: share the source's extents (btrfs, XFS); fails elsewhere


class RepoLock:
    """An exclusive flock on a file: released by the kernel even if the holder is killed."""

    def __init__(self, path: Path, timeout: float | None = None) -> None:
        self.path = path
        env = os.environ.get("ADAPTERGIT_LOCK_TIMEOUT")
        self.timeout = (
            float(env) if timeout is None and env else (timeout if timeout is not None else 10.0)
        )
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, retrying with backoff up to `timeout` seconds; write our pid in it.

        Raises:
            RepositoryBusy: another process held it for the whole `timeout` (its pid named when
                known).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = ""
                    with contextlib.suppress(OSError, ValueError):
                        holder = f"pid {int(os.pread(fd, 32, 0).decode().split()[0])}"
                    os.close(fd)
                    raise RepositoryBusy(self.path, holder) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Release the lock (a no-op when not held)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RepoLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
