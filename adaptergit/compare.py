"""Comparing two adapter versions: config, metrics, base model, and the weights module by module.

Weight numbers come from the LoRA factors alone. With dW = s·B·A (B: d_out×r, A: r×d_in),
``||dW||² = s²·tr((BᵀB)(AAᵀ))`` and ``<dW1, dW2> = s1·s2·tr((B1ᵀB2)(A2A1ᵀ))``, so one Gram matrix
of the stacked factors ``[B1 B2]`` and one of ``[A1; A2]`` (each (r1+r2)² from d×(r1+r2)) give
both norms, the inner product and ``||dW2 − dW1||² = ||dW2||² + ||dW1||² − 2<dW1, dW2>``: the
d_out×d_in updates are never formed. Products accumulate in float64 so that small relative changes
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptergit import peftkeys
from adaptergit.metrics import flatten
from adaptergit.peftkeys import short_module_name

if TYPE_CHECKING:
    from adaptergit.manifest import TensorRecord, Version
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
        return {"key": self.key, "old": self.old, "new": self.new}


@dataclass(frozen=True, kw_only=True, slots=True)
class MetricChange:
    """One metric in either version: values, the change, and whether that is better if known."""

    key: str
    old: float | int | None
    new: float | int | None
    better: str | None  # "lower", "higher", or None when the direction is not known

    @property
    def delta(self) -> float | None:
        if self.old is None or self.new is None:
            return None
        return self.new - self.old

    @property
    def improved(self) -> bool | None:
        delta = self.delta
        if delta is None or self.better is None or delta == 0:
            return None
        return delta < 0 if self.better == "lower" else delta > 0

    def to_dict(self) -> dict[str, Any]:
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
        return {"same": self.same, "old": self.old, "new": self.new, "basis": self.basis}


@dataclass(frozen=True, kw_only=True, slots=True)
class ModuleChange:
    """One module (a LoRA pair, or another tensor such as a modules_to_save copy) across versions.

    For a LoRA pair the shape is that of the effective update dW (d_out, d_in) and the norms are of
    dW = s·B·A; for another tensor they are of the tensor itself. `rel_change` is
    ||new − old|| / ||old|| and `cosine` the cosine similarity of old and new.
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
        return {
            "name": self.name,
            "status": self.status,
            "kind": self.kind,
            "shape_old": list(self.shape_old) if self.shape_old is not None else None,
            "shape_new": list(self.shape_new) if self.shape_new is not None else None,
            "rank_old": self.rank_old,
            "rank_new": self.rank_new,
            "dtype_old": self.dtype_old,
            "dtype_new": self.dtype_new,
            "norm_old": _finite(self.norm_old),
            "norm_new": _finite(self.norm_new),
            "rel_change": _finite(self.rel_change),
            "cosine": _finite(self.cosine),
        }


def _finite(value: float | None) -> float | str | None:
    """JSON has no infinity: a change from an all-zero update is written as the string "inf"."""
    if value is None or math.isfinite(value):
        return value
    return "inf" if value > 0 else "-inf"


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

    def count(self, status: str) -> int:
        return sum(1 for m in self.modules if m.status == status)

    @property
    def changed_modules(self) -> tuple[ModuleChange, ...]:
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "old_commit": self.old_commit,
            "new_commit": self.new_commit,
            "summary": self.summary,
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
    """Fields of adapter_config.json that differ (lists of names compared as sets)."""
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
    """Every metric of either version (nested keys dotted), with its better direction if known."""
    a, b = flatten(old or {}), flatten(new or {})
    return [
        MetricChange(key=k, old=a.get(k), new=b.get(k), better=better_direction(k))
        for k in sorted(set(a) | set(b))
    ]


def compare_base(old: Version, new: Version) -> BaseComparison:
    """Same base model? By content hash when both know it, else structure hash, else name."""
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


# --- weights ------------------------------------------------------------------------------------


def lora_scaling(config: Mapping[str, Any] | None, module: str, rank: int) -> float:
    """PEFT's scaling of a LoRA module: alpha / r, or alpha / sqrt(r) with rsLoRA.

    rank_pattern and alpha_pattern are matched as PEFT matches them (a key matches a module whose
    name ends with it after a dot); `rank` (from the tensor shapes) stands in for a missing r.
    """
    from adaptergit.config import DEFAULT_REGEX_TIMEOUT
    from adaptergit.errors import InvalidConfig
    from adaptergit.patterns import BoundedPattern, PatternError, PatternTimeout

    config = config or {}
    r = config.get("r") or rank
    alpha = config.get("lora_alpha", r)
    for pattern_key, value_key in (("rank_pattern", "r"), ("alpha_pattern", "alpha")):
        patterns = config.get(pattern_key) or {}
        if not isinstance(patterns, dict):
            continue
        for key, value in patterns.items():
            # Keys come from a config anyone may have written: matched in bounded time.
            try:
                matched = BoundedPattern(rf"(.*\.)?({key})$", DEFAULT_REGEX_TIMEOUT).match(
                    peftkeys.model_name(module)
                )
            except PatternError:
                matched = None
            except PatternTimeout:
                raise InvalidConfig(
                    "adapter_config.json",
                    f"{pattern_key} key {key!r} takes too long to match (a regular expression "
                    "that backtracks)",
                    key=pattern_key,
                ) from None
            if matched:
                if value_key == "r":
                    r = value
                else:
                    alpha = value
                break
    if not _number(r) or not _number(alpha) or r <= 0:
        return 1.0
    return float(alpha) / (math.sqrt(r) if config.get("use_rslora") else float(r))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _lora_side(name: str) -> tuple[str, str] | None:
    """(module, "A" or "B") for a LoRA factor's tensor name, else None."""
    key = peftkeys.parse_key(name)
    if key is None or key.lora_side is None or key.rest not in ("", "weight"):
        return None
    return key.module, key.lora_side


@dataclass(frozen=True, kw_only=True, slots=True)
class _Side:
    """One version's weights as a module map: LoRA pairs and other tensors."""

    lora: dict[str, tuple[TensorSpec, TensorSpec]]  # module -> (A, B)
    other: dict[str, TensorSpec]


def _group(specs: Sequence[TensorSpec]) -> _Side:
    halves: dict[str, dict[str, TensorSpec]] = {}
    other: dict[str, TensorSpec] = {}
    for spec in specs:
        side = _lora_side(spec.name)
        if side is not None and len(spec.shape) >= 2:
            halves.setdefault(side[0], {})[side[1]] = spec
        else:
            other[spec.name] = spec
    lora = {}
    for module, pair in halves.items():
        a, b = pair.get("A"), pair.get("B")
        if a is not None and b is not None and _lora_dims(a, b) is not None:
            lora[module] = (a, b)
        else:  # half a pair, or shapes that do not multiply: compare the tensors as they are
            for spec in pair.values():
                other[spec.name] = spec
    return _Side(lora=lora, other=other)


def _lora_dims(a: TensorSpec, b: TensorSpec) -> tuple[int, int, int] | None:
    """(rank, d_out, d_in) of a LoRA pair; conv factors are flattened (B's kernel must be 1×1)."""
    rank = a.shape[0]
    if b.shape[1] != rank or math.prod(b.shape[2:]) != 1:
        return None
    return rank, b.shape[0], math.prod(a.shape[1:])


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


def _to_float64(array: Any, dtype: str, out: Any = None) -> Any:
    """Widen a tensor read from the file to float64 (bf16: its bits are a float32's top half)."""
    import numpy as np

    if dtype == "BF16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    if out is None:
        return array.astype(np.float64)
    out[...] = array
    return out


def _lora_stats(
    old: _Weights,
    new: _Weights,
    pair_old: tuple[TensorSpec, TensorSpec],
    pair_new: tuple[TensorSpec, TensorSpec],
    s_old: float,
    s_new: float,
) -> tuple[float, float, float] | None:
    """(||dW_old||², ||dW_new||², <dW_old, dW_new>) from two (r1+r2)² Gram matrices."""
    import numpy as np

    (a1s, b1s), (a2s, b2s) = pair_old, pair_new
    arrays = [old.array(a1s), old.array(b1s), new.array(a2s), new.array(b2s)]
    if any(x is None for x in arrays):
        return None
    a1, b1, a2, b2 = arrays
    r1, r2 = a1s.shape[0], a2s.shape[0]
    d_out, d_in = b1s.shape[0], math.prod(a1s.shape[1:])
    stacked_b = np.empty((d_out, r1 + r2), dtype=np.float64)
    _to_float64(b1.reshape(d_out, r1), b1s.dtype, stacked_b[:, :r1])
    _to_float64(b2.reshape(d_out, r2), b2s.dtype, stacked_b[:, r1:])
    stacked_a = np.empty((r1 + r2, d_in), dtype=np.float64)
    _to_float64(a1.reshape(r1, d_in), a1s.dtype, stacked_a[:r1])
    _to_float64(a2.reshape(r2, d_in), a2s.dtype, stacked_a[r1:])
    gram_b = stacked_b.T @ stacked_b
    gram_a = stacked_a @ stacked_a.T
    # tr(X Y) = sum(X * Yᵀ), and each Gram matrix is symmetric.
    n_old = s_old * s_old * float(np.sum(gram_b[:r1, :r1] * gram_a[:r1, :r1]))
    n_new = s_new * s_new * float(np.sum(gram_b[r1:, r1:] * gram_a[r1:, r1:]))
    inner = s_old * s_new * float(np.sum(gram_b[:r1, r1:] * gram_a[:r1, r1:]))
    return n_old, n_new, inner


def _tensor_stats(
    old: _Weights, new: _Weights, s_old: TensorSpec, s_new: TensorSpec
) -> tuple[float, float, float] | None:
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


def _change(
    name: str, kind: str, stats: tuple[float, float, float] | None, **fields: Any
) -> ModuleChange:
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


def compare_weights(
    old_path: Path,
    new_path: Path,
    *,
    old_config: Mapping[str, Any] | None = None,
    new_config: Mapping[str, Any] | None = None,
    old_tensors: Sequence[TensorRecord] = (),
    new_tensors: Sequence[TensorRecord] = (),
) -> list[ModuleChange]:
    """Module-by-module changes between two safetensors files, largest first.

    `old_tensors` / `new_tensors` (the manifests' records) let tensors with equal BLAKE3 hashes go
    unread; without them every shared module is read.
    """
    hashes_old = {t.name: t.blake3 for t in old_tensors}
    hashes_new = {t.name: t.blake3 for t in new_tensors}

    def same_bytes(a: TensorSpec, b: TensorSpec) -> bool:
        ha, hb = hashes_old.get(a.name), hashes_new.get(b.name)
        return ha is not None and ha == hb and a.dtype == b.dtype and a.shape == b.shape

    with _open_pair(old_path, new_path) as (old, new):
        side_old, side_new = _group(old.header.tensors), _group(new.header.tensors)
        changes: list[ModuleChange] = []
        for module in sorted(set(side_old.lora) | set(side_new.lora)):
            changes.append(
                _lora_change(
                    module, side_old, side_new, old, new, old_config, new_config, same_bytes
                )
            )
        for name in sorted(set(side_old.other) | set(side_new.other)):
            a, b = side_old.other.get(name), side_new.other.get(name)
            base: dict[str, Any] = {
                "shape_old": a.shape if a else None,
                "shape_new": b.shape if b else None,
                "dtype_old": a.dtype if a else None,
                "dtype_new": b.dtype if b else None,
            }
            if a is None or b is None:
                status = ADDED if a is None else REMOVED
                changes.append(ModuleChange(name=name, status=status, kind="tensor", **base))
            elif a.shape != b.shape:
                changes.append(ModuleChange(name=name, status=RESHAPED, kind="tensor", **base))
            elif same_bytes(a, b):
                changes.append(ModuleChange(name=name, status=UNCHANGED, kind="tensor", **base))
            else:
                changes.append(
                    _settle(_change(name, "tensor", _tensor_stats(old, new, a, b), **base))
                )
    changes.sort(key=_rank_key)
    return changes


def _lora_change(
    module: str,
    side_old: _Side,
    side_new: _Side,
    old: _Weights,
    new: _Weights,
    old_config: Mapping[str, Any] | None,
    new_config: Mapping[str, Any] | None,
    same_bytes: Any,
) -> ModuleChange:
    pair_old, pair_new = side_old.lora.get(module), side_new.lora.get(module)
    dims_old = _lora_dims(*pair_old) if pair_old else None
    dims_new = _lora_dims(*pair_new) if pair_new else None
    fields: dict[str, Any] = {
        "shape_old": dims_old[1:] if dims_old else None,
        "shape_new": dims_new[1:] if dims_new else None,
        "rank_old": dims_old[0] if dims_old else None,
        "rank_new": dims_new[0] if dims_new else None,
        "dtype_old": pair_old[0].dtype if pair_old else None,
        "dtype_new": pair_new[0].dtype if pair_new else None,
    }
    if pair_old is None or pair_new is None or dims_old is None or dims_new is None:
        status = ADDED if pair_old is None else REMOVED
        return ModuleChange(name=module, status=status, kind="lora", **fields)
    if dims_old[1:] != dims_new[1:]:
        return ModuleChange(name=module, status=RESHAPED, kind="lora", **fields)
    s_old = lora_scaling(old_config, module, dims_old[0])
    s_new = lora_scaling(new_config, module, dims_new[0])
    if s_old == s_new and all(same_bytes(x, y) for x, y in zip(pair_old, pair_new, strict=True)):
        return ModuleChange(name=module, status=UNCHANGED, kind="lora", rel_change=0.0, **fields)
    stats = _lora_stats(old, new, pair_old, pair_new, s_old, s_new)
    return _settle(_change(module, "lora", stats, **fields))


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
) -> AdapterDiff:
    """Compare two versions from their records and weights files.

    Args:
        old, new: the versions (manifests and metrics are read from them).
        old_weights, new_weights: their ``adapter_model.safetensors`` (cache objects), or None
            when the files are identical and need not be read.
        old_config, new_config: their ``adapter_config.json`` (for config changes and scaling).
    """
    identical = old.manifest.weights.sha256 == new.manifest.weights.sha256
    if identical or old_weights is None or new_weights is None:
        modules = _identical_modules(new.manifest.tensors)
    else:
        modules = compare_weights(
            old_weights,
            new_weights,
            old_config=old_config,
            new_config=new_config,
            old_tensors=old.manifest.tensors,
            new_tensors=new.manifest.tensors,
        )
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
    )


def _identical_modules(tensors: Sequence[TensorRecord]) -> list[ModuleChange]:
    """The module list of a file compared with itself, from the manifest alone."""
    modules: dict[str, tuple[str, tuple[int, ...], str]] = {}
    halves: dict[str, dict[str, TensorRecord]] = {}
    for t in tensors:
        side = _lora_side(t.name)
        if side is not None and len(t.shape) >= 2:
            halves.setdefault(side[0], {})[side[1]] = t
        else:
            modules[t.name] = ("tensor", t.shape, t.dtype)
    result = []
    for module, pair in halves.items():
        a, b = pair.get("A"), pair.get("B")
        if a is not None and b is not None and b.shape[1] == a.shape[0]:
            dims: tuple[int, ...] = (b.shape[0], math.prod(a.shape[1:]))
            result.append(
                ModuleChange(
                    name=module,
                    status=UNCHANGED,
                    kind="lora",
                    shape_old=dims,
                    shape_new=dims,
                    rank_old=a.shape[0],
                    rank_new=a.shape[0],
                    dtype_old=a.dtype,
                    dtype_new=a.dtype,
                    rel_change=0.0,
                )
            )
        else:
            for t in pair.values():
                modules[t.name] = ("tensor", t.shape, t.dtype)
    for name, (kind, shape, dtype) in modules.items():
        result.append(
            ModuleChange(
                name=name,
                status=UNCHANGED,
                kind=kind,
                shape_old=shape,
                shape_new=shape,
                dtype_old=dtype,
                dtype_new=dtype,
                rel_change=0.0,
            )
        )
    result.sort(key=_rank_key)
    return result
