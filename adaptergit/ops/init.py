"""Making a folder an adapter registry: git, DVC, ``.adaptergit.toml``, diff driver, hooks."""

from __future__ import annotations

from pathlib import Path

from adaptergit.config import DEFAULT_TEXT
from adaptergit.dvcrepo import DvcRepo
from adaptergit.fsutil import RepoLock, atomic_write
from adaptergit.gitrepo import GitRepo
from adaptergit.layout import REGISTRY_CONFIG
from adaptergit.ops import diffdriver, hooks


def init(path: Path | str = ".") -> Path:
    """Make `path` an adapter registry and commit the set-up; safe to run again.

    Creates the git repository if there is none (``git init``), runs ``dvc init``, writes
    ``.adaptergit.toml``, sets up the git diff driver and installs the hooks.

    Args:
        path: the folder (created if absent).

    Returns:
        The registry's root.

    Raises:
        GitError, DvcError: git or DVC failed.
    """
    git = GitRepo.init(path)
    root = git.root
    with RepoLock(git.git_dir / "adaptergit" / "lock"):
        paths = DvcRepo(root).init()
        config = root / REGISTRY_CONFIG
        if not config.exists():
            atomic_write(config, DEFAULT_TEXT.encode())
        paths = [*paths, *diffdriver.configure(git)]  # git diff shows adapter summaries
        paths = [p for p in (*paths, REGISTRY_CONFIG) if (root / p).exists()]
        git.commit_staged("Initialise adaptergit registry (git + DVC)", paths)
        hooks.install(git)
    git.close()
    return root


__all__ = ["init"]
