"""Time `adaptergit commit` of a 1.3 GB adapter against `md5sum` of the same file.

md5 of every byte is the least any commit must do: it is DVC's object id for the weights. So the
plain side is `md5sum` of the adapter's weights file, warm in the page cache, and the ratio says
what adaptergit's commit costs beyond that floor (sha256, a BLAKE3 per tensor, the NaN/Inf check,
the copy into the DVC cache and the work-tree file, fsync, git and the tag).

The adapter: hidden size 8192, 80 layers, r=128 on q_proj and v_proj, fp32: 320 tensors,
1,342,208,000 bytes of tensor data (--hidden, --layers, --rank, --modules change it). It is
written once per run under benchmarks/work/tmp-commit-large and read once (cat) so that both sides
find it in the page cache. Each timed commit records it as the first version of a fresh registry
(`adaptergit init` and the registry's removal are not timed); dirty pages are flushed (`sync`)
before each timed command, and each commit's peak resident memory (maxrss, from wait4) is kept.
Figures are best of --repeat; the ratio is adaptergit / md5sum.

Usage: python benchmarks/bench_commit_large.py [--repeat 3] [--out benchmarks/results/commit_large.json]
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

from bench_core import HERE, Tools, bench_env, new_git_repo
from bench_diff import write_adapter

TMP = HERE / "work" / "tmp-commit-large"
NAME = "lora"
WEIGHTS = "adapter_model.safetensors"
TARGET_RATIO = 1.5
TARGET_RSS_MB = 250


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system, its children included) and peak RSS in bytes."""
    os.sync()
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(
            f"bench_commit_large: {' '.join(cmd[:3])} ... exited {proc.returncode}:\n"
            + err.decode(errors="replace")
        )
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=8192)
    parser.add_argument("--layers", type=int, default=80)
    parser.add_argument("--rank", type=int, default=128)
    parser.add_argument("--modules", default="q_proj,v_proj", help="comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (best kept)")
    parser.add_argument("--out", type=Path, help="write the metrics as flat JSON to this file")
    parser.add_argument(
        "--keep", action="store_true", help="leave benchmarks/work/tmp-commit-large behind"
    )
    args = parser.parse_args(argv)

    load_start = os.getloadavg()[0]
    shutil.rmtree(TMP, ignore_errors=True)
    TMP.mkdir(parents=True)
    ours: list[tuple[float, float, int]] = []
    theirs: list[tuple[float, float, int]] = []
    try:
        env = bench_env(TMP)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # see bench_status.py
        env["PYTHONPYCACHEPREFIX"] = str(TMP / "pycache")
        print("... writing the adapter", file=sys.stderr, flush=True)
        src = TMP / "src"
        size = write_adapter(
            src,
            args.hidden,
            args.layers,
            args.rank,
            "f32",
            seed=1,
            base=None,
            modules=tuple(args.modules.split(",")),
        )
        weights = src / WEIGHTS
        subprocess.run(["cat", str(weights)], stdout=subprocess.DEVNULL, check=True)  # warm
        tools = Tools.found(env)
        adaptergit = tools.adaptergit
        md5sum = shutil.which("md5sum")
        if md5sum is None:
            raise SystemExit("bench_commit_large: md5sum not found")
        for i in range(args.repeat):
            registry = TMP / f"registry-{i}"
            new_git_repo(tools, registry)
            tools.run(adaptergit, "init", registry, cwd=registry)
            print(f"... run {i + 1}", file=sys.stderr, flush=True)
            ours.append(
                timed(
                    [adaptergit, "commit", str(src), "--name", NAME, "-m", "large"], registry, env
                )
            )
            shutil.rmtree(registry)
            theirs.append(timed([md5sum, str(weights)], TMP, env))
    finally:
        if not args.keep:
            shutil.rmtree(TMP, ignore_errors=True)
    load = (load_start, os.getloadavg()[0])

    best, plain = min(t[0] for t in ours), min(t[0] for t in theirs)
    ratio = best / plain
    rss = max(t[2] for t in ours)
    ok = ratio <= TARGET_RATIO and rss < TARGET_RSS_MB * 1024 * 1024
    print(
        f"{'operation':<30}{'adaptergit s':>13}{'md5sum s':>10}{'ratio':>8}{'peak RSS':>10}  target"
    )
    print(
        f"{f'commit {size / 1e9:.2f} GB':<30}{best:>13.3f}{plain:>10.3f}{ratio:>7.2f}x"
        f"{rss / 2**20:>7.0f} MB  <={TARGET_RATIO}x, <{TARGET_RSS_MB} MB: {'yes' if ok else 'NO'}"
    )
    print(
        f"best of {args.repeat}; CPU of the best commit {min(ours)[1]:.2f} s; {os.cpu_count()} CPUs;"
        f" load average {load[0]:.1f} at the start, {load[1]:.1f} at the end"
    )
    if max(load) > (os.cpu_count() or 1) / 2:
        print("the machine was busy with other work: expect noisy figures")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "commit_large_s": round(best, 4),
            "commit_large_median_s": round(statistics.median(t[0] for t in ours), 4),
            "commit_large_cpu_s": round(min(ours)[1], 4),
            "md5sum_s": round(plain, 4),
            "commit_large_ratio": round(ratio, 3),
            "commit_large_peak_rss_mb": round(rss / 2**20, 1),
            "target_ratio": TARGET_RATIO,
            "target_rss_mb": TARGET_RSS_MB,
            "targets_met": int(ok),
            "bytes": size,
            "hidden": args.hidden,
            "layers": args.layers,
            "rank": args.rank,
            "modules": args.modules,
            "repeat": args.repeat,
            "cpus": os.cpu_count() or 0,
            "load_avg_max": round(max(load), 2),
        }
        args.out.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
