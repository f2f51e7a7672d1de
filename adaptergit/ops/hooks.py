"""Git hooks that keep git and DVC in step, and installing them beside whatever hooks exist.

The installed scripts are one-line shims calling ``adaptergit hook NAME``; the logic is here. A hook
with nothing to do returns after a git call or two, without importing DVC.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from adaptergit import tags as tag_grammar
from adaptergit.config import RepoConfig
from adaptergit.errors import AdapterGitError
from adaptergit.gitrepo import ZERO_SHA, GitRepo
from adaptergit.layout import (
    MANIFEST_FILE,
    POINTER_FILE,
    POINTER_GLOB,
    adapter_of,
    adapter_path,
)
from adaptergit.text import human_size

if TYPE_CHECKING:
    from adaptergit.manifest import Version
    from adaptergit.registry import Registry

HOOK_NAMES = ("pre-commit", "post-checkout", "post-merge", "pre-push")
MARKER = "# adaptergit hook shim"
CHAINED_SUFFIX = ".adaptergit-chained"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")
NO_FETCH_ENV = "ADAPTERGIT_NO_FETCH"
# Set for the `git push` that `adaptergit push` runs, so the pre-push hook does not redo the work.
PUSHED_ENV = "ADAPTERGIT_WEIGHTS_PUSHED"


def shim(name: str) -> str:
    """The hook script: the adaptergit that installed it (no PATH search, no pyenv/venv shims,
    which cost more than the hook itself), else whichever adaptergit is on PATH."""
    script = Path(sys.executable).parent / "adaptergit"
    return (
        "#!/bin/sh\n"
        f"{MARKER} ({name}): `adaptergit hooks uninstall` removes it and restores any hook it chained.\n"
        f'[ -x "{script}" ] && exec "{script}" hook {name} "$@"\n'
        f'exec adaptergit hook {name} "$@"\n'
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class HookState:
    name: str
    path: Path
    installed: bool
    chained: Path | None
    foreign: bool  # a hook that is not ours, and not chained by ours

    @property
    def summary(self) -> str:
        if self.installed:
            return "installed" + (f" (runs {self.chained.name} first)" if self.chained else "")
        return "not installed" + (" (another hook is there)" if self.foreign else "")


def _is_ours(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return MARKER.encode() in f.read(4096)
    except OSError:
        return False


def status(git: GitRepo) -> list[HookState]:
    hooks_dir = git.hooks_dir()
    states = []
    for name in HOOK_NAMES:
        path = hooks_dir / name
        chained = path.with_name(name + CHAINED_SUFFIX)
        ours = _is_ours(path)
        states.append(
            HookState(
                name=name,
                path=path,
                installed=ours,
                chained=chained if chained.exists() else None,
                foreign=path.exists() and not ours,
            )
        )
    return states


def install(git: GitRepo) -> list[HookState]:
    """Install the shims; an existing hook is kept and chained (it still runs, first)."""
    hooks_dir = git.hooks_dir()
    hooks_dir.mkdir(parents=True, exist_ok=True)
    for name in HOOK_NAMES:
        path = hooks_dir / name
        if path.exists() and not _is_ours(path):
            chained = path.with_name(name + CHAINED_SUFFIX)
            if chained.exists():
                raise AdapterGitError(
                    f"cannot install the {name} hook: both {path} and {chained} exist; "
                    "merge them by hand"
                )
            os.replace(path, chained)
        tmp = path.with_name(f".{name}.adaptergit-tmp")
        tmp.write_text(shim(name))
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(tmp, path)
    return status(git)


def uninstall(git: GitRepo) -> list[HookState]:
    """Remove the shims and put back the hooks they chained."""
    for state in status(git):
        if state.installed:
            state.path.unlink()
        if state.chained is not None and not state.path.exists():
            os.replace(state.chained, state.path)
    return status(git)


# --- running a hook --------------------------------------------------------------------------


def run(name: str, args: Sequence[str], stdin: bytes | None = None, cwd: Path | str = ".") -> int:
    """Run hook `name` as git calls it; return its exit status."""
    if name not in HOOK_NAMES:
        raise AdapterGitError(f"unknown hook {name!r}; hooks: {', '.join(HOOK_NAMES)}")
    git = GitRepo(cwd)
    if name == "pre-push" and stdin is None:
        stdin = sys.stdin.buffer.read() if not sys.stdin.isatty() else b""
    chained = git.hooks_dir() / (name + CHAINED_SUFFIX)
    if chained.exists() and os.access(chained, os.X_OK):
        code = subprocess.run([str(chained), *args], input=stdin, cwd=git.root).returncode
        if code != 0 and name.startswith("pre-"):
            return code
    if name == "pre-commit":
        return pre_commit(git)
    if name == "post-checkout":
        prev, new, flag = [*args, "", "", "1"][:3]
        if not prev:  # run by the pre-commit framework
            prev = os.environ.get("PRE_COMMIT_FROM_REF", ZERO_SHA)
            new = os.environ.get("PRE_COMMIT_TO_REF", "HEAD")
            flag = os.environ.get("PRE_COMMIT_CHECKOUT_TYPE", "1")
        if flag != "1":
            return 0
        return sync_weights(git, prev, new)
    if name == "post-merge":
        return sync_weights(git, "ORIG_HEAD", "HEAD")
    remote = args[0] if args else os.environ.get("PRE_COMMIT_REMOTE_NAME", "origin")
    text = (stdin or b"").decode(errors="replace")
    if not text.strip() and os.environ.get("PRE_COMMIT_TO_REF"):
        text = (
            f"HEAD {os.environ['PRE_COMMIT_TO_REF']} refs/heads/x "
            f"{os.environ.get('PRE_COMMIT_FROM_REF', ZERO_SHA)}\n"
        )
    return pre_push(git, remote, text.splitlines())


def main(name: str, args: Sequence[str]) -> int:
    """Run a hook from the command line: one line on stderr for any error, as the CLI does."""
    try:
        return run(name, args)
    except AdapterGitError as exc:
        _err(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except OSError as exc:  # a full disk, a file that vanished: one line naming the file
        where = f": {exc.filename}" if exc.filename else ""
        _err(f"error in the {name} hook: {exc.strerror or exc}{where}")
        return 1
    except Exception as exc:
        _err(f"unexpected error in the {name} hook: {type(exc).__name__}: {exc}")
        return 255


def _err(message: str) -> None:
    from adaptergit.text import printable  # messages quote what a registry holds: escaped

    print(f"adaptergit: {printable(message, one_line=True)}", file=sys.stderr)


def pre_commit(git: GitRepo) -> int:
    """Refuse weights staged straight into git, and adapters whose manifest and pointer disagree."""
    staged = [path for _status, path, _oid in git.staged_files()]
    if not staged:
        return 0
    limit = RepoConfig.load(git.root).max_file_size
    sizes = git.object_sizes([f":{p}" for p in staged])
    offenders = [
        (p, s)
        for p, s in zip(staged, sizes, strict=True)
        if p.lower().endswith(WEIGHT_SUFFIXES) or s > limit
    ]
    if offenders:
        listing = ", ".join(f"{p} ({human_size(s)})" for p, s in offenders[:10])
        _err(
            f"refusing to commit weight files into git: {listing}. Track them with DVC instead: "
            "`git restore --staged PATH`, then `adaptergit commit DIR --name NAME` (or `dvc add PATH`)."
        )
        return 1
    adapters = sorted({found[0] for p in staged if (found := adapter_of(p))})
    problems = [problem for name in adapters if (problem := _pointer_problem(git, name))]
    if problems:
        _err("; ".join(problems))
        return 1
    return 0


def _pointer_problem(git: GitRepo, name: str) -> str | None:
    from adaptergit.dvcrepo import Pointer
    from adaptergit.manifest import Manifest

    base = adapter_path(name)
    raw_manifest, raw_pointer = git.read_blobs(
        [f":{adapter_path(name, MANIFEST_FILE)}", f":{adapter_path(name, POINTER_FILE)}"]
    )
    if raw_manifest is None and raw_pointer is None:
        return None
    if raw_manifest is None or raw_pointer is None:
        missing = MANIFEST_FILE if raw_manifest is None else POINTER_FILE
        return f"{base} is staged without its {missing}; commit adapters with `adaptergit commit`"
    try:
        manifest = Manifest.from_json(raw_manifest, adapter_path(name, MANIFEST_FILE))
        pointer = Pointer.parse(raw_pointer, adapter_path(name, POINTER_FILE))
    except AdapterGitError as exc:
        return str(exc)
    if pointer.md5 != manifest.weights.md5 or (
        pointer.size >= 0 and pointer.size != manifest.weights.size
    ):
        return (
            f"{base}: the staged DVC pointer (md5 {pointer.md5[:12]}) does not match the manifest "
            f"({manifest.name}@{manifest.version}, md5 {manifest.weights.md5[:12]}); "
            "record the adapter with `adaptergit commit`"
        )
    return None


def sync_weights(git: GitRepo, old: str, new: str) -> int:
    """After a checkout or merge, bring the weights of adapters whose pointer changed."""
    if old == new or git.in_progress() == "rebase":
        return 0
    if old == ZERO_SHA or not git.resolve_commit(old):
        old = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # the empty tree: everything changed
    changed = git.changed_files(old, new, [POINTER_GLOB])
    names = sorted(
        {found[0] for p in changed if (found := adapter_of(p)) and (git.root / p).exists()}
    )
    if not names:
        return 0
    # Loaded only when there is work: a hook with nothing to do stays at a git call or two.
    from adaptergit.ops.checkout import restore_weights
    from adaptergit.registry import Registry

    try:
        registry = Registry(git.root)
    except AdapterGitError:
        return 0
    allow_fetch = os.environ.get(NO_FETCH_ENV, "") in ("", "0")
    code = 0
    try:
        for name in names:
            try:
                restore_weights(registry, name, fetch=allow_fetch)
            except AdapterGitError as exc:
                _err(f"{adapter_path(name)}: {exc}")
                code = 1
    finally:
        registry.close()
    return code  # git makes this the checkout's exit status; the checkout itself stands


def pre_push(git: GitRepo, remote: str, lines: Sequence[str]) -> int:
    """Upload the weights of every version this push publishes; abort the push if any fails."""
    if os.environ.get(PUSHED_ENV):
        return 0
    if not any(line.strip() and line.split()[1:2] != [ZERO_SHA] for line in lines):
        return 0
    # Loaded only when the push publishes something.
    from adaptergit.ops import transfer
    from adaptergit.registry import Registry

    try:
        registry = Registry(git.root)
    except AdapterGitError:
        return 0
    try:
        versions = refs_in_push(registry, lines, remote)
        if not versions:
            return 0
        dvc_remote = transfer.require_remote(registry, None)
        uploaded = transfer.upload(registry, versions, dvc_remote)
    except AdapterGitError as exc:
        _err(f"push aborted: {exc} (`git push --no-verify` skips this check)")
        return 1
    finally:
        registry.close()
    if uploaded:
        _err(f"uploaded weights of {', '.join(uploaded)} to DVC remote {dvc_remote!r}")
    return 0


def refs_in_push(registry: Registry, lines: Iterable[str], git_remote: str) -> list[Version]:
    """Versions that a push (git's pre-push stdin lines) makes reachable on the remote."""
    commits: set[str] = set()
    tag_names: set[str] = set()
    for line in lines:
        parts = line.split()
        if len(parts) != 4:
            continue
        _local_ref, local_sha, remote_ref, remote_sha = parts
        if local_sha == ZERO_SHA:  # a deletion sends nothing
            continue
        if remote_ref.startswith(tag_grammar.REFS_PREFIX):
            name = tag_grammar.short_name(remote_ref)
            if tag_grammar.parse_version_tag(name):
                tag_names.add(name)
        exclude = (
            [remote_sha]
            if remote_sha != ZERO_SHA and registry.git.resolve_commit(remote_sha)
            else []
        )
        exclude.append(f"--remotes={git_remote}")
        commits |= registry.git.commits_between(local_sha, exclude)
    regs = [r for r in registry.index.registrations() if r.commit in commits or r.tag in tag_names]
    return registry.versions(regs)
