"""Making a folder an adapter registry: git, DVC, ``.adaptergit.toml``, diff driver, hooks."""

from __future__ import annotations

import warnings
from pathlib import Path

from adaptergit.config import DEFAULT_TEXT
from adaptergit.dvcrepo import DvcRemotes, DvcRepo
from adaptergit.errors import AdapterGitError, AdapterGitWarning
from adaptergit.fsutil import RepoLock, atomic_write
from adaptergit.gitrepo import GitRepo
from adaptergit.layout import REGISTRY_CONFIG
from adaptergit.ops import diffdriver, hooks

DEFAULT_REMOTE = "storage"  # the name `init --remote URL` gives the remote


def is_registry(path: Path | str) -> bool:
    """Whether `path` is already the root of a registry (``adaptergit init`` ran there)."""
    path = Path(path)
    if not (path / REGISTRY_CONFIG).is_file():
        return False
    try:
        return GitRepo(path).root.resolve() == path.resolve()
    except AdapterGitError:
        return False


def init(
    path: Path | str = ".", *, remote: str | None = None, remote_name: str = DEFAULT_REMOTE
) -> Path:
    """Make `path` an adapter registry and commit the set-up; safe to run again.

    Creates the git repository if there is none (``git init``), runs ``dvc init``, writes
    ``.adaptergit.toml``, sets up the git diff driver and installs the hooks. Run again, it
    refreshes the diff driver and the hooks and commits nothing new.

    Args:
        path: the folder (created if absent).
        remote: a DVC remote's URL (a directory, ``s3://...``, ``ssh://...``) to make the default
            in the set-up commit itself, so that every version's commit names it and plain
            ``dvc pull``/``dvc fetch --all-tags`` reach every version.
        remote_name: the name of that remote.

    Returns:
        The registry's root.

    Raises:
        GitError, DvcError: git or DVC failed (a remote of that name with another URL).
    """
    git = GitRepo.init(path)
    root = git.root
    with RepoLock(git.git_dir / "adaptergit" / "lock"):
        dvc = DvcRepo(root)
        paths = dvc.init()
        config = root / REGISTRY_CONFIG
        if not config.exists():
            atomic_write(config, DEFAULT_TEXT.encode())
        if remote is not None:
            _add_remote(dvc, remote_name, remote)
            paths.append(".dvc/config")
        paths = [*paths, *diffdriver.configure(git)]  # git diff shows adapter summaries
        paths = [p for p in (*paths, REGISTRY_CONFIG) if (root / p).exists()]
        message = "Initialise adaptergit registry (git + DVC)"
        if git.head() is not None and remote is not None:
            message = f"Add DVC remote {remote_name}"
        git.commit_staged(message, paths)
        try:
            hooks.install(git)
        except AdapterGitError as exc:  # the registry stands; the hooks need the user's hand
            warnings.warn(f"git hooks not installed: {exc}", AdapterGitWarning, stacklevel=2)
    git.close()
    return root


def _add_remote(dvc: DvcRepo, name: str, url: str) -> None:
    """Add remote `name` as the default, unless it is already there with this URL."""
    remotes = DvcRemotes(dvc)
    known = {r.name: r.url for r in remotes.configured()}
    if known.get(name) == url:
        if remotes.default() != name:
            remotes.set_default(name)
        return
    remotes.add(name, url, default=True)


__all__ = ["DEFAULT_REMOTE", "init", "is_registry"]
