"""The ``adaptergit`` command: parse arguments, call one library function, render the result."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from adaptergit import errors
from adaptergit.layout import DEFAULT_REMOTE
from adaptergit.text import printable

if TYPE_CHECKING:
    from adaptergit.repo import Repo

# Exit statuses of errors are the error classes' own (`AdapterGitError.exit_code`).
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_UNEXPECTED = 255


def _open_repo(ctx: click.Context) -> Repo:
    from adaptergit.repo import Repo  # the operations, loaded only for commands that need them

    return Repo(ctx.obj["path"])


def _echo_json(data: Any) -> None:
    from adaptergit.render import to_json

    click.echo(to_json(data))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "path",
    default=".",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run as if started in this directory (like git -C).",
)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(package_name="adaptergit", prog_name="adaptergit")
@click.pass_context
def cli(ctx: click.Context, path: Path, verbose: bool) -> None:
    """Version control for fine-tuned PEFT adapters.

    Each version is a git commit plus a GTO tag (NAME@vX.Y.Z) holding the adapter's config,
    metrics and manifest; the weights are tracked by DVC.
    """
    ctx.ensure_object(dict)
    ctx.obj["path"] = path
    ctx.obj["verbose"] = verbose


# `-o KEY=VALUE` of `init --remote` and `remote add`, as `dvc remote modify` takes them.
_remote_options = click.option(
    "--option",
    "-o",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A DVC remote option (endpointurl, region, ...); secrets go to .dvc/config.local only.",
)


@cli.command()
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--remote",
    "remote_url",
    metavar="URL",
    help="A DVC remote (directory, s3://, ssh://) to make the default in the first commit, so "
    "that plain `dvc pull` reaches every version.",
)
@click.option(
    "--remote-name", default=DEFAULT_REMOTE, show_default=True, help="The name of that remote."
)
@_remote_options
def init(path: Path, remote_url: str | None, remote_name: str, options: tuple[str, ...]) -> None:
    """Make PATH an adapter registry: git repository, DVC, configuration (safe to run twice).
    \f
    Args:
        path: PATH, the folder (created if absent).
        remote_url: ``--remote``, a DVC remote URL made the default in the set-up commit.
        remote_name: ``--remote-name``, that remote's name.
        options: ``--option KEY=VALUE``, that remote's DVC options.

    Raises:
        click.BadParameter: ``--option`` without ``--remote``, or not KEY=VALUE.
    """
    if options and remote_url is None:
        raise click.BadParameter("needs --remote URL", param_hint="--option")
    from adaptergit.ops import hooks as hooks_mod
    from adaptergit.ops.init import is_registry
    from adaptergit.repo import Repo

    existed = is_registry(path)
    with Repo.init(
        path, remote=remote_url, remote_name=remote_name, remote_options=_options(options)
    ) as repo:
        if existed:
            click.echo(
                f"Reinitialised existing adaptergit registry in {repo.root} "
                "(hooks and diff driver checked)"
            )
        else:
            inside = f", a folder of the git repository {repo.git.top}" if repo.git.prefix else ""
            click.echo(f"Initialised adaptergit registry in {repo.root}{inside}")
        for line in hooks_mod.notes(hooks_mod.status(repo.git)):
            click.echo(line)
        if remote_url is not None:  # as configured: a password in the URL is not echoed
            url = next((r.url for r in repo.remote_list() if r.name == remote_name), "")
            click.echo(f"DVC remote {remote_name} ({printable(url, one_line=True)}) is the default")


@cli.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--name", "-n", required=True, help="Adapter name: a-z, 0-9, '-' and '_'.")
@click.option("-m", "--message", default="", help="What this version is.")
@click.option(
    "--metrics",
    "metrics_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON file of metrics (repeatable).",
)
@click.option(
    "--metric", "metric_args", multiple=True, metavar="KEY=VALUE", help="One metric (repeatable)."
)
@click.option("--base-model", help="Base model directory, or a hub id found in the local HF cache.")
@click.option(
    "--adapter",
    "adapter_name",
    metavar="ADAPTER",
    help="Which PEFT adapter of a folder holding several (default: the folder's own; others: "
    "their sub-folder's name).",
)
@click.option("--version", "version", metavar="vX.Y.Z", help="Version to record (default: bump).")
@click.option(
    "--bump",
    type=click.Choice(["major", "minor", "patch"]),
    default=None,
    help="Which part of the latest version to bump (default: patch).",
)
@click.option(
    "--branch",
    metavar="BRANCH",
    help="On a detached HEAD (CI), record the version on BRANCH (created or fast-forwarded).",
)
@click.pass_context
def commit(
    ctx: click.Context,
    src: Path,
    name: str,
    message: str,
    metrics_files: tuple[Path, ...],
    metric_args: tuple[str, ...],
    base_model: str | None,
    adapter_name: str | None,
    version: str | None,
    bump: str | None,
    branch: str | None,
) -> None:
    """Record the adapter in SRC (as PEFT's save_pretrained writes it) as a new version.
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        src: SRC, the adapter folder.
        name: ``--name``, the registry name.
        message: ``-m``, the version's message.
        metrics_files: ``--metrics``, JSON files of metrics, merged in order.
        metric_args: ``--metric KEY=VALUE`` pairs, applied over the files.
        base_model: ``--base-model``, a folder or a Hub id in the local Hugging Face cache.
        adapter_name: ``--adapter``, which PEFT adapter of a folder holding several.
        version: ``--version vX.Y.Z``.
        bump: ``--bump`` (exclusive with `version`).

    Raises:
        click.UsageError: both ``--version`` and ``--bump``.
    """
    from adaptergit import metrics as metrics_mod
    from adaptergit.render import commit_line

    if version and bump:
        raise click.UsageError("give either --version or --bump, not both")
    merged = metrics_mod.merge(
        (metrics_mod.load_file(p) for p in metrics_files),
        (metrics_mod.parse_assignment(a) for a in metric_args),
    )
    repo = _open_repo(ctx)
    result = repo.commit(
        src,
        name=name,
        metrics=merged,
        message=message,
        base_model=base_model,
        adapter_name=adapter_name,
        version=version,
        bump=bump or "patch",
        branch=branch,
    )
    click.echo(commit_line(result))


@cli.command()
@click.argument("name", required=False)
@click.option("-n", "--max-count", "n", type=click.IntRange(min=0), help="Show at most N versions.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def log(ctx: click.Context, name: str | None, n: int | None, as_json: bool) -> None:
    """List versions newest first (all adapters, or NAME's), reading only git objects.
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        name: NAME, one adapter (default: all).
        n: ``-n``, at most this many versions.
        as_json: ``--json``: versions, unmanaged and withdrawn registrations as one document.
    """
    from adaptergit.render import log_table

    repo = _open_repo(ctx)
    versions = repo.log(name, n=n)
    unmanaged = repo.unmanaged(name)
    withdrawn = repo.withdrawn(name)
    if as_json:
        _echo_json(
            {
                "versions": [v.to_dict() for v in versions],
                "unmanaged": [{"ref": r.tag, "commit": r.commit} for r in unmanaged],
                "withdrawn": [
                    {"ref": r.tag, "commit": r.commit, "kind": w.kind, "by": w.tag}
                    for r, w in withdrawn
                ],
            }
        )
        return
    if not versions and not unmanaged and not withdrawn:
        held = [n for n in repo.names() if name is None or n == name]
        if held:  # a shallow or --no-tags clone: the folders are there, the tags are not
            click.echo(
                f"no version tags in this clone, though HEAD holds {', '.join(held)}: fetch them "
                "with `git fetch --tags` (clones made with --depth or --no-tags lack them)",
                err=True,
            )
            return
        click.echo("no versions yet: record one with `adaptergit commit DIR --name NAME`", err=True)
        return
    for line in log_table(versions, width=_width()):
        click.echo(line)
    if unmanaged:
        refs = ", ".join(r.tag for r in unmanaged)
        click.echo(f"registered with GTO outside adaptergit (no manifest): {refs}")
    if withdrawn:
        refs = ", ".join(f"{r.tag} ({w.kind})" for r, w in withdrawn)
        click.echo(f"withdrawn with GTO, not listed: {refs}")


@cli.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show everything recorded for one version (REF: NAME, NAME@vX.Y.Z, NAME@<rev>, NAME#STAGE).
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        ref: REF.
        as_json: ``--json``: `Version.to_dict` as one document.
    """
    from adaptergit.render import show_lines

    version = _open_repo(ctx).show(ref)
    if as_json:
        _echo_json(version.to_dict())
        return
    for line in show_lines(version):
        click.echo(line)


@cli.command()
@click.argument("ref")
@click.option(
    "--to",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write a folder that PeftModel.from_pretrained loads, touching nothing else.",
)
@click.option("--force", "-f", is_flag=True, help="Overwrite changes that no version records.")
@click.pass_context
def checkout(ctx: click.Context, ref: str, to: Path | None, force: bool) -> None:
    """Restore a version into adapters/NAME (HEAD does not move), or into --to DIR.
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        ref: REF, the version.
        to: ``--to``, a folder to write instead of ``adapters/NAME``.
        force: ``--force``, overwrite unrecorded changes (or a non-empty ``--to`` folder).
    """
    repo = _open_repo(ctx)
    version = repo.resolve(ref)
    folder = repo.checkout(version.tag or f"{version.name}@{version.commit}", to=to, force=force)
    click.echo(f"{version.ref} -> {folder}")


@cli.group()
def remote() -> None:
    """Manage DVC remotes (directory, ssh://, s3://, ...) that hold the weights."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--default", "-d", "default", is_flag=True, help="Make it the default remote.")
@_remote_options
@click.pass_context
def remote_add(
    ctx: click.Context, name: str, url: str, default: bool, options: tuple[str, ...]
) -> None:
    """Add DVC remote NAME at URL, and commit .dvc/config (credentials stay uncommitted).
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        name: NAME.
        url: URL.
        default: ``--default``, make it the default remote.
        options: ``--option KEY=VALUE`` pairs.

    Raises:
        click.BadParameter: an option that is not KEY=VALUE.
    """
    added = _open_repo(ctx).remote_add(name, url, default=default, options=_options(options))
    click.echo(
        f"added DVC remote {added.name} ({added.url})" + (" as the default" if default else "")
    )
    if added.older:
        shown = ", ".join(added.older[:3]) + (
            f" (+{len(added.older) - 3})" if len(added.older) > 3 else ""
        )
        their = "its commit does" if len(added.older) == 1 else "their commits do"
        click.echo(
            f"note: {shown} came before this remote, so {their} not name it: "
            f"adaptergit push/pull reach them; plain DVC does after `{added.local_recipe}` "
            "in each clone (`adaptergit init --remote URL` avoids this in a new registry)"
        )


def _options(options: tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` options as a dict."""
    parsed = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{option!r} is not KEY=VALUE", param_hint="--option")
        parsed[key.strip()] = value
    return parsed


@remote.command("remove")
@click.argument("name")
@click.pass_context
def remote_remove(ctx: click.Context, name: str) -> None:
    """Remove DVC remote NAME and commit .dvc/config (the weights on it stay there).
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        name: NAME.
    """
    _open_repo(ctx).remote_remove(name)
    click.echo(f"removed DVC remote {name}")


@remote.command("modify")
@click.argument("name")
@click.argument("option")
@click.argument("value", required=False)
@click.option("--unset", is_flag=True, help="Remove OPTION instead of setting it.")
@click.pass_context
def remote_modify(
    ctx: click.Context, name: str, option: str, value: str | None, unset: bool
) -> None:
    """Set OPTION of DVC remote NAME to VALUE (url, endpointurl, region, ...), as `dvc remote
    modify` does, and commit .dvc/config; secrets go to .dvc/config.local only."""
    if unset == (value is not None):
        raise click.UsageError("give VALUE, or --unset without a VALUE")
    repo = _open_repo(ctx)
    if unset:
        repo.remote_modify(name, {}, unset=[option])
        click.echo(f"unset {option} of DVC remote {name}")
    else:
        repo.remote_modify(name, {option: value or ""})
        click.echo(f"set {option} of DVC remote {name}")


@remote.command("default")
@click.argument("name")
@click.pass_context
def remote_default(ctx: click.Context, name: str) -> None:
    """Make DVC remote NAME the default one and commit .dvc/config.
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        name: NAME.
    """
    _open_repo(ctx).remote_modify(name, {}, default=True)
    click.echo(f"DVC remote {name} is the default")


@remote.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def remote_list(ctx: click.Context, as_json: bool) -> None:
    """List the DVC remotes; the default is marked with *.
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        as_json: ``--json``: ``{"remotes": [{name, url, default}, ...]}``.
    """
    remotes = _open_repo(ctx).remote_list()
    if as_json:
        _echo_json(
            {"remotes": [{"name": r.name, "url": r.url, "default": r.default} for r in remotes]}
        )
        return
    if not remotes:
        click.echo(
            "no DVC remotes; add one with `adaptergit remote add NAME URL --default`", err=True
        )
    for r in remotes:  # names and URLs come from a .dvc/config anyone may have committed
        name, url = printable(r.name, one_line=True), printable(r.url, one_line=True)
        click.echo(f"{'*' if r.default else ' '} {name}\t{url}")


@cli.command()
@click.argument("refs", nargs=-1)
@click.option("--remote", "-r", help="DVC remote (default: the configured default).")
@click.option("--git-remote", help="Git remote (default: the branch's upstream, else origin).")
@click.pass_context
def push(
    ctx: click.Context, refs: tuple[str, ...], remote: str | None, git_remote: str | None
) -> None:
    """Upload the versions' weights (default: all reachable from HEAD), then push git refs.
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        refs: REFS, the versions (default: all reachable from HEAD, with the branch).
        remote: ``--remote``, the DVC remote.
        git_remote: ``--git-remote``, the git remote.
    """
    bar = _Bar("push")
    try:
        result = _open_repo(ctx).push(refs, remote=remote, git_remote=git_remote, progress=bar)
    finally:
        bar.close()
    if result.uploaded:
        click.echo(
            f"weights: uploaded {', '.join(result.uploaded)} to DVC remote "
            f"{printable(result.remote, one_line=True)}"
        )
    elif not result.versions:
        click.echo("weights: nothing to upload (no unpublished version on this branch)")
    else:
        click.echo(
            f"weights: uploaded nothing, all {len(result.versions)} version(s) are on DVC "
            f"remote {printable(result.remote, one_line=True)} already"
        )
    for old, new in result.renumbered:
        click.echo(f"renumbered {old} -> {new} (past the versions the remote holds)")
    for old, new in result.restaged:
        click.echo(f"stage tag {old} -> {new} (after the stage tags another clone published)")
    if result.git_remote is None:
        click.echo("git: no git remote configured; refs were not pushed")
    elif not result.git_updated:
        click.echo(f"git: nothing to push ({result.git_remote} is up to date)")
    else:
        same = len(result.git_refs) - len(result.git_updated)
        click.echo(
            f"git: pushed {len(result.git_updated)} ref(s) to "
            f"{printable(result.git_remote, one_line=True)}"
            + (f" ({same} already there)" if same else "")
        )


def _fetch_command(
    ctx: click.Context, refs: tuple[str, ...], remote: str | None, checkout: bool, force: bool
) -> None:
    repo = _open_repo(ctx)
    bar = _Bar("fetch")
    try:
        if checkout:
            result = repo.pull(refs, remote=remote, force=force, progress=bar)
        else:
            result = repo.fetch(refs, remote=remote, progress=bar)
    finally:
        bar.close()
    if not result.versions:
        click.echo("nothing to fetch: no adapter is checked out", err=True)
        return
    fetched = ", ".join(result.fetched) if result.fetched else "nothing (all in the cache already)"
    click.echo(f"fetched {fetched}")
    if checkout:
        click.echo("checked out " + ", ".join(result.versions))


@cli.command()
@click.argument("refs", nargs=-1)
@click.option("--remote", "-r", help="DVC remote (default: the configured default).")
@click.option("--force", "-f", is_flag=True, help="Overwrite changes that no version records.")
@click.pass_context
def pull(ctx: click.Context, refs: tuple[str, ...], remote: str | None, force: bool) -> None:
    """Fetch the versions' weights and check them out into adapters/NAME.

    Without REFS, as `dvc pull`: the weights of every adapter checked out in the work tree.
    """
    _fetch_command(ctx, refs, remote, checkout=True, force=force)


@cli.command()
@click.argument("refs", nargs=-1)
@click.option("--remote", "-r", help="DVC remote (default: the configured default).")
@click.pass_context
def fetch(ctx: click.Context, refs: tuple[str, ...], remote: str | None) -> None:
    """Fetch the versions' weights into the local DVC cache only (without REFS: those checked
    out in the work tree)."""
    _fetch_command(ctx, refs, remote, checkout=False, force=False)


@cli.group()
def hooks() -> None:
    """Install, remove or inspect the git hooks that keep git and DVC in step."""


def _print_hooks(states: list[Any]) -> None:
    for state in states:
        click.echo(f"{state.name:14} {state.summary}")


@hooks.command("install")
@click.pass_context
def hooks_install(ctx: click.Context) -> None:
    """Install pre-commit, post-checkout, post-merge and pre-push beside the hooks already there
    (chained, or added to husky, lefthook or the pre-commit framework)."""
    from adaptergit.gitrepo import GitRepo
    from adaptergit.ops import hooks as hooks_mod

    states = hooks_mod.install(GitRepo(ctx.obj["path"]))
    _print_hooks(states)
    for line in hooks_mod.notes(states):
        click.echo(line)


@hooks.command("uninstall")
@click.pass_context
def hooks_uninstall(ctx: click.Context) -> None:
    """Remove adaptergit's hooks and put back every file as it was before, byte for byte."""
    from adaptergit.gitrepo import GitRepo
    from adaptergit.ops import hooks as hooks_mod

    _print_hooks(hooks_mod.uninstall(GitRepo(ctx.obj["path"])))


@hooks.command("status")
@click.pass_context
def hooks_status(ctx: click.Context) -> None:
    """Show which adaptergit hooks are installed."""
    from adaptergit.gitrepo import GitRepo
    from adaptergit.ops import hooks as hooks_mod

    _print_hooks(hooks_mod.status(GitRepo(ctx.obj["path"])))


@cli.command(hidden=True, context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def hook(ctx: click.Context, name: str, args: tuple[str, ...]) -> None:
    """Run hook NAME as git calls it (used by the installed hook scripts).
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        name: NAME, the hook (``pre-commit``, ``post-checkout``, ``post-merge``, ``pre-push``).
        args: git's arguments to the hook, passed on unparsed.
    """
    from adaptergit.ops import hooks as hooks_mod

    ctx.exit(hooks_mod.run(name, args, cwd=ctx.obj["path"]))


# --- compare and maintain ---------------------------------------------------------------------

PROGRESS_MIN_BYTES = 100_000_000  # a bar for work long enough to wait for, and only on a terminal


def _color() -> bool:
    import os

    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _width() -> int | None:
    """Columns for tables: COLUMNS when set, else the terminal's width, else None (a pipe or a
    file: nothing is cut)."""
    import os
    import shutil

    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if not sys.stdout.isatty():
        return None
    return shutil.get_terminal_size((80, 24)).columns


class _Bar:
    """A progress callback (done, total bytes) that draws a bar on stderr for large work."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.total = 0
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if total != self.total:
            self.close()
            self.total = total
            if total >= PROGRESS_MIN_BYTES and sys.stderr.isatty():
                self.bar = click.progressbar(length=total, label=self.label, file=sys.stderr)
                self.bar.__enter__()
        if self.bar is not None:
            self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
        self.bar, self.done = None, 0


@cli.command()
@click.argument("ref_a")
@click.argument("ref_b")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def diff(ctx: click.Context, ref_a: str, ref_b: str, as_json: bool) -> None:
    """Compare two versions: config fields, metrics, base model, and the weights per module.

    For LoRA pairs: relative change and cosine similarity of the effective updates B @ A * scaling.
    """
    from adaptergit.render import diff_lines

    result = _open_repo(ctx).diff(ref_a, ref_b)
    if as_json:
        _echo_json(result.to_dict())
        return
    for line in diff_lines(result, width=_width(), color=_color()):
        click.echo(line)


@cli.command()
@click.argument("ref", required=False)
@click.option("--all", "all_versions", is_flag=True, help="Check every registered version.")
@click.option(
    "--remote",
    is_flag=True,
    help="Also check the default DVC remote holds the weights (of REF, else of HEAD's versions).",
)
@click.option(
    "--deep",
    is_flag=True,
    help="With --remote: also download and re-hash the remote's copies.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option(
    "--base-model",
    type=click.Path(path_type=Path),
    help="Instead, check that REF fits this base model folder: LoRA shapes and fingerprint.",
)
@click.option(
    "--allow-mismatch",
    is_flag=True,
    help="With --base-model: a base with other weights (shapes fit) warns instead of failing.",
)
@click.pass_context
def verify(
    ctx: click.Context,
    ref: str | None,
    all_versions: bool,
    remote: bool,
    deep: bool,
    as_json: bool,
    base_model: Path | None,
    allow_mismatch: bool,
) -> None:
    """Re-hash weights in the work tree and the DVC cache against the manifests' sha256.

    Checks REF, every version with --all, or by default the versions checked out. One line per
    problem; the exit status is 1 when there is any. With --base-model, checks instead that
    REF loads on that base model, as adaptergit.load does.
    """
    if base_model is not None:
        _verify_base_model(ctx, ref, base_model, allow_mismatch, as_json)
        return
    if ref and all_versions:
        raise click.UsageError("give either REF or --all, not both")
    if deep and not remote:
        raise click.UsageError("--deep re-hashes the remote's copies: give --remote too")
    bar = _Bar("verifying")
    try:
        problems = _open_repo(ctx).verify(
            ref, all=all_versions, remote=remote, deep=deep, progress=bar
        )
    finally:
        bar.close()
    if as_json:
        _echo_json({"ok": not problems, "problems": [p.to_dict() for p in problems]})
    else:
        for problem in problems:
            click.echo(printable(problem.line, one_line=True))
        if not problems:
            click.echo(
                "ok: weights match their manifests" + (" and are on the remote" if remote else "")
            )
    if problems:
        ctx.exit(1)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.option("--no-remote", is_flag=True, help="Do not ask the DVC remote what it holds.")
@click.pass_context
def status(ctx: click.Context, as_json: bool, no_remote: bool) -> None:
    """Show adapters changed since their latest version, weights not pushed or lost, missing hooks.
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        as_json: ``--json``: `StatusReport.to_dict` as one document.
        no_remote: ``--no-remote``: do not ask the DVC remote what it holds (offline).
    """
    from adaptergit.render import status_lines

    bar = _Bar("hashing")
    try:
        report = _open_repo(ctx).status(progress=bar, remote=not no_remote)
    finally:
        bar.close()
    if as_json:
        _echo_json(report.to_dict())
        return
    for line in status_lines(report, color=_color()):
        click.echo(line)


@cli.command()
@click.option(
    "--keep-last",
    type=click.IntRange(min=1),
    metavar="N",
    help="Keep only the N highest versions of each adapter.",
)
@click.option(
    "--keep-stages/--no-keep-stages",
    default=True,
    show_default=True,
    help="Keep versions that hold a stage.",
)
@click.option(
    "--remote",
    is_flag=True,
    help="Also delete them from the default DVC remote (reads the git remotes' refs first).",
)
@click.option(
    "--dry-run", "-n", is_flag=True, help="Only list what would be removed, and how many bytes."
)
@click.option(
    "--force", is_flag=True, help="Also delete weights that no DVC remote holds (the only copy)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def gc(
    ctx: click.Context,
    keep_last: int | None,
    keep_stages: bool,
    remote: bool,
    dry_run: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Remove weights that no kept version needs from the DVC cache (and, with --remote, the remote).

    Always kept: each adapter's latest version, staged versions, whatever any branch, HEAD or other
    tag references, and the work tree. Without --keep-last every registered version is kept too.
    """
    from adaptergit.render import gc_lines

    report = _open_repo(ctx).gc(
        keep_last=keep_last, keep_stages=keep_stages, remote=remote, dry_run=dry_run, force=force
    )
    if as_json:
        _echo_json(report.to_dict())
        return
    for line in gc_lines(report):
        click.echo(line)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def recover(ctx: click.Context, as_json: bool) -> None:
    """Finish or undo what an interrupted command left, and partial uploads on DVC remotes.

    Every writing command does the local part first on its own; this reports it.
    """
    report = _open_repo(ctx).recover()
    if as_json:
        _echo_json(report.to_dict())
        return
    if report.nothing:
        click.echo("nothing to recover")
    words = {
        "rolled-back": "rolled back an interrupted write to",
        "completed": "kept a commit that was published, in",
        "removed-temporaries": "removed temporary files of",
    }
    for item in report.recovered:
        what = printable(", ".join(item.paths) if item.kind != "removed-temporaries" else "")
        click.echo(
            f"{words.get(item.kind, item.kind)} {printable(item.target)}"
            + (f" ({what})" if what else "")
        )
    for path in report.remote_removed:
        click.echo(f"removed a partial upload from the DVC remote: {printable(path)}")
    for error in report.remote_errors:
        click.echo(f"could not clean up a DVC remote: {printable(error, one_line=True)}", err=True)
    if report.remote_errors:
        ctx.exit(1)


@cli.command(hidden=True)
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def textconv(ctx: click.Context, path: Path) -> None:
    """Print a manifest or weights pointer as git diff shows it (the diff driver's textconv).
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        path: the file git hands the driver (a temporary copy of the blob).
    """
    from adaptergit.gitrepo import GitRepo
    from adaptergit.ops.diffdriver import textconv_file

    try:
        git = GitRepo(ctx.obj["path"])
    except errors.AdapterGitError:
        git = None
    for line in textconv_file(path, git):
        click.echo(line)


@cli.command("merge-dvc-yaml", hidden=True)
@click.argument("base", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("ours", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("theirs", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def merge_dvc_yaml(ctx: click.Context, base: Path, ours: Path, theirs: Path) -> None:
    """Merge three versions of dvc.yaml into OURS (the git merge driver `init` registers).
    \f
    Args:
        ctx: click's context; the exit status is 0 for a clean merge, 1 for conflicts.
        base: BASE, the common ancestor's dvc.yaml (git's ``%O``).
        ours: OURS, this side's, overwritten with the result (git's ``%A``).
        theirs: THEIRS, the other side's (git's ``%B``).
    """
    from adaptergit.ops.init import merge_dvc_yaml as merge

    ctx.exit(0 if merge(base, ours, theirs) else 1)


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    click.echo(f"adaptergit: warning: {printable(str(message), one_line=True)}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning errors into one line on stderr and an exit status."""
    verbose = any(a in ("-v", "--verbose") for a in (argv if argv is not None else sys.argv[1:]))
    warnings.showwarning = _show_warning
    try:
        # Without standalone mode click returns ctx.exit()'s status instead of exiting.
        status = cli.main(args=argv, prog_name="adaptergit", standalone_mode=False)
    except errors.AdapterGitError as exc:
        if verbose:
            raise
        # Messages quote names, paths and values from registries others wrote: escaped.
        click.echo(f"adaptergit: error: {printable(str(exc), one_line=True)}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("adaptergit: interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("adaptergit: interrupted", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # a file that vanished, a full disk: one line naming the file
        if verbose:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        reason = exc.strerror or str(exc) or type(exc).__name__
        click.echo(f"adaptergit: error: {printable(reason + where, one_line=True)}", err=True)
        return 1
    except Exception as exc:
        if verbose:
            raise
        click.echo(
            f"adaptergit: unexpected error: {type(exc).__name__}: {exc} (rerun with --verbose for the traceback)",
            err=True,
        )
        return EXIT_UNEXPECTED
    return status if isinstance(status, int) else 0


def run() -> None:
    """Console-script entry point: exit with `main`'s status for ``sys.argv``.

    When the command leaves nothing for the interpreter's exit to do (`_nothing_left_at_exit`),
    it exits at once after flushing stdout and stderr (``os._exit``), skipping the teardown of
    every module and object: 15-20 ms of a 0.3 s commit. Otherwise it exits as usual.
    """
    status = main()
    if _nothing_left_at_exit():
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a closed pipe: let the usual exit report it
            sys.exit(status)
        os._exit(status)
    sys.exit(status)


def _nothing_left_at_exit() -> bool:
    """Whether a normal exit would only tear the interpreter down: no `atexit` callbacks (logging
    and DVC register theirs), no thread that exit would wait for (a non-daemon thread still
    running, or a `concurrent.futures` pool's shutdown), no DVC repository loaded (its caches
    close at exit). Where CPython's own records are not there, assume something is left."""
    import atexit

    callbacks = getattr(atexit, "_ncallbacks", None)
    if callbacks is None or callbacks() != 0 or "dvc" in sys.modules:
        return False
    threading = sys.modules.get("threading")
    if threading is None:
        return True
    if getattr(threading, "_threading_atexits", ["unknown"]):
        return False
    main = threading.main_thread()
    return all(t is main or t.daemon for t in threading.enumerate())


# --- base models, stages, the demo --------------------------------------------------------------


def _verify_base_model(
    ctx: click.Context, ref: str | None, base_model: Path, allow_mismatch: bool, as_json: bool
) -> None:
    """`verify REF --base-model PATH`: the check `adaptergit.load` makes, without loading."""
    from adaptergit.loading import check_base

    if not ref:
        raise click.UsageError("--base-model needs REF: the version to check")
    check = check_base(ref, base_model, _open_repo(ctx), allow_base_mismatch=allow_mismatch)
    if as_json:
        _echo_json(check.to_dict())
        return
    actual = check.actual.short if check.actual is not None else "-"
    outcome = {
        "exact": f"the base model matches exactly (content {actual})",
        "weights-differ": f"same tensors, other weights ({actual}); allowed by --allow-mismatch",
        "structure-differs": f"other tensors whose shapes fit ({actual}); allowed by --allow-mismatch",
        "unrecorded": "the version recorded no base fingerprint; LoRA shapes fit",
    }.get(check.status, check.status)
    built = f" (as {check.model_class})" if check.model_class else ""
    click.echo(f"{check.ref}: {outcome}; {check.modules} adapter modules fit {check.base}{built}")
    if check.resize_embeddings is not None:
        click.echo(
            f"{check.ref}: the base's token embeddings must be resized to "
            f"{check.resize_embeddings} (the version carries a resized vocabulary); "
            "adaptergit.load does it, PeftModel.from_pretrained needs "
            f"model.resize_token_embeddings({check.resize_embeddings}) first"
        )


@cli.command()
@click.argument("ref")
@click.option("--stage", "-s", required=True, help="Stage to assign, e.g. prod or best.")
@click.option("-m", "--message", default="", help="Tag message (default: GTO's).")
@click.pass_context
def assign(ctx: click.Context, ref: str, stage: str, message: str) -> None:
    """Assign a stage to the version REF names, with a GTO tag NAME#STAGE#N (as `gto assign`).
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        ref: REF, the version.
        stage: ``--stage``.
        message: ``-m``, the tag's message (default: GTO's).
    """
    event = _open_repo(ctx).assign(ref, stage, message=message)
    click.echo(f"assigned #{event.stage} to {event.name}@{event.version} (tag {event.tag})")


@cli.command()
@click.argument("name")
@click.option("--stage", "-s", required=True, help="Stage to take away.")
@click.option("-m", "--message", default="", help="Tag message (default: GTO's).")
@click.pass_context
def unassign(ctx: click.Context, name: str, stage: str, message: str) -> None:
    """Take a stage away from adapter NAME, with GTO tags NAME#STAGE!#N (as `gto unassign`).
    \f
    Args:
        ctx: click's context; ``ctx.obj`` holds ``-C``'s path and ``--verbose``.
        name: NAME, the adapter.
        stage: ``--stage``.
        message: ``-m``, the tags' message (default: GTO's).
    """
    for event in _open_repo(ctx).unassign(name, stage, message=message):
        click.echo(f"unassigned #{event.stage} from {event.name}@{event.version} (tag {event.tag})")


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
def demo(directory: Path | None) -> None:
    """Run the whole workflow on a tiny built-in model, nothing to download, in under a minute.

    Trains a LoRA with the Trainer callback, versions three epochs, marks the best, pushes to a
    directory remote, clones the registry elsewhere, pulls the first version and loads it with
    PEFT. DIR defaults to a new temporary folder.
    """
    from adaptergit.demo import run_demo

    result = run_demo(directory, echo=click.echo)
    click.echo(f"\ndone in {result.seconds:.1f} s; everything is in {result.directory}")
