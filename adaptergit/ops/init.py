"""Making a folder an adapter registry: git, DVC, ``.adaptergit.toml``, diff and merge drivers, hooks.

The folder may be the top level of a git repository (created if there is none) or a folder inside
an existing one (a monorepo), as ``dvc init --subdir`` does: the registry's files, DVC project and
``.gitattributes`` live in that folder, its commits and tags in the enclosing repository. Version
tags are repository-wide, so a repository holds one registry.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Mapping
from pathlib import Path

from adaptergit import launcher
from adaptergit.config import DEFAULT_TEXT
from adaptergit.dvcrepo import DvcRemotes, DvcRepo, check_remote
from adaptergit.errors import AdapterGitError, AdapterGitWarning, AnotherRegistry
from adaptergit.fsutil import RepoLock, atomic_write
from adaptergit.gitrepo import GitRepo
from adaptergit.layout import DEFAULT_REMOTE, DVC_YAML, GITATTRIBUTES, REGISTRY_CONFIG
from adaptergit.ops import diffdriver, hooks
from adaptergit.registry_yaml import MERGE_DRIVER

MERGE_ATTRIBUTE = f"{DVC_YAML} merge={MERGE_DRIVER}"


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
    path: Path | str = ".",
    *,
    remote: str | None = None,
    remote_name: str = DEFAULT_REMOTE,
    remote_options: Mapping[str, str] | None = None,
) -> Path:
    """Make `path` an adapter registry and commit the set-up; safe to run again.

    Creates the git repository if there is none (``git init``); inside an existing work tree the
    registry is that folder of the repository. Runs ``dvc init`` (``--subdir`` below the top
    level), writes ``.adaptergit.toml``, sets up the git diff and merge drivers, sets
    ``push.followTags`` (a plain ``git push`` carries the version tags) and installs the hooks.
    Run again, it refreshes the drivers and the hooks and commits nothing new.

    Args:
        path: the folder (created if absent).
        remote: a DVC remote's URL (a directory, ``s3://...``, ``ssh://...``) to make the default
            in the set-up commit itself, so that every version's commit names it and plain
            ``dvc pull``/``dvc fetch --all-tags`` reach every version.
        remote_name: the name of that remote.
        remote_options: DVC options of that remote (``endpointurl``, ``region``, ...), as
            ``dvc remote modify`` takes them; secrets go to ``.dvc/config.local`` only.

    Returns:
        The registry's root.

    Raises:
        AnotherRegistry: the repository already holds a registry in another folder (nothing
            is created).
        MissingRemoteSupport: `remote` needs a DVC plugin that is not installed (nothing is
            created).
        DvcError: DVC refuses the remote's options (nothing is created), or DVC failed (a
            remote of that name with another URL).
        GitError: git failed.
    """
    if remote is not None:  # a remote DVC would refuse fails here, before anything is made
        check_remote(remote_name, remote, remote_options or {})
    path = Path(path).absolute()
    first_new = next((p for p in reversed([path, *path.parents]) if not p.exists()), None)
    git = GitRepo.init(path)
    root = git.root
    others = set(git.registry_folders())
    recorded = git.recorded_root()
    if recorded is not None:
        others.add(recorded)
    if (git.top / REGISTRY_CONFIG).is_file():
        others.add("")
    others.discard(git.prefix.rstrip("/"))
    if others:
        if first_new is not None:  # leave nothing behind: remove the folders made for it
            for folder in [path, *path.parents]:
                with contextlib.suppress(OSError):
                    folder.rmdir()
                if folder == first_new:
                    break
        raise AnotherRegistry(root, sorted(others)[0])
    with RepoLock(git.state_dir / "lock"):
        dvc = DvcRepo(root)
        paths = dvc.init(subdir=bool(git.prefix))
        config = root / REGISTRY_CONFIG
        if not config.exists():
            atomic_write(config, DEFAULT_TEXT.encode())
        if remote is not None:
            _add_remote(dvc, remote_name, remote, dict(remote_options or {}))
            paths.append(".dvc/config")
        paths = [*paths, *diffdriver.configure(git)]  # git diff shows adapter summaries
        paths = [*paths, *configure_merge_driver(git)]  # dvc.yaml merges without conflicts
        configure_push(git)  # a plain `git push` carries the version tags
        paths = [p for p in (*paths, REGISTRY_CONFIG) if (root / p).exists()]
        message = "Initialise adaptergit registry (git + DVC)"
        if git.head() is not None and remote is not None:
            message = f"Add DVC remote {remote_name}"
        git.commit_staged(message, paths)
        if git.prefix:
            git.record_root()
        try:
            hooks.install(git)
        except AdapterGitError as exc:  # the registry stands; the hooks need the user's hand
            warnings.warn(f"git hooks not installed: {exc}", AdapterGitWarning, stacklevel=2)
    git.close()
    return root


def _add_remote(dvc: DvcRepo, name: str, url: str, options: dict[str, str]) -> None:
    """Add remote `name` as the default, unless it is already there with this URL (then only
    its `options` are set)."""
    remotes = DvcRemotes(dvc)
    known = {r.name: r.url for r in remotes.configured()}
    if known.get(name) == url:
        if remotes.default() != name:
            remotes.set_default(name)
        if options:
            remotes.modify_remote(name, options)
        return
    remotes.add(name, url, default=True, options=options)


MERGE_FUNCTION = "adaptergit_merge_dvc_yaml"


def merge_driver_command() -> str:
    """What git runs to merge dvc.yaml (``%O %A %B``): adaptergit's merge of the entries, found
    as the hooks find it (`adaptergit.launcher`); with no adaptergit, git's own line merge."""
    lines = launcher.find_lines(
        'merge-dvc-yaml "$1" "$2" "$3"',
        missing=launcher.missing_text("dvc.yaml is merged line by line"),
        fallback='exec git merge-file -L ours -L base -L theirs "$2" "$1" "$3"',
    )
    return f"{MERGE_FUNCTION}() {{ {'; '.join(lines)}; }}; {MERGE_FUNCTION} %O %A %B"


def configure_merge_driver(git: GitRepo) -> list[str]:
    """Register the dvc.yaml merge driver in .git/config and ``.gitattributes``; return the
    paths to commit. Clones run ``adaptergit init`` to register it (git's config is not
    cloned); without it git merges dvc.yaml line by line."""
    git.set_config(f"merge.{MERGE_DRIVER}.name", "adaptergit: merge dvc.yaml entries per adapter")
    git.set_config(f"merge.{MERGE_DRIVER}.driver", merge_driver_command())
    path = git.root / GITATTRIBUTES
    text = path.read_text() if path.exists() else ""
    if MERGE_ATTRIBUTE not in text.splitlines():
        prefix = text if not text or text.endswith("\n") else text + "\n"
        atomic_write(path, (prefix + MERGE_ATTRIBUTE + "\n").encode())
    return [GITATTRIBUTES]


def configure_push(git: GitRepo) -> None:
    """Set ``push.followTags`` in .git/config (unless set already), so that a plain ``git push``
    of version commits carries their annotated tags (version and stage tags) with them: the
    pre-push hook refuses a push that would publish a version's commit without its tag."""
    if git.config_get("push.followTags") is None:
        git.set_config("push.followTags", "true")


def merge_dvc_yaml(base: Path, ours: Path, theirs: Path) -> bool:
    """The merge driver: merge the three versions of dvc.yaml into `ours` (git's %O %A %B).

    Returns:
        True when merged cleanly; False when git's line merge left conflicts in `ours`.
    """
    from adaptergit import registry_yaml

    def read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except OSError:
            return None

    merged = registry_yaml.merge3(read(base), read(ours), read(theirs))
    if merged is None:
        return GitRepo.merge_file(ours, base, theirs)
    atomic_write(ours, merged)
    return True


__all__ = [
    "DEFAULT_REMOTE",
    "MERGE_FUNCTION",
    "configure_merge_driver",
    "configure_push",
    "init",
    "is_registry",
    "merge_driver_command",
    "merge_dvc_yaml",
]
