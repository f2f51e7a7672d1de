"""What is uncommitted, unpushed or at risk in a registry, cheaply.

The common case costs one ``for-each-ref`` (the index), one ``cat-file --batch-check`` and one
``hash-object`` for all adapters, stat calls, and hashes only of weights whose size, mtime or
inode changed since they were last hashed (the stat-keyed hash cache). Only adapters that differ
from their latest version get a file-by-file comparison.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptergit import tags as tag_grammar
from adaptergit.dvcrepo import MAX_POINTER_BYTES, Pointer
from adaptergit.errors import AdapterGitError
from adaptergit.fsutil import read_file, safe_path
from adaptergit.gitrepo import GitRepo
from adaptergit.hashcache import (
    FileIdentity,
    HashCache,
    Progress,
    default_cache,
    file_sha256,
    sha256_of,
)
from adaptergit.layout import (
    ADAPTERS_DIR,
    MANIFEST_FILE,
    POINTER_FILE,
    TRACKED_FILES,
    WEIGHTS_FILE,
    adapter_of,
    adapter_path,
)
from adaptergit.manifest import MAX_MANIFEST_BYTES, Manifest
from adaptergit.registry import Registry

CLEAN = "clean"
BEHIND = "behind"
MODIFIED = "modified"
MISSING_WEIGHTS = "missing-weights"
DELETED = "deleted"
UNTRACKED = "untracked"
STALE = "stale"
UNTAGGED = "untagged"
CONFLICT = "conflict"


@dataclass(frozen=True, kw_only=True, slots=True)
class AdapterStatus:
    """How ``adapters/NAME`` in the work tree compares with the adapter's latest version.

    Attributes:
        name: the adapter.
        state: ``clean``; ``behind`` (an older version, unmodified, is checked out);
            ``modified`` (files that no version and no commit records); ``missing-weights``;
            ``stale`` (the weights are another recorded version's, as after a merge resolved
            with git: nothing is lost, ``adaptergit checkout`` puts the right ones back);
            ``untagged`` (the files are HEAD's, but the version's tag is not in this clone:
            ``git fetch --tags``); ``conflict`` (unmerged paths of a merge in progress);
            ``deleted`` (tracked at HEAD, gone from the work tree); ``untracked`` (a folder with
            no registered version). An adapter outside a sparse checkout is not listed, as
            ``git status`` does not list it.
        latest: its latest version, ``vX.Y.Z``.
        current: the version the work tree holds, if known.
        changed: the files that differ.
        weights_of: for ``stale``, the version whose weights are on disk.
    """

    name: str
    state: str
    latest: str | None
    current: str | None
    changed: tuple[str, ...] = ()
    weights_of: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields (``changed`` as a list)."""
        return dataclasses.asdict(self, dict_factory=_json_dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusReport:
    """What is uncommitted, unpushed or at risk, and what set-up is missing.

    Attributes:
        adapters: one `AdapterStatus` per adapter in the work tree or at HEAD.
        remote: the default DVC remote asked, or None.
        unpushed: versions whose weights are in the cache but not on the remote.
        missing: versions whose weights are in neither the cache nor the remote.
        hooks_missing: git hooks adaptergit would install that are not installed.
        driver_configured: whether the git diff driver is set up.
        versions: how many versions are registered.
    """

    adapters: tuple[AdapterStatus, ...]
    remote: str | None
    unpushed: tuple[str, ...]
    missing: tuple[str, ...]
    hooks_missing: tuple[str, ...]
    driver_configured: bool
    versions: int

    @property
    def dirty(self) -> tuple[AdapterStatus, ...]:
        """The adapters that are not clean."""
        return tuple(a for a in self.adapters if a.state != CLEAN)

    @property
    def clean(self) -> bool:
        """Nothing changed, unpushed or lost, and the set-up is complete."""
        return (
            not (self.dirty or self.unpushed or self.missing or self.hooks_missing)
            and self.driver_configured
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``clean`` first, then the fields, with ``driver_configured``
        named ``diff_driver`` as the JSON always has.
        """
        data = dataclasses.asdict(self, dict_factory=_json_dict)
        data["diff_driver"] = data.pop("driver_configured")
        return {"clean": self.clean, **data}


def _json_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in items}


def _tree_id(entries: dict[str, str]) -> str:
    """The id git gives a tree of regular files (name -> blob id), computed without writing it."""
    body = b"".join(
        b"100644 " + name.encode() + b"\0" + bytes.fromhex(oid)
        for name, oid in sorted(entries.items(), key=lambda e: e[0].encode())
    )
    return hashlib.sha1(b"tree %d\0" % len(body) + body, usedforsecurity=False).hexdigest()


def _manifest_file(path: Path) -> Manifest | None:
    """The work tree's manifest of an adapter, or None if it is absent or unreadable."""
    try:  # never through a link, never blocking on a FIFO
        raw = read_file(path, MAX_MANIFEST_BYTES)
        return Manifest.from_json(raw, str(path)) if raw is not None else None
    except (OSError, AdapterGitError):
        return None


# Hash-cache kind: the blob id of a manifest whose weights (size, sha256) a file was found to
# match. An unchanged file (same size, mtime, inode) still matches; status then reads neither the
# manifest (a JSON object per tensor) nor the file's cached sha256.
MATCHED_KIND = "matches-manifest"


class _WeightsCheck:
    """Whether a work-tree weights file matches a manifest, hashing only files that changed."""

    def __init__(self, cache: HashCache, progress: Progress | None) -> None:
        self.cache = cache
        self.progress = progress

    def matches(
        self,
        path: Path,
        manifest_id: str | None,
        manifest: Callable[[], Manifest | None],
        real: str | None = None,
    ) -> bool:
        """Whether `path` holds the weights of the manifest whose blob id is `manifest_id`
        (parsed by `manifest` only when this file was not matched against it before); `real`
        is `path`'s real path when it is known to have no symbolic link on the way."""
        if manifest_id is None:
            return not self.differs(path, manifest())
        try:
            identity = FileIdentity.of(real or path, resolved=real is not None)
        except OSError:
            return False
        if self.cache.get(path, MATCHED_KIND, identity=identity) == manifest_id:
            return True
        if self.differs(path, manifest()):
            return False
        self.cache.put(path, MATCHED_KIND, manifest_id, identity=identity)
        return True

    def differs(self, path: Path, manifest: Manifest | None) -> bool:
        if manifest is None:
            return True
        try:
            size = path.stat().st_size
        except OSError:
            return True
        if size != manifest.weights.size:
            return True
        digest = file_sha256(path, self.cache, lambda p: sha256_of(p, self.progress))
        return digest != manifest.weights.sha256


def _sparse_adapters(git: GitRepo) -> set[str]:
    """Adapters whose tracked files are all outside the sparse checkout (skip-worktree)."""
    tracked: dict[str, int] = {}
    for path in git.skip_worktree([ADAPTERS_DIR]):
        found = adapter_of(path)
        if found is not None:
            tracked[found[0]] = tracked.get(found[0], 0) + 1
    at_head = git.head()
    if not at_head or not tracked:
        return set()
    return {
        name
        for name, count in tracked.items()
        if count >= len(git.tree_entries(at_head, adapter_path(name)))
    }


def status(
    registry: Registry, *, progress: Progress | None = None, check_remote: bool = True
) -> StatusReport:
    """Adapters changed in the work tree, versions not on the remote or nowhere, set-up missing.

    Args:
        registry: the registry.
        progress: called with (bytes done, bytes in all) while weights are hashed.
        check_remote: ask the default DVC remote which weights it holds (a stat per object for
            a directory remote; DVC's status query otherwise).
    """
    from adaptergit.ops import diffdriver, hooks  # set-up checks, not needed by other reads

    git = registry.git
    index = registry.index
    regs = index.registrations()
    latest = {name: index.latest(name) for name in index.names()}

    base = safe_path(registry.root, ADAPTERS_DIR)  # a symlinked adapters/ is refused
    present = (
        {e.name: e for e in os.scandir(base) if e.is_dir(follow_symlinks=False)}
        if base.is_dir()
        else {}
    )
    head = git.head()
    at_head = set(git.list_dir(head, ADAPTERS_DIR)) if head else set()

    # Blob ids of the work tree's git-tracked files (one call), tree ids of the latest versions.
    files: dict[str, list[str]] = {}
    real_weights: dict[str, str] = {}  # the weights' real paths, where no link is on the way
    real_base = os.path.realpath(base)
    for name, entry in present.items():
        names = set()
        linked = True  # the weights: not a regular file of their own (a link, or absent)
        for child in os.scandir(entry.path):
            if child.is_file(follow_symlinks=False):
                names.add(child.name)
                if child.name == WEIGHTS_FILE:
                    linked = False
        files[name] = [f for f in TRACKED_FILES if f in names]
        if not (linked or entry.is_symlink()):
            real_weights[name] = os.path.join(real_base, name, WEIGHTS_FILE)
    flat = [(n, f) for n in sorted(files) for f in files[n]]
    paths = [os.path.join(base, n, f) for n, f in flat]
    work_ids = dict(zip(flat, git.hash_files(paths), strict=True))
    compared = sorted(n for n in files if latest.get(n) is not None)
    latest_trees = dict(
        zip(
            compared,
            git.object_ids(
                [f"{latest[n].commit}:{adapter_path(n)}" for n in compared],  # type: ignore[union-attr]
                kind="tree",
            ),
            strict=True,
        )
    )
    weights = _WeightsCheck(default_cache(), progress)

    def compare(name: str, commit: str) -> list[str]:
        """Files of adapters/NAME that differ from the version at `commit`."""
        recorded = git.object_ids([f"{commit}:{adapter_path(name, f)}" for f in TRACKED_FILES])
        changed = [
            f
            for f, want in zip(TRACKED_FILES, recorded, strict=True)
            if want != work_ids.get((name, f))
        ]
        if MANIFEST_FILE not in changed:
            manifest = _manifest_file(base / name / MANIFEST_FILE)
        else:  # the recorded manifest says what the weights should be
            raw = git.read_blob(commit, adapter_path(name, MANIFEST_FILE))
            try:
                manifest = Manifest.from_json(raw) if raw else None
            except AdapterGitError:
                manifest = None
        if weights.differs(base / name / WEIGHTS_FILE, manifest):
            changed.append(WEIGHTS_FILE)
        return changed

    def recorded_weights(name: str) -> str | None:
        """The version of `name` whose weights are on disk now, if any version recorded them."""
        path = base / name / WEIGHTS_FILE
        if not path.is_file():
            return None
        digest = file_sha256(path, weights.cache, lambda p: sha256_of(p, weights.progress))
        for version in registry.versions(index.registrations(name)):
            if version.weights.sha256 == digest:
                return version.version
        return None

    def as_at_head(name: str) -> bool:
        """Whether adapters/NAME's git-tracked files are exactly HEAD's (git status: clean)."""
        if not head:
            return False
        recorded = git.object_ids([f"{head}:{adapter_path(name, f)}" for f in TRACKED_FILES])
        return all(
            want == work_ids.get((name, f)) for f, want in zip(TRACKED_FILES, recorded, strict=True)
        )

    in_merge = git.in_progress() is not None
    conflicted = (
        {found[0] for p in git.unmerged([ADAPTERS_DIR]) if (found := adapter_of(p))}
        if in_merge
        else set()
    )

    states: list[AdapterStatus] = []
    clean_pointers: dict[str, bytes] = {}  # latest version's tag -> its pointer, read locally
    # Adapters outside a sparse checkout (git leaves their ignored weights behind, if any).
    sparse = _sparse_adapters(git)  # also `git update-index --skip-worktree` by hand
    for name in sorted(set(present) | ({n for n in latest if latest[n]} & at_head)):
        reg = latest.get(name)
        top = reg.label if reg is not None else None
        if name in sparse:  # outside the sparse checkout: git does not list it either
            continue
        if name not in present:
            states.append(AdapterStatus(name=name, state=DELETED, latest=top, current=None))
            continue
        if name in conflicted:
            states.append(AdapterStatus(name=name, state=CONFLICT, latest=top, current=None))
            continue
        if reg is None:
            states.append(
                AdapterStatus(
                    name=name,
                    state=UNTRACKED,
                    latest=None,
                    current=None,
                    changed=tuple(files[name]),
                )
            )
            continue
        work_tree = _tree_id({f: work_ids[(name, f)] for f in files[name]})
        if work_tree == latest_trees.get(name):
            if weights.matches(
                base / name / WEIGHTS_FILE,
                work_ids.get((name, MANIFEST_FILE)),
                functools.partial(_manifest_file, base / name / MANIFEST_FILE),
                real_weights.get(name),
            ):
                states.append(AdapterStatus(name=name, state=CLEAN, latest=top, current=top))
                with contextlib.suppress(OSError, AdapterGitError):
                    raw = read_file(base / name / POINTER_FILE, MAX_POINTER_BYTES)
                    if raw is not None:
                        clean_pointers[reg.tag] = raw
                continue
            changed = [WEIGHTS_FILE]
        else:
            changed = compare(name, reg.commit)
        if changed == [WEIGHTS_FILE] and not (base / name / WEIGHTS_FILE).exists():
            states.append(
                AdapterStatus(
                    name=name,
                    state=MISSING_WEIGHTS,
                    latest=top,
                    current=top,
                    changed=(WEIGHTS_FILE,),
                )
            )
            continue
        manifest = _manifest_file(base / name / MANIFEST_FILE)
        current = manifest.version if manifest is not None else None
        older = index.find(name, current) if current is not None and current != top else None
        if older is not None:
            changed = compare(name, older.commit)
            state = MODIFIED if changed else BEHIND
        elif current is not None and current != top and as_at_head(name):
            state = UNTAGGED  # committed at HEAD, registered by a tag this clone lacks
            changed = [
                f
                for f in changed
                if f == WEIGHTS_FILE and weights.differs(base / name / WEIGHTS_FILE, manifest)
            ]
        else:
            state, current = MODIFIED, top
        stale = None
        if changed == [WEIGHTS_FILE] and state == MODIFIED:
            stale = recorded_weights(name)
            if stale is not None:
                state = STALE
        states.append(
            AdapterStatus(
                name=name,
                state=state,
                latest=top,
                current=current,
                changed=tuple(changed),
                weights_of=stale,
            )
        )

    # Versions' weights: in the cache (stat), on the remote (stat for a directory remote).
    others = [r for r in regs if r.tag not in clean_pointers]
    fetched = git.read_blobs([f"{r.commit}:{adapter_path(r.name, POINTER_FILE)}" for r in others])
    raw_pointers = {
        **clean_pointers,
        **{r.tag: raw for r, raw in zip(others, fetched, strict=True)},
    }
    by_md5: dict[str, list[str]] = {}
    for tag_name, raw in raw_pointers.items():
        if raw is None:
            continue
        try:
            by_md5.setdefault(Pointer.parse(raw).md5, []).append(tag_name)
        except AdapterGitError:
            continue
    remote = registry.remotes.default() if check_remote else None
    not_on_remote: set[str] = set()
    if remote is not None and by_md5:
        not_on_remote = registry.remotes.missing_quick(by_md5, remote)
    unpushed, missing = [], []
    cached = registry.dvc.present(by_md5)
    for md5, refs in by_md5.items():
        local = md5 in cached
        if not local and (remote is None or md5 in not_on_remote):
            missing.extend(refs)
        elif local and remote is not None and md5 in not_on_remote:
            unpushed.extend(refs)

    return StatusReport(
        adapters=tuple(states),
        remote=remote,
        unpushed=tuple(sorted(unpushed, key=tag_grammar.version_order)),
        missing=tuple(sorted(missing, key=tag_grammar.version_order)),
        hooks_missing=tuple(h.name for h in hooks.status(git) if not h.installed),
        driver_configured=diffdriver.is_configured(git),
        versions=len(regs),
    )


__all__ = ["AdapterStatus", "StatusReport", "status"]
