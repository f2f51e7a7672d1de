"""DVC remotes of a registry: adding them (committing ``.dvc/config``) and listing them.

Credentials never reach git: `DvcRemotes.add` writes secret options to the git-ignored
``.dvc/config.local``, and only ``.dvc/config`` is committed.
"""

from __future__ import annotations

from collections.abc import Mapping

from adaptergit.dvcrepo import RemoteInfo
from adaptergit.fsutil import atomic_write
from adaptergit.registry import Registry


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
    paths = [registry.dvc.dvc_dir / "config", registry.dvc.dvc_dir / "config.local"]
    with registry.lock():
        before = {p: p.read_bytes() if p.exists() else None for p in paths}
        try:
            registry.remotes.add(name, url, default=default, options=dict(options or {}))
            registry.git.commit_staged(f"Add DVC remote {name}", [".dvc/config"])
        except BaseException:  # e.g. git cannot commit: leave the config as it was
            for path, data in before.items():
                if data is None:
                    path.unlink(missing_ok=True)
                else:
                    atomic_write(path, data)
            raise


def configured(registry: Registry) -> list[RemoteInfo]:
    """The DVC remotes, sorted by name; `RemoteInfo.default` marks the default one."""
    return registry.remotes.configured()


__all__ = ["add", "configured"]
