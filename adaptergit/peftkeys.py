"""PEFT's key grammar: what the tensor names in ``adapter_model.safetensors`` say.

PEFT saves a tuner layer's tensors as ``base_model.model.<module path>.<part>[.<rest>]``
(``peft.utils.save_and_load.get_peft_model_state_dict``, with the adapter name removed), e.g.::

    base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight      LoRA A, (r, in)
    base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight      LoRA B, (out, r)
    base_model.model.model.embed_tokens.lora_embedding_A                LoRA on an embedding, (r, vocab)
    base_model.model.model.layers.0.self_attn.q_proj.lora_E             AdaLoRA's singular values, (r, 1)
    base_model.model.model.layers.0.mlp.down_proj.hada_w1_a             LoHa

The part is the first path component that starts with the tuner's prefix (the ``prefix`` attribute
of PEFT's tuner classes: ``lora_``, ``hada_``, ``lokr_``, ...); what precedes it is the module.
Every module that reads tensor names (validation, diff, loading, the diff driver) parses them here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# The wrapper PEFT puts in front of the base model's own module names when it saves.
PEFT_PREFIX = "base_model.model."

# peft_type -> the name prefix of its tuner layers' tensors (PEFT's `<Tuner>Layer.prefix`, the
# ``PEFT_TYPE_TO_PREFIX_MAPPING`` of PEFT 0.21). Prompt-learning methods (prompt, prefix and
# p-tuning, CPT, ...) have no layers: their tensors name no module of the base.
LAYER_PREFIXES = {
    "LORA": "lora_",
    "ADALORA": "lora_",
    "LOHA": "hada_",
    "LOKR": "lokr_",
    "IA3": "ia3_",
    "OFT": "oft_",
    "BOFT": "boft_",
    "HRA": "hra_",
    "VBLORA": "vblora_",
    "FOURIERFT": "fourierft_",
    "VERA": "vera_lambda_",
    "PVERA": "pvera_lambda_",
    "ADAMSS": "adamss_",
    "BEFT": "beft_",
    "C3A": "c3a_",
    "DEFT": "deft_",
    "DELORA": "delora_",
    "GLORA": "glora_",
    "GRALORA": "gralora_",
    "HIRA": "hira_",
    "LILY": "lily_",
    "LN_TUNING": "ln_tuning_",
    "MISS": "miss_",
    "OSF": "osf_",
    "PEANUT": "peanut_",
    "POLY": "poly_",
    "PSOFT": "psoft_",
    "RANDLORA": "randlora_",
    "ROAD": "road_",
    "SHADOW": "shadow_",
    "SHIRA": "shira_",
    "SUPERTUNING": "supertuning_",
    "TINYLORA": "tinylora_",
    "TRAINABLE_TOKENS": "trainable_tokens_",
    "UNILORA": "unilora_",
    "WAVEFT": "waveft_",
}

# LoRA's low-rank factors: ``lora_A`` (r, in) and ``lora_B`` (out, r) of a Linear or Conv layer,
# ``lora_embedding_A`` (r, vocab) and ``lora_embedding_B`` (dim, r) of an Embedding.
LORA_A = "lora_A"
LORA_B = "lora_B"
LORA_EMBEDDING_A = "lora_embedding_A"
LORA_EMBEDDING_B = "lora_embedding_B"
LORA_E = "lora_E"  # AdaLoRA's diagonal, (r, 1)
LORA_FACTORS = frozenset({LORA_A, LORA_B, LORA_EMBEDDING_A, LORA_EMBEDDING_B})

_NATURAL = re.compile(r"(\d+)")


@dataclass(frozen=True, kw_only=True, slots=True)
class PeftKey:
    """One tensor name of a PEFT adapter, split at its tuner part.

    Attributes:
        module: the module path as saved, PEFT's ``base_model.model.`` wrapper included.
        part: the tuner component (``lora_A``, ``lora_E``, ``hada_w1_a``, ...).
        rest: what follows the part (``weight``, or "" when nothing does).
    """

    module: str
    part: str
    rest: str = ""

    @property
    def model_module(self) -> str:
        """The module's name in the base model itself (PEFT's wrapper prefix removed)."""
        return model_name(self.module)

    @property
    def lora_side(self) -> str | None:
        """ "A" or "B" for LoRA's factors (embeddings included), else None."""
        if self.part in (LORA_A, LORA_EMBEDDING_A):
            return "A"
        if self.part in (LORA_B, LORA_EMBEDDING_B):
            return "B"
        return None


def parse_key(name: str, prefix: str = "lora_") -> PeftKey | None:
    """Split a saved tensor name at its last component starting with `prefix`.

    The last, so that a base-model module whose own name starts with the prefix is still part
    of the module path.

    Args:
        name: a tensor name from ``adapter_model.safetensors``.
        prefix: the tuner's tensor prefix, `LAYER_PREFIXES[peft_type]`; LoRA's by default.

    Returns None for a tensor that is not a tuner layer's (a module to save, trainable tokens).
    """
    parts = name.split(".")
    for index in range(len(parts) - 1, 0, -1):
        part = parts[index]
        if part.startswith(prefix):
            return PeftKey(
                module=".".join(parts[:index]), part=part, rest=".".join(parts[index + 1 :])
            )
    return None


def rank_zero_modules(
    tensors: Iterable[tuple[str, tuple[int, ...]]], peft_type: object
) -> frozenset[str]:
    """AdaLoRA modules (as saved, wrapper included) that its rank budget pruned to rank 0.

    PEFT saves such a module's ``lora_A`` as (0, in), ``lora_B`` as (out, 0) and ``lora_E`` as
    (0, 1), and loads them back (peft#1539). A module counts only when all three are there, 2-D,
    with rank 0 and their other dimension non-zero: a 1-D ``[0]`` tensor (DeepSpeed ZeRO-3's
    empty shard) never does.
    """
    if not isinstance(peft_type, str) or peft_type.upper() != "ADALORA":
        return frozenset()
    parts: dict[str, dict[str, tuple[int, ...]]] = {}
    for name, shape in tensors:
        key = parse_key(name)
        if key is not None and key.part in (LORA_A, LORA_B, LORA_E) and key.rest == "":
            parts.setdefault(key.module, {})[key.part] = tuple(shape)
    pruned = set()
    for module, found in parts.items():
        a, b, e = found.get(LORA_A), found.get(LORA_B), found.get(LORA_E)
        if (
            a is not None
            and b is not None
            and e is not None
            and len(a) == len(b) == len(e) == 2
            and a[0] == b[1] == e[0] == 0
            and a[1] > 0
            and b[0] > 0
            and e[1] == 1
        ):
            pruned.add(module)
    return frozenset(pruned)


def layer_prefix(peft_type: object) -> str | None:
    """The tensor prefix of `peft_type`'s tuner layers, or None for methods without layers
    (prompt tuning and the like) or an unknown type."""
    return LAYER_PREFIXES.get(peft_type.upper()) if isinstance(peft_type, str) else None


def is_module_level(module: str) -> bool:
    """Whether a saved module name is one of the base model's modules (``base_model.model.X``,
    or a bare name as hand-made adapters have), not a tensor PEFT keeps on its own wrapper for
    every layer to share (VeRA's ``base_model.vera_A``, FRoD's ``base_model.frod_V``)."""
    return module != "base_model" and (
        module.startswith(PEFT_PREFIX) or not module.startswith("base_model.")
    )


def model_name(module: str) -> str:
    """``base_model.model.x.q_proj`` -> ``x.q_proj``: a module as the base model names it."""
    return module.removeprefix(PEFT_PREFIX)


# Modules PEFT puts between a base model's module and its own names: the layer a tuner wraps
# (``base_layer``; nested, one per parameter, for ``target_parameters``), a module to save and its
# original (older PEFT saved ``lm_head.modules_to_save.weight``), and the trainable-tokens layer
# inside its wrapper.
WRAPPER_INFIXES = ("base_layer", "modules_to_save", "original_module", "token_adapter")


def strip_wrappers(name: str) -> str:
    """A module or tensor name as the base model names it: PEFT's ``base_model.model.`` prefix
    and its wrapper infixes (`WRAPPER_INFIXES`) removed."""
    return ".".join(p for p in model_name(name).split(".") if p not in WRAPPER_INFIXES)


def wrapper_depth(module: str) -> int:
    """How many ``base_layer`` wrappers a saved module name ends in: 0 for a module PEFT wrapped
    once, k for the k-th parameter wrapper of ``target_parameters`` counted from the outside."""
    depth = 0
    parts = module.split(".")
    while parts and parts[-1] == "base_layer":
        parts.pop()
        depth += 1
    return depth


def short_module_name(name: str) -> str:
    """A module or tensor name for display: PEFT's wrapper and the model's own ``model.`` dropped."""
    for prefix in (PEFT_PREFIX + "model.", PEFT_PREFIX):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def natural_key(text: str) -> list[int | str]:
    """Sort key that orders ``layers.2`` before ``layers.10``."""
    return [int(p) if p.isdigit() else p for p in _NATURAL.split(text)]


__all__ = [
    "LAYER_PREFIXES",
    "LORA_A",
    "LORA_B",
    "LORA_E",
    "LORA_EMBEDDING_A",
    "LORA_EMBEDDING_B",
    "LORA_FACTORS",
    "PEFT_PREFIX",
    "WRAPPER_INFIXES",
    "PeftKey",
    "is_module_level",
    "layer_prefix",
    "model_name",
    "natural_key",
    "parse_key",
    "rank_zero_modules",
    "short_module_name",
    "strip_wrappers",
    "wrapper_depth",
]
