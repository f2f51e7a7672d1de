"""The git side, and the only module that talks to GitPython.

Reads go to git objects (tags, blobs at a commit) through one long-lived ``git cat-file --batch``;
writes use plumbing (a temporary index, ``commit-tree``, ``mktag``) and land in one atomic
``update-ref --stdin`` transaction, so a version's commit and its tag appear together or not at all.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptergit.errors import GitError, NotARepository
from adaptergit.fsutil import crash_point

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
    """

    name: str
    commit: str
    annotated: bool
    created: int


class GitRepo:
    """A git work tree: its root, its objects, and the few writes adaptergit makes."""

    def __init__(self, path: Path | str = ".") -> None:
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
        self.root = Path(lines[1])
        base = where if where.is_dir() else where.parent
        common = Path(lines[2])
        self.git_dir = common if common.is_absolute() else (base / common).resolve()
        self._own_git_dir = Path(lines[3])  # differs from git_dir in a linked worktree
        hooks = Path(lines[4])  # honours core.hooksPath
        self._hooks_dir = hooks if hooks.is_absolute() else (base / hooks).resolve()

    @classmethod
    def init(cls, path: Path | str) -> GitRepo:
        """Open the work tree rooted at `path`, or create a repository there, as `git init` does.

        A `path` inside another repository's work tree gets a repository of its own rather than
        turning the enclosing one into a registry.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        try:
            existing = cls(path)
            if existing.root.resolve() == path.resolve():
                return existing
        except NotARepository:
            pass
        import git

        git.Repo.init(path).close()
        return cls(path)

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
            cwd=self.root,
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

    def tags(self, patterns: Sequence[str] = ()) -> list[TagInfo]:
        """Every tag (matching the for-each-ref `patterns`) with its peeled commit, in one call.

        Tags that do not point at a commit (a tag of a tree or blob) are left out. Messages are
        not read: they may hold any byte, and nothing needs them.
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
        out = self._run("for-each-ref", f"--format={fmt}", *(patterns or ["refs/tags"]))
        result = []
        for line in out.splitlines():
            fields = line.split("\x00")
            if len(fields) != 7:
                continue
            ref, otype, oid, ptype, peeled, tagdate, created = fields
            annotated = otype == "tag"
            commit, kind = (peeled, ptype) if annotated else (oid, otype)
            if kind != "commit" or not ref.startswith("refs/tags/"):
                continue
            when = tagdate or created
            result.append(
                TagInfo(
                    name=ref[len("refs/tags/") :],
                    commit=commit,
                    annotated=annotated,
                    created=int(when) if when.lstrip("-").isdigit() else 0,
                )
            )
        return result

    def read_blob(self, rev: str, path: str) -> bytes | None:
        """The bytes of `path` as of `rev` (a commit id or any revision; "" for the index), or None."""
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
            cwd=self.root,
            input="".join(f"{o}\n" for o in objects).encode(errors="surrogateescape"),
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
                ["git", "cat-file", "--filters", f"{rev}:{path}"],
                cwd=self.root,
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
        out = self._run("ls-files", "--stage", "-z", "--", *paths, check=False)
        records = []
        for entry in out.split("\x00"):
            meta, _, path = entry.partition("\t")
            fields = meta.split()
            if path and len(fields) == 3 and fields[2] == "0":
                records.append(f"{fields[0]} {fields[1]}\t{path}\x00")
        if records:
            self._run("update-index", "-z", "--index-info", input="".join(records).encode())

    def list_dir(self, rev: str, path: str) -> list[str]:
        """Names of the entries of directory `path` at `rev` (empty if it is absent)."""
        out = self._run(
            "ls-tree", "--name-only", "-z", rev, "--", path.rstrip("/") + "/", check=False
        )
        return [Path(p).name for p in out.split("\x00") if p]

    def tree_entries(self, rev: str, path: str) -> dict[str, str]:
        """File name -> blob id for the files directly under `path` at `rev`."""
        out = self._run("ls-tree", "-z", rev, "--", path.rstrip("/") + "/", check=False)
        entries = {}
        for line in out.split("\x00"):
            if not line:
                continue
            meta, _, name = line.partition("\t")
            _mode, otype, oid = meta.split()
            if otype == "blob":
                entries[Path(name).name] = oid
        return entries

    def hash_files(self, paths: Sequence[Path]) -> list[str]:
        """The blob ids git would give these working-tree files (no object is written).

        As ``git add`` would store them: the line-ending conversion (``core.autocrlf``, ``eol``,
        ``text``) and clean filters of each path's attributes are applied, so a file that
        ``git status`` calls unchanged gets the id of the blob it was committed as.
        """
        if not paths:
            return []
        out = self._run("hash-object", "--", *map(str, paths))
        return out.split()

    def unmerged(self, pathspecs: Sequence[str]) -> set[str]:
        """Paths with merge conflicts in the index (``git status``: unmerged, e.g. "UU")."""
        out = self._run("ls-files", "--unmerged", "-z", "--", *pathspecs, check=False)
        return {entry.partition("\t")[2] for entry in out.split("\x00") if "\t" in entry}

    def skip_worktree(self, pathspecs: Sequence[str]) -> set[str]:
        """Tracked paths outside a sparse checkout (the index's skip-worktree bit, ``git
        ls-files -t``: S): absent from the work tree, yet ``git status`` is clean."""
        out = self._run("ls-files", "-t", "-z", "--", *pathspecs, check=False)
        return {entry[2:] for entry in out.split("\x00") if entry.startswith("S ")}

    def status(self, paths: Sequence[str]) -> list[str]:
        """`git status --porcelain` lines for `paths`, untracked files included."""
        out = self._run("status", "--porcelain", "-z", "--untracked-files=all", "--", *paths)
        return [entry for entry in out.split("\x00") if entry]

    def config_get(self, key: str) -> str | None:
        out = self._run("config", "--get", key, check=False).strip()
        return out or None

    # --- writing ----------------------------------------------------------------------------

    def commit_paths(
        self,
        paths: Sequence[str],
        message: str,
        *,
        tags: Sequence[tuple[str, str]] = (),
        on_prepared: Callable[[str, dict[str, str]], None] | None = None,
    ) -> str:
        """Commit the working-tree state of exactly `paths` on top of HEAD, with annotated tags.

        Other staged changes stay staged and out of the commit: the tree is built in a temporary
        index. HEAD and every tag in `tags` ((name, message) pairs) move in one ref transaction,
        so none of them exists without the others. `on_prepared(commit, {tag: tag object id})`
        is called once the objects exist, just before that transaction (a journal records them:
        only those exact objects mean the commit was published).

        Returns:
            The new commit's id.

        Raises:
            GitError: git failed (no identity, a tag that exists, a full disk); nothing moved.
        """
        import tempfile  # not on the hooks' start-up path

        parent = self.head()
        with tempfile.TemporaryDirectory(prefix="adaptergit-index-", dir=self.git_dir) as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if parent:
                self._run("read-tree", parent, env=env)
            self._run("add", "--all", "--force", "--", *paths, env=env)
            tree = self._run("write-tree", env=env).strip()
        commit_args = ["commit-tree", tree, "-F", "-"]
        if parent:
            commit_args[2:2] = ["-p", parent]
        commit = self._run(*commit_args, input=message.encode()).strip()
        commands = [f"update HEAD {commit} {parent or ZERO_SHA}"]
        tagger = self._run("var", "GIT_COMMITTER_IDENT").strip() if tags else ""
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

    def reset_index(self, rev: str, paths: Sequence[str]) -> None:
        """Make the index entries of `paths` those of `rev` (the work tree is untouched)."""
        self._run("reset", "--quiet", rev, "--", *paths, check=False)

    def _make_tag(self, name: str, commit: str, message: str, tagger: str) -> str:
        """Write an annotated tag object (not yet a ref); return its id."""
        body = f"object {commit}\ntype commit\ntag {name}\ntagger {tagger}\n\n{message.rstrip()}\n"
        return self._run("mktag", input=body.encode()).strip()

    def create_tag(self, name: str, commit: str, message: str, *, when: int | None = None) -> None:
        """Create an annotated tag, failing if it exists; `when` overrides the tagger date (unix s)."""
        tagger = self._run("var", "GIT_COMMITTER_IDENT").strip()
        if when is not None:  # "Name <email> 1700000000 +0000": replace the seconds
            ident, _seconds, zone = tagger.rsplit(" ", 2)
            tagger = f"{ident} {int(when)} {zone}"
        tag_oid = self._make_tag(name, commit, message, tagger)
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
        out = self._run("ls-files", "-z", "--", *paths, check=False)
        return [p for p in out.split("\x00") if p]

    def delete_tag(self, name: str) -> None:
        self._run("update-ref", "-d", f"refs/tags/{name}")

    def set_config(self, key: str, value: str) -> None:
        self._run("config", key, value)

    def stage(self, paths: Sequence[str]) -> None:
        self._run("add", "--", *paths)

    def commit_staged(
        self,
        message: str,
        paths: Sequence[str],
        *,
        on_prepared: Callable[[str, dict[str, str]], None] | None = None,
    ) -> str | None:
        """Commit `paths` as they are in the work tree (a no-op when nothing changed)."""
        if not self.status(list(paths)) and self.head():
            return None
        return self.commit_paths(paths, message, on_prepared=on_prepared)

    # --- sharing ---------------------------------------------------------------------------

    def merged_tags(self, rev: str, pattern: str) -> list[str]:
        """Tags matching `pattern` whose commits are reachable from `rev`."""
        out = self._run("tag", "--list", "--merged", rev, pattern, check=False)
        return out.split()

    def remotes(self) -> list[str]:
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
            cwd=self.root,
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
        """Whether commit `old` is an ancestor of (or is) commit `new`; False for None."""
        if old is None:
            return False
        proc = subprocess.run(
            ["git", "merge-base", "--is-ancestor", old, new], cwd=self.root, capture_output=True
        )
        return proc.returncode == 0

    def commits_between(self, new: str, exclude: Sequence[str]) -> set[str]:
        """Commits reachable from `new` but not from any of `exclude` (revisions or --remotes=X)."""
        args = ["rev-list", new]
        for item in exclude:
            args.append(item if item.startswith("--") else f"^{item}")
        out = self._run(*args, check=False)
        return set(out.split())

    def changed_files(self, old: str, new: str, pathspecs: Sequence[str]) -> list[str]:
        out = self._run(
            "diff", "--name-only", "-z", "--no-renames", old, new, "--", *pathspecs, check=False
        )
        return [p for p in out.split("\x00") if p]

    def staged_files(self) -> list[tuple[str, str, str]]:
        """(status, path, blob id) of files staged for the next commit (added/modified/renamed)."""
        out = self._run(
            "diff", "--cached", "--name-status", "-z", "--no-renames", "--diff-filter=ACMR"
        )
        parts = [p for p in out.split("\x00") if p]
        result = []
        for status, path in zip(parts[::2], parts[1::2], strict=False):
            result.append((status, path, ""))
        return result

    def object_sizes(self, objects: Sequence[str]) -> list[int]:
        """Sizes of objects (e.g. ``:path`` for the staged version) via one cat-file call."""
        if not objects:
            return []
        out = self._run(
            "cat-file", "--batch-check=%(objectsize)", input="\n".join(objects).encode() + b"\n"
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
        for marker, name in (("MERGE_HEAD", "merge"), ("CHERRY_PICK_HEAD", "cherry-pick")):
            if (gd / marker).exists():
                return name
        return None

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
        """``git clone`` `url` into `dest`, tags included, and open the clone."""
        proc = subprocess.run(["git", "clone", "--quiet", str(url), str(dest)], capture_output=True)
        if proc.returncode != 0:
            raise GitError("clone", proc.stderr.decode(errors="replace"))
        return cls(dest)

    def add_remote(self, name: str, url: str) -> None:
        """``git remote add NAME URL``."""
        self._run("remote", "add", name, str(url))

    # --- bulk reads (diff, verify, status, gc) ----------------------------------------------

    def object_ids(self, objects: Sequence[str], kind: str = "blob") -> list[str | None]:
        """Ids of objects named like ``REV:PATH`` (None when absent or not a `kind`), in one call."""
        if not objects:
            return []
        out = self._run(
            "cat-file",
            "--batch-check=%(objectname) %(objecttype)",
            "--buffer",
            input="".join(f"{o}\n" for o in objects).encode(),
        )
        ids: list[str | None] = []
        for line in out.splitlines():
            parts = line.split()
            ids.append(parts[0] if len(parts) == 2 and parts[1] == kind else None)
        return ids

    def ref_tips(self) -> list[tuple[str, str]]:
        """(full ref name, commit) of every branch, remote-tracking branch and tag, and HEAD."""
        out = self._run(
            "for-each-ref",
            "--format=%(refname)%00%(objectname)%00%(*objectname)%00%(objecttype)%00%(*objecttype)",
            "refs/heads",
            "refs/remotes",
            "refs/tags",
        )
        tips = []
        for line in out.splitlines():
            name, oid, peeled, otype, ptype = line.split("\x00")
            commit, kind = (peeled, ptype) if otype == "tag" else (oid, otype)
            if kind == "commit":
                tips.append((name, commit))
        head = self.head()
        if head:
            tips.append(("HEAD", head))
        return tips

    def files_in_tree(self, rev: str, predicate: Any) -> dict[str, str]:
        """Path -> blob id of every file at `rev` whose path satisfies `predicate`."""
        out = self._run("ls-tree", "-r", "-z", "--full-tree", rev)
        found = {}
        for entry in out.split("\x00"):
            if not entry:
                continue
            meta, _, path = entry.partition("\t")
            parts = meta.split()
            if len(parts) == 3 and parts[1] == "blob" and predicate(path):
                found[path] = parts[2]
        return found

    def working_files(self, predicate: Any) -> list[str]:
        """Tracked and untracked (not ignored) work-tree paths satisfying `predicate`."""
        out = self._run("ls-files", "-z", "--cached", "--others", "--exclude-standard")
        return sorted({p for p in out.split("\x00") if p and predicate(p)})

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
            *pathspecs,
        )
