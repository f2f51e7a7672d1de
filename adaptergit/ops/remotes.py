"""DVC remotes of a registry: adding, changing and removing them (committing ``.dvc/config``).

Credentials never reach git: secret options (passwords, keys, a password in the URL) go to the
git-ignored ``.dvc/config.local``, and only ``.dvc/config`` is committed.

Plain DVC reads the remotes of the commit it works at: a version committed before a remote was
added does not name it, so `add` reports those versions (`RemoteAdded.older`) and the recipe that
reaches them (``dvc remote add --local -d NAME URL`` in each clone). ``adaptergit init --remote``
records the remote in the very first commit, before any version.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from adaptergit import tags as tag_grammar
from adaptergit.dvcrepo import (
    DVC_DIR,
    MAX_CONFIG_BYTES,
    SECRET_OPTIONS,
    RemoteInfo,
    require_plugin,
)
from adaptergit.fsutil import read_in_tree
from adaptergit.registry import Registry
from adaptergit.txn import DirTransaction

DVC_CONFIG = f"{DVC_DIR}/config"


@dataclass(frozen=True, kw_only=True, slots=True)
class RemoteAdded:
    """What `add` did.

    Attributes:
        name: the remote.
        url: its URL, without any password (that went to ``.dvc/config.local``).
        default: whether it is the default remote now.
        older: versions whose commits predate the remote (their ``.dvc/config`` does not name it),
            oldest first: adaptergit reaches them, plain DVC needs `local_recipe` first.
        options: the remote's committed (non-secret) options, such as ``endpointurl``.
    """

    name: str
    url: str
    default: bool
    older: tuple[str, ...]
    options: tuple[tuple[str, str], ...] = ()

    @property
    def local_recipe(self) -> str:
        """The commands that let plain DVC reach `older` in a clone: the remote and its options
        (an S3-compatible store is unreachable without its ``endpointurl``)."""
        steps = [f"dvc remote add --local -d {shlex.quote(self.name)} {shlex.quote(self.url)}"]
        steps += [
            f"dvc remote modify --local {shlex.quote(self.name)} {shlex.quote(k)} {shlex.quote(v)}"
            for k, v in self.options
        ]
        return " && ".join(steps)


@contextlib.contextmanager
def _committing(registry: Registry, message: str) -> Iterator[None]:
    """Change DVC's configuration and commit ``.dvc/config``, under the lock and a journal: a
    failure (git cannot commit) or a kill leaves both config files as they were."""
    files = ["config", "config.local"]
    with registry.lock():
        # Neither may be a link (DVC would write through it, outside the repository).
        for filename in files:
            read_in_tree(registry.root, f"{DVC_DIR}/{filename}", MAX_CONFIG_BYTES)
        try:
            with DirTransaction(
                registry.state_dir, registry.dvc.dvc_dir, files, copy=True
            ) as journal:

                def published(commit: str, _tags: dict[str, str]) -> None:
                    journal.published("HEAD", commit, commit)

                yield
                registry.git.commit_staged(message, [DVC_CONFIG], on_prepared=published)
        finally:
            registry.remotes.close()


def add(
    registry: Registry,
    name: str,
    url: str,
    *,
    default: bool = False,
    options: Mapping[str, str] | None = None,
) -> RemoteAdded:
    """Add DVC remote `name` at `url` and commit ``.dvc/config``.

    Args:
        registry: the registry.
        name: the remote's name.
        url: a directory, ``ssh://``, ``s3://`` or any URL DVC takes.
        default: make it the default remote.
        options: DVC remote options (``endpointurl``, ``region``, ...); secrets go to
            ``.dvc/config.local`` only.

    Returns:
        What was added, and the versions committed before it (`RemoteAdded.older`).

    Raises:
        MissingRemoteSupport: the URL needs a DVC plugin that is not installed (nothing changed).
        DvcError: DVC refused the remote (a name that exists, a bad option).
        GitError: git could not commit; the configuration is left as it was.
    """
    require_plugin(url)
    with _committing(registry, f"Add DVC remote {name}"):
        registry.remotes.add(name, url, default=default, options=dict(options or {}))
        older = _older(registry, name)  # under the lock: the index is dropped when it ends
    info = next(r for r in registry.remotes.configured() if r.name == name)
    public = tuple(
        (k, str(v)) for k, v in sorted((options or {}).items()) if k not in SECRET_OPTIONS
    )
    return RemoteAdded(name=name, url=info.url, default=info.default, older=older, options=public)


def _older(registry: Registry, name: str) -> tuple[str, ...]:
    """Versions whose commit's ``.dvc/config`` does not name remote `name`, oldest first."""
    regs = registry.index.registrations()
    configs = registry.git.read_blobs([f"{r.commit}:{DVC_CONFIG}" for r in regs])
    section = f'remote "{name}"'.encode()
    older = [r.tag for r, raw in zip(regs, configs, strict=True) if section not in (raw or b"")]
    return tuple(sorted(older, key=tag_grammar.version_order))


def remove(registry: Registry, name: str) -> None:
    """Remove DVC remote `name` (from ``.dvc/config`` and ``config.local``) and commit.

    The weights on it stay there; versions pushed only to it need another way back.

    Raises:
        DvcError: there is no such remote.
        GitError: git could not commit; the configuration is left as it was.
    """
    with _committing(registry, f"Remove DVC remote {name}"):
        registry.remotes.remove_remote(name)


def modify(
    registry: Registry,
    name: str,
    options: Mapping[str, str],
    *,
    unset: Sequence[str] = (),
    default: bool = False,
) -> None:
    """Change DVC remote `name`'s options (as ``dvc remote modify``) and commit ``.dvc/config``.

    Args:
        registry: the registry.
        name: the remote.
        options: options to set (``url``, ``endpointurl``, ...); secrets go to
            ``.dvc/config.local`` only.
        unset: options to remove.
        default: also make it the default remote.

    Raises:
        MissingRemoteSupport: a new URL needs a DVC plugin that is not installed.
        DvcError: there is no such remote, or DVC refuses an option.
        GitError: git could not commit; the configuration is left as it was.
    """
    if "url" in options:
        require_plugin(options["url"])
    with _committing(registry, f"Modify DVC remote {name}"):
        if options or unset:
            registry.remotes.modify_remote(name, dict(options), list(unset))
        if default:
            registry.remotes.set_default(name)


def configured(registry: Registry) -> list[RemoteInfo]:
    """The DVC remotes, sorted by name; `RemoteInfo.default` marks the default one."""
    return registry.remotes.configured()


__all__ = [
    "RemoteAdded",
    "add",
    "configured",
    "modify",
    "remove",
]
