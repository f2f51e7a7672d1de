"""Reclaiming space: weights that no kept version, ref or work-tree file needs.

gc deletes only weights that some adaptergit version recorded (found in the history of every
ref), and of those only the ones that nothing kept refers to. Every other object in the DVC cache
(a user's datasets, pipeline outputs) is out of its reach.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from adaptergit import tags as tag_grammar
from adaptergit.dvcrepo import Pointer, md5s_in
from adaptergit.errors import AdapterGitError, InvalidInput
from adaptergit.layout import POINTER_FILE, POINTER_GLOB, adapter_path
from adaptergit.ops import transfer
from adaptergit.refs import SemVer
from adaptergit.registry import Registry


def _json_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in items}


@dataclass(frozen=True, kw_only=True, slots=True)
class GcItem:
    """One weights object gc removed (or, in a dry run, would remove)."""

    md5: str
    size: int  # bytes; -1 when not known
    versions: tuple[str, ...]  # the registered versions that recorded it

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self, dict_factory=_json_dict)


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
        data = dataclasses.asdict(self, dict_factory=_json_dict)
        return {**data, "bytes": self.freed, "remote_bytes": self.remote_freed}


def _is_dvc_file(path: str) -> bool:
    return path.endswith(".dvc") or path == "dvc.lock" or path.endswith("/dvc.lock")


def _tree_md5s(registry: Registry, commits: Iterable[str]) -> set[str]:
    """Object ids named by every .dvc file and dvc.lock in the trees of these commits."""
    blobs: set[str] = set()
    for commit in sorted(set(commits)):
        blobs.update(registry.git.files_in_tree(commit, _is_dvc_file).values())
    found: set[str] = set()
    for raw in registry.git.read_blobs(sorted(blobs)):
        if raw is not None:
            found |= md5s_in(raw.decode(errors="replace"))
    return found


def _worktree_md5s(registry: Registry) -> set[str]:
    found: set[str] = set()
    for rel in registry.git.working_files(_is_dvc_file):
        try:
            found |= md5s_in((registry.root / rel).read_text(errors="replace"))
        except OSError:
            continue
    return found


def gc(
    registry: Registry,
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
    if keep_last is not None and keep_last < 1:
        raise InvalidInput("--keep-last must be at least 1 (the latest version is always kept)")
    lock = registry.lock() if not dry_run else contextlib.nullcontext()
    with lock:
        index = registry.index
        regs = index.registrations()
        pointers = registry.git.read_blobs(
            [f"{r.commit}:{adapter_path(r.name, POINTER_FILE)}" for r in regs]
        )
        version_md5: dict[str, tuple[str, int]] = {}  # tag -> (md5, size)
        for reg, raw in zip(regs, pointers, strict=True):
            if raw is None:
                continue
            try:
                pointer = Pointer.parse(raw)
            except AdapterGitError:
                continue
            version_md5[reg.tag] = (pointer.md5, pointer.size)
        owners: dict[str, list[str]] = {}
        sizes: dict[str, int] = {}
        for tag_name, (md5, size) in version_md5.items():
            owners.setdefault(md5, []).append(tag_name)
            sizes[md5] = size

        # Everything adaptergit ever recorded: version tags, and the pointers' whole history.
        ours = set(owners) | md5s_in(registry.git.history_text([POINTER_GLOB]))

        # What the policy keeps.
        per_name: dict[str, list[tuple[SemVer, str]]] = {}
        for reg in regs:
            per_name.setdefault(reg.name, []).append((reg.version, reg.tag))
        kept_tags: set[str] = set()
        for items in per_name.values():
            items.sort(reverse=True)
            count = len(items) if keep_last is None else keep_last
            kept_tags.update(t for _s, t in items[: max(count, 1)])
        staged_commits: list[tuple[str, str]] = []
        if keep_stages:
            staged_commits = [nc for nc, stages in index.stages().items() if stages]
            by_commit = {(r.name, r.commit): r.tag for r in regs}
            for name_commit in staged_commits:
                if name_commit in by_commit:
                    kept_tags.add(by_commit[name_commit])
        kept = {version_md5[t][0] for t in kept_tags if t in version_md5}
        if keep_stages and staged_commits:  # a stage on a commit no version tag names
            raws = registry.git.read_blobs(
                [f"{c}:{adapter_path(n, POINTER_FILE)}" for n, c in staged_commits]
            )
            kept |= {md5 for raw in raws if raw for md5 in md5s_in(raw.decode(errors="replace"))}

        # Refs the user keeps (everything but adaptergit's version and stage tags), the work tree.
        tips = []
        for ref, commit in registry.git.ref_tips():
            is_tag = ref.startswith(tag_grammar.REFS_PREFIX)
            if is_tag and tag_grammar.parse(tag_grammar.short_name(ref)) is not None:
                continue  # adaptergit's and GTO's own tags: the policy above decides
            tips.append(commit)
        kept |= _tree_md5s(registry, tips)
        kept |= _worktree_md5s(registry)
        for oid in [k for k in kept if k.endswith(".dir")]:
            kept |= registry.dvc.dir_entries(oid)

        drop = ours - kept
        in_cache = registry.dvc.cache_objects()
        removed = [
            GcItem(
                md5=m,
                size=in_cache[m],
                versions=tuple(sorted(owners.get(m, []), key=tag_grammar.version_order)),
            )
            for m in sorted(drop)
            if m in in_cache
        ]
        remote_name = None
        remote_removed: list[GcItem] = []
        if remote:
            remote_name = transfer.require_remote(registry, None)
            candidates = sorted(drop)
            on_remote = (
                set(candidates) - registry.remotes.missing(candidates, remote_name)
                if candidates
                else set()
            )
            remote_removed = [
                GcItem(
                    md5=m,
                    size=sizes.get(m, in_cache.get(m, -1)),
                    versions=tuple(sorted(owners.get(m, []), key=tag_grammar.version_order)),
                )
                for m in candidates
                if m in on_remote
            ]
        if not dry_run:
            registry.dvc.remove_objects(i.md5 for i in removed)
            if remote_removed:
                assert remote_name is not None
                registry.remotes.remove([i.md5 for i in remote_removed], remote_name)
    kept_versions = sorted(
        (t for t, (md5, _s) in version_md5.items() if md5 in kept), key=tag_grammar.version_order
    )
    return GcReport(
        dry_run=dry_run,
        kept=tuple(kept_versions),
        removed=tuple(removed),
        remote=remote_name,
        remote_removed=tuple(remote_removed),
    )


__all__ = ["GcItem", "GcReport", "gc"]
