"""Loading a version onto a base model, after checking that the base is the one it was trained on.

The check reads only safetensors headers and hashes (the hashes come from the hash cache when the
files are unchanged), never the weights as tensors, so the base is loaded once, by transformers:

- every LoRA pair of the version must fit its module in the base: ``lora_A`` (r, in) and
  ``lora_B`` (out, r) need a base weight of (out, in) — otherwise `IncompatibleBaseModel`, always;
- same content hash as recorded: an exact match, it loads;
- otherwise (the same tensors with other weights, or other tensors whose shapes still fit)
  `BaseModelMismatch`, unless ``allow_base_mismatch=True``, which loads with a warning;
- a version that recorded no fingerprint (its base was not on disk) is checked by shapes alone.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptergit import peftkeys
from adaptergit.errors import (
    AdapterGitWarning,
    BaseModelMismatch,
    BaseModelUnverifiable,
    IncompatibleBaseModel,
    InvalidBaseModel,
    InvalidManifest,
)
from adaptergit.integrations import require_training_stack
from adaptergit.manifest import BaseFingerprint
from adaptergit.modelclass import AUTO_CLASSES

if TYPE_CHECKING:
    from adaptergit.manifest import Manifest, Version
    from adaptergit.repo import Repo

EXACT = "exact"
WEIGHTS_DIFFER = "weights-differ"
STRUCTURE_DIFFERS = "structure-differs"
UNRECORDED = "unrecorded"  # the version recorded no fingerprint: shapes checked only
UNVERIFIED = "unverified"  # a model in memory with no folder to hash: shapes checked only
STATUSES = (EXACT, WEIGHTS_DIFFER, STRUCTURE_DIFFERS, UNRECORDED, UNVERIFIED)


@dataclass(frozen=True, kw_only=True, slots=True)
class BaseCheck:
    """The outcome of checking a base model against a version's recorded fingerprint."""

    ref: str
    status: str  # one of STATUSES
    modules: int  # LoRA modules whose shapes were checked against the base
    expected: BaseFingerprint
    actual: BaseFingerprint | None  # None when the base was only a model in memory
    base: str  # the base model as given (path or name)

    @property
    def exact(self) -> bool:
        return self.status == EXACT

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "status": self.status,
            "modules": self.modules,
            "expected": self.expected.to_dict(),
            "actual": self.actual.to_dict() if self.actual is not None else None,
            "base": self.base,
        }

    @classmethod
    def from_dict(cls, data: Any) -> BaseCheck:
        if not isinstance(data, dict):
            raise InvalidManifest("not an object", source="base check")
        for key, kind in (("ref", str), ("status", str), ("modules", int), ("base", str)):
            if not isinstance(data.get(key), kind):
                raise InvalidManifest(f"expected {kind.__name__}", key=key, source="base check")
        if data["status"] not in STATUSES:
            raise InvalidManifest(
                f"one of {', '.join(STATUSES)}", key="status", source="base check"
            )
        actual = data.get("actual")
        return cls(
            ref=data["ref"],
            status=data["status"],
            modules=data["modules"],
            expected=BaseFingerprint.from_dict(data.get("expected")),
            actual=BaseFingerprint.from_dict(actual) if actual is not None else None,
            base=data["base"],
        )


# --- which base weights a version needs -----------------------------------------------------------


def required_shapes(
    manifest: Manifest, config: Mapping[str, Any] | None
) -> dict[str, tuple[int, ...]]:
    """Module -> the shape its base weight must have, from the LoRA tensors' shapes alone.

    ``lora_A`` is (r, in) and ``lora_B`` (out, r), so a Linear needs (out, in), a Conv1D
    (``fan_in_fan_out``) (in, out), a convolution (out, in, ...) on its first two dimensions;
    an embedding's ``lora_embedding_A`` (r, vocab) and ``lora_embedding_B`` (dim, r) need
    (vocab, dim).
    """
    transposed = bool((config or {}).get("fan_in_fan_out"))
    parts: dict[str, dict[str, tuple[int, ...]]] = {}
    for tensor in manifest.tensors:
        key = peftkeys.parse_key(tensor.name)
        if key is not None and key.part in peftkeys.LORA_FACTORS and key.rest in ("", "weight"):
            parts.setdefault(key.model_module, {})[key.part] = tensor.shape
    required: dict[str, tuple[int, ...]] = {}
    for module in sorted(parts, key=peftkeys.natural_key):
        p = parts[module]
        a, b = p.get("lora_A"), p.get("lora_B")
        if a is not None and b is not None and len(a) >= 2 and len(b) >= 2:
            required[module] = (a[1], b[0]) if transposed else (b[0], a[1])
            continue
        ea, eb = p.get("lora_embedding_A"), p.get("lora_embedding_B")
        if ea is not None and eb is not None and len(ea) == 2 and len(eb) == 2:
            required[module] = (ea[1], eb[0])
    return required


def _candidates(module: str) -> list[str]:
    """Where a module's weight may sit in the base: as named, or with the outer wrapper's prefix
    dropped or added (a bare ``LlamaModel`` saves ``layers.0...`` for ``model.layers.0...``)."""
    found = [module]
    if "." in module:
        found.append(module.split(".", 1)[1])
    found.append(f"model.{module}")
    return found


def _first_misfit(
    required: Mapping[str, tuple[int, ...]], shape_of: Callable[[str], tuple[int, ...] | None]
) -> tuple[str, tuple[int, ...], tuple[int, ...] | None] | None:
    for module, needed in required.items():
        actual = None
        for candidate in _candidates(module):
            actual = shape_of(candidate)
            if actual is not None:
                break
        if actual is None or tuple(actual[: len(needed)]) != needed:
            return module, needed, None if actual is None else tuple(actual)
    return None


def _structure_lookup(path: Path) -> Callable[[str], tuple[int, ...] | None]:
    from adaptergit.fingerprint import read_structure

    structure = read_structure(path)  # headers only

    def shape_of(module: str) -> tuple[int, ...] | None:
        entry = structure.get(f"{module}.weight")
        return tuple(entry[1]) if entry is not None else None

    return shape_of


def _model_lookup(model: Any) -> Callable[[str], tuple[int, ...] | None]:
    def shape_of(module: str) -> tuple[int, ...] | None:
        try:
            weight = model.get_submodule(module).weight
        except (AttributeError, KeyError):
            return None
        return tuple(weight.shape)

    return shape_of


# --- the check ----------------------------------------------------------------------------------


def _open(repo: Repo | Path | str) -> tuple[Repo, bool]:
    from adaptergit.repo import Repo

    if isinstance(repo, Repo):
        return repo, False
    return Repo(repo), True


def _resolve_path(base: Path | str) -> Path:
    """A base model given as a folder, a safetensors file, or a hub id in the local HF cache."""
    from adaptergit.fingerprint import resolve_base_model

    path, _name, _rev = resolve_base_model(base, {})
    if path is None:
        raise InvalidBaseModel(Path(str(base)), "not found on disk or in the Hugging Face cache")
    return path


def _model_path(model: Any, given: Path | str | None) -> Path | None:
    """The folder an in-memory model was loaded from: `given`, else its ``name_or_path``."""
    if given is not None:
        return _resolve_path(given)
    name = getattr(model, "name_or_path", None) or getattr(
        getattr(model, "config", None), "_name_or_path", None
    )
    if not isinstance(name, str) or not name:
        return None
    try:
        return _resolve_path(name)
    except InvalidBaseModel:
        return None


def _check(
    version: Version,
    config: Mapping[str, Any] | None,
    *,
    path: Path | None,
    model: Any,
    label: str,
    allow_base_mismatch: bool,
) -> BaseCheck:
    from adaptergit.fingerprint import fingerprint_model

    manifest = version.manifest
    expected = manifest.base_model
    required = required_shapes(manifest, config)
    shape_of = _structure_lookup(path) if path is not None else _model_lookup(model)
    misfit = _first_misfit(required, shape_of)
    if misfit is not None:
        raise IncompatibleBaseModel(version.ref, misfit[0], misfit[1], misfit[2], base=label)

    def result(status: str, actual: BaseFingerprint | None) -> BaseCheck:
        return BaseCheck(
            ref=version.ref,
            status=status,
            modules=len(required),
            expected=expected,
            actual=actual,
            base=label,
        )

    if expected.content_hash is None:
        warnings.warn(
            f"{version.ref} recorded no base-model fingerprint (its base was not on disk when it "
            f"was committed); only the shapes of its {len(required)} LoRA modules were checked",
            AdapterGitWarning,
            stacklevel=3,
        )
        return result(UNRECORDED, None)
    if path is None:
        if not allow_base_mismatch:
            raise BaseModelUnverifiable(
                version.ref, "the model in memory does not say which folder it was loaded from"
            )
        warnings.warn(
            f"{version.ref}: the base model's weights were not checked (no folder to hash); "
            "its shapes fit",
            AdapterGitWarning,
            stacklevel=3,
        )
        return result(UNVERIFIED, None)
    actual = fingerprint_model(path)
    assert actual.content_hash is not None
    if actual.content_hash == expected.content_hash:
        return result(EXACT, actual)
    kind = "weights" if actual.structure_hash == expected.structure_hash else "structure"
    if not allow_base_mismatch:
        raise BaseModelMismatch(
            version.ref, kind, expected.content_hash, actual.content_hash, label
        )
    warnings.warn(
        f"{version.ref} was trained on base model {expected.content_hash[:12]}, not on {label} "
        f"({actual.content_hash[:12]}, {'other weights' if kind == 'weights' else 'other tensors'}); "
        "loading it anyway (allow_base_mismatch)",
        AdapterGitWarning,
        stacklevel=3,
    )
    return result(WEIGHTS_DIFFER if kind == "weights" else STRUCTURE_DIFFERS, actual)


def check_base(
    ref: str,
    base_model: Any,
    repo: Repo | Path | str = ".",
    *,
    base_model_path: Path | str | None = None,
    allow_base_mismatch: bool = False,
) -> BaseCheck:
    """Check that `base_model` (a folder, a hub id in the local cache, or a loaded model) is the
    base the version `ref` was trained on; raises as `load` would, loads nothing."""
    registry, owned = _open(repo)
    try:
        version = registry.resolve(ref, with_config=True)
        if isinstance(base_model, (str, Path)):
            path: Path | None = _resolve_path(base_model)
            model = None
            label = str(base_model)
        else:
            model = base_model
            path = _model_path(base_model, base_model_path)
            label = str(path) if path is not None else type(base_model).__name__
        return _check(
            version,
            version.config,
            path=path,
            model=model,
            label=label,
            allow_base_mismatch=allow_base_mismatch,
        )
    finally:
        if owned:
            registry.close()


def load(
    ref: str,
    base_model: Any,
    repo: Repo | Path | str = ".",
    *,
    base_model_path: Path | str | None = None,
    allow_base_mismatch: bool = False,
    adapter_name: str = "default",
    is_trainable: bool = False,
    model_kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """A ``peft.PeftModel``: version `ref` of the registry at `repo` on `base_model`.

    `base_model` is the base model's folder (or a hub id found in the local Hugging Face cache),
    loaded once by transformers with `model_kwargs` after the check passes; or a model already
    loaded, which PEFT then modifies in place — its folder is `base_model_path`, else the
    ``name_or_path`` it was loaded from. See the module docstring for the check.
    """
    require_training_stack("adaptergit.load")
    registry, owned = _open(repo)
    try:
        version = registry.resolve(ref, with_config=True)
        config = version.config or {}
        if isinstance(base_model, (str, Path)):
            path = _resolve_path(base_model)
            _check(
                version,
                config,
                path=path,
                model=None,
                label=str(base_model),
                allow_base_mismatch=allow_base_mismatch,
            )
            import transformers

            auto = getattr(
                transformers, AUTO_CLASSES.get(str(config.get("task_type")), "AutoModel")
            )
            model = auto.from_pretrained(path, **dict(model_kwargs or {}))
        else:
            model = base_model
            found = _model_path(model, base_model_path)
            _check(
                version,
                config,
                path=found,
                model=model,
                label=str(found) if found is not None else type(model).__name__,
                allow_base_mismatch=allow_base_mismatch,
            )
        from peft import PeftModel

        with tempfile.TemporaryDirectory(prefix="adaptergit-load-") as tmp:
            # NAME@<commit>: exactly the version checked, even if NAME moves meanwhile
            folder = registry.checkout(f"{version.name}@{version.commit}", to=Path(tmp) / "adapter")
            return PeftModel.from_pretrained(
                model, folder, adapter_name=adapter_name, is_trainable=is_trainable
            )
    finally:
        if owned:
            registry.close()


__all__ = ["BaseCheck", "check_base", "load", "required_shapes"]
