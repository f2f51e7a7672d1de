"""DVC remotes of a registry: adding them (committing ``.dvc/config``) and listing them.

Credentials never reach git: `DvcRemotes.add` writes secret options to the git-ignored
``.dvc/config.local``, and only ``.dvc/config`` is committed.
"""

from __future__ import annotations

from collections.abc import Mapping

from adaptergit.dvcrepo import DVC_DIR, MAX_CONFIG_BYTES, RemoteInfo
from adaptergit.fsutil import read_in_tree
from adaptergit.registry import Registry
from adaptergit.txn import DirTransaction


def add(
    registry: Registry,
    name: str,
    url: str,
    *,
    default: bool = False,
    options: Mapping[str, str] | None = None,
) -> None:
    """Add DVC remote `name` at `url` and commit ``.dvc/config``.

    Args:
        registry: the registry.
        name: the remote's name.
        url: a directory, ``ssh://``, ``s3://`` or any URL DVC takes.
        default: make it the default remote.
        options: DVC remote options (``endpointurl``, ``region``, ...); secrets go to
            ``.dvc/config.local`` only.

    Raises:
        DvcError: DVC refused the remote (a name that exists, a bad option).
        GitError: git could not commit; the configuration is left as it was.
    """
    files = ["config", "config.local"]
    with registry.lock():
        # Neither may be a link (DVC would write through it, outside the repository).
        for filename in files:
            read_in_tree(registry.root, f"{DVC_DIR}/{filename}", MAX_CONFIG_BYTES)
        # A failure (git cannot commit) or a kill leaves the config as it was: a journal holds
        # copies of both files until the commit is published.
        with DirTransaction(registry.state_dir, registry.dvc.dvc_dir, files, copy=True) as journal:

            def published(commit: str, _tags: dict[str, str]) -> None:
                journal.published("HEAD", commit, commit)

            registry.remotes.add(name, url, default=default, options=dict(options or {}))
            registry.git.commit_staged(
                f"Add DVC remote {name}", [f"{DVC_DIR}/config"], on_prepared=published
            )


def configured(registry: Registry) -> list[RemoteInfo]:
    """The DVC remotes, sorted by name; `RemoteInfo.default` marks the default one."""
    return registry.remotes.configured()


__all__ = ["add", "configured"]
