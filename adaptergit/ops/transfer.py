"""Moving weights between the local DVC cache and a DVC remote, by version.

The rule that keeps a team whole: git never receives a version whose weights the DVC remote lacks,
so every upload here either brings all the weights it was asked for, or raises `TransferFailed`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from adaptergit.errors import (
    AdapterGitError,
    AdapterGitWarning,
    CorruptObject,
    DvcError,
    ManifestMismatch,
    NoRemote,
    TransferFailed,
)
from adaptergit.fsutil import read_in_tree, safe_path
from adaptergit.hashcache import Progress
from adaptergit.layout import ADAPTERS_DIR, MANIFEST_FILE, adapter_path
from adaptergit.manifest import MAX_MANIFEST_BYTES, Manifest, Version
from adaptergit.registry import Registry


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchResult:
    """What a fetch brought into the cache.

    Attributes:
        remote: the DVC remote asked, or None when everything was already in the cache.
        versions: the versions asked for (``NAME@vX.Y.Z``).
        fetched: those whose weights were downloaded.
    """

    remote: str | None
    versions: tuple[str, ...]
    fetched: tuple[str, ...]


def require_remote(registry: Registry, remote: str | None) -> str:
    """`remote`, or the default DVC remote, checked to exist.

    Raises:
        NoRemote: there is no such remote, or no default one.
    """
    names = [r.name for r in registry.remotes.configured()]
    if remote is None:
        remote = registry.remotes.default()
    if remote is None:
        raise NoRemote(names)
    if remote not in names:
        raise NoRemote(names, wanted=remote)
    return remote


def _by_md5(versions: Sequence[Version]) -> dict[str, list[str]]:
    """md5 of the weights -> the versions (refs) that recorded them."""
    found: dict[str, list[str]] = {}
    for v in versions:
        found.setdefault(v.weights.md5, []).append(v.ref)
    return found


def upload(
    registry: Registry,
    versions: Sequence[Version],
    remote: str,
    *,
    progress: Progress | None = None,
) -> tuple[str, ...]:
    """Upload the weights of `versions` that `remote` lacks; return the versions uploaded.

    `progress` is called with (bytes sent, bytes to send).

    Raises:
        TransferFailed: some weights did not arrive (or are in neither the cache nor the remote).
    """
    by_md5 = _by_md5(versions)
    check_local_objects(registry, versions)
    not_local = [m for m in by_md5 if not registry.dvc.in_cache(m)]
    if not_local:
        # Weights already on the remote need nothing; absent everywhere is an error. (When all
        # are local, DVC's push asks the remote itself: no need to ask twice.)
        try:
            missing = registry.remotes.missing(not_local, remote)
        except DvcError as exc:  # the remote cannot even be asked: nothing arrives
            raise TransferFailed(
                "push", remote, sorted(r for refs in by_md5.values() for r in refs), exc.detail
            ) from exc
        lost = [m for m in not_local if m in missing]
        if lost:
            raise TransferFailed(
                "push",
                remote,
                sorted(r for m in lost for r in by_md5[m]),
                "weights are not in the local cache",
            )
    outcome = registry.remotes.push(
        [m for m in by_md5 if m not in not_local], remote, progress=progress
    )
    if outcome.failed:
        raise TransferFailed(
            "push",
            remote,
            sorted(r for m in outcome.failed for r in by_md5.get(m, [m])),
            outcome.error,
        )
    return tuple(sorted(r for m in outcome.transferred for r in by_md5.get(m, [])))


def check_local_objects(registry: Registry, versions: Sequence[Version]) -> None:
    """Refuse to publish weights whose cache object no longer matches their manifests' sha256.

    Each object's sha256 comes from the stat-keyed hash cache (`hashcache.file_sha256`), so an
    unchanged object is read once, ever; a changed one (bit rot, an edit) is re-read.

    Raises:
        CorruptObject: an object's bytes no longer match its md5.
        ManifestMismatch: an object is sound but a manifest records another sha256 for it.
    """
    from adaptergit.hashcache import file_sha256, md5_sha256_of

    owners: dict[str, list[Version]] = {}
    for v in versions:
        owners.setdefault(v.weights.md5, []).append(v)
    for md5, found in sorted(owners.items()):
        path = registry.dvc.cache_path(md5)
        if not path.is_file():
            continue
        expected = {v.weights.sha256 for v in found}
        if len(expected) == 1 and file_sha256(path) in expected:
            continue
        digests = md5_sha256_of(path)
        if digests is None or digests[0] != md5:
            raise CorruptObject(
                "DVC cache",
                md5,
                [v.ref for v in found],
                "nothing was pushed; a good copy is needed (`adaptergit verify --all` lists "
                "the damage)",
            )
        for v in found:
            if v.weights.sha256 != digests[1]:
                raise ManifestMismatch(v.ref, md5, v.weights.sha256, digests[1])


def fetch_versions(
    registry: Registry,
    versions: Sequence[Version],
    *,
    remote: str | None = None,
    progress: Progress | None = None,
) -> FetchResult:
    """Bring the weights of `versions` that the cache lacks from `remote` (default: the default).

    `progress` is called with (bytes received, bytes to receive).

    Raises:
        NoRemote: something is missing and there is no remote to fetch it from.
        TransferFailed: some weights did not arrive.
    """
    by_md5 = _by_md5(versions)
    refs = tuple(v.ref for v in versions)
    needed = [m for m in by_md5 if not registry.dvc.in_cache(m)]
    if not needed:
        return FetchResult(remote=remote, versions=refs, fetched=())
    remote = require_remote(registry, remote)
    sizes = {v.weights.md5: v.weights.size for v in versions}
    # The sha256 each object must have, where the versions sharing it agree (its md5 is always
    # checked: a manifest that lies about another version's object cannot poison the cache).
    expected: dict[str, set[str]] = {}
    for v in versions:
        expected.setdefault(v.weights.md5, set()).add(v.weights.sha256)
    outcome = registry.remotes.fetch(
        needed,
        remote,
        total_bytes=sum(sizes[m] for m in needed),
        progress=progress,
        expected={m: next(iter(shas)) for m, shas in expected.items() if len(shas) == 1},
    )
    if outcome.failed:
        raise TransferFailed(
            "fetch",
            remote,
            sorted(r for m in outcome.failed for r in by_md5.get(m, [m])),
            outcome.error,
        )
    return FetchResult(
        remote=remote,
        versions=refs,
        fetched=tuple(sorted(r for m in outcome.transferred for r in by_md5.get(m, []))),
    )


def checked_out(
    registry: Registry, *, bad: Literal["raise", "warn", "skip"] = "raise"
) -> list[Version]:
    """The version of each adapter in the work tree, as its ``manifest.json`` there records it
    (registered or not: a version whose tag was not fetched has its manifest all the same).

    Manifests are read without following a link or blocking on a FIFO, and bounded in size.

    Args:
        registry: the registry.
        bad: what a folder whose manifest cannot be read (damaged, a name adaptergit refuses,
            a link) does: ``raise`` its error, ``warn`` (an `AdapterGitWarning` naming it, so
            that one bad folder does not stop a pull of the others) or ``skip`` silently.

    Raises:
        UnsafePath: ``adapters`` is a symbolic link (unless `bad` is ``skip``).
        InvalidManifest: a manifest cannot be read (when `bad` is ``raise``).
    """
    try:
        base = safe_path(registry.root, ADAPTERS_DIR)
    except AdapterGitError:
        if bad == "skip":
            return []
        raise
    found = []
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        rel = adapter_path(entry.name, MANIFEST_FILE)
        try:
            raw = read_in_tree(registry.root, rel, MAX_MANIFEST_BYTES)
            if raw is None:
                continue
            found.append(Version.of_manifest(Manifest.from_json(raw, rel), name=entry.name))
        except AdapterGitError as exc:
            if bad == "raise":
                raise
            if bad == "warn":
                warnings.warn(f"{entry.name} skipped: {exc}", AdapterGitWarning, stacklevel=2)
    return found


def versions_reachable(registry: Registry, rev: str = "HEAD") -> list[Version]:
    """Every registered version whose commit is reachable from `rev` (``git tag --merged``).

    Args:
        registry: the registry.
        rev: the revision (default: HEAD).

    Returns:
        The versions, with their manifests, in the index's order.

    Raises:
        InvalidManifest: a version's manifest cannot be read.
    """
    reachable = set(registry.git.merged_tags(rev, "*@v*"))
    regs = [r for r in registry.index.registrations() if r.tag in reachable]
    return registry.versions(regs)


__all__ = [
    "FetchResult",
    "check_local_objects",
    "checked_out",
    "fetch_versions",
    "require_remote",
    "upload",
    "versions_reachable",
]
