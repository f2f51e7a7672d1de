"""The adapter registry: the Python API that the CLI is a thin layer over."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, overload

from adaptergit import metrics as metrics_mod
from adaptergit.config import ADAPTERS_DIR, CONFIG_NAME, DEFAULT_TEXT
from adaptergit.errors import (
    DestinationNotEmpty,
    IntegrityError,
    InvalidVersion,
    NotARepository,
    NothingToCommit,
    UncommittedChanges,
    UnknownAdapter,
    UnknownRevision,
    UnknownStage,
    UnknownVersion,
    VersionExists,
    VersionNotNewer,
    WeightsMissing,
)
from adaptergit.fsutil import RepoLock, atomic_output, atomic_write
from adaptergit.gitrepo import GitRepo, TagInfo
from adaptergit.manifest import MANIFEST_NAME, Manifest, Version, WeightsInfo
from adaptergit.refs import (
    FIRST_VERSION,
    Ref,
    SemVer,
    parse_version_tag,
    validate_name,
)
from adaptergit.txn import DirTransaction, recover

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
POINTER_FILE = WEIGHTS_FILE + ".dvc"
GITIGNORE = ".gitignore"
# Files of an adapter's directory that git tracks; the weights are DVC's.
TRACKED_FILES = (CONFIG_FILE, metrics_mod.METRICS_NAME, MANIFEST_NAME, POINTER_FILE, GITIGNORE)
ALL_FILES = (*TRACKED_FILES, WEIGHTS_FILE)
BUMPS = ("major", "minor", "patch")


@dataclass(frozen=True, kw_only=True, slots=True)
class _Planned:
    """One adapter of a commit being made: its new files, before anything is written."""

    name: str
    version: str
    manifest: Manifest
    files: dict[str, bytes]
    md5: str
    new_object: Any
    config: dict[str, Any]
    tag_message: str

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"


class AdapterGitWarning(UserWarning):
    """Something about an adapter that a user should know but that does not stop the command."""


class Repo:
    """A git work tree set up by ``adaptergit init``: adapters under ``adapters/NAME``."""

    def __init__(self, path: Path | str = ".") -> None:
        from adaptergit.dvcrepo import DvcRepo

        self.git = GitRepo(path)
        self.root = self.git.root
        if not (self.root / CONFIG_NAME).exists():
            raise NotARepository(self.root)
        self.dvc = DvcRepo(self.root)
        self.state_dir = self.git.git_dir / "adaptergit"
        self._remotes: Any = None
        self._prefetched: dict[tuple[str, str], bytes | None] = {}

    @property
    def remotes(self) -> Any:
        """The repository's DVC remotes (`DvcRemotes`)."""
        if self._remotes is None:
            from adaptergit.dvcrepo import DvcRemotes

            self._remotes = DvcRemotes(self.dvc, fallback=self._newer_dvc_config)
        return self._remotes

    def _newer_dvc_config(self) -> str | None:
        """.dvc/config of the branch the user came from, or of the upstream: it may name remotes
        that an old commit (checked out now) predates."""
        for rev in ("HEAD@{1}", "@{upstream}", "refs/remotes/origin/HEAD", "main", "master"):
            commit = self.git.resolve_commit(rev)
            raw = self.git.read_blob(commit, ".dvc/config") if commit else None
            if raw and b"remote" in raw:
                return raw.decode(errors="replace")
        return None

    @classmethod
    def init(cls, path: Path | str = ".") -> Repo:
        """Make `path` an adapter registry (git, DVC, configuration) and commit the set-up."""
        from adaptergit.dvcrepo import DvcRepo

        git = GitRepo.init(path)
        root = git.root
        with RepoLock(git.git_dir / "adaptergit" / "lock"):
            paths = DvcRepo(root).init()
            config = root / CONFIG_NAME
            if not config.exists():
                atomic_write(config, DEFAULT_TEXT.encode())
            from adaptergit.diff import configure_driver

            paths = [*paths, *configure_driver(git)]  # git diff shows adapter summaries
            paths = [p for p in (*paths, CONFIG_NAME) if (root / p).exists()]
            git.commit_staged("Initialise adaptergit registry (git + DVC)", paths)
            from adaptergit import hooks

            hooks.install(git)
        git.close()
        return cls(root)

    def close(self) -> None:
        self.git.close()
        if self._remotes is not None:
            self._remotes.close()

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- helpers --------------------------------------------------------------------------

    def adapter_dir(self, name: str) -> Path:
        return self.root / ADAPTERS_DIR / name

    def _rel(self, name: str, filename: str) -> str:
        return f"{ADAPTERS_DIR}/{name}/{filename}"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with RepoLock(self.state_dir / "lock"):
            recover(self.state_dir, lambda tag: bool(self.git.tags([f"refs/tags/{tag}"])))
            self.dvc.remove_stale_temporaries()
            yield

    def _registrations(self, name: str | None = None) -> list[tuple[TagInfo, str, SemVer]]:
        pattern = f"refs/tags/{name}@*" if name else "refs/tags"
        found = []
        for tag in self.git.tags([pattern]):
            parsed = parse_version_tag(tag.name)
            if parsed and tag.annotated and (name is None or parsed[0] == name):
                found.append((tag, parsed[0], parsed[1]))
        return found

    def names(self) -> list[str]:
        """Every adapter with a registered version, or a directory at HEAD."""
        known = {n for _t, n, _v in self._registrations()}
        head = self.git.head()
        if head:
            known.update(self.git.list_dir(head, ADAPTERS_DIR))
        return sorted(known)

    def _stages(self, name: str | None = None) -> dict[tuple[str, str], list[str]]:
        """(name, commit) -> stages currently assigned, from GTO's ``NAME#STAGE#N`` tags."""
        from adaptergit.stages import current_stages

        pattern = f"refs/tags/{name}#*" if name else "refs/tags"
        return current_stages(self.git.tags([pattern]))

    def _blob(self, commit: str, path: str) -> bytes | None:
        if (commit, path) in self._prefetched:
            return self._prefetched[(commit, path)]
        return self.git.read_blob(commit, path)

    def _prefetch(self, items: list[tuple[str, str]]) -> None:
        """Read many blobs in one git call (log reads two per version)."""
        self._prefetched = dict(zip(items, self.git.read_blobs(items), strict=True))

    def _version_at(
        self,
        name: str,
        commit: str,
        *,
        tag: TagInfo | None = None,
        with_config: bool = False,
        stages: dict[tuple[str, str], list[str]] | None = None,
    ) -> Version:
        raw_manifest = self._blob(commit, self._rel(name, MANIFEST_NAME))
        manifest = (
            Manifest.from_json(raw_manifest, f"{self._rel(name, MANIFEST_NAME)} at {commit[:7]}")
            if raw_manifest is not None
            else None
        )
        raw_metrics = self._blob(commit, self._rel(name, metrics_mod.METRICS_NAME))
        try:
            metrics = json.loads(raw_metrics) if raw_metrics else {}
        except ValueError:
            metrics = {}
        config = None
        if with_config:
            raw_config = self.git.read_blob(commit, self._rel(name, CONFIG_FILE))
            config = json.loads(raw_config) if raw_config else None
        if tag is not None:
            version = parse_version_tag(tag.name)
            version_text = str(version[1]) if version else (manifest.version if manifest else "")
            created = tag.created
        else:
            version_text = manifest.version if manifest else ""
            created = 0
            if manifest:
                tags = self.git.tags([f"refs/tags/{name}@{manifest.version}"])
                created = tags[0].created if tags else 0
        if stages is None:
            stages = self._stages(name)
        return Version(
            name=name,
            version=version_text,
            commit=commit,
            tag=tag.name if tag else None,
            created=created,
            manifest=manifest,
            metrics=metrics if isinstance(metrics, dict) else {},
            stages=tuple(stages.get((name, commit), ())),
            config=config,
        )

    # --- reading ----------------------------------------------------------------------------

    def log(self, name: str | None = None, n: int | None = None) -> list[Version]:
        """Registered versions, newest first; only git objects are read."""
        if name is not None:
            validate_name(name)
        regs = self._registrations(name)
        if name is not None and not regs:
            known = self.names()
            if name not in known:
                raise UnknownAdapter(name, known)
        regs.sort(key=lambda r: (r[0].created, r[2]), reverse=True)
        if n is not None:
            regs = regs[: max(n, 0)]
        stages = self._stages(name)
        self._prefetch(
            [
                (tag.commit, self._rel(tname, filename))
                for tag, tname, _v in regs
                for filename in (MANIFEST_NAME, metrics_mod.METRICS_NAME)
            ]
        )
        try:
            return [
                self._version_at(tname, tag.commit, tag=tag, stages=stages)
                for tag, tname, _v in regs
            ]
        finally:
            self._prefetched = {}

    def resolve(self, ref: str | Ref, *, with_config: bool = False) -> Version:
        """The version a reference names: NAME, NAME@vX.Y.Z, NAME@latest, NAME@<rev>, NAME#STAGE."""
        ref = ref if isinstance(ref, Ref) else Ref.parse(ref)
        name = ref.name
        regs = self._registrations(name)
        if ref.revision is not None:
            commit = self.git.resolve_commit(ref.revision)
            if commit is None:
                raise UnknownRevision(name, ref.revision, "no such revision")
            if self.git.read_blob(commit, self._rel(name, MANIFEST_NAME)) is None:
                raise UnknownRevision(
                    name, ref.revision, f"{ADAPTERS_DIR}/{name} does not exist there"
                )
            return self._version_at(name, commit, with_config=with_config)
        if not regs:
            raise UnknownAdapter(name, self.names())
        if ref.stage is not None:
            for (sname, commit), stages in self._stages(name).items():
                if sname == name and ref.stage in stages:
                    at = [r for r in regs if r[0].commit == commit]  # its registration tag
                    tag = max(at, key=lambda r: r[2])[0] if at else None
                    return self._version_at(name, commit, tag=tag, with_config=with_config)
            assigned = sorted({s for (_n, _c), ss in self._stages(name).items() for s in ss})
            raise UnknownStage(name, ref.stage, assigned)
        if ref.version is None:
            tag, _n, _v = max(regs, key=lambda r: r[2])
        else:
            matches = [r for r in regs if r[2] == ref.version]
            if not matches:
                raise UnknownVersion(
                    name,
                    str(ref.version),
                    [str(v) for _t, _n, v in sorted(regs, key=lambda r: r[2])],
                )
            tag = matches[0][0]
        return self._version_at(name, tag.commit, tag=tag, with_config=with_config)

    def show(self, ref: str | Ref) -> Version:
        """Everything recorded for one version, its adapter config included."""
        return self.resolve(ref, with_config=True)

    # --- committing ---------------------------------------------------------------------------

    @overload
    def commit(
        self,
        src: Any,
        *,
        name: str | None = None,
        names: None = None,
        adapter_name: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        message: str = "",
        base_model: Path | str | None = None,
        version: str | None = None,
        bump: str = "patch",
    ) -> Version: ...

    @overload
    def commit(
        self,
        src: Any,
        *,
        name: None = None,
        names: Mapping[str, str],
        adapter_name: None = None,
        metrics: Mapping[str, Any] | None = None,
        message: str = "",
        base_model: Path | str | None = None,
        version: str | None = None,
        bump: str = "patch",
    ) -> list[Version]: ...

    def commit(
        self,
        src: Any,
        *,
        name: str | None = None,
        names: Mapping[str, str] | None = None,
        adapter_name: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        message: str = "",
        base_model: Path | str | None = None,
        version: str | None = None,
        bump: str = "patch",
    ) -> Version | list[Version]:
        """Record an adapter as a new version of `name`: one commit and one tag.

        `src` is a folder as PEFT's ``save_pretrained`` writes it, or a ``peft.PeftModel``, which
        is saved through ``save_pretrained`` with safetensors: its active adapter, or
        `adapter_name`. ``names={"adapter_a": "task-a", ...}`` records several adapters of one
        model in one git commit, each as its own versioned adapter, and returns their versions
        (adapters whose weights and config did not change are left out).
        """
        options: dict[str, Any] = dict(
            metrics=metrics, message=message, base_model=base_model, version=version, bump=bump
        )
        if isinstance(src, (str, os.PathLike)):
            if names is not None or adapter_name is not None:
                from adaptergit.errors import InvalidInput

                raise InvalidInput("names= and adapter_name= apply to a PeftModel, not to a folder")
            if name is None:
                from adaptergit.errors import InvalidInput

                raise InvalidInput(
                    "name= is required: the registry name to record the adapter under"
                )
            return self._commit_sources([(Path(src), name)], **options)[0]
        from adaptergit.integrations import peft as peft_integration

        chosen = peft_integration.select(src, name=name, names=names, adapter_name=adapter_name)
        with peft_integration.saved_adapters(src, chosen, self.state_dir) as folders:
            versions = self._commit_sources(folders, **options)
        return versions if names is not None else versions[0]

    def _commit_sources(
        self,
        items: Sequence[tuple[Path, str]],
        *,
        metrics: Mapping[str, Any] | None,
        message: str,
        base_model: Path | str | None,
        version: str | None,
        bump: str,
    ) -> list[Version]:
        """Record each (folder, name) as a new version, all in one git commit with one tag each.

        The registry's dvc.yaml (see `registry_yaml`) is rewritten in the same commit.
        """
        from adaptergit import registry_yaml
        from adaptergit.adapter import open_adapter_source
        from adaptergit.fingerprint import fingerprint_for_adapter

        names = [validate_name(name) for _src, name in items]
        if len(set(names)) != len(names):
            from adaptergit.errors import InvalidInput

            raise InvalidInput("the same adapter name appears twice in one commit")
        metrics = metrics_mod.normalize(metrics)
        if bump not in BUMPS:
            raise InvalidVersion(bump, "bump one of major, minor, patch")
        wanted = SemVer.parse(version) if version is not None else None
        sources = [(open_adapter_source(src), name) for src, name in items]
        fingerprints = [
            fingerprint_for_adapter(base_model, source.config) for source, _n in sources
        ]

        with self._locked(), contextlib.ExitStack() as stack:
            planned: list[_Planned] = []
            unchanged: list[tuple[str, str]] = []
            for (source, name), fingerprint in zip(sources, fingerprints, strict=True):
                regs = self._registrations(name)
                latest = max(regs, key=lambda r: r[2]) if regs else None
                if wanted is not None:
                    if any(v == wanted for _t, _n, v in regs):
                        raise VersionExists(name, str(wanted))
                    if latest and wanted < latest[2]:
                        raise VersionNotNewer(name, str(wanted), str(latest[2]))
                    new = wanted
                else:
                    new = latest[2].bump(bump) if latest else FIRST_VERSION
                parent = self._version_at(name, latest[0].commit, tag=latest[0]) if latest else None
                scan, new_object = stack.enter_context(self._stream_weights(source))
                if (
                    parent is not None
                    and parent.manifest is not None
                    and parent.manifest.weights.sha256 == scan.sha256
                    and self._config_at(name, parent.commit) == source.config
                ):
                    unchanged.append((name, parent.version))
                    continue
                for text in scan.warnings:
                    warnings.warn(text, AdapterGitWarning, stacklevel=4)
                manifest = Manifest(
                    name=name,
                    version=str(new),
                    parent=parent.version if parent else None,
                    created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    message=message,
                    peft_type=str(source.config.get("peft_type")),
                    base_model=fingerprint,
                    weights=WeightsInfo(
                        file=WEIGHTS_FILE,
                        sha256=scan.sha256,
                        md5=scan.md5,
                        size=scan.size,
                        source_format=source.weights_format,
                    ),
                    tensors=scan.tensors,
                    tool=_tool_versions(converted=source.weights_format != "safetensors"),
                )
                files = {
                    CONFIG_FILE: source.config_bytes,
                    metrics_mod.METRICS_NAME: metrics_mod.to_json(metrics),
                    MANIFEST_NAME: manifest.to_json(),
                    POINTER_FILE: self._pointer(scan.md5, scan.size),
                    GITIGNORE: self._gitignore(name),
                }
                tag_message = f"Registering artifact {name} version {new}"
                if message:
                    tag_message += f"\n\n{message}"
                planned.append(
                    _Planned(
                        name=name,
                        version=str(new),
                        manifest=manifest,
                        files=files,
                        md5=scan.md5,
                        new_object=new_object,
                        config=source.config,
                        tag_message=tag_message,
                    )
                )
            if not planned:
                raise NothingToCommit(*unchanged[0])

            entries = registry_yaml.entries_at(self, self.git.head())
            for p in planned:
                entries[p.name] = registry_yaml.entry_for(
                    p.name, p.manifest.peft_type, p.config, p.manifest.base_model
                )
            dvc_yaml = self.root / registry_yaml.DVC_YAML
            new_dvc_yaml = registry_yaml.update(
                dvc_yaml.read_bytes() if dvc_yaml.is_file() else None, entries.values()
            )

            refs = ", ".join(p.tag for p in planned)
            subject = f"{refs}: {message}" if message else f"Register {refs}"
            first_tag = planned[0].tag
            # One journal per folder touched; all name the first tag, since the tags of one
            # commit appear together in one ref transaction or not at all.
            for p in planned:
                stack.enter_context(
                    DirTransaction(
                        self.state_dir,
                        self.adapter_dir(p.name),
                        ALL_FILES,
                        tag=first_tag,
                        new_paths=[self.dvc.cache_path(p.md5)],
                    )
                )
            stack.enter_context(
                DirTransaction(self.state_dir, self.root, [registry_yaml.DVC_YAML], tag=first_tag)
            )
            for p in planned:
                target = self.adapter_dir(p.name)
                p.new_object.commit(p.md5)
                for filename, data in p.files.items():
                    atomic_write(target / filename, data)
                self.dvc.place(p.md5, target / WEIGHTS_FILE)
            atomic_write(dvc_yaml, new_dvc_yaml)
            commit = self.git.commit_paths(
                [self._rel(p.name, f) for p in planned for f in TRACKED_FILES]
                + [registry_yaml.DVC_YAML],
                subject,
                tag=first_tag,
                tag_message=planned[0].tag_message,
                more_tags=[(p.tag, p.tag_message) for p in planned[1:]],
            )
        now = int(time.time())
        return [
            Version(
                name=p.name,
                version=p.version,
                commit=commit,
                tag=p.tag,
                created=now,
                manifest=p.manifest,
                metrics=metrics,
            )
            for p in planned
        ]

    @contextlib.contextmanager
    def _stream_weights(self, source: Any) -> Iterator[tuple[Any, Any]]:
        """Validate and hash the weights in one read, streaming them into a new cache object."""
        from adaptergit.adapter import convert_pickle, scan_weights

        with contextlib.ExitStack() as stack:
            path = source.weights_path
            if source.weights_format != "safetensors":
                self.state_dir.mkdir(parents=True, exist_ok=True)
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=self.state_dir)))
                path = tmp / WEIGHTS_FILE
                convert_pickle(source.weights_path, path)
            new_object = stack.enter_context(self.dvc.new_cache_object())
            scan = scan_weights(path, config=source.config, copy_to=new_object.stream)
            yield scan, new_object

    def _config_at(self, name: str, commit: str) -> Any:
        raw = self.git.read_blob(commit, self._rel(name, CONFIG_FILE))
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    def _pointer(self, md5: str, size: int) -> bytes:
        from adaptergit.dvcrepo import Pointer

        return Pointer(md5=md5, size=size, path=WEIGHTS_FILE).to_bytes()

    def _gitignore(self, name: str) -> bytes:
        """The adapter's .gitignore with DVC's entry for the weights, keeping any user lines."""
        entry = self.dvc.gitignore_entry(WEIGHTS_FILE)
        path = self.adapter_dir(name) / GITIGNORE
        lines = path.read_text().splitlines() if path.exists() else []
        if entry not in lines:
            lines.append(entry)
        return ("\n".join(lines) + "\n").encode()

    # --- checking out -------------------------------------------------------------------------

    def checkout(
        self, ref: str | Ref, to: Path | str | None = None, *, force: bool = False
    ) -> Path:
        """Bring back a version's files: into ``adapters/NAME`` or, with `to`, into a new folder."""
        version = self.resolve(ref)
        name = version.name
        if version.manifest is None:
            raise UnknownRevision(name, str(ref), "it has no adaptergit manifest")
        blobs = {
            f: self.git.read_blob(version.commit, self._rel(name, f))
            for f in (CONFIG_FILE, metrics_mod.METRICS_NAME, MANIFEST_NAME, POINTER_FILE, GITIGNORE)
        }
        weights = version.manifest.weights
        if not self.dvc.in_cache(weights.md5):
            self._fetch_missing(version)
        if to is not None:
            dest = Path(to)
            if dest.exists() and not dest.is_dir():
                raise DestinationNotEmpty(dest)
            if dest.is_dir() and any(dest.iterdir()) and not force:
                raise DestinationNotEmpty(dest)
            dest.mkdir(parents=True, exist_ok=True)
            self._copy_verified(version, dest / WEIGHTS_FILE)
            for filename in (CONFIG_FILE, metrics_mod.METRICS_NAME, MANIFEST_NAME):
                data = blobs[filename]
                if data is not None:
                    atomic_write(dest / filename, data)
            from adaptergit import modelcard  # a Hub model card, so the folder uploads as it is

            atomic_write(
                dest / modelcard.CARD_NAME,
                modelcard.render(version, self._config_at(name, version.commit)),
            )
            return dest
        target = self.adapter_dir(name)
        with self._locked():
            if not force:
                changed = self.unrecorded_changes(name)
                if changed:
                    raise UncommittedChanges(name, changed)
            with DirTransaction(self.state_dir, target, ALL_FILES):
                for filename, data in blobs.items():
                    if data is not None:
                        atomic_write(target / filename, data)
                self._copy_verified(version, target / WEIGHTS_FILE)
        return target

    def _fetch_missing(self, version: Version) -> None:
        """Fetch a version's weights when the cache lacks them and a remote is configured."""
        from adaptergit import sync

        assert version.manifest is not None
        if self.remotes.default() is None:
            raise WeightsMissing(version.name, version.version, version.manifest.weights.md5)
        sync.fetch_versions(self, [version])

    def _copy_verified(self, version: Version, dst: Path) -> None:
        """Copy the weights from the cache to `dst`, checking sha256 in the same read.

        A damaged cache object is never handed over: it is deleted and, when a remote is
        configured, fetched again.
        """
        assert version.manifest is not None
        weights = version.manifest.weights
        try:
            self._copy_checked(weights, dst)
        except IntegrityError:
            self.dvc.drop(weights.md5)
            if self.remotes.default() is None:
                raise
            self._fetch_missing(version)
            self._copy_checked(weights, dst)

    def _copy_checked(self, weights: WeightsInfo, dst: Path) -> None:
        import hashlib

        src = self.dvc.cache_path(weights.md5)
        digest = hashlib.sha256()
        with atomic_output(dst) as (_tmp, fd), open(src, "rb") as fin:
            view = memoryview(bytearray(8 << 20))
            while True:
                n = fin.readinto(view)
                if not n:
                    break
                chunk = view[:n]
                digest.update(chunk)
                while chunk:
                    chunk = chunk[os.write(fd, chunk) :]
            if digest.hexdigest() != weights.sha256:
                raise IntegrityError(src, weights.sha256, digest.hexdigest())

    def restore_weights(self, name: str, *, fetch: bool = True) -> bool:
        """Make ``adapters/NAME``'s weights match its pointer and manifest in the work tree.

        Returns False when they already did. Used by the post-checkout and post-merge hooks.
        """
        from adaptergit.hashcache import file_sha256

        target = self.adapter_dir(name)
        manifest = Manifest.from_json(
            (target / MANIFEST_NAME).read_bytes(), f"adapters/{name}/{MANIFEST_NAME}"
        )
        weights = manifest.weights
        path = target / WEIGHTS_FILE
        if (
            path.exists()
            and path.stat().st_size == weights.size
            and file_sha256(path) == weights.sha256
        ):
            return False
        version = Version(
            name=name, version=manifest.version, commit="", tag=None, created=0, manifest=manifest
        )
        with self._locked():
            if not self.dvc.in_cache(weights.md5):
                if not fetch:
                    raise WeightsMissing(name, manifest.version, weights.md5)
                self._fetch_missing(version)
            self._copy_verified(version, path)
        return True

    # --- sharing --------------------------------------------------------------------------

    def remote_add(
        self,
        name: str,
        url: str,
        *,
        default: bool = False,
        options: Mapping[str, str] | None = None,
    ) -> None:
        """Add a DVC remote and commit .dvc/config (secrets stay in the git-ignored config.local)."""
        paths = [self.dvc.dvc_dir / "config", self.dvc.dvc_dir / "config.local"]
        with self._locked():
            before = {p: p.read_bytes() if p.exists() else None for p in paths}
            try:
                self.remotes.add(name, url, default=default, options=dict(options or {}))
                self.git.commit_staged(f"Add DVC remote {name}", [".dvc/config"])
            except BaseException:  # e.g. git cannot commit: leave the config as it was
                for path, data in before.items():
                    if data is None:
                        path.unlink(missing_ok=True)
                    else:
                        atomic_write(path, data)
                raise

    def push(
        self, refs: Sequence[str] = (), *, remote: str | None = None, git_remote: str | None = None
    ) -> Any:
        """Upload the weights the DVC remote lacks, then push the branch and version tags to git."""
        from adaptergit import sync

        return sync.push(self, refs, remote=remote, git_remote=git_remote)

    def fetch(self, refs: Sequence[str], *, remote: str | None = None) -> Any:
        """Bring these versions' weights into the local cache."""
        from adaptergit import sync

        return sync.fetch(self, refs, remote=remote)

    def pull(self, refs: Sequence[str], *, remote: str | None = None, force: bool = False) -> Any:
        """Fetch these versions' weights and check each out into ``adapters/NAME``."""
        from adaptergit import sync

        result = sync.fetch(self, refs, remote=remote)
        for ref in refs:
            self.checkout(ref, force=force)
        return result

    def unrecorded_changes(self, name: str) -> list[str]:
        """Files of ``adapters/NAME`` whose content is in no recorded version (lost if overwritten)."""
        from adaptergit.hashcache import file_sha256

        target = self.adapter_dir(name)
        if not target.is_dir():
            return []
        present = sorted(p.name for p in target.iterdir() if p.is_file())
        recorded: dict[str, str] = {}
        manifest = None
        with contextlib.suppress(Exception):
            manifest = Manifest.from_json((target / MANIFEST_NAME).read_bytes())
        if manifest is not None:
            tags = self.git.tags([f"refs/tags/{name}@{manifest.version}"])
            if tags:
                recorded = self.git.tree_entries(tags[0].commit, f"{ADAPTERS_DIR}/{name}")
        changed = []
        git_files = [f for f in present if f != WEIGHTS_FILE]
        for filename, oid in zip(
            git_files, self.git.hash_files([target / f for f in git_files]), strict=True
        ):
            if recorded.get(filename) != oid:
                changed.append(filename)
        if WEIGHTS_FILE in present:
            sha = file_sha256(target / WEIGHTS_FILE)
            if manifest is None or sha != manifest.weights.sha256:
                changed.append(WEIGHTS_FILE)
        return changed

    # --- comparing and maintaining ------------------------------------------------------------

    def diff(self, ref_a: str | Ref, ref_b: str | Ref) -> Any:
        """What changed from `ref_a` to `ref_b`: config, metrics, base model, weights (`AdapterDiff`)."""
        from adaptergit.diff import diff_versions

        old, new = self.resolve(ref_a, with_config=True), self.resolve(ref_b, with_config=True)
        for version, ref in ((old, ref_a), (new, ref_b)):
            if version.manifest is None:
                raise UnknownRevision(version.name, str(ref), "it has no adaptergit manifest")
        assert old.manifest is not None and new.manifest is not None
        paths = None
        if old.manifest.weights.sha256 != new.manifest.weights.sha256:
            for version in (old, new):
                if not self.dvc.in_cache(version.manifest.weights.md5):  # type: ignore[union-attr]
                    self._fetch_missing(version)
            paths = [self.dvc.cache_path(v.manifest.weights.md5) for v in (old, new)]  # type: ignore[union-attr]
        return diff_versions(
            old,
            new,
            paths[0] if paths else None,
            paths[1] if paths else None,
            old_config=old.config,
            new_config=new.config,
        )

    def verify(
        self,
        ref: str | None = None,
        all: bool = False,
        remote: bool = False,
        *,
        progress: Any = None,
    ) -> list[Any]:
        """Re-hash weights in the work tree and cache (and check the remote): a list of `Problem`."""
        from adaptergit import maintenance

        return maintenance.verify(self, ref, all_versions=all, remote=remote, progress=progress)

    def status(self, *, progress: Any = None, remote: bool = True) -> Any:
        """Changed adapters, unpushed or missing weights, set-up not done (`StatusReport`)."""
        from adaptergit import maintenance

        return maintenance.status(self, progress=progress, check_remote=remote)

    def gc(
        self,
        keep_last: int | None = None,
        keep_stages: bool = True,
        remote: bool = False,
        dry_run: bool = False,
    ) -> Any:
        """Remove weights no kept version needs from the DVC cache (and remote): a `GcReport`."""
        from adaptergit import maintenance

        return maintenance.gc(
            self, keep_last=keep_last, keep_stages=keep_stages, remote=remote, dry_run=dry_run
        )

    # --- stages ---------------------------------------------------------------------------

    def assign(self, ref: str | Ref, stage: str, *, message: str = "") -> Any:
        """Assign `stage` to a registered version with GTO's tag ``NAME#STAGE#N`` (a `StageEvent`)."""
        from adaptergit import stages

        return stages.assign(self, ref, stage, message=message)

    def unassign(self, name: str, stage: str, *, message: str = "") -> list[Any]:
        """Take `stage` away from adapter `name` with GTO's ``NAME#STAGE!#N`` tags."""
        from adaptergit import stages

        return stages.unassign(self, name, stage, message=message)


def _tool_versions(converted: bool) -> dict[str, str]:
    tools = {"adaptergit": _dist_version("adaptergit"), "python": platform.python_version()}
    for dist in ("peft", "safetensors", "transformers") + (("torch",) if converted else ()):
        found = _dist_version(dist)
        if found != "unknown":
            tools[dist] = found
    return tools


def _dist_version(dist: str) -> str:
    from importlib import metadata as importlib_metadata

    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


__all__ = ["AdapterGitWarning", "Repo"]
