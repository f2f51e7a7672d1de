"""Sharing a registry: weights to and from the DVC remote, versions to and from the git remote."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from adaptergit import tags as tag_grammar
from adaptergit.fsutil import crash_point
from adaptergit.hashcache import Progress
from adaptergit.ops import checkout as checkout_op
from adaptergit.ops import transfer
from adaptergit.ops.hooks import PUSHED_ENV
from adaptergit.ops.transfer import FetchResult
from adaptergit.registry import Registry


@dataclass(frozen=True, kw_only=True, slots=True)
class PushResult:
    """What a push sent.

    Attributes:
        remote: the DVC remote the weights went to.
        versions: the versions pushed (``NAME@vX.Y.Z``).
        uploaded: those whose weights the DVC remote did not have yet.
        git_remote: the git remote the refs went to, or None when there is none.
        git_refs: the refspecs pushed to it.
        git_updated: the remote refs the push changed (the others were up to date).
    """

    remote: str
    versions: tuple[str, ...]
    uploaded: tuple[str, ...]
    git_remote: str | None
    git_refs: tuple[str, ...] = field(default_factory=tuple)
    git_updated: tuple[str, ...] = field(default_factory=tuple)


def push(
    registry: Registry,
    refs: Sequence[str] = (),
    *,
    remote: str | None = None,
    git_remote: str | None = None,
    progress: Progress | None = None,
) -> PushResult:
    """Upload the weights of versions, then push the branch and their tags to the git remote.

    Args:
        registry: the registry.
        refs: the versions to push; by default every version reachable from HEAD, with the
            current branch.
        remote: the DVC remote (default: the default remote).
        git_remote: the git remote (default: the branch's upstream, else ``origin``).
        progress: called with (bytes sent, bytes to send) during the upload.

    Raises:
        NoRemote: no DVC remote.
        TransferFailed: some weights did not arrive; nothing was pushed to git.
        GitError: git refused the push.
    """
    remote = transfer.require_remote(registry, remote)
    versions = (
        [registry.resolve(r) for r in refs] if refs else transfer.versions_reachable(registry)
    )
    uploaded = transfer.upload(registry, versions, remote, progress=progress)
    crash_point("push.uploaded")
    git_remote = git_remote or registry.git.default_remote()
    pushed: list[str] = []
    updated: list[str] = []
    if git_remote is not None:
        refspecs = []
        branch = registry.git.current_branch()
        # The first push of a branch sets its upstream, as `git push -u`, so `git pull` works.
        track = bool(branch) and not refs and registry.git.upstream(branch or "") is None
        if branch and not refs:
            refspecs.append(f"refs/heads/{branch}:refs/heads/{branch}")
        names = {v.name for v in versions}
        tags = [v.tag for v in versions if v.tag]
        # Stage tags of these adapters travel with their versions (GTO reads them too).
        for tag in registry.git.tags():
            parsed = tag_grammar.parse(tag.name)
            if parsed is not None and parsed.stage is not None and parsed.name in names:
                tags.append(tag.name)
        refspecs += [
            f"{tag_grammar.full_ref(t)}:{tag_grammar.full_ref(t)}" for t in sorted(set(tags))
        ]
        if refspecs:
            report = registry.git.push(
                git_remote, refspecs, env={PUSHED_ENV: remote}, set_upstream=track
            )
            pushed = refspecs
            updated = registry.git.updated_refs(report)
    return PushResult(
        remote=remote,
        versions=tuple(v.ref for v in versions),
        uploaded=uploaded,
        git_remote=git_remote,
        git_refs=tuple(pushed),
        git_updated=tuple(updated),
    )


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
    versions = [registry.resolve(r) for r in refs] if refs else transfer.checked_out(registry)
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
    result = fetch(registry, refs, remote=remote, progress=progress)
    if not refs:
        for version in transfer.checked_out(registry):
            checkout_op.restore_weights(registry, version.name, fetch=False)
        return result
    for ref in refs:
        checkout_op.checkout(registry, ref, force=force)
    return result


__all__ = ["PushResult", "fetch", "pull", "push"]
