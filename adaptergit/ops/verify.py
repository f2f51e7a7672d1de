"""Verifying a registry's weights: every byte checked re-read against the manifests' sha256.

DVC skips re-hashing cache files that are read-only, trusting the mode; a flipped byte in such a
file is exactly what verify must catch, so every cache object and work-tree copy involved is read
in full (on a few threads: hashlib releases the GIL).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptergit.errors import InvalidInput
from adaptergit.hashcache import Progress, sha256_files
from adaptergit.layout import WEIGHTS_FILE, adapter_path
from adaptergit.manifest import Version
from adaptergit.ops import transfer
from adaptergit.registry import Registry

# Problem kinds, each one line for people and a stable word for scripts.
WORKTREE_MISMATCH = "worktree-mismatch"
WORKTREE_MISSING = "worktree-missing"
CACHE_CORRUPT = "cache-corrupt"
CACHE_MISSING = "cache-missing"
REMOTE_MISSING = "remote-missing"
REMOTE_CORRUPT = "remote-corrupt"
MANIFEST_MISMATCH = "manifest-mismatch"
LOST = "lost"


@dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    """One thing verify found wrong with one version's weights.

    Attributes:
        ref: the version(s) concerned, ``NAME@vX.Y.Z`` (comma-separated when they share weights).
        kind: one of the kinds above, for scripts.
        detail: what is wrong, for people.
        path: the file concerned, if any.
    """

    ref: str
    kind: str
    detail: str
    path: str | None = None

    @property
    def line(self) -> str:
        """``REF: DETAIL``: the problem as one line for people."""
        return f"{self.ref}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return dataclasses.asdict(self)


def verify(
    registry: Registry,
    ref: str | None = None,
    *,
    all_versions: bool = False,
    remote: bool = False,
    deep: bool = False,
    progress: Progress | None = None,
) -> list[Problem]:
    """Check weights against the manifests' sha256: work tree, cache and, with remote, the remote.

    With `deep` (and `remote`), every remote object concerned is also read in full and
    re-hashed: one whose bytes do not match its md5 is ``remote-corrupt``, one that matches its
    md5 but not a manifest's sha256 is ``manifest-mismatch`` (the manifest is wrong).

    Which versions: `ref`'s; with `all_versions` every registered one; by default those checked
    out in the work tree. Every cache object and work-tree file involved is re-read in full. A
    version whose weights are simply not in the cache is a problem when it was asked for (a ref,
    or the work tree); in an `all_versions` sweep, where old versions are often only on the
    remote, it is one only when the default DVC remote lacks them too (or there is none): lost.
    With `remote`, weights in neither place are reported as lost. `remote` checks that
    the DVC remote holds `ref`, or else every version reachable from HEAD.
    """
    if ref is not None and all_versions:
        raise InvalidInput("give either a reference or --all, not both")
    if deep and not remote:
        raise InvalidInput("--deep re-hashes the remote's copies: use it with --remote")
    if ref is not None:
        versions = [registry.resolve(ref)]
    elif all_versions:
        versions = registry.log()
    else:
        versions = transfer.checked_out(registry)
    problems: list[Problem] = []

    # Work-tree copies: any adapters/NAME whose manifest records the same weights as a version.
    tree_jobs: dict[Path, tuple[str, str]] = {}  # path -> (sha256, ref)
    in_tree: set[str] = set()  # md5s of weights with a copy in the work tree (checked below)
    for current in transfer.checked_out(registry, bad="skip"):
        expected = current.manifest.weights
        if not any(
            v.name == current.name and v.weights.sha256 == expected.sha256 for v in versions
        ):
            continue
        path = registry.adapter_dir(current.name) / WEIGHTS_FILE
        rel = adapter_path(current.name, WEIGHTS_FILE)
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
            in_tree.add(expected.md5)

    # Cache objects, each once however many versions share it.
    by_md5: dict[str, list[Version]] = {}
    for v in versions:
        by_md5.setdefault(v.weights.md5, []).append(v)
    cache_jobs: dict[Path, str] = {}
    absent: set[str] = set()
    for md5, owners in by_md5.items():
        weights = owners[0].weights
        path = registry.dvc.cache_path(md5)
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
    for path, digest in zip(paths, sha256_files(paths, progress), strict=True):
        if path in tree_jobs:
            expected_sha, vref = tree_jobs[path]
            if digest != expected_sha:
                rel = str(path.relative_to(registry.root))
                problems.append(
                    _mismatch(vref, rel, f"sha256 {str(digest)[:12]}, recorded {expected_sha[:12]}")
                )
        else:
            md5 = cache_jobs[path]
            owners = by_md5[md5]
            expected_sha = owners[0].weights.sha256
            if digest != expected_sha:
                got = "unreadable" if digest is None else f"sha256 {digest[:12]}"
                problems.append(
                    _corrupt(
                        ", ".join(v.ref for v in owners),
                        path,
                        f"{got}, recorded {expected_sha[:12]}",
                    )
                )

    absent -= in_tree  # a copy in the work tree (a mismatch there is reported above)
    if all_versions and not remote and absent:
        # Not in the cache is fine for an old version only if the default DVC remote has it.
        default = registry.remotes.default()
        gone = registry.remotes.missing_quick(absent, default) if default is not None else absent
        where = f"DVC remote {default!r}" if default is not None else "any DVC remote (none set)"
        for md5 in sorted(gone):
            problems.append(
                Problem(
                    ref=", ".join(v.ref for v in by_md5[md5]),
                    kind=LOST,
                    detail=f"weights (md5 {md5[:12]}) are in neither the DVC cache nor {where}",
                )
            )

    if remote:
        name = transfer.require_remote(registry, None)
        wanted = (
            [registry.resolve(ref)] if ref is not None else transfer.versions_reachable(registry)
        )
        md5s = {v.weights.md5 for v in wanted}
        not_there = registry.remotes.missing(md5s, name) if md5s else set()
        for v in wanted:
            md5 = v.weights.md5
            if md5 not in not_there:
                continue
            if registry.dvc.in_cache(md5):
                problems.append(
                    Problem(
                        ref=v.ref,
                        kind=REMOTE_MISSING,
                        detail=f"weights (md5 {md5[:12]}) are not on DVC remote {name!r}; "
                        f"upload them with `adaptergit push {v.ref}`",
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
        if deep:
            problems += _deep(registry, name, [v for v in wanted if v.weights.md5 not in not_there])
    problems.sort(key=lambda p: (p.ref, p.kind))
    return problems


def _deep(registry: Registry, remote: str, versions: list[Version]) -> list[Problem]:
    """Re-hash the remote's copy of each version's weights (each object read once)."""
    found = registry.remotes.digests({v.weights.md5 for v in versions}, remote)
    problems = []
    for v in versions:
        md5 = v.weights.md5
        digests = found.get(md5)
        if digests is None:
            continue  # vanished meanwhile: the existence check reported what it saw
        if digests[0] != md5:
            problems.append(
                Problem(
                    ref=v.ref,
                    kind=REMOTE_CORRUPT,
                    detail=f"DVC remote {remote!r} holds a corrupt copy of the weights (md5 "
                    f"{md5[:12]}: its bytes hash to {digests[0][:12]}); push a good copy",
                )
            )
        elif digests[1] != v.weights.sha256:
            problems.append(
                Problem(
                    ref=v.ref,
                    kind=MANIFEST_MISMATCH,
                    detail=f"the weights with md5 {md5[:12]} on DVC remote {remote!r} are sound "
                    f"but hash to sha256 {digests[1][:12]}, not the recorded "
                    f"{v.weights.sha256[:12]}: the manifest is wrong",
                )
            )
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


__all__ = ["Problem", "verify"]
