"""Benchmark base-model fingerprinting against `cat FILE > /dev/null` on the same warm file.

Creates a safetensors "base model" of --size-mb (large F16/F32 matrices plus small norms) in --dir
unless it is already there, warms the page cache, then measures in one run:

- cat: `cat FILE > /dev/null`, best of --repeat;
- cold: fingerprint_model with an empty hash cache (all tensor bytes hashed), best of --repeat;
- cached: fingerprint_model again with the filled cache (headers only), best of --repeat.

Usage: python benchmarks/bench_fingerprint.py [--size-mb 1500] [--dir DIR] [--out metrics.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

CHUNK = 64 << 20
DTYPE_SIZES = {"F16": 2, "F32": 4}


def plan_tensors(total_bytes: int) -> list[tuple[str, str, list[int]]]:
    """Tensors shaped like a small Llama's, adding layers until `total_bytes` is reached."""
    hidden, inner = 4096, 11008
    tensors: list[tuple[str, str, list[int]]] = [
        ("model.embed_tokens.weight", "F16", [32000, hidden])
    ]
    used = 32000 * hidden * 2
    layer = 0
    while used < total_bytes:
        for name, dtype, shape in (
            ("mlp.down_proj.weight", "F16", [hidden, inner]),
            ("self_attn.q_proj.weight", "F32", [hidden, hidden]),
            ("input_layernorm.weight", "F32", [hidden]),
            ("self_attn.q_proj.bias", "F16", [hidden]),
        ):
            nbytes = DTYPE_SIZES[dtype] * math.prod(shape)
            if used >= total_bytes:
                break
            if len(shape) == 2 and used + nbytes > total_bytes:  # shorten the last matrix to fit
                rows = max(1, (total_bytes - used) // (DTYPE_SIZES[dtype] * shape[1]))
                shape = [rows, shape[1]]
                nbytes = DTYPE_SIZES[dtype] * math.prod(shape)
            tensors.append((f"model.layers.{layer}.{name}", dtype, shape))
            used += nbytes
        layer += 1
    return tensors


def create_model(path: Path, total_bytes: int) -> None:
    """Write the model with random bytes from numpy, 64 MiB at a time, then rename into place."""
    import numpy as np

    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, dtype, shape in plan_tensors(total_bytes):
        nbytes = DTYPE_SIZES[dtype] * math.prod(shape)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(0)
    top = np.iinfo(np.uint64).max
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as stream:
        stream.write(len(raw).to_bytes(8, "little") + raw)
        left = offset
        while left:
            n = min(CHUNK, left)
            block = rng.integers(0, top, size=(n + 7) // 8, dtype=np.uint64, endpoint=True)
            stream.write(memoryview(block).cast("B")[:n])
            left -= n
    os.replace(partial, path)


def best_of(repeat: int, run: Callable[[], float]) -> tuple[float, list[float]]:
    times = [run() for _ in range(repeat)]
    return min(times), times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1500, help="model size in MB (default 1500)")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "adaptergit-bench",
        help="where the model file is kept between runs",
    )
    parser.add_argument("--out", type=Path, help="write the metrics as JSON to this file")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    args = parser.parse_args(argv)

    from adaptergit.fingerprint import fingerprint_model
    from adaptergit.hashcache import RACY_WINDOW_NS, HashCache
    from adaptergit.safetensors_format import read_header

    args.dir.mkdir(parents=True, exist_ok=True)
    model = args.dir / f"base-{args.size_mb}mb.safetensors"
    if not model.exists():
        started = time.perf_counter()
        create_model(model, args.size_mb * 1_000_000)
        print(f"created {model} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    header = read_header(model)
    size = model.stat().st_size

    # Hashes of a file modified within the racy window are not cached; wait it out once.
    fresh_for = model.stat().st_mtime_ns + RACY_WINDOW_NS - time.time_ns()
    if fresh_for > 0:
        time.sleep(fresh_for / 1e9 + 0.05)

    subprocess.run(
        ["cat", str(model)], stdout=subprocess.DEVNULL, check=True
    )  # warm the page cache

    def cat() -> float:
        started = time.perf_counter()
        subprocess.run(["cat", str(model)], stdout=subprocess.DEVNULL, check=True)
        return time.perf_counter() - started

    with tempfile.TemporaryDirectory() as scratch:
        caches = iter(range(10**6))

        def cold() -> float:
            cache = HashCache(Path(scratch) / f"cold-{next(caches)}")
            started = time.perf_counter()
            fingerprint_model(model, cache=cache)
            elapsed = time.perf_counter() - started
            cache.close()
            return elapsed

        filled = Path(scratch) / "filled"
        reference = fingerprint_model(model, cache=HashCache(filled))

        def cached() -> float:
            cache = HashCache(filled)  # a fresh instance, as a new command would open
            started = time.perf_counter()
            result = fingerprint_model(model, cache=cache)
            elapsed = time.perf_counter() - started
            cache.close()
            assert result == reference
            return elapsed

        cat_s, cat_runs = best_of(args.repeat, cat)
        cold_s, cold_runs = best_of(args.repeat, cold)
        cached_s, cached_runs = best_of(max(args.repeat, 5), cached)

    metrics = {
        "fingerprint_cold_s": round(cold_s, 4),
        "cat_s": round(cat_s, 4),
        "throughput_ratio_vs_cat": round(cat_s / cold_s, 3),
        "fingerprint_cached_s": round(cached_s, 5),
        "size_bytes": size,
        "tensors": len(header.tensors),
        "cpus": os.cpu_count(),
        "runs": {
            "cat_s": cat_runs,
            "fingerprint_cold_s": cold_runs,
            "fingerprint_cached_s": cached_runs,
        },
    }
    gb = size / 1e9
    rows = [
        ("cat FILE > /dev/null", cat_s, f"{gb / cat_s:.2f} GB/s"),
        (
            "fingerprint, empty cache",
            cold_s,
            f"{gb / cold_s:.2f} GB/s  ({cat_s / cold_s:.2f}x cat)",
        ),
        ("fingerprint, cached", cached_s, "headers only"),
    ]
    print(
        f"{model.name}: {size / 1e6:.0f} MB, {len(header.tensors)} tensors, {os.cpu_count()} CPUs"
    )
    print(f"{'measurement':<28}{'best s':>10}  rate")
    for label, seconds, rate in rows:
        print(f"{label:<28}{seconds:>10.4f}  {rate}")
    if args.out:
        args.out.write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
