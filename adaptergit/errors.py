"""The one exception hierarchy of adaptergit: every error a user can see, each building its own message.

Each class carries the exit status the CLI and the git hooks give it (`AdapterGitError.exit_code`,
as click's ``ClickException.exit_code``), so the mapping lives here and nowhere else:

====  =====================================================================================
1     any other error (``NothingToCommit`` included, as ``git commit`` with nothing staged)
2     bad input: a name, version, reference, adapter file, config or metric (`InvalidInput`)
3     data that does not match its recorded hash (`IntegrityError`)
4     something asked for does not exist: adapter, version, stage, revision (`NotFound`)
75    another command holds the repository (`RepositoryBusy`; EX_TEMPFAIL, try again)
====  =====================================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar


class AdapterGitWarning(UserWarning):
    """Something about an adapter that a user should know but that does not stop the command."""


class AdapterGitError(Exception):
    """Base of every error adaptergit raises on purpose.

    Attributes:
        message: the one line shown to the user.
        exit_code: the exit status of the CLI and hooks for this kind of error.
    """

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _listing(items: Iterable[str], limit: int = 10) -> str:
    items = list(items)
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


# --- input that is not acceptable -------------------------------------------------------------


class InvalidInput(AdapterGitError):
    """Something the user handed us is malformed; nothing was written."""

    exit_code = 2


class NotFound(AdapterGitError):
    """Something the user named does not exist: an adapter, version, stage or revision."""

    exit_code = 4


class InvalidName(InvalidInput):
    """A registry name breaks the rules (``refs.validate_name``: lowercase letters, digits,
    ``-`` and ``_``, as GTO's artifact names; at most 100 characters).

    Args:
        name: the name given.
        reason: what is wrong with it.
    """

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"invalid adapter name {name!r}: {reason}")


class InvalidVersion(InvalidInput):
    """A version that is not ``vMAJOR.MINOR.PATCH`` (GTO's semver versions), or a bad bump.

    Args:
        version: the text given.
        reason: what was expected.
    """

    def __init__(
        self, version: str, reason: str = "expected vMAJOR.MINOR.PATCH, e.g. v1.2.0"
    ) -> None:
        self.version = version
        self.reason = reason
        super().__init__(f"invalid version {version!r}: {reason}")


class InvalidRef(InvalidInput):
    """A reference (``NAME``, ``NAME@vX.Y.Z``, ``NAME@REV``, ``NAME#STAGE``) or a stage name
    that does not parse.

    Args:
        ref: the text given.
        reason: what is wrong with it.
    """

    def __init__(self, ref: str, reason: str) -> None:
        self.ref = ref
        self.reason = reason
        super().__init__(f"invalid reference {ref!r}: {reason}")


class InvalidSafetensors(InvalidInput):
    """A file that is not valid safetensors (header length, JSON header, offsets or
    dtypes break the format's spec: https://github.com/huggingface/safetensors#format).

    Args:
        path: the file.
        reason: which rule it breaks.
    """

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: not a valid safetensors file: {reason}")


class InvalidAdapter(InvalidInput):
    """The adapter directory or its tensors fail a check (missing files, NaN, zero-size tensors)."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class SeveralAdapters(InvalidInput):
    """A folder holds more than one PEFT adapter (``save_pretrained`` of a multi-adapter model,
    or several checkpoints) and the commit did not say which."""

    def __init__(self, path: Path | str, adapters: dict[str, Path]) -> None:
        self.path = Path(path)
        self.adapters = dict(adapters)
        listed = ", ".join(
            f"{name} ({folder}/)" if folder != self.path else f"{name} ({folder}/ itself)"
            for name, folder in self.adapters.items()
        )
        first = next(iter(self.adapters))
        super().__init__(
            f"{self.path} holds {len(self.adapters)} PEFT adapters: {listed}; commit one with "
            f"--adapter NAME (e.g. --adapter {first}), or several in one commit with "
            "Repo.commit(folder, names={adapter: registry name, ...})"
        )


class InvalidConfig(InvalidInput):
    """A configuration file (``adapter_config.json``, ``.adaptergit.toml``, ``dvc.yaml``,
    ``.dvc/config``) that cannot be read or holds a bad value.

    Args:
        path: the file.
        reason: what is wrong.
        key: the offending key, if one.
    """

    def __init__(self, path: Path | str, reason: str, key: str | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.key = key
        where = f" (key {key!r})" if key else ""
        super().__init__(f"{self.path}: {reason}{where}")


class InvalidMetric(InvalidInput):
    """A metric that is not a finite number (metrics are JSON numbers, possibly nested).

    Args:
        key: the metric's (dotted) key.
        value: the value given.
        source: where it came from (a file, ``--metric``), for the message.
    """

    def __init__(self, key: str, value: object, source: str = "") -> None:
        self.key = key
        self.value = value
        origin = f" in {source}" if source else ""
        shown = repr(value)
        if len(shown) > 60:  # a pasted blob stays one readable line
            shown = f"{shown[:40]}... ({len(shown)} characters)"
        super().__init__(f"metric {key!r}{origin} must be a finite number, got {shown}")


class InvalidManifest(InvalidInput):
    """A manifest (or another record read back from JSON) that does not validate.

    Args:
        reason: what is wrong.
        key: the offending key path (``weights.size``), if one.
        source: what was read (a path and commit), for the message.
    """

    def __init__(self, reason: str, key: str | None = None, source: str = "manifest") -> None:
        self.reason = reason
        self.key = key
        where = f" at key {key!r}" if key else ""
        super().__init__(f"{source}: {reason}{where}")


class UnsafePickle(InvalidInput):
    """A PyTorch ``.bin`` checkpoint that holds more than tensors: loading it would run code,
    so it is refused (it is read with ``torch.load(weights_only=True)``).

    Args:
        path: the checkpoint.
        reason: what the restricted unpickler refused.
    """

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(
            f"{self.path}: refused to load this PyTorch checkpoint without executing code: {reason}"
        )


# --- state of the repository ------------------------------------------------------------------


class NotARepository(AdapterGitError):
    """A folder that is not (inside) a git work tree, or a work tree with no registry.

    Args:
        path: the folder.
        what: what it is not, for the message.
    """

    def __init__(self, path: Path | str, what: str = "an adaptergit repository") -> None:
        self.path = Path(path)
        super().__init__(f"{self.path} is not {what}; run `adaptergit init` there first")


class AnotherRegistry(AdapterGitError):
    """A repository holds one registry: its version tags are repository-wide."""

    def __init__(self, path: Path | str, existing: str) -> None:
        self.path = Path(path)
        self.existing = existing
        super().__init__(
            f"cannot make {self.path} a registry: this git repository already holds one at "
            f"{existing or 'its top level'}, and version tags (NAME@vX.Y.Z) are repository-wide, "
            "so one repository holds one registry; add adapters there, or use another repository"
        )


class RepositoryBusy(AdapterGitError):
    """Another command holds the repository's lock (exit status 75, EX_TEMPFAIL: try again).

    Args:
        lock_path: the lock file.
        holder: who holds it (process id, command), if known.
    """

    exit_code = 75  # EX_TEMPFAIL: try again later

    def __init__(self, lock_path: Path | str, holder: str = "") -> None:
        self.lock_path = Path(lock_path)
        held = f" by {holder}" if holder else ""
        super().__init__(
            f"the repository is busy: another adaptergit command holds {self.lock_path}{held}; "
            "try again when it has finished"
        )


class OperationInProgress(AdapterGitError):
    """A merge, rebase, cherry-pick or revert is unfinished, or the index has conflicts."""

    _HOW: ClassVar[dict[str, str]] = {
        "merge": "resolve the conflicts and `git commit`, or `git merge --abort`",
        "rebase": "resolve the conflicts and `git rebase --continue`, or `git rebase --abort`",
        "cherry-pick": "`git cherry-pick --continue`, or `git cherry-pick --abort`",
        "revert": "`git revert --continue`, or `git revert --abort`",
        "bisect": "`git bisect reset`",
        "conflicts": "resolve them and `git add` the files",
    }

    def __init__(self, operation: str, paths: Iterable[str] = ()) -> None:
        self.operation = operation
        self.paths = sorted(paths)
        what = (
            f"unresolved conflicts ({_listing(self.paths, 4)})"
            if operation == "conflicts"
            else f"a {operation} is in progress"
        )
        super().__init__(
            f"{what}: finish it first ({self._HOW.get(operation, 'finish or abort it')}); "
            "a version recorded now would be committed over it"
        )


class DetachedHead(AdapterGitError):
    """A version on a detached HEAD would be on no branch: pushes and pulls would not carry it."""

    def __init__(self, commit: str, *, pushing: bool = False) -> None:
        self.commit = commit
        if pushing:
            super().__init__(
                f"HEAD is detached at {commit[:7]}: push publishes a branch with its versions; "
                "switch to the branch (`git switch BRANCH`), or name versions to push their tags"
            )
            return
        super().__init__(
            f"HEAD is detached at {commit[:7]}: a version recorded here would be on no branch, so "
            "teammates' pulls never see it and its number could be issued again; switch to a "
            "branch (`git switch BRANCH`), or pass --branch BRANCH to record it on BRANCH"
        )


class MissingVersionTags(AdapterGitError):
    """The clone lacks version tags that its history records, so numbering would repeat one."""

    def __init__(self, name: str, version: str, shallow: bool, remote: str | None) -> None:
        self.name = name
        self.version = version
        self.shallow = shallow
        where = "this shallow clone" if shallow else "this clone"
        super().__init__(
            f"HEAD records {name}@{version}, but {where} has no tag {name}@{version}: version "
            "tags were not fetched (e.g. `git clone --depth 1` or `--no-tags`), so the next "
            f"version number cannot be known; fetch them with `git fetch --tags {remote or 'origin'}` "
            "and commit again"
        )


class BranchMoved(AdapterGitError):
    """``--branch`` names a branch that HEAD's commit does not continue."""

    def __init__(self, branch: str, reason: str) -> None:
        self.branch = branch
        super().__init__(f"cannot record the version on branch {branch!r}: {reason}")


class NothingToCommit(AdapterGitError):
    """The adapter's weights and config equal its latest version's: no version is made
    (exit status 1, as ``git commit`` with nothing staged).

    Args:
        name: the adapter.
        version: its latest version (``vX.Y.Z``).
    """

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        super().__init__(f"nothing to commit: weights and config are identical to {name}@{version}")


class VersionExists(AdapterGitError):
    """The version to record is already registered, or a lightweight tag has its name.

    Args:
        name: the adapter.
        version: the version (``vX.Y.Z``).
        lightweight: the name is taken by a lightweight git tag, not a registered version.
    """

    def __init__(self, name: str, version: str, *, lightweight: bool = False) -> None:
        self.name = name
        self.version = version
        if lightweight:
            super().__init__(
                f"a lightweight tag {name}@{version} (not a registered version) is in the way; "
                f"pick another version, or delete it with `git tag -d {name}@{version}`"
            )
        else:
            super().__init__(f"version {name}@{version} already exists")


class VersionNotNewer(AdapterGitError):
    """An explicit version that is not above the adapter's latest (versions only grow).

    Args:
        name: the adapter.
        version: the version asked for.
        latest: the latest registered version.
    """

    def __init__(self, name: str, version: str, latest: str) -> None:
        self.name = name
        self.version = version
        self.latest = latest
        super().__init__(
            f"version {version} of {name} is not newer than its latest version {latest}"
        )


class UnknownAdapter(NotFound):
    """No adapter of that name has a version or a folder.

    Args:
        name: the name asked for.
        known: the adapters there are, listed in the message.
    """

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = sorted(known)
        super().__init__(f"no adapter named {name!r}; adapters here: {_listing(self.known)}")


class UnknownVersion(NotFound):
    """The adapter exists but has no such version.

    Args:
        name: the adapter.
        version: the version asked for.
        known: its versions, listed in the message.
    """

    def __init__(self, name: str, version: str, known: Iterable[str]) -> None:
        self.name = name
        self.version = version
        self.known = list(known)
        super().__init__(f"{name} has no version {version!r}; its versions: {_listing(self.known)}")


class UnknownStage(UnknownVersion):
    """No version of the adapter holds the stage (by GTO's stage tags).

    A subclass of `UnknownVersion`, with `version` set to ``#STAGE``.

    Args:
        name: the adapter.
        stage: the stage asked for.
        assigned: the stages its versions hold, listed in the message.
    """

    def __init__(self, name: str, stage: str, assigned: Iterable[str]) -> None:
        AdapterGitError.__init__(
            self,
            f"{name}#{stage}: no version of {name} has stage {stage!r}; stages assigned: "
            f"{_listing(sorted(assigned))} (assign one with `adaptergit assign {name}@vX.Y.Z "
            f"--stage {stage}`, or fetch stage tags with `git fetch --tags`)",
        )
        self.name = name
        self.version = f"#{stage}"
        self.known = sorted(assigned)


class AdapterWithdrawn(NotFound):
    """Every version of an adapter is withdrawn with GTO: deregistered, or the artifact deprecated."""

    def __init__(self, name: str, kind: str, tag: str, versions: Iterable[str] = ()) -> None:
        self.name = name
        self.kind = kind  # "deregistered" or "deprecated"
        self.tag = tag
        self.versions = list(versions)
        if kind == "deprecated":
            what = f"{name} is deprecated (GTO tag {tag})"
        else:
            what = f"every version of {name} is deregistered (latest: GTO tag {tag})"
        super().__init__(
            f"{what}, so it has no latest version or stages; name a version explicitly "
            f"({_listing(self.versions)}) to read it anyway"
        )


class UnknownRevision(NotFound):
    """``NAME@REV`` where REV is no git revision, or one that does not hold the adapter.

    Args:
        name: the adapter.
        revision: the revision given.
        reason: why it does not resolve, if more is known.
    """

    def __init__(self, name: str, revision: str, reason: str = "") -> None:
        self.name = name
        self.revision = revision
        extra = f" ({reason})" if reason else ""
        super().__init__(
            f"{revision!r} is neither a version of {name} nor a git revision that holds it{extra}"
        )


class NotAnAdapterVersion(NotFound):
    """A GTO registration with no adaptergit manifest: ``gto register`` of something else."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        super().__init__(
            f"{tag} is registered with GTO but was not committed with adaptergit: it has no "
            "manifest, weights or config here (`gto show` lists it)"
        )


class UncommittedChanges(AdapterGitError):
    """``adapters/NAME`` holds changes that no version records; overwriting would lose
    them (``--force`` / ``force=True`` does).

    Args:
        name: the adapter.
        paths: the changed files, listed in the message (at most four).
    """

    def __init__(self, name: str, paths: Iterable[str]) -> None:
        self.name = name
        self.paths = list(paths)
        super().__init__(
            f"adapters/{name} has changes that are not recorded in any version "
            f"({_listing(self.paths, 4)}); commit them or use --force to overwrite"
        )


class GitViewConflict(AdapterGitError):
    """git's own state of ``adapters/NAME`` (a merge conflict, a sparse checkout) forbids writing
    it now; the message says what to do with git first."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"cannot check out {name} here: {reason}")


class DestinationNotEmpty(AdapterGitError):
    """``checkout --to`` names a folder that exists and is not empty (without force).

    Args:
        path: the folder.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        super().__init__(f"{self.path} exists and is not empty; use --force to overwrite it")


class ManagedDestination(InvalidInput):
    """``checkout --to`` names a folder adaptergit manages itself (``adapters/``, ``.git``, ``.dvc``)."""

    def __init__(self, path: Path | str, what: str, advice: str) -> None:
        self.path = Path(path)
        super().__init__(f"--to {self.path} is inside {what}, which adaptergit manages; {advice}")


class WeightsMissing(AdapterGitError):
    """A version's weights are not in the local DVC cache, and were not (or could not be)
    fetched.

    Args:
        name: the adapter.
        version: the version.
        md5: the weights' DVC md5, hex.
    """

    def __init__(self, name: str, version: str, md5: str) -> None:
        self.name = name
        self.version = version
        self.md5 = md5
        super().__init__(
            f"the weights of {name}@{version} (md5 {md5}) are not in the DVC cache; "
            "fetch them with `dvc pull` or `adaptergit pull`"
        )


class IntegrityError(AdapterGitError):
    """Data that does not hash to what was recorded: the sha256 of weights (exit status 3).

    Args:
        path: the file.
        expected: the recorded sha256, hex.
        actual: the sha256 of its bytes, hex.
    """

    exit_code = 3

    def __init__(self, path: Path | str, expected: str, actual: str) -> None:
        self.path = Path(path)
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{self.path}: sha256 {actual[:12]} does not match the recorded {expected[:12]}; "
            "the data is corrupt"
        )


class ManifestMismatch(IntegrityError):
    """Weights that match their DVC md5 but not the sha256 a manifest records: the manifest is
    wrong (damaged, or written to mislead), the object is sound and is kept."""

    def __init__(self, ref: str, md5: str, expected: str, actual: str) -> None:
        AdapterGitError.__init__(
            self,
            f"{ref}: its manifest records sha256 {expected[:12]} for the weights with md5 "
            f"{md5[:12]}, but they hash to {actual[:12]}; the manifest is wrong, so this version "
            "is refused (the weights object, which other versions may share, is kept)",
        )
        self.path = Path(md5)
        self.ref = ref
        self.md5 = md5
        self.expected = expected
        self.actual = actual


class CorruptObject(IntegrityError):
    """A DVC cache or remote object whose bytes do not hash to its own name (md5)."""

    def __init__(self, where: str, md5: str, refs: Iterable[str], action: str = "") -> None:
        AdapterGitError.__init__(
            self,
            f"{where} object {md5[:12]} (weights of {_listing(sorted(set(refs)))}) is corrupt: "
            f"its bytes do not match its md5{f'; {action}' if action else ''}",
        )
        self.path = Path(md5)
        self.md5 = md5
        self.refs = sorted(set(refs))
        self.expected = md5
        self.actual = ""


# --- the trust boundary and the filesystem ----------------------------------------------------


class UnsafePath(InvalidInput):
    """A path adaptergit would read or write goes through a symbolic link (or is no regular file):
    a registry someone else made may point it anywhere, so it is refused, never followed."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}; adaptergit does not follow it")


class UntrustedConfig(InvalidConfig):
    """A committed configuration (``.dvc/config``) that points adaptergit outside the repository,
    which only the user's own local or global configuration may do."""

    def __init__(self, path: Path | str, key: str, value: str, advice: str) -> None:
        self.value = value
        InvalidConfig.__init__(
            self,
            path,
            f"sets {key} to {value}, outside the repository; a committed config cannot choose "
            f"that (a clone could point it at another project's data). {advice}",
        )
        self.key = key


class FileSystemError(AdapterGitError):
    """Reading or writing a file failed (disk full, permissions, I/O); names the path."""

    def __init__(self, path: Path | str, error: OSError, action: str = "write") -> None:
        import errno as errno_mod

        self.path = Path(path)
        self.errno = error.errno
        self.action = action
        reason = error.strerror or str(error) or type(error).__name__
        if error.errno in (errno_mod.ENOSPC, errno_mod.EDQUOT):
            text = f"cannot {action} {self.path}: the disk is full ({reason})"
        else:
            text = f"cannot {action} {self.path}: {reason}"
        super().__init__(text)


class GitError(AdapterGitError):
    """A git command failed; `detail` keeps git's meaningful lines (not its hints)."""

    def __init__(self, command: str, detail: str) -> None:
        self.command = command
        self.detail = git_reason(detail)
        super().__init__(f"git {command}: {self.detail}")


def git_reason(stderr: str) -> str:
    """The lines of git's stderr that say what went wrong, on one line.

    git ends many failures with a generic line ("failed to push some refs") after the real
    reason (" ! [rejected] main -> main (fetch first)"); hints and blank lines are dropped, the
    ``error:``/``fatal:`` and ``!`` lines kept (at most three), and a missing identity keeps the
    commands git advises.
    """
    text = stderr.strip()
    if not text:
        return "failed"
    if "Please tell me who you are" in text:
        return (
            'git does not know who you are; run `git config --global user.name "Your Name"` '
            "and `git config --global user.email you@example.com` (omit --global to set it for "
            "this repository only)"
        )
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith(("hint:", "To "))]
    marked = [
        line
        for line in lines
        if line.startswith(("error:", "fatal:", "!", "warning:", "remote: error"))
    ]
    chosen = (marked or lines[-1:])[:3]
    return "; ".join(line.removeprefix("error: ").removeprefix("fatal: ") for line in chosen)


class PushRejected(GitError):
    """The git remote refused an atomic push: nothing changed there."""

    def __init__(
        self, remote: str, rejected: Iterable[tuple[str, str]], detail: str = "", advice: str = ""
    ) -> None:
        self.remote = remote
        self.rejected = list(rejected)
        refs = "; ".join(f"[rejected] {ref} ({why})" for ref, why in self.rejected) or "rejected"
        AdapterGitError.__init__(
            self,
            f"git push to {remote} was rejected, nothing changed there: {refs}"
            + (f"; {advice}" if advice else ""),
        )
        self.command = "push"
        self.detail = detail or refs


class UntaggedVersion(AdapterGitError):
    """A commit to publish records a version that no tag of this clone names there."""

    def __init__(self, ref: str, commit: str, tagged: str | None) -> None:
        self.ref = ref
        self.commit = commit
        self.tagged = tagged
        where = f"tag {ref} names commit {tagged[:7]}" if tagged else f"no tag {ref} exists here"
        super().__init__(
            f"commit {commit[:7]} records {ref}, but {where}: publishing it would put a version "
            "on the branch that its tag does not name; record the adapter with `adaptergit "
            "commit`, or restore the tag, then push again (nothing was pushed)"
        )


class VersionOffBranch(AdapterGitError):
    """`push REF` of a version whose commit no branch of the git remote holds, nor the current
    branch: publishing its tag alone would leave a version on no remote branch."""

    def __init__(self, ref: str, commit: str, remote: str) -> None:
        self.ref = ref
        self.commit = commit
        self.remote = remote
        super().__init__(
            f"{ref} (commit {commit[:7]}) is on no branch of {remote} and not on the current "
            f"branch; a version tag is published only with its branch: switch to the branch that "
            "holds it and run `adaptergit push` (nothing was pushed)"
        )


class PublishedVersionClash(AdapterGitError):
    """A version whose commit the git remote's branch holds, its tag not there, while the remote
    gives that number to another commit (published without its tag, then numbered twice)."""

    def __init__(self, ref: str, commit: str, remote: str, theirs: str) -> None:
        self.ref = ref
        self.commit = commit
        self.remote = remote
        self.theirs = theirs
        super().__init__(
            f"{ref} names commit {commit[:7]} here, which {remote}'s branch holds without the "
            f"tag, but {remote} gives {ref} to commit {theirs[:7]}; a published commit is never "
            f"renumbered: take {remote}'s tag (`git tag -d {ref} && git fetch {remote} tag "
            f"{ref}`) and commit those weights again as a new version (nothing was pushed)"
        )


class GcRefused(AdapterGitError):
    """gc --remote could not read a git remote, so it cannot know what teammates keep."""

    def __init__(self, remote: str, reason: str) -> None:
        self.remote = remote
        self.reason = reason
        super().__init__(
            f"gc --remote keeps whatever the git remotes' branches and tags need, but git remote "
            f"{remote!r} cannot be read ({reason}); nothing was deleted"
        )


class DvcError(AdapterGitError):
    """A DVC operation failed; the message keeps DVC's own reason on one line.

    Args:
        operation: what was attempted (``push``, ``remote add``, ...).
        detail: DVC's message.
    """

    def __init__(self, operation: str, detail: str) -> None:
        self.operation = operation
        self.detail = " ".join(detail.split()) or "failed"
        super().__init__(f"dvc {operation}: {self.detail}")


class MissingDependency(AdapterGitError):
    """An optional package a feature needs is not installed.

    Args:
        package: the package.
        purpose: what needs it, for the message.
        install: the command that installs it.
    """

    def __init__(self, package: str, purpose: str, install: str) -> None:
        self.package = package
        super().__init__(f"{purpose} needs {package}; install it with `{install}`")


# The extra of adaptergit that installs DVC's plugin for each kind of remote (pyproject.toml).
REMOTE_EXTRAS = {"s3": "s3", "ssh": "ssh"}


class MissingRemoteSupport(AdapterGitError):
    """A remote's URL needs a DVC plugin that is not installed; the message says what to install."""

    def __init__(self, scheme: str, package: str | None = None) -> None:
        self.scheme = scheme
        self.package = package or f"dvc-{scheme}"
        extra = REMOTE_EXTRAS.get(scheme)
        install = f'pip install "adaptergit[{extra}]"' if extra else f"pip install {self.package}"
        super().__init__(
            f"{scheme}:// remotes need {self.package}, which is not installed; "
            f"install it with `{install}`"
        )


class InvalidBaseModel(InvalidInput):
    """A base model to fingerprint is missing, or its safetensors files do not form one model."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"base model {self.path}: {reason}")


class NoRemote(AdapterGitError):
    """There is no DVC remote of that name, or no default remote and none was named.

    Args:
        known: the remotes configured.
        wanted: the name asked for, or None when the default was wanted.
    """

    def __init__(self, known: Iterable[str], wanted: str | None = None) -> None:
        self.known = sorted(known)
        self.wanted = wanted
        if wanted is not None:
            msg = f"no DVC remote named {wanted!r}; remotes: {_listing(self.known)}"
        elif self.known:
            msg = (
                f"no default DVC remote; pass --remote ({', '.join(self.known)}) or make one the "
                "default with `adaptergit remote add NAME URL --default`"
            )
        else:
            msg = "no DVC remote is configured; add one with `adaptergit remote add NAME URL --default`"
        super().__init__(msg)


class TransferFailed(AdapterGitError):
    """Weights did not arrive at (push) or from (fetch) a DVC remote.

    Args:
        direction: ``push`` or ``fetch``.
        remote: the DVC remote.
        refs: the versions whose weights did not arrive.
        reason: DVC's reason, if known.
    """

    def __init__(
        self, direction: str, remote: str, refs: Iterable[str], reason: str | None = None
    ) -> None:
        self.direction = direction
        self.remote = remote
        self.refs = sorted(set(refs))
        why = f": {reason}" if reason else ""
        where = "to" if direction == "push" else "from"
        super().__init__(
            f"{direction} {where} DVC remote {remote!r} failed{why}; weights that did not arrive: "
            f"{_listing(self.refs)}"
            + ("; nothing was pushed to git" if direction == "push" else "")
        )


# --- PEFT models, base models, stages -------------------------------------------------------------


class NotAPeftModel(InvalidInput):
    """What was handed to commit is neither an adapter folder nor a ``peft.PeftModel``.

    Args:
        kind: the type that was given, for the message.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(
            f"expected an adapter folder or a peft.PeftModel, got {kind}; "
            "wrap the model with peft.get_peft_model first"
        )


class UnknownPeftAdapter(InvalidInput):
    """`adapter_name=` or `names=` names an adapter that the PeftModel does not have."""

    def __init__(
        self, adapter_name: str, known: Iterable[str], where: str = "the PeftModel"
    ) -> None:
        self.adapter_name = adapter_name
        self.known = sorted(known)
        super().__init__(
            f"{where} has no adapter {adapter_name!r}; its adapters: {_listing(self.known)}"
        )


class IncompatibleBaseModel(AdapterGitError):
    """A LoRA module of the version does not fit the base model: it can never load there."""

    def __init__(
        self,
        ref: str,
        module: str,
        expected: tuple[int, ...] | None,
        actual: tuple[int, ...] | None,
        base: str = "",
        hint: str = "",
    ) -> None:
        self.ref = ref
        self.module = module
        self.expected = expected
        self.actual = actual
        self.base = base
        self.hint = hint
        where = f" {base}" if base else ""
        if actual is None:
            found = "the base model has no such module"
        else:
            found = f"its weight there is {list(actual)}"
        need = (
            f"needs a weight of shape {list(expected)}"
            if expected is not None
            else "needs a module there"
        )
        super().__init__(
            f"{ref} does not fit the base model{where}: module {module} {need}, but {found}"
            + (f" ({hint})" if hint else "")
        )


class AdapterKeysMissing(AdapterGitError):
    """PEFT loaded a version but left some of the model's adapter parameters at their fresh
    values: the base model was built as a class the adapter's tensors do not name."""

    def __init__(self, ref: str, model_class: str, keys: Iterable[str]) -> None:
        self.ref = ref
        self.model_class = model_class
        self.keys = list(keys)
        super().__init__(
            f"{ref} did not load onto {model_class}: {len(self.keys)} of its adapter parameters "
            f"found no tensor in the version ({_listing(self.keys, 2)}); the base model must be "
            "built as the class the adapter was trained on"
        )


class PeftLoadFailed(AdapterGitError):
    """PEFT could not load a version onto a base model that passed the check."""

    def __init__(self, ref: str, model_class: str, detail: str) -> None:
        self.ref = ref
        self.model_class = model_class
        self.detail = detail
        super().__init__(f"PEFT could not load {ref} onto {model_class}: {detail}")


class BaseModelMismatch(AdapterGitError):
    """The base model fits the adapter's shapes but is not the one the version was trained on."""

    def __init__(self, ref: str, kind: str, expected: str, actual: str, base: str = "") -> None:
        self.ref = ref
        self.kind = kind  # "weights" (same structure) or "structure" (other tensors, shapes fit)
        self.expected = expected
        self.actual = actual
        self.base = base
        what = "its weights differ" if kind == "weights" else "its tensors differ"
        where = f" {base}" if base else ""
        super().__init__(
            f"{ref} was trained on base model {expected[:12]}, but the base model{where} is "
            f"{actual[:12]} ({what}); pass allow_base_mismatch=True (--allow-mismatch) to load it anyway"
        )


class BaseModelUnverifiable(AdapterGitError):
    """An in-memory base model whose weight files cannot be found, so its fingerprint is unknown."""

    def __init__(self, ref: str, reason: str) -> None:
        self.ref = ref
        self.reason = reason
        super().__init__(
            f"cannot check the base model for {ref}: {reason}; pass base_model_path= (the folder "
            "it was loaded from) or allow_base_mismatch=True"
        )


class StageAlreadyAssigned(AdapterGitError):
    """The version holds the stage already (by GTO's stage tags).

    Args:
        name: the adapter.
        stage: the stage.
        version: the version holding it.
    """

    def __init__(self, name: str, stage: str, version: str) -> None:
        self.name = name
        self.stage = stage
        self.version = version
        super().__init__(f"{name}@{version} is already in stage {stage!r}")


class StageNotAssigned(NotFound):
    """No version of the adapter holds the stage, so there is nothing to unassign.

    Args:
        name: the adapter.
        stage: the stage.
        assigned: the stages its versions hold, listed in the message.
    """

    def __init__(self, name: str, stage: str, assigned: Iterable[str]) -> None:
        self.name = name
        self.stage = stage
        self.assigned = sorted(assigned)
        super().__init__(
            f"no version of {name} is in stage {stage!r}; its stages: {_listing(self.assigned)}"
        )
