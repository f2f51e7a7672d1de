"""Time `adaptergit diff` on a large LoRA against computing the same numbers with full matrices.

The adapter: hidden size 8192, 80 layers, r=64 on q/k/v/o (all 8192x8192), 640 tensors, 335.5 M
parameters: 1.34 GB per version in fp32 (the default; --dtype f16/bf16 halves it). Version 2 is
version 1 plus a perturbation of every factor, so every module changed and must be computed. Both
versions are committed to a fresh registry; both sides then read the same two DVC cache objects.

- adaptergit: `adaptergit diff lora@v0.0.1 lora@v0.0.2 --json` (a whole subprocess): for each
  module the relative change ||dW2 - dW1|| / ||dW1|| and the cosine between dW1 and dW2, from
  (2r)x(2r) Gram matrices of the factors in float64.
- plain: a Python subprocess that loads both files with safetensors (torch) and, per module, forms
  dW = B @ A * scaling for both versions (8192x8192, float32 matmuls, as a user would write it)
  and takes the same two numbers from the full matrices.

The page cache is warm for both (one untimed run of adaptergit first; the files are read by the
plain side's first run). Figures are best of --repeat for adaptergit and of --plain-repeat for the
plain side (which takes minutes). adaptergit's numbers are checked, untimed, against float64
full-matrix ones on 8 modules; the plain float32 side's own rounding is reported as well.

Usage: python benchmarks/bench_diff.py [--dtype f32] [--repeat 3] [--out benchmarks/results/diff.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

from bench_core import HERE, bench_env, executable

TMP = HERE / "work" / "tmp-diff"
NAME = "lora"
WEIGHTS = "adapter_model.safetensors"
TARGET_RATIO = 0.1
MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
DTYPES = {"f32": ("F32", "float32"), "f16": ("F16", "float16"), "bf16": ("BF16", "bfloat16")}

NAIVE = r"""
import json, sys, time
import torch
from safetensors.torch import load_file

old_path, new_path, scaling = sys.argv[1], sys.argv[2], float(sys.argv[3])
old, new = load_file(old_path), load_file(new_path)
out = {}
for key in sorted(old):
    if not key.endswith(".lora_A.weight"):
        continue
    module = key[: -len(".lora_A.weight")]
    b = module + ".lora_B.weight"
    dw1 = scaling * (old[b].float() @ old[key].float())
    dw2 = scaling * (new[b].float() @ new[key].float())
    n1 = torch.linalg.norm(dw1)
    n2 = torch.linalg.norm(dw2)
    rel = torch.linalg.norm(dw2 - dw1) / n1
    cos = (dw1 * dw2).sum() / (n1 * n2)
    out[module] = [float(rel), float(cos)]
json.dump(out, sys.stdout)
"""


def write_adapter(
    folder: Path,
    hidden: int,
    layers: int,
    rank: int,
    dtype: str,
    seed: int,
    base: Path | None,
    modules: tuple[str, ...] = MODULES,
) -> int:
    """A PEFT-layout LoRA folder, written tensor by tensor (never whole in memory); returns the
    weights' size in bytes.

    With `base` (the first version's folder), each tensor is that version's plus a perturbation of
    a tenth of its scale; otherwise A and B are drawn as after some training. `modules` are the
    attention projections adapted in every layer.
    """
    import numpy as np

    st_dtype, np_name = DTYPES[dtype]
    folder.mkdir(parents=True)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.0,
        "target_modules": list(modules),
        "base_model_name_or_path": None,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
    }
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))
    names, shapes = [], []
    for layer in range(layers):
        for module in modules:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            names += [f"{prefix}.lora_A.weight", f"{prefix}.lora_B.weight"]
            shapes += [(rank, hidden), (hidden, rank)]
    size = 2 if dtype != "f32" else 4
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in zip(names, shapes, strict=True):
        n = shape[0] * shape[1] * size
        header[name] = {
            "dtype": st_dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + n],
        }
        offset += n
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(seed)
    previous = open(base / WEIGHTS, "rb") if base else None  # noqa: SIM115
    try:
        if previous is not None:
            (n,) = struct.unpack("<Q", previous.read(8))
            previous.seek(8 + n)
        with open(folder / WEIGHTS, "wb") as out:
            out.write(struct.pack("<Q", len(raw)) + raw)
            for shape in shapes:
                count = shape[0] * shape[1]
                if previous is not None:
                    data = _read(previous, count, dtype).astype(np.float32)
                    data += rng.standard_normal(count, dtype=np.float32) * np.float32(0.002)
                else:
                    data = rng.standard_normal(count, dtype=np.float32) * np.float32(0.02)
                out.write(_encode(data, dtype, np_name).tobytes())
    finally:
        if previous is not None:
            previous.close()
    return (folder / WEIGHTS).stat().st_size


def _read(stream: object, count: int, dtype: str):  # type: ignore[no-untyped-def]
    import numpy as np

    if dtype == "f32":
        return np.frombuffer(stream.read(count * 4), dtype="<f4")  # type: ignore[attr-defined]
    raw = np.frombuffer(stream.read(count * 2), dtype="<u2")  # type: ignore[attr-defined]
    if dtype == "f16":
        return raw.view("<f2")
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _encode(data, dtype: str, np_name: str):  # type: ignore[no-untyped-def]
    import numpy as np

    if dtype == "bf16":  # round to nearest even, as torch does
        bits = data.astype(np.float32).view(np.uint32)
        bits = bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))
        return (bits >> 16).astype("<u2")
    return data.astype(np_name)


def float64_check(objects: list[Path], result: dict, samples: int) -> tuple[float, float]:
    """Max differences of adaptergit's numbers from float64 full-matrix ones, on a few modules.

    Untimed. The plain float32 side is no reference: summing 67 M float32 products loses digits
    (its cosines can even exceed 1).
    """
    import torch
    from safetensors import safe_open

    changes = {m["name"]: m for m in result["module_changes"]}
    names = sorted(changes)[:: max(1, len(changes) // samples)][:samples]
    rel_err = cos_err = 0.0
    with safe_open(str(objects[0]), "pt") as old, safe_open(str(objects[1]), "pt") as new:
        for name in names:
            a, b = f"{name}.lora_A.weight", f"{name}.lora_B.weight"
            dw1 = 2.0 * (old.get_tensor(b).double() @ old.get_tensor(a).double())
            dw2 = 2.0 * (new.get_tensor(b).double() @ new.get_tensor(a).double())
            n1, n2 = torch.linalg.norm(dw1), torch.linalg.norm(dw2)
            rel = float(torch.linalg.norm(dw2 - dw1) / n1)
            cos = float((dw1 * dw2).sum() / (n1 * n2))
            rel_err = max(rel_err, abs(changes[name]["rel_change"] - rel) / rel)
            cos_err = max(cos_err, abs(changes[name]["cosine"] - cos))
    return rel_err, cos_err


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(
            f"bench_diff: {' '.join(cmd[:3])} ... exited {proc.returncode}:\n{proc.stderr}"
        )
    return elapsed, proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="f32")
    parser.add_argument("--hidden", type=int, default=8192)
    parser.add_argument("--layers", type=int, default=80)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="adaptergit runs (best kept)")
    parser.add_argument("--plain-repeat", type=int, default=1, help="plain runs (best kept)")
    parser.add_argument("--out", type=Path, help="write the metrics as flat JSON to this file")
    parser.add_argument("--keep", action="store_true", help="leave benchmarks/work/tmp-diff behind")
    args = parser.parse_args(argv)

    shutil.rmtree(TMP, ignore_errors=True)
    TMP.mkdir(parents=True)
    try:
        env = bench_env(TMP)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # see bench_status.py
        env["PYTHONPYCACHEPREFIX"] = str(TMP / "pycache")
        os.environ.update(env)
        print(f"... writing two {args.dtype} adapters", file=sys.stderr, flush=True)
        started = time.perf_counter()
        shape = (args.hidden, args.layers, args.rank)
        write_adapter(TMP / "v1", *shape, args.dtype, seed=1, base=None)
        write_adapter(TMP / "v2", *shape, args.dtype, seed=2, base=TMP / "v1")
        generated = time.perf_counter() - started
        size = (TMP / "v1" / WEIGHTS).stat().st_size
        print("... committing them", file=sys.stderr, flush=True)
        from adaptergit import Repo

        registry = TMP / "registry"
        registry.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=registry, check=True, env=env)
        started = time.perf_counter()
        with Repo.init(registry) as repo:
            for folder in ("v1", "v2"):
                repo.commit(TMP / folder, name=NAME, message=folder)
                shutil.rmtree(TMP / folder)
            md5s = [repo.resolve(f"{NAME}@v0.0.{i}").manifest.weights.md5 for i in (1, 2)]  # type: ignore[union-attr]
            objects = [repo.dvc.cache_path(m) for m in md5s]
        committed = time.perf_counter() - started

        ours_cmd = [executable("adaptergit"), "diff", f"{NAME}@v0.0.1", f"{NAME}@v0.0.2", "--json"]
        print("... adaptergit diff", file=sys.stderr, flush=True)
        run(ours_cmd, registry, env)  # warms the page cache and the bytecode
        ours, output = [], ""
        for _ in range(args.repeat):
            elapsed, output = run(ours_cmd, registry, env)
            ours.append(elapsed)
        print("... checking numbers against float64 full matrices", file=sys.stderr, flush=True)
        exact = float64_check(objects, json.loads(output), samples=8)
        script = TMP / "naive.py"
        script.write_text(NAIVE)
        plain_cmd = [sys.executable, str(script), *map(str, objects), str(2.0)]
        theirs, naive_out = [], ""
        for i in range(args.plain_repeat):
            print(f"... plain torch, run {i + 1}", file=sys.stderr, flush=True)
            elapsed, naive_out = run(plain_cmd, registry, env)
            theirs.append(elapsed)
    finally:
        if not args.keep:
            shutil.rmtree(TMP, ignore_errors=True)

    result = json.loads(output)
    naive = json.loads(naive_out)
    changes = {m["name"]: m for m in result["module_changes"]}
    assert set(changes) == set(naive), "the two sides saw different modules"
    rel_err = max(abs(changes[k]["rel_change"] - v[0]) / v[0] for k, v in naive.items())
    cos_err = max(abs(changes[k]["cosine"] - v[1]) for k, v in naive.items())
    best, plain = min(ours), min(theirs)
    ratio = best / plain
    ok = ratio <= TARGET_RATIO
    label = f"diff {args.layers}x{len(MODULES)} r{args.rank} {args.dtype}"
    print(f"{'operation':<26}{'adaptergit s':>13}{'plain s':>9}{'ratio':>8}{'target':>8}  ok")
    print(
        f"{label:<26}{best:>13.2f}{plain:>9.2f}{ratio:>7.3f}x{TARGET_RATIO:>7.1f}x  {'yes' if ok else 'NO'}"
    )
    print(
        f"{len(naive)} modules, {size / 1e9:.2f} GB per version, {os.cpu_count()} CPUs; against "
        f"float64 full matrices (8 modules) max difference of relative changes {exact[0]:.1e} "
        f"(relative), of cosines {exact[1]:.1e}; the plain float32 side differs by up to "
        f"{rel_err:.1e} and {cos_err:.1e} (its own rounding)"
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "diff_s": round(best, 3),
            "diff_median_s": round(statistics.median(ours), 3),
            "plain_s": round(plain, 3),
            "diff_ratio": round(ratio, 4),
            "target_ratio": TARGET_RATIO,
            "targets_met": int(ok),
            "modules": len(naive),
            "modules_changed": result["modules"]["changed"],
            "bytes_per_version": size,
            "dtype": args.dtype,
            "hidden": args.hidden,
            "layers": args.layers,
            "rank": args.rank,
            "max_rel_change_error_vs_float64": float(f"{exact[0]:.3g}"),
            "max_cosine_error_vs_float64": float(f"{exact[1]:.3g}"),
            "plain_float32_rel_change_difference": float(f"{rel_err:.3g}"),
            "plain_float32_cosine_difference": float(f"{cos_err:.3g}"),
            "generate_s": round(generated, 2),
            "commit_two_versions_s": round(committed, 2),
            "repeat": args.repeat,
            "plain_repeat": args.plain_repeat,
            "cpus": os.cpu_count() or 0,
        }
        if not all(math.isfinite(float(v)) for v in data.values() if isinstance(v, int | float)):
            raise SystemExit("bench_diff: non-finite figure")
        args.out.write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
