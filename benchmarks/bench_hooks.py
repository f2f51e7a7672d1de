"""Time adaptergit's post-checkout hook when a checkout changes no adapter, against DVC's.

Builds a registry under benchmarks/work/hooks (deleted afterwards): `git init`, `adaptergit init`
(which installs the hooks), two versions of the 67 MB fp32 LoRA of make_fixtures.py, then a commit
that touches only README.md. The registry is also a DVC repository (adaptergit init runs
`dvc init`), so DVC's hook runs in the very same one. All commands run in the registry's root:

- installed: `.git/hooks/post-checkout OLD NEW 1`, the script git runs (a shell shim that execs
  `adaptergit hook post-checkout`), with OLD == NEW == HEAD;
- direct: `adaptergit hook post-checkout OLD NEW 1`, the same without the shell shim;
- dvc: `dvc git-hook post-checkout OLD NEW 1`, what `dvc install` hooks run (a `dvc checkout`);
- true: `true`, the cost of starting any process at all;
- python: `python -c pass`, the floor of any hook written in Python;
- the same three hooks with OLD = HEAD~1, NEW = HEAD (a checkout across the README commit:
  different commits, no adapter pointer changed).

Informational: the installed hook in this machine's environment as it came, if that has
PYTHONDONTWRITEBYTECODE set (see bench_sync.steady_env: adaptergit's modules are then compiled in
every process); and `git checkout -q BRANCH` onto the branch already checked out (git runs the
post-checkout hook with OLD == NEW) with the hooks installed, and with core.hooksPath=/dev/null.

Every figure is the wall time of a subprocess; each round runs every command once, in turn, after
one untimed round (bytecode is compiled then, and DVC's first `dvc checkout` hashes the work-tree
weights once, as after any clone). The environment is bench_sync.steady_env's. The figure kept
is the median of --runs rounds. Targets: the installed hook under 0.1 s, and at most 0.3x of
DVC's hook (checked for the direct call too).

Usage: python benchmarks/bench_hooks.py [--runs 15] [--out benchmarks/results/hooks.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench_core import Tools, new_git_repo, scratch_dir
from bench_sync import steady_env
from make_fixtures import write_adapter

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "hooks"
NAME = "lora"
TARGET_SECONDS = 0.1
TARGET_RATIO = 0.3


@dataclass
class Timing:
    key: str
    label: str
    cmd: list[str]
    env: dict[str, str] | None = None  # instead of the tools' environment
    runs: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def git_out(tools: Tools, *args: str, cwd: Path) -> str:
    return subprocess.run(
        [tools.git, *args], cwd=cwd, env=tools.env, capture_output=True, text=True, check=True
    ).stdout.strip()


def build_registry(tools: Tools, work: Path) -> Path:
    """Two versions of the 67 MB adapter, then a commit that changes no adapter."""
    repo = new_git_repo(tools, work / "registry")
    tools.run(tools.adaptergit, "init", repo, cwd=repo)
    for seed in (1, 2):
        src = work / "src" / f"v{seed}"
        write_adapter(src, seed=seed, layers=32, hidden=4096, r=16)
        tools.run(tools.adaptergit, "commit", src, "--name", NAME, "-m", f"v{seed}", cwd=repo)
    (repo / "README.md").write_text("An adapter registry.\n")
    tools.run(tools.git, "add", "README.md", cwd=repo)
    tools.run(tools.git, "commit", "-q", "-m", "Add a README", cwd=repo)  # hooks run, untimed
    hook = repo / ".git" / "hooks" / "post-checkout"
    if "adaptergit hook" not in hook.read_text():
        raise SystemExit(f"bench_hooks: {hook} is not adaptergit's hook")
    return repo


def timings(tools: Tools, repo: Path, inherited: dict[str, str]) -> list[Timing]:
    head = git_out(tools, "rev-parse", "HEAD", cwd=repo)
    prev = git_out(tools, "rev-parse", "HEAD~1", cwd=repo)
    branch = git_out(tools, "symbolic-ref", "--short", "HEAD", cwd=repo)
    hook = str(repo / ".git" / "hooks" / "post-checkout")
    result = [
        Timing("true", "true", ["true"]),
        Timing("python", "python -c pass", [tools.python, "-c", "pass"]),
    ]
    for suffix, old, what in (("", head, "OLD == NEW"), ("_diff", prev, "OLD = HEAD~1")):
        args = [old, head, "1"]
        result += [
            Timing(f"hook{suffix}", f".git/hooks/post-checkout ({what})", [hook, *args]),
            Timing(
                f"hook_direct{suffix}",
                f"adaptergit hook post-checkout ({what})",
                [tools.adaptergit, "hook", "post-checkout", *args],
            ),
            Timing(
                f"dvc_hook{suffix}",
                f"dvc git-hook post-checkout ({what})",
                [tools.dvc, "git-hook", "post-checkout", *args],
            ),
        ]
    if inherited.get("PYTHONDONTWRITEBYTECODE") and not inherited.get("PYTHONPYCACHEPREFIX"):
        # This machine as it comes: adaptergit's modules compiled from source in every process.
        as_is = {k: v for k, v in tools.env.items() if k != "PYTHONPYCACHEPREFIX"}
        as_is["PYTHONDONTWRITEBYTECODE"] = inherited["PYTHONDONTWRITEBYTECODE"]
        result.append(
            Timing(
                "hook_no_bytecode",
                ".git/hooks/post-checkout, no .pyc written",
                [hook, head, head, "1"],
                env=as_is,
            )
        )
    result += [
        Timing(
            "git_checkout",
            f"git checkout {branch} (no-op), hooks",
            [tools.git, "checkout", "-q", branch],
        ),
        Timing(
            "git_checkout_nohooks",
            f"git checkout {branch} (no-op), no hooks",
            [*tools.plain_git, "checkout", "-q", branch],
        ),
    ]
    return result


def measure(tools: Tools, repo: Path, items: list[Timing], runs: int) -> None:
    head = git_out(tools, "rev-parse", "HEAD", cwd=repo)
    for round_ in range(runs + 1):  # round 0 is the warm-up
        for item in items:
            runner = replace(tools, env=item.env) if item.env else tools
            elapsed = runner.run(*item.cmd, cwd=repo)
            if round_:
                item.runs.append(elapsed)
    if git_out(tools, "rev-parse", "HEAD", cwd=repo) != head or git_out(
        tools, "status", "--porcelain", cwd=repo
    ):
        raise SystemExit("bench_hooks: a hook changed the registry")


def render(items: list[Timing], runs: int) -> list[str]:
    by_key = {t.key: t for t in items}
    lines = [f"{'command':<46}{'median s':>10}{'min s':>9}{'vs dvc':>8}"]
    for t in items:
        dvc = by_key.get(f"dvc_hook{'_diff' if t.key.endswith('_diff') else ''}")
        versus = f"{t.median / dvc.median:>7.2f}x" if dvc and t.key.startswith("hook") else ""
        lines.append(f"{t.label:<46}{t.median:>10.4f}{min(t.runs):>9.4f}{versus}")
    lines.append(f"median of {runs} runs; {os.cpu_count()} CPUs")
    for key, ok_s, ok_r in targets(by_key):
        lines.append(
            f"target {key}: < {TARGET_SECONDS} s {'met' if ok_s else 'MISSED'}, "
            f"<= {TARGET_RATIO}x dvc {'met' if ok_r else 'MISSED'}"
        )
    return lines


def targets(by_key: dict[str, Timing]) -> list[tuple[str, bool, bool]]:
    out = []
    for key in ("hook", "hook_direct"):
        median = by_key[key].median
        out.append(
            (key, median < TARGET_SECONDS, median / by_key["dvc_hook"].median <= TARGET_RATIO)
        )
    return out


def metrics(items: list[Timing], runs: int, load: tuple[float, float]) -> dict[str, float | int]:
    by_key = {t.key: t for t in items}
    flat: dict[str, float | int] = {}
    for t in items:
        flat[f"{t.key}_s"] = round(t.median, 4)
    for suffix in ("", "_diff"):
        dvc = by_key[f"dvc_hook{suffix}"].median
        flat[f"hook{suffix}_ratio"] = round(by_key[f"hook{suffix}"].median / dvc, 3)
        flat[f"hook_direct{suffix}_ratio"] = round(by_key[f"hook_direct{suffix}"].median / dvc, 3)
    flat["hook_over_true_s"] = round(by_key["hook"].median - by_key["true"].median, 4)
    flat["git_checkout_hook_overhead_s"] = round(
        by_key["git_checkout"].median - by_key["git_checkout_nohooks"].median, 4
    )
    checks = targets(by_key)
    flat["targets_met"] = sum(ok_s + ok_r for _key, ok_s, ok_r in checks)
    flat["targets"] = 2 * len(checks)
    flat["runs"] = runs
    flat["cpus"] = os.cpu_count() or 0
    flat["load_1m_start"], flat["load_1m_end"] = (round(x, 2) for x in load)
    return flat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed rounds (the median is kept)")
    parser.add_argument("--out", type=Path, help="write the metrics as flat JSON to this file")
    parser.add_argument("--keep", action="store_true", help="leave benchmarks/work/hooks behind")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    if args.runs < 10:
        parser.error("--runs must be at least 10")

    load_start = os.getloadavg()[0]  # other work on the machine shows here
    with scratch_dir(WORK, args.keep) as work:
        inherited = dict(os.environ)
        env = steady_env(work)
        os.environ.clear()
        os.environ.update(env)
        tools = Tools.found(env)
        print("... building the registry", file=sys.stderr, flush=True)
        repo = build_registry(tools, work)
        items = timings(tools, repo, inherited)
        print(f"... {args.runs} rounds", file=sys.stderr, flush=True)
        measure(tools, repo, items, args.runs)

    load = (load_start, os.getloadavg()[0])
    for line in render(items, args.runs):
        print(line)
    print(f"load average (1 min) {load[0]:.2f} at the start, {load[1]:.2f} at the end")
    data = metrics(items, args.runs, load)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(data, indent=2) + "\n")
    return 1 if args.check and data["targets_met"] < data["targets"] else 0


if __name__ == "__main__":
    sys.exit(main())
