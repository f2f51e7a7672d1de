"""Keeping a registry sound: verify what is stored, report what is pending, reclaim space.

- `verify` re-reads every byte it checks. DVC skips re-hashing cache files that are read-only,
  trusting the mode; a flipped byte in such a file is exactly what verify must catch.
- `status` is the cheap one: one ``for-each-ref``, one ``cat-file --batch-check`` and one
  ``hash-object`` for all adapters, stat calls, and hashes only of weights whose size, mtime or
  inode changed since they were last hashed (the stat-keyed hash cache).
- `gc` deletes only weights that some adaptergit version recorded (found in the history of every
  ref), and of those only the ones that nothing kept refers to. Every other object in the DVC
  cache (a user's datasets, pipeline outputs) is out of its reach.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptergit.config import ADAPTERS_DIR
from adaptergit.errors import AdapterGitError, InvalidInput
from adaptergit.refs import SemVer, parse_stage_tag, parse_version_tag

if TYPE_CHECKING:
    from adaptergit.manifest import Version
    from adaptergit.repo import Repo

# progress(done_bytes, total_bytes): called as hashing proceeds; the CLI draws a bar from it.
Progress = Callable[[int, int], None]

WEIGHTS_FILE = "adapter_model.safetensors"
POINTER_FILE = WEIGHTS_FILE + ".dvc"
MANIFEST_FILE = "manifest.json"
_CHUNK = 8 << 20

# Problem kinds, each one line for people and a stable word for scripts.
WORKTREE_MISMATCH = "worktree-mismatch"
WORKTREE_MISSING = "worktree-missing"
CACHE_CORRUPT = "cache-corrupt"
CACHE_MISSING = "cache-missing"
REMOTE_MISSING = "remote-missing"
LOST = "lost"
NO_MANIFEST = "no-manifest"


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    """One thing verify found wrong with one version's weights."""

    ref: str
    kind: str
    detail: str
    path: str | None = None

    @property
    def line(self) -> str:
        return f"{self.ref}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "kind": self.kind, "detail": self.detail, "path": self.path}


@dataclass(frozen=True, kw_only=True, slots=True)
class AdapterStatus:
    """How ``adapters/NAME`` in the work tree compares with the adapter's latest version.

    state: "clean"; "behind" (an older version, unmodified, is checked out); "modified" (files
    that match neither); "missing-weights"; "deleted" (tracked at HEAD, gone from the work tree);
    "untracked" (a folder with no registered version).
    """

    name: str
    state: str
    latest: str | None
    current: str | None
    changed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "latest": self.latest,
            "current": self.current,
            "changed": list(self.changed),
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusReport:
    """What is uncommitted, unpushed or at risk, and what set-up is missing."""

    adapters: tuple[AdapterStatus, ...]
    remote: str | None
    unpushed: tuple[str, ...]
    missing: tuple[str, ...]
    hooks_missing: tuple[str, ...]
    driver_configured: bool
    versions: int

    @property
    def dirty(self) -> tuple[AdapterStatus, ...]:
        return tuple(a for a in self.adapters if a.state != "clean")

    @property
    def clean(self) -> bool:
        return (
            not (self.dirty or self.unpushed or self.missing or self.hooks_missing)
            and self.driver_configured
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "adapters": [a.to_dict() for a in self.adapters],
            "remote": self.remote,
            "versions": self.versions,
            "unpushed": list(self.unpushed),
            "missing": list(self.missing),
            "hooks_missing": list(self.hooks_missing),
            "diff_driver": self.driver_configured,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class GcItem:
    """One weights object gc removed (or, in a dry run, would remove)."""

    md5: str
    size: int  # bytes; -1 when not known
    versions: tuple[str, ...]  # the registered versions that recorded it

    def to_dict(self) -> dict[str, Any]:
        return {"md5": self.md5, "size": self.size, "versions": list(self.versions)}


@dataclass(frozen=True, kw_only=True, slots=True)
class GcReport:
    """What gc kept and what it removed from the cache and, with remote, from the DVC remote."""

    dry_run: bool
    kept: tuple[str, ...]  # versions whose weights are kept
    removed: tuple[GcItem, ...]
    remote: str | None = None
    remote_removed: tuple[GcItem, ...] = field(default_factory=tuple)

    @property
    def freed(self) -> int:
        return sum(max(i.size, 0) for i in self.removed)

    @property
    def remote_freed(self) -> int:
        return sum(max(i.size, 0) for i in self.remote_removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "kept": list(self.kept),
            "removed": [i.to_dict() for i in self.removed],
            "bytes": self.freed,
            "remote": self.remote,
            "remote_removed": [i.to_dict() for i in self.remote_removed],
            "remote_bytes": self.remote_freed,
        }


# --- hashing ----------------------------------------------------------------------------------


class _Meter:
    """Adds up bytes hashed by several threads and reports them to a Progress callback."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        import threading

        self.total = total
        self.done = 0
        self.progress = progress
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        if self.progress is None:
            return
        with self._lock:
            self.done += n
            self.progress(self.done, self.total)


def _sha256(path: Path, meter: _Meter | None = None) -> str | None:
    """The sha256 of a file's bytes, read in full whatever its mode; None if it is unreadable."""
    digest = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    try:
        with open(path, "rb") as f:
            while n := f.readinto(buf):
                digest.update(view[:n])
                if meter is not None:
                    meter.add(n)
    except OSError:
        return None
    return digest.hexdigest()


def _hash_all(paths: Sequence[Path], progress: Progress | None) -> list[str | None]:
    """sha256 of each path; a few threads, since hashlib releases the GIL on large buffers."""
    total = 0
    for p in paths:
        with contextlib.suppress(OSError):
            total += p.stat().st_size
    meter = _Meter(total, progress)
    workers = max(1, min(len(paths), os.cpu_count() or 1, 4))
    if workers == 1:
        return [_sha256(p, meter) for p in paths]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: _sha256(p, meter), paths))


# --- verify -----------------------------------------------------------------------------------


def _worktree_versions(repo: Repo, *, strict: bool = True) -> list[Version]:
    """The versions the work tree's ``adapters/*/manifest.json`` files say are checked out.

    A manifest that does not parse is an error when `strict`, else skipped.
    """
    from adaptergit.manifest import Manifest, Version

    versions = []
    base = repo.root / ADAPTERS_DIR
    for entry in sorted(base.iterdir()) if base.is_dir() else []:
        path = entry / MANIFEST_FILE
        if not path.is_file():
            continue
        try:
            manifest = Manifest.from_json(
                path.read_bytes(), f"{ADAPTERS_DIR}/{entry.name}/{MANIFEST_FILE}"
            )
        except AdapterGitError:
            if strict:
                raise
            continue
        versions.append(
            Version(
                name=entry.name,
                version=manifest.version,
                commit="",
                tag=None,
                created=0,
                manifest=manifest,
            )
        )
    return versions


def verify(
    repo: Repo,
    ref: str | None = None,
    *,
    all_versions: bool = False,
    remote: bool = False,
    progress: Progress | None = None,
) -> list[Problem]:
    """Check weights against the manifests' sha256: work tree, cache and, with remote, the remote.

    Which versions: `ref`'s; with `all_versions` every registered one; by default those checked
    out in the work tree. Every cache object and work-tree file involved is re-read in full. A
    version whose weights are simply not in the cache is a problem when it was asked for (a ref,
    or the work tree), not in an `all_versions` sweep, where old versions are often only on the
    remote; with `remote`, weights in neither place are reported as lost. `remote` checks that
    the DVC remote holds `ref`, or else every version reachable from HEAD.
    """
    from adaptergit import sync

    if ref is not None and all_versions:
        raise InvalidInput("give either a reference or --all, not both")
    if ref is not None:
        versions = [repo.resolve(ref)]
    elif all_versions:
        versions = repo.log()
    else:
        versions = _worktree_versions(repo)
    problems: list[Problem] = []
    for v in versions:
        if v.manifest is None:
            problems.append(
                Problem(ref=v.ref, kind=NO_MANIFEST, detail="has no adaptergit manifest")
            )
    versions = [v for v in versions if v.manifest is not None]

    # Work-tree copies: any adapters/NAME whose manifest records the same weights as a version.
    tree_jobs: dict[Path, tuple[str, str]] = {}  # path -> (sha256, ref)
    for current in _worktree_versions(repo, strict=False):
        assert current.manifest is not None
        expected = current.manifest.weights
        if not any(
            v.name == current.name and v.manifest and v.manifest.weights.sha256 == expected.sha256
            for v in versions
        ):
            continue
        path = repo.adapter_dir(current.name) / WEIGHTS_FILE
        rel = f"{ADAPTERS_DIR}/{current.name}/{WEIGHTS_FILE}"
        if not path.is_file():
            problems.append(
                Problem(
                    ref=current.ref,
                    kind=WORKTREE_MISSING,
                    path=rel,
                    detail=f"{rel} is missing (restore it with `adaptergit checkout {current.ref}`)",
                )
            )
        elif path.stat().st_size != expected.size:
            problems.append(
                _mismatch(
                    current.ref, rel, f"{path.stat().st_size} bytes, recorded {expected.size}"
                )
            )
        else:
            tree_jobs[path] = (expected.sha256, current.ref)

    # Cache objects, each once however many versions share it.
    by_md5: dict[str, list[Version]] = {}
    for v in versions:
        assert v.manifest is not None
        by_md5.setdefault(v.manifest.weights.md5, []).append(v)
    cache_jobs: dict[Path, str] = {}
    absent: set[str] = set()
    for md5, owners in by_md5.items():
        weights = owners[0].manifest.weights  # type: ignore[union-attr]
        path = repo.dvc.cache_path(md5)
        refs = ", ".join(v.ref for v in owners)
        if not path.is_file():
            absent.add(md5)
            if not all_versions and not remote:
                problems.append(
                    Problem(
                        ref=refs,
                        kind=CACHE_MISSING,
                        path=str(path),
                        detail=f"weights (md5 {md5[:12]}) are not in the DVC cache",
                    )
                )
        elif path.stat().st_size != weights.size:
            problems.append(
                _corrupt(refs, path, f"{path.stat().st_size} bytes, recorded {weights.size}")
            )
        else:
            cache_jobs[path] = md5

    paths = [*tree_jobs, *cache_jobs]
    for path, digest in zip(paths, _hash_all(paths, progress), strict=True):
        if path in tree_jobs:
            expected_sha, vref = tree_jobs[path]
            if digest != expected_sha:
                rel = str(path.relative_to(repo.root))
                problems.append(
                    _mismatch(vref, rel, f"sha256 {str(digest)[:12]}, recorded {expected_sha[:12]}")
                )
        else:
            md5 = cache_jobs[path]
            owners = by_md5[md5]
            expected_sha = owners[0].manifest.weights.sha256  # type: ignore[union-attr]
            if digest != expected_sha:
                got = "unreadable" if digest is None else f"sha256 {digest[:12]}"
                problems.append(
                    _corrupt(
                        ", ".join(v.ref for v in owners),
                        path,
                        f"{got}, recorded {expected_sha[:12]}",
                    )
                )

    if remote:
        name = sync.require_remote(repo, None)
        wanted = [repo.resolve(ref)] if ref is not None else sync.versions_reachable(repo)
        wanted = [v for v in wanted if v.manifest is not None]
        md5s = {v.manifest.weights.md5 for v in wanted}  # type: ignore[union-attr]
        not_there = repo.remotes.missing(md5s, name) if md5s else set()
        for v in wanted:
            md5 = v.manifest.weights.md5  # type: ignore[union-attr]
            if md5 not in not_there:
                continue
            if repo.dvc.in_cache(md5):
                problems.append(
                    Problem(
                        ref=v.ref,
                        kind=REMOTE_MISSING,
                        detail=f"weights (md5 {md5[:12]}) are not on DVC remote {name!r}; "
                        "upload them with `adaptergit push`",
                    )
                )
            else:
                problems.append(
                    Problem(
                        ref=v.ref,
                        kind=LOST,
                        detail=f"weights (md5 {md5[:12]}) are in neither the DVC cache nor "
                        f"DVC remote {name!r}",
                    )
                )
    problems.sort(key=lambda p: (p.ref, p.kind))
    return problems


def _mismatch(ref: str, rel: str, detail: str) -> Problem:
    return Problem(
        ref=ref,
        kind=WORKTREE_MISMATCH,
        path=rel,
        detail=f"{rel} does not match the manifest ({detail})",
    )


def _corrupt(refs: str, path: Path, detail: str) -> Problem:
    return Problem(
        ref=refs,
        kind=CACHE_CORRUPT,
        path=str(path),
        detail=f"DVC cache object {path} is corrupt ({detail}); "
        "`adaptergit checkout` re-fetches it from the remote",
    )


# --- status -----------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def _weights_hash(path: Path, cache: Any, progress: Progress | None) -> str | None:
    """sha256 of a work-tree weights file, from the stat-keyed cache when it is unchanged."""
    from adaptergit.hashcache import file_sha256

    def compute(p: Path) -> str | None:
        try:
            size = p.stat().st_size
        except OSError:
            return None
        return _sha256(p, _Meter(size, progress))

    return file_sha256(path, cache, compute)


def _tree_id(entries: dict[str, str]) -> str:
    """The id git gives a tree of regular files (name -> blob id), computed without writing it."""
    body = b"".join(
        b"100644 " + name.encode() + b"\0" + bytes.fromhex(oid)
        for name, oid in sorted(entries.items(), key=lambda e: e[0].encode())
    )
    return hashlib.sha1(b"tree %d\0" % len(body) + body, usedforsecurity=False).hexdigest()


def status(
    repo: Repo, *, progress: Progress | None = None, check_remote: bool = True
) -> StatusReport:
    """Adapters changed in the work tree, versions not on the remote or nowhere, set-up missing.

    The common case costs one lookup per adapter: the tree id of ``adapters/NAME`` at its latest
    version against the tree id of the work-tree files (computed from their blob ids), plus a
    stat-keyed hash of the weights. Only adapters that differ get a file-by-file comparison.
    """
    from adaptergit import hooks
    from adaptergit.diff import DRIVER
    from adaptergit.dvcrepo import Pointer
    from adaptergit.hashcache import default_cache
    from adaptergit.repo import TRACKED_FILES

    git = repo.git
    regs = repo._registrations()
    latest: dict[str, tuple[SemVer, str]] = {}
    tags_of: dict[str, dict[str, str]] = {}  # name -> version -> commit
    for tag, name, semver in regs:
        tags_of.setdefault(name, {})[str(semver)] = tag.commit
        if name not in latest or semver > latest[name][0]:
            latest[name] = (semver, tag.commit)

    base = repo.root / ADAPTERS_DIR
    present = {e.name: e for e in os.scandir(base) if e.is_dir()} if base.is_dir() else {}
    head = git.head()
    at_head = set(git.list_dir(head, ADAPTERS_DIR)) if head else set()

    # Blob ids of the work tree's git-tracked files (one call), tree ids of the latest versions.
    files: dict[str, list[str]] = {}
    for name, entry in present.items():
        names = {f.name for f in os.scandir(entry.path) if f.is_file()}
        files[name] = [f for f in TRACKED_FILES if f in names]
    flat = [(n, f) for n in sorted(files) for f in files[n]]
    work_ids = dict(zip(flat, git.hash_files([base / n / f for n, f in flat]), strict=True))
    compared = sorted(n for n in files if n in latest)
    latest_trees = dict(
        zip(
            compared,
            git.object_ids([f"{latest[n][1]}:{ADAPTERS_DIR}/{n}" for n in compared], kind="tree"),
            strict=True,
        )
    )
    cache = default_cache()

    def weights_differ(name: str, manifest: Any) -> bool:
        weights = manifest.get("weights") if isinstance(manifest, dict) else None
        weights = weights if isinstance(weights, dict) else {}
        path = base / name / WEIGHTS_FILE
        try:
            size = path.stat().st_size
        except OSError:
            return True
        if size != weights.get("size"):
            return True
        return _weights_hash(path, cache, progress) != weights.get("sha256")

    def compare(name: str, commit: str) -> list[str]:
        """Files of adapters/NAME that differ from the version at `commit`."""
        recorded = git.object_ids([f"{commit}:{ADAPTERS_DIR}/{name}/{f}" for f in TRACKED_FILES])
        changed = [
            f
            for f, want in zip(TRACKED_FILES, recorded, strict=True)
            if want != work_ids.get((name, f))
        ]
        if MANIFEST_FILE not in changed:
            manifest = _read_json(base / name / MANIFEST_FILE)
        else:  # the recorded manifest says what the weights should be
            raw = git.cat_blobs([f"{commit}:{ADAPTERS_DIR}/{name}/{MANIFEST_FILE}"])[0]
            manifest = json.loads(raw) if raw else None
        if weights_differ(name, manifest):
            changed.append(WEIGHTS_FILE)
        return changed

    states: list[AdapterStatus] = []
    clean_pointers: dict[str, bytes] = {}  # latest version's tag -> its pointer, read locally
    for name in sorted(set(present) | (set(latest) & at_head)):
        top = str(latest[name][0]) if name in latest else None
        if name not in present:
            states.append(AdapterStatus(name=name, state="deleted", latest=top, current=None))
            continue
        if name not in latest:
            states.append(
                AdapterStatus(
                    name=name,
                    state="untracked",
                    latest=None,
                    current=None,
                    changed=tuple(files[name]),
                )
            )
            continue
        work_tree = _tree_id({f: work_ids[(name, f)] for f in files[name]})
        if work_tree == latest_trees.get(name):
            manifest = _read_json(base / name / MANIFEST_FILE)
            if not weights_differ(name, manifest):
                states.append(AdapterStatus(name=name, state="clean", latest=top, current=top))
                with contextlib.suppress(OSError):
                    clean_pointers[f"{name}@{top}"] = (base / name / POINTER_FILE).read_bytes()
                continue
            changed = [WEIGHTS_FILE]
        else:
            changed = compare(name, latest[name][1])
        if changed == [WEIGHTS_FILE] and not (base / name / WEIGHTS_FILE).exists():
            states.append(
                AdapterStatus(
                    name=name,
                    state="missing-weights",
                    latest=top,
                    current=top,
                    changed=(WEIGHTS_FILE,),
                )
            )
            continue
        manifest = _read_json(base / name / MANIFEST_FILE)
        current = manifest.get("version") if isinstance(manifest, dict) else None
        if isinstance(current, str) and current != top and current in tags_of.get(name, {}):
            older = compare(name, tags_of[name][current])
            state = "modified" if older else "behind"
            states.append(
                AdapterStatus(
                    name=name, state=state, latest=top, current=current, changed=tuple(older)
                )
            )
        else:
            states.append(
                AdapterStatus(
                    name=name, state="modified", latest=top, current=top, changed=tuple(changed)
                )
            )

    # Versions' weights: in the cache (stat), on the remote (stat for a directory remote).
    others = [(tag, name) for tag, name, _s in regs if tag.name not in clean_pointers]
    fetched = git.cat_blobs(
        [f"{tag.commit}:{ADAPTERS_DIR}/{name}/{POINTER_FILE}" for tag, name in others]
    )
    raw_pointers = {
        **clean_pointers,
        **{tag.name: raw for (tag, _n), raw in zip(others, fetched, strict=True)},
    }
    by_md5: dict[str, list[str]] = {}
    for tag_name, raw in raw_pointers.items():
        if raw is None:
            continue
        try:
            by_md5.setdefault(Pointer.parse(raw).md5, []).append(tag_name)
        except AdapterGitError:
            continue
    remote = repo.remotes.default() if check_remote else None
    not_on_remote: set[str] = set()
    if remote is not None and by_md5:
        not_on_remote = repo.remotes.missing_quick(by_md5, remote)
    unpushed, missing = [], []
    for md5, refs in by_md5.items():
        local = repo.dvc.in_cache(md5)
        if not local and (remote is None or md5 in not_on_remote):
            missing.extend(refs)
        elif local and remote is not None and md5 in not_on_remote:
            unpushed.extend(refs)

    hook_states = hooks.status(git)
    return StatusReport(
        adapters=tuple(states),
        remote=remote,
        unpushed=tuple(sorted(unpushed, key=_version_order)),
        missing=tuple(sorted(missing, key=_version_order)),
        hooks_missing=tuple(h.name for h in hook_states if not h.installed),
        driver_configured=git.config_get(f"diff.{DRIVER}.textconv") is not None,
        versions=len(regs),
    )


def _version_order(tag: str) -> tuple[str, SemVer]:
    parsed = parse_version_tag(tag)
    assert parsed is not None
    return parsed


# --- gc ---------------------------------------------------------------------------------------


def _is_dvc_file(path: str) -> bool:
    return path.endswith(".dvc") or path == "dvc.lock" or path.endswith("/dvc.lock")


def _tree_md5s(repo: Repo, commits: Iterable[str]) -> set[str]:
    """Object ids named by every .dvc file and dvc.lock in the trees of these commits."""
    from adaptergit.dvcrepo import md5s_in

    blobs: set[str] = set()
    for commit in sorted(set(commits)):
        blobs.update(repo.git.files_in_tree(commit, _is_dvc_file).values())
    found: set[str] = set()
    for raw in repo.git.cat_blobs(sorted(blobs)):
        if raw is not None:
            found |= md5s_in(raw.decode(errors="replace"))
    return found


def _worktree_md5s(repo: Repo) -> set[str]:
    from adaptergit.dvcrepo import md5s_in

    found: set[str] = set()
    for rel in repo.git.working_files(_is_dvc_file):
        try:
            found |= md5s_in((repo.root / rel).read_text(errors="replace"))
        except OSError:
            continue
    return found


def gc(
    repo: Repo,
    *,
    keep_last: int | None = None,
    keep_stages: bool = True,
    remote: bool = False,
    dry_run: bool = False,
) -> GcReport:
    """Remove weights that no kept version, ref or work-tree file needs from the cache (and remote).

    Kept: the latest version of every adapter; with `keep_last` N the N highest versions of each,
    and without it every registered version; versions holding a stage (unless `keep_stages` is
    False); every object named by a .dvc file or dvc.lock at any branch, remote-tracking branch,
    HEAD or tag other than adaptergit's own version and stage tags (a version tag keeps its own
    adapter's weights only, and only while the policy keeps that version); and everything the work
    tree's .dvc files name (``.dir`` listings expanded). Only objects that an adaptergit version
    recorded are ever candidates.
    """
    from adaptergit import sync
    from adaptergit.dvcrepo import Pointer, md5s_in

    if keep_last is not None and keep_last < 1:
        raise InvalidInput("--keep-last must be at least 1 (the latest version is always kept)")
    lock = repo._locked() if not dry_run else contextlib.nullcontext()
    with lock:
        regs = repo._registrations()
        pointers = repo.git.cat_blobs(
            [f"{tag.commit}:{ADAPTERS_DIR}/{name}/{POINTER_FILE}" for tag, name, _s in regs]
        )
        version_md5: dict[str, tuple[str, int]] = {}  # tag -> (md5, size)
        for (tag, _name, _semver), raw in zip(regs, pointers, strict=True):
            if raw is None:
                continue
            try:
                pointer = Pointer.parse(raw)
            except AdapterGitError:
                continue
            version_md5[tag.name] = (pointer.md5, pointer.size)
        owners: dict[str, list[str]] = {}
        sizes: dict[str, int] = {}
        for tag_name, (md5, size) in version_md5.items():
            owners.setdefault(md5, []).append(tag_name)
            sizes[md5] = size

        # Everything adaptergit ever recorded: version tags, and the pointers' whole history.
        ours = set(owners) | md5s_in(repo.git.history_text([f"{ADAPTERS_DIR}/*/{POINTER_FILE}"]))

        # What the policy keeps.
        per_name: dict[str, list[tuple[SemVer, str]]] = {}
        for tag, name, semver in regs:
            per_name.setdefault(name, []).append((semver, tag.name))
        kept_tags: set[str] = set()
        for items in per_name.values():
            items.sort(reverse=True)
            count = len(items) if keep_last is None else keep_last
            kept_tags.update(t for _s, t in items[: max(count, 1)])
        staged_commits: list[tuple[str, str]] = []
        if keep_stages:
            staged_commits = [nc for nc, stages in repo._stages().items() if stages]
            by_commit = {(name, tag.commit): tag.name for tag, name, _s in regs}
            for name_commit in staged_commits:
                if name_commit in by_commit:
                    kept_tags.add(by_commit[name_commit])
        kept = {version_md5[t][0] for t in kept_tags if t in version_md5}
        if keep_stages and staged_commits:  # a stage on a commit no version tag names
            raws = repo.git.cat_blobs(
                [f"{c}:{ADAPTERS_DIR}/{n}/{POINTER_FILE}" for n, c in staged_commits]
            )
            kept |= {md5 for raw in raws if raw for md5 in md5s_in(raw.decode(errors="replace"))}

        # Refs the user keeps (everything but adaptergit's version and stage tags), the work tree.
        tips = []
        for ref, commit in repo.git.ref_tips():
            if ref.startswith("refs/tags/"):
                short = ref[len("refs/tags/") :]
                if parse_version_tag(short) or parse_stage_tag(short):
                    continue
            tips.append(commit)
        kept |= _tree_md5s(repo, tips)
        kept |= _worktree_md5s(repo)
        for oid in [k for k in kept if k.endswith(".dir")]:
            kept |= repo.dvc.dir_entries(oid)

        drop = ours - kept
        in_cache = repo.dvc.cache_objects()
        removed = [
            GcItem(
                md5=m,
                size=in_cache[m],
                versions=tuple(sorted(owners.get(m, []), key=_version_order)),
            )
            for m in sorted(drop)
            if m in in_cache
        ]
        remote_name = None
        remote_removed: list[GcItem] = []
        if remote:
            remote_name = sync.require_remote(repo, None)
            candidates = sorted(drop)
            on_remote = (
                set(candidates) - repo.remotes.missing(candidates, remote_name)
                if candidates
                else set()
            )
            remote_removed = [
                GcItem(
                    md5=m,
                    size=sizes.get(m, in_cache.get(m, -1)),
                    versions=tuple(sorted(owners.get(m, []), key=_version_order)),
                )
                for m in candidates
                if m in on_remote
            ]
        if not dry_run:
            repo.dvc.remove_objects(i.md5 for i in removed)
            if remote_removed:
                assert remote_name is not None
                repo.remotes.remove([i.md5 for i in remote_removed], remote_name)
    kept_versions = sorted(
        (t for t, (md5, _s) in version_md5.items() if md5 in kept), key=_version_order
    )
    return GcReport(
        dry_run=dry_run,
        kept=tuple(kept_versions),
        removed=tuple(removed),
        remote=remote_name,
        remote_removed=tuple(remote_removed),
    )
