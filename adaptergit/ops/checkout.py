"""Bringing a version back: into ``adapters/NAME`` (in place) or into a folder of its own.

Weights come from the DVC cache (fetched from the default remote when missing) and are checked
against the manifest's sha256 while they are copied, so a damaged object is never handed over.
A mismatch never deletes anything: an object that still matches its own md5 is sound and the
manifest is what is wrong (the version is refused, the object kept for the versions that share
it); one that does not is moved to quarantine and fetched again.

Both kinds of checkout converge: in place, the folder is rewritten under a journal
(`adaptergit.txn.DirTransaction`); with ``--to``, the folder is built as a hidden sibling and
renamed into place, so a failure or a kill never leaves a folder PEFT would load as complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

from adaptergit import txn
from adaptergit.errors import (
    AdapterGitError,
    CorruptObject,
    DestinationNotEmpty,
    FileSystemError,
    GitViewConflict,
    IntegrityError,
    ManagedDestination,
    ManifestMismatch,
    UncommittedChanges,
    WeightsMissing,
)
from adaptergit.fsutil import (
    atomic_output,
    atomic_write,
    crash_point,
    fsync_dir,
    open_regular,
    read_in_tree,
    safe_folder,
    safe_path,
)
from adaptergit.hashcache import file_sha256, md5_sha256_of
from adaptergit.layout import (
    ADAPTER_FILES,
    ADAPTERS_DIR,
    CARD_FILE,
    CONFIG_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    TRACKED_FILES,
    WEIGHTS_FILE,
    adapter_path,
)
from adaptergit.manifest import MAX_MANIFEST_BYTES, Manifest, Version, WeightsInfo
from adaptergit.ops import transfer
from adaptergit.refs import Ref
from adaptergit.registry import Registry

_CHUNK = 8 << 20


def checkout(
    registry: Registry, ref: str | Ref, to: Path | str | None = None, *, force: bool = False
) -> Path:
    """Bring back a version's files: into ``adapters/NAME``, or with `to` into a new folder.

    Args:
        registry: the registry.
        ref: the version (any reference `Registry.resolve` takes).
        to: a folder to write the version into (config, weights, manifest, metrics and a
            Hugging Face model card), which must be empty or absent unless `force`; never a
            folder under ``adapters/``, ``.git`` or ``.dvc``. It appears complete or not at all.
        force: overwrite changes in ``adapters/NAME`` that no version records, or the files of
            a non-empty `to` folder.

    Returns:
        The folder written.

    Raises:
        UncommittedChanges: ``adapters/NAME`` holds unrecorded changes (without `force`).
        DestinationNotEmpty: `to` is not empty (without `force`).
        ManagedDestination: `to` is inside a folder adaptergit manages.
        UnsafePath: ``adapters`` or ``adapters/NAME`` is a symbolic link.
        WeightsMissing, TransferFailed: the weights are in neither the cache nor the remote.
        IntegrityError: the weights do not match the manifest's sha256 (`ManifestMismatch`
            when the manifest is what is wrong, `CorruptObject` when the weights are).
    """
    version = registry.resolve(ref)
    name = version.name
    dest = _destination(registry, Path(to), force=force) if to is not None else None
    if dest is None:
        safe_folder(registry.root, adapter_path(name))  # refused before anything is fetched
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
    if dest is not None:
        return _export(registry, version, blobs, dest)
    _check_git_view(registry, name, force=force)
    # As git would write them into the work tree (line endings, filters): git status agrees.
    present = [f for f, data in blobs.items() if data is not None]
    smudged = registry.git.checkout_bytes(version.commit, [adapter_path(name, f) for f in present])
    blobs.update({f: data for f, data in zip(present, smudged, strict=True) if data is not None})
    with registry.lock():
        target = safe_folder(registry.root, adapter_path(name))
        if not force:
            changed = unrecorded_changes(registry, name)
            if changed:
                raise UncommittedChanges(name, changed)
        with txn.DirTransaction(registry.state_dir, target, ADAPTER_FILES) as journal:
            for filename, data in blobs.items():
                if data is not None:
                    journal.write(filename, data)
            copy_verified(
                registry, version, target / WEIGHTS_FILE, tmp_name=journal.tmp_name(WEIGHTS_FILE)
            )
            crash_point("checkout.copied")
        registry.git.recheck([adapter_path(name, f) for f in present])
    return target


def _destination(registry: Registry, to: Path, *, force: bool) -> Path:
    """The absolute folder `to` names, checked: not adaptergit's own, empty unless `force`."""
    dest = Path(os.path.realpath(to)) if to.exists() else Path(os.path.abspath(to))
    root = Path(os.path.realpath(registry.root))
    for managed, advice in (
        (ADAPTERS_DIR, "to restore a version there run `adaptergit checkout REF` without --to"),
        (".git", "pick a folder outside it"),
        (".dvc", "pick a folder outside it"),
    ):
        top = root / managed
        if dest == top or top in dest.parents:
            raise ManagedDestination(to, f"{managed}/", advice)
    if dest.exists() and not dest.is_dir():
        raise DestinationNotEmpty(to)
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise DestinationNotEmpty(to)
    return dest


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
    registry: Registry, version: Version, blobs: dict[str, bytes | None], dest: Path
) -> Path:
    """Write `version` into `dest` (the files PEFT loads, plus a model card), all or nothing.

    The folder is built as a hidden sibling of `dest`, journaled (`adaptergit.txn.OwnedTemps`),
    then renamed into place; into a non-empty `dest` (``--force``) each finished file is renamed
    in, the weights last.
    """
    from adaptergit import modelcard  # a Hub model card, so the folder uploads as it is

    card = modelcard.render(version, registry.config_at(version.name, version.commit))
    files = {f: blobs[f] for f in (CONFIG_FILE, METRICS_FILE, MANIFEST_FILE)}
    files[CARD_FILE] = card
    with registry.lock(), txn.owned_temps(registry.state_dir) as temps:
        tmp = temps.add(dest.parent / temps.name(f"{dest.name[:40]}-"))
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            copy_verified(registry, version, tmp / WEIGHTS_FILE)
            crash_point("export.weights")
            for filename, data in files.items():
                if data is not None:
                    atomic_write(tmp / filename, data)
            fsync_dir(tmp)
            crash_point("export.built")
            if dest.is_dir() and any(dest.iterdir()):
                for filename in [*files, WEIGHTS_FILE]:
                    if (tmp / filename).exists():
                        os.replace(tmp / filename, dest / filename)
                fsync_dir(dest)
            else:
                os.replace(tmp, dest)  # over an empty folder too
            fsync_dir(dest.parent)
        except FileSystemError as exc:
            raise FileSystemError(dest, OSError(exc.errno, _reason(exc))) from None
        except OSError as exc:
            raise FileSystemError(dest, exc) from None
    return dest


def _reason(exc: FileSystemError) -> str:
    return os.strerror(exc.errno) if exc.errno else str(exc)


def fetch_missing(registry: Registry, version: Version) -> None:
    """Fetch a version's weights when the cache lacks them and a remote is configured.

    Raises:
        WeightsMissing: there is no default remote to fetch them from.
        TransferFailed: the remote did not deliver them.
    """
    if registry.remotes.default() is None:
        raise WeightsMissing(version.name, version.version, version.weights.md5)
    transfer.fetch_versions(registry, [version])


def copy_verified(
    registry: Registry, version: Version, dst: Path, *, tmp_name: str | None = None
) -> None:
    """Copy the weights from the cache to `dst`, checking sha256 in the same read.

    On a mismatch the cache object is re-read for its md5: if it matches, the object is sound
    and the manifest is wrong (`ManifestMismatch`; the object, which other versions may share,
    is kept); if not, the object is moved to quarantine and, when a remote is configured,
    fetched again. Nothing is ever deleted.

    Args:
        tmp_name: the temporary name for the copy beside `dst` (a journal's).

    Raises:
        ManifestMismatch, CorruptObject: see above.
    """
    weights = version.weights
    try:
        _copy_checked(registry, weights, dst, tmp_name)
        return
    except IntegrityError:
        pass
    src = registry.dvc.cache_path(weights.md5)
    digests = md5_sha256_of(src)
    if digests is not None and digests[0] == weights.md5:
        raise ManifestMismatch(version.ref, weights.md5, weights.sha256, digests[1])
    moved = registry.dvc.quarantine(weights.md5)
    where = f"moved to {moved}" if moved else "left in place"
    if registry.remotes.default() is None:
        raise CorruptObject(
            "DVC cache", weights.md5, [version.ref], f"{where}; no remote to fetch a good copy"
        )
    fetch_missing(registry, version)
    _copy_checked(registry, weights, dst, tmp_name)


def _copy_checked(
    registry: Registry, weights: WeightsInfo, dst: Path, tmp_name: str | None
) -> None:
    """Copy a cache object to `dst` atomically, raising IntegrityError on a sha256 mismatch."""
    src = registry.dvc.cache_path(weights.md5)
    digest = hashlib.sha256()
    with open_regular(src) as fin, atomic_output(dst, tmp_name=tmp_name) as (_tmp, fd):
        view = memoryview(bytearray(_CHUNK))
        first = True
        while True:
            n = fin.readinto(view)
            if not n:
                break
            chunk = view[:n]
            digest.update(chunk)
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]
            if first:
                crash_point("copy.chunk")
                first = False
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

    Raises:
        UnsafePath: ``adapters/NAME`` or its manifest is a symbolic link.
        InvalidManifest: the manifest cannot be read.
        IntegrityError: see `copy_verified`.
    """
    rel = adapter_path(name, MANIFEST_FILE)
    raw = read_in_tree(registry.root, rel, MAX_MANIFEST_BYTES)
    if raw is None:
        return False
    manifest = Manifest.from_json(raw, rel)
    weights = manifest.weights
    target = safe_path(registry.root, adapter_path(name))
    path = target / WEIGHTS_FILE
    if (
        _is_regular(path)
        and path.stat().st_size == weights.size
        and file_sha256(path) == weights.sha256
    ):
        return False
    version = Version.of_manifest(manifest, name=name)
    with registry.lock():
        target = safe_folder(registry.root, adapter_path(name))
        if not registry.dvc.in_cache(weights.md5):
            if not fetch:
                raise WeightsMissing(name, manifest.version, weights.md5)
            fetch_missing(registry, version)
        with txn.DirTransaction(registry.state_dir, target, [WEIGHTS_FILE]) as journal:
            copy_verified(registry, version, path, tmp_name=journal.tmp_name(WEIGHTS_FILE))
    return True


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def unrecorded_changes(registry: Registry, name: str) -> list[str]:
    """Files of ``adapters/NAME`` whose content is in no recorded version (lost if overwritten).

    A symbolic link or anything else that is no regular file counts as a change, unread.

    Raises:
        UnsafePath: ``adapters`` or ``adapters/NAME`` is a symbolic link.
    """
    target = safe_path(registry.root, adapter_path(name))
    if not target.is_dir():
        return []
    present: list[str] = []
    odd: list[str] = []
    cache = os.path.realpath(registry.dvc.cache_dir)
    for entry in sorted(target.iterdir()):
        # Weights that DVC checked out as a link into its cache (cache.type symlink) are fine.
        linked = entry.name == WEIGHTS_FILE and os.path.realpath(entry).startswith(cache + os.sep)
        (present if _is_regular(entry) or linked else odd).append(entry.name)
    recorded: dict[str, str] = {}
    manifest = None
    with contextlib.suppress(Exception):
        raw = read_in_tree(registry.root, adapter_path(name, MANIFEST_FILE), MAX_MANIFEST_BYTES)
        manifest = Manifest.from_json(raw) if raw is not None else None
    if manifest is not None:
        reg = registry.index.find(name, manifest.version)
        if reg is not None:
            recorded = registry.git.tree_entries(reg.commit, adapter_path(name))
    changed = list(odd)
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
