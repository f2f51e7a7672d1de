"""Reclaiming space: weights that no kept version, ref or work-tree file needs.

gc deletes only what it can prove is this registry's and unneeded, because the DVC cache and the
DVC remote are shared (with teammates, with other projects through ``cache.dir``):

- **ours**: an object is a candidate only if some version of this registry recorded it (its
  manifest, in the history of any ref) and its bytes hash to the sha256 that version recorded;
  an object that merely shares the md5 a manifest names (another project's data, a damaged
  object) is left alone.
- **unneeded**: every object that a kept version, any local ref, the work tree or, with
  ``--remote``, any branch or tag of the git remotes names is kept. ``--remote`` reads the git
  remotes first and refuses if one cannot be read, so a clone that has not fetched never deletes
  what a teammate published.
- **never the last copy**: an object is deleted from the cache only where the default DVC remote
  holds it, unless `force`; with ``--remote`` it goes from both, as asked.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from adaptergit import tags as tag_grammar
from adaptergit.dvcrepo import Pointer, md5s_in
from adaptergit.errors import AdapterGitError, GcRefused, GitError, InvalidInput
from adaptergit.gitrepo import TagInfo
from adaptergit.hashcache import sha256_files
from adaptergit.index import Index
from adaptergit.layout import MANIFEST_GLOB, POINTER_FILE, adapter_path
from adaptergit.manifest import Manifest
from adaptergit.ops import transfer
from adaptergit.refs import SemVer
from adaptergit.registry import Registry

# Where gc --remote reads each git remote's branches and tags (deleted afterwards).
REMOTE_REFS = "refs/adaptergit/gc/"


def _json_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in items}


@dataclass(frozen=True, kw_only=True, slots=True)
class GcItem:
    """One weights object gc removed (or, in a dry run, would remove), or kept for a reason."""

    md5: str
    size: int  # bytes; -1 when not known
    versions: tuple[str, ...]  # the versions that recorded it

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``md5``, ``size`` (bytes, -1 if unknown), ``versions`` (a list)."""
        return dataclasses.asdict(self, dict_factory=_json_dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class GcReport:
    """What gc kept and what it removed from the cache and, with remote, from the DVC remote.

    Attributes:
        dry_run: nothing was deleted.
        kept: versions whose weights are kept.
        removed: objects removed from the cache.
        remote: the DVC remote gc removed from (``--remote``), else None.
        remote_removed: objects removed from it.
        only_copy: objects the policy drops but kept: no DVC remote holds them (``--force``).
        not_ours: objects a version names whose bytes are not what it recorded: left alone.
        git_remotes: the git remotes whose branches and tags were read (``--remote``).
    """

    dry_run: bool
    kept: tuple[str, ...]
    removed: tuple[GcItem, ...]
    remote: str | None = None
    remote_removed: tuple[GcItem, ...] = field(default_factory=tuple)
    only_copy: tuple[GcItem, ...] = field(default_factory=tuple)
    not_ours: tuple[GcItem, ...] = field(default_factory=tuple)
    git_remotes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def freed(self) -> int:
        """Bytes removed (or, in a dry run, that would be) from the cache; unknown sizes count 0."""
        return sum(max(i.size, 0) for i in self.removed)

    @property
    def remote_freed(self) -> int:
        """Bytes removed (or that would be) from the DVC remote; unknown sizes count 0."""
        return sum(max(i.size, 0) for i in self.remote_removed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields, plus ``bytes`` (`freed`) and ``remote_bytes``."""
        data = dataclasses.asdict(self, dict_factory=_json_dict)
        return {**data, "bytes": self.freed, "remote_bytes": self.remote_freed}


@dataclass
class _Recorded:
    """What the versions of this registry recorded for one md5."""

    sha256: set[str] = field(default_factory=set)
    versions: set[str] = field(default_factory=set)
    size: int = -1


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


def _recorded(registry: Registry) -> dict[str, _Recorded]:
    """md5 -> the sha256, versions and size every manifest in the history of any ref records."""
    git = registry.git
    blobs = sorted(git.history_blobs([MANIFEST_GLOB]))
    found: dict[str, _Recorded] = {}
    for raw in git.read_blobs(blobs):
        if raw is None:
            continue
        try:
            manifest = Manifest.from_json(raw)
        except AdapterGitError:
            continue  # unreadable: it proves nothing
        entry = found.setdefault(manifest.weights.md5, _Recorded())
        entry.sha256.add(manifest.weights.sha256)
        entry.versions.add(tag_grammar.version_tag(manifest.name, manifest.version))
        entry.size = manifest.weights.size
    return found


def _policy_md5s(
    registry: Registry, index: Index, keep_last: int | None, keep_stages: bool
) -> tuple[set[str], dict[str, str]]:
    """What the policy keeps of one set of tags: (md5s kept, every version tag -> its md5)."""
    regs = index.registrations()
    pointers = registry.git.read_blobs(
        [f"{r.commit}:{adapter_path(r.name, POINTER_FILE)}" for r in regs]
    )
    version_md5: dict[str, str] = {}
    for reg, raw in zip(regs, pointers, strict=True):
        if raw is None:
            continue
        with contextlib.suppress(AdapterGitError):
            version_md5[reg.tag] = Pointer.parse(raw).md5
    per_name: dict[str, list[tuple[SemVer, str]]] = {}
    for reg in regs:
        per_name.setdefault(reg.name, []).append((reg.version, reg.tag))
    kept_tags: set[str] = set()
    for items in per_name.values():
        items.sort(reverse=True)
        count = len(items) if keep_last is None else keep_last
        kept_tags.update(t for _s, t in items[: max(count, 1)])
    kept: set[str] = set()
    if keep_stages:
        staged = [nc for nc, stages in index.stages().items() if stages]
        by_commit = {(r.name, r.commit): r.tag for r in regs}
        kept_tags.update(by_commit[nc] for nc in staged if nc in by_commit)
        raws = registry.git.read_blobs([f"{c}:{adapter_path(n, POINTER_FILE)}" for n, c in staged])
        kept |= {md5 for raw in raws if raw for md5 in md5s_in(raw.decode(errors="replace"))}
    kept |= {version_md5[t] for t in kept_tags if t in version_md5}
    return kept, version_md5


@contextlib.contextmanager
def _git_remotes_read(registry: Registry) -> Iterator[list[str]]:
    """Fetch every git remote's branches and tags under `REMOTE_REFS`, for the time of gc.

    Raises:
        GcRefused: a git remote cannot be read.
    """
    git = registry.git
    names = git.remotes()
    git.delete_refs(REMOTE_REFS)
    try:
        for name in names:
            try:
                _fetch_refs(registry, name)
            except GitError as exc:
                raise GcRefused(name, exc.detail) from None
        yield names
    finally:
        git.delete_refs(REMOTE_REFS)


def _fetch_refs(registry: Registry, name: str) -> None:
    """Fetch git remote `name`'s branches and tags under `REMOTE_REFS`.

    Raises:
        GitError: the remote cannot be read.
    """
    registry.git.fetch(
        name,
        [f"+refs/heads/*:{REMOTE_REFS}{name}/heads/*", f"+refs/tags/*:{REMOTE_REFS}{name}/tags/*"],
    )


def _remote_refs(registry: Registry, name: str) -> tuple[list[TagInfo], list[str]]:
    """Git remote `name`'s tags and branch heads (commits), as gc last fetched them."""
    git = registry.git
    heads = [c for _ref, c in git.ref_tips([f"{REMOTE_REFS}{name}/heads"])]
    return git.tags(namespace=f"{REMOTE_REFS}{name}/tags/"), heads


def _claimed_meanwhile(
    registry: Registry, git_remotes: list[str], seen: set[str], dropped: list[str]
) -> set[str]:
    """Of the objects `dropped` from the DVC remote, those a branch or tag published on a git
    remote since gc first read it needs (a teammate's push that found them there and so
    uploaded nothing). The git remotes are read again; one that cannot be read now claims
    nothing (the pusher's own check after its push puts its weights back).
    """
    now: set[str] = set()
    for name in git_remotes:
        with contextlib.suppress(GitError):
            _fetch_refs(registry, name)
        theirs, heads = _remote_refs(registry, name)
        now |= {*heads, *(t.commit for t in theirs)}
    new = now - seen
    return _tree_md5s(registry, new) & set(dropped) if new else set()


def _items(
    md5s: Iterable[str], recorded: dict[str, _Recorded], sizes: dict[str, int]
) -> tuple[GcItem, ...]:
    return tuple(
        GcItem(
            md5=m,
            size=sizes.get(m, recorded[m].size if m in recorded else -1),
            versions=tuple(sorted(recorded[m].versions, key=tag_grammar.version_order))
            if m in recorded
            else (),
        )
        for m in sorted(md5s)
    )


def gc(
    registry: Registry,
    *,
    keep_last: int | None = None,
    keep_stages: bool = True,
    remote: bool = False,
    dry_run: bool = False,
    force: bool = False,
) -> GcReport:
    """Remove weights that no kept version, ref or work-tree file needs from the cache (and remote).

    Kept: the latest version of every adapter; with `keep_last` N the N highest versions of each,
    and without it every registered version; versions holding a stage (unless `keep_stages` is
    False); every object named by a .dvc file or dvc.lock at any branch, remote-tracking branch,
    HEAD or tag other than adaptergit's own version and stage tags; everything the work tree's
    .dvc files name (``.dir`` listings expanded). With `remote`, the git remotes' branches and
    tags count too (read first: the policy applies to the versions they register as well), and
    the objects dropped go from the default DVC remote as well.

    Only objects proven to be this registry's (see the module's doc) are ever deleted, and from
    the cache only where the default DVC remote holds them, unless `force`.

    Args:
        registry: the registry.
        keep_last: keep the N highest versions of each adapter (at least 1).
        keep_stages: keep versions that hold a stage.
        remote: also delete from the default DVC remote (after reading the git remotes).
        dry_run: only report.
        force: delete from the cache weights no DVC remote holds (their only copy).

    Raises:
        InvalidInput: `keep_last` below 1.
        GcRefused: with `remote`, a git remote cannot be read: nothing is deleted.
        NoRemote: with `remote`, no default DVC remote.
    """
    if keep_last is not None and keep_last < 1:
        raise InvalidInput("--keep-last must be at least 1 (the latest version is always kept)")
    remote_name = transfer.require_remote(registry, None) if remote else None
    with contextlib.ExitStack() as stack:
        if not dry_run:
            stack.enter_context(registry.lock())
        git_remotes: list[str] = stack.enter_context(_git_remotes_read(registry)) if remote else []
        git = registry.git
        recorded = _recorded(registry)
        # The policy over this clone's versions and stages and, with remote, the team's: the
        # latest version is the latest anyone published, a stage held on the remote is held.
        tags = git.tags()
        known = {(t.name, t.oid) for t in tags}
        extra_tips = []
        seen: set[str] = set()  # every commit the git remotes named: see `_claimed_meanwhile`
        for name in git_remotes:
            theirs, heads = _remote_refs(registry, name)
            tags += [t for t in theirs if (t.name, t.oid) not in known]
            known |= {(t.name, t.oid) for t in theirs}
            extra_tips += heads
            extra_tips += [t.commit for t in theirs if tag_grammar.parse(t.name) is None]
            seen |= {*heads, *(t.commit for t in theirs)}
        kept, version_md5 = _policy_md5s(registry, Index(tags), keep_last, keep_stages)
        # Refs the user keeps (everything but adaptergit's version and stage tags), the work tree.
        tips = []
        for ref, commit in git.ref_tips():
            is_tag = ref.startswith(tag_grammar.REFS_PREFIX)
            if is_tag and tag_grammar.parse(tag_grammar.short_name(ref)) is not None:
                continue  # adaptergit's and GTO's own tags: the policy above decides
            tips.append(commit)
        tips += git.worktree_heads()  # linked worktrees share the cache
        kept |= _tree_md5s(registry, tips + extra_tips)
        kept |= _worktree_md5s(registry)
        for oid in [k for k in kept if k.endswith(".dir")]:
            kept |= registry.dvc.dir_entries(oid)

        drop = set(recorded) - kept
        in_cache = registry.dvc.cache_objects()
        local = sorted(m for m in drop if m in in_cache)
        # Ours: the bytes are what a version recorded (hashing only what would be deleted).
        digests = dict(
            zip(local, sha256_files([registry.dvc.cache_path(m) for m in local]), strict=True)
        )
        not_ours = {m for m in local if digests[m] not in recorded[m].sha256}
        local = [m for m in local if m not in not_ours]

        remote_drop: list[str] = []
        if remote_name is not None:
            candidates = sorted(m for m in drop if m not in not_ours)
            on_remote = (
                set(candidates) - registry.remotes.missing(candidates, remote_name)
                if candidates
                else set()
            )
            unproven = sorted(m for m in on_remote if m not in digests)
            remote_digests = {  # read through from the remote: (md5, sha256) of its bytes
                m: found[1] if found is not None and found[0] == m else None
                for m, found in (
                    registry.remotes.digests(unproven, remote_name) if unproven else {}
                ).items()
            }
            for m in sorted(on_remote):
                digest = digests.get(m, remote_digests.get(m))
                if digest in recorded[m].sha256:
                    remote_drop.append(m)
                else:
                    not_ours.add(m)
        # Never the last copy: the cache keeps what no DVC remote holds, unless forced.
        only_copy: list[str] = []
        if not force and local:
            default = registry.remotes.default()
            elsewhere = set(remote_drop)  # going from the remote as asked: not a copy
            if default is None:
                only_copy = [m for m in local if m not in elsewhere]
            else:
                missing = registry.remotes.missing(local, default)
                only_copy = [m for m in local if m in missing and m not in elsewhere]
            local = [m for m in local if m not in only_copy]
        if not dry_run:
            if remote_drop:
                assert remote_name is not None
                registry.remotes.remove(remote_drop, remote_name)
                claimed = _claimed_meanwhile(registry, git_remotes, seen, remote_drop)
                if claimed:  # published during gc: put back from the cache, keep it there
                    back = registry.remotes.push(sorted(claimed & in_cache.keys()), remote_name)
                    remote_drop = [m for m in remote_drop if m not in back.transferred]
                    local = [m for m in local if m not in claimed]
            registry.dvc.remove_objects(local)
    gone = set(local)
    kept_versions = sorted(
        (
            t
            for t, md5 in version_md5.items()
            if md5 not in gone and (md5 in kept or md5 in only_copy)
        ),
        key=tag_grammar.version_order,
    )
    return GcReport(
        dry_run=dry_run,
        kept=tuple(kept_versions),
        removed=_items(local, recorded, in_cache),
        remote=remote_name,
        remote_removed=_items(remote_drop, recorded, in_cache),
        only_copy=_items(only_copy, recorded, in_cache),
        not_ours=_items(not_ours, recorded, in_cache),
        git_remotes=tuple(git_remotes),
    )


__all__ = ["REMOTE_REFS", "GcItem", "GcReport", "gc"]
