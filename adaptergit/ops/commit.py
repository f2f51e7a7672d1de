"""Recording adapters as new versions: one git commit and one GTO tag per adapter.

The weights are validated and hashed (sha256, DVC's md5, BLAKE3 per tensor) in one read that also
streams them into a new DVC cache object; the adapter's folder is then rewritten under a journal
(`adaptergit.txn`) and the commit and its tags land in one atomic ref transaction, so a failure
or a kill at any point leaves the repository as it was.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptergit import metrics as metrics_mod
from adaptergit import registry_yaml
from adaptergit import tags as tag_grammar
from adaptergit.config import Limits, RepoConfig
from adaptergit.dvcrepo import NewObject, Pointer
from adaptergit.errors import (
    AdapterGitError,
    AdapterGitWarning,
    BranchMoved,
    DetachedHead,
    FileSystemError,
    GitError,
    InvalidConfig,
    InvalidInput,
    InvalidSafetensors,
    InvalidVersion,
    MissingVersionTags,
    NothingToCommit,
    OperationInProgress,
    SeveralAdapters,
    UnknownPeftAdapter,
    VersionExists,
    VersionNotNewer,
)
from adaptergit.fsutil import (
    WRITE_ERRNOS,
    crash_point,
    open_regular,
    read_in_tree,
    safe_folder,
    safe_path,
)
from adaptergit.index import Index
from adaptergit.layout import (
    ADAPTER_FILES,
    CONFIG_FILE,
    DVC_YAML,
    GITIGNORE,
    MANIFEST_FILE,
    METRICS_FILE,
    POINTER_FILE,
    TRACKED_FILES,
    WEIGHTS_FILE,
    adapter_path,
)
from adaptergit.manifest import BaseFingerprint, Manifest, Version, WeightsInfo
from adaptergit.refs import FIRST_VERSION, SemVer, validate_name
from adaptergit.registry import Registry
from adaptergit.txn import DirTransaction

if TYPE_CHECKING:
    from adaptergit.adapter import AdapterSource, WeightsScan

BUMPS = ("major", "minor", "patch")
# An adapter's .gitignore holds a line or two; anything this large is not one.
MAX_GITIGNORE_BYTES = 1 << 20


@dataclass(frozen=True, kw_only=True, slots=True)
class _Planned:
    """One adapter of a commit being made: its new files, before anything is written."""

    name: str
    version: str
    manifest: Manifest
    files: dict[str, bytes]
    new_object: NewObject
    config: dict[str, Any]

    @property
    def tag(self) -> str:
        return tag_grammar.version_tag(self.name, self.version)


def commit(
    registry: Registry,
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
    branch: str | None = None,
) -> list[Version]:
    """Record adapters as new versions; see `adaptergit.repo.Repo.commit` for the arguments.

    Returns:
        The versions made, in the order of `names` (one for a folder or a single adapter).
    """
    options: dict[str, Any] = dict(
        metrics=metrics,
        message=message,
        base_model=base_model,
        version=version,
        bump=bump,
        branch=branch,
    )
    if isinstance(src, (str, Path)) or hasattr(src, "__fspath__"):
        items = _folder_items(Path(src), name=name, names=names, adapter_name=adapter_name)
        return commit_folders(registry, items, **options)
    from adaptergit.integrations import peft as peft_integration  # imports torch when used

    chosen = peft_integration.select(src, name=name, names=names, adapter_name=adapter_name)
    with peft_integration.saved_adapters(src, chosen, registry.state_dir) as folders:
        return commit_folders(registry, folders, **options)


def _folder_items(
    src: Path, *, name: str | None, names: Mapping[str, str] | None, adapter_name: str | None
) -> list[tuple[Path, str]]:
    """(folder, registry name) pairs to commit from a ``save_pretrained`` folder, which may hold
    several adapters (the folder's own, ``default``, and one per sub-folder): never one silently
    for all of them."""
    from adaptergit.adapter import find_adapters

    found = find_adapters(src)
    if names is not None:
        if name is not None or adapter_name is not None:
            raise InvalidInput("give names={adapter: name, ...} or name= (with adapter_name=)")
        if not names:
            raise InvalidInput("names= is empty: map at least one PEFT adapter to a registry name")
        unknown = [a for a in names if a not in found]
        if unknown:
            raise UnknownPeftAdapter(unknown[0], found, str(src))
        return [(found[adapter], registry_name) for adapter, registry_name in names.items()]
    if name is None:
        raise InvalidInput("name= is required: the registry name to record the adapter under")
    if adapter_name is not None:
        if adapter_name not in found:
            raise UnknownPeftAdapter(adapter_name, found, str(src))
        return [(found[adapter_name], name)]
    if len(found) > 1:
        raise SeveralAdapters(src, found)
    if len(found) == 1:
        ((only, folder),) = found.items()
        if folder != src:  # save_pretrained(selected_adapters=[only]) writes only src/only/
            warnings.warn(
                f"{src} holds no adapter of its own; committing PEFT adapter {only!r} from "
                f"{folder}/",
                AdapterGitWarning,
                stacklevel=4,
            )
        return [(folder, name)]
    return [(src, name)]  # no adapter: open_adapter_source says what is missing


def commit_folders(
    registry: Registry,
    items: Sequence[tuple[Path, str]],
    *,
    metrics: Mapping[str, Any] | None,
    message: str,
    base_model: Path | str | None,
    version: str | None,
    bump: str,
    branch: str | None = None,
) -> list[Version]:
    """Record each (folder, name) as a new version, all in one git commit with one tag each.

    The registry's dvc.yaml (see `registry_yaml`) is rewritten in the same commit. Adapters whose
    weights and config equal their latest version are left out; if all are, NothingToCommit.

    A version is numbered only from a full view of the registry, on a branch: see
    `check_can_number`. `branch` puts a detached HEAD on that branch first (CI checkouts).

    Raises:
        InvalidInput: a bad name, adapter, config, metric or version (nothing is written).
        NothingToCommit: nothing changed since the latest version.
        VersionExists, VersionNotNewer: an explicit `version` that cannot be used.
        OperationInProgress, DetachedHead, MissingVersionTags, BranchMoved: see
            `check_can_number` (nothing is written).
    """
    from adaptergit.adapter import open_adapter_source  # reads safetensors, numpy, blake3
    from adaptergit.fingerprint import fingerprint_for_adapter

    names = [validate_name(name) for _src, name in items]
    if len(set(names)) != len(names):
        raise InvalidInput("the same adapter name appears twice in one commit")
    metrics = metrics_mod.normalize(metrics)
    if bump not in BUMPS:
        raise InvalidVersion(bump, "bump one of major, minor, patch")
    wanted = SemVer.parse(version) if version is not None else None
    sources = [(open_adapter_source(src), name) for src, name in items]
    # The weights are read on a thread of their own from here on, while this one fingerprints
    # the base model, takes the lock and reads from git what numbering and dvc.yaml need.
    with _Scans(registry, [source for source, _name in sources]) as scans:
        fingerprints = [fingerprint_for_adapter(base_model, s.config) for s, _n in sources]
        return _plan_and_record(
            registry, sources, fingerprints, scans, metrics, message, wanted, bump, branch
        )


def _plan_and_record(
    registry: Registry,
    sources: list[tuple[AdapterSource, str]],
    fingerprints: list[BaseFingerprint],
    scans: _Scans,
    metrics: dict[str, Any],
    message: str,
    wanted: SemVer | None,
    bump: str,
    branch: str | None,
) -> list[Version]:
    """`commit_folders` under the lock: number the versions, take each scan, write them."""
    names = [name for _source, name in sources]
    with registry.lock(), contextlib.ExitStack() as stack:
        head = check_can_number(registry, names, branch=branch)
        index = registry.index
        entries = registry_yaml.entries_at(registry, head)
        planned: list[_Planned] = []
        unchanged: list[tuple[str, str]] = []
        for i, ((source, name), fingerprint) in enumerate(zip(sources, fingerprints, strict=True)):
            parent = _parent(registry, name)
            new = _next_version(index, name, wanted, bump)
            scan, new_object = scans.take(i, stack)
            if (
                parent is not None
                and parent.weights.sha256 == scan.sha256
                and registry.config_at(name, parent.commit) == source.config
            ):
                unchanged.append((name, parent.version))
                continue
            for text in scan.warnings:
                warnings.warn(text, AdapterGitWarning, stacklevel=4)
            manifest = Manifest(
                name=name,
                version=str(new),
                parent=parent.version if parent else None,
                created=datetime.now(UTC).isoformat(timespec="seconds"),
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
                METRICS_FILE: metrics_mod.to_json(metrics),
                MANIFEST_FILE: manifest.to_json(),
                POINTER_FILE: Pointer(md5=scan.md5, size=scan.size, path=WEIGHTS_FILE).to_bytes(),
                GITIGNORE: _gitignore(registry, name),
            }
            planned.append(
                _Planned(
                    name=name,
                    version=str(new),
                    manifest=manifest,
                    files=files,
                    new_object=new_object,
                    config=source.config,
                )
            )
        if not planned:
            raise NothingToCommit(*unchanged[0])

        for p in planned:
            entries[p.name] = registry_yaml.entry_for(
                p.name, p.manifest.peft_type, p.config, p.manifest.base_model
            )
        # Never through a link: a clone's dvc.yaml may point at any file of the user's.
        new_dvc_yaml = registry_yaml.update(
            read_in_tree(registry.root, DVC_YAML, registry_yaml.MAX_BYTES), entries.values()
        )

        refs = ", ".join(p.tag for p in planned)
        subject = f"{refs}: {message}" if message else f"Register {refs}"
        first_tag = planned[0].tag
        # One journal per folder touched; all name the first tag, since the tags of one
        # commit appear together in one ref transaction or not at all.
        journals = [
            stack.enter_context(
                DirTransaction(
                    registry.state_dir,
                    safe_path(registry.root, adapter_path(p.name)),
                    ADAPTER_FILES,
                    tag=first_tag,
                    new_paths=[registry.dvc.cache_path(p.manifest.weights.md5)],
                )
            )
            for p in planned
        ]
        root_journal = stack.enter_context(
            DirTransaction(registry.state_dir, registry.root, [DVC_YAML], tag=first_tag)
        )
        for p, journal in zip(planned, journals, strict=True):
            p.new_object.commit(p.manifest.weights.md5)
            crash_point("commit.object")
            for filename, data in p.files.items():
                journal.write(filename, data)
        root_journal.write(DVC_YAML, new_dvc_yaml)

        def published(commit: str, tag_objects: dict[str, str]) -> None:
            # The weights go in last, once the git objects exist: a work-tree copy has been
            # made on its own thread meanwhile (`NewObject.written`). Still before the refs
            # move, so the journals hold every file the version publishes.
            for p, journal in zip(planned, journals, strict=True):
                p.new_object.place(
                    journal.target / WEIGHTS_FILE, tmp_name=journal.tmp_name(WEIGHTS_FILE)
                )
                crash_point("commit.placed")
            for journal in [*journals, root_journal]:
                journal.published(tag_grammar.full_ref(first_tag), tag_objects[first_tag], commit)

        commit_id = registry.git.commit_paths(
            [adapter_path(p.name, f) for p in planned for f in TRACKED_FILES] + [DVC_YAML],
            subject,
            tags=[
                (p.tag, tag_grammar.register_message(p.name, p.version, message)) for p in planned
            ],
            on_prepared=published,
            parent=head,  # as read under the lock: HEAD moves only if it is still there
        )
    now = int(time.time())
    return [
        Version(
            name=p.name,
            version=p.version,
            commit=commit_id,
            tag=p.tag,
            created=now,
            manifest=p.manifest,
            metrics=metrics,
        )
        for p in planned
    ]


class _Scans:
    """Each source's weights validated, hashed and streamed into a new cache object
    (`_stream_weights`), in order, on a thread of their own.

    Reading the weights is the one long step of a commit and needs nothing from git, so it runs
    while the caller waits for the lock and reads what numbering and dvc.yaml need. The cache
    objects are journaled temporaries (`OwnedTemps`) until the caller files them, so writing
    them before the lock is held is safe. Leaving the block stops a scan still running (at its
    next read) and discards every object the caller did not `take`.
    """

    def __init__(self, registry: Registry, sources: Sequence[AdapterSource]) -> None:
        self._registry = registry
        self._sources = sources
        self._cancel = threading.Event()
        self._ready = threading.Condition()
        self._results: list[tuple[Any, tuple[WeightsScan, NewObject]] | BaseException] = []
        self._taken = 0
        self._thread: threading.Thread | None = None
        # A pickle is converted first, by torch, which only this thread may do: its warnings
        # filter is the process's, and only a read can be stopped. Those commits scan on `take`.
        if all(source.weights_format == "safetensors" for source in sources):
            self._thread = threading.Thread(target=self._run, name="adaptergit-commit-scan")

    def __enter__(self) -> _Scans:
        if self._thread is not None:
            self._thread.start()
        return self

    def _run(self) -> None:
        for source in self._sources:
            if not self._run_one(source) or self._cancel.is_set():
                return

    def _run_one(self, source: AdapterSource) -> bool:
        """Scan one source into `_results`; False if it failed."""
        streaming = _stream_weights(self._registry, source, self._cancel)
        try:
            item: Any = (streaming, streaming.__enter__())
        except BaseException as exc:  # handed to the caller's thread by `take`
            item = exc
        with self._ready:
            self._results.append(item)
            self._ready.notify_all()
        return not isinstance(item, BaseException)

    def take(self, i: int, stack: contextlib.ExitStack) -> tuple[WeightsScan, NewObject]:
        """Wait for source `i`'s scan (taken in order); its cache object is then `stack`'s.

        Raises:
            What the scan raised (`InvalidAdapter`, `FileSystemError`, ...).
        """
        if self._thread is None:
            while len(self._results) <= i:
                self._run_one(self._sources[len(self._results)])
        with self._ready:
            self._ready.wait_for(lambda: len(self._results) > i)
            item = self._results[i]
        self._taken = i + 1
        if isinstance(item, BaseException):
            raise item
        streaming, value = item
        stack.push(streaming)
        return value

    def __exit__(self, *exc: object) -> None:
        self._cancel.set()
        if self._thread is not None:
            self._thread.join()
        for item in self._results[self._taken :]:
            if not isinstance(item, BaseException):
                item[0].__exit__(None, None, None)


def check_can_number(
    registry: Registry, names: Sequence[str], *, branch: str | None = None
) -> str | None:
    """Refuse to number versions of `names` from a partial or unfinished view of the registry.

    - an unfinished merge, rebase, cherry-pick or revert, or conflicts in the index: the commit
      would go over them on one parent;
    - a detached HEAD: the version would be on no branch (unless `branch` is given: HEAD is
      then put on it, created or fast-forwarded to HEAD's commit);
    - HEAD records a version of one of `names` whose tag this clone lacks (a shallow or
      ``--no-tags`` clone): the next number would repeat one already published.

    Returns:
        HEAD's commit, None on an unborn branch.

    Raises:
        OperationInProgress, DetachedHead, MissingVersionTags, BranchMoved.
    """
    git = registry.git
    operation = git.in_progress()
    if operation is not None:
        raise OperationInProgress(operation)
    conflicted = git.unmerged_paths()
    if conflicted:
        raise OperationInProgress("conflicts", conflicted)
    head = git.head()
    current = git.current_branch()
    if head is not None and current is None:
        if branch is None:
            raise DetachedHead(head)
        try:
            git.attach_head(branch)
        except GitError as exc:
            raise BranchMoved(branch, exc.detail) from None
    elif branch is not None and current is not None and current != branch:
        raise BranchMoved(branch, f"HEAD is on branch {current!r}; `git switch {branch}` first")
    if head is None:
        return None
    index = registry.index
    raws = git.read_blobs([f"{head}:{adapter_path(n, MANIFEST_FILE)}" for n in names])
    for name, raw in zip(names, raws, strict=True):
        if raw is None:
            continue
        try:
            recorded = Manifest.from_json(raw).version
        except AdapterGitError:
            continue  # a damaged manifest is the commit's own business, not numbering's
        if index.tag(tag_grammar.version_tag(name, recorded)) is None:
            raise MissingVersionTags(name, recorded, git.is_shallow(), git.default_remote())
    return head


def _parent(registry: Registry, name: str) -> Version | None:
    """The version a new commit of `name` follows: its highest registered version whose manifest
    reads. One that does not (damaged, a newer schema, a tag a clone put on another version's
    commit) is skipped with an `AdapterGitWarning` naming its tag, as `log` skips it; the new
    version is still numbered past it (`_next_version`), as GTO numbers."""
    for reg in reversed(registry.index.registrations(name)):
        try:
            return registry.version(reg)
        except AdapterGitError as exc:
            warnings.warn(f"{reg.tag} skipped: {exc}", AdapterGitWarning, stacklevel=5)
    return None


def _next_version(index: Index, name: str, wanted: SemVer | None, bump: str) -> SemVer:
    """The version a new commit of `name` gets: `wanted`, or the latest bumped (GTO's rule).

    A version whose tag name is already taken (by a lightweight tag, which GTO ignores) is
    skipped when bumping, and refused when asked for.
    """
    latest = index.latest(name)
    if wanted is not None:
        if index.find(name, wanted) is not None:
            raise VersionExists(name, str(wanted))
        if latest is not None and wanted < latest.version:
            raise VersionNotNewer(name, str(wanted), latest.label)
        taken = index.tag(tag_grammar.version_tag(name, wanted))
        if taken is not None:
            raise VersionExists(name, str(wanted), lightweight=True)
        return wanted
    new = latest.version.bump(bump) if latest else FIRST_VERSION
    while index.tag(tag_grammar.version_tag(name, new)) is not None:
        new = new.bump("patch")
    return new


@contextlib.contextmanager
def _stream_weights(
    registry: Registry, source: AdapterSource, cancel: threading.Event | None = None
) -> Iterator[tuple[WeightsScan, NewObject]]:
    """Validate and hash the weights in one read, streaming them into a new cache object; once
    `cancel` is set the read stops (`adaptergit.adapter.ScanCancelled`)."""
    from adaptergit.adapter import convert_pickle, scan_weights

    with contextlib.ExitStack() as stack:
        path = source.weights_path
        limits = RepoConfig.load(registry.root).limits
        _check_sizes(source, limits)
        if source.weights_format != "safetensors":
            registry.state_dir.mkdir(parents=True, exist_ok=True)
            import tempfile  # only to convert a pickle

            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=registry.state_dir)))
            path = tmp / WEIGHTS_FILE
            convert_pickle(source.weights_path, path, limits)
        # The work-tree copy, if one is needed, is written from the same read (the state
        # directory is on the work tree's filesystem; `NewObject.place` moves it in).
        try:
            size = os.stat(path).st_size
        except OSError:
            size = 0  # the scan says what is wrong with it
        new_object = stack.enter_context(
            registry.dvc.new_cache_object(registry.state_dir, size=size)
        )
        try:
            scan = scan_weights(
                path,
                config=source.config,
                copy_to=new_object.streams,
                regex_timeout=limits.regex_timeout,
                cancel=cancel,
            )
        except OSError as exc:
            if exc.errno in WRITE_ERRNOS:  # reading the source cannot fill a disk
                raise FileSystemError(registry.dvc.cache_dir, exc) from None
            raise
        new_object.written()  # the work-tree copy, if any, starts on a thread of its own
        crash_point("commit.streamed")
        yield scan, new_object


def _check_sizes(source: AdapterSource, limits: Limits) -> None:
    """Refuse a config or safetensors header larger than `limits` allow (before reading more)."""
    import struct

    if len(source.config_bytes) > limits.max_json_bytes:
        raise InvalidConfig(
            source.directory / CONFIG_FILE,
            f"larger than limits.max_json_bytes ({limits.max_json_bytes}) in .adaptergit.toml",
        )
    if source.weights_format != "safetensors":
        return
    try:
        with open_regular(source.weights_path, follow=True) as stream:
            head = stream.read(8)
    except (OSError, AdapterGitError):
        return  # the scan reports it
    if len(head) == 8 and struct.unpack("<Q", head)[0] > limits.max_header_bytes:
        raise InvalidSafetensors(
            source.weights_path,
            f"header length {struct.unpack('<Q', head)[0]} exceeds limits.max_header_bytes "
            f"({limits.max_header_bytes}) in .adaptergit.toml",
        )


def _gitignore(registry: Registry, name: str) -> bytes:
    """The adapter's .gitignore with DVC's entry for the weights, keeping any user lines.

    Read without following a link (a clone's .gitignore may point at any file of the user's),
    bounded, and kept byte for byte.
    """
    safe_folder(registry.root, adapter_path(name))  # a file in the folder's place: refused now
    entry = registry.dvc.gitignore_entry(WEIGHTS_FILE).encode()
    raw = read_in_tree(registry.root, adapter_path(name, GITIGNORE), MAX_GITIGNORE_BYTES)
    lines = raw.splitlines() if raw else []
    if entry not in lines:
        lines.append(entry)
    return b"\n".join(lines) + b"\n"


def _tool_versions(converted: bool) -> dict[str, str]:
    """Versions of adaptergit, Python and the libraries that shaped this version's files."""
    dists = ("adaptergit", "peft", "safetensors", "transformers") + (
        ("torch",) if converted else ()
    )
    found = _installed_versions(dists)
    tools = {"adaptergit": found.get("adaptergit", "unknown"), "python": platform.python_version()}
    tools.update((dist, found[dist]) for dist in dists[1:] if dist in found)
    return tools


def _installed_versions(dists: Sequence[str]) -> dict[str, str]:
    """The installed version of each of `dists` that is installed, by distribution name.

    Read from the ``NAME-VERSION.dist-info`` folder names on ``sys.path``, first match winning, as
    ``importlib.metadata.version`` finds them; only what that leaves unknown (an egg, a zip) is
    asked of importlib.metadata, whose import alone costs as much as the rest of a small commit.
    """
    key = {_dist_key(d): d for d in dists}
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for folder in names:
            stem, dot, suffix = folder.rpartition(".")
            if suffix != "dist-info" or not dot:
                continue
            name, dash, version = stem.partition("-")
            dist = key.get(_dist_key(name))
            if dash and version and dist is not None and dist not in found:
                found[dist] = version
        if len(found) == len(key):
            return found
    missing = [d for d in dists if d not in found]
    if any(_looks_installed(d) for d in missing):
        from importlib import metadata

        for dist in missing:
            with contextlib.suppress(metadata.PackageNotFoundError):
                found[dist] = metadata.version(dist)
    return found


def _dist_key(name: str) -> str:
    """A distribution name normalized as in dist-info folder names (PEP 503, ``_`` for runs)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _looks_installed(dist: str) -> bool:
    """Whether a module of that name can be imported (found without importing it)."""
    from importlib.util import find_spec

    try:
        return find_spec(_dist_key(dist)) is not None
    except (ImportError, ValueError):
        return False


__all__ = ["BUMPS", "check_can_number", "commit", "commit_folders"]
