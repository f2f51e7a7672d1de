"""Comparing two adapter versions: config, metrics, base model, and the weights module by module.

Weight numbers are those of each module's effective update ΔW, computed from the factors alone
(`UPDATES` lists what that is for each PEFT method). Written as ΔW = s·U·V (U: d_out×k, V: k×d_in),
``||ΔW||² = s²·tr((UᵀU)(VVᵀ))`` and ``<ΔW1, ΔW2> = s1·s2·tr((U1ᵀU2)(V2V1ᵀ))``, so one Gram matrix
of the stacked factors ``[U1 U2]`` and one of ``[V1; V2]`` (each (k1+k2)² from d×(k1+k2)) give
both norms, the inner product and ``||ΔW2 − ΔW1||² = ||ΔW2||² + ||ΔW1||² − 2<ΔW1, ΔW2>``: the
d_out×d_in updates are never formed. LoRA is U = B, V = A; AdaLoRA V = diag(E)·A; LoHa's
(B1·A1)⊙(B2·A2) has rank-r1·r2 factors (row-wise products); a LoKr update W1 ⊗ W2 has
``||W1 ⊗ W2||² = ||W1||²·||W2||²`` and ``<W1 ⊗ W2, W1' ⊗ W2'> = <W1, W1'>·<W2, W2'>``; a stacked
MoE parameter's LoRA is one such update per expert. Where the adapter alone does not define the
update (IA3 and OFT act on the base's own weights, prompt tuning adds tokens: `PER_TENSOR`), diff
compares tensors and says so. Products accumulate in float64 so that small relative changes
survive the subtraction. Tensors are read through a memory map of the DVC cache object; bf16,
which numpy lacks, is widened by hand (its 16 bits are the top half of a float32). Tensors whose
BLAKE3 (recorded in each manifest) is unchanged are not read at all.

The operation that resolves and fetches two versions is `adaptergit.ops.diff`; this module only
compares what it is given.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import mmap
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from adaptergit import peftkeys
from adaptergit.metrics import flatten
from adaptergit.peftkeys import short_module_name

if TYPE_CHECKING:
    from adaptergit.manifest import TensorRecord, Version
    from adaptergit.modelclass import ModuleInfo
    from adaptergit.safetensors_format import TensorSpec

# Module statuses, in the order a reader wants them: what changed shape first, then by size.
ADDED, REMOVED, RESHAPED, CHANGED, UNCHANGED = (
    "added",
    "removed",
    "reshaped",
    "changed",
    "unchanged",
)
_STATUS_ORDER = {ADDED: 0, REMOVED: 1, RESHAPED: 2, CHANGED: 3, UNCHANGED: 4}

# Metric names whose better direction is known, matched against the last dotted component
# (compiled on first use: `adaptergit status` imports this module for its constants).
_LOWER_IS_BETTER = (
    r"(^|[_\-/ ])(loss|nll|perplexity|ppl|error|err|wer|cer|mse|mae|rmse|latency|runtime|time|"
    r"seconds|ms|memory|bits_per_byte|bpb)($|[_\-/ ])"
)
_HIGHER_IS_BETTER = (
    r"(^|[_\-/ ])(acc|accuracy|f1|bleu|rouge\w*|precision|recall|auc|auroc|exact_match|em|"
    r"score|map|ndcg|mrr|pass@\d+|pass_at_\d+|win_rate|reward|throughput|samples_per_second|"
    r"tokens_per_second|r2|spearman|pearson|mcc|chrf|meteor)($|[_\-/ ])"
)

_NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}
# Rows of a plain tensor converted to float64 at a time (keeps memory flat for lm_head copies).
_CHUNK_ELEMENTS = 1 << 22


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ValueChange:
    """One adapter_config.json field that differs; None stands for absent."""

    key: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``key``, ``old``, ``new`` (JSON values of the config)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricChange:
    """One metric in either version: values, the change, and whether that is better if known."""

    key: str
    old: float | int | None
    new: float | int | None
    better: str | None  # "lower", "higher", or None when the direction is not known

    @property
    def delta(self) -> float | None:
        """``new - old``, or None when the metric is absent from either version."""
        if self.old is None or self.new is None:
            return None
        return self.new - self.old

    @property
    def improved(self) -> bool | None:
        """Whether the change is for the better; None if unknown, unchanged or one-sided."""
        delta = self.delta
        if delta is None or self.better is None or delta == 0:
            return None
        return delta < 0 if self.better == "lower" else delta > 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the fields with the derived ``delta`` and ``improved``.

        Written by hand: `dataclasses.asdict` knows no properties, and the JSON has always had
        ``delta`` between ``new`` and ``better``.
        """
        return {
            "key": self.key,
            "old": self.old,
            "new": self.new,
            "delta": self.delta,
            "better": self.better,
            "improved": self.improved,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class BaseComparison:
    """Whether two versions were made for the same base model (None: not known for both)."""

    same: bool | None
    old: str
    new: str
    basis: str  # "content", "structure", "name" or "unknown"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``same``, ``old``, ``new``, ``basis``."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, kw_only=True, slots=True)
class ModuleChange:
    """One module (an update from factors, or another tensor such as a modules_to_save copy)
    across versions.

    `kind` is ``lora`` (LoRA, AdaLoRA, DoRA's direction, one expert of a MoE parameter),
    ``loha``, ``lokr`` or ``vera`` for an effective update ΔW, whose (d_out, d_in) is the shape and whose
    norms are those of ΔW (`UPDATES`); ``magnitude`` (DoRA's magnitude vector) or ``tensor`` for a
    tensor compared as it is. `rel_change` is ||new − old|| / ||old|| and `cosine` the cosine
    similarity of old and new.
    """

    name: str
    status: str
    kind: str  # "lora" or "tensor"
    shape_old: tuple[int, ...] | None = None
    shape_new: tuple[int, ...] | None = None
    rank_old: int | None = None
    rank_new: int | None = None
    dtype_old: str | None = None
    dtype_new: str | None = None
    norm_old: float | None = None
    norm_new: float | None = None
    rel_change: float | None = None
    cosine: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields: shapes as lists, an infinite number as "inf"."""
        return dataclasses.asdict(self, dict_factory=_json_fields)


def _finite(value: float | None) -> float | str | None:
    """JSON has no infinity: a change from an all-zero update is written as the string "inf"."""
    if value is None or math.isfinite(value):
        return value
    return "inf" if value > 0 else "-inf"


def _json_fields(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """`dataclasses.asdict` factory: tuples become lists, infinite floats strings (`_finite`)."""
    return {
        k: list(v) if isinstance(v, tuple) else _finite(v) if isinstance(v, float) else v
        for k, v in items
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class AdapterDiff:
    """What changed from one adapter version to another; modules come largest change first."""

    old: str
    new: str
    old_commit: str
    new_commit: str
    weights_identical: bool
    config: tuple[ValueChange, ...]
    metrics: tuple[MetricChange, ...]
    base: BaseComparison
    modules: tuple[ModuleChange, ...] = field(default_factory=tuple)
    # "METHOD: why" for each method of either version whose update is not defined by the adapter
    # alone, so that its modules are compared per tensor only
    per_tensor: tuple[str, ...] = ()

    def count(self, status: str) -> int:
        """How many modules have `status` (``added``, ``removed``, ``reshaped``, ...)."""
        return sum(1 for m in self.modules if m.status == status)

    @property
    def changed_modules(self) -> tuple[ModuleChange, ...]:
        """The modules whose status is not ``unchanged``, largest change first."""
        return tuple(m for m in self.modules if m.status != UNCHANGED)

    @property
    def summary(self) -> str:
        """One line: how many modules changed, and the largest changes first."""
        total = len(self.modules)
        changed = self.changed_modules
        if not changed:
            return f"weights: none of {total} modules changed" + (
                " (identical files)" if self.weights_identical else ""
            )
        parts = [f"{self.count(s)} {s}" for s in (ADDED, REMOVED, RESHAPED) if self.count(s)]
        text = f"weights: {len(changed)} of {total} modules changed"
        if parts:
            text += f" ({', '.join(parts)})"
        largest = [m for m in changed if m.status == CHANGED and m.rel_change is not None][:3]
        if largest:
            text += "; largest: " + ", ".join(
                f"{short_module_name(m.name)} {_rel_text(m.rel_change)}" for m in largest
            )
        return text

    @property
    def per_tensor_note(self) -> str | None:
        """A line saying which methods are compared per tensor only, and why; None if none."""
        if not self.per_tensor:
            return None
        return "per-tensor only (no weight update from the adapter alone): " + "; ".join(
            self.per_tensor
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the fields, the `summary`, and module counts per status.

        Written by hand: it adds derived values (``summary``, the ``modules`` counts) and names
        some fields as the JSON always has (``base_model``, ``per_tensor_only``,
        ``module_changes``), which `dataclasses.asdict` cannot.
        """
        return {
            "old": self.old,
            "new": self.new,
            "old_commit": self.old_commit,
            "new_commit": self.new_commit,
            "summary": self.summary,
            "per_tensor_only": list(self.per_tensor),
            "weights_identical": self.weights_identical,
            "config": [c.to_dict() for c in self.config],
            "metrics": [m.to_dict() for m in self.metrics],
            "base_model": self.base.to_dict(),
            "modules": {
                "total": len(self.modules),
                **{s: self.count(s) for s in _STATUS_ORDER},
            },
            "module_changes": [m.to_dict() for m in self.modules],
        }


def _rel_text(value: float | None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "inf"
    return f"{value:.3g}"


# --- config, metrics, base model ----------------------------------------------------------------


def _normalised(value: Any) -> Any:
    # PEFT keeps target_modules in a set, so its saved order varies between runs.
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sorted(value)
    return value


def config_changes(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> list[ValueChange]:
    """Fields of adapter_config.json that differ (lists of names compared as sets).

    Lists of strings (``target_modules``, which PEFT keeps in a set) are compared sorted.

    Args:
        old, new: the two versions' ``adapter_config.json``; None counts as empty.

    Returns:
        One change per differing key, sorted by key; an absent key is None on its side.
    """
    old, new = old or {}, new or {}
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if _normalised(a) != _normalised(b):
            changes.append(ValueChange(key=key, old=a, new=b))
    return changes


def better_direction(key: str) -> str | None:
    """'lower' for losses and errors, 'higher' for accuracies and scores, else None."""
    last = key.rsplit(".", 1)[-1]
    for text in (last, key):
        if re.search(_LOWER_IS_BETTER, text, re.I):
            return "lower"
        if re.search(_HIGHER_IS_BETTER, text, re.I):
            return "higher"
    return None


def metric_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[MetricChange]:
    """Every metric of either version (nested keys dotted), with its better direction if known.

    Args:
        old, new: the two versions' metrics (``metrics.json``), possibly nested.

    Returns:
        One change per dotted key of either side, sorted by key; the direction comes from the
        key's name (`better_direction`).
    """
    a, b = flatten(old or {}), flatten(new or {})
    return [
        MetricChange(key=k, old=a.get(k), new=b.get(k), better=better_direction(k))
        for k in sorted(set(a) | set(b))
    ]


def compare_base(old: Version, new: Version) -> BaseComparison:
    """Same base model? By content hash when both know it, else structure hash, else name.

    Args:
        old, new: the two versions; their manifests' base-model fingerprints are compared.

    Returns:
        The comparison; hashes are shortened to 12 hex digits. By name, ``same`` is None when
        the names agree but the revisions do not, and when neither hash nor name is known.
    """
    fa, fb = old.manifest.base_model, new.manifest.base_model
    for basis, x, y in (
        ("content", fa.content_hash, fb.content_hash),
        ("structure", fa.structure_hash, fb.structure_hash),
    ):
        if x and y:
            return BaseComparison(same=x == y, old=x[:12], new=y[:12], basis=basis)
    if fa.name_or_path and fb.name_or_path:
        same = fa.name_or_path == fb.name_or_path and fa.revision == fb.revision
        return BaseComparison(
            same=True if same else None if fa.name_or_path == fb.name_or_path else False,
            old=fa.name_or_path,
            new=fb.name_or_path,
            basis="name",
        )
    return BaseComparison(same=None, old=fa.short, new=fb.short, basis="unknown")


# --- weights: what each PEFT method's update is -------------------------------------------------

# Row kinds: an effective weight update computed from its factors, or one tensor as it is.
KIND_LORA = "lora"  # LoRA (rsLoRA, rank/alpha patterns, DoRA's direction, MoE experts), AdaLoRA
KIND_LOHA = "loha"
KIND_LOKR = "lokr"
KIND_VERA = "vera"
KIND_MAGNITUDE = "magnitude"  # DoRA's magnitude vector, compared as a tensor
KIND_TENSOR = "tensor"

# PEFT methods whose update diff computes from the factors, and the update it computes.
UPDATES = {
    "LORA": "ΔW = s·B·A, s = alpha/r (alpha/√r with rsLoRA, per rank/alpha pattern); DoRA: the "
    "direction's s·B·A, its magnitude vector as a tensor; MoE target_parameters: per expert",
    "ADALORA": "ΔW = B·diag(E)·A·alpha/(init_r + 1e-5)",
    "LOHA": "ΔW = s·(B1·A1)⊙(B2·A2), s = alpha/r",
    "LOKR": "ΔW = s·(W1 ⊗ W2), s = alpha/r, each W whole or a low-rank product",
    "VERA": "ΔW = diag(λb)·B·diag(λd)·A, A and B the shared projections, sliced to the layer "
    "(needs the base model on disk for the layers' sizes)",
}
# Methods whose update is not defined by the adapter alone, and why: diff compares their tensors.
_PROMPT = "it adds learned virtual tokens, not a weight update"
PER_TENSOR = {
    "IA3": "its update rescales the base model's own weights",
    "OFT": "its update rotates the base model's own weights",
    "BOFT": "its update rotates the base model's own weights",
    "HRA": "its update reflects the base model's own weights",
    "LN_TUNING": "it retrains copies of layers",
    "PROMPT_TUNING": _PROMPT,
    "P_TUNING": _PROMPT,
    "PREFIX_TUNING": _PROMPT,
    "MULTITASK_PROMPT_TUNING": _PROMPT,
    "CPT": _PROMPT,
    "CARTRIDGE": _PROMPT,
    "ADAPTION_PROMPT": _PROMPT,
}
_UNKNOWN_UPDATE = "adaptergit knows no factor form of its update"

# The base model's module of a saved module name, or None (`adaptergit.modelclass.ModelView`).
BaseModules = Callable[[str], "ModuleInfo | None"]

_LOHA_PARTS = {"hada_w1_a": "w1a", "hada_w1_b": "w1b", "hada_w2_a": "w2a", "hada_w2_b": "w2b"}
_LOKR_PARTS = {
    "lokr_w1": "w1",
    "lokr_w1_a": "w1a",
    "lokr_w1_b": "w1b",
    "lokr_w2": "w2",
    "lokr_w2_a": "w2a",
    "lokr_w2_b": "w2b",
}
# AdaLoRA's ranknum is r plus this, in PEFT (adalora/layer.py).
_ADALORA_EPS = 1e-5


def update_rule(peft_type: object) -> tuple[str | None, str | None]:
    """(the update diff computes, None) for a method it computes updates for, else (None, why it
    compares tensors only)."""
    kind = peft_type.upper() if isinstance(peft_type, str) else ""
    if kind in UPDATES:
        return UPDATES[kind], None
    return None, PER_TENSOR.get(kind, _UNKNOWN_UPDATE)


def _pattern_value(patterns: Any, module: str, default: Any, field: str = "pattern") -> Any:
    """PEFT's ``get_pattern_key``: the value of the first pattern matching the end of `module`.

    The keys come from a config anyone may have written, so they are matched in bounded time.

    Raises:
        InvalidConfig: a key backtracks past the time limit.
    """
    from adaptergit.config import DEFAULT_REGEX_TIMEOUT
    from adaptergit.errors import InvalidConfig
    from adaptergit.patterns import BoundedPattern, PatternError, PatternTimeout

    if not isinstance(patterns, Mapping):
        return default
    for key, value in patterns.items():
        try:
            matched = BoundedPattern(rf"(.*\.)?({key})$", DEFAULT_REGEX_TIMEOUT).match(module)
        except PatternError:
            matched = None
        except PatternTimeout:
            raise InvalidConfig(
                "adapter_config.json",
                f"{field} key {key!r} takes too long to match (a regular expression that "
                "backtracks)",
                key=field,
            ) from None
        if matched:
            return value
    return default


def lora_scaling(config: Mapping[str, Any] | None, module: str, rank: int) -> float:
    """PEFT's scaling of a LoRA module: alpha / r, or alpha / sqrt(r) with rsLoRA.

    rank_pattern and alpha_pattern are matched as PEFT matches them (a key matches a module whose
    name ends with it after a dot); `rank` (from the tensor shapes) stands in for a missing r.
    """
    config = config or {}
    name = peftkeys.model_name(module)
    r = _pattern_value(config.get("rank_pattern"), name, config.get("r") or rank, "rank_pattern")
    alpha = _pattern_value(
        config.get("alpha_pattern"), name, config.get("lora_alpha", r), "alpha_pattern"
    )
    if not _number(r) or not _number(alpha) or r <= 0:
        return 1.0
    return float(alpha) / (math.sqrt(r) if config.get("use_rslora") else float(r))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _lycoris_scaling(config: Mapping[str, Any] | None, module: str, rank: int) -> float:
    """LoHa's and LoKr's scaling: alpha / r, with their rank and alpha patterns."""
    config = config or {}
    name = peftkeys.model_name(module)
    r = _pattern_value(config.get("rank_pattern"), name, config.get("r") or rank, "rank_pattern")
    alpha = _pattern_value(
        config.get("alpha_pattern"), name, config.get("alpha", r), "alpha_pattern"
    )
    if not _number(r) or not _number(alpha) or r <= 0:
        return 1.0
    return float(alpha) / float(r)


def _adalora_scaling(config: Mapping[str, Any] | None) -> float:
    """AdaLoRA's alpha / ranknum, where ranknum stays the initial rank after pruning."""
    config = config or {}
    init_r = config.get("init_r") or config.get("r") or 1
    alpha = config.get("lora_alpha") or 0
    if not _number(init_r) or not _number(alpha) or init_r <= 0:
        return 1.0
    scaling = float(alpha) if alpha > 0 else float(init_r)
    return scaling / (float(init_r) + _ADALORA_EPS)


class _Spec(Protocol):
    """A tensor's name, dtype and shape: a header's `TensorSpec` or a manifest's record."""

    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class _Module:
    """One row of a diff as one version has it: an update from factors, or a tensor.

    Attributes:
        name: the row's name (a module, ``module.parameter[expert]`` for MoE, or a tensor).
        kind: one of the ``KIND_*``.
        parts: the tensors it is made of, by role (``A``, ``B``, ``E``, ``w1a``, ... or ``T``).
        shape: the update's (d_out, d_in), or the tensor's shape.
        rank: the update's rank, if it has one.
        scale: the update's scale.
        experts: for a stack of experts, (how many, which one this row is).
    """

    name: str
    kind: str
    parts: dict[str, Any]
    shape: tuple[int, ...]
    rank: int | None = None
    scale: float = 1.0
    experts: tuple[int, int] | None = None
    adalora: bool = False

    @property
    def dtype(self) -> str:
        return str(next(iter(self.parts.values())).dtype)


def _tensor_row(spec: _Spec, kind: str = KIND_TENSOR) -> _Module:
    return _Module(name=spec.name, kind=kind, parts={"T": spec}, shape=tuple(spec.shape))


def _modules(
    tensors: Sequence[_Spec],
    config: Mapping[str, Any] | None,
    base: BaseModules | None = None,
) -> dict[str, _Module]:
    """One version's rows, by name: its method's updates where it has factors, else tensors.

    `base` gives the base model's modules: the order in which a module registers the parameters
    that ``target_parameters`` wraps (PEFT nests one wrapper per parameter, the first innermost),
    their shapes, and a layer's size for VeRA; without it the order of ``target_parameters`` in the
    config stands in.
    """
    config = config or {}
    peft_type = config.get("peft_type")
    kind = peft_type.upper() if isinstance(peft_type, str) else "LORA"
    rows: dict[str, _Module] = {}
    if kind in ("LORA", "ADALORA"):
        grouped, rest = _group(
            tensors,
            "lora_",
            {
                peftkeys.LORA_A: "A",
                peftkeys.LORA_B: "B",
                peftkeys.LORA_EMBEDDING_A: "A",
                peftkeys.LORA_EMBEDDING_B: "B",
                peftkeys.LORA_E: "E",
            },
        )
        for module, parts in grouped.items():
            for row in _lora_rows(module, parts, config, kind == "ADALORA", base):
                rows[row.name] = row
    elif kind == "LOHA":
        grouped, rest = _group(tensors, "hada_", _LOHA_PARTS)
        for module, parts in grouped.items():
            loha = _loha_row(module, parts, config)
            if loha is None:
                rest.extend(parts.values())
            else:
                rows[loha.name] = loha
    elif kind == "LOKR":
        grouped, rest = _group(tensors, "lokr_", _LOKR_PARTS)
        for module, parts in grouped.items():
            lokr = _lokr_row(module, parts, config)
            if lokr is None:
                rest.extend(parts.values())
            else:
                rows[lokr.name] = lokr
    elif kind == "VERA":
        grouped, rest = _group(
            tensors, "vera_lambda_", {"vera_lambda_b": "b", "vera_lambda_d": "d"}
        )
        shared = {
            spec.name.rsplit(".", 1)[-1]: spec
            for spec in rest
            if spec.name.rsplit(".", 1)[-1] in ("vera_A", "vera_B")
        }
        for module, parts in grouped.items():
            vera = _vera_row(module, parts, shared, base)
            if vera is None:
                rest.extend(parts.values())
            else:
                rows[vera.name] = vera
        if any(row.kind == KIND_VERA for row in rows.values()):
            rest = [spec for spec in rest if spec not in shared.values()]
    else:
        rest = list(tensors)
    for spec in rest:
        key = peftkeys.parse_key(spec.name)
        magnitude = key is not None and key.part == "lora_magnitude_vector"
        rows[spec.name] = _tensor_row(spec, KIND_MAGNITUDE if magnitude else KIND_TENSOR)
    return rows


def _group(
    tensors: Sequence[_Spec], prefix: str, roles: Mapping[str, str]
) -> tuple[dict[str, dict[str, Any]], list[Any]]:
    """Saved module -> {role: tensor} for the tensors whose part has a role; the rest as they are."""
    grouped: dict[str, dict[str, Any]] = {}
    rest: list[Any] = []
    for spec in tensors:
        key = peftkeys.parse_key(spec.name, prefix)
        role = roles.get(key.part) if key is not None and key.rest in ("", "weight") else None
        if key is None or role is None or role in grouped.get(key.module, {}):
            rest.append(spec)
        else:
            grouped.setdefault(key.module, {})[role] = spec
    return grouped, rest


def _lora_rows(
    module: str,
    parts: dict[str, Any],
    config: Mapping[str, Any],
    adalora: bool,
    base: BaseModules | None,
) -> list[_Module]:
    """A LoRA or AdaLoRA pair as rows: one, or one per expert of a stacked MoE parameter."""
    a, b, e = parts.get("A"), parts.get("B"), parts.get("E")
    if a is None or b is None or (adalora and e is None) or len(a.shape) < 2 or len(b.shape) < 2:
        return [_tensor_row(spec) for spec in parts.values()]
    rows_a, d_in = a.shape[0], math.prod(a.shape[1:])
    d_out, cols_b = b.shape[0], b.shape[1]
    if (
        cols_b != rows_a
        or math.prod(b.shape[2:]) != 1
        or (e is not None and tuple(e.shape) != (rows_a, 1))
    ):
        return [_tensor_row(spec) for spec in parts.values()]
    if "lora_embedding" in a.name:  # PEFT keeps an embedding's update as (B·A)ᵀ: (vocab, dim)
        d_out, d_in = d_in, d_out
        shape: tuple[int, ...] = (a.shape[1], b.shape[0])
    else:
        shape = (d_out, d_in)
    if adalora:
        scale = _adalora_scaling(config)
        return [
            _Module(
                name=module,
                kind=KIND_LORA,
                parts=parts,
                shape=shape,
                rank=rows_a,
                scale=scale,
                adalora=True,
            )
        ]
    name, experts, rank = _wrapped_parameter(module, rows_a, config, base)
    scale = lora_scaling(config, name, rank)
    if experts <= 1:
        return [
            _Module(name=name, kind=KIND_LORA, parts=parts, shape=shape, rank=rank, scale=scale)
        ]
    return [
        _Module(
            name=f"{name}[{i}]",
            kind=KIND_LORA,
            parts=parts,
            shape=shape,
            rank=rank,
            scale=scale,
            experts=(experts, i),
        )
        for i in range(experts)
    ]


def _wrapped_parameter(
    module: str,
    rows: int,
    config: Mapping[str, Any],
    base: BaseModules | None,
) -> tuple[str, int, int]:
    """(row name, experts, rank) of a LoRA module: for ``target_parameters`` the row is named
    ``module.parameter`` and a stacked MoE parameter (``lora_A`` of experts x r rows) has experts."""
    targets = [t for t in config.get("target_parameters") or [] if isinstance(t, str)]
    if not targets:
        return module, 1, rows
    plain = peftkeys.strip_wrappers(module)
    depth = peftkeys.wrapper_depth(module)
    info = base(module) if base is not None else None
    shapes: dict[str, tuple[int, ...]] = {}
    if info is not None:  # the model's own order: what PEFT wrapped, innermost first
        shapes = {
            pname: shape
            for pname, shape in info.parameters.items()
            if any(f"{plain}.{pname}" == t or f"{plain}.{pname}".endswith(f".{t}") for t in targets)
        }
    order = list(shapes)
    if not order:  # the config's order, for the parameters of this module
        for target in targets:
            owner, _, pname = target.rpartition(".")
            if owner and (plain == owner or plain.endswith(f".{owner}")) and pname not in order:
                order.append(pname)
    if not order or depth >= len(order):
        return module, 1, rows
    pname = order[len(order) - 1 - depth]  # the first registered is wrapped innermost
    outer = module.removesuffix(".base_layer" * depth) if depth else module
    name = outer if pname == "weight" else f"{outer}.{pname}"
    shape = shapes.get(pname)
    if shape is not None:
        experts = shape[0] if len(shape) == 3 else 1
        return name, experts, rows // experts if experts and rows % experts == 0 else rows
    r = _pattern_value(config.get("rank_pattern"), peftkeys.model_name(name), config.get("r"))
    if not isinstance(r, int) or r <= 0 or rows % r:
        return name, 1, rows
    return name, rows // r, r


def _vera_row(
    module: str, parts: dict[str, Any], shared: dict[str, Any], base: BaseModules | None
) -> _Module | None:
    """VeRA's ΔW = diag(λb)·B[:out]·diag(λd)·A[:, :in], B and A the shared projections (saved
    with ``save_projection``); `in` is the layer's, which only the base model knows."""
    b, d = parts.get("b"), parts.get("d")
    proj_a, proj_b = shared.get("vera_A"), shared.get("vera_B")
    info = base(module) if base is not None else None
    if b is None or d is None or proj_a is None or proj_b is None or info is None:
        return None
    if info.weight is None or len(info.weight) != 2 or len(b.shape) != 1 or len(d.shape) != 1:
        return None
    d_out, rank = b.shape[0], d.shape[0]
    d_in = info.weight[0] if info.kind == "conv1d" else info.weight[1]
    if d_out not in info.weight or tuple(proj_a.shape[:1]) != (rank,) or proj_b.shape[1] != rank:
        return None
    if proj_a.shape[1] < d_in or proj_b.shape[0] < d_out:
        return None
    return _Module(
        name=module,
        kind=KIND_VERA,
        parts={"b": b, "d": d, "A": proj_a, "B": proj_b},
        shape=(d_out, d_in),
        rank=rank,
    )


def _loha_row(module: str, parts: dict[str, Any], config: Mapping[str, Any]) -> _Module | None:
    w1a, w1b, w2a, w2b = (parts.get(k) for k in ("w1a", "w1b", "w2a", "w2b"))
    if w1a is None or w1b is None or w2a is None or w2b is None:
        return None
    if any(len(t.shape) < 2 for t in (w1a, w1b, w2a, w2b)):
        return None
    d_out, r1, r2 = w1a.shape[0], w1a.shape[1], w2a.shape[1]
    d_in = math.prod(w1b.shape[1:])
    if (w1b.shape[0], w2a.shape[0], w2b.shape[0], math.prod(w2b.shape[1:])) != (
        r1,
        d_out,
        r2,
        d_in,
    ):
        return None  # CP-decomposed convolutions (hada_t1/t2) and the like: tensors only
    scale = _lycoris_scaling(config, module, r1)
    return _Module(
        name=module, kind=KIND_LOHA, parts=parts, shape=(d_out, d_in), rank=r1 * r2, scale=scale
    )


def _lokr_row(module: str, parts: dict[str, Any], config: Mapping[str, Any]) -> _Module | None:
    def side(whole: str, left: str, right: str) -> tuple[int, int] | None:
        if whole in parts and left not in parts and right not in parts:
            shape = parts[whole].shape
            return (shape[0], math.prod(shape[1:])) if len(shape) >= 2 else None
        if whole not in parts and left in parts and right in parts:
            x, y = parts[left].shape, parts[right].shape
            if len(x) == 2 and len(y) >= 2 and x[1] == y[0]:
                return (x[0], math.prod(y[1:]))
        return None

    p, q = side("w1", "w1a", "w1b"), side("w2", "w2a", "w2b")
    if p is None or q is None or len(parts) not in (2, 3, 4):
        return None
    rank = (
        parts["w1b"].shape[0]
        if "w1b" in parts
        else parts["w2b"].shape[0]
        if "w2b" in parts
        else None
    )
    scale = _lycoris_scaling(config, module, rank or 1)
    return _Module(
        name=module,
        kind=KIND_LOKR,
        parts=parts,
        shape=(p[0] * q[0], p[1] * q[1]),
        rank=rank,
        scale=scale,
    )


# --- reading tensors ----------------------------------------------------------------------------


class _Weights:
    """A safetensors file opened for reading tensors through one memory map."""

    def __init__(self, path: Path) -> None:
        from adaptergit.safetensors_format import read_header

        self.path = path
        self.header = read_header(path)
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        size = self.header.file_size
        self._map = mmap.mmap(self._file.fileno(), size, access=mmap.ACCESS_READ) if size else None

    def close(self) -> None:
        if self._map is not None:
            # Arrays still held by a traceback keep the map alive; it closes when they go.
            with contextlib.suppress(BufferError):
                self._map.close()
        self._file.close()

    def array(self, spec: TensorSpec) -> Any:
        """The tensor as a read-only numpy view (bf16 as raw uint16), or None for other dtypes."""
        import numpy as np

        dtype = _NUMPY_DTYPES.get(spec.dtype)
        if dtype is None or self._map is None:
            return None
        return np.frombuffer(self._map, dtype=dtype, count=spec.numel, offset=spec.start).reshape(
            spec.shape
        )

    def float64(self, spec: TensorSpec, shape: tuple[int, ...] | None = None) -> Any:
        """The tensor widened to float64 (a new array), reshaped to `shape`; None if unreadable."""
        raw = self.array(spec)
        if raw is None:
            return None
        wide = _to_float64(raw, spec.dtype)
        return wide.reshape(shape) if shape is not None else wide


def _to_float64(array: Any, dtype: str, out: Any = None) -> Any:
    """Widen a tensor read from the file to float64 (bf16: its bits are a float32's top half)."""
    import numpy as np

    if dtype == "BF16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    if out is None:
        return array.astype(np.float64)
    out[...] = array
    return out


# --- the numbers, from factors --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LowRank:
    """U (d_out, k) and V (k, d_in): the matrix U·V, never formed. The arrays are float64, or
    views of the file in their safetensors dtype (`u_dtype`, `v_dtype`), widened only where they
    are stacked for the Gram matrices, so that a LoRA factor is copied once."""

    u: Any
    v: Any
    u_dtype: str = "F64"
    v_dtype: str = "F64"


@dataclass(frozen=True, slots=True)
class _Kron:
    """The Kronecker product of two matrices, each whole (an array) or `_LowRank`."""

    left: Any
    right: Any


Stats = tuple[float, float, float]  # ||X||², ||Y||², <X, Y>


def _factors(row: _Module, weights: _Weights) -> _LowRank | _Kron | None:
    """A row's update in factored form (scale left out), read from `weights`; None if a tensor's
    dtype cannot be read (fp8, integers)."""
    import numpy as np

    parts = row.parts
    if row.kind == KIND_LORA:
        a_spec, b_spec = parts["A"], parts["B"]
        rows, d_in = a_spec.shape[0], math.prod(a_spec.shape[1:])
        a, b = weights.array(a_spec), weights.array(b_spec)
        if a is None or b is None:
            return None
        a, b = a.reshape(rows, d_in), b.reshape(b_spec.shape[0], rows)
        a_dtype = a_spec.dtype
        if row.adalora:
            e = weights.float64(parts["E"], (rows, 1))
            if e is None:
                return None
            a, a_dtype = _to_float64(a, a_spec.dtype) * e, "F64"
        if row.experts is not None:  # PEFT's ParamWrapper: A (E·r, in) by expert, B (out, r·E)
            count, index = row.experts
            r = rows // count
            a = a.reshape(count, r, d_in)[index]
            b = b.reshape(b.shape[0], r, count)[:, :, index]
        return _LowRank(b, a, b_spec.dtype, a_dtype)
    if row.kind == KIND_LOHA:
        arrays = [weights.float64(parts[k]) for k in ("w1a", "w1b", "w2a", "w2b")]
        if any(x is None for x in arrays):
            return None
        w1a, w1b, w2a, w2b = arrays
        d_out, d_in = row.shape
        w1b, w2b = w1b.reshape(w1b.shape[0], d_in), w2b.reshape(w2b.shape[0], d_in)
        # (P ⊙ Q)[i, j] = Σ_ab w1a[i,a]·w2a[i,b] · w1b[a,j]·w2b[b,j]: rank r1·r2 factors
        u = (w1a[:, :, None] * w2a[:, None, :]).reshape(d_out, -1)
        v = (w1b[:, None, :] * w2b[None, :, :]).reshape(-1, d_in)
        return _LowRank(u, v)
    if row.kind == KIND_VERA:
        arrays = [weights.float64(parts[k]) for k in ("b", "d", "A", "B")]
        if any(x is None for x in arrays):
            return None
        lambda_b, lambda_d, proj_a, proj_b = arrays
        d_out, d_in = row.shape
        u = lambda_b[:, None] * proj_b[:d_out, :]
        v = lambda_d[:, None] * proj_a[:, :d_in]
        return _LowRank(u, np.ascontiguousarray(v))
    if row.kind == KIND_LOKR:
        sides = []
        for whole, left, right in (("w1", "w1a", "w1b"), ("w2", "w2a", "w2b")):
            if whole in parts:
                x = weights.float64(parts[whole])
                if x is None:
                    return None
                sides.append(x.reshape(x.shape[0], -1))
            else:
                x, y = weights.float64(parts[left]), weights.float64(parts[right])
                if x is None or y is None:
                    return None
                sides.append(_LowRank(x, y.reshape(y.shape[0], -1)))
        return _Kron(sides[0], sides[1])
    return None


def _stats(x: Any, y: Any) -> Stats | None:
    """(||X||², ||Y||², <X, Y>) of two matrices of one shape, each whole, `_LowRank` or `_Kron`."""
    import numpy as np

    if isinstance(x, _Kron) and isinstance(y, _Kron):
        left, right = _stats(x.left, y.left), _stats(x.right, y.right)
        if left is None or right is None:
            return None
        # ||P ⊗ Q||² = ||P||²·||Q||², <P1 ⊗ Q1, P2 ⊗ Q2> = <P1, P2>·<Q1, Q2>
        return (left[0] * right[0], left[1] * right[1], left[2] * right[2])
    if isinstance(x, _LowRank) and isinstance(y, _LowRank):
        k1 = x.u.shape[1]
        # tr(X Y) = sum(X * Yᵀ); both Gram matrices are symmetric.
        gram_u = _gram_columns(x.u, x.u_dtype, y.u, y.u_dtype)
        gram_v = _gram_rows(x.v, x.v_dtype, y.v, y.v_dtype)
        n1 = float(np.sum(gram_u[:k1, :k1] * gram_v[:k1, :k1]))
        n2 = float(np.sum(gram_u[k1:, k1:] * gram_v[k1:, k1:]))
        inner = float(np.sum(gram_u[:k1, k1:] * gram_v[:k1, k1:]))
        return n1, n2, inner
    if isinstance(x, (_LowRank, _Kron)) or isinstance(y, (_LowRank, _Kron)):
        x, y = _dense(x), _dense(y)
        if x is None or y is None:
            return None
    x, y = x.reshape(-1), y.reshape(-1)
    return float(np.dot(x, x)), float(np.dot(y, y)), float(np.dot(x, y))


# Past this many elements a whole matrix is not formed from factors (LoKr with one side changed
# from factored to whole between versions): the row then reports the change without numbers.
_DENSE_LIMIT = 1 << 24


def _dense(x: Any) -> Any:
    import numpy as np

    if isinstance(x, _LowRank):
        if x.u.shape[0] * x.v.shape[1] > _DENSE_LIMIT:
            return None
        return _to_float64(x.u, x.u_dtype) @ _to_float64(x.v, x.v_dtype)
    if isinstance(x, _Kron):
        left, right = _dense(x.left), _dense(x.right)
        if left is None or right is None or left.size * right.size > _DENSE_LIMIT:
            return None
        return np.kron(left, right)
    return x


def _gram_columns(u1: Any, dtype1: str, u2: Any, dtype2: str) -> Any:
    """[U1 U2]ᵀ·[U1 U2], from one stacked (d, k1 + k2) float64 array."""
    import numpy as np

    stacked = np.empty((u1.shape[0], u1.shape[1] + u2.shape[1]), dtype=np.float64)
    _to_float64(u1, dtype1, stacked[:, : u1.shape[1]])
    _to_float64(u2, dtype2, stacked[:, u1.shape[1] :])
    return stacked.T @ stacked


def _gram_rows(v1: Any, dtype1: str, v2: Any, dtype2: str) -> Any:
    """[V1; V2]·[V1; V2]ᵀ, from one stacked (k1 + k2, d) float64 array."""
    import numpy as np

    stacked = np.empty((v1.shape[0] + v2.shape[0], v1.shape[1]), dtype=np.float64)
    _to_float64(v1, dtype1, stacked[: v1.shape[0]])
    _to_float64(v2, dtype2, stacked[v1.shape[0] :])
    return stacked @ stacked.T


def _update_stats(old: _Weights, new: _Weights, row_old: _Module, row_new: _Module) -> Stats | None:
    """(||ΔW_old||², ||ΔW_new||², <ΔW_old, ΔW_new>) of two rows' updates, scales included."""
    x, y = _factors(row_old, old), _factors(row_new, new)
    if x is None or y is None:
        return None
    found = _stats(x, y)
    if found is None:
        return None
    s1, s2 = row_old.scale, row_new.scale
    return s1 * s1 * found[0], s2 * s2 * found[1], s1 * s2 * found[2]


def _tensor_stats(
    old: _Weights, new: _Weights, s_old: TensorSpec, s_new: TensorSpec
) -> Stats | None:
    """(||old||², ||new||², <old, new>) of two same-shaped tensors, in float64 chunks."""
    import numpy as np

    x, y = old.array(s_old), new.array(s_new)
    if x is None or y is None:
        return None
    x, y = x.reshape(-1), y.reshape(-1)
    n_old = n_new = inner = 0.0
    for start in range(0, x.size, _CHUNK_ELEMENTS):
        xa = _to_float64(x[start : start + _CHUNK_ELEMENTS], s_old.dtype)
        ya = _to_float64(y[start : start + _CHUNK_ELEMENTS], s_new.dtype)
        n_old += float(np.dot(xa, xa))
        n_new += float(np.dot(ya, ya))
        inner += float(np.dot(xa, ya))
    return n_old, n_new, inner


def _change(name: str, kind: str, stats: Stats | None, **fields: Any) -> ModuleChange:
    if stats is None:  # a dtype numpy cannot read (fp8, integers): status from the hashes only
        return ModuleChange(name=name, status=CHANGED, kind=kind, **fields)
    n_old, n_new, inner = stats
    diff_sq = max(n_old + n_new - 2.0 * inner, 0.0)
    norm_old, norm_new = math.sqrt(max(n_old, 0.0)), math.sqrt(max(n_new, 0.0))
    rel = math.sqrt(diff_sq) / norm_old if norm_old > 0 else math.inf if diff_sq > 0 else 0.0
    cosine = None
    if norm_old > 0 and norm_new > 0:
        cosine = max(-1.0, min(1.0, inner / (norm_old * norm_new)))
    return ModuleChange(
        name=name,
        status=CHANGED,
        kind=kind,
        norm_old=norm_old,
        norm_new=norm_new,
        rel_change=rel,
        cosine=cosine,
        **fields,
    )


# --- comparing two files ------------------------------------------------------------------------


def compare_weights(
    old_path: Path,
    new_path: Path,
    *,
    old_config: Mapping[str, Any] | None = None,
    new_config: Mapping[str, Any] | None = None,
    old_tensors: Sequence[TensorRecord] = (),
    new_tensors: Sequence[TensorRecord] = (),
    base: BaseModules | None = None,
) -> list[ModuleChange]:
    """Module-by-module changes between two safetensors files, largest first.

    Each method's update (`UPDATES`) is compared from its factors; other tensors, and every tensor
    of a method whose update the adapter alone does not define (`PER_TENSOR`), as they are.

    Args:
        old_path, new_path: the two ``adapter_model.safetensors``.
        old_config, new_config: their ``adapter_config.json`` (method, ranks, scaling).
        old_tensors, new_tensors: the manifests' records: tensors with equal BLAKE3 hashes go
            unread; without them every shared module is read.
        base: the base model's modules (`adaptergit.modelclass.ModelView.module`), when the
            base is on disk: they name the rows of nested ``target_parameters`` wrappers and
            count a MoE parameter's experts exactly, and give VeRA its layers' sizes. Without
            it the config's order of ``target_parameters`` stands in, and VeRA is compared per
            tensor.
    """
    hashes_old = {t.name: t.blake3 for t in old_tensors}
    hashes_new = {t.name: t.blake3 for t in new_tensors}

    def same_bytes(a: TensorSpec, b: TensorSpec) -> bool:
        ha, hb = hashes_old.get(a.name), hashes_new.get(b.name)
        return ha is not None and ha == hb and a.dtype == b.dtype and a.shape == b.shape

    with _open_pair(old_path, new_path) as (old, new):
        rows_old = _modules(old.header.tensors, old_config, base)
        rows_new = _modules(new.header.tensors, new_config, base)
        changes = [
            _row_change(name, rows_old.get(name), rows_new.get(name), old, new, same_bytes)
            for name in sorted(set(rows_old) | set(rows_new))
        ]
    changes.sort(key=_rank_key)
    return changes


def _fields(row_old: _Module | None, row_new: _Module | None) -> dict[str, Any]:
    return {
        "shape_old": row_old.shape if row_old else None,
        "shape_new": row_new.shape if row_new else None,
        "rank_old": row_old.rank if row_old else None,
        "rank_new": row_new.rank if row_new else None,
        "dtype_old": row_old.dtype if row_old else None,
        "dtype_new": row_new.dtype if row_new else None,
    }


def _row_change(
    name: str,
    row_old: _Module | None,
    row_new: _Module | None,
    old: _Weights,
    new: _Weights,
    same_bytes: Callable[[TensorSpec, TensorSpec], bool],
) -> ModuleChange:
    fields = _fields(row_old, row_new)
    kind = (row_new or row_old).kind  # type: ignore[union-attr]
    if row_old is None or row_new is None:
        status = ADDED if row_old is None else REMOVED
        return ModuleChange(name=name, status=status, kind=kind, **fields)
    if row_old.shape != row_new.shape:
        return ModuleChange(name=name, status=RESHAPED, kind=kind, **fields)
    if row_old.kind != row_new.kind:  # another method's update: changed, not comparable
        return ModuleChange(name=name, status=CHANGED, kind=kind, **fields)
    if (
        row_old.scale == row_new.scale
        and row_old.parts.keys() == row_new.parts.keys()
        and all(same_bytes(row_old.parts[k], row_new.parts[k]) for k in row_old.parts)
    ):
        return ModuleChange(name=name, status=UNCHANGED, kind=kind, rel_change=0.0, **fields)
    if kind in (KIND_TENSOR, KIND_MAGNITUDE):
        stats = _tensor_stats(old, new, row_old.parts["T"], row_new.parts["T"])
    elif row_old.parts.keys() != row_new.parts.keys() and kind != KIND_LORA:
        stats = None
    else:
        stats = _update_stats(old, new, row_old, row_new)
    return _settle(_change(name, kind, stats, **fields))


def _settle(change: ModuleChange) -> ModuleChange:
    """A module whose numbers show no difference at all (e.g. read without hashes) is unchanged."""
    if (
        change.rel_change == 0.0
        and change.cosine in (None, 1.0)
        and change.norm_old == change.norm_new
    ):
        return dataclasses.replace(change, status=UNCHANGED)
    return change


def _rank_key(change: ModuleChange) -> tuple[int, float, str]:
    rel = change.rel_change if change.rel_change is not None else 0.0
    return (_STATUS_ORDER[change.status], -rel if not math.isnan(rel) else 0.0, change.name)


@contextlib.contextmanager
def _open_pair(old_path: Path, new_path: Path) -> Iterator[tuple[_Weights, _Weights]]:
    old = _Weights(old_path)
    try:
        new = _Weights(new_path)
        try:
            yield old, new
        finally:
            new.close()
    finally:
        old.close()


def diff_versions(
    old: Version,
    new: Version,
    old_weights: Path | None,
    new_weights: Path | None,
    *,
    old_config: Mapping[str, Any] | None = None,
    new_config: Mapping[str, Any] | None = None,
    base: BaseModules | None = None,
) -> AdapterDiff:
    """Compare two versions from their records and weights files.

    Args:
        old, new: the versions (manifests and metrics are read from them).
        old_weights, new_weights: their ``adapter_model.safetensors`` (cache objects), or None
            when the files are identical and need not be read.
        old_config, new_config: their ``adapter_config.json`` (for config changes and scaling).
        base: see `compare_weights`.
    """
    identical = old.manifest.weights.sha256 == new.manifest.weights.sha256
    if identical or old_weights is None or new_weights is None:
        modules = _identical_modules(new.manifest.tensors, new_config, base)
    else:
        modules = compare_weights(
            old_weights,
            new_weights,
            old_config=old_config,
            new_config=new_config,
            old_tensors=old.manifest.tensors,
            new_tensors=new.manifest.tensors,
            base=base,
        )
    updated = any(m.kind not in (KIND_TENSOR, KIND_MAGNITUDE) for m in modules)
    per_tensor = set()
    for v in (old, new):
        reason = update_rule(v.manifest.peft_type)[1]
        if reason is None and v.manifest.peft_type.upper() == "VERA" and not updated:
            reason = "its update needs the base model's layer sizes, and the base is not on disk"
        if reason is not None:
            per_tensor.add(f"{v.manifest.peft_type}: {reason}")
    return AdapterDiff(
        old=old.ref,
        new=new.ref,
        old_commit=old.commit,
        new_commit=new.commit,
        weights_identical=identical,
        config=tuple(config_changes(old_config, new_config)),
        metrics=tuple(metric_changes(old.metrics, new.metrics)),
        base=compare_base(old, new),
        modules=tuple(modules),
        per_tensor=tuple(sorted(per_tensor)),
    )


def _identical_modules(
    tensors: Sequence[TensorRecord],
    config: Mapping[str, Any] | None = None,
    base: BaseModules | None = None,
) -> list[ModuleChange]:
    """The module list of a file compared with itself, from the manifest alone."""
    rows = _modules(tensors, config, base)
    result = [
        ModuleChange(
            name=name,
            status=UNCHANGED,
            kind=row.kind,
            rel_change=0.0,
            **_fields(row, row),
        )
        for name, row in rows.items()
    ]
    result.sort(key=_rank_key)
    return result
