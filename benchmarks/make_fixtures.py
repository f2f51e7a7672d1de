"""Write the adapters the core benchmarks commit, check out and log, under benchmarks/work/fixtures.

- lora-67mb/v1 .. v3: a Llama-7B-shaped fp32 LoRA (r=16 on q,k,v,o_proj of 32 layers, 67.1 MB) in
  PEFT's on-disk form, one random seed per variant so that each is a new version;
- lora-small: a 2-layer r=4 LoRA (a few KB), the seed of the 500 versions `adaptergit log` reads.

Random data comes from numpy and goes through safetensors.numpy.save_file: no torch, a few seconds.
Existing variants are kept; each is written to a temporary folder and renamed into place, so a
killed run leaves nothing half-written.

Usage: python benchmarks/make_fixtures.py [--dir benchmarks/work/fixtures]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE / "work" / "fixtures"

LARGE = "lora-67mb"
SMALL = "lora-small"
VARIANTS = 3  # the commit benchmark records v2 over v1; the checkout one goes back to v1 from v2
BASE_MODEL = "meta-llama/Llama-2-7b-hf"
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def adapter_config(r: int) -> dict[str, object]:
    """adapter_config.json as PEFT's LoraConfig.save_pretrained writes it for a causal LM."""
    return {
        "alpha_pattern": {},
        "auto_mapping": None,
        "base_model_name_or_path": BASE_MODEL,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "lora_alpha": 2 * r,
        "lora_dropout": 0.05,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": r,
        "rank_pattern": {},
        "revision": None,
        "target_modules": list(TARGETS),
        "task_type": "CAUSAL_LM",
        "use_dora": False,
        "use_rslora": False,
    }


def lora_tensors(seed: int, *, layers: int, hidden: int, r: int) -> dict[str, object]:
    """PEFT's state-dict keys and shapes, filled like a trained adapter (B no longer zero)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tensors: dict[str, object] = {}
    for layer in range(layers):
        for module in TARGETS:
            key = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            a = rng.standard_normal((r, hidden), dtype=np.float32)
            a *= 1 / hidden**0.5
            b = rng.standard_normal((hidden, r), dtype=np.float32)
            b *= 0.01
            tensors[f"{key}.lora_A.weight"] = a
            tensors[f"{key}.lora_B.weight"] = b
    return tensors


def write_adapter(folder: Path, seed: int, *, layers: int, hidden: int, r: int) -> bool:
    """Write one adapter folder unless it is already there; return whether it was written."""
    from safetensors.numpy import save_file

    if (folder / "adapter_model.safetensors").is_file() and (
        folder / "adapter_config.json"
    ).is_file():
        return False
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "adapter_config.json").write_text(
        json.dumps(adapter_config(r), indent=2, sort_keys=True) + "\n"
    )
    save_file(
        lora_tensors(seed, layers=layers, hidden=hidden, r=r),  # type: ignore[arg-type]
        str(partial / "adapter_model.safetensors"),
        metadata={"format": "pt"},
    )
    (partial / "adapter_model.safetensors").chmod(0o644)  # save_file creates it 0600
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return True


def make_fixtures(root: Path) -> list[Path]:
    """Create every fixture under `root`; return the adapter folders."""
    folders = []
    for index in range(1, VARIANTS + 1):
        folders.append(root / LARGE / f"v{index}")
        started = time.perf_counter()
        if write_adapter(folders[-1], seed=index, layers=32, hidden=4096, r=16):
            print(f"wrote {folders[-1]} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    folders.append(root / SMALL)
    if write_adapter(folders[-1], seed=0, layers=2, hidden=64, r=4):
        print(f"wrote {folders[-1]}", file=sys.stderr)
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where to put them")
    args = parser.parse_args(argv)
    for folder in make_fixtures(args.dir):
        size = (folder / "adapter_model.safetensors").stat().st_size
        print(f"{folder}: {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
