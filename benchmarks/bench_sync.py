"""Time `adaptergit push` / `adaptergit fetch` of many versions against `dvc push` / `dvc fetch`.

One run builds, under benchmarks/work/sync (deleted afterwards):

- --versions (10) variants of the 67 MB fp32 LoRA of make_fixtures.py, one seed each;
- a registry: `git init`, `adaptergit init`, `adaptergit commit` of every variant (tags
  lora@v0.0.1 ..), `adaptergit remote add store DIR --default` and `adaptergit remote add ssh URL`,
  where URL is an sshd started here on 127.0.0.1 (tests/servers.py) and DVC's asyncssh client
  finds the test key and host key in a temporary HOME;
- the plain side: a copy of that registry (DVC cache hard-linked, adaptergit's git hooks removed)
  whose remotes point, through `.dvc/config.local`, at other empty locations.

Both sides have a bare git remote by path (`origin`), re-created empty before every timed push.

DVC reads each revision's own `.dvc/config`, and every version's commit predates `remote add`:
plain `dvc push --all-tags` / `dvc fetch --all-tags` then move the work tree's version only
(silently with the default remote, with "failed to collect" warnings under -r). So the plain side
names the remote (-r) and has it in `.dvc/config.local`, which DVC applies at every revision
(`dvc remote modify --local NAME url URL`, untimed). adaptergit reads the current config.

- push: `adaptergit push [-r ssh]` (weights of all versions reachable from HEAD, then the branch and
  version tags to origin) vs what a DVC user types for the same result:
  `dvc push --all-tags -r NAME` (only HEAD's pointer is in the work tree; --all-tags collects
  every version's) + `git push origin HEAD --tags`. Each side starts from an empty DVC remote.
- fetch: in a fresh `git clone` of the registry with an empty DVC cache,
  `adaptergit fetch [-r ssh] lora@v0.0.1 .. lora@v0.0.10` vs `dvc fetch --all-tags -r NAME` in
  another fresh clone; both read the remote adaptergit pushed to.

Every figure is the wall time of whole subprocesses (`sync` first, as bench_core.py does), the
two sides alternate, and the best of --repeat runs is kept, after one untimed warm-up run (see
steady_env: Python bytecode is compiled once, for both sides, into a scratch directory). After every timed command the objects
are counted on the remote (push) or in the clone's cache (fetch); a count short of --versions
stops the run. Ratios are adaptergit / plain tools; lower is better.

Usage: python benchmarks/bench_sync.py [--repeat 3] [--versions 10] [--out benchmarks/results/sync.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench_core import Tools, bench_env, new_git_repo, scratch_dir
from make_fixtures import write_adapter

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "sync"
NAME = "lora"
WEIGHTS = "adapter_model.safetensors"
REMOTE_KINDS = ("dir", "ssh")
REMOTE_NAMES = {"dir": "store", "ssh": "ssh"}
TARGET = 1.1  # adaptergit / DVC, for push and fetch alike


@dataclass
class Comparison:
    key: str
    operation: str
    plain_label: str
    ours: list[float] = field(default_factory=list)
    theirs: list[list[float]] = field(default_factory=list)  # per run: each plain command's time
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def best_ours(self) -> float:
        return min(self.ours)

    @property
    def best_theirs(self) -> float:
        return min(sum(parts) for parts in self.theirs)

    @property
    def ratio(self) -> float:
        return self.best_ours / self.best_theirs

    @property
    def ok(self) -> bool:
        return self.ratio <= TARGET


def steady_env(work: Path) -> dict[str, str]:
    """bench_core's environment, plus what a user's machine has and this one may not.

    - bytecode: with PYTHONDONTWRITEBYTECODE set and adaptergit installed in editable mode, every
      adaptergit process would compile its own modules from source, while DVC's come compiled
      from site-packages. Bytecode goes to a scratch PYTHONPYCACHEPREFIX instead (both sides
      compile there once, in the untimed first round), as after any install or first run;
    - PATH: the interpreter's directory first, as in an activated virtualenv, so the installed
      hook scripts (`command -v adaptergit`) find the real entry point, not a version manager's
      shim (pyenv's adds 50-100 ms).
    """
    env = bench_env(work)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def timed(tools: Tools, *cmds: Sequence[str | Path], cwd: Path) -> list[float]:
    """Flush dirty pages, then run `cmds` in turn; each one's wall time."""
    os.sync()
    return [tools.run(*cmd, cwd=cwd) for cmd in cmds]


def objects_under(store: Path) -> list[Path]:
    """DVC objects (files/md5/ab/cdef...) in a remote or a cache directory."""
    base = store / "files" / "md5"
    if not base.is_dir():
        return []
    return [p for p in base.glob("??/*") if p.is_file() and not p.name.endswith(".tmp")]


def expect_objects(store: Path, count: int, nbytes: int, what: str) -> int:
    found = objects_under(store)
    total = sum(p.stat().st_size for p in found)
    if len(found) != count or total != nbytes:
        raise SystemExit(
            f"bench_sync: {what}: {len(found)} objects, {total} bytes in {store}; "
            f"expected {count} objects, {nbytes} bytes"
        )
    return len(found)


def git_out(tools: Tools, *args: str, cwd: Path) -> str:
    return subprocess.run(
        [tools.git, *args], cwd=cwd, env=tools.env, capture_output=True, text=True, check=True
    ).stdout


def fresh_bare(tools: Tools, path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    tools.run(tools.git, "init", "-q", "--bare", path, cwd=path.parent)
    return path


def expect_tags(tools: Tools, bare: Path, tags: list[str], what: str) -> None:
    pushed = set(git_out(tools, "tag", "-l", cwd=bare).split())
    if not set(tags) <= pushed:
        raise SystemExit(f"bench_sync: {what}: {bare} lacks tags {sorted(set(tags) - pushed)[:3]}")


def make_variants(root: Path, count: int) -> list[Path]:
    """`count` distinct 67 MB fp32 LoRAs (make_fixtures.py's shapes), seeds 1..count."""
    folders = []
    for seed in range(1, count + 1):
        folder = root / f"v{seed}"
        write_adapter(folder, seed=seed, layers=32, hidden=4096, r=16)
        folders.append(folder)
    return folders


def build_registry(tools: Tools, path: Path, variants: list[Path], urls: dict[str, str]) -> None:
    new_git_repo(tools, path)
    tools.run(tools.adaptergit, "init", path, cwd=path)
    for index, src in enumerate(variants, 1):
        tools.run(tools.adaptergit, "commit", src, "--name", NAME, "-m", f"step {index}", cwd=path)
    tools.run(tools.adaptergit, "remote", "add", "store", urls["dir"], "--default", cwd=path)
    tools.run(tools.adaptergit, "remote", "add", "ssh", urls["ssh"], cwd=path)


def copy_for_dvc(tools: Tools, registry: Path, dest: Path, urls: dict[str, str]) -> None:
    """The same repository state for the plain side: its own remotes, no adaptergit hooks."""
    cache = registry / ".dvc" / "cache"
    shutil.copytree(
        registry,
        dest,
        symlinks=True,
        ignore=lambda folder, _names: ["cache"] if Path(folder) == registry / ".dvc" else [],
    )
    # Hard links: both sides read the very same cache files, so the same page-cache pages.
    shutil.copytree(cache, dest / ".dvc" / "cache", copy_function=os.link)
    for hook in (dest / ".git" / "hooks").iterdir():
        if not hook.name.endswith(".sample"):
            hook.unlink()
    define_remotes_locally(tools, dest, urls)


def remote_args(kind: str) -> list[str]:
    """adaptergit: the default remote needs no option."""
    return ["-r", "ssh"] if kind == "ssh" else []


def dvc_remote_args(kind: str) -> list[str]:
    """DVC reads each tag's own .dvc/config, which predates the remote: it must be named."""
    return ["-r", REMOTE_NAMES[kind]]


def define_remotes_locally(tools: Tools, repo: Path, urls: dict[str, str]) -> None:
    """Put the remotes in .dvc/config.local, which DVC applies at every revision.

    Without this (and -r), `dvc push/fetch --all-tags` skips every tag whose commit predates
    `remote add`: silently when the default remote is used, with a warning under -r.
    """
    for kind, name in REMOTE_NAMES.items():
        tools.run(tools.dvc, "remote", "modify", "--local", name, "url", urls[kind], cwd=repo)


def bench_push(
    tools: Tools,
    kind: str,
    repos: dict[str, Path],
    stores: dict[str, Path],
    tags: list[str],
    nbytes: int,
    repeat: int,
) -> Comparison:
    result = Comparison(
        f"push_{kind}",
        f"push {len(tags)} versions, {kind}",
        "dvc push --all-tags -r R + git push origin HEAD --tags",
    )
    ours_store, plain_store = stores[f"{kind}-ours"], stores[f"{kind}-dvc"]
    for run in range(repeat + 1):  # run 0 is the untimed warm-up
        for side in ("ours", "dvc"):
            shutil.rmtree(stores[f"{kind}-{side}"], ignore_errors=True)
            fresh_bare(tools, repos[f"{side}-git"])
        ours = timed(tools, [tools.adaptergit, "push", *remote_args(kind)], cwd=repos["ours"])
        result.counts["remote_files"] = expect_objects(
            ours_store, len(tags), nbytes, "adaptergit push"
        )
        expect_tags(tools, repos["ours-git"], tags, "adaptergit push")

        theirs = timed(
            tools,
            [tools.dvc, "push", "-q", "--all-tags", *dvc_remote_args(kind)],
            [tools.git, "push", "-q", "origin", "HEAD", "--tags"],
            cwd=repos["dvc"],
        )
        result.counts["dvc_remote_files"] = expect_objects(
            plain_store, len(tags), nbytes, "dvc push --all-tags"
        )
        expect_tags(tools, repos["dvc-git"], tags, "git push")
        if run:
            result.ours.append(ours[0])
            result.theirs.append(theirs)
    return result


def bench_fetch(
    tools: Tools,
    kind: str,
    work: Path,
    registry: Path,
    urls: dict[str, str],
    tags: list[str],
    nbytes: int,
    repeat: int,
) -> Comparison:
    result = Comparison(
        f"fetch_{kind}",
        f"fetch {len(tags)} versions, {kind}",
        "dvc fetch --all-tags -r R (fresh clone)",
    )
    for run in range(repeat + 1):  # run 0 is the untimed warm-up
        clone = work / f"clone-{kind}-adaptergit-{run}"
        tools.run(tools.git, "clone", "-q", registry, clone, cwd=work)
        ours = timed(tools, [tools.adaptergit, "fetch", *remote_args(kind), *tags], cwd=clone)
        result.counts["cache_files"] = expect_objects(
            clone / ".dvc" / "cache", len(tags), nbytes, "adaptergit fetch"
        )
        shutil.rmtree(clone)

        clone = work / f"clone-{kind}-dvc-{run}"
        tools.run(tools.git, "clone", "-q", registry, clone, cwd=work)
        define_remotes_locally(tools, clone, urls)
        theirs = timed(
            tools, [tools.dvc, "fetch", "-q", "--all-tags", *dvc_remote_args(kind)], cwd=clone
        )
        result.counts["dvc_cache_files"] = expect_objects(
            clone / ".dvc" / "cache", len(tags), nbytes, "dvc fetch --all-tags"
        )
        shutil.rmtree(clone)
        if run:
            result.ours.append(ours[0])
            result.theirs.append(theirs)
    return result


def render(results: list[Comparison], repeat: int, nbytes: int) -> list[str]:
    lines = [
        f"{'operation':<26}{'adaptergit s':>13}{'dvc s':>9}{'ratio':>8}{'target':>8}  ok"
        "  plain side",
    ]
    for r in results:
        lines.append(
            f"{r.operation:<26}{r.best_ours:>13.3f}{r.best_theirs:>9.3f}{r.ratio:>7.2f}x"
            f"{TARGET:>7.1f}x  {'yes' if r.ok else 'NO ':<3} {r.plain_label}"
        )
    lines.append(
        f"best of {repeat}; {nbytes / 1e6:.0f} MB in all; {os.cpu_count()} CPUs; "
        "git remote: a bare repository by path on both sides"
    )
    return lines


def metrics(
    results: list[Comparison],
    repeat: int,
    versions: int,
    adapter_bytes: int,
    build_s: float,
    load: tuple[float, float],
) -> dict[str, float | int]:
    """Flat numbers, as `dvc metrics show` reads them."""
    flat: dict[str, float | int] = {}
    for r in results:
        flat[f"{r.key}_s"] = round(r.best_ours, 4)
        flat[f"{r.key}_dvc_s"] = round(r.best_theirs, 4)
        flat[f"{r.key}_ratio"] = round(r.ratio, 3)
        if r.key.startswith("push_"):  # the plain side's two commands, best of each
            flat[f"{r.key}_dvc_push_only_s"] = round(min(p[0] for p in r.theirs), 4)
            flat[f"{r.key}_git_push_only_s"] = round(min(p[1] for p in r.theirs), 4)
        for name, count in r.counts.items():
            flat[f"{r.key}_{name}"] = count
    flat["targets_met"] = sum(r.ok for r in results)
    flat["targets"] = len(results)
    flat["versions"] = versions
    flat["adapter_bytes"] = adapter_bytes
    flat["registry_build_s"] = round(build_s, 2)
    flat["repeat"] = repeat
    flat["cpus"] = os.cpu_count() or 0
    flat["load_1m_start"], flat["load_1m_end"] = (round(x, 2) for x in load)
    return flat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (the best is kept)")
    parser.add_argument("--versions", type=int, default=10, help="versions of the 67 MB adapter")
    parser.add_argument("--out", type=Path, help="write the metrics as flat JSON to this file")
    parser.add_argument(
        "--remote",
        choices=REMOTE_KINDS,
        action="append",
        help="benchmark only this kind of DVC remote (repeatable)",
    )
    parser.add_argument("--keep", action="store_true", help="leave benchmarks/work/sync behind")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.versions < 1:
        parser.error("--repeat and --versions must be at least 1")
    kinds = [k for k in REMOTE_KINDS if k in (args.remote or REMOTE_KINDS)]

    sys.path.insert(0, str(ROOT))
    from tests.servers import SSHServer

    # A kill still runs the clean-up below: the sshd stops, the scratch directory goes.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))

    results: list[Comparison] = []
    load_start = os.getloadavg()[0]  # other work on the machine shows here
    with scratch_dir(WORK, args.keep) as work:
        env = steady_env(work)
        os.environ.clear()
        os.environ.update(env)
        tools = Tools.found(env)
        server = SSHServer(work / "sshd").setup().start()
        try:
            server.trust(Path(env["HOME"]))
            stores = {
                f"{kind}-{side}": work / "remotes" / f"{kind}-{side}"
                for kind in REMOTE_KINDS
                for side in ("ours", "dvc")
            }
            (work / "remotes").mkdir()
            urls = {side: {"dir": str(stores[f"dir-{side}"])} for side in ("ours", "dvc")}
            for side in ("ours", "dvc"):
                urls[side]["ssh"] = server.url(stores[f"ssh-{side}"])

            print(f"... writing {args.versions} adapters", file=sys.stderr, flush=True)
            variants = make_variants(work / "src", args.versions)
            adapter_bytes = (variants[0] / WEIGHTS).stat().st_size
            nbytes = sum((v / WEIGHTS).stat().st_size for v in variants)
            print("... committing them", file=sys.stderr, flush=True)
            repos = {"ours": work / "registry", "dvc": work / "plain"}
            started = time.perf_counter()
            build_registry(tools, repos["ours"], variants, urls["ours"])
            build_s = time.perf_counter() - started
            shutil.rmtree(work / "src")
            tags = git_out(tools, "tag", "-l", f"{NAME}@v*", cwd=repos["ours"]).split()
            if len(tags) != args.versions:
                raise SystemExit(f"bench_sync: {len(tags)} version tags, not {args.versions}")
            copy_for_dvc(tools, repos["ours"], repos["dvc"], urls["dvc"])
            for side in ("ours", "dvc"):
                repos[f"{side}-git"] = fresh_bare(tools, work / f"{side}.git")
                tools.run(
                    tools.git, "remote", "add", "origin", repos[f"{side}-git"], cwd=repos[side]
                )

            for kind in kinds:
                print(f"... push, {kind} remote", file=sys.stderr, flush=True)
                results.append(bench_push(tools, kind, repos, stores, tags, nbytes, args.repeat))
            for kind in kinds:
                # Both sides read the remote that adaptergit's last push filled.
                print(f"... fetch, {kind} remote", file=sys.stderr, flush=True)
                results.append(
                    bench_fetch(
                        tools, kind, work, repos["ours"], urls["ours"], tags, nbytes, args.repeat
                    )
                )
        finally:
            server.stop()

    load = (load_start, os.getloadavg()[0])
    for line in render(results, args.repeat, nbytes):
        print(line)
    print(f"load average (1 min) {load[0]:.2f} at the start, {load[1]:.2f} at the end")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        data = metrics(results, args.repeat, args.versions, adapter_bytes, build_s, load)
        args.out.write_text(json.dumps(data, indent=2) + "\n")
    return 1 if args.check and not all(r.ok for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
