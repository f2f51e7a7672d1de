"""The ``adaptergit`` command: parse arguments, call one library function, render the result."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import click

from adaptergit import errors

# One place maps error classes to exit statuses; everything else exits 1.
EXIT_CODES: dict[type[errors.AdapterGitError], int] = {
    errors.NothingToCommit: 1,
    errors.InvalidInput: 2,
    errors.RepositoryBusy: 75,  # EX_TEMPFAIL: try again later
    errors.IntegrityError: 3,
}
EXIT_INTERRUPTED = 130
EXIT_UNEXPECTED = 255


def exit_code_for(exc: errors.AdapterGitError) -> int:
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


def _open_repo(ctx: click.Context) -> Any:
    from adaptergit.repo import Repo

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


@cli.command()
@click.argument("path", default=".", type=click.Path(file_okay=False, path_type=Path))
def init(path: Path) -> None:
    """Make PATH an adapter registry: git repository, DVC, configuration (safe to run twice)."""
    from adaptergit.repo import Repo

    repo = Repo.init(path)
    click.echo(f"Initialised adaptergit registry in {repo.root}")


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
@click.option("--metric", "metric_args", multiple=True, metavar="KEY=VALUE", help="One metric (repeatable).")
@click.option("--base-model", help="Base model directory, or a hub id found in the local HF cache.")
@click.option("--version", "version", metavar="vX.Y.Z", help="Version to record (default: bump).")
@click.option(
    "--bump",
    type=click.Choice(["major", "minor", "patch"]),
    default=None,
    help="Which part of the latest version to bump (default: patch).",
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
    version: str | None,
    bump: str | None,
) -> None:
    """Record the adapter in SRC (as PEFT's save_pretrained writes it) as a new version."""
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
        version=version,
        bump=bump or "patch",
    )
    click.echo(commit_line(result))


@cli.command()
@click.argument("name", required=False)
@click.option("-n", "--max-count", "n", type=click.IntRange(min=0), help="Show at most N versions.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def log(ctx: click.Context, name: str | None, n: int | None, as_json: bool) -> None:
    """List versions newest first (all adapters, or NAME's), reading only git objects."""
    from adaptergit.render import log_table

    versions = _open_repo(ctx).log(name, n=n)
    if as_json:
        _echo_json({"versions": [v.to_dict() for v in versions]})
        return
    if not versions:
        click.echo("no versions yet: record one with `adaptergit commit DIR --name NAME`", err=True)
        return
    for line in log_table(versions):
        click.echo(line)


@cli.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show everything recorded for one version (REF: NAME, NAME@vX.Y.Z, NAME@<rev>, NAME#STAGE)."""
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
    """Restore a version into adapters/NAME (HEAD does not move), or into --to DIR."""
    repo = _open_repo(ctx)
    folder = repo.checkout(ref, to=to, force=force)
    version = repo.resolve(ref)
    click.echo(f"{version.ref} -> {folder}")


@cli.group()
def remote() -> None:
    """Manage DVC remotes (directory, ssh://, s3://, ...) that hold the weights."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--default", "-d", "default", is_flag=True, help="Make it the default remote.")
@click.option(
    "--option",
    "-o",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="A DVC remote option (endpointurl, region, ...); secrets go to .dvc/config.local only.",
)
@click.pass_context
def remote_add(ctx: click.Context, name: str, url: str, default: bool, options: tuple[str, ...]) -> None:
    """Add DVC remote NAME at URL, and commit .dvc/config (credentials stay uncommitted)."""
    parsed = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{option!r} is not KEY=VALUE", param_hint="--option")
        parsed[key.strip()] = value
    _open_repo(ctx).remote_add(name, url, default=default, options=parsed)
    click.echo(f"added DVC remote {name} ({url})" + (" as the default" if default else ""))


@remote.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_context
def remote_list(ctx: click.Context, as_json: bool) -> None:
    """List the DVC remotes; the default is marked with *."""
    remotes = _open_repo(ctx).remotes.configured()
    if as_json:
        _echo_json({"remotes": [{"name": r.name, "url": r.url, "default": r.default} for r in remotes]})
        return
    if not remotes:
        click.echo("no DVC remotes; add one with `adaptergit remote add NAME URL --default`", err=True)
    for r in remotes:
        click.echo(f"{'*' if r.default else ' '} {r.name}\t{r.url}")


@cli.command()
@click.argument("refs", nargs=-1)
@click.option("--remote", "-r", help="DVC remote (default: the configured default).")
@click.option("--git-remote", help="Git remote (default: the branch's upstream, else origin).")
@click.pass_context
def push(ctx: click.Context, refs: tuple[str, ...], remote: str | None, git_remote: str | None) -> None:
    """Upload the versions' weights (default: all reachable from HEAD), then push git refs."""
    result = _open_repo(ctx).push(refs, remote=remote, git_remote=git_remote)
    uploaded = ", ".join(result.uploaded) if result.uploaded else "nothing (all there already)"
    click.echo(f"weights: uploaded {uploaded} to DVC remote {result.remote}")
    if result.git_remote is None:
        click.echo("git: no git remote configured; refs were not pushed")
    else:
        click.echo(f"git: pushed {len(result.git_refs)} ref(s) to {result.git_remote}")


def _fetch_command(ctx: click.Context, refs: tuple[str, ...], remote: str | None, checkout: bool, force: bool) -> None:
    repo = _open_repo(ctx)
    result = repo.pull(refs, remote=remote, force=force) if checkout else repo.fetch(refs, remote=remote)
    fetched = ", ".join(result.fetched) if result.fetched else "nothing (all in the cache already)"
    click.echo(f"fetched {fetched}")
    if checkout:
        click.echo("checked out " + ", ".join(result.versions))


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option("--remote", "-r", help="DVC remote (default: the configured default).")
@click.option("--force", "-f", is_flag=True, help="Overwrite changes that no version records.")
@click.pass_context
def pull(ctx: click.Context, refs: tuple[str, ...], remote: str | None, force: bool) -> None:
    """Fetch the versions' weights and check them out into adapters/NAME."""
    _fetch_command(ctx, refs, remote, checkout=True, force=force)


@cli.command()
@click.argument("refs", nargs=-1, required=True)
@click.option("--remote", "-r", help="DVC remote (default: the configured default).")
@click.pass_context
def fetch(ctx: click.Context, refs: tuple[str, ...], remote: str | None) -> None:
    """Fetch the versions' weights into the local DVC cache only."""
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
    """Install pre-commit, post-checkout, post-merge and pre-push (existing hooks are chained)."""
    from adaptergit import hooks as hooks_mod
    from adaptergit.gitrepo import GitRepo

    _print_hooks(hooks_mod.install(GitRepo(ctx.obj["path"])))


@hooks.command("uninstall")
@click.pass_context
def hooks_uninstall(ctx: click.Context) -> None:
    """Remove adaptergit's hooks and restore the hooks they chained."""
    from adaptergit import hooks as hooks_mod
    from adaptergit.gitrepo import GitRepo

    _print_hooks(hooks_mod.uninstall(GitRepo(ctx.obj["path"])))


@hooks.command("status")
@click.pass_context
def hooks_status(ctx: click.Context) -> None:
    """Show which adaptergit hooks are installed."""
    from adaptergit import hooks as hooks_mod
    from adaptergit.gitrepo import GitRepo

    _print_hooks(hooks_mod.status(GitRepo(ctx.obj["path"])))


@cli.command(hidden=True, context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def hook(ctx: click.Context, name: str, args: tuple[str, ...]) -> None:
    """Run hook NAME as git calls it (used by the installed hook scripts)."""
    from adaptergit import hooks as hooks_mod

    ctx.exit(hooks_mod.run(name, args, cwd=ctx.obj["path"]))


def _show_warning(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    click.echo(f"adaptergit: warning: {message}", err=True)


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
        click.echo(f"adaptergit: error: {exc}", err=True)
        return exit_code_for(exc)
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
        return 141
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
    sys.exit(main())
