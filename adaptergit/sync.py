"""Sharing a registry: weights to and from DVC remotes, versions to and from the git remote.

The rule that keeps a team whole: git never receives a version whose weights the DVC remote lacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from adaptergit.errors import AdapterGitError, DvcError, NoRemote, TransferFailed
from adaptergit.manifest import Version
from adaptergit.refs import parse_stage_tag, parse_version_tag

if TYPE_CHECKING:
    from adaptergit.repo import Repo

from adaptergit.hooks import PUSHED_ENV


@dataclass(frozen=True, kw_only=True, slots=True)
class PushResult:
    remote: str
    versions: tuple[str, ...]
    uploaded: tuple[str, ...]
    git_remote: str | None
    git_refs: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchResult:
    remote: str | None
    versions: tuple[str, ...]
    fetched: tuple[str, ...]


def _with_weights(versions: Iterable[Version]) -> list[Version]:
    return [v for v in versions if v.manifest is not None]


def versions_reachable(repo: Repo, rev: str = "HEAD") -> list[Version]:
    """Every registered version whose commit is reachable from `rev`."""
    wanted = set(repo.git.merged_tags(rev, "*@v*"))
    return [v for v in repo.log() if v.tag in wanted]


def versions_in_commits(repo: Repo, commits: set[str]) -> list[Version]:
    return [v for v in repo.log() if v.commit in commits]


def require_remote(repo: Repo, remote: str | None) -> str:
    names = [r.name for r in repo.remotes.configured()]
    if remote is None:
        remote = repo.remotes.default()
    if remote is None:
        raise NoRemote(names)
    if remote not in names:
        raise NoRemote(names, wanted=remote)
    return remote


def upload(repo: Repo, versions: Sequence[Version], remote: str) -> tuple[str, ...]:
    """Upload the weights of `versions` that `remote` lacks; all arrive, or TransferFailed."""
    versions = _with_weights(versions)
    by_md5: dict[str, list[str]] = {}
    for v in versions:
        assert v.manifest is not None
        by_md5.setdefault(v.manifest.weights.md5, []).append(v.ref)
    not_local = [m for m in by_md5 if not repo.dvc.in_cache(m)]
    if not_local:
        # Weights already on the remote need nothing; absent everywhere is an error. (When all
        # are local, DVC's push asks the remote itself: no need to ask twice.)
        try:
            missing = repo.remotes.missing(not_local, remote)
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
    outcome = repo.remotes.push([m for m in by_md5 if m not in not_local], remote)
    if outcome.failed:
        raise TransferFailed(
            "push",
            remote,
            sorted(r for m in outcome.failed for r in by_md5.get(m, [m])),
            outcome.error,
        )
    return tuple(sorted(r for m in outcome.transferred for r in by_md5.get(m, [])))


def push(
    repo: Repo,
    refs: Sequence[str] = (),
    *,
    remote: str | None = None,
    git_remote: str | None = None,
) -> PushResult:
    """Upload weights of the versions, then push the branch and their tags to the git remote."""
    remote = require_remote(repo, remote)
    versions = [repo.resolve(r) for r in refs] if refs else versions_reachable(repo)
    uploaded = upload(repo, versions, remote)
    git_remote = git_remote or repo.git.default_remote()
    pushed: list[str] = []
    if git_remote is not None:
        refspecs = []
        branch = repo.git.current_branch()
        if branch and not refs:
            refspecs.append(f"refs/heads/{branch}:refs/heads/{branch}")
        names = {v.name for v in versions}
        tags = [v.tag for v in versions if v.tag]
        # Stage tags of these adapters travel with their versions (GTO reads them too).
        tags += [
            t.name
            for t in repo.git.tags(["refs/tags"])
            if (p := parse_stage_tag(t.name)) and p[0] in names
        ]
        refspecs += [f"refs/tags/{t}:refs/tags/{t}" for t in sorted(set(tags))]
        if refspecs:
            repo.git.push(git_remote, refspecs, env={PUSHED_ENV: remote})
            pushed = refspecs
    return PushResult(
        remote=remote,
        versions=tuple(v.ref for v in versions),
        uploaded=uploaded,
        git_remote=git_remote,
        git_refs=tuple(pushed),
    )


def fetch(repo: Repo, refs: Sequence[str], *, remote: str | None = None) -> FetchResult:
    """Bring the weights of these versions into the local DVC cache."""
    versions = _with_weights(repo.resolve(r) for r in refs)
    return fetch_versions(repo, versions, remote=remote)


def fetch_versions(
    repo: Repo, versions: Sequence[Version], *, remote: str | None = None
) -> FetchResult:
    by_md5: dict[str, list[str]] = {}
    for v in versions:
        assert v.manifest is not None
        by_md5.setdefault(v.manifest.weights.md5, []).append(v.ref)
    needed = [m for m in by_md5 if not repo.dvc.in_cache(m)]
    if not needed:
        return FetchResult(remote=remote, versions=tuple(v.ref for v in versions), fetched=())
    remote = require_remote(repo, remote)
    sizes = {v.manifest.weights.md5: v.manifest.weights.size for v in versions if v.manifest}
    outcome = repo.remotes.fetch(needed, remote, total_bytes=sum(sizes[m] for m in needed))
    if outcome.failed:
        raise TransferFailed(
            "fetch",
            remote,
            sorted(r for m in outcome.failed for r in by_md5.get(m, [m])),
            outcome.error,
        )
    return FetchResult(
        remote=remote,
        versions=tuple(v.ref for v in versions),
        fetched=tuple(sorted(r for m in outcome.transferred for r in by_md5.get(m, []))),
    )


def refs_in_push(repo: Repo, lines: Iterable[str], git_remote: str) -> list[Version]:
    """Versions that a push (git's pre-push stdin lines) makes reachable on the remote."""
    commits: set[str] = set()
    tag_names: set[str] = set()
    zero = "0" * 40
    for line in lines:
        parts = line.split()
        if len(parts) != 4:
            continue
        _local_ref, local_sha, remote_ref, remote_sha = parts
        if local_sha == zero:  # a deletion sends nothing
            continue
        if remote_ref.startswith("refs/tags/"):
            name = remote_ref[len("refs/tags/") :]
            if parse_version_tag(name):
                tag_names.add(name)
        exclude = [remote_sha] if remote_sha != zero and repo.git.resolve_commit(remote_sha) else []
        exclude.append(f"--remotes={git_remote}")
        commits |= repo.git.commits_between(local_sha, exclude)
    return [v for v in repo.log() if v.commit in commits or (v.tag and v.tag in tag_names)]


__all__ = [
    "PUSHED_ENV",
    "AdapterGitError",
    "FetchResult",
    "PushResult",
    "fetch",
    "push",
    "refs_in_push",
    "upload",
    "versions_reachable",
]
