"""The registry core: one repository's git, DVC, lock, and index of versions and stages.

Every operation (`adaptergit.ops`) works on a `Registry`: it reads versions through the index and
batched blob reads, takes `Registry.lock` for any write, and calls `Registry.refresh` after moving
tags. Nothing here imports an operation. Reads go to git objects, never to checked-out files.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from adaptergit import strictjson
from adaptergit.dvcrepo import DVC_DIR, DvcRemotes, DvcRepo
from adaptergit.errors import (
    AdapterGitError,
    AdapterGitWarning,
    AdapterWithdrawn,
    InvalidManifest,
    NotAnAdapterVersion,
    NotARepository,
    RepositoryBusy,
    UnknownAdapter,
    UnknownRevision,
    UnknownStage,
    UnknownVersion,
)
from adaptergit.fsutil import RepoLock, crash_point
from adaptergit.gitrepo import GitRepo
from adaptergit.index import Index, Registration, Withdrawal
from adaptergit.layout import (
    ADAPTERS_DIR,
    CONFIG_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    REGISTRY_CONFIG,
    adapter_path,
)
from adaptergit.manifest import Manifest, Version
from adaptergit.refs import Ref, validate_name
from adaptergit.txn import Recovered, pending, recover

# A config or metrics file larger than this is not one (PEFT's configs are a few kB).
MAX_SIDE_FILE_BYTES = 16 * 1024 * 1024


class Registry:
    """An adapter registry: a git work tree set up by ``adaptergit init``.

    Args:
        path: the work tree or any folder inside it.

    Raises:
        NotARepository: `path` is not in a git work tree, or the work tree has no registry.
    """

    def __init__(self, path: Path | str = ".") -> None:
        self.git = GitRepo(path)
        self.root = self.git.root
        if not (self.root / REGISTRY_CONFIG).is_file():
            raise NotARepository(self.root)
        # adaptergit's own state (lock, journals, temporary files) lives in the git directory.
        self.state_dir = self.git.git_dir / "adaptergit"
        main = self.git.main_worktree()  # a linked worktree shares the main one's cache
        shared = main / self.git.prefix / DVC_DIR / "cache" if main is not None else None
        self.dvc = DvcRepo(
            self.root, state_dir=self.state_dir, tracked=self.git.tracked, shared_cache=shared
        )
        self._index: Index | None = None
        # What this process found to finish or undo (see `adaptergit.txn.recover`).
        self.recovered: list[Recovered] = []
        self._remotes: DvcRemotes | None = None

    def close(self) -> None:
        """Release the DVC repository opened for transfers, if any."""
        if self._remotes is not None:
            self._remotes.close()
            self._remotes = None
        self.git.close()

    # --- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the repository's write lock; first finish or undo what a killed command left.

        Raises:
            RepositoryBusy: another command held the lock for longer than the timeout
                (``ADAPTERGIT_LOCK_TIMEOUT``, 10 s by default).
        """
        with RepoLock(self.state_dir / "lock"):
            self.refresh()
            # A journal counts its commit as published only if its ref points at the very object
            # it recorded (the version's tag object): a foreign tag of the same name does not.
            self.recovered += recover(self.state_dir, self.git.ref_target, self._completed)
            crash_point("lock.acquired")
            try:
                yield
            finally:
                self.refresh()

    def recover_pending(self) -> None:
        """Finish or undo what a killed command left, if anything, unless the repository is busy.

        Read commands call this first (writes recover under `lock` anyway): one directory
        listing when there is nothing to do.
        """
        if not pending(self.state_dir):
            return
        try:
            with RepoLock(self.state_dir / "lock", timeout=0):
                self.recovered += recover(self.state_dir, self.git.ref_target, self._completed)
        except RepositoryBusy:
            pass  # its owner, or another command, is at work: the next one will see to it
        except (OSError, AdapterGitError) as exc:  # a read-only clone, say: reads go on
            warnings.warn(
                f"could not finish what an interrupted command left: {exc}",
                AdapterGitWarning,
                stacklevel=2,
            )
        finally:
            self.refresh()

    def _completed(self, commit: str, paths: list[Path]) -> None:
        """Files of a commit that was published before its command died: the index follows."""
        rel = [p.relative_to(self.root).as_posix() for p in paths if p.is_relative_to(self.root)]
        if rel:
            self.git.reset_index(commit, rel)

    def refresh(self) -> None:
        """Forget the index; the next query reads the tags again (after this process moved some)."""
        self._index = None

    # --- the index ----------------------------------------------------------------------------

    @property
    def index(self) -> Index:
        """Every version and stage, read from one ``for-each-ref`` and kept until `refresh`."""
        if self._index is None:
            self._index = Index(self.git.tags())
        return self._index

    def names(self) -> list[str]:
        """Every adapter with a registered version, or a folder under ``adapters/`` at HEAD."""
        known = self.index.names()
        head = self.git.head()
        if head:
            known.update(self.git.list_dir(head, ADAPTERS_DIR))
        return sorted(known)

    def adapter_dir(self, name: str) -> Path:
        """``adapters/NAME`` in the work tree."""
        return self.root / adapter_path(name)

    # --- reading versions ---------------------------------------------------------------------

    def versions(
        self, registrations: Sequence[Registration], *, with_config: bool = False
    ) -> list[Version]:
        """The `Version` of each registration, in the same order, in one batched git read.

        A version whose manifest cannot be read (damaged, or written by a newer adaptergit) is
        left out with an `AdapterGitWarning` naming it, so that one bad version does not stop
        every command.
        """
        files = [MANIFEST_FILE, METRICS_FILE, *([CONFIG_FILE] if with_config else [])]
        blobs = self.git.iter_blobs(
            [f"{r.commit}:{adapter_path(r.name, f)}" for r in registrations for f in files]
        )
        found = []
        for reg in registrations:
            raw = {f: next(blobs) for f in files}
            if raw[MANIFEST_FILE] is None:
                continue  # registered with GTO outside adaptergit: see `unmanaged`
            try:
                found.append(self._version(reg.name, reg.commit, raw, reg))
            except AdapterGitError as exc:  # damaged, newer schema, or no manifest at the tag
                warnings.warn(f"{reg.tag} skipped: {exc}", AdapterGitWarning, stacklevel=2)
        return found

    def version(self, reg: Registration, *, with_config: bool = False) -> Version:
        """The `Version` of one registration.

        Raises:
            InvalidManifest: its manifest cannot be read.
        """
        return self._read_version(reg.name, reg.commit, reg, with_config)

    def version_at(
        self, name: str, commit: str, *, with_config: bool = False, label: str | None = None
    ) -> Version:
        """Adapter `name` as recorded at `commit`, registered there or not.

        `label` is how the user named the commit (for the error message).

        Raises:
            UnknownRevision: `commit` holds no manifest for `name`.
            InvalidManifest: the manifest there cannot be read.
        """
        return self._read_version(name, commit, None, with_config, label)

    def _read_version(
        self,
        name: str,
        commit: str,
        reg: Registration | None,
        with_config: bool,
        label: str | None = None,
    ) -> Version:
        files = [MANIFEST_FILE, METRICS_FILE, *([CONFIG_FILE] if with_config else [])]
        blobs = self.git.read_blobs([f"{commit}:{adapter_path(name, f)}" for f in files])
        return self._version(name, commit, dict(zip(files, blobs, strict=True)), reg, label)

    def _version(
        self,
        name: str,
        commit: str,
        raw: dict[str, bytes | None],
        reg: Registration | None,
        label: str | None = None,
    ) -> Version:
        source = f"{adapter_path(name, MANIFEST_FILE)} at {commit[:7]}"
        manifest_raw = raw[MANIFEST_FILE]
        if manifest_raw is None and reg is not None:
            raise NotAnAdapterVersion(reg.tag)
        if manifest_raw is None:
            raise UnknownRevision(
                name, label or commit[:7], f"{adapter_path(name)} does not exist there"
            )
        manifest = Manifest.from_json(manifest_raw, source)
        if manifest.name != name or (reg is not None and manifest.version != reg.label):
            what = f"{manifest.name}@{manifest.version}"
            raise InvalidManifest(f"records {what}, not the version it is filed as", source=source)
        metrics = _side_file(
            raw[METRICS_FILE], f"{adapter_path(name, METRICS_FILE)} at {commit[:7]}"
        )
        config = None
        if CONFIG_FILE in raw:
            config = _side_file(
                raw[CONFIG_FILE], f"{adapter_path(name, CONFIG_FILE)} at {commit[:7]}", strict=True
            )
        created = reg.created if reg is not None else 0
        if reg is None:
            registered = self.index.find(name, manifest.version)
            created = registered.created if registered is not None else 0
        return Version(
            name=name,
            version=reg.label if reg is not None else manifest.version,
            commit=commit,
            tag=reg.tag if reg is not None else None,
            created=created,
            manifest=manifest,
            metrics=metrics or {},
            stages=self.index.stages_of(name, commit),
            config=config,
        )

    def withdrawn(self, name: str | None = None) -> list[tuple[Registration, Withdrawal]]:
        """Registered versions withdrawn with GTO (deregistered, or of a deprecated artifact),
        lowest first, each with the tag that withdrew it; `log` leaves them out."""
        found = []
        for reg in self.index.registrations(name):
            withdrawal = self.index.withdrawal(reg)
            if withdrawal is not None:
                found.append((reg, withdrawal))
        return found

    def unmanaged(self, name: str | None = None) -> list[Registration]:
        """GTO registrations with no adaptergit manifest (``gto register`` of something else).

        They are listed by ``gto show`` and left out of `versions`, `log` and every operation.
        """
        regs = self.index.registrations(name)
        ids = self.git.object_ids(
            [f"{r.commit}:{adapter_path(r.name, MANIFEST_FILE)}" for r in regs]
        )
        return [r for r, oid in zip(regs, ids, strict=True) if oid is None]

    def config_at(self, name: str, commit: str) -> dict[str, Any] | None:
        """Adapter `name`'s ``adapter_config.json`` at `commit`, or None if absent.

        Raises:
            InvalidConfig: it is not a JSON object (strict JSON, bounded size and depth).
        """
        path = adapter_path(name, CONFIG_FILE)
        return config_from_blob(self.git.read_blob(commit, path), f"{path} at {commit[:7]}")

    def resolve(self, ref: str | Ref, *, with_config: bool = False) -> Version:
        """The version a reference names: NAME, NAME@vX.Y.Z, NAME@latest, NAME@<rev>, NAME#STAGE.

        Args:
            ref: the reference, as text or parsed.
            with_config: also read the version's ``adapter_config.json`` into `Version.config`.

        Raises:
            InvalidRef: `ref` is malformed.
            UnknownAdapter, UnknownVersion, UnknownStage, UnknownRevision: it names nothing.
            InvalidManifest: the version's manifest cannot be read.
        """
        ref = ref if isinstance(ref, Ref) else Ref.parse(ref)
        name = ref.name
        if ref.revision is not None:
            commit = self.git.resolve_commit(ref.revision)
            if commit is None:
                raise UnknownRevision(name, ref.revision, "no such revision")
            return self.version_at(name, commit, with_config=with_config, label=ref.revision)
        index = self.index
        regs = index.registrations(name)
        if not regs:
            raise UnknownAdapter(name, self.names())
        active = index.active(name)
        if ref.stage is not None:
            commit = index.stage_commit(name, ref.stage)
            if commit is None:
                if not active:
                    raise self._withdrawn(name, regs)
                raise UnknownStage(name, ref.stage, index.assigned_stages(name))
            found = [r for r in active if r.commit == commit]
            if not found:  # a stage on a commit that no version tag names
                return self.version_at(name, commit, with_config=with_config)
            return self.version(found[-1], with_config=with_config)
        if ref.version is None:
            if not active:
                raise self._withdrawn(name, regs)
            return self.version(active[-1], with_config=with_config)
        reg = index.find(name, ref.version)
        if reg is None:
            raise UnknownVersion(name, str(ref.version), [r.label for r in regs])
        withdrawal = index.withdrawal(reg)
        if withdrawal is not None:
            warnings.warn(
                f"{reg.tag} is {withdrawal.kind} (GTO tag {withdrawal.tag}); "
                "`gto show` and `adaptergit log` no longer list it",
                AdapterGitWarning,
                stacklevel=2,
            )
        return self.version(reg, with_config=with_config)

    def _withdrawn(self, name: str, regs: Sequence[Registration]) -> AdapterWithdrawn:
        """The error for a reference to the latest version or a stage of a withdrawn adapter."""
        deprecation = self.index.deprecation(name)
        if deprecation is not None:
            return AdapterWithdrawn(
                name, deprecation.kind, deprecation.tag, [r.label for r in regs]
            )
        withdrawal = self.index.withdrawal(regs[-1])
        tag = withdrawal.tag if withdrawal is not None else regs[-1].tag
        return AdapterWithdrawn(name, "deregistered", tag, [r.label for r in regs])

    def log(
        self, name: str | None = None, n: int | None = None, *, withdrawn: bool = False
    ) -> list[Version]:
        """Registered versions, newest first (by registration date, then version).

        Versions withdrawn with GTO (deregistered, or of a deprecated artifact) are left out, as
        ``gto show`` leaves them out, unless `withdrawn`.

        Raises:
            InvalidName: `name` is not a valid adapter name.
            UnknownAdapter: `name` has no versions and no folder.
        """
        if name is not None:
            validate_name(name)
        every = self.index.registrations(name)
        if name is not None and not every and name not in self.names():
            raise UnknownAdapter(name, self.names())
        regs = every if withdrawn else self.index.active(name)
        regs.sort(key=lambda r: (r.created, r.version), reverse=True)
        if n is not None:
            regs = regs[: max(n, 0)]
        return self.versions(regs)

    # --- remotes ------------------------------------------------------------------------------

    @property
    def remotes(self) -> DvcRemotes:
        """The repository's DVC remotes."""
        if self._remotes is None:
            self._remotes = DvcRemotes(self.dvc, fallback=self._newer_dvc_config)
        return self._remotes

    def _newer_dvc_config(self) -> str | None:
        """.dvc/config of the branch the user came from, or of the upstream: it may name remotes
        that an old commit (checked out now) predates. Only a commit that descends from HEAD
        counts (a remote removed at HEAD stays removed)."""
        head = self.git.head()
        for rev in ("HEAD@{1}", "@{upstream}", "refs/remotes/origin/HEAD", "main", "master"):
            commit = self.git.resolve_commit(rev)
            if commit is None or commit == head or not self.git.is_ancestor(head, commit):
                continue
            raw = self.git.read_blob(commit, ".dvc/config")
            if raw and b"remote" in raw and len(raw) <= MAX_SIDE_FILE_BYTES:
                return raw.decode(errors="replace")
        return None


def config_from_blob(raw: bytes | None, source: str) -> dict[str, Any] | None:
    """An ``adapter_config.json`` blob read as `Registry.config_at` reads it; None if absent.

    Args:
        raw: the blob's bytes (from `GitRepo.read_blobs`), or None.
        source: what to call it in errors, e.g. ``adapters/bot/adapter_config.json at 3f9c2a1``.

    Raises:
        strictjson.JsonError: it is not a JSON object (strict JSON, bounded size and depth).
    """
    return _side_file(raw, source, strict=True)


def _side_file(raw: bytes | None, source: str, *, strict: bool = False) -> dict[str, Any] | None:
    """A version's metrics or config file: a JSON object, or None when absent.

    A damaged metrics file reads as empty (metrics are informational); a damaged config raises
    (`strict`), since PEFT could not load that version.
    """
    if raw is None:
        return None
    try:
        value = strictjson.loads(raw, source, max_bytes=MAX_SIDE_FILE_BYTES)
    except strictjson.JsonError:
        if strict:
            raise
        return {}
    if not isinstance(value, dict):
        if strict:
            raise strictjson.JsonError(source, "expected a JSON object")
        return {}
    return value


__all__ = ["AdapterGitError", "Registry", "config_from_blob"]
