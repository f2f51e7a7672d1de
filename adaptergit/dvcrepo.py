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
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from adaptergit.errors import DvcError, MissingRemoteSupport
from adaptergit.fsutil import copy_file, fsync_dir
from adaptergit.hashcache import Progress

DVC_DIR = ".dvc"
CACHE_MODE = 0o444
TEMP_PREFIX = ".adaptergit-"


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
        # Byte for byte what `dvc add` writes for one file in DVC 3.
        return (
            f"outs:\n- md5: {self.md5}\n  size: {self.size}\n  hash: md5\n  path: {self.path}\n"
        ).encode()

    @classmethod
    def parse(cls, raw: bytes | str, source: str = ".dvc file") -> Pointer:
        text = raw.decode() if isinstance(raw, bytes) else raw
        md5 = re.search(r"^\s*-?\s*md5:\s*([0-9a-f]{32})\s*$", text, re.M)
        size = re.search(r"^\s*-?\s*size:\s*(\d+)\s*$", text, re.M)
        path = re.search(r"^\s*-?\s*path:\s*(.+?)\s*$", text, re.M)
        if not (md5 and path):
            raise DvcError("pointer", f"{source}: no md5 and path in it")
        return cls(md5=md5[1], size=int(size[1]) if size else -1, path=path[1].strip("'\""))


class DvcRepo:
    """DVC's view of a repository: where its cache is, and how a file is tracked."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dvc_dir = root / DVC_DIR

    @property
    def initialized(self) -> bool:
        return (self.dvc_dir / "config").exists()

    def init(self) -> list[str]:
        """Run ``dvc init`` unless it was done; return the paths it created for git."""
        if self.initialized:
            return []
        try:
            import logging

            from dvc.repo import Repo

            logger = logging.getLogger("dvc")
            level = logger.level
            logger.setLevel(logging.WARNING)  # DVC announces itself at INFO
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    Repo.init(str(self.root))
            finally:
                logger.setLevel(level)
        except Exception as exc:  # DVC raises many kinds; all are one line to the user
            raise DvcError("init", str(exc)) from exc
        return [f"{DVC_DIR}/config", f"{DVC_DIR}/.gitignore", ".dvcignore"]

    # --- the cache ----------------------------------------------------------------------------

    @property
    def cache_dir(self) -> Path:
        configured = self._config_value("cache", "dir")
        if configured:
            path = Path(os.path.expanduser(configured))
            return path if path.is_absolute() else (self.dvc_dir / path).resolve()
        return self.dvc_dir / "cache"

    def config(self) -> dict[str, dict[str, str]]:
        """The repository's DVC config (.dvc/config, then config.local), as section -> options."""
        merged: dict[str, dict[str, str]] = {}
        for name in ("config", "config.local"):
            try:
                text = (self.dvc_dir / name).read_text()
            except OSError:
                continue
            for section, options in parse_config(text, f"{DVC_DIR}/{name}").items():
                merged.setdefault(section, {}).update(options)
        return merged

    def _config_value(self, section: str, key: str) -> str | None:
        return self.config().get(section, {}).get(key)

    def cache_path(self, md5: str) -> Path:
        return self.cache_dir / "files" / "md5" / md5[:2] / md5[2:]

    def in_cache(self, md5: str) -> bool:
        return self.cache_path(md5).is_file()

    @contextlib.contextmanager
    def new_cache_object(self) -> Iterator[NewObject]:
        """A temporary file in the cache to stream weights into; `commit(md5)` files it."""
        base = self.cache_dir / "files" / "md5"
        base.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".tmp", dir=base)
        obj = NewObject(self, Path(name), os.fdopen(fd, "wb"))
        try:
            yield obj
        finally:
            obj.discard()

    def drop(self, md5: str) -> None:
        """Delete a (damaged) cache object."""
        with contextlib.suppress(FileNotFoundError):
            self.cache_path(md5).unlink()

    def remove_stale_temporaries(self) -> None:
        """Delete half-written objects of a killed command; call it holding the repository lock."""
        for tmp in (self.cache_dir / "files" / "md5").glob(f"{TEMP_PREFIX}*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()

    def place(self, md5: str, dst: Path) -> None:
        """Copy a cache object to `dst` (what ``dvc checkout`` does with the default copy link)."""
        copy_file(self.cache_path(md5), dst)

    @staticmethod
    def gitignore_entry(filename: str) -> str:
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

            listing = json.loads(self.cache_path(oid).read_bytes())
        except (OSError, ValueError):
            return set()
        if not isinstance(listing, list):
            return set()
        return {e["md5"] for e in listing if isinstance(e, dict) and isinstance(e.get("md5"), str)}


_OBJECT_ID = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
_MD5_FIELD = re.compile(r"\bmd5:\s*['\"]?([0-9a-f]{32}(?:\.dir)?)\b")


def md5s_in(text: str) -> set[str]:
    """Every object id a ``.dvc`` file or ``dvc.lock`` refers to (``.dir`` ids included)."""
    return set(_MD5_FIELD.findall(text))


class NewObject:
    """A cache object being written; it becomes visible only once its md5 is known."""

    def __init__(self, repo: DvcRepo, tmp: Path, stream: BinaryIO) -> None:
        self.repo = repo
        self.tmp = tmp
        self.stream = stream
        self.committed = False

    def commit(self, md5: str) -> Path:
        self.stream.flush()
        os.fsync(self.stream.fileno())
        self.stream.close()
        dst = self.repo.cache_path(md5)
        dst.parent.mkdir(parents=True, exist_ok=True)
        # Replace even an existing object: ours was just verified, and a damaged one gets repaired.
        os.chmod(self.tmp, CACHE_MODE)
        os.replace(self.tmp, dst)
        fsync_dir(dst.parent)
        self.committed = True
        return dst

    def discard(self) -> None:
        if not self.stream.closed:
            with contextlib.suppress(OSError):  # flushing may fail again (disk full)
                self.stream.close()
        if not self.committed:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()


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


def _missing_plugin(message: str) -> str:
    """DVC's "s3 is supported, but requires 'dvc-s3' to be installed" as adaptergit's advice."""
    found = re.search(r"(\w+) is supported, but requires '([\w-]+)'", message)
    if found is None:
        return message
    return str(MissingRemoteSupport(found[1].lower(), found[2]))


@dataclass(frozen=True, kw_only=True, slots=True)
class RemoteInfo:
    name: str
    url: str
    default: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class TransferOutcome:
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
        config = self._effective()
        default = config.get("core", {}).get("remote")
        found = {
            section[len("remote ") :]: options.get("url", "")
            for section, options in config.items()
            if section.startswith("remote ")
        }
        return [RemoteInfo(name=n, url=u, default=n == default) for n, u in sorted(found.items())]

    def default(self) -> str | None:
        return self._effective().get("core", {}).get("remote")

    def add(
        self, name: str, url: str, *, default: bool = False, options: dict[str, str] | None = None
    ) -> None:
        """Add a remote to .dvc/config; secrets (passwords, keys) go to .dvc/config.local only."""
        from dvc.config import Config

        url, password = _split_credentials(url)
        options = dict(options or {})
        if password is not None:
            options["password"] = password
        public = {k: v for k, v in options.items() if k not in SECRET_OPTIONS}
        secret = {k: v for k, v in options.items() if k in SECRET_OPTIONS}
        try:
            config = Config(dvc_dir=str(self.repo.dvc_dir))
            with config.edit("repo") as conf:
                if name in conf["remote"]:
                    raise DvcError("remote add", f"remote {name!r} already exists")
                conf["remote"][name] = {"url": url, **public}
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
        options = dict(options)
        if "url" in options:
            options["url"], password = _split_credentials(options["url"])
            if password is not None:
                options["password"] = password
        public = {k: v for k, v in options.items() if k not in SECRET_OPTIONS}
        secret = {k: v for k, v in options.items() if k in SECRET_OPTIONS}
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
        if self._dvc is not None:
            self._dvc.close()
            self._dvc = None

    @staticmethod
    def _hash_infos(md5s: Any) -> list[Any]:
        from dvc_data.hashfile.hash_info import HashInfo

        return [HashInfo("md5", m) for m in sorted(set(md5s))]

    def missing(self, md5s: Any, remote: str | None = None) -> set[str]:
        """Which of these objects the remote lacks."""
        try:
            status = self._repo().cloud.status(self._hash_infos(md5s), remote=remote)
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
        return {m for m in set(md5s) if not (base / "files" / "md5" / m[:2] / m[2:]).is_file()}

    def remove(self, md5s: Any, remote: str) -> set[str]:
        """Delete these objects from the remote through DVC's object database (as ``dvc gc -c``)."""
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
        except Exception as exc:
            raise DvcError("gc", _one_line(exc)) from exc
        return {m for m in wanted if m in present}

    def push(
        self, md5s: Any, remote: str | None = None, *, progress: Progress | None = None
    ) -> TransferOutcome:
        """Upload these cache objects to `remote` (DVC's ``push``), reporting bytes to `progress`."""
        return self._transfer("push", md5s, remote, None, progress)

    def fetch(
        self,
        md5s: Any,
        remote: str | None = None,
        total_bytes: int | None = None,
        *,
        progress: Progress | None = None,
    ) -> TransferOutcome:
        """Download these objects from `remote` into the cache (DVC's ``fetch``)."""
        return self._transfer("pull", md5s, remote, total_bytes, progress)

    def _transfer(
        self,
        direction: str,
        md5s: Any,
        remote: str | None,
        total_bytes: int | None,
        report: Progress | None,
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
        except Exception as exc:
            return TransferOutcome(
                transferred=frozenset(), failed=frozenset(wanted), error=_one_line(exc)
            )
        with _dvc_messages() as messages:
            try:
                result = self._run_transfer(direction, wanted, remote, progress)
            except Exception as exc:  # connection refused, auth, missing bucket: all end it
                return TransferOutcome(
                    transferred=frozenset(), failed=frozenset(wanted), error=_one_line(exc)
                )
            finally:
                progress.close()
        failed = {h.value for h in result.failed}
        if direction == "pull":
            failed |= {m for m in wanted if not self.repo.in_cache(m)}
        return TransferOutcome(
            transferred=frozenset(h.value for h in result.transferred),
            failed=frozenset(failed),
            error=_missing_plugin(messages[0]) if failed and messages else None,
        )

    def _run_transfer(
        self, direction: str, wanted: set[str], remote: str | None, progress: Any
    ) -> Any:
        """DVC's own push/pull between the cache and the remote, reporting bytes to `progress`.

        This is what ``DataCloud.push``/``pull`` do, with a byte-counting callback in place of
        DVC's file-counting bars (which DVC hides unless its own CLI set up logging).
        """
        from dvc_data.hashfile.db import get_index

        cloud = self._repo().cloud
        cache = self._repo().cache.local
        odb = cloud.get_remote_odb(remote, direction)
        objs = self._hash_infos(wanted)
        if direction == "push":
            return cloud.transfer(
                cache,
                odb,
                objs,
                dest_index=get_index(odb),
                cache_odb=cache,
                validate_status=cloud._log_missing,
                callback=progress,
            )
        return cloud.transfer(
            odb,
            cache,
            objs,
            src_index=get_index(odb),
            cache_odb=cache,
            verify=odb.verify,
            validate_status=cloud._log_missing,
            callback=progress,
        )


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
