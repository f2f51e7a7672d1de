"""Sharing a registry: weights to and from the DVC remote, versions to and from the git remote.

Publishing is all or nothing: the weights first, then the branch, version tags and stage tags in
one ``git push --atomic``. A push that another clone beat is replayed (`adaptergit.ops.replay`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from adaptergit import tags as tag_grammar
from adaptergit.errors import (
    AdapterGitError,
    AdapterGitWarning,
    DetachedHead,
    DvcError,
    GitError,
    PublishedVersionClash,
    PushRejected,
    UntaggedVersion,
    VersionOffBranch,
)
from adaptergit.fsutil import crash_point
from adaptergit.gitrepo import RefUpdate, TagInfo
from adaptergit.hashcache import Progress
from adaptergit.layout import MANIFEST_GLOB, POINTER_FILE, POINTER_GLOB, adapter_of, adapter_path
from adaptergit.manifest import Manifest, Version
from adaptergit.ops import checkout as checkout_op
from adaptergit.ops import replay, transfer
from adaptergit.ops.hooks import PUSHED_ENV
from adaptergit.ops.transfer import FetchResult
from adaptergit.registry import Registry


@dataclass(frozen=True, kw_only=True, slots=True)
class PushResult:
    """What a push sent.

    Attributes:
        remote: the DVC remote the weights went to.
        versions: the versions pushed (``NAME@vX.Y.Z``, as published).
        uploaded: those whose weights the DVC remote did not have yet.
        git_remote: the git remote the refs went to, or None when there is none.
        git_refs: the refspecs pushed to it.
        git_updated: the remote refs the push changed (the others were up to date).
        renumbered: (old, new) of each version renumbered because another clone published its
            number first, e.g. ("a@v0.0.2", "a@v0.0.3").
        restaged: (old, new) of each stage tag renamed past the remote's.
        attempts: how many pushes it took (more than 1 after a race).
    """

    remote: str
    versions: tuple[str, ...]
    uploaded: tuple[str, ...]
    git_remote: str | None
    git_refs: tuple[str, ...] = field(default_factory=tuple)
    git_updated: tuple[str, ...] = field(default_factory=tuple)
    renumbered: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    restaged: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    attempts: int = 1


# A push that loses a race is replayed and tried again at most this many times.
MAX_REPLAYS = 3
# git's reasons for a rejection that another clone's push explains (the remote moved on).
RACE_REASONS = ("fetch first", "non-fast-forward", "already exists", "stale info")


def push(
    registry: Registry,
    refs: Sequence[str] = (),
    *,
    remote: str | None = None,
    git_remote: str | None = None,
    progress: Progress | None = None,
) -> PushResult:
    """Publish versions: weights to the DVC remote, then refs to the git remote, all or nothing.

    Without `refs`, what this clone has not published goes: the versions on commits that no
    remote-tracking branch of `git_remote` holds, and those whose commits the remote's branch
    holds without their tags (a plain ``git push`` without the hooks; see `stranded_versions`);
    their weights are uploaded first, then the current branch, those versions' tags and the
    stage tags go in one ``git push --atomic``. When
    another clone published first, the remote's branch and tags are fetched, this clone's
    unpublished versions replayed on top and renumbered past the remote's (`adaptergit.ops.replay`),
    and the push tried again, at most `MAX_REPLAYS` times. Deciding what to publish costs in
    proportion to the unpublished commits, not to the registry.

    Args:
        registry: the registry.
        refs: push only these versions' weights and tags (and their adapters' stage tags), no
            branch, when every one's commit is on a branch of `git_remote` already; otherwise
            the current branch, which must hold them, is published with them as without `refs`
            (a version tag never reaches the remote on a commit no remote branch holds).
        remote: the DVC remote (default: the default remote).
        git_remote: the git remote (default: the branch's upstream, else ``origin``).
        progress: called with (bytes sent, bytes to send) during the upload.

    Raises:
        NoRemote: no DVC remote.
        TransferFailed: some weights did not arrive; nothing was pushed to git.
        PushRejected: git refused the push (and it could not be replayed); the remote is as it was.
        UntaggedVersion: a commit to publish records a version no local tag names there.
        DetachedHead: HEAD is on no branch (and no `refs` were named).
        VersionOffBranch: a named version is on no branch of `git_remote` nor the current one.
        PublishedVersionClash: the remote's branch holds a version's commit without its tag and
            gives that number to another commit (nothing is pushed).
        GitError: git failed otherwise (e.g. the remote cannot be read).
    """
    remote = transfer.require_remote(registry, remote)
    git = registry.git
    git_remote = git_remote or git.default_remote()
    if git_remote is None or git.head() is None:
        return _push_versions(registry, refs, remote, git_remote, progress)
    if refs and not _needs_branch(registry, [registry.resolve(r) for r in refs], git_remote):
        return _push_versions(registry, refs, remote, git_remote, progress)
    env = {PUSHED_ENV: remote}
    uploaded: tuple[str, ...] = ()
    theirs = git.remote_tag_commits(git_remote)
    with contextlib.ExitStack() as held:
        while True:  # the weights are uploaded without the lock; the branch must not move
            with registry.lock():
                branch, head = git.current_branch(), git.head()
                if head is None or branch is None:
                    raise DetachedHead(head or "", pushing=True)
                versions = unpublished_versions(registry, git_remote, head)
                stranded = stranded_versions(registry, git_remote, head, versions, theirs)
                versions += stranded
            uploaded += transfer.upload(registry, versions, remote, progress=progress)
            crash_point("push.uploaded")
            held.enter_context(registry.lock())
            if git.head() == head and git.current_branch() == branch:
                break
            held.close()  # new commits meanwhile: upload theirs too
        stage_refs = {
            tag_grammar.full_ref(t.name)
            for t in git.tags(tag_grammar.event_patterns())
            if t.annotated and (parsed := tag_grammar.parse(t.name)) and parsed.stage is not None
        }
        version_refs = {tag_grammar.full_ref(v.tag) for v in versions if v.tag}
        refspecs = [f"refs/heads/{branch}:refs/heads/{branch}"]
        refspecs += [f"{ref}:{ref}" for ref in sorted(version_refs | stage_refs)]
        upstream = git.config_get(f"branch.{branch}.remote") is None
        ok, updates, reason = git.push_atomic(git_remote, refspecs, env=env, set_upstream=upstream)
        attempts = 1
        published = [v.ref for v in versions]
        result_plan: replay.Plan | None = None
        if not ok:  # the remote's copy of the tags goes whatever happens
            held.callback(git.delete_refs, replay.REMOTE_TAGS)
        while not ok:
            _raise_unless_race(git_remote, updates, reason)
            if attempts > MAX_REPLAYS:
                raise PushRejected(
                    git_remote,
                    _rejections(updates),
                    reason,
                    f"others kept publishing first ({MAX_REPLAYS} replays); push again",
                )
            result_plan, remote_tags = _replay(
                registry, git_remote, branch, head, updates, reason, {v.name for v in stranded}
            )
            refspecs = result_plan.refspecs(branch) + _still_free(stranded, remote_tags, git_remote)
            ok, updates, reason = git.push_atomic(git_remote, refspecs, env=env)
            attempts += 1
            if ok:
                _apply(registry, result_plan, remote_tags, git_remote, branch)
    if result_plan is not None:
        renames = dict(result_plan.renumbered)
        published = [renames.get(ref, ref) for ref in published]
        _follow_weights(registry, result_plan.head, result_plan.tip)
    uploaded += reupload_removed(registry, versions, remote)
    return PushResult(
        remote=remote,
        versions=tuple(published),
        uploaded=uploaded,
        git_remote=git_remote,
        git_refs=tuple(refspecs),
        git_updated=_updated(updates),
        renumbered=result_plan.renumbered if result_plan else (),
        restaged=result_plan.restaged if result_plan else (),
        attempts=attempts,
    )


def _push_versions(
    registry: Registry,
    refs: Sequence[str],
    remote: str,
    git_remote: str | None,
    progress: Progress | None,
) -> PushResult:
    """Push named versions (or, with no git remote, every version reachable from HEAD): their
    weights, then their tags and their adapters' stage tags in one atomic push."""
    versions = (
        [registry.resolve(r) for r in refs] if refs else transfer.versions_reachable(registry)
    )
    uploaded = transfer.upload(registry, versions, remote, progress=progress)
    crash_point("push.uploaded")
    pushed: list[str] = []
    updated: tuple[str, ...] = ()
    if git_remote is not None:
        names = {v.name for v in versions}
        tags = [v.tag for v in versions if v.tag]
        for tag in registry.git.tags():  # stage tags travel with their versions (GTO reads them)
            parsed = tag_grammar.parse(tag.name)
            if parsed is not None and parsed.stage is not None and parsed.name in names:
                tags.append(tag.name)
        refspecs = [
            f"{tag_grammar.full_ref(t)}:{tag_grammar.full_ref(t)}" for t in sorted(set(tags))
        ]
        if refspecs:
            ok, updates, reason = registry.git.push_atomic(
                git_remote, refspecs, env={PUSHED_ENV: remote}
            )
            if not ok:
                if not updates:
                    raise GitError("push", reason)
                raise PushRejected(git_remote, _rejections(updates), reason)
            pushed, updated = refspecs, _updated(updates)
            uploaded += reupload_removed(registry, versions, remote)
    return PushResult(
        remote=remote,
        versions=tuple(v.ref for v in versions),
        uploaded=uploaded,
        git_remote=git_remote,
        git_refs=tuple(pushed),
        git_updated=updated,
    )


def reupload_removed(
    registry: Registry, versions: Sequence[Version], remote: str
) -> tuple[str, ...]:
    """After the git push: upload again the weights of `versions` that the DVC remote no longer
    holds, from the local cache; return the versions uploaded.

    A push uploads nothing for weights the remote holds already (an older version's, the same
    bytes). A teammate's ``gc --remote`` that read the git remote just before this push landed
    may delete that object meanwhile; its second reading of the git remote puts back what it
    still has, and this check, made after the refs landed, puts back the rest.

    Raises:
        TransferFailed: an upload failed (the git refs are published: ``adaptergit push REF``
            uploads again).
    """
    by_md5 = {v.weights.md5: v for v in versions}
    if not by_md5:
        return ()
    try:
        gone = registry.remotes.missing(sorted(by_md5), remote)
    except DvcError:
        return ()  # the remote cannot be asked now: `status` and `verify --remote` report it
    again = [by_md5[m] for m in sorted(gone) if registry.dvc.in_cache(m)]
    return transfer.upload(registry, again, remote) if again else ()


def unpublished_versions(registry: Registry, git_remote: str, head: str = "HEAD") -> list[Version]:
    """The versions on commits reachable from `head` that no remote-tracking branch of
    `git_remote` holds: what a push publishes. Costs in proportion to those commits.

    A commit there that records a version in its manifest must carry that version's tag. After
    a plain ``git rebase`` (without adaptergit's post-rewrite hook) the tag still names the old
    commit: it follows the rewritten one when the adapter's files are the same
    (`replay.follow_rewrite`).

    Raises:
        UntaggedVersion: a commit records a version no tag names there.
    """
    git = registry.git
    exclude = [f"--remotes={git_remote}"]
    commits = set(git.rev_list(head, exclude))
    if not commits:
        return []
    introduced = git.introduced_files(head, exclude, [MANIFEST_GLOB])
    raws = git.read_blobs([f"{c}:{path}" for c, path in introduced])
    index = registry.index
    moves: list[tuple[str, str]] = []
    for (commit, path), raw in zip(introduced, raws, strict=True):
        found = adapter_of(path)
        if raw is None or found is None:
            continue
        try:
            manifest = Manifest.from_json(raw, f"{path} at {commit[:7]}")
        except AdapterGitError:
            continue  # a damaged manifest is reported by the commands that read it
        reg = index.find(found[0], manifest.version)
        ref = tag_grammar.version_tag(found[0], manifest.version)
        if reg is not None and reg.commit == commit:
            continue
        if reg is not None and reg.commit not in commits and not git.is_ancestor(reg.commit, head):
            moves.append((reg.commit, commit))
            continue
        if reg is not None and git.is_ancestor(reg.commit, head):
            continue  # an older commit of this history records it: a revert or a merge
        raise UntaggedVersion(ref, commit, reg.commit if reg else None)
    if moves:
        replay.follow_rewrite(registry, moves)
    regs = [r for r in registry.index.registrations() if r.commit in commits]
    return registry.versions(regs)


def stranded_versions(
    registry: Registry,
    git_remote: str,
    head: str,
    unpublished: Sequence[Version],
    theirs: Mapping[str, str],
) -> list[Version]:
    """Versions whose commits `git_remote`'s branch already holds but whose tags it lacks: what
    a plain ``git push`` without adaptergit's hooks (or before they refused it) left behind.

    Only tags of commits reachable from `head` count (the branch being pushed). Costs nothing
    beyond the comparison with `theirs` for a registry whose tags are all published.

    Args:
        registry: the registry.
        git_remote: the git remote.
        head: the commit being pushed.
        unpublished: the versions on commits the remote lacks (`unpublished_versions`).
        theirs: the remote's tags: name -> commit (`GitRepo.remote_tag_commits`).

    Returns:
        The versions whose tags to publish with the branch, the number being free there.

    Raises:
        PublishedVersionClash: the remote gives such a version's number to another commit.
    """
    git = registry.git
    pending = {v.tag for v in unpublished}
    found = []
    for reg in registry.index.registrations():
        if reg.tag in pending or theirs.get(reg.tag) == reg.commit:
            continue
        if not git.is_ancestor(reg.commit, head) or not git.on_remote_branch(
            reg.commit, git_remote
        ):
            continue
        if reg.tag in theirs:
            raise PublishedVersionClash(reg.tag, reg.commit, git_remote, theirs[reg.tag])
        found.append(reg)
    return registry.versions(found)


def _still_free(
    stranded: Sequence[Version], remote_tags: Sequence[TagInfo], git_remote: str
) -> list[str]:
    """Refspecs of the stranded versions' tags for a replayed push, or the clash if another
    clone took one of their numbers meanwhile."""
    taken = {t.name: t.commit for t in remote_tags}
    specs = []
    for version in stranded:
        if not version.tag or taken.get(version.tag) == version.commit:
            continue
        if version.tag in taken:
            raise PublishedVersionClash(version.tag, version.commit, git_remote, taken[version.tag])
        ref = tag_grammar.full_ref(version.tag)
        specs.append(f"{ref}:{ref}")
    return specs


def _needs_branch(registry: Registry, versions: Sequence[Version], git_remote: str) -> bool:
    """Whether `push REFS` must publish the current branch with these versions' tags: some
    version's commit is on no branch of `git_remote` (a tag alone would name a commit no remote
    branch holds). Such a version must be on the current branch.

    Raises:
        VersionOffBranch: such a version is not on the current branch either (or HEAD is
            detached).
    """
    git = registry.git
    head = git.head()
    needed = False
    for version in versions:
        if git.on_remote_branch(version.commit, git_remote):
            continue
        if (
            head is None
            or git.current_branch() is None
            or not git.is_ancestor(version.commit, head)
        ):
            raise VersionOffBranch(version.ref, version.commit, git_remote)
        needed = True
    return needed


def _updated(updates: Sequence[RefUpdate]) -> tuple[str, ...]:
    """The remote refs a push changed (git's flags for new, updated and deleted refs)."""
    return tuple(u.target for u in updates if u.flag in " +-*")


def _rejections(updates: Sequence[RefUpdate]) -> list[tuple[str, str]]:
    """(short ref, git's reason) of the refs git refused for a reason of their own."""
    refused = [u for u in updates if u.rejected]
    own = [u for u in refused if u.reason != "atomic push failed"] or refused
    return [
        (u.target.removeprefix("refs/heads/").removeprefix("refs/tags/"), u.reason) for u in own
    ]


def _raise_unless_race(git_remote: str, updates: Sequence[RefUpdate], reason: str) -> None:
    """Raise the push's failure unless another clone's push explains it (then replay)."""
    if not updates:
        raise GitError("push", reason)
    if not any(u.rejected and u.reason in RACE_REASONS for u in updates):
        raise PushRejected(git_remote, _rejections(updates), reason)


def _replay(
    registry: Registry,
    git_remote: str,
    branch: str,
    head: str,
    updates: Sequence[RefUpdate],
    reason: str,
    more_names: set[str],
) -> tuple[replay.Plan, list[TagInfo]]:
    """Fetch the remote's branch and the tags of the names concerned (and `more_names`), and
    plan the replay."""
    git = registry.git
    tracking = f"refs/remotes/{git_remote}/{branch}"
    names = replay.remote_tag_names(registry, head, git.ref_commit(tracking)) | more_names
    refspecs = [f"+refs/heads/{branch}:{tracking}"]
    for name in sorted(names):
        for pattern in tag_grammar.name_patterns(name):
            short = pattern.removeprefix(tag_grammar.REFS_PREFIX)
            refspecs.append(f"+{pattern}:{replay.REMOTE_TAGS}{short}")
    git.delete_refs(replay.REMOTE_TAGS)
    try:
        git.fetch(git_remote, refspecs)
    except GitError:
        # The remote may not have the branch yet (only tags clash): fetch the tags alone.
        git.fetch(git_remote, refspecs[1:])
    remote_tags = git.tags(namespace=replay.REMOTE_TAGS)
    base = git.ref_commit(tracking)
    try:
        result = replay.plan(registry, head, base, remote_tags)
    except replay.NotReplayable as exc:
        if (
            base is not None
            and exc.reason == replay.NotReplayable.MERGE
            and git.is_ancestor(base, head)
        ):
            # The remote's work is merged in already: `git pull` would change nothing. What
            # clashes is a version of this clone's under the merge, which push does not rewrite.
            advice = (
                f"the remote's work is merged in, but commit {exc.commit[:7]} is a merge over "
                "versions of this clone's that the remote numbered first; push does not rewrite "
                f"a merge: undo it (`git reset --keep {exc.commit[:7]}^1` if it is your last "
                "commit) and run `adaptergit push`, which replays your versions on the remote's "
                "and renumbers them"
            )
        else:
            advice = (
                f"the remote has new work and {exc} (not replayed automatically); integrate it "
                "with `git pull` and push again"
            )
        raise PushRejected(git_remote, _rejections(updates), reason, advice) from None
    if result.tip != head:
        old_paths, _outside = git.paths_changed(head, result.tip)
        dirty = git.dirty_paths(old_paths)
        if dirty:
            raise PushRejected(
                git_remote,
                _rejections(updates),
                reason,
                f"replaying this clone's versions on the remote's would overwrite local changes "
                f"in {', '.join(dirty[:4])}; commit or stash them and push again",
            )
    return result, remote_tags


def _apply(
    registry: Registry,
    result: replay.Plan,
    remote_tags: Sequence[TagInfo],
    git_remote: str,
    branch: str,
) -> None:
    """After a replayed push: the branch (and work tree) at the pushed tip, tags as published."""
    git = registry.git
    if result.tip != result.head and git.head() != result.head:
        raise AdapterGitError(  # a plain `git commit` during the push: nothing local is moved
            f"published, but {branch} moved during the push; reset it to what was published "
            f"with `git reset --keep {git_remote}/{branch}` (after `git fetch`) and recommit"
        )
    if result.tip != result.head:
        git.move_branch(result.tip, "adaptergit push: replayed on the remote's branch")
    replay.apply(registry, result, remote_tags, tracking_ref=f"refs/remotes/{git_remote}/{branch}")


def _follow_weights(registry: Registry, old: str, new: str) -> None:
    """After the branch moved: bring the weights of adapters whose pointer changed."""
    if old == new:
        return
    changed = registry.git.changed_files(old, new, [POINTER_GLOB])
    for name in sorted({found[0] for p in changed if (found := adapter_of(p))}):
        if not (registry.adapter_dir(name) / POINTER_FILE).exists():
            continue
        try:
            checkout_op.restore_weights(registry, name)
        except AdapterGitError as exc:
            warnings.warn(f"{adapter_path(name)}: {exc}", AdapterGitWarning, stacklevel=3)


def fetch(
    registry: Registry,
    refs: Sequence[str] = (),
    *,
    remote: str | None = None,
    progress: Progress | None = None,
) -> FetchResult:
    """Bring the weights of these versions into the local DVC cache.

    Args:
        refs: the versions; none means the versions checked out in the work tree, as ``dvc
            fetch`` brings what the work tree's ``.dvc`` files name.

    Raises:
        NoRemote, TransferFailed: see `transfer.fetch_versions`.
    """
    versions = (
        [registry.resolve(r) for r in refs] if refs else transfer.checked_out(registry, bad="warn")
    )
    return transfer.fetch_versions(registry, versions, remote=remote, progress=progress)


def pull(
    registry: Registry,
    refs: Sequence[str] = (),
    *,
    remote: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> FetchResult:
    """Fetch these versions' weights and check each out into ``adapters/NAME``.

    With no `refs`, like ``dvc pull``: the weights of every adapter checked out in the work tree
    (as its manifest names them) are fetched and put in place; git's files are not touched.
    """
    if not refs:
        versions = transfer.checked_out(registry, bad="warn")
        result = transfer.fetch_versions(registry, versions, remote=remote, progress=progress)
        for version in versions:
            checkout_op.restore_weights(registry, version.name, fetch=False)
        return result
    result = fetch(registry, refs, remote=remote, progress=progress)
    for ref in refs:
        checkout_op.checkout(registry, ref, force=force)
    return result


__all__ = [
    "MAX_REPLAYS",
    "PushResult",
    "fetch",
    "pull",
    "push",
    "reupload_removed",
    "unpublished_versions",
]
