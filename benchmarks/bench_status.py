"""Time `adaptergit status` on a registry of 100 adapters, none changed, against `dvc status`.

The registry holds 100 adapters (one version each, weights from the lora-small fixture with one
value changed per adapter so that every weights file differs), their weights pushed to a local
directory DVC remote. Both commands run as whole subprocesses in the same registry, alternating,
after one untimed run of each (adaptergit's stat-keyed hash cache and DVC's state database both
learn the weights' hashes then, as they would on a user's first run). The registry is built and
then left alone for longer than the racy-mtime window (2 s), as a real one is between commands.
Bytecode: with PYTHONDONTWRITEBYTECODE set and adaptergit installed in editable mode, each run
would compile adaptergit's modules while DVC's come compiled from site-packages; the timed
environment writes bytecode to a scratch PYTHONPYCACHEPREFIX instead, as an installed package
has it. The figure with the inherited environment is reported too (status_as_is_s).

What each side checks: `dvc status` compares the 100 work-tree files with their .dvc pointers (it
does not look at the remote); `adaptergit status` compares every adapter's files with its latest
version, asks the remote which versions it lacks (stat calls for a directory remote), and checks
the hooks and the diff driver. Figures are best of --repeat; ratio is adaptergit / dvc.

With --adapters 1000 --per-commit 20 --target-s 1 (the bench_status_1000 stage) the registry
holds 1,000 adapters, recorded 20 to a git commit so that it is built in a few minutes.

Usage: python benchmarks/bench_status.py [--adapters 100] [--per-commit 1] [--target-s 0.5]
       [--repeat 5] [--out benchmarks/results/status.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_core import HERE, SMALL, bench_env, executable

TMP = HERE / "work" / "tmp-status"
WEIGHTS = "adapter_model.safetensors"
TARGET_SECONDS = 0.5
TARGET_SECONDS_1000 = 1.0  # with --adapters 1000 (the bench_status_1000 stage)
TARGET_RATIO = 0.3


def build(registry: Path, adapters: int, per_commit: int = 1) -> float:
    """`adapters` adapters of one version each, pushed to a directory remote; seconds taken.

    `per_commit` adapters are recorded in each git commit (one tag each), as a PeftModel with
    several adapters is: it makes a 1,000-adapter registry in seconds rather than minutes.
    """
    from safetensors.numpy import load_file, save_file

    from adaptergit import Repo
    from adaptergit.ops.commit import commit_folders

    tensors = load_file(str(SMALL / WEIGHTS))
    key = sorted(k for k in tensors if "lora_B" in k)[0]
    sources = registry.parent / "status-src"
    registry.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=registry, check=True)
    digits = len(str(adapters - 1))
    started = time.perf_counter()
    with Repo.init(registry) as repo:
        repo.remote_add("store", str(registry.parent / "store"), default=True)
        for first in range(0, adapters, per_commit):
            items = []
            for index in range(first, min(first + per_commit, adapters)):
                src = sources / str(index)
                src.mkdir(parents=True)
                shutil.copy(SMALL / "adapter_config.json", src)
                tensors[key][0, 0] = index + 1
                save_file(tensors, str(src / WEIGHTS), metadata={"format": "pt"})
                items.append((src, f"adapter-{index:0{max(3, digits)}d}"))
            commit_folders(
                repo.registry,
                items,
                metrics=None,
                message=f"adapters {first}..",
                base_model=None,
                version=None,
                bump="patch",
            )
            shutil.rmtree(sources)
        repo.push()
    return time.perf_counter() - started


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"bench_status: {' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")
    return elapsed, proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=100)
    parser.add_argument(
        "--target-s", type=float, default=TARGET_SECONDS, help="the target time, seconds"
    )
    parser.add_argument(
        "--per-commit", type=int, default=1, help="adapters recorded in each git commit"
    )
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per side (best kept)")
    parser.add_argument("--out", type=Path, help="write the metrics as flat JSON to this file")
    parser.add_argument(
        "--keep", action="store_true", help="leave benchmarks/work/tmp-status behind"
    )
    args = parser.parse_args(argv)
    if not (SMALL / WEIGHTS).is_file():
        parser.error(f"fixture missing ({SMALL}): run python benchmarks/make_fixtures.py")

    load_start = os.getloadavg()[0]
    shutil.rmtree(TMP, ignore_errors=True)
    TMP.mkdir(parents=True)
    try:
        env = bench_env(TMP)
        as_is = dict(env)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(TMP / "pycache")
        os.environ.update(env)  # the registry is built in this process
        registry = TMP / "registry"
        print(f"... building {args.adapters} adapters", file=sys.stderr, flush=True)
        built = build(registry, args.adapters, args.per_commit)
        time.sleep(2.1)  # past the racy-mtime window, as between a user's commands
        ours_cmd = [executable("adaptergit"), "status"]
        theirs_cmd = [executable("dvc"), "status"]
        _t, first = timed(ours_cmd, registry, env)  # learns the hashes, like DVC's first run
        timed(theirs_cmd, registry, env)
        if not first.startswith("clean:"):
            raise SystemExit(f"bench_status: the registry is not clean:\n{first}")
        ours, theirs = [], []
        for _ in range(args.repeat):
            ours.append(timed(ours_cmd, registry, env)[0])
            theirs.append(timed(theirs_cmd, registry, env)[0])
        as_is_s = min(timed(ours_cmd, registry, as_is)[0] for _ in range(args.repeat))
        # For scale: the plain tools' start-up, and git's own status.
        python = min(timed([sys.executable, "-c", "pass"], registry, env)[0] for _ in range(3))
        git_status = min(timed(["git", "status", "--short"], registry, env)[0] for _ in range(3))
    finally:
        if not args.keep:
            shutil.rmtree(TMP, ignore_errors=True)

    load = (load_start, os.getloadavg()[0])
    best, plain = min(ours), min(theirs)
    ratio = best / plain
    ok = best <= args.target_s and ratio <= TARGET_RATIO
    print(f"{'operation':<28}{'adaptergit s':>13}{'dvc s':>8}{'ratio':>8}  target")
    print(
        f"{f'status, {args.adapters} adapters clean':<28}{best:>13.3f}{plain:>8.3f}{ratio:>7.2f}x"
        f"  <{args.target_s:g} s and <={TARGET_RATIO}x: {'yes' if ok else 'NO'}"
    )
    print(
        f"best of {args.repeat}; as inherited (bytecode not cached: {bool(as_is.get('PYTHONDONTWRITEBYTECODE'))}) "
        f"{as_is_s:.3f} s; python -c pass {python:.3f} s, git status {git_status:.3f} s; "
        f"{os.cpu_count()} CPUs; load average {load[0]:.1f} at the start, {load[1]:.1f} at the end"
    )
    if max(load) > (os.cpu_count() or 1) / 2:
        print("the machine was busy with other work: expect noisy figures")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "status_s": round(best, 4),
            "status_median_s": round(statistics.median(ours), 4),
            "dvc_status_s": round(plain, 4),
            "dvc_status_median_s": round(statistics.median(theirs), 4),
            "status_ratio": round(ratio, 3),
            "status_target_s": args.target_s,
            "status_target_ratio": TARGET_RATIO,
            "targets_met": int(ok),
            "status_as_is_s": round(as_is_s, 4),
            "python_startup_s": round(python, 4),
            "git_status_s": round(git_status, 4),
            "adapters": args.adapters,
            "build_per_adapter_s": round(built / args.adapters, 4),
            "repeat": args.repeat,
            "cpus": os.cpu_count() or 0,
            "load_avg_max": round(max(load), 2),
        }
        args.out.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
