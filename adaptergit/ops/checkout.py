"""Bringing a version back: into ``adapters/NAME`` (in place) or into a folder of its own.

Weights come from the DVC cache (fetched from the default remote when missing) and are checked
against the manifest's sha256 while they are copied, so a damaged object is never handed over.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from adaptergit.errors import (
    AdapterGitError,
    DestinationNotEmpty,
    GitViewConflict,
    IntegrityError,
    UncommittedChanges,
    WeightsMissing,
)
from adaptergit.fsutil import atomic_output, atomic_write
from adaptergit.hashcache import file_sha256
from adaptergit.layout import (
    ADAPTER_FILES,
    CARD_FILE,
    CONFIG_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    TRACKED_FILES,
    WEIGHTS_FILE,
    adapter_path,
)
from adaptergit.manifest import Manifest, Version, WeightsInfo
from adaptergit.ops import transfer
from adaptergit.refs import Ref
from adaptergit.registry import Registry
from adaptergit.txn import DirTransaction

_CHUNK = 8 << 20


def checkout(
    registry: Registry, ref: str | Ref, to: Path | str | None = None, *, force: bool = False
) -> Path:
    """Bring back a version's files: into ``adapters/NAME``, or with `to` into a new folder.

    Args:
        registry: the registry.
        ref: the version (any reference `Registry.resolve` takes).
        to: a folder to write the version into (config, weights, manifest, metrics and a
            Hugging Face model card), which must be empty or absent unless `force`.
        force: overwrite changes in ``adapters/NAME`` that no version records, or a non-empty
            `to` folder.

    Returns:
        The folder written.

    Raises:
        UncommittedChanges: ``adapters/NAME`` holds unrecorded changes (without `force`).
        DestinationNotEmpty: `to` is not empty (without `force`).
        WeightsMissing, TransferFailed: the weights are in neither the cache nor the remote.
        IntegrityError: the weights do not match the manifest's sha256.
    """
    version = registry.resolve(ref)
    name = version.name
    blobs = dict(
        zip(
            TRACKED_FILES,
            registry.git.read_blobs(
                [f"{version.commit}:{adapter_path(name, f)}" for f in TRACKED_FILES]
            ),
            strict=True,
        )
    )
    if not registry.dvc.in_cache(version.weights.md5):
        fetch_missing(registry, version)
    if to is not None:
        return _export(registry, version, blobs, Path(to), force=force)
    target = registry.adapter_dir(name)
    _check_git_view(registry, name, force=force)
    # As git would write them into the work tree (line endings, filters): git status agrees.
    present = [f for f, data in blobs.items() if data is not None]
    smudged = registry.git.checkout_bytes(version.commit, [adapter_path(name, f) for f in present])
    blobs.update({f: data for f, data in zip(present, smudged, strict=True) if data is not None})
    with registry.lock():
        if not force:
            changed = unrecorded_changes(registry, name)
            if changed:
                raise UncommittedChanges(name, changed)
        with DirTransaction(registry.state_dir, target, ADAPTER_FILES):
            for filename, data in blobs.items():
                if data is not None:
                    atomic_write(target / filename, data)
            copy_verified(registry, version, target / WEIGHTS_FILE)
        registry.git.recheck([adapter_path(name, f) for f in present])
    return target


def _check_git_view(registry: Registry, name: str, *, force: bool) -> None:
    """Refuse to write ``adapters/NAME`` where git would not: unmerged paths of a merge in
    progress (unless `force`), or a folder outside the sparse checkout.

    Raises:
        GitViewConflict: one of those; the message says what git needs first.
    """
    path = adapter_path(name)
    if not force and registry.git.in_progress() and registry.git.unmerged([path]):
        raise GitViewConflict(
            name,
            f"{path} has merge conflicts; keep one side with `git checkout --ours -- {path}` "
            f"(or --theirs) and `git add {path}`, then check the version out "
            "(--force writes it over the conflict)",
        )
    if registry.git.skip_worktree([path]):
        raise GitViewConflict(
            name,
            f"{path} is outside the sparse checkout; add it with `git sparse-checkout add "
            f"{path}`, or write the version elsewhere with --to DIR",
        )


def _export(
    registry: Registry, version: Version, blobs: dict[str, bytes | None], dest: Path, force: bool
) -> Path:
    """Write `version` into `dest` (the files PEFT loads, plus a model card)."""
    from adaptergit import modelcard  # a Hub model card, so the folder uploads as it is

    if dest.exists() and not dest.is_dir():
        raise DestinationNotEmpty(dest)
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise DestinationNotEmpty(dest)
    dest.mkdir(parents=True, exist_ok=True)
    copy_verified(registry, version, dest / WEIGHTS_FILE)
    for filename in (CONFIG_FILE, METRICS_FILE, MANIFEST_FILE):
        data = blobs[filename]
        if data is not None:
            atomic_write(dest / filename, data)
    card = modelcard.render(version, registry.config_at(version.name, version.commit))
    atomic_write(dest / CARD_FILE, card)
    return dest


def fetch_missing(registry: Registry, version: Version) -> None:
    """Fetch a version's weights when the cache lacks them and a remote is configured.

    Raises:
        WeightsMissing: there is no default remote to fetch them from.
        TransferFailed: the remote did not deliver them.
    """
    if registry.remotes.default() is None:
        raise WeightsMissing(version.name, version.version, version.weights.md5)
    transfer.fetch_versions(registry, [version])


def copy_verified(registry: Registry, version: Version, dst: Path) -> None:
    """Copy the weights from the cache to `dst`, checking sha256 in the same read.

    A damaged cache object is never handed over: it is deleted and, when a remote is
    configured, fetched again.
    """
    weights = version.weights
    try:
        _copy_checked(registry, weights, dst)
    except IntegrityError:
        registry.dvc.drop(weights.md5)
        if registry.remotes.default() is None:
            raise
        fetch_missing(registry, version)
        _copy_checked(registry, weights, dst)


def _copy_checked(registry: Registry, weights: WeightsInfo, dst: Path) -> None:
    """Copy a cache object to `dst` atomically, raising IntegrityError on a sha256 mismatch."""
    src = registry.dvc.cache_path(weights.md5)
    digest = hashlib.sha256()
    with atomic_output(dst) as (_tmp, fd), open(src, "rb") as fin:
        view = memoryview(bytearray(_CHUNK))
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


def restore_weights(registry: Registry, name: str, *, fetch: bool = True) -> bool:
    """Make ``adapters/NAME``'s weights match its manifest in the work tree.

    Used by the post-checkout and post-merge hooks, after git has changed the tracked files.

    Args:
        registry: the registry.
        name: the adapter.
        fetch: fetch missing weights from the default remote (else raise WeightsMissing).

    Returns:
        False when the weights already matched.
    """
    target = registry.adapter_dir(name)
    manifest = Manifest.from_json(
        (target / MANIFEST_FILE).read_bytes(), adapter_path(name, MANIFEST_FILE)
    )
    weights = manifest.weights
    path = target / WEIGHTS_FILE
    if (
        path.exists()
        and path.stat().st_size == weights.size
        and file_sha256(path) == weights.sha256
    ):
        return False
    version = Version.of_manifest(manifest)
    with registry.lock():
        if not registry.dvc.in_cache(weights.md5):
            if not fetch:
                raise WeightsMissing(name, manifest.version, weights.md5)
            fetch_missing(registry, version)
        copy_verified(registry, version, path)
    return True


def unrecorded_changes(registry: Registry, name: str) -> list[str]:
    """Files of ``adapters/NAME`` whose content is in no recorded version (lost if overwritten)."""
    target = registry.adapter_dir(name)
    if not target.is_dir():
        return []
    present = sorted(p.name for p in target.iterdir() if p.is_file())
    recorded: dict[str, str] = {}
    manifest = None
    with contextlib.suppress(Exception):
        manifest = Manifest.from_json((target / MANIFEST_FILE).read_bytes())
    if manifest is not None:
        reg = registry.index.find(name, manifest.version)
        if reg is not None:
            recorded = registry.git.tree_entries(reg.commit, adapter_path(name))
    changed = []
    git_files = [f for f in present if f != WEIGHTS_FILE]
    for filename, oid in zip(
        git_files, registry.git.hash_files([target / f for f in git_files]), strict=True
    ):
        if recorded.get(filename) != oid:
            changed.append(filename)
    if WEIGHTS_FILE in present:
        sha = file_sha256(target / WEIGHTS_FILE)
        if manifest is None or sha != manifest.weights.sha256:
            changed.append(WEIGHTS_FILE)
    return _recorded_elsewhere(registry, name, changed) if changed else changed


def _recorded_elsewhere(registry: Registry, name: str, changed: list[str]) -> list[str]:
    """Of `changed` (files of ``adapters/NAME`` that differ from the version its manifest
    names), those that no version of `name` and no commit at HEAD records either.

    A merge resolved with git (``git checkout --theirs``) leaves one version's files beside
    another version's weights, and ``git pull`` without tags brings a version whose tag is not
    here: nothing in them would be lost by a checkout.
    """
    target = registry.adapter_dir(name)
    regs = registry.index.registrations(name)
    commits = [r.commit for r in regs]
    head = registry.git.head()
    if head:
        commits.append(head)
    git_files = [f for f in changed if f != WEIGHTS_FILE]
    ids = registry.git.object_ids(
        [f"{c}:{adapter_path(name, f)}" for c in commits for f in git_files]
    )
    recorded = {
        (f, oid)
        for (c, f), oid in zip([(c, f) for c in commits for f in git_files], ids, strict=True)
        if oid is not None
    }
    work = dict(
        zip(git_files, registry.git.hash_files([target / f for f in git_files]), strict=True)
    )
    left = [f for f in git_files if (f, work[f]) not in recorded]
    if WEIGHTS_FILE in changed:
        known = {v.weights.sha256 for v in registry.versions(regs)}
        if head:
            raw = registry.git.read_blob(head, adapter_path(name, MANIFEST_FILE))
            with contextlib.suppress(AdapterGitError):
                known.add(Manifest.from_json(raw or b"").weights.sha256)
        if file_sha256(target / WEIGHTS_FILE) not in known:
            left.append(WEIGHTS_FILE)
    return left


__all__ = ["checkout", "copy_verified", "fetch_missing", "restore_weights", "unrecorded_changes"]
