"""`Repo`: the typed public API of a registry, a thin facade over the operations.

Every method hands the `Registry` to one operation module (`adaptergit.ops`) and returns that
operation's record; the CLI is a thin layer over these methods. The operation modules import
torch, numpy, DVC and the like only inside the functions that need them; commit and checkout are
imported with this module, every other operation by the method that runs it, so that a commit or a
checkout does not pay for importing the rest (about 20 ms of a 0.35 s commit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from adaptergit.errors import AdapterGitWarning
from adaptergit.layout import DEFAULT_REMOTE
from adaptergit.ops import checkout as op_checkout
from adaptergit.ops import commit as op_commit
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
        remote_name: str = DEFAULT_REMOTE,
        remote_options: Mapping[str, str] | None = None,
    ) -> Repo:
        """Make `path` an adapter registry (git, DVC, configuration, hooks) and commit the set-up.

        Safe to run again on a registry: it refreshes the git diff and merge drivers and the
        hooks and commits nothing new. Hooks that cannot be installed are reported with an
        `AdapterGitWarning`. See `adaptergit.ops.init.init`.

        Args:
            path: the folder (created if absent); a git repository is created there if it is
                in none, else the registry is set up in that folder of the repository.
            remote: a DVC remote URL (a directory, ``s3://...``, ``ssh://...``) made the default
                in the set-up commit itself, so plain ``dvc pull`` reaches every version.
            remote_name: the name of that remote.
            remote_options: DVC options of that remote (``endpointurl``, ``region``, ...);
                secrets go to ``.dvc/config.local`` only.

        Returns:
            The registry, opened at its root.

        Raises:
            AnotherRegistry: the repository already holds a registry in another folder
                (nothing is created).
            GitError: git failed (no identity to commit with, say).
            DvcError: DVC failed (a remote of that name with another URL).
        """
        from adaptergit.ops import init as op_init  # imported when used: start-up time

        return cls(
            op_init.init(
                path, remote=remote, remote_name=remote_name, remote_options=remote_options
            )
        )

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
        """``adapters/NAME`` in the work tree (not checked: it may not exist).

        Args:
            name: the adapter's registry name.
        """
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
        """Every adapter with a registered version, or a folder under ``adapters/`` at HEAD.

        Returns:
            The names, sorted.
        """
        return self.registry.names()

    def log(
        self, name: str | None = None, n: int | None = None, *, withdrawn: bool = False
    ) -> list[Version]:
        """Registered versions, newest first, read from git objects only.

        Ordered by registration date (the GTO tag's date), then version.

        Args:
            name: only this adapter's versions (default: every adapter's).
            n: at most this many (default: all).
            withdrawn: also list versions withdrawn with GTO (``gto deregister``,
                ``gto deprecate``), which are left out by default as ``gto show`` leaves them out.

        Returns:
            The versions, each with its manifest and metrics (no adapter config: see `show`).

        Raises:
            InvalidName: `name` is not a valid adapter name.
            UnknownAdapter: `name` has no versions and no folder.
            InvalidManifest: a version's manifest cannot be read.
        """
        return self.registry.log(name, n, withdrawn=withdrawn)

    def withdrawn(self, name: str | None = None) -> list[tuple[Registration, Withdrawal]]:
        """Versions withdrawn with GTO (deregistered, or their adapter deprecated).

        `log` leaves these out, as ``gto show`` does.

        Args:
            name: only this adapter's (default: every adapter's).

        Returns:
            (registration, withdrawal) pairs, lowest version first; the withdrawal names the GTO
            tag (``NAME@vX.Y.Z!#N`` or ``NAME@deprecated#N``) that withdrew the version.
        """
        return self.registry.withdrawn(name)

    def unmanaged(self, name: str | None = None) -> list[Registration]:
        """Versions registered with GTO outside adaptergit (no manifest): not adapter versions.

        ``gto show`` lists them; adaptergit leaves them out of `log` and every operation.

        Args:
            name: only this artifact's (default: every artifact's).

        Returns:
            Their GTO registrations.
        """
        return self.registry.unmanaged(name)

    def resolve(self, ref: str | Ref, *, with_config: bool = False) -> Version:
        """The version a reference names: NAME, NAME@vX.Y.Z, NAME@latest, NAME@<rev>, NAME#STAGE.

        NAME and NAME@latest name the highest version not withdrawn with GTO; NAME@<rev> the
        adapter as any git revision holds it (registered or not); NAME#STAGE the version GTO
        says holds the stage. Naming a withdrawn version explicitly warns
        (`AdapterGitWarning`) and returns it.

        Args:
            ref: the reference, as text or a parsed `adaptergit.refs.Ref`.
            with_config: also read the version's ``adapter_config.json`` into `Version.config`.

        Returns:
            The version, with its manifest and metrics.

        Raises:
            InvalidRef: a malformed reference.
            NotFound: an UnknownAdapter, UnknownVersion, UnknownStage or UnknownRevision;
                `AdapterWithdrawn` for the latest version or a stage of a withdrawn adapter;
                `NotAnAdapterVersion` for a GTO registration without an adaptergit manifest.
            InvalidManifest: the version's manifest cannot be read.
        """
        return self.registry.resolve(ref, with_config=with_config)

    def show(self, ref: str | Ref) -> Version:
        """Everything recorded for one version, its adapter config included.

        Args:
            ref: any reference `resolve` takes.

        Returns:
            The version with `Version.config` read (``adapter_config.json`` at its commit).

        Raises:
            InvalidRef, NotFound, InvalidManifest: as `resolve`.
            InvalidConfig: the adapter config at that commit is not a JSON object.
        """
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
    ) -> Version:
        """One adapter (`name`, with `adapter_name` to pick it): returns its version.

        The arguments, result and errors are those of the implementation's docstring below.
        """

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
    ) -> list[Version]:
        """Several adapters in one git commit (`names`): returns the versions made.

        The arguments, result and errors are those of the implementation's docstring below.
        """

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
            InvalidInput: a bad name, adapter, config, metric or version; nothing is written.
                Among them `NotAPeftModel` (`src` is neither a folder nor a PeftModel),
                `UnknownPeftAdapter`, `UnsafePickle` (an ``adapter_model.bin`` that would run
                code), `InvalidSafetensors` and `InvalidBaseModel`.
            SeveralAdapters: a folder holds several adapters and neither `adapter_name` nor
                `names` says which.
            NothingToCommit: weights and config are identical to the latest version.
            VersionExists, VersionNotNewer: an explicit `version` that cannot be used.
            OperationInProgress: a merge, rebase or cherry-pick is unfinished.
            DetachedHead: HEAD is on no branch (and `branch` was not given).
            MissingVersionTags: a shallow or tag-less clone lacks tags its history records.
            FileSystemError: the DVC cache could not be written (disk full, permissions).
            GitError: git could not commit or tag; nothing is left half-done.
            RepositoryBusy: another command holds the repository.
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

        Weights missing from the DVC cache are fetched from the default remote first, and are
        checked against the manifest's sha256 while they are copied. See
        `adaptergit.ops.checkout.checkout`.

        Args:
            ref: the version (any reference `resolve` takes).
            to: a folder to write the version into (config, weights, manifest, metrics and a
                Hugging Face model card); it must be empty or absent unless `force`, and never
                under ``adapters/``, ``.git`` or ``.dvc``. It appears complete or not at all.
            force: overwrite changes in ``adapters/NAME`` that no version records, or the files
                of a non-empty `to`.

        Returns:
            The folder written.

        Raises:
            InvalidRef, NotFound: `ref` names nothing.
            UncommittedChanges: ``adapters/NAME`` holds unrecorded changes (without `force`).
            DestinationNotEmpty: `to` is not empty (without `force`).
            ManagedDestination: `to` is inside a folder adaptergit manages.
            GitViewConflict: git's merge or sparse-checkout state forbids writing there now.
            UnsafePath: ``adapters`` or ``adapters/NAME`` is a symbolic link.
            WeightsMissing, NoRemote, TransferFailed: the weights are in neither the cache nor
                the remote.
            IntegrityError: the weights do not match the manifest's sha256 (`ManifestMismatch`
                when the manifest is what is wrong, `CorruptObject` when the weights are).
            FileSystemError: writing the folder failed (disk full, permissions).
            RepositoryBusy: another command holds the repository.
        """
        return op_checkout.checkout(self.registry, ref, to, force=force)

    def restore_weights(self, name: str, *, fetch: bool = True) -> bool:
        """Make ``adapters/NAME``'s weights match the manifest there (what the git hooks do).

        Args:
            name: the adapter.
            fetch: fetch weights the DVC cache lacks from the default remote; without it, such
                weights raise `WeightsMissing`.

        Returns:
            True if the weights were written; False if they already matched (same size in bytes
            and sha256) or ``adapters/NAME`` has no manifest.

        Raises:
            UnsafePath: ``adapters/NAME`` or its manifest is a symbolic link.
            InvalidManifest: the manifest cannot be read.
            WeightsMissing, NoRemote, TransferFailed: the weights are in neither the cache nor
                the remote.
            IntegrityError: the cache object does not match the manifest's sha256.
            RepositoryBusy: another command holds the repository.
        """
        return op_checkout.restore_weights(self.registry, name, fetch=fetch)

    def unrecorded_changes(self, name: str) -> list[str]:
        """Files of ``adapters/NAME`` whose content is in no recorded version.

        These are what a checkout would lose; a symbolic link or anything that is no regular
        file counts as a change, unread.

        Args:
            name: the adapter.

        Returns:
            Their file names within ``adapters/NAME``; empty when there is nothing to lose.

        Raises:
            UnsafePath: ``adapters`` or ``adapters/NAME`` is a symbolic link.
        """
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

        Args:
            name: the remote's name.
            url: a directory, ``ssh://``, ``s3://`` or any URL DVC takes.
            default: make it the default remote.
            options: DVC remote options (``endpointurl``, ``region``, ...); secrets go to
                ``.dvc/config.local`` only.

        Returns:
            The remote, and the versions committed before it (`RemoteAdded.older`), which plain
            DVC reaches only after ``dvc remote add --local -d NAME URL``.

        Raises:
            MissingRemoteSupport: the URL needs a DVC plugin that is not installed (nothing
                changed).
            DvcError: DVC refused the remote (a name that exists, a bad option).
            GitError: git could not commit; the configuration is left as it was.
            RepositoryBusy: another command holds the repository.
        """
        from adaptergit.ops import remotes as op_remotes  # imported when used: start-up time

        return op_remotes.add(self.registry, name, url, default=default, options=options)

    def remote_remove(self, name: str) -> None:
        """Remove a DVC remote and commit .dvc/config (the weights on it stay there).

        Args:
            name: the remote.

        Raises:
            DvcError: there is no such remote.
            GitError: git could not commit; the configuration is left as it was.
            RepositoryBusy: another command holds the repository.
        """
        from adaptergit.ops import remotes as op_remotes  # imported when used: start-up time

        op_remotes.remove(self.registry, name)

    def remote_modify(
        self,
        name: str,
        options: Mapping[str, str],
        *,
        unset: Sequence[str] = (),
        default: bool = False,
    ) -> None:
        """Set or unset a DVC remote's options, or make it the default, and commit .dvc/config.

        As ``dvc remote modify``; secrets go to the git-ignored ``.dvc/config.local`` only.

        Args:
            name: the remote.
            options: options to set (``url``, ``endpointurl``, ...).
            unset: options to remove.
            default: also make it the default remote.

        Raises:
            MissingRemoteSupport: a new URL needs a DVC plugin that is not installed.
            DvcError: there is no such remote, or DVC refuses an option.
            GitError: git could not commit; the configuration is left as it was.
            RepositoryBusy: another command holds the repository.
        """
        from adaptergit.ops import remotes as op_remotes  # imported when used: start-up time

        op_remotes.modify(self.registry, name, options, unset=unset, default=default)

    def remote_list(self) -> list[RemoteInfo]:
        """The DVC remotes, sorted by name; `RemoteInfo.default` marks the default one.

        Read from DVC's merged configuration (``.dvc/config`` and ``config.local``).
        """
        from adaptergit.ops import remotes as op_remotes  # imported when used: start-up time

        return op_remotes.configured(self.registry)

    def push(
        self,
        refs: Sequence[str] = (),
        *,
        remote: str | None = None,
        git_remote: str | None = None,
        progress: Progress | None = None,
    ) -> PushResult:
        """Publish versions: weights to the DVC remote, then the branch and tags to git, atomically.

        Without `refs`, what this clone has not published goes: the versions on commits no
        remote-tracking branch of `git_remote` holds (weights first, each cache object checked
        against its manifests' sha256), then the branch, their version tags and the stage tags
        in one ``git push --atomic``. When another clone published first, this clone's versions
        are replayed on the remote's branch and renumbered past its versions, and the push
        tried again. See `adaptergit.ops.sync.push`.

        Args:
            refs: push only these versions' weights and tags (and their adapters' stage tags),
                no branch.
            remote: the DVC remote (default: the default remote).
            git_remote: the git remote (default: the branch's upstream, else ``origin``; with
                none configured, weights only).
            progress: called with (bytes sent, bytes to send) during the upload.

        Returns:
            What was sent: versions, uploads, git refs (`adaptergit.ops.sync.PushResult`).

        Raises:
            InvalidRef, NotFound: a reference in `refs` names nothing.
            NoRemote: no such DVC remote, or no default one.
            CorruptObject, ManifestMismatch: a cache object no longer matches its manifests.
            TransferFailed: some weights did not arrive; nothing was pushed to git.
            PushRejected: git refused the push and it could not be replayed; the remote is as
                it was.
            UntaggedVersion: a commit to publish records a version no local tag names there.
            DetachedHead: HEAD is on no branch (and no `refs` were named).
            GitError: git failed otherwise (the remote cannot be read, say).
            RepositoryBusy: another command holds the repository.
        """
        from adaptergit.ops import sync as op_sync  # imported when used: start-up time

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
        """Bring these versions' weights into the local DVC cache.

        Each downloaded object is checked against its md5 (and the manifests' sha256 where the
        versions sharing it agree) before it enters the cache.

        Args:
            refs: the versions; none means those checked out in the work tree, as ``dvc fetch``
                brings what the work tree's ``.dvc`` files name.
            remote: the DVC remote (default: the default remote).
            progress: called with (bytes received, bytes to receive).

        Returns:
            The remote asked and the versions downloaded (`adaptergit.ops.transfer.FetchResult`).

        Raises:
            InvalidRef, NotFound: a reference in `refs` names nothing.
            InvalidManifest: a manifest in the work tree cannot be read.
            NoRemote: weights are missing and there is no such remote, or no default one.
            TransferFailed: some weights did not arrive.
        """
        from adaptergit.ops import sync as op_sync  # imported when used: start-up time

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
        tree are fetched and put in place; git's files are not touched.

        Args:
            refs: the versions (default: those checked out).
            remote: the DVC remote (default: the default remote).
            force: overwrite unrecorded changes in ``adapters/NAME`` (with `refs`).
            progress: called with (bytes received, bytes to receive).

        Returns:
            What the fetch brought (`adaptergit.ops.transfer.FetchResult`).

        Raises:
            NoRemote, TransferFailed: as `fetch`.
            UncommittedChanges: with `refs`, ``adapters/NAME`` holds unrecorded changes (without
                `force`); the other errors of `checkout` and `restore_weights` likewise.
        """
        from adaptergit.ops import sync as op_sync  # imported when used: start-up time

        return op_sync.pull(self.registry, refs, remote=remote, force=force, progress=progress)

    # --- comparing and maintaining ------------------------------------------------------------

    def diff(self, ref_a: str | Ref, ref_b: str | Ref) -> AdapterDiff:
        """What changed from `ref_a` to `ref_b`: config, metrics, base model, weights per module.

        Weights are read only when their sha256 differ, and fetched from the default DVC remote
        when the cache lacks them. Per module the effective update is compared from its factors
        alone (LoRA: ΔW = scaling·B·A with A of shape (r, in_features) and B of shape
        (out_features, r)); methods whose update the adapter alone does not define (IA3, OFT,
        prompt tuning) are compared tensor by tensor. See `adaptergit.compare`.

        Args:
            ref_a: the older side (any reference `resolve` takes).
            ref_b: the newer side.

        Returns:
            The comparison (`adaptergit.compare.AdapterDiff`).

        Raises:
            InvalidRef, NotFound, InvalidManifest: a reference names nothing readable.
            WeightsMissing, NoRemote, TransferFailed: weights that are in neither the cache nor
                the remote.
            InvalidSafetensors: a weights file is not valid safetensors.
            InvalidConfig: an ``adapter_config.json`` is not a JSON object, or a key of its
                ``rank_pattern``/``alpha_pattern`` backtracks past the time limit.
        """
        from adaptergit.ops import diff as op_diff  # imported when used: start-up time

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

        Every file involved is read in full and checked against the manifests' sha256 (cache
        objects against their md5 too). See `adaptergit.ops.verify.verify`.

        Args:
            ref: one version; by default the versions checked out.
            all: every registered version.
            remote: also check that the default DVC remote holds them (`ref`'s, or else every
                version reachable from HEAD).
            deep: with `remote`, also download and re-hash the remote's copies.
            progress: called with (bytes hashed, bytes to hash).

        Returns:
            The problems found (`adaptergit.ops.verify.Problem`); empty when all is sound.

        Raises:
            InvalidInput: both `ref` and `all`, or `deep` without `remote`.
            InvalidRef, NotFound: `ref` names nothing.
            NoRemote: `remote` and no default DVC remote.
        """
        from adaptergit.ops import verify as op_verify  # imported when used: start-up time

        return op_verify.verify(
            self.registry, ref, all_versions=all, remote=remote, deep=deep, progress=progress
        )

    def recover(self) -> RecoverReport:
        """Finish or undo what interrupted commands left, and remove their partial uploads.

        Every write command finishes or undoes local leftovers first; this also removes the
        temporary files interrupted uploads left on DVC remotes. See `adaptergit.ops.recover`.

        Returns:
            What was finished or undone, what was removed from remotes, and per remote any
            error that stopped its clean-up (`adaptergit.ops.recover.RecoverReport`).

        Raises:
            RepositoryBusy: another command holds the repository.
        """
        from adaptergit.ops import recover as op_recover  # imported when used: start-up time

        return op_recover.recover(self.registry)

    def status(self, *, progress: Progress | None = None, remote: bool = True) -> StatusReport:
        """Changed adapters, unpushed or missing weights, set-up not done.

        Args:
            progress: called with (bytes hashed, bytes to hash) while work-tree weights are
                hashed (those the hash cache knows by size, mtime_ns and inode are not).
            remote: ask the default DVC remote which weights it holds (a stat per object for a
                directory remote; DVC's status query otherwise); False stays offline.

        Returns:
            The report (`adaptergit.ops.status.StatusReport`).

        Raises:
            UnsafePath: ``adapters`` is a symbolic link.
            DvcError: `remote` and DVC could not ask the (non-directory) remote.
        """
        from adaptergit.ops import status as op_status  # imported when used: start-up time

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

        Kept: the latest version of every adapter, the `keep_last` highest (default: every
        registered version), versions holding a stage, anything a branch, other tag or the work
        tree names (with `remote`, the git remotes' branches and tags too). Only objects proven
        to be this registry's are ever removed, and from the cache only where the default DVC
        remote holds them, unless `force`. See `adaptergit.ops.gc.gc` for the whole rule.

        Args:
            keep_last: keep the N highest versions of each adapter (N >= 1); None keeps all.
            keep_stages: keep versions that hold a stage.
            remote: also remove them from the default DVC remote (after reading the git
                remotes).
            dry_run: report what would be removed, remove nothing.
            force: delete from the cache weights that no DVC remote holds (their only copy).

        Returns:
            What was kept and removed, with sizes in bytes (`adaptergit.ops.gc.GcReport`).

        Raises:
            InvalidInput: `keep_last` is below 1.
            GcRefused: with `remote`, a git remote cannot be read; nothing is deleted.
            NoRemote: `remote` and no default DVC remote.
            DvcError: the remote could not be asked or changed.
            RepositoryBusy: another command holds the repository.
        """
        from adaptergit.ops import gc as op_gc  # imported when used: start-up time

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
        """Assign `stage` to a registered version with GTO's tag ``NAME#STAGE#N``.

        The tag is an annotated tag written as ``gto assign`` writes it (GTO's tag grammar,
        `adaptergit.tags`), so GTO reads it too.

        Args:
            ref: the version (any reference `resolve` takes).
            stage: the stage (``prod``, ``staging``, ...).
            message: the tag's message (default: GTO's).

        Returns:
            The assignment written.

        Raises:
            InvalidRef: `ref` or `stage` is malformed.
            NotFound: `ref` names nothing; `UnknownRevision` when it names a commit with no
                registered version.
            StageAlreadyAssigned: that version holds the stage already.
            RepositoryBusy: another command holds the repository.
        """
        from adaptergit.ops import stages as op_stages  # imported when used: start-up time

        return op_stages.assign(self.registry, ref, stage, message=message)

    def unassign(self, name: str, stage: str, *, message: str = "") -> list[StageEvent]:
        """Take `stage` away from adapter `name` with GTO's ``NAME#STAGE!#N`` tags.

        GTO keeps an older assignment active when a newer one supersedes it, so the stage is
        unassigned from every version still holding it: afterwards none does.

        Args:
            name: the adapter.
            stage: the stage.
            message: the tags' message (default: GTO's).

        Returns:
            One unassignment per version that held the stage.

        Raises:
            InvalidName, InvalidRef: `name` or `stage` is malformed.
            StageNotAssigned: no version of `name` holds `stage`.
            RepositoryBusy: another command holds the repository.
        """
        from adaptergit.ops import stages as op_stages  # imported when used: start-up time

        return op_stages.unassign(self.registry, name, stage, message=message)


__all__ = ["AdapterGitWarning", "Repo"]
