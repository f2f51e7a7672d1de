"""Run one benchmark as a DVC stage without ever losing recorded results, and write its headline.

    python benchmarks/stage.py NAME [--scratch DIR ...] -- python benchmarks/bench_NAME.py ... --out FILE

- The benchmark writes its full results to a temporary file beside FILE; only when it succeeds
  (exit 0, a JSON object) does that file replace FILE. A failed or interrupted benchmark leaves
  FILE as it was (the stages declare their files `persist: true`, so DVC does not delete them
  before running either).
- Then one small headline file per operation the benchmark measures, `benchmarks/metrics/OP.json`
  with the same six keys for every operation (`adaptergit_s`, `plain_s`, `ratio`, `target_ratio`,
  `target_s`, `met`), so that `dvc metrics show` prints one readable row per operation; everything
  else stays in the results file.
- Each `--scratch` folder (large generated data) is deleted at the end, whatever happened.

The targets come from the benchmark scripts themselves (one home for each number).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
METRICS = HERE / "metrics"


def _targets() -> dict[
    str, dict[str, tuple[str, str | None, str | None, float | None, float | None]]
]:
    """Stage -> operation -> (adaptergit key, plain key, ratio key, target ratio, target seconds)
    in that stage's results file. A ratio target is a ceiling, except for throughput (a floor)."""
    sys.path.insert(0, str(HERE))
    import bench_commit_large
    import bench_core
    import bench_diff
    import bench_hooks
    import bench_status
    import bench_sync
    import bench_team

    core = bench_core.TARGETS
    sync = {
        f"{way}_{kind}": (
            f"{way}_{kind}_s",
            f"{way}_{kind}_dvc_s",
            f"{way}_{kind}_ratio",
            bench_sync.TARGET,
            None,
        )
        for way in ("push", "fetch")
        for kind in ("dir", "ssh")
    }
    return {
        "core": {
            **{
                op: (f"{op}_s", f"{op}_plain_s", f"{op}_ratio", core[op], None)
                for op in ("commit", "checkout", "log", "help")
            },
            # no plain side run by default (gto show takes minutes): a target in seconds
            "log5000": ("log5000_s", None, None, None, bench_core.TARGETS_S["log5000"]),
        },
        "fingerprint": {
            "fingerprint_cold": (
                "fingerprint_cold_s",
                "cat_s",
                "throughput_ratio_vs_cat",
                0.7,
                None,
            ),
            "fingerprint_cached": ("fingerprint_cached_s", None, None, None, 0.05),
        },
        "sync": sync,
        "hooks": {
            "hook": (
                "hook_s",
                "dvc_hook_s",
                "hook_ratio",
                bench_hooks.TARGET_RATIO,
                bench_hooks.TARGET_SECONDS,
            )
        },
        "status": {
            "status": (
                "status_s",
                "dvc_status_s",
                "status_ratio",
                bench_status.TARGET_RATIO,
                bench_status.TARGET_SECONDS,
            )
        },
        "status_1000": {
            "status_1000": (
                "status_s",
                "dvc_status_s",
                "status_ratio",
                bench_status.TARGET_RATIO,
                bench_status.TARGET_SECONDS_1000,
            )
        },
        "commit_large": {
            "commit_large": (
                "commit_large_s",
                "md5sum_s",
                "commit_large_ratio",
                bench_commit_large.TARGET_RATIO,
                None,
            )
        },
        "diff": {"diff": ("diff_s", "plain_s", "diff_ratio", bench_diff.TARGET_RATIO, None)},
        "team": {
            "push_big_registry": (
                "push_new_s",
                "push_new_dvc_all_tags_s",
                "push_vs_dvc_ratio",
                bench_team.TARGET_VS_DVC,
                None,
            ),
            "push_scaling": (
                "push_new_s",
                "push_small_registry_s",
                "push_scaling_ratio",
                bench_team.TARGET_SCALING,
                None,
            ),
            # its target is in fetches and pushes (race_fetches, race_pushes in the results)
            "race_push": ("race_push_s", "push_new_s", "race_over_push_ratio", None, None),
        },
    }


def headline(stage: str, results: dict[str, object]) -> dict[str, dict[str, float | int | None]]:
    """Operation -> its six headline figures, from a stage's results."""

    def number(key: str | None) -> float | None:
        value = results.get(key) if key else None
        return float(value) if isinstance(value, int | float) else None

    found = {}
    for op, (ours_key, plain_key, ratio_key, target_ratio, target_s) in _targets()[stage].items():
        ours, ratio = number(ours_key), number(ratio_key)
        if ours is None:
            continue  # not measured in this run (e.g. --only)
        met = target_s is None or ours < target_s
        if target_ratio is not None and ratio is not None:
            floor = op == "fingerprint_cold"  # a throughput ratio: higher is better
            met = met and (ratio >= target_ratio if floor else ratio <= target_ratio)
        found[op] = {
            "adaptergit_s": ours,
            "plain_s": number(plain_key),
            "ratio": ratio,
            "target_ratio": target_ratio,
            "target_s": target_s,
            "met": int(met),
        }
    return found


def _write(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    import argparse

    if "--" not in argv or "--out" not in argv[argv.index("--") :]:
        print(__doc__, file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="stage.py", usage=__doc__)
    parser.add_argument("stage", choices=sorted(_targets()))
    parser.add_argument("--scratch", type=Path, action="append", default=[])
    args = parser.parse_args(argv[:split])
    stage, scratch, command = args.stage, args.scratch, argv[split + 1 :]
    out = Path(command[command.index("--out") + 1])
    tmp = out.with_name(f".{out.name}.running")
    command[command.index("--out") + 1] = str(tmp)
    started = time.monotonic()
    try:
        code = subprocess.run(command).returncode
        if code == 0:
            results = json.loads(tmp.read_text())
            if not isinstance(results, dict):
                raise ValueError(f"{tmp} is not a JSON object")
            os.replace(tmp, out)
            METRICS.mkdir(exist_ok=True)
            for op, figures in headline(stage, results).items():
                _write(METRICS / f"{op}.json", dict(figures))
        else:
            print(f"stage {stage} failed (exit {code}); {out} kept as it was", file=sys.stderr)
        return code
    finally:
        tmp.unlink(missing_ok=True)
        for folder in scratch:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"stage {stage}: {time.monotonic() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
