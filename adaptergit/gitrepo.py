"""The git side, and the only module that talks to GitPython.

Reads go to git objects (tags, blobs at a commit) through one long-lived ``git cat-file --batch``;
writes use plumbing (a temporary index, ``commit-tree``, ``mktag``) and land in one atomic
``update-ref --stdin`` transaction, so a version's commit and its tag appear together or not at all.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptergit.errors import GitError, NotARepository
from adaptergit.fsutil import crash_point
from adaptergit.layout import REGISTRY_CONFIG, REGISTRY_ROOT_FILE, STATE_DIR

ZERO_SHA = "0" * 40


def _rejections(porcelain: str) -> str:
    """The refs a push was refused, from its ``--porcelain`` report (where git writes them,
    rather than to stderr), as git prints them without it, with git's advice for the case."""
    lines = []
    for line in porcelain.splitlines():
        flag, _, rest = line.partition("\t")
        if flag == "!" and "\t" in rest:
            refs, _, why = rest.partition("\t")
            short = refs.partition(":")[2].removeprefix("refs/heads/").removeprefix("refs/tags/")
            status, _, detail = why.partition("] ")
            lines.append(f" ! {status}] {short} {detail}\n" if detail else f" ! {why} {short}\n")
            if "fetch first" in why or "non-fast-forward" in why:
                lines.append(
                    "! the remote has commits this clone does not: integrate them "
                    "(`git pull`), then push again\n"
                )
    return "".join(dict.fromkeys(lines))


@dataclass(frozen=True, kw_only=True, slots=True)
class TagInfo:
    """A tag, peeled to its commit.

    Attributes:
        name: the tag's name, without ``refs/tags/``.
        commit: the commit it points at (through an annotated tag object if any).
        annotated: whether it is an annotated tag (GTO reads only those).
        created: unix seconds: the tagger date, else the commit's date.
        oid: the tag object's id (the commit's for a lightweight tag).
    """

    name: str
    commit: str
    annotated: bool
    created: int
    oid: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class CommitInfo:
    """A commit object's parts: tree, parents, author (``Name <email> TIME ZONE``), message."""

    commit: str
    tree: str
    parents: tuple[str, ...]
    author: str
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class RefUpdate:
    """One line of ``git push --porcelain``: a ref, whether git took it, and git's summary.

    Attributes:
        source: what was pushed (a ref or an object id).
        target: the remote ref.
        flag: git's flag: ``*`` new, `` `` fast-forward, ``=`` up to date, ``!`` rejected, ...
        summary: git's summary, e.g. ``[rejected] (fetch first)``.
    """

    source: str
    target: str
    flag: str
    summary: str

    @property
    def rejected(self) -> bool:
        """Whether git refused this ref (flag ``!``)."""
        return self.flag == "!"

    @property
    def reason(self) -> str:
        """Why git refused it: ``fetch first``, ``already exists``, ``non-fast-forward``, ..."""
        start, end = self.summary.rfind("("), self.summary.rfind(")")
        return self.summary[start + 1 : end] if 0 <= start < end else self.summary


class _Head:
    """`GitRepo.commit_paths`'s default parent: HEAD, read when the commit is made."""


class GitRepo:
    """A git work tree: its root, its objects, and the few writes adaptergit makes.

    A registry may be a folder of a larger repository (``adaptergit init ml/registry`` inside a
    monorepo, as ``dvc init --subdir``). `root` is then that folder and `top` the repository's
    top level. Every path this class takes or returns is relative to `root`: the prefix is added
    for git (``REV:PATH``, ``ls-tree``, ``add``, pathspecs) and taken off what git prints, here
    and nowhere else.

    Args:
        path: a folder inside the work tree.
        root: the registry's folder; by default the nearest folder from `path` up to the top
            level holding ``.adaptergit.toml``, else the one ``init`` recorded in the git
            directory, else the top level.
    """

    def __init__(self, path: Path | str = ".", *, root: Path | str | None = None) -> None:
        # Plain `git rev-parse` (a few ms) rather than GitPython (~50 ms to import): hooks and
        # `adaptergit log` open a repository on every call.
        where = Path(path)
        proc = subprocess.run(
            [
                "git",
                "rev-parse",
                "--is-bare-repository",
                "--show-toplevel",
                "--git-common-dir",
                "--absolute-git-dir",
                "--git-path",
                "hooks",
            ],
            cwd=where if where.is_dir() else where.parent,
            capture_output=True,
            text=True,
        )
        lines = proc.stdout.splitlines()
        if proc.returncode != 0 or not where.exists():
            raise NotARepository(where.resolve(), "inside a git repository")
        if lines[0] == "true" or len(lines) < 5:
            raise NotARepository(where.resolve(), "a git work tree (it is bare)")
        self.top = Path(lines[1])
        base = where if where.is_dir() else where.parent
        common = Path(lines[2])
        self.git_dir = common if common.is_absolute() else (base / common).resolve()
        self._own_git_dir = Path(lines[3])  # differs from git_dir in a linked worktree
        hooks = Path(lines[4])  # honours core.hooksPath
        self._hooks_dir = hooks if hooks.is_absolute() else (base / hooks).resolve()
        self.root = self._registry_root(base, root)
        rel = self.root.relative_to(self.top).as_posix() if self.root != self.top else ""
        self.prefix = f"{rel}/" if rel else ""  # the registry's folder, as git names it

    def _registry_root(self, base: Path, root: Path | str | None) -> Path:
        """The registry's folder: `root`, or found from `base` upwards, or as ``init`` recorded."""
        top = self.top.resolve()
        found: Path | None = Path(root).resolve() if root is not None else None
        if found is None:
            here = base.resolve()
            while here == top or top in here.parents:
                if (here / REGISTRY_CONFIG).is_file():
                    found = here
                    break
                here = here.parent
        if found is None:
            recorded = self.recorded_root()
            found = (top / recorded).resolve() if recorded else top
        if found == top:
            return self.top
        if top not in found.parents:
            raise NotARepository(found, f"inside the git work tree {self.top}")
        return self.top / found.relative_to(top)

    def main_worktree(self) -> Path | None:
        """The main work tree's top level when this is a linked worktree (``git worktree
        add``), else None."""
        if self._own_git_dir.resolve() == self.git_dir.resolve():
            return None
        out = self._run("worktree", "list", "--porcelain", check=False)
        for line in out.splitlines():
            if line.startswith("worktree "):
                return Path(line[len("worktree ") :])
        return None

    def worktree_heads(self) -> list[str]:
        """The commit each work tree of this repository has checked out (linked ones too)."""
        out = self._run("worktree", "list", "--porcelain", check=False)
        return [line.split()[1] for line in out.splitlines() if line.startswith("HEAD ")]

    @property
    def state_dir(self) -> Path:
        """adaptergit's own state in the (common) git directory: lock, journals, the root."""
        return self.git_dir / STATE_DIR

    def recorded_root(self) -> str | None:
        """The registry folder ``init`` recorded for this repository (relative to the top)."""
        try:
            text = (self.state_dir / REGISTRY_ROOT_FILE).read_text().strip()
        except OSError:
            return None
        return text or None

    def record_root(self) -> None:
        """Record `root` for hooks, which git runs at the top level (see `recorded_root`)."""
        from adaptergit.fsutil import atomic_write  # not on the hooks' start-up path

        self.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.state_dir / REGISTRY_ROOT_FILE, (self.prefix.rstrip("/") + "\n").encode())

    # --- paths: relative to the registry's folder here, to the top level for git ---------------

    def _git_path(self, path: str) -> str:
        """`path` (relative to `root`) as git names it (relative to the top level)."""
        if not self.prefix:
            return path
        return self.prefix + path if path not in ("", ".") else self.prefix.rstrip("/")

    def _object(self, spec: str) -> str:
        """``REV:PATH`` (``:PATH`` for the index) with PATH relative to `root`, for git."""
        if not self.prefix:
            return spec
        rev, sep, path = spec.partition(":")
        return f"{rev}{sep}{self._git_path(path)}" if sep else spec

    def _own_path(self, path: str) -> str | None:
        """A path git printed (relative to the top level) relative to `root`; None outside it."""
        if not self.prefix:
            return path
        return path[len(self.prefix) :] if path.startswith(self.prefix) else None

    @classmethod
    def init(cls, path: Path | str) -> GitRepo:
        """Open the work tree holding `path`, with `path` as the registry's folder, or create a
        repository there, as ``git init`` does.

        A `path` inside another repository's work tree becomes a folder of that repository (as
        ``dvc init --subdir``), never a nested repository that the outer one would record as a
        gitlink and its clones would lose.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        try:
            return cls(path, root=path)
        except NotARepository:
            pass
        import git

        git.Repo.init(path).close()
        return cls(path, root=path)

    @staticmethod
    def create(path: Path | str) -> Path:
        """``git init`` at `path`: a repository of its own, even inside another work tree."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["git", "init", "--quiet", str(path)], capture_output=True)
        if proc.returncode != 0:
            raise GitError("init", proc.stderr.decode(errors="replace"))
        return path

    def is_shallow(self) -> bool:
        """Whether this is a shallow clone (``git clone --depth``): its history is cut short."""
        return self._run("rev-parse", "--is-shallow-repository", check=False).strip() == "true"

    def close(self) -> None:
        """Nothing to release: every git call is its own process."""

    # --- running git ------------------------------------------------------------------------

    def _run(
        self,
        *args: str,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.top,
            input=input,
            capture_output=True,
            env={**os.environ, **env} if env else None,
        )
        if check and proc.returncode != 0:
            raise GitError(args[0], proc.stderr.decode(errors="replace"))
        return proc.stdout.decode(errors="surrogateescape")

    # --- reading ----------------------------------------------------------------------------

    def head(self) -> str | None:
        """The commit HEAD points at, or None on an unborn branch."""
        return self.resolve_commit("HEAD")

    def current_branch(self) -> str | None:
        """The branch HEAD is on, or None when detached."""
        out = self._run("symbolic-ref", "--quiet", "--short", "HEAD", check=False).strip()
        return out or None

    def resolve_commit(self, rev: str) -> str | None:
        """The full commit id that `rev` names, or None."""
        if rev.startswith("-"):
            return None
        out = self._run(
            "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False
        )
        return out.strip() or None

    def tags(self, patterns: Sequence[str] = (), *, namespace: str = "refs/tags/") -> list[TagInfo]:
        """Every tag (matching the for-each-ref `patterns`) with its peeled commit, in one call.

        Tags that do not point at a commit (a tag of a tree or blob) are left out. Messages are
        not read: they may hold any byte, and nothing needs them. `namespace` reads tags kept
        under another prefix (a copy of a remote's tags, see `fetch_tags`).
        """
        fmt = "%00".join(
            [
                "%(refname)",
                "%(objecttype)",
                "%(objectname)",
                "%(*objecttype)",
                "%(*objectname)",
                "%(taggerdate:unix)",
                "%(creatordate:unix)",
            ]
        )
        out = self._run("for-each-ref", f"--format={fmt}", *(patterns or [namespace.rstrip("/")]))
        result = []
        for line in out.splitlines():
            fields = line.split("\x00")
            if len(fields) != 7:
                continue
            ref, otype, oid, ptype, peeled, tagdate, created = fields
            annotated = otype == "tag"
            commit, kind = (peeled, ptype) if annotated else (oid, otype)
            if kind != "commit" or not ref.startswith(namespace):
                continue
            when = tagdate or created
            result.append(
                TagInfo(
                    name=ref[len(namespace) :],
                    commit=commit,
                    annotated=annotated,
                    created=int(when) if when.lstrip("-").isdigit() else 0,
                    oid=oid,
                )
            )
        return result

    def read_blob(self, rev: str, path: str) -> bytes | None:
        """The bytes of `path` as of `rev`, or None when absent or not a file.

        Args:
            rev: a commit id or any revision; "" for the index.
            path: a ``/``-separated path relative to the registry's folder (`root`).

        Raises:
            GitError: `path` contains a newline.
        """
        return self.read_blobs([f"{rev}:{path}"])[0]

    def read_blobs(self, objects: Sequence[str]) -> list[bytes | None]:
        """Contents of blobs named like ``REV:PATH`` (``:PATH`` for the index), in one call.

        One ``git cat-file --batch --buffer`` process for all of them (plain subprocess: importing
        GitPython would cost more than the read); anything missing or not a blob is None.
        """
        if not objects:
            return []
        if any("\n" in o for o in objects):
            raise GitError("cat-file", "an object name cannot contain a newline")
        proc = subprocess.run(
            ["git", "cat-file", "--batch", "--buffer"],
            cwd=self.top,
            input="".join(f"{self._object(o)}\n" for o in objects).encode(errors="surrogateescape"),
            capture_output=True,
        )
        if proc.returncode != 0:
            raise GitError("cat-file", proc.stderr.decode(errors="replace"))
        out, pos, result = proc.stdout, 0, []
        for _ in objects:
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            pos = end + 1
            if len(header) == 3 and header[2].isdigit():
                size = int(header[2])
                result.append(out[pos : pos + size] if header[1] == b"blob" else None)
                pos += size + 1
            else:  # "<name> missing" / "ambiguous"
                result.append(None)
        return result

    def checkout_bytes(self, rev: str, paths: Sequence[str]) -> list[bytes | None]:
        """The bytes ``git checkout REV -- PATH`` would write for each path (None if absent).

        git's smudge side is applied: line endings (``core.autocrlf``, ``eol``) and smudge
        filters of each path's attributes, so a file written from it is one ``git status``
        calls unchanged. (``cat-file --batch --filters`` loses the paths in git 2.39: one
        process per path.)
        """
        found: list[bytes | None] = []
        for path in paths:
            proc = subprocess.run(
                ["git", "cat-file", "--filters", self._object(f"{rev}:{path}")],
                cwd=self.top,
                capture_output=True,
            )
            found.append(proc.stdout if proc.returncode == 0 else None)
        return found

    def recheck(self, paths: Sequence[str]) -> None:
        """Make git compare these files' content at its next look, as after ``git read-tree``.

        The index keeps each file's size from git's last look at it; a file rewritten with other
        line endings (the same blob for git) has another size, which ``git status`` takes for a
        change without reading the file. The entries keep their blob and mode (nothing is staged
        or unstaged); only the cached stat data is cleared. Unmerged entries are left alone.
        """
        out = self._run("ls-files", "--stage", "-z", "--", *map(self._git_path, paths), check=False)
        records = []
        for entry in out.split("\x00"):
            meta, _, path = entry.partition("\t")
            fields = meta.split()
            if path and len(fields) == 3 and fields[2] == "0":
                records.append(f"{fields[0]} {fields[1]}\t{path}\x00")
        if records:
            self._run("update-index", "-z", "--index-info", input="".join(records).encode())

    def iter_blobs(self, objects: Sequence[str]) -> Iterator[bytes | None]:
        """`read_blobs` as a stream: each blob comes as soon as git has written it.

        The caller's work on one blob then overlaps git's reading of the next (on another core),
        which is most of the time of ``log`` over thousands of versions. Stopping early ends git.
        """
        if not objects:
            return
        if any("\n" in o for o in objects):
            raise GitError("cat-file", "an object name cannot contain a newline")
        import contextlib
        import fcntl
        import queue
        import threading

        proc = subprocess.Popen(
            ["git", "cat-file", "--batch", "--buffer"],
            cwd=self.top,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        request = "".join(f"{self._object(o)}\n" for o in objects).encode(errors="surrogateescape")
        chunks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        errors: list[bytes] = []

        def feed() -> None:  # stdin and stderr, so that neither pipe can fill up and stall git
            try:
                proc.stdin.write(request)  # type: ignore[union-attr]
                proc.stdin.close()  # type: ignore[union-attr]
            except OSError:  # git died; its stderr says why
                pass
            errors.append(proc.stderr.read())  # type: ignore[union-attr]

        def drain() -> None:  # stdout, in large reads with the GIL released
            fd = proc.stdout.fileno()  # type: ignore[union-attr]
            with contextlib.suppress(OSError, AttributeError):
                # A 1 MiB pipe: git writes on while this thread waits for the GIL (Linux).
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)
            while chunk := os.read(fd, 1 << 20):
                chunks.put(chunk)
            chunks.put(b"")

        threads = [threading.Thread(target=f, daemon=True) for f in (feed, drain)]
        for thread in threads:
            thread.start()
        data = b""  # git's output not yet taken, from `pos` on
        pos = 0
        done = False

        def more() -> bool:
            nonlocal data, pos, done
            chunk = b"" if done else chunks.get()
            if not chunk:
                done = True
                return False
            data = data[pos:] + chunk
            pos = 0
            return True

        try:
            for _ in objects:
                while (end := data.find(b"\n", pos)) < 0:
                    if not more():
                        break
                if end < 0:
                    break  # git stopped early: the error below
                header = data[pos:end].split()
                pos = end + 1
                if len(header) == 3 and header[2].isdigit():
                    size = int(header[2])
                    while len(data) < pos + size + 1 and more():
                        pass
                    blob = data[pos : pos + size]
                    pos += size + 1
                    yield blob if header[1] == b"blob" else None
                else:  # "<name> missing" / "ambiguous"
                    yield None
            else:
                return
        finally:
            if proc.poll() is None:
                proc.kill()
            for thread in threads:
                thread.join()
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        raise GitError("cat-file", b"".join(errors).decode(errors="replace") or "git stopped early")

    def list_dir(self, rev: str, path: str) -> list[str]:
        """Names of the entries of directory `path` at `rev` (``git ls-tree --name-only``).

        Args:
            rev: a commit id or any revision.
            path: a directory, relative to the registry's folder (`root`).

        Returns:
            The entries' names (files and folders), empty if `path` or `rev` does not exist.
        """
        out = self._run(
            "ls-tree",
            "--name-only",
            "-z",
            rev,
            "--",
            self._git_path(path.rstrip("/")) + "/",
            check=False,
        )
        return [Path(p).name for p in out.split("\x00") if p]

    def tree_entries(self, rev: str, path: str) -> dict[str, str]:
        """File name -> blob id for the files directly under `path` at `rev` (``git ls-tree``).

        Args:
            rev: a commit id or any revision.
            path: a directory, relative to the registry's folder (`root`).

        Returns:
            Blobs only (sub-folders are left out); empty if `path` or `rev` does not exist.
        """
        out = self._run(
            "ls-tree", "-z", rev, "--", self._git_path(path.rstrip("/")) + "/", check=False
        )
        entries = {}
        for line in out.split("\x00"):
            if not line:
                continue
            meta, _, name = line.partition("\t")
            _mode, otype, oid = meta.split()
            if otype == "blob":
                entries[Path(name).name] = oid
        return entries

    def hash_files(self, paths: Sequence[Path | str]) -> list[str]:
        """The blob ids git would give these working-tree files (no object is written).

        As ``git add`` would store them: the line-ending conversion (``core.autocrlf``, ``eol``,
        ``text``) and clean filters of each path's attributes are applied, so a file that
        ``git status`` calls unchanged gets the id of the blob it was committed as. The paths go
        to git on stdin: thousands of them would overflow a command line.
        """
        if not paths:
            return []
        if any("\n" in str(p) for p in paths):
            raise GitError("hash-object", "a path cannot contain a newline")
        listing = "".join(f"{p}\n" for p in paths).encode(errors="surrogateescape")
        out = self._run("hash-object", "--stdin-paths", input=listing)
        return out.split()

    def unmerged(self, pathspecs: Sequence[str]) -> set[str]:
        """Paths with merge conflicts in the index (``git status``: unmerged, e.g. "UU")."""
        out = self._run(
            "ls-files", "--unmerged", "-z", "--", *map(self._git_path, pathspecs), check=False
        )
        found = (self._own_path(e.partition("\t")[2]) for e in out.split("\x00") if "\t" in e)
        return {p for p in found if p}

    def skip_worktree(self, pathspecs: Sequence[str]) -> set[str]:
        """Tracked paths outside a sparse checkout (the index's skip-worktree bit, ``git
        ls-files -t``: S): absent from the work tree, yet ``git status`` is clean."""
        out = self._run("ls-files", "-t", "-z", "--", *map(self._git_path, pathspecs), check=False)
        found = (self._own_path(e[2:]) for e in out.split("\x00") if e.startswith("S "))
        return {p for p in found if p}

    def status(self, paths: Sequence[str]) -> list[str]:
        """`git status --porcelain` entries for `paths`, untracked files included."""
        out = self._run(
            "status",
            "--porcelain",
            "-z",
            "--untracked-files=all",
            "--",
            *map(self._git_path, paths),
        )
        return [entry for entry in out.split("\x00") if entry]

    def config_get(self, key: str) -> str | None:
        """The value of git configuration `key` (``git config --get``), or None if unset."""
        out = self._run("config", "--get", key, check=False).strip()
        return out or None

    def registry_folders(self) -> list[str]:
        """Folders (relative to the top level, "" for it) whose ``.adaptergit.toml`` git tracks."""
        out = self._run(
            "ls-files", "-z", "--full-name", "--", f":(top,glob)**/{REGISTRY_CONFIG}", check=False
        )
        return sorted({p.rpartition("/")[0] for p in out.split("\x00") if p})

    @staticmethod
    def merge_file(ours: Path, base: Path, theirs: Path) -> bool:
        """git's line merge of three files into `ours` (``git merge-file``); False on conflicts.

        Args:
            ours: this side's file, overwritten with the result (conflict markers included).
            base: the common ancestor's.
            theirs: the other side's.

        Returns:
            True for a clean merge.
        """
        proc = subprocess.run(
            [
                "git",
                "merge-file",
                "-L",
                "ours",
                "-L",
                "base",
                "-L",
                "theirs",
                str(ours),
                str(base),
                str(theirs),
            ],
            capture_output=True,
        )
        return proc.returncode == 0

    # --- writing ----------------------------------------------------------------------------

    def commit_paths(
        self,
        paths: Sequence[str],
        message: str,
        *,
        tags: Sequence[tuple[str, str]] = (),
        on_prepared: Callable[[str, dict[str, str]], None] | None = None,
        parent: str | type[_Head] | None = _Head,
    ) -> str:
        """Commit the working-tree state of exactly `paths` on top of HEAD, with annotated tags.

        Other staged changes stay staged and out of the commit: the tree is built in a temporary
        index. HEAD and every tag in `tags` ((name, message) pairs) move in one ref transaction,
        so none of them exists without the others. `on_prepared(commit, {tag: tag object id})`
        is called once the objects exist, just before that transaction (a journal records them:
        only those exact objects mean the commit was published).

        `parent` is HEAD's commit when the caller has read it already (None: an unborn branch);
        HEAD moves only if it still points there.

        Returns:
            The new commit's id.

        Raises:
            GitError: git failed (no identity, a tag that exists, a full disk, HEAD moved since
                `parent` was read); nothing moved.
        """
        if parent is _Head:
            parent = self.head()
        assert parent is None or isinstance(parent, str)
        with self._scratch_index() as env:
            if parent:
                self._run("read-tree", parent, env=env)
            self._run("add", "--all", "--force", "--", *map(self._git_path, paths), env=env)
            tree = self._run("write-tree", env=env).strip()
        commit_args = ["commit-tree", tree, "-F", "-"]
        if parent:
            commit_args[2:2] = ["-p", parent]
        commit = self._run(*commit_args, input=message.encode()).strip()
        commands = [f"update HEAD {commit} {parent or ZERO_SHA}"]
        tagger = self.tagger() if tags else ""
        tag_oids: dict[str, str] = {}
        for tag_name, text in tags:
            tag_oid = tag_oids[tag_name] = self._make_tag(tag_name, commit, text, tagger)
            commands.append(f"create refs/tags/{tag_name} {tag_oid}")
        if on_prepared is not None:
            on_prepared(commit, tag_oids)
        crash_point("git.before-refs")
        subject = message.splitlines()[0] if message else ""
        script = "start\n" + "\n".join(commands) + "\nprepare\ncommit\n"
        self._run("update-ref", "-m", f"commit: {subject}", "--stdin", input=script.encode())
        crash_point("git.after-refs")
        # The user's index now agrees with the new HEAD for these paths; the rest is untouched.
        self.reset_index(commit, paths)
        return commit

    @contextlib.contextmanager
    def _scratch_index(self) -> Iterator[dict[str, str]]:
        """The environment of git commands that build a tree in an index of their own (a file
        in the git directory, removed afterwards), so that the user's index is left alone."""
        path = self.git_dir / f"adaptergit-index-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            yield {"GIT_INDEX_FILE": str(path)}
        finally:
            for leftover in (path, path.with_name(path.name + ".lock")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()

    def reset_index(self, rev: str, paths: Sequence[str]) -> None:
        """Make the index entries of `paths` those of `rev` (the work tree is untouched).

        As ``git reset REV -- PATHS``; failures are ignored (a path that is in neither is left).

        Args:
            rev: the commit.
            paths: paths relative to the registry's folder (`root`).
        """
        self._run("reset", "--quiet", rev, "--", *map(self._git_path, paths), check=False)

    def tagger(self, when: int | None = None) -> str:
        """The ident a tag written now gets: ``Name <email> SECONDS ZONE``, as ``git var
        GIT_COMMITTER_IDENT`` prints it (``GIT_COMMITTER_DATE`` honoured as git honours it).

        Args:
            when: the date in Unix seconds instead of git's (now, or ``GIT_COMMITTER_DATE``).

        Raises:
            GitError: git has no identity to give (``user.name``/``user.email`` unset).
        """
        ident = self._run("var", "GIT_COMMITTER_IDENT").strip()
        if when is None:
            return ident
        name, _seconds, zone = ident.rsplit(" ", 2)
        return f"{name} {int(when)} {zone}"

    def _make_tag(self, name: str, commit: str, message: str, tagger: str) -> str:
        """Write an annotated tag object (not yet a ref); return its id."""
        body = f"object {commit}\ntype commit\ntag {name}\ntagger {tagger}\n\n{message.rstrip()}\n"
        return self._run("mktag", input=body.encode()).strip()

    def create_tag(self, name: str, commit: str, message: str, *, when: int | None = None) -> None:
        """Create an annotated tag, failing if it exists (``git mktag`` + ``git update-ref``).

        Args:
            name: the tag's name, without ``refs/tags/`` (built by `adaptergit.tags`).
            commit: the commit it points at.
            message: the tag's message.
            when: the tagger date in Unix seconds (default: now), so that GTO orders stage events
                as written.

        Raises:
            GitError: the tag exists, or git failed (no identity, say).
        """
        tag_oid = self._make_tag(name, commit, message, self.tagger(when))
        crash_point("git.before-refs")
        self._run("update-ref", f"refs/tags/{name}", tag_oid, ZERO_SHA)
        crash_point("git.after-refs")

    def ref_target(self, ref: str) -> str | None:
        """The object a full ref (``refs/tags/NAME``, ``HEAD``) points at, not peeled, or None."""
        if ref.startswith("-"):
            return None
        out = self._run("rev-parse", "--verify", "--quiet", ref, check=False)
        return out.strip() or None

    def tracked(self, paths: Sequence[str]) -> list[str]:
        """Which of `paths` (or files under them) git tracks, at the index."""
        out = self._run("ls-files", "-z", "--", *map(self._git_path, paths), check=False)
        found = (self._own_path(p) for p in out.split("\x00") if p)
        return [p for p in found if p]

    def delete_tag(self, name: str) -> None:
        """Delete tag `name` (``refs/tags/NAME``); a tag that does not exist is no error.

        Raises:
            GitError: git could not update the ref (a locked ref, a read-only repository).
        """
        self._run("update-ref", "-d", f"refs/tags/{name}")

    def set_config(self, key: str, value: str) -> None:
        """Set git configuration `key` to `value` in the repository's config (``git config``).

        Raises:
            GitError: git refused (an invalid key).
        """
        self._run("config", key, value)

    def stage(self, paths: Sequence[str]) -> None:
        """``git add`` `paths` (relative to `root`) to the index.

        Raises:
            GitError: git refused (a path outside the repository, an ignored file).
        """
        self._run("add", "--", *map(self._git_path, paths))

    def commit_staged(
        self,
        message: str,
        paths: Sequence[str],
        *,
        on_prepared: Callable[[str, dict[str, str]], None] | None = None,
    ) -> str | None:
        """Commit `paths` as they are in the work tree (a no-op when nothing changed).

        Args:
            message: the commit message.
            paths: the paths to commit, relative to `root`; other staged changes stay staged.
            on_prepared: see `commit_paths`.

        Returns:
            The new commit's id, or None when `paths` had no changes and HEAD exists.

        Raises:
            GitError: git failed; nothing moved.
        """
        if not self.status(list(paths)) and self.head():
            return None
        return self.commit_paths(paths, message, on_prepared=on_prepared)

    # --- rewriting history (replaying unpublished versions) --------------------------------

    def rev_list(self, include: str, exclude: Sequence[str] = ()) -> list[str]:
        """Commits reachable from `include` and from none of `exclude`, oldest first (parents
        before children)."""
        args = ["rev-list", "--reverse", "--topo-order", include]
        args += ["--not", *exclude] if exclude else []
        return self._run(*args).split()

    def commit_object(self, commit: str) -> CommitInfo:
        """The parts of commit `commit`.

        Raises:
            GitError: it is not a commit.
        """
        raw = self._run("cat-file", "commit", commit)
        header, _, message = raw.partition("\n\n")
        tree, parents, author = "", [], ""
        for line in header.splitlines():
            key, _, value = line.partition(" ")
            if key == "tree":
                tree = value
            elif key == "parent":
                parents.append(value)
            elif key == "author":
                author = value
        return CommitInfo(
            commit=commit, tree=tree, parents=tuple(parents), author=author, message=message
        )

    def tag_message(self, oid: str) -> str:
        """The message of annotated tag object `oid` ("" if it has none)."""
        raw = self._run("cat-file", "tag", oid)
        return raw.partition("\n\n")[2]

    def paths_changed(self, old: str, new: str) -> tuple[list[str], list[str]]:
        """Files that differ between commits `old` and `new`: (those under `root`, relative to
        it; those elsewhere in the repository, relative to the top level)."""
        out = self._run("diff-tree", "-r", "-z", "--name-only", "--no-renames", old, new)
        inside: list[str] = []
        outside: list[str] = []
        for path in out.split("\x00"):
            if path:
                own = self._own_path(path)
                (inside if own else outside).append(own or path)
        return inside, outside

    def on_remote_branch(self, commit: str, remote: str | None = None) -> bool:
        """Whether some remote-tracking branch (of `remote`, default: of any remote) contains
        `commit` (it was published)."""
        out = self._run(
            "for-each-ref",
            "--count=1",
            "--format=%(refname)",
            "--contains",
            commit,
            f"refs/remotes/{remote}/" if remote else "refs/remotes",
            check=False,
        )
        return bool(out.strip())

    def introduced_files(
        self, include: str, exclude: Sequence[str], pathspecs: Sequence[str]
    ) -> list[tuple[str, str]]:
        """(commit, path under `root`) for each file matching `pathspecs` that a commit
        reachable from `include` and from none of `exclude` changes (a merge: relative to every
        parent, as ``--cc`` shows), oldest first; one ``git log``."""
        args = ["log", "--reverse", "--cc", "--name-only", "-z", "--format=%x01%H", include]
        args += ["--not", *exclude] if exclude else []
        out = self._run(*args, "--", *map(self._git_path, pathspecs), check=False)
        found = []
        commit = ""
        for item in out.split("\x00"):
            for part in item.split("\n"):
                part = part.strip()
                if part.startswith("\x01"):
                    commit = part[1:]
                elif part and commit:
                    own = self._own_path(part)
                    if own:
                        found.append((commit, own))
        return found

    def write_blob(self, data: bytes) -> str:
        """Store `data` as a blob; return its id."""
        return self._run("hash-object", "-w", "--stdin", input=data).strip()

    def subtree_files(self, rev: str, path: str) -> dict[str, tuple[str, str]]:
        """Path (relative to `root`) -> (mode, blob id) of every file under folder `path` at
        `rev`."""
        out = self._run("ls-tree", "-r", "-z", "--full-tree", rev, "--", self._git_path(path) + "/")
        found = {}
        for entry in out.split("\x00"):
            meta, _, full = entry.partition("\t")
            parts = meta.split()
            own = self._own_path(full)
            if own and len(parts) == 3 and parts[1] == "blob":
                found[own] = (parts[0], parts[2])
        return found

    def build_tree(self, base: str, files: Mapping[str, tuple[str, str] | None]) -> str:
        """The tree of commit `base` with `files` (paths relative to `root`) set to (mode, blob
        id), or removed where None; returns the new tree's id (nothing else changes)."""
        lines = []
        for path, entry in sorted(files.items()):
            mode, oid = entry if entry is not None else ("0", ZERO_SHA)
            lines.append(f"{mode} {oid}\t{self._git_path(path)}\n")
        with self._scratch_index() as env:
            self._run("read-tree", base, env=env)
            self._run("update-index", "--index-info", input="".join(lines).encode(), env=env)
            return self._run("write-tree", env=env).strip()

    def write_commit(self, tree: str, parents: Sequence[str], message: str, author: str) -> str:
        """Write a commit object (no ref moves) with `author` (git's ``Name <email> TIME ZONE``)
        kept and this user as committer; return its id."""
        name, _, rest = author.partition(" <")
        email, _, date = rest.partition("> ")
        env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": date}
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self._run(*args, "-F", "-", input=message.encode(), env=env).strip()

    def write_tag(self, name: str, commit: str, message: str, *, when: int | None = None) -> str:
        """Write an annotated tag object for `commit` (no ref is created); return its id.

        Args:
            name: the tag's name, without ``refs/tags/`` (built by `adaptergit.tags`).
            commit: the commit it points at.
            message: the tag's message.
            when: the tagger date in Unix seconds (default: now).

        Raises:
            GitError: git failed (no identity, say).
        """
        return self._make_tag(name, commit, message, self.tagger(when))

    def update_refs(self, commands: Sequence[str], reason: str) -> None:
        """Apply ``update-ref --stdin`` commands (``update REF NEW OLD``, ``create REF NEW``,
        ``delete REF OLD``) in one transaction: all of them, or none."""
        if not commands:
            return
        script = "start\n" + "\n".join(commands) + "\nprepare\ncommit\n"
        self._run("update-ref", "-m", reason, "--stdin", input=script.encode())

    def move_branch(self, commit: str, reason: str) -> None:
        """Move the current branch to `commit`, updating the index and work tree (``git reset
        --keep``: refused, with nothing changed, where local changes would be overwritten)."""
        self._run("reset", "--quiet", "--keep", commit, env={"GIT_REFLOG_ACTION": reason})

    def dirty_paths(self, paths: Sequence[str]) -> list[str]:
        """Paths among `paths` (relative to `root`) with changes in the index or work tree, or
        untracked files that a checkout would overwrite."""
        if not paths:
            return []
        out = self._run(
            "status",
            "--porcelain",
            "-z",
            "--no-renames",
            "--untracked-files=all",
            "--",
            *map(self._git_path, paths),
        )
        found = (self._own_path(entry[3:]) for entry in out.split("\x00") if entry)
        return sorted({p for p in found if p})

    # --- sharing ---------------------------------------------------------------------------

    def merged_tags(self, rev: str, pattern: str) -> list[str]:
        """Tags matching `pattern` whose commits are reachable from `rev` (``git tag --merged``).

        Args:
            rev: the revision.
            pattern: a ``git tag --list`` glob (``*@v*``).

        Returns:
            Tag names, without ``refs/tags/``; empty if `rev` does not exist.
        """
        out = self._run("tag", "--list", "--merged", rev, pattern, check=False)
        return out.split()

    def remotes(self) -> list[str]:
        """The names of the git remotes (``git remote``)."""
        return self._run("remote").split()

    def default_remote(self) -> str | None:
        """The current branch's upstream remote, else ``origin``, else the only remote."""
        branch = self.current_branch()
        if branch:
            configured = self.config_get(f"branch.{branch}.remote")
            if configured:
                return configured
        names = self.remotes()
        if "origin" in names:
            return "origin"
        return names[0] if len(names) == 1 else None

    def push(
        self,
        remote: str,
        refspecs: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        set_upstream: bool = False,
    ) -> str:
        """``git push`` (hooks run as usual); raises GitError with git's reasons on failure.

        With `set_upstream`, as ``git push -u``: each branch pushed tracks the remote's.
        Returns git's ``--porcelain`` report (`updated_refs` reads it).
        """
        upstream = ["--set-upstream"] if set_upstream else []
        proc = subprocess.run(
            ["git", "push", "--porcelain", *upstream, remote, *refspecs],
            cwd=self.top,
            capture_output=True,
            env={**os.environ, **env} if env else None,
        )
        if proc.returncode != 0:
            report = proc.stdout.decode(errors="replace")
            raise GitError("push", _rejections(report) + proc.stderr.decode(errors="replace"))
        return proc.stdout.decode(errors="replace")

    @staticmethod
    def updated_refs(porcelain: str) -> list[str]:
        """The remote refs a push changed, from its ``--porcelain`` report (not those that
        were up to date, flag ``=``)."""
        updated = []
        for line in porcelain.splitlines():
            flag, _, rest = line.partition("\t")
            if len(flag) == 1 and flag in " +-*" and ":" in rest:
                updated.append(rest.split("\t")[0].partition(":")[2])
        return updated

    def upstream(self, branch: str) -> str | None:
        """The remote branch `branch` tracks (``branch.NAME.merge``), or None."""
        return self.config_get(f"branch.{branch}.merge")

    def is_ancestor(self, old: str | None, new: str) -> bool:
        """Whether commit `old` is an ancestor of (or is) commit `new` (``git merge-base
        --is-ancestor``).

        Args:
            old: a commit, or None (then False).
            new: a commit.

        Returns:
            False also when either commit does not exist.
        """
        if old is None:
            return False
        proc = subprocess.run(
            ["git", "merge-base", "--is-ancestor", old, new], cwd=self.top, capture_output=True
        )
        return proc.returncode == 0

    def push_atomic(
        self,
        remote: str,
        refspecs: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        set_upstream: bool = False,
    ) -> tuple[bool, list[RefUpdate], str]:
        """``git push --atomic``: every ref in `refspecs` is updated on `remote`, or none is.

        Hooks run as usual. `set_upstream` records the pushed branch's upstream (``-u``).

        Returns:
            (whether git took the push, one `RefUpdate` per ref as git reported it, git's
            meaningful stderr lines (see `errors.git_reason`)).
        """
        from adaptergit.errors import git_reason

        args = ["git", "push", "--atomic", "--porcelain", *(["-u"] if set_upstream else [])]
        proc = subprocess.run(
            [*args, remote, *refspecs],
            cwd=self.top,
            capture_output=True,
            env={**os.environ, **env} if env else None,
        )
        updates = []
        for line in proc.stdout.decode(errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and len(parts[0]) == 1:
                source, _, target = parts[1].rpartition(":")
                updates.append(
                    RefUpdate(source=source, target=target, flag=parts[0], summary=parts[2])
                )
        return proc.returncode == 0, updates, git_reason(proc.stderr.decode(errors="replace"))

    def remote_refs(self, remote: str, refs: Sequence[str]) -> dict[str, str]:
        """Full ref name -> object id of these refs on `remote` (``git ls-remote``; absent ones
        are left out).

        Raises:
            GitError: the remote cannot be read.
        """
        if not refs:
            return {}
        out = self._run("ls-remote", "--refs", remote, *refs)
        wanted = set(refs)
        found = {}
        for line in out.splitlines():
            oid, _, ref = line.partition("\t")
            if ref in wanted:
                found[ref] = oid
        return found

    def remote_tag_commits(self, remote: str) -> dict[str, str]:
        """Tag name (without ``refs/tags/``) -> the commit it names, for every tag on `remote`
        (one ``git ls-remote --tags``; annotated tags peeled).

        Raises:
            GitError: the remote cannot be read.
        """
        out = self._run("ls-remote", "--tags", remote)
        found: dict[str, str] = {}
        for line in out.splitlines():
            oid, _, ref = line.partition("\t")
            name = ref.removeprefix("refs/tags/")
            if name.endswith("^{}"):
                found[name[:-3]] = oid  # the peeled line comes after the tag object's
            else:
                found.setdefault(name, oid)
        return found

    def fetch(self, remote: str, refspecs: Sequence[str]) -> None:
        """``git fetch --no-tags REMOTE REFSPECS`` (into exactly the refs the refspecs name).

        Raises:
            GitError: the remote cannot be read (git's reason kept).
        """
        self._run("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", remote, *refspecs)

    def delete_refs(self, prefix: str) -> None:
        """Delete every ref under `prefix` (a private namespace, e.g. a copy of remote tags)."""
        out = self._run("for-each-ref", "--format=%(refname)", prefix, check=False)
        self.update_refs([f"delete {ref}" for ref in out.split()], "adaptergit: clean up")

    def ref_commit(self, ref: str) -> str | None:
        """The commit full ref `ref` names, or None when there is no such ref."""
        return self.resolve_commit(ref) if self._ref_exists(ref) else None

    def commits_between(self, new: str, exclude: Sequence[str]) -> set[str]:
        """Commits reachable from `new` but not from any of `exclude` (``git rev-list``).

        Args:
            new: a revision.
            exclude: revisions, or options such as ``--remotes=origin``, passed after ``--not``.

        Returns:
            Commit ids; empty if git fails (an unknown revision).
        """
        args = ["rev-list", new, *(["--not", *exclude] if exclude else [])]
        out = self._run(*args, check=False)
        return set(out.split())

    def changed_files(self, old: str, new: str, pathspecs: Sequence[str]) -> list[str]:
        """Paths that differ between commits `old` and `new` (``git diff --name-only``).

        Args:
            old: a commit.
            new: a commit.
            pathspecs: limit to these paths or globs, relative to `root`.

        Returns:
            Paths relative to `root` (others left out), renames counted as delete + add; empty
            on failure.
        """
        out = self._run(
            "diff",
            "--name-only",
            "-z",
            "--no-renames",
            old,
            new,
            "--",
            *map(self._git_path, pathspecs),
            check=False,
        )
        found = (self._own_path(p) for p in out.split("\x00") if p)
        return [p for p in found if p]

    def staged_files(self) -> list[tuple[str, str, str]]:
        """(status, path, blob id) of files staged for the next commit (added/modified/renamed)."""
        out = self._run(
            "diff", "--cached", "--name-status", "-z", "--no-renames", "--diff-filter=ACMR"
        )
        parts = [p for p in out.split("\x00") if p]
        result = []
        for status, path in zip(parts[::2], parts[1::2], strict=False):
            own = self._own_path(path)
            if own:
                result.append((status, own, ""))
        return result

    def object_sizes(self, objects: Sequence[str]) -> list[int]:
        """Sizes of objects (e.g. ``:path`` for the staged version) via one cat-file call."""
        if not objects:
            return []
        out = self._run(
            "cat-file",
            "--batch-check=%(objectsize)",
            input="\n".join(map(self._object, objects)).encode() + b"\n",
        )
        sizes = []
        for line in out.splitlines():
            sizes.append(int(line) if line.strip().isdigit() else -1)
        return sizes

    def hooks_dir(self) -> Path:
        """Where git looks for hooks (core.hooksPath, else the git directory's hooks/)."""
        return self._hooks_dir

    def in_progress(self) -> str | None:
        """'rebase', 'merge', 'cherry-pick' or 'bisect' while one of them is under way."""
        gd = self._own_git_dir
        if (gd / "rebase-merge").exists() or (gd / "rebase-apply").exists():
            return "rebase"
        for marker, name in (
            ("MERGE_HEAD", "merge"),
            ("CHERRY_PICK_HEAD", "cherry-pick"),
            ("REVERT_HEAD", "revert"),
            ("BISECT_LOG", "bisect"),
        ):
            if (gd / marker).exists():
                return name
        return None

    def unmerged_paths(self) -> list[str]:
        """Paths under `root` with unresolved conflicts in the index."""
        scope = ["--", self.prefix] if self.prefix else []
        out = self._run("ls-files", "-z", "--unmerged", "--full-name", *scope, check=False)
        found = (self._own_path(e.partition("\t")[2]) for e in out.split("\x00") if e)
        return sorted({p for p in found if p})

    def attach_head(self, branch: str) -> None:
        """Put a detached HEAD on `branch`, created or fast-forwarded to HEAD's commit.

        The work tree and index are untouched (the commit does not change).

        Raises:
            GitError: `branch` exists and is not an ancestor of HEAD (it would lose commits).
        """
        head = self.head()
        if head is None:
            raise GitError("switch", "HEAD has no commit")
        ref = f"refs/heads/{branch}"
        self._run("check-ref-format", ref)
        current = self.resolve_commit(ref) if self._ref_exists(ref) else None
        if current is not None and current != head and not self.is_ancestor(current, head):
            raise GitError(
                "switch",
                f"branch {branch} is at {current[:7]}, which HEAD ({head[:7]}) does not "
                "contain; pull or rebase first",
            )
        self._run(
            "update-ref", "-m", f"adaptergit: commit onto {branch}", ref, head, current or ZERO_SHA
        )
        self._run("symbolic-ref", "-m", f"adaptergit: commit onto {branch}", "HEAD", ref)

    def _ref_exists(self, ref: str) -> bool:
        proc = subprocess.run(["git", "show-ref", "--verify", "--quiet", ref], cwd=self.top)
        return proc.returncode == 0

    # --- setting up remotes ----------------------------------------------------------------

    @staticmethod
    def init_bare(path: Path | str) -> Path:
        """Create a bare repository at `path` (a git remote on disk) and return its path."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["git", "init", "--quiet", "--bare", str(path)], capture_output=True)
        if proc.returncode != 0:
            raise GitError("init", proc.stderr.decode(errors="replace"))
        return path

    @classmethod
    def clone(cls, url: str, dest: Path | str) -> GitRepo:
        """``git clone`` `url` into `dest`, tags included, and open the clone.

        Args:
            url: anything ``git clone`` takes.
            dest: the folder to create.

        Raises:
            GitError: the clone failed.
        """
        proc = subprocess.run(["git", "clone", "--quiet", str(url), str(dest)], capture_output=True)
        if proc.returncode != 0:
            raise GitError("clone", proc.stderr.decode(errors="replace"))
        return cls(dest)

    def add_remote(self, name: str, url: str) -> None:
        """``git remote add NAME URL``.

        Raises:
            GitError: the remote exists, or git refused the name.
        """
        self._run("remote", "add", name, str(url))

    # --- bulk reads (diff, verify, status, gc) ----------------------------------------------

    def object_ids(self, objects: Sequence[str], kind: str = "blob") -> list[str | None]:
        """Ids of objects named like ``REV:PATH``, in one ``git cat-file --batch-check``.

        Args:
            objects: object names (``REV:PATH``, ``:PATH`` for the index).
            kind: the object type wanted (``blob``, ``tree``).

        Returns:
            One id per name, in order; None where it is absent or not a `kind`.

        Raises:
            GitError: git failed.
        """
        if not objects:
            return []
        out = self._run(
            "cat-file",
            "--batch-check=%(objectname) %(objecttype)",
            "--buffer",
            input="".join(f"{self._object(o)}\n" for o in objects).encode(),
        )
        ids: list[str | None] = []
        for line in out.splitlines():
            parts = line.split()
            ids.append(parts[0] if len(parts) == 2 and parts[1] == kind else None)
        return ids

    def ref_tips(self, namespaces: Sequence[str] = ()) -> list[tuple[str, str]]:
        """(full ref name, commit) of every branch, remote-tracking branch and tag, and HEAD
        (or of the refs under `namespaces` only, without HEAD)."""
        out = self._run(
            "for-each-ref",
            "--format=%(refname)%00%(objectname)%00%(*objectname)%00%(objecttype)%00%(*objecttype)",
            *(namespaces or ("refs/heads", "refs/remotes", "refs/tags")),
        )
        tips = []
        for line in out.splitlines():
            name, oid, peeled, otype, ptype = line.split("\x00")
            commit, kind = (peeled, ptype) if otype == "tag" else (oid, otype)
            if kind == "commit":
                tips.append((name, commit))
        head = self.head() if not namespaces else None
        if head:
            tips.append(("HEAD", head))
        return tips

    def files_in_tree(self, rev: str, predicate: Any) -> dict[str, str]:
        """Path -> blob id of every file under `root` at `rev` whose path satisfies `predicate`.

        Read with one ``git ls-tree -r --full-tree``.

        Args:
            rev: a commit or tree.
            predicate: called with each path (relative to `root`); true keeps it.

        Raises:
            GitError: `rev` does not exist.
        """
        scope = ["--", self.prefix] if self.prefix else []
        out = self._run("ls-tree", "-r", "-z", "--full-tree", rev, *scope)
        found = {}
        for entry in out.split("\x00"):
            if not entry:
                continue
            meta, _, full = entry.partition("\t")
            parts = meta.split()
            path = self._own_path(full)
            if path and len(parts) == 3 and parts[1] == "blob" and predicate(path):
                found[path] = parts[2]
        return found

    def working_files(self, predicate: Any) -> list[str]:
        """Tracked and untracked (not ignored) work-tree paths satisfying `predicate`."""
        scope = ["--", self.prefix] if self.prefix else []
        out = self._run(
            "ls-files", "-z", "--full-name", "--cached", "--others", "--exclude-standard", *scope
        )
        found = (self._own_path(p) for p in out.split("\x00") if p)
        return sorted({p for p in found if p and predicate(p)})

    def history_blobs(self, pathspecs: Sequence[str]) -> set[str]:
        """Ids of every version of the files matching `pathspecs` in the history of all refs."""
        out = self._run(
            "log",
            "--all",
            "--format=",
            "--raw",
            "--no-abbrev",
            "--no-renames",
            "--",
            *map(self._git_path, pathspecs),
        )
        found = set()
        for line in out.splitlines():
            parts = line.split("\t", 1)[0].split()
            if len(parts) >= 4 and parts[0].startswith(":") and parts[3] != ZERO_SHA:
                found.add(parts[3])
        return found

    def history_text(self, pathspecs: Sequence[str]) -> str:
        """Every version of files matching `pathspecs` in the history of all refs, as patches."""
        return self._run(
            "log",
            "--all",
            "-p",
            "--format=",
            "--no-renames",
            "--no-ext-diff",
            "--no-textconv",
            "--unified=0",
            "--",
            *map(self._git_path, pathspecs),
        )
