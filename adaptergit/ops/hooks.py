"""Git hooks that keep git and DVC in step, and installing them beside whatever hooks exist.

The installed scripts are one-line shims calling ``adaptergit hook NAME``; the logic is here. A hook
with nothing to do returns after a git call or two, without importing DVC.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptergit import launcher
from adaptergit import tags as tag_grammar
from adaptergit.config import RepoConfig
from adaptergit.errors import AdapterGitError
from adaptergit.gitrepo import ZERO_SHA, GitRepo
from adaptergit.layout import (
    MANIFEST_FILE,
    POINTER_FILE,
    POINTER_GLOB,
    REGISTRY_CONFIG,
    adapter_of,
    adapter_path,
)
from adaptergit.text import human_size

if TYPE_CHECKING:
    from adaptergit.manifest import Version
    from adaptergit.registry import Registry

HOOK_NAMES = ("pre-commit", "post-checkout", "post-merge", "post-rewrite", "pre-push")
MARKER = "# adaptergit hook shim"
CHAINED_SUFFIX = ".adaptergit-chained"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")
NO_FETCH_ENV = "ADAPTERGIT_NO_FETCH"
# Set for the `git push` that `adaptergit push` runs, so the pre-push hook does not redo the work.
PUSHED_ENV = "ADAPTERGIT_WEIGHTS_PUSHED"

# Hook managers adaptergit fits into, rather than taking their place (see `install`).
PLAIN, HUSKY, LEFTHOOK, PRE_COMMIT = "git", "husky", "lefthook", "pre-commit"
# The first line of what adaptergit adds to a hook script of husky's (the line after it runs us).
BLOCK_MARKER = "# adaptergit ("
# The pre-commit framework runs HOOK.legacy (a hook that was there before it) first, stdin and all.
LEGACY_SUFFIX = ".legacy"
LEFTHOOK_LOCAL = ("lefthook-local.yml", "lefthook-local.yaml", ".lefthook-local.yml")
# The team's lefthook configuration (lefthook reads the first it finds).
LEFTHOOK_CONFIGS = (
    "lefthook.yml",
    ".lefthook.yml",
    "lefthook.yaml",
    ".lefthook.yaml",
    ".config/lefthook.yml",
)
LEFTHOOK_CHECKSUM = "info/lefthook.checksum"  # in the git directory
# In adaptergit's state directory (.git/adaptergit/): `hook NAME ARGS...` runs adaptergit's hook
# with the adaptergit that installed it (husky's and lefthook's entries call it), and the record
# of the files `install` changed, for `uninstall` to put back byte for byte.
LAUNCHER = "hook"
STATE_FILE = "hooks.json"
# Hooks that git feeds on stdin (pre-push: the refs being pushed).
STDIN_HOOKS = frozenset({"pre-push", "post-rewrite"})


def shim(name: str) -> str:
    """The hook script adaptergit installs as hook `name`.

    It runs the adaptergit that installed it (``PYTHON -m adaptergit``: no PATH search, no
    pyenv/venv shims, which cost more than the hook itself), else the one on PATH; with neither it
    says so in one line, still runs the hook it chained, and lets git go on.
    """
    chained = f'"$(dirname "$0")"/{launcher.quote(name + CHAINED_SUFFIX)}'
    return "\n".join(
        [
            "#!/bin/sh",
            f"{MARKER} ({name}): `adaptergit hooks uninstall` removes it and restores any hook it chained.",
            *launcher.find_lines(
                f'hook {name} "$@"',
                missing=launcher.missing_text(f"its {name} hook did nothing"),
                fallback=f"c={chained}",
            ),
            '[ -x "$c" ] || exit 0',
            'case "$(head -n 1 "$c")" in "#!/bin/sh"|"#!/usr/bin/env sh") '
            """export ADAPTERGIT_CHAINED="$c"; exec /bin/sh -c '. "$ADAPTERGIT_CHAINED"' "$0" "$@";; esac""",
            'exec "$c" "$@"',
            "",
        ]
    )


def launcher_script() -> str:
    """``.git/adaptergit/hook``: ``hook NAME ARGS...`` runs adaptergit's hook NAME, found as the
    shims find it; what adaptergit adds to husky's and lefthook's configuration calls it."""
    return "\n".join(
        [
            "#!/bin/sh",
            "# adaptergit: `hook NAME ARGS...` runs adaptergit's git hook NAME "
            "(written by `adaptergit hooks install`).",
            *launcher.find_lines(
                'hook "$@"',
                missing=launcher.missing_text("its $1 hook did nothing"),
                fallback="exit 0",
            ),
            "",
        ]
    )


def portable_call(name: str, args: str = '"$@"') -> str:
    """One shell line running adaptergit's hook `name` from a file the team may commit: through
    this clone's launcher, else adaptergit on PATH, else nothing (a teammate without adaptergit)."""
    return (
        f'a="$(git rev-parse --git-common-dir)/adaptergit/{LAUNCHER}"; '
        f'if [ -x "$a" ]; then "$a" {name} {args}; '
        f"elif command -v adaptergit >/dev/null 2>&1; then adaptergit hook {name} {args}; fi"
    )


def husky_block(name: str) -> str:
    """The two lines adaptergit appends to husky's script for hook `name` (``.husky/NAME``)."""
    return (
        f"{BLOCK_MARKER}{name}): `adaptergit hooks uninstall` removes these two lines\n"
        f"{portable_call(name)}\n"
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class HookState:
    """Whether adaptergit's hook `name` runs when git runs hook `name`.

    Attributes:
        name: the git hook.
        path: the file holding adaptergit's part: its shim, or the hook manager's script or
            configuration it added itself to.
        installed: adaptergit's hook runs.
        chained: a hook that was there before, which adaptergit's shim runs first.
        foreign: another program's hook is there and adaptergit's does not run.
        via: who runs adaptergit's hook: ``git`` (the shim is the hook), ``husky``, ``lefthook``
            or ``pre-commit`` (the framework runs the shim as its legacy hook).
    """

    name: str
    path: Path
    installed: bool
    chained: Path | None
    foreign: bool
    via: str = PLAIN

    @property
    def summary(self) -> str:
        """``installed``, how, and what runs first; or ``not installed`` and why."""
        if self.installed:
            shown = (
                f"{self.path.parent.name}/{self.path.name}" if self.via == HUSKY else self.path.name
            )
            how = f" via {self.via} ({shown})" if self.via != PLAIN else ""
            return (
                "installed" + how + (f" (runs {self.chained.name} first)" if self.chained else "")
            )
        return "not installed" + (" (another hook is there)" if self.foreign else "")


def notes(states: Sequence[HookState]) -> list[str]:
    """What a user should know about how adaptergit's hooks were fitted in: one line per kind.

    Nothing for plain shims; a line each for hooks chained, and for husky, lefthook and the
    pre-commit framework running adaptergit's hooks.
    """
    lines = []
    husky = [f"{s.path.parent.name}/{s.path.name}" for s in states if s.via == HUSKY]
    if husky:
        lines.append(
            f"hooks: husky runs adaptergit's hooks from {', '.join(husky)} "
            "(commit them to share them with your team)"
        )
    for via, where in ((LEFTHOOK, "from"), (PRE_COMMIT, "as")):
        found = [s for s in states if s.via == via and s.installed]
        if found:
            names = ", ".join(s.name for s in found)
            lines.append(f"hooks: {via} runs adaptergit's {names} {where} {found[0].path.name}")
    for state in states:
        if state.chained is not None:
            lines.append(
                f"hooks: your {state.name} hook is kept as {state.chained.name} and runs first"
            )
    return lines


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """`adaptergit.fsutil.atomic_write`, loaded only to install (not on every hook run)."""
    from adaptergit.fsutil import atomic_write

    atomic_write(path, data, mode)


def _refuse_links(git: GitRepo, path: Path) -> None:
    """Refuse `path` if it is in the work tree (not in the git directory) and it, or a folder on
    the way to it, is a symbolic link: a cloned registry may commit ``.husky``, ``.husky/NAME``
    or ``lefthook-local.yml`` as one, pointing anywhere; install never writes or reads through it.

    Raises:
        UnsafePath: naming the link.
    """
    from adaptergit.fsutil import safe_path

    for inside in (git.git_dir, git.top / ".git"):
        if path == inside or inside in path.parents:
            return
    try:
        rel = path.relative_to(git.top)
    except ValueError:
        return
    if rel.parts:
        safe_path(git.top, rel.as_posix())


def _head(path: Path, size: int = 8192) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except OSError:
        return b""


def _is_ours(path: Path) -> bool:
    return MARKER.encode() in _head(path, 4096)


def _is_current(path: Path) -> bool:
    """Whether a shim of ours lets git go on without adaptergit (older shims did not: `hooks
    install` rewrites them)."""
    return b"not on PATH" in _head(path, 4096)


def _kind(path: Path) -> str | None:
    """Who wrote hook file `path`: adaptergit (PLAIN), lefthook, the pre-commit framework, someone
    else (""), or None when there is no file."""
    if not path.exists():
        return None
    head = _head(path)
    if MARKER.encode() in head:
        return PLAIN
    if b"call_lefthook" in head or b"lefthook run" in head:
        return LEFTHOOK
    if b"File generated by pre-commit" in head or b"pre_commit hook-impl" in head:
        return PRE_COMMIT
    return ""


def _husky(hooks_dir: Path) -> tuple[Path, bool] | None:
    """(folder of husky's hook scripts, whether git runs them directly) if husky owns `hooks_dir`.

    husky 9 sets ``core.hooksPath=.husky/_``, a folder of stubs that run ``.husky/NAME`` with
    ``sh -e``; husky 5-8 sets ``core.hooksPath=.husky``, whose scripts git runs itself.
    """
    if hooks_dir.name == "_" and any(b"husky" in _head(hooks_dir / f) for f in ("h", "husky.sh")):
        return hooks_dir.parent, False
    if b"husky" in _head(hooks_dir / "_" / "husky.sh"):
        return hooks_dir, True
    return None


def _husky_pending(root: Path) -> bool:
    """Whether `root` is a husky project (``.husky/`` and husky in package.json) whose husky does
    not run the hooks yet."""
    return (root / ".husky").is_dir() and b'"husky"' in _head(root / "package.json", 1 << 20)


def _lefthook_local(root: Path) -> Path:
    """lefthook's per-clone configuration, which it merges over the team's ``lefthook.yml``."""
    for name in LEFTHOOK_LOCAL:
        if (root / name).exists():
            return root / name
    return root / LEFTHOOK_LOCAL[0]


def _lefthook_planned(root: Path) -> set[str]:
    """The hooks the team's lefthook configuration names (lefthook installs its own script for
    each of them whenever it syncs, moving any other hook aside as ``NAME.old``)."""
    names: set[str] = set()
    for config in LEFTHOOK_CONFIGS:
        text = _head(root / config, 1 << 20).decode(errors="replace")
        names |= {n for n in HOOK_NAMES if f"\n{n}:" in f"\n{text}"}
    return names


def _has_lefthook_entry(text: str, name: str) -> bool:
    return f"/adaptergit/{LAUNCHER}" in text and f'"$a" {name} ' in text


def status(git: GitRepo) -> list[HookState]:
    """Whether each of adaptergit's hooks runs, and through what (`HookState`)."""
    hooks_dir = git.hooks_dir()
    husky = _husky(hooks_dir)
    lefthook_text: str | None = None
    states = []
    for name in HOOK_NAMES:
        path = hooks_dir / name
        chained = path.with_name(name + CHAINED_SUFFIX)
        chained_found = chained if chained.exists() else None
        if husky is not None:
            script = husky[0] / name
            ours = (BLOCK_MARKER + name + ")").encode() in _head(script, 1 << 20)
            states.append(
                HookState(
                    name=name, path=script, installed=ours, chained=None, foreign=False, via=HUSKY
                )
            )
            continue
        kind = _kind(path)
        if kind == LEFTHOOK:
            if lefthook_text is None:
                local = _lefthook_local(git.top)
                lefthook_text = local.read_text(errors="replace") if local.exists() else ""
            ours = _has_lefthook_entry(lefthook_text, name)
            states.append(
                HookState(
                    name=name,
                    path=_lefthook_local(git.top),
                    installed=ours,
                    chained=None,
                    foreign=not ours,
                    via=LEFTHOOK,
                )
            )
        elif kind == PRE_COMMIT:
            legacy = path.with_name(name + LEGACY_SUFFIX)
            ours = _is_ours(legacy) and _is_current(legacy)
            states.append(
                HookState(
                    name=name,
                    path=legacy,
                    installed=ours,
                    chained=chained_found if ours else None,
                    foreign=not ours,
                    via=PRE_COMMIT,
                )
            )
        else:
            states.append(
                HookState(
                    name=name,
                    path=path,
                    installed=kind == PLAIN and _is_current(path),
                    chained=chained_found,
                    foreign=kind == "",
                )
            )
    return states


class _Changes:
    """What `install` changed outside its own shims (files of other hook managers, folders), kept
    in ``.git/adaptergit/hooks.json`` so that `uninstall` puts each back byte for byte."""

    def __init__(self, git: GitRepo) -> None:
        import json

        self.git = git
        self.path = git.git_dir / "adaptergit" / STATE_FILE
        self.files: dict[str, dict[str, Any]] = {}
        self.dirs: list[str] = []
        try:
            data = json.loads(self.path.read_bytes())
            self.files = {str(k): dict(v) for k, v in data.get("files", {}).items()}
            self.dirs = [str(d) for d in data.get("dirs", [])]
        except (OSError, ValueError, AttributeError, TypeError):
            pass

    def save(self) -> None:
        import json

        if not self.files and not self.dirs:
            self.path.unlink(missing_ok=True)
            return
        data = {"files": self.files, "dirs": self.dirs}
        _write(self.path, json.dumps(data, indent=1, sort_keys=True).encode())

    def mkdir(self, path: Path) -> None:
        """Create `path` and its missing parents, remembering which were created."""
        _refuse_links(self.git, path)
        missing = [p for p in (path, *path.parents) if not p.exists()]
        path.mkdir(parents=True, exist_ok=True)
        self.dirs.extend(str(p) for p in reversed(missing) if str(p) not in self.dirs)

    def remember(self, path: Path, *, always: bool = False) -> None:
        """Keep `path`'s bytes and mode as they are before adaptergit first changes it.

        With `always`, `undo` restores them even if the file changed since (another program's
        cache of the configuration adaptergit edits, such as lefthook's checksum).
        """
        import base64

        if str(path) in self.files:
            return
        try:
            data: bytes | None = path.read_bytes()
            mode: int | None = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            data, mode = None, None
        self.files[str(path)] = {
            "before": None if data is None else base64.b64encode(data).decode(),
            "mode": mode,
            "always": always,
        }

    def write(self, path: Path, data: bytes, mode: int) -> None:
        """Write a file adaptergit adds itself to, after `remember`-ing what was there."""
        import base64

        _refuse_links(self.git, path)
        self.remember(path)
        _write(path, data, mode)
        self.files[str(path)]["after"] = base64.b64encode(data).decode()

    def undo(self, strip: Callable[[Path, bytes], bytes]) -> None:
        """Put back every remembered file, then remove the folders `install` created.

        A file changed since adaptergit wrote it keeps those changes: only adaptergit's own part
        is taken out (`strip`), and a file adaptergit created goes once nothing else is in it.
        """
        import base64

        for name, entry in reversed(list(self.files.items())):
            path = Path(name)
            before = entry.get("before")
            original = base64.b64decode(before) if before is not None else None
            try:
                current: bytes | None = path.read_bytes()
            except OSError:
                current = None
            after = entry.get("after")
            if entry.get("always") or (after is not None and current == base64.b64decode(after)):
                restored = original
            elif current is None:
                continue  # removed since: nothing of ours is left
            else:
                restored = strip(path, current)
                if original is None and not restored.strip():
                    restored = None
            if restored is None:
                path.unlink(missing_ok=True)
            elif restored != current:
                _write(path, restored, entry.get("mode") or 0o644)
        for folder in reversed(self.dirs):
            with contextlib.suppress(OSError):
                Path(folder).rmdir()  # only when empty
        self.files, self.dirs = {}, []


def install(git: GitRepo) -> list[HookState]:
    """Install adaptergit's hooks so that they run beside whatever runs git's hooks now.

    - plain git hooks (``.git/hooks``, or ``core.hooksPath`` relative or absolute): a shim per
      hook; an existing hook is kept as ``NAME.adaptergit-chained`` and still runs, first, with
      its own ``$0`` for shell scripts (so hooks that find themselves by name keep working);
    - husky (``.husky/_`` or ``.husky``): two lines at the end of husky's ``.husky/NAME``;
    - lefthook: an ``adaptergit`` command in ``lefthook-local.yml`` for the hooks lefthook runs
      (it would move a shim aside the next time it syncs its hooks);
    - the pre-commit framework: the shim as ``NAME.legacy``, which the framework runs first.

    Running it again refreshes what is there. `uninstall` undoes all of it.

    Returns:
        The state of each hook after installing.

    Raises:
        AdapterGitError: a hook cannot be chained (both ``NAME`` and its chained name exist).
    """
    hooks_dir = git.hooks_dir()
    configured = git.config_get("core.hooksPath")
    if configured and not Path(configured).is_absolute():  # resolved above: check the way there
        _refuse_links(git, git.top / configured)
    _refuse_links(git, git.top / ".husky")
    _refuse_links(git, _lefthook_local(git.top))
    husky = _husky(hooks_dir)
    if husky is None:
        for name in HOOK_NAMES:  # refuse before anything is changed
            path = hooks_dir / name
            if _kind(path) == PRE_COMMIT:
                path = path.with_name(name + LEGACY_SUFFIX)
            chained = path.with_name(name + CHAINED_SUFFIX)
            if _kind(path) == "" and chained.exists():
                raise AdapterGitError(
                    f"cannot install the {name} hook: both {path} and {chained} exist; "
                    "merge them by hand"
                )
    changes = _Changes(git)
    state_dir = git.git_dir / "adaptergit"
    state_dir.mkdir(parents=True, exist_ok=True)
    _write(state_dir / LAUNCHER, launcher_script().encode(), 0o755)
    try:
        if husky is not None:
            for name in HOOK_NAMES:
                _add_husky_lines(changes, husky[0] / name, name, executable=husky[1])
            return status(git)
        if _husky_pending(git.top):
            # A husky project whose husky is not set up in this clone yet (before `npm install`):
            # the shims run until husky takes over core.hooksPath, then the lines in .husky/.
            for name in HOOK_NAMES:
                _add_husky_lines(changes, git.top / ".husky" / name, name, executable=True)
        changes.mkdir(hooks_dir)
        lefthook_names = []
        planned = _lefthook_planned(git.top)  # hooks lefthook will take over when it syncs
        for name in HOOK_NAMES:
            path = hooks_dir / name
            kind = _kind(path)
            if kind == LEFTHOOK or name in planned:
                lefthook_names.append(name)
            if kind == LEFTHOOK:
                old = path.with_name(name + ".old")  # where lefthook moved a shim of ours
                if _is_ours(old):
                    old.unlink()
                continue
            if kind == PRE_COMMIT:
                path = path.with_name(name + LEGACY_SUFFIX)
            _refuse_links(git, path.parent)
            _place_shim(path, name)
        if lefthook_names:
            changes.remember(git.git_dir / LEFTHOOK_CHECKSUM, always=True)
            local = _lefthook_local(git.top)
            before = local.read_bytes() if local.exists() else None
            new = _with_lefthook_entries(before, lefthook_names, local.name)
            changes.write(local, new, 0o644)
    finally:
        changes.save()
    return status(git)


def _place_shim(path: Path, name: str) -> None:
    """Write the shim at `path`; a hook that is there already is kept as the chained hook."""
    if path.exists() and not _is_ours(path):
        chained = path.with_name(name + CHAINED_SUFFIX)
        if chained.exists():
            raise AdapterGitError(
                f"cannot install the {name} hook: both {path} and {chained} exist; "
                "merge them by hand"
            )
        os.replace(path, chained)
    _write(path, shim(name).encode(), 0o755)


def _add_husky_lines(changes: _Changes, script: Path, name: str, *, executable: bool) -> None:
    """Append `husky_block` to husky's script for hook `name`, creating it if needed."""
    _refuse_links(changes.git, script)
    try:
        text = script.read_bytes()
    except FileNotFoundError:
        text = None
    marker = (BLOCK_MARKER + name + ")").encode()
    if text is not None and marker in text:
        return
    if text is None:
        head = b"#!/usr/bin/env sh\n" if executable else b""
        data, mode = head + husky_block(name).encode(), 0o755 if executable else 0o644
    else:
        sep = b"" if not text or text.endswith(b"\n") else b"\n"
        data, mode = text + sep + husky_block(name).encode(), stat.S_IMODE(script.stat().st_mode)
    changes.write(script, data, mode)


def _with_lefthook_entries(
    before: bytes | None, names: Sequence[str], source: str = LEFTHOOK_LOCAL[0]
) -> bytes:
    """lefthook's local configuration with an ``adaptergit`` command for each hook in `names`.

    Raises:
        AdapterGitError: `before` is not YAML, or not a mapping of hooks to mappings (`source`
            names the file); nothing is written.
    """
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096  # one line per command, as a person writes it
    try:
        data = yaml.load(before) if before and before.strip() else None
    except (YAMLError, RecursionError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AdapterGitError(f"{source}: not valid YAML ({first}); fix it and run again") from None
    if data is None:
        from ruamel.yaml.comments import CommentedMap

        data = CommentedMap()
    if not isinstance(data, dict):
        raise AdapterGitError(f"{source}: expected a mapping of hook names; fix it and run again")
    for name in names:
        if data.get(name) is None:
            data[name] = {}
        hook = data[name]
        if isinstance(hook, dict) and hook.get("commands") is None:
            hook["commands"] = {}
        if not isinstance(hook, dict) or not isinstance(hook["commands"], dict):
            raise AdapterGitError(
                f"{source}: {name!r} is not a mapping with a 'commands' mapping; fix it and run "
                "again"
            )
        commands = hook["commands"]
        entry: dict[str, Any] = {"run": portable_call(name, "{0}")}
        if name in STDIN_HOOKS:
            entry["use_stdin"] = True
        commands["adaptergit"] = entry
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue().encode()


def _without_ours(path: Path, data: bytes) -> bytes:
    """`data` (a file adaptergit added itself to, changed since) without adaptergit's part."""
    if path.name in LEFTHOOK_LOCAL:
        import io

        from ruamel.yaml import YAML

        yaml = YAML()
        yaml.preserve_quotes = True
        try:
            config = yaml.load(data)
        except Exception:  # not YAML any more: leave it to its owner
            return data
        if not isinstance(config, dict):
            return data
        for name in HOOK_NAMES:
            hook = config.get(name)
            commands = hook.get("commands") if isinstance(hook, dict) else None
            if isinstance(hook, dict) and isinstance(commands, dict) and "adaptergit" in commands:
                del commands["adaptergit"]
                if not commands:
                    del hook["commands"]
                if not hook:
                    del config[name]
        out = io.StringIO()
        yaml.dump(config, out)
        return out.getvalue().encode() if config else b""
    lines = data.decode(errors="surrogateescape").splitlines(keepends=True)
    kept, skip = [], 0
    for line in lines:
        if skip:
            skip -= 1
        elif line.startswith(BLOCK_MARKER):
            skip = 1
        else:
            kept.append(line)
    return "".join(kept).encode(errors="surrogateescape")


def uninstall(git: GitRepo) -> list[HookState]:
    """Remove adaptergit's hooks and put back what was there, byte for byte: the hooks they
    chained, husky's scripts, lefthook's configuration, and no folder `install` created."""
    changes = _Changes(git)
    hooks_dir = git.hooks_dir()
    husky = _husky(hooks_dir)
    folder = husky[0] if husky is not None else git.top / ".husky"
    if husky is not None or _husky_pending(git.top):  # lines added before there was a record
        for name in HOOK_NAMES:
            script = folder / name
            if script.exists() and str(script) not in changes.files:
                data = script.read_bytes()
                cleaned = _without_ours(script, data)
                if cleaned != data:
                    _write(script, cleaned, stat.S_IMODE(script.stat().st_mode))
    for name in HOOK_NAMES:
        path = hooks_dir / name
        legacy = path.with_name(name + LEGACY_SUFFIX)
        for candidate in (path, legacy, path.with_name(name + ".old")):
            if _is_ours(candidate):
                candidate.unlink()
        chained = path.with_name(name + CHAINED_SUFFIX)
        if chained.exists():
            if not path.exists():
                os.replace(chained, path)
            elif _kind(path) == PRE_COMMIT and not legacy.exists():
                os.replace(chained, legacy)
    changes.undo(_without_ours)
    changes.save()
    (git.git_dir / "adaptergit" / LAUNCHER).unlink(missing_ok=True)
    return status(git)


# --- running a hook --------------------------------------------------------------------------


def run(name: str, args: Sequence[str], stdin: bytes | None = None, cwd: Path | str = ".") -> int:
    """Run hook `name` as git calls it; return its exit status.

    A hook adaptergit chained (the user's own, kept beside ours) runs first; a failing
    ``pre-*`` one stops there. Outside a registry (a shared hooks folder) nothing more is done.
    Arguments and stdin are git's (githooks(5)), or the pre-commit framework's
    ``PRE_COMMIT_*`` variables when it runs us.

    Args:
        name: one of `HOOK_NAMES` (``pre-commit``, ``post-checkout``, ``post-merge``,
            ``post-rewrite``, ``pre-push``).
        args: the hook's arguments from git.
        stdin: for ``pre-push``, git's ``<local ref> <local sha> <remote ref> <remote sha>``
            lines; for ``post-rewrite``, its ``<old sha> <new sha>`` lines (default: read from
            stdin).
        cwd: a folder in the repository.

    Returns:
        0 to let git go on; non-zero makes git abort a ``pre-*`` operation.

    Raises:
        AdapterGitError: an unknown hook name.
        NotARepository: `cwd` is not in a git work tree.
    """
    if name not in HOOK_NAMES:
        raise AdapterGitError(f"unknown hook {name!r}; hooks: {', '.join(HOOK_NAMES)}")
    git = GitRepo(cwd)
    if name in ("pre-push", "post-rewrite") and stdin is None:
        stdin = sys.stdin.buffer.read() if not sys.stdin.isatty() else b""
    chained = git.hooks_dir() / (name + CHAINED_SUFFIX)
    if chained.exists() and os.access(chained, os.X_OK):
        argv, env = chained_command(chained, git.hooks_dir() / name, args)
        code = subprocess.run(argv, input=stdin, cwd=git.top, env=env).returncode
        if code != 0 and name.startswith("pre-"):
            return code
    if not (git.root / REGISTRY_CONFIG).is_file():
        return 0  # a hooks folder shared with repositories that are not registries
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
    if name == "post-rewrite":  # the pre-commit framework passes no arguments, only this
        command = args[0] if args else os.environ.get("PRE_COMMIT_REWRITE_COMMAND", "")
        return post_rewrite(git, command, (stdin or b"").decode(errors="replace"))
    remote = args[0] if args else os.environ.get("PRE_COMMIT_REMOTE_NAME", "origin")
    text = (stdin or b"").decode(errors="replace")
    if not text.strip() and os.environ.get("PRE_COMMIT_TO_REF"):
        text = (
            f"HEAD {os.environ['PRE_COMMIT_TO_REF']} "
            f"{os.environ.get('PRE_COMMIT_REMOTE_BRANCH') or 'refs/heads/x'} "
            f"{os.environ.get('PRE_COMMIT_FROM_REF', ZERO_SHA)}\n"
        )
    return pre_push(git, remote, text.splitlines())


# Shells that can source a hook written for them, keeping the hook's own $0.
_SHELLS = frozenset({"sh", "bash", "dash", "ksh", "zsh"})


def chained_command(
    chained: Path, original: Path, args: Sequence[str]
) -> tuple[list[str], dict[str, str] | None]:
    """The command (and environment) that runs a chained hook as if it were still `original`.

    A shell script is sourced by its own shell with ``$0`` set to `original`, so hooks that find
    their siblings or their name from ``$0`` (husky's, overcommit's, dispatchers) work as before
    they were chained; anything else is executed as it is.
    """
    words = _head(chained, 256).split(b"\n", 1)[0]
    if words.startswith(b"#!"):
        shebang = words[2:].decode(errors="replace").split()
        program = shebang[1:2] if shebang[:1] and shebang[0].endswith("/env") else shebang[:1]
        if program and Path(program[0]).name in _SHELLS:
            env = {**os.environ, "ADAPTERGIT_CHAINED": str(chained)}
            source = '. "$ADAPTERGIT_CHAINED"'
            return [*shebang, "-c", source, str(original), *args], env
    return [str(chained), *args], None


def main(name: str, args: Sequence[str]) -> int:
    """Run a hook from the command line: one line on stderr for any error, as the CLI does.

    Args:
        name: the hook (see `run`).
        args: its arguments from git.

    Returns:
        The exit status: the hook's, an error's `AdapterGitError.exit_code`, 130 when
        interrupted, 1 for an OS error, 255 for anything unexpected.
    """
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


def sync_weights(git: GitRepo, old: str, new: str, *, rewriting: bool = False) -> int:
    """After a checkout or merge, bring the weights of adapters whose pointer changed.

    During a rebase every step checks out a commit: nothing is done until it ends, when
    post-rewrite calls this with `rewriting`. Weights missing from the cache are fetched from
    the default remote unless ``ADAPTERGIT_NO_FETCH`` is set to anything but 0. Errors are
    printed one line per adapter, never raised: git's checkout itself stands.

    Args:
        git: the repository.
        old: the commit before (``ZERO_SHA`` or an unknown one: everything changed).
        new: the commit after.
        rewriting: called by post-rewrite at the end of a rebase.

    Returns:
        0, or 1 when some adapter's weights could not be restored.
    """
    if old == new or (git.in_progress() == "rebase" and not rewriting):
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
        registry.dvc.use_shared_cache()  # `git worktree add`: plain dvc shares it too
        for name in names:
            try:
                restore_weights(registry, name, fetch=allow_fetch)
            except AdapterGitError as exc:
                _err(f"{adapter_path(name)}: {exc}")
                code = 1
    finally:
        registry.close()
    return code  # git makes this the checkout's exit status; the checkout itself stands


def post_rewrite(git: GitRepo, command: str, text: str) -> int:
    """After ``git rebase`` or ``git commit --amend``: version and stage tags of unpublished
    commits follow them to the rewritten commits, then the weights follow the new pointers
    (a rebase runs no post-checkout or post-merge, so ``git pull --rebase`` needs this)."""
    pairs = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            pairs.append((parts[0], parts[1]))
    if not pairs:
        if command == "rebase" and git.resolve_commit("ORIG_HEAD"):
            return sync_weights(git, "ORIG_HEAD", "HEAD", rewriting=True)
        return 0
    from adaptergit.ops import replay
    from adaptergit.registry import Registry

    try:
        registry = Registry(git.root)
    except AdapterGitError:
        return 0
    try:
        with registry.lock():
            moved = replay.follow_rewrite(registry, pairs)
    except AdapterGitError as exc:
        _err(f"version tags did not follow the rewritten commits: {exc}")
        return 1
    finally:
        registry.close()
    if moved:
        _err(f"version tags moved to the rewritten commits: {', '.join(moved)}")
    if command == "rebase" and git.resolve_commit("ORIG_HEAD"):
        return sync_weights(git, "ORIG_HEAD", "HEAD", rewriting=True)
    return 0


def pre_push(git: GitRepo, remote: str, lines: Sequence[str]) -> int:
    """Upload the weights of every version this push publishes; abort the push if any fails.

    Skipped when ``adaptergit push`` runs git (it uploaded already) and for pushes that only
    delete. Publishing is all or nothing, so before anything is uploaded a push is aborted when
    it would publish a version's commit without that version's tag (the remote lacks the tag
    and the push does not carry it, as ``--follow-tags`` or naming the tag would), or while the
    remote holds another tag of that version's name. Errors are printed as one line, never
    raised.

    Args:
        git: the repository.
        remote: the git remote's name.
        lines: git's pre-push stdin lines (``<local ref> <local sha> <remote ref> <remote sha>``).

    Returns:
        0 to let the push go on, 1 to abort it.
    """
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
        missing, clashing = _tags_left_behind(registry, versions, lines, remote)
        stray = _tags_off_branch(registry, versions, lines, remote)
        if stray:
            _err(
                f"push aborted: it carries the tags of {', '.join(stray)} but no branch of "
                f"{remote} would hold their commits (a branch it cannot fast-forward, or none), "
                "so a version would be published on no branch; `git pull` and push the branch "
                "with them (`git push --atomic --follow-tags`), or publish with `adaptergit push`"
            )
            return 1
        if clashing:
            _err(
                f"push aborted: {remote} holds other versions named {', '.join(clashing)}, so "
                "its branch would carry two versions under one number; `adaptergit push` "
                "publishes them renumbered past the remote's"
            )
            return 1
        if missing:
            branches = sorted(_pushed_branches(lines)) or ["BRANCH"]
            _err(
                f"push aborted: it carries the commits of {', '.join(missing)} but not their "
                "tags, so the remote would hold versions no tag names (and another clone could "
                "publish the same number); publish with `adaptergit push` (branch and tags in "
                f"one atomic push), or `git push --atomic --follow-tags {remote} "
                f"{' '.join(branches)}`"
            )
            return 1
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


def _pushed_branches(lines: Iterable[str]) -> set[str]:
    """The remote branches a push (git's pre-push stdin lines) updates, short names."""
    return {
        parts[2].removeprefix("refs/heads/")
        for line in lines
        if len(parts := line.split()) == 4
        and parts[2].startswith("refs/heads/")
        and parts[1] != ZERO_SHA
    }


def _tags_off_branch(
    registry: Registry, versions: Sequence[Version], lines: Iterable[str], remote: str
) -> list[str]:
    """Version tags this push sends whose commits neither a branch it surely updates (new, or
    a fast-forward this clone can see) nor a remote-tracking branch of `remote` holds: git
    would publish them while refusing the branch (``fetch first``), or with no branch at all."""
    git = registry.git
    tips: list[str] = []
    sent: set[str] = set()
    for line in lines:
        parts = line.split()
        if len(parts) != 4 or parts[1] == ZERO_SHA:
            continue
        _local_ref, local_sha, remote_ref, remote_sha = parts
        if remote_ref.startswith(tag_grammar.REFS_PREFIX):
            sent.add(tag_grammar.short_name(remote_ref))
        elif remote_ref.startswith("refs/heads/") and (
            remote_sha == ZERO_SHA
            or (git.resolve_commit(remote_sha) and git.is_ancestor(remote_sha, local_sha))
        ):
            tips.append(local_sha)
    stray = []
    for version in versions:
        if version.tag not in sent:
            continue
        if any(git.is_ancestor(version.commit, tip) for tip in tips):
            continue
        if not git.on_remote_branch(version.commit, remote):
            stray.append(version.ref)
    return sorted(stray)


def _tags_left_behind(
    registry: Registry, versions: Sequence[Version], lines: Iterable[str], remote: str
) -> tuple[list[str], list[str]]:
    """Version tags whose commits this push publishes without them: (those the remote lacks,
    those it holds as another tag object, i.e. another version under the same number)."""
    pushed = {
        tag_grammar.short_name(parts[2])
        for line in lines
        if len(parts := line.split()) == 4 and parts[2].startswith(tag_grammar.REFS_PREFIX)
    }
    wanted = sorted({v.tag for v in versions if v.tag and v.tag not in pushed})
    if not wanted:
        return [], []
    local = {t.name: t.oid for t in registry.git.tags([tag_grammar.full_ref(t) for t in wanted])}
    theirs = registry.git.remote_refs(remote, [tag_grammar.full_ref(t) for t in wanted])
    missing = [t for t in wanted if tag_grammar.full_ref(t) not in theirs]
    clashing = [
        t for t in wanted if theirs.get(tag_grammar.full_ref(t), local.get(t)) != local.get(t)
    ]
    return missing, clashing


def refs_in_push(registry: Registry, lines: Iterable[str], git_remote: str) -> list[Version]:
    """Versions that a push (git's pre-push stdin lines) makes reachable on the remote.

    Those registered at commits the remote does not have yet (not reachable from its old
    value or any of its remote-tracking branches), and version tags pushed themselves.

    Args:
        registry: the registry.
        lines: git's pre-push stdin lines; malformed lines are skipped.
        git_remote: the git remote's name.

    Raises:
        InvalidManifest: a version's manifest cannot be read.
    """
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
