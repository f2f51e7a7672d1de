"""`Repo`: the typed public API of a registry, a thin facade over the operations.

Every method hands the `Registry` to one operation module (`adaptergit.ops`) and returns that
operation's record; the CLI is a thin layer over these methods. The operation modules are light to
import (each imports torch, numpy, DVC and the like only inside the functions that need them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from adaptergit.errors import AdapterGitWarning
from adaptergit.ops import checkout as op_checkout
from adaptergit.ops import commit as op_commit
from adaptergit.ops import diff as op_diff
from adaptergit.ops import gc as op_gc
from adaptergit.ops import init as op_init
from adaptergit.ops import recover as op_recover
from adaptergit.ops import remotes as op_remotes
from adaptergit.ops import stages as op_stages
from adaptergit.ops import status as op_status
from adaptergit.ops import sync as op_sync
from adaptergit.ops import verify as op_verify
from adaptergit.registry import Registry

if TYPE_CHECKING:
    from adaptergit.compare import AdapterDiff
    from adaptergit.dvcrepo import DvcRemotes, DvcRepo, RemoteInfo
    from adaptergit.gitrepo import GitRepo
    from adaptergit.hashcache import Progress
    from adaptergit.index import Registration, Withdrawal
    from adaptergit.manifest import Version
    from adaptergit.ops.gc import GcReport
    from adaptergit.ops.recover import RecoverReport
    from adaptergit.ops.remotes import RemoteAdded
    from adaptergit.ops.stages import StageEvent
    from adaptergit.ops.status import StatusReport
    from adaptergit.ops.sync import PushResult
    from adaptergit.ops.transfer import FetchResult
    from adaptergit.ops.verify import Problem
    from adaptergit.refs import Ref


class Repo:
    """An adapter registry: a git work tree set up by ``adaptergit init``.

    Adapters live in ``adapters/NAME``; each version is a git commit plus a GTO tag
    ``NAME@vX.Y.Z``, its weights tracked by DVC. Use as a context manager, or call `close`.

    Args:
        path: the registry's work tree, or any folder inside it.

    Raises:
        NotARepository: `path` is not inside a registry.
    """

    def __init__(self, path: Path | str = ".") -> None:
        self.registry = Registry(path)
        # The next command after a kill converges, reads included (writes do it under the lock).
        self.registry.recover_pending()

    @classmethod
    def init(
        cls,
        path: Path | str = ".",
        *,
        remote: str | None = None,
        remote_name: str = op_init.DEFAULT_REMOTE,
    ) -> Repo:
        """Make `path` an adapter registry (git, DVC, configuration, hooks) and commit the set-up.

        Safe to run again on a registry. With `remote` (a DVC remote URL), that remote is the
        default from the first commit on, so plain DVC reaches every version. See
        `adaptergit.ops.init.init`.
        """
        return cls(op_init.init(path, remote=remote, remote_name=remote_name))

    # --- the parts ----------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The work tree's root folder."""
        return self.registry.root

    @property
    def git(self) -> GitRepo:
        """The git side (`adaptergit.gitrepo.GitRepo`)."""
        return self.registry.git

    @property
    def dvc(self) -> DvcRepo:
        """The DVC side: the cache and its layout (`adaptergit.dvcrepo.DvcRepo`)."""
        return self.registry.dvc

    @property
    def remotes(self) -> DvcRemotes:
        """The DVC remotes (`adaptergit.dvcrepo.DvcRemotes`)."""
        return self.registry.remotes

    @property
    def state_dir(self) -> Path:
        """adaptergit's own state in the git directory (lock, journals, temporary files)."""
        return self.registry.state_dir

    def adapter_dir(self, name: str) -> Path:
        """``adapters/NAME`` in the work tree."""
        return self.registry.adapter_dir(name)

    def close(self) -> None:
        """Release what the registry holds open (a DVC repository used for transfers)."""
        self.registry.close()

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every adapter with a registered version, or a folder under ``adapters/`` at HEAD."""
        return self.registry.names()

    def log(
        self, name: str | None = None, n: int | None = None, *, withdrawn: bool = False
    ) -> list[Version]:
        """Registered versions, newest first, read from git objects only.

        Args:
            name: only this adapter's versions.
            n: at most this many.
            withdrawn: also list versions withdrawn with GTO (``gto deregister``,
                ``gto deprecate``), which are left out by default as ``gto show`` leaves them out.

        Raises:
            UnknownAdapter: `name` has no versions.
        """
        return self.registry.log(name, n, withdrawn=withdrawn)

    def withdrawn(self, name: str | None = None) -> list[tuple[Registration, Withdrawal]]:
        """Versions withdrawn with GTO (deregistered, or their adapter deprecated), each with the
        GTO tag that withdrew it."""
        return self.registry.withdrawn(name)

    def unmanaged(self, name: str | None = None) -> list[Registration]:
        """Versions registered with GTO outside adaptergit (no manifest): not adapter versions."""
        return self.registry.unmanaged(name)

    def resolve(self, ref: str | Ref, *, with_config: bool = False) -> Version:
        """The version a reference names: NAME, NAME@vX.Y.Z, NAME@latest, NAME@<rev>, NAME#STAGE.

        Raises:
            InvalidRef: a malformed reference.
            NotFound: an UnknownAdapter, UnknownVersion, UnknownStage or UnknownRevision.
        """
        return self.registry.resolve(ref, with_config=with_config)

    def show(self, ref: str | Ref) -> Version:
        """Everything recorded for one version, its adapter config included."""
        return self.registry.resolve(ref, with_config=True)

    # --- committing ---------------------------------------------------------------------------

    @overload
    def commit(
        self,
        src: Any,
        *,
        name: str | None = None,
        names: None = None,
        adapter_name: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        message: str = "",
        base_model: Path | str | None = None,
        version: str | None = None,
        bump: str = "patch",
        branch: str | None = None,
    ) -> Version: ...

    @overload
    def commit(
        self,
        src: Any,
        *,
        name: None = None,
        names: Mapping[str, str],
        adapter_name: None = None,
        metrics: Mapping[str, Any] | None = None,
        message: str = "",
        base_model: Path | str | None = None,
        version: str | None = None,
        bump: str = "patch",
        branch: str | None = None,
    ) -> list[Version]: ...

    def commit(
        self,
        src: Any,
        *,
        name: str | None = None,
        names: Mapping[str, str] | None = None,
        adapter_name: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        message: str = "",
        base_model: Path | str | None = None,
        version: str | None = None,
        bump: str = "patch",
        branch: str | None = None,
    ) -> Version | list[Version]:
        """Record an adapter as a new version of `name`: one commit and one tag.

        Args:
            src: a folder as PEFT's ``save_pretrained`` writes it (``adapter_config.json`` and
                ``adapter_model.safetensors``, or ``adapter_model.bin``, converted safely), or a
                ``peft.PeftModel``, saved through ``save_pretrained`` with safetensors.
            name: the registry name (a-z, 0-9, ``-``, ``_``).
            names: ``{"adapter_a": "task-a", ...}``: several adapters of a PeftModel, or of a
                folder holding several (``default`` is the folder's own, the others its
                sub-folders, as PEFT's ``save_pretrained`` writes them), in one git commit, each
                its own versioned adapter; returns a list of versions (adapters whose weights and
                config did not change are left out).
            adapter_name: which adapter of a PeftModel (default: the active one) or of a folder
                holding several (there is no default: `SeveralAdapters` names them).
            metrics: finite numbers, possibly nested (``metrics.json``).
            message: what this version is.
            base_model: the base model's folder, or a hub id in the local Hugging Face cache, to
                fingerprint; default: the previous version's, else the config's
                ``base_model_name_or_path`` if found on disk.
            version: the version to record, ``vX.Y.Z`` (default: bump the latest).
            bump: ``major``, ``minor`` or ``patch`` (default).
            branch: on a detached HEAD (a CI checkout), record the version on this branch:
                created, or fast-forwarded, at HEAD's commit, and HEAD put on it.

        Returns:
            The version recorded (a list with `names`).

        Raises:
            InvalidInput: a bad name, adapter, config or metric; nothing is written.
            SeveralAdapters: a folder holds several adapters and neither `adapter_name` nor
                `names` says which.
            NothingToCommit: weights and config are identical to the latest version.
            VersionExists, VersionNotNewer: an explicit `version` that cannot be used.
            OperationInProgress: a merge, rebase or cherry-pick is unfinished.
            DetachedHead: HEAD is on no branch (and `branch` was not given).
            MissingVersionTags: a shallow or tag-less clone lacks tags its history records.
        """
        versions = op_commit.commit(
            self.registry,
            src,
            name=name,
            names=names,
            adapter_name=adapter_name,
            metrics=metrics,
            message=message,
            base_model=base_model,
            version=version,
            bump=bump,
            branch=branch,
        )
        return versions if names is not None else versions[0]

    # --- checking out -------------------------------------------------------------------------

    def checkout(
        self, ref: str | Ref, to: Path | str | None = None, *, force: bool = False
    ) -> Path:
        """Bring back a version's files: into ``adapters/NAME`` or, with `to`, into a new folder.

        See `adaptergit.ops.checkout.checkout` for the arguments and errors.
        """
        return op_checkout.checkout(self.registry, ref, to, force=force)

    def restore_weights(self, name: str, *, fetch: bool = True) -> bool:
        """Make ``adapters/NAME``'s weights match its manifest; False if they already did."""
        return op_checkout.restore_weights(self.registry, name, fetch=fetch)

    def unrecorded_changes(self, name: str) -> list[str]:
        """Files of ``adapters/NAME`` whose content is in no recorded version."""
        return op_checkout.unrecorded_changes(self.registry, name)

    # --- sharing ------------------------------------------------------------------------------

    def remote_add(
        self,
        name: str,
        url: str,
        *,
        default: bool = False,
        options: Mapping[str, str] | None = None,
    ) -> RemoteAdded:
        """Add a DVC remote and commit .dvc/config (secrets stay in the git-ignored config.local).

        Returns the remote and the versions committed before it (`RemoteAdded.older`), which
        plain DVC reaches only after ``dvc remote add --local -d NAME URL``.
        """
        return op_remotes.add(self.registry, name, url, default=default, options=options)

    def remote_remove(self, name: str) -> None:
        """Remove a DVC remote and commit .dvc/config (the weights on it stay there)."""
        op_remotes.remove(self.registry, name)

    def remote_modify(
        self,
        name: str,
        options: Mapping[str, str],
        *,
        unset: Sequence[str] = (),
        default: bool = False,
    ) -> None:
        """Set or unset a DVC remote's options (``url``, ``endpointurl``, ...), or make it the
        default, and commit .dvc/config; secrets go to the git-ignored config.local."""
        op_remotes.modify(self.registry, name, options, unset=unset, default=default)

    def remote_list(self) -> list[RemoteInfo]:
        """The DVC remotes, sorted by name; `RemoteInfo.default` marks the default one."""
        return op_remotes.configured(self.registry)

    def push(
        self,
        refs: Sequence[str] = (),
        *,
        remote: str | None = None,
        git_remote: str | None = None,
        progress: Progress | None = None,
    ) -> PushResult:
        """Upload the weights the DVC remote lacks, then push the branch and version tags to git.

        See `adaptergit.ops.sync.push`.
        """
        return op_sync.push(
            self.registry, refs, remote=remote, git_remote=git_remote, progress=progress
        )

    def fetch(
        self,
        refs: Sequence[str] = (),
        *,
        remote: str | None = None,
        progress: Progress | None = None,
    ) -> FetchResult:
        """Bring these versions' weights into the local DVC cache (none: those checked out)."""
        return op_sync.fetch(self.registry, refs, remote=remote, progress=progress)

    def pull(
        self,
        refs: Sequence[str] = (),
        *,
        remote: str | None = None,
        force: bool = False,
        progress: Progress | None = None,
    ) -> FetchResult:
        """Fetch these versions' weights and check each out into ``adapters/NAME``.

        With no `refs`, as ``dvc pull``: the weights of every adapter checked out in the work
        tree are fetched and put in place.
        """
        return op_sync.pull(self.registry, refs, remote=remote, force=force, progress=progress)

    # --- comparing and maintaining ------------------------------------------------------------

    def diff(self, ref_a: str | Ref, ref_b: str | Ref) -> AdapterDiff:
        """What changed from `ref_a` to `ref_b`: config, metrics, base model, weights per module."""
        return op_diff.diff(self.registry, ref_a, ref_b)

    def verify(
        self,
        ref: str | None = None,
        all: bool = False,
        remote: bool = False,
        *,
        deep: bool = False,
        progress: Progress | None = None,
    ) -> list[Problem]:
        """Re-hash weights in the work tree and cache (and check the remote): the problems found.

        Args:
            ref: one version; by default the versions checked out.
            all: every registered version.
            remote: also check that the default DVC remote holds them.
            deep: with `remote`, also download and re-hash the remote's copies.
            progress: called with (bytes hashed, bytes to hash).
        """
        return op_verify.verify(
            self.registry, ref, all_versions=all, remote=remote, deep=deep, progress=progress
        )

    def recover(self) -> RecoverReport:
        """Finish or undo what interrupted commands left (every write command does it first),
        and remove partial uploads they left on DVC remotes. See `adaptergit.ops.recover`."""
        return op_recover.recover(self.registry)

    def status(self, *, progress: Progress | None = None, remote: bool = True) -> StatusReport:
        """Changed adapters, unpushed or missing weights, set-up not done."""
        return op_status.status(self.registry, progress=progress, check_remote=remote)

    def gc(
        self,
        keep_last: int | None = None,
        keep_stages: bool = True,
        remote: bool = False,
        dry_run: bool = False,
        force: bool = False,
    ) -> GcReport:
        """Remove weights no kept version needs from the DVC cache (and remote).

        See `adaptergit.ops.gc.gc` for what is kept; `force` deletes weights that no DVC remote
        holds (their only copy).
        """
        return op_gc.gc(
            self.registry,
            keep_last=keep_last,
            keep_stages=keep_stages,
            remote=remote,
            dry_run=dry_run,
            force=force,
        )

    # --- stages -------------------------------------------------------------------------------

    def assign(self, ref: str | Ref, stage: str, *, message: str = "") -> StageEvent:
        """Assign `stage` to a registered version with GTO's tag ``NAME#STAGE#N``."""
        return op_stages.assign(self.registry, ref, stage, message=message)

    def unassign(self, name: str, stage: str, *, message: str = "") -> list[StageEvent]:
        """Take `stage` away from adapter `name` with GTO's ``NAME#STAGE!#N`` tags."""
        return op_stages.unassign(self.registry, name, stage, message=message)


__all__ = ["AdapterGitWarning", "Repo"]
