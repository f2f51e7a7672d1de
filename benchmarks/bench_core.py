"""Time adaptergit's core commands against the plain git/DVC/GTO commands that do the same job.

Each comparison runs in fresh repositories under benchmarks/work/tmp (deleted afterwards), and
both sides are timed the same way: wall time of whole subprocesses, so both pay interpreter and
process start-up. The two sides alternate, and the page cache's dirty data is flushed (`sync`)
before each timed command so that one side's writes are not paid for by the other. The figure kept
for each side is the best (minimum) of --repeat runs: noise on a shared machine only ever adds
time. Ratios are adaptergit / plain tools; lower is better.

- commit: `adaptergit commit SRC --name NAME` of a 67 MB LoRA (second version) vs what a user
  types: cp -r SRC/. adapters/NAME/; dvc add the weights; git add adapters/NAME; git commit -m;
  gto register NAME (sum of the five subprocesses).
- checkout: `adaptergit checkout NAME@v0.0.1 --to DIR` vs `git checkout NAME@v0.0.1 -- adapters/NAME`
  + `dvc checkout adapters/NAME/adapter_model.safetensors.dvc`, in a registry whose work tree holds
  v0.0.2 (and whose DVC state already knows that file, as after a plain `dvc checkout`).
- log: `adaptergit log NAME` vs `gto show NAME` over 500 versions of one small adapter; then the
  same registry grown to 5,000 versions (`git fast-import` of copies of the 500th version's files
  with new hashes, metrics and dates, each with its annotated GTO tag), where `adaptergit log`
  must stay under a second (`gto show` takes minutes there: --log-plain-5000 times it once).
- help: `adaptergit --help` vs `python -c pass`.

Usage: python benchmarks/bench_core.py [--repeat 3] [--out benchmarks/results/core.json] [--check]
Run benchmarks/make_fixtures.py first (or `dvc repro`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "work" / "fixtures"
TMP = HERE / "work" / "tmp"
LARGE = FIXTURES / "lora-67mb"
SMALL = FIXTURES / "lora-small"
NAME = "lora"
WEIGHTS = "adapter_model.safetensors"
LOG_VERSIONS = 500
LOG_VERSIONS_LARGE = 5000

TARGETS = {"commit": 0.25, "checkout": 1.0, "log": 0.3, "help": 3.0}
# Absolute targets, in seconds, for figures without a plain side run every time.
TARGETS_S = {"log5000": 1.0}


def executable(name: str) -> str:
    """The program next to this interpreter if it is there, else on PATH.

    Version managers (pyenv, asdf) put shell-script shims on PATH that add 50-100 ms to every call;
    taking the real entry points keeps that out of both sides.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"bench_core: {name} not found (install it, or activate its environment)")
    return found


def bench_env(scratch: Path) -> dict[str, str]:
    """The environment of every timed command: no user config, a fixed identity, no telemetry."""
    home = scratch / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DVC_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_CACHE_HOME=str(home / ".cache"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Adapter Bench",
        GIT_AUTHOR_EMAIL="bench@example.com",
        GIT_COMMITTER_NAME="Adapter Bench",
        GIT_COMMITTER_EMAIL="bench@example.com",
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(home / ".cache" / "dvc-site"),
        ADAPTERGIT_CACHE_DIR=str(home / ".cache" / "adaptergit"),
        HF_HUB_OFFLINE="1",
        HF_HOME=str(home / ".cache" / "huggingface"),
        # The scratch repositories sit inside this project's work tree: git must never climb
        # out of them into it (GitPython does not read this, hence new_git_repo below too).
        GIT_CEILING_DIRECTORIES=str(scratch),
    )
    return env


@dataclass
class Tools:
    env: dict[str, str]
    adaptergit: str
    dvc: str
    gto: str
    git: str
    python: str

    @classmethod
    def found(cls, env: dict[str, str]) -> Tools:
        """The programs as this interpreter's installation has them (not version-manager shims)."""
        return cls(
            env=env,
            adaptergit=executable("adaptergit"),
            dvc=executable("dvc"),
            gto=executable("gto"),
            git=executable("git"),
            python=sys.executable,
        )

    def run(self, *cmd: str | Path, cwd: Path) -> float:
        """Run one command to completion and return its wall time; fail loudly if it fails."""
        args = [str(c) for c in cmd]
        started = time.perf_counter()
        proc = subprocess.run(
            args, cwd=cwd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        elapsed = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(
                f"bench_core: {' '.join(args)} (in {cwd}) exited {proc.returncode}:\n"
                + proc.stderr.decode(errors="replace")
            )
        return elapsed

    @property
    def plain_git(self) -> list[str]:
        """git without the hooks `adaptergit init` installs: the plain side pays only plain tools."""
        return [self.git, "-c", "core.hooksPath=/dev/null"]

    def timed(self, *cmds: Sequence[str | Path], cwd: Path) -> float:
        """Flush dirty pages, then run `cmds` one after the other; the sum of their wall times."""
        os.sync()
        return sum(self.run(*cmd, cwd=cwd) for cmd in cmds)


@dataclass
class Result:
    operation: str
    key: str
    adaptergit: list[float]
    plain: list[float]
    plain_label: str

    @property
    def ours(self) -> float:
        return min(self.adaptergit)

    @property
    def theirs(self) -> float | None:
        return min(self.plain) if self.plain else None

    @property
    def ratio(self) -> float | None:
        return self.ours / self.theirs if self.theirs else None

    @property
    def target(self) -> str:
        if self.key in TARGETS_S:
            return f"<{TARGETS_S[self.key]:g} s"
        return f"{TARGETS[self.key]:.2f}x"

    @property
    def ok(self) -> bool:
        if self.key in TARGETS_S:
            return self.ours < TARGETS_S[self.key]
        return self.ratio is not None and self.ratio <= TARGETS[self.key]


@contextlib.contextmanager
def scratch_dir(path: Path, keep: bool) -> Iterator[Path]:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def new_git_repo(tools: Tools, path: Path) -> Path:
    """`git init` at `path`, checked to be its own repository.

    `adaptergit init DIR` and `Repo.init(DIR)` adopt a repository found above DIR, which here would
    be this project's own: the registry must exist before adaptergit sees it.
    """
    path.mkdir(parents=True)
    tools.run(tools.git, "init", "-q", cwd=path)
    top = subprocess.run(
        [tools.git, "rev-parse", "--show-toplevel"],
        cwd=path,
        env=tools.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if Path(top).resolve() != path.resolve():
        raise SystemExit(f"bench_core: {path} is not its own git repository (found {top})")
    return path


def adaptergit_registry(tools: Tools, path: Path, *versions: Path) -> Path:
    new_git_repo(tools, path)
    tools.run(tools.adaptergit, "init", path, cwd=path)
    for src in versions:
        tools.run(tools.adaptergit, "commit", src, "--name", NAME, "-m", src.name, cwd=path)
    return path


def plain_registry(tools: Tools, path: Path) -> Path:
    new_git_repo(tools, path)
    tools.run(tools.dvc, "init", "-q", cwd=path)
    tools.run(tools.git, "commit", "-q", "-m", "Initialise DVC", cwd=path)
    return path


def plain_commit_steps(tools: Tools, src: Path) -> list[list[str | Path]]:
    """What a user types to record `src` as the next version with git, DVC and GTO."""
    folder = f"adapters/{NAME}"
    return [
        ["cp", "-r", f"{src}/.", f"{folder}/"],
        [tools.dvc, "add", "-q", f"{folder}/{WEIGHTS}"],
        [tools.git, "add", folder],
        [tools.git, "commit", "-q", "-m", f"{NAME}: {src.name}"],
        [tools.gto, "register", NAME],
    ]


def bench_commit(tools: Tools, work: Path, repeat: int) -> Result:
    v1, v2 = LARGE / "v1", LARGE / "v2"
    ours, theirs = [], []
    for i in range(repeat):
        repo = adaptergit_registry(tools, work / f"commit-adaptergit-{i}", v1)
        ours.append(
            tools.timed([tools.adaptergit, "commit", v2, "--name", NAME, "-m", "v2"], cwd=repo)
        )
        shutil.rmtree(repo)

        repo = plain_registry(tools, work / f"commit-plain-{i}")
        (repo / "adapters" / NAME).mkdir(parents=True)
        for step in plain_commit_steps(tools, v1):
            tools.run(*step, cwd=repo)
        theirs.append(tools.timed(*plain_commit_steps(tools, v2), cwd=repo))
        shutil.rmtree(repo)
    return Result("commit 67 MB", "commit", ours, theirs, "cp + dvc add + git add/commit + gto")


def bench_checkout(tools: Tools, work: Path, repeat: int) -> Result:
    repo = adaptergit_registry(tools, work / "checkout", LARGE / "v1", LARGE / "v2")
    old = f"{NAME}@v0.0.1"
    pointer = f"adapters/{NAME}/{WEIGHTS}.dvc"
    back_to_head = [
        [*tools.plain_git, "checkout", "HEAD", "--", f"adapters/{NAME}"],
        [tools.dvc, "checkout", "-q", pointer],
    ]
    for step in back_to_head:  # DVC's state now knows the work-tree file, as in a DVC-only repo
        tools.run(*step, cwd=repo)
    ours, theirs = [], []
    for i in range(repeat):
        dest = work / f"checkout-to-{i}"
        ours.append(tools.timed([tools.adaptergit, "checkout", old, "--to", dest], cwd=repo))
        shutil.rmtree(dest)

        theirs.append(
            tools.timed(
                [*tools.plain_git, "checkout", old, "--", f"adapters/{NAME}"],
                [tools.dvc, "checkout", "-q", pointer],
                cwd=repo,
            )
        )
        for step in back_to_head:
            tools.run(*step, cwd=repo)
    shutil.rmtree(repo)
    return Result("checkout 67 MB --to", "checkout", ours, theirs, "git checkout + dvc checkout")


def build_log_registry(tools: Tools, path: Path, versions: int) -> float:
    """`versions` real versions of one small adapter, through the Python API in this process."""
    from safetensors.numpy import load_file, save_file

    from adaptergit import Repo

    tensors = load_file(str(SMALL / WEIGHTS))
    key = sorted(k for k in tensors if "lora_B" in k)[0]
    src = path.parent / "log-src"
    src.mkdir()
    shutil.copy(SMALL / "adapter_config.json", src)
    new_git_repo(tools, path)
    tools.run(tools.adaptergit, "init", path, cwd=path)
    started = time.perf_counter()
    with Repo(path) as repo:
        for index in range(versions):
            tensors[key][0, 0] = index + 1  # each version's weights differ
            save_file(tensors, str(src / WEIGHTS), metadata={"format": "pt"})
            repo.commit(src, name=NAME, message=f"step {index + 1}")
    return time.perf_counter() - started


def extend_log_registry(tools: Tools, path: Path, versions: int) -> None:
    """Grow the log registry to `versions` versions with `git fast-import`, in a second.

    Each new version is a commit changing the adapter's manifest (version, parent, date, weights
    hashes, one tensor's BLAKE3), metrics and DVC pointer, copied from the latest real version,
    plus its annotated tag with GTO's message, one second after the one before.
    """
    import hashlib

    def show(rev: str) -> bytes:
        return subprocess.run(
            [tools.git, "show", rev], cwd=path, env=tools.env, capture_output=True, check=True
        ).stdout

    head = (
        subprocess.run(
            [tools.git, "rev-parse", "HEAD"],
            cwd=path,
            env=tools.env,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    folder = f"adapters/{NAME}"
    manifest = json.loads(show(f"HEAD:{folder}/manifest.json"))
    pointer = show(f"HEAD:{folder}/{WEIGHTS}.dvc")
    first = int(manifest["version"].rsplit(".", 1)[1]) + 1
    start = int(time.time())
    ident = "Adapter Bench <bench@example.com>"
    stream: list[bytes] = []

    def data(raw: bytes) -> None:
        stream.append(b"data %d\n" % len(raw) + raw + b"\n")

    for number in range(first, versions + 1):
        version, when = f"v0.0.{number}", start + number
        digest = hashlib.sha256(b"%d" % number).hexdigest()
        record = dict(manifest, version=version, parent=f"v0.0.{number - 1}")
        record["created"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(when))
        record["weights"] = dict(manifest["weights"], sha256=digest, md5=digest[:32])
        tensors = dict(manifest["tensors"])
        last = sorted(tensors)[-1]
        tensors[last] = dict(
            tensors[last], blake3=hashlib.blake2b(digest.encode()).hexdigest()[:64]
        )
        record["tensors"] = tensors
        files = {
            "manifest.json": (json.dumps(record, indent=2) + "\n").encode(),
            "metrics.json": json.dumps({"step": number, "eval_loss": 1 / number}).encode(),
            f"{WEIGHTS}.dvc": pointer.replace(
                manifest["weights"]["md5"].encode(), digest[:32].encode()
            ),
        }
        stream.append(b"commit refs/heads/main\nmark :%d\n" % number)
        stream.append(f"committer {ident} {when} +0000\n".encode())
        data(f"Register {NAME}@{version}".encode())
        if number == first:
            stream.append(f"from {head}\n".encode())
        for name, raw in files.items():
            stream.append(f"M 100644 inline {folder}/{name}\n".encode())
            data(raw)
        stream.append(f"tag {NAME}@{version}\nfrom :{number}\n".encode())
        stream.append(f"tagger {ident} {when} +0000\n".encode())
        data(f"Registering artifact {NAME} version {version}".encode())
    subprocess.run(
        [tools.git, "fast-import", "--quiet"],
        cwd=path,
        env=tools.env,
        input=b"".join(stream),
        check=True,
    )
    tools.run(*tools.plain_git, "reset", "-q", "--hard", "main", cwd=path)


def bench_log(
    tools: Tools, work: Path, repeat: int, plain_large: bool
) -> tuple[list[Result], float]:
    repo = work / "log"
    built = build_log_registry(tools, repo, LOG_VERSIONS)
    ours, theirs = [], []
    for _ in range(repeat):
        ours.append(tools.timed([tools.adaptergit, "log", NAME], cwd=repo))
        theirs.append(tools.timed([tools.gto, "show", NAME], cwd=repo))
    results = [Result(f"log {LOG_VERSIONS} versions", "log", ours, theirs, "gto show NAME")]
    print(f"... log (growing to {LOG_VERSIONS_LARGE} versions)", file=sys.stderr, flush=True)
    extend_log_registry(tools, repo, LOG_VERSIONS_LARGE)
    ours = [tools.timed([tools.adaptergit, "log", NAME], cwd=repo) for _ in range(repeat)]
    theirs = [tools.timed([tools.gto, "show", NAME], cwd=repo)] if plain_large else []
    label = "gto show NAME" if plain_large else "(gto show: minutes; --log-plain-5000)"
    results.append(Result(f"log {LOG_VERSIONS_LARGE} versions", "log5000", ours, theirs, label))
    shutil.rmtree(repo)
    shutil.rmtree(work / "log-src")
    return results, built


def bench_help(tools: Tools, work: Path, repeat: int) -> Result:
    ours, theirs = [], []
    for _ in range(repeat):
        ours.append(tools.timed([tools.adaptergit, "--help"], cwd=work))
        theirs.append(tools.timed([tools.python, "-c", "pass"], cwd=work))
    return Result("--help (start-up)", "help", ours, theirs, "python -c pass")


def render(results: list[Result], repeat: int, load: tuple[float, float]) -> list[str]:
    lines = [
        f"{'operation':<22}{'adaptergit s':>13}{'plain s':>10}{'ratio':>8}{'target':>8}  ok"
        "  plain side",
    ]
    for r in results:
        theirs = f"{r.theirs:>10.3f}" if r.theirs is not None else f"{'-':>10}"
        ratio = f"{r.ratio:>7.2f}x" if r.ratio is not None else f"{'-':>8}"
        lines.append(
            f"{r.operation:<22}{r.ours:>13.3f}{theirs}{ratio}{r.target:>8}"
            f"  {'yes' if r.ok else 'NO ':<3} {r.plain_label}"
        )
    lines.append(
        f"best of {repeat} (help and log: of {fast_repeat(repeat)}); {os.cpu_count()} CPUs;"
        f" load average {load[0]:.1f} at the start, {load[1]:.1f} at the end"
    )
    if max(load) > (os.cpu_count() or 1) / 2:
        lines.append("the machine was busy with other work: expect noisy figures")
    return lines


def fast_repeat(repeat: int) -> int:
    """Sub-second commands get more runs: their noise is a larger share of their time."""
    return max(repeat, 5)


def metrics(
    results: list[Result], repeat: int, log_build_s: float | None, load: tuple[float, float]
) -> dict[str, float | int]:
    """Flat numbers, as `dvc metrics show` and `dvc metrics diff` read them."""
    flat: dict[str, float | int] = {}
    for r in results:
        flat[f"{r.key}_s"] = round(r.ours, 4)
        if r.theirs is not None and r.ratio is not None:
            flat[f"{r.key}_plain_s"] = round(r.theirs, 4)
            flat[f"{r.key}_ratio"] = round(r.ratio, 3)
    flat["targets_met"] = sum(r.ok for r in results)
    flat["targets"] = len(results)
    if log_build_s is not None:
        flat["log_versions"] = LOG_VERSIONS
        flat["log5000_versions"] = LOG_VERSIONS_LARGE
        flat["log_build_per_version_s"] = round(log_build_s / LOG_VERSIONS, 4)
    flat["adapter_bytes"] = (LARGE / "v1" / WEIGHTS).stat().st_size
    flat["repeat"] = repeat
    flat["cpus"] = os.cpu_count() or 0
    flat["load_avg_max"] = round(max(load), 2)  # other work on the machine makes figures noisy
    return flat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (the best is kept)")
    parser.add_argument("--out", type=Path, help="write the metrics as flat JSON to this file")
    parser.add_argument(
        "--only",
        choices=sorted(TARGETS),
        action="append",
        help="run only this comparison (repeatable)",
    )
    parser.add_argument("--keep", action="store_true", help="leave benchmarks/work/tmp behind")
    parser.add_argument(
        "--log-plain-5000",
        action="store_true",
        help=f"also time gto show over {LOG_VERSIONS_LARGE} versions, once (it takes minutes)",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    missing = [p for p in (LARGE / "v1", LARGE / "v2", SMALL) if not (p / WEIGHTS).is_file()]
    if missing:
        parser.error(f"fixtures missing ({missing[0]}): run python benchmarks/make_fixtures.py")

    load_start = os.getloadavg()[0]
    with scratch_dir(TMP, args.keep) as work:
        env = bench_env(work)
        # Bytecode as an installed package has it (see bench_status.py): with
        # PYTHONDONTWRITEBYTECODE set, an editable adaptergit would be compiled on every call.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        os.environ.clear()  # the log registry is built in this process, so it gets the same
        os.environ.update(env)  # environment (no GIT_DIR or GIT_INDEX_FILE from a caller)
        tools = Tools.found(env)
        wanted = set(args.only or TARGETS)
        benches: list[tuple[str, Callable[[], Result]]] = [
            ("help", lambda: bench_help(tools, work, fast_repeat(args.repeat))),
            ("commit", lambda: bench_commit(tools, work, args.repeat)),
            ("checkout", lambda: bench_checkout(tools, work, args.repeat)),
        ]
        results: list[Result] = []
        log_build_s = None
        for key, bench in benches:
            if key in wanted:
                print(f"... {key}", file=sys.stderr, flush=True)
                results.append(bench())
        if "log" in wanted:
            print(f"... log (building {LOG_VERSIONS} versions)", file=sys.stderr, flush=True)
            found, log_build_s = bench_log(
                tools, work, fast_repeat(args.repeat), args.log_plain_5000
            )
            results.extend(found)

    load = (load_start, os.getloadavg()[0])
    for line in render(results, args.repeat, load):
        print(line)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        data = metrics(results, args.repeat, log_build_s, load)
        args.out.write_text(json.dumps(data, indent=2) + "\n")
    return 1 if args.check and not all(r.ok for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
