"""Loading a version onto a base model, after checking that the base is the one it was trained on.

The base model is built as the class the adapter applies to (`adaptergit.modelclass`: PEFT's
``auto_mapping``, then the base's ``config.json`` ``architectures``, then ``task_type``), and the
check looks at that model's modules, never at tensor names in the base's files, which differ for
many architectures (ViT, the LLaVA family, MoE models) and lack tied weights such as ``lm_head``.
A model the user passes is checked as it is (resized embeddings included); a folder is checked
through the same class built from its ``config.json`` on the meta device, reading no weights:

- every module the version's tensors name must exist in the model, and each LoRA pair must fit
  its module (``lora_A`` (r, in) and ``lora_B`` (out, r) need a weight of (out, in); per expert
  for a stacked MoE parameter of ``target_parameters``) — otherwise `IncompatibleBaseModel`,
  always;
- a version carrying whole embedding matrices for a resized vocabulary (``save_embedding_layers``)
  needs the base's embeddings resized to match: `load` resizes them first, the check says so;
- then the base's content hash (from safetensors headers and the hash cache): equal to the one
  recorded, an exact match; otherwise (the same tensors with other weights, or other tensors
  whose shapes still fit) `BaseModelMismatch`, unless ``allow_base_mismatch=True``, which loads
  with a warning; a version that recorded no fingerprint is checked by its shapes alone.

After PEFT loads, an adapter parameter of the model that found no tensor in the version is an
error (`AdapterKeysMissing`), not PEFT's warning: the model would run with fresh adapter weights.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptergit import modelclass, peftkeys
from adaptergit.errors import (
    AdapterGitWarning,
    AdapterKeysMissing,
    BaseModelMismatch,
    BaseModelUnverifiable,
    IncompatibleBaseModel,
    InvalidBaseModel,
    InvalidManifest,
    PeftLoadFailed,
)
from adaptergit.integrations import require_training_stack
from adaptergit.manifest import BaseFingerprint

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
    """The outcome of checking a base model against a version's recorded fingerprint.

    Attributes:
        ref: the version, ``NAME@vX.Y.Z``.
        status: one of `STATUSES`.
        modules: adapter modules found in the base (LoRA pairs also checked for shape).
        expected: the fingerprint recorded with the version.
        actual: the base's fingerprint, or None when it was only a model in memory.
        base: the base model as given (path or name).
        model_class: the class the base was checked as (``LlamaForCausalLM``), or None when
            transformers could not build it and the check read the safetensors headers.
        resize_embeddings: the vocabulary size the base's token embeddings must be resized to
            before the version loads (it carries whole embedding matrices of that size), or None.
    """

    ref: str
    status: str  # one of STATUSES
    modules: int
    expected: BaseFingerprint
    actual: BaseFingerprint | None  # None when the base was only a model in memory
    base: str  # the base model as given (path or name)
    model_class: str | None = None
    resize_embeddings: int | None = None

    @property
    def exact(self) -> bool:
        """Whether the base's content hash equals the recorded one (status ``exact``)."""
        return self.status == EXACT

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields, the fingerprints as `BaseFingerprint.to_dict`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> BaseCheck:
        """Validate a dict written by `to_dict` (``verify REF --base-model PATH --json``).

        Args:
            data: the parsed JSON.

        Raises:
            InvalidManifest: not an object, a field of the wrong type, or an unknown status;
                the message names the key.
        """
        if not isinstance(data, dict):
            raise InvalidManifest("not an object", source="base check")
        for key, kind in (("ref", str), ("status", str), ("modules", int), ("base", str)):
            if not isinstance(data.get(key), kind):
                raise InvalidManifest(f"expected {kind.__name__}", key=key, source="base check")
        if data["status"] not in STATUSES:
            raise InvalidManifest(
                f"one of {', '.join(STATUSES)}", key="status", source="base check"
            )
        for key, kind in (("model_class", str), ("resize_embeddings", int)):
            value = data.get(key)
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                raise InvalidManifest(f"expected {kind.__name__}", key=key, source="base check")
        actual = data.get("actual")
        return cls(
            ref=data["ref"],
            status=data["status"],
            modules=data["modules"],
            expected=BaseFingerprint.from_dict(data.get("expected")),
            actual=BaseFingerprint.from_dict(actual) if actual is not None else None,
            base=data["base"],
            model_class=data.get("model_class"),
            resize_embeddings=data.get("resize_embeddings"),
        )


# --- which base weights a version needs -----------------------------------------------------------


def required_shapes(
    manifest: Manifest, config: Mapping[str, Any] | None
) -> dict[str, tuple[int, ...]]:
    """Module -> the shape its base weight must have, from the LoRA tensors' shapes alone.

    ``lora_A`` is (r, in) and ``lora_B`` (out, r), so a Linear needs (out, in), a Conv1D
    (``fan_in_fan_out``) (in, out), a convolution (out, in, ...) on its first two dimensions;
    an embedding's ``lora_embedding_A`` (r, vocab) and ``lora_embedding_B`` (dim, r) need
    (vocab, dim). Modules are named as the base model names them (PEFT's prefix removed).
    """
    transposed = bool((config or {}).get("fan_in_fan_out"))
    required: dict[str, tuple[int, ...]] = {}
    for module, parts in _lora_parts(manifest).items():
        needed = _needed(parts, transposed)
        if needed is not None:
            required[peftkeys.model_name(module)] = needed
    return dict(sorted(required.items(), key=lambda item: peftkeys.natural_key(item[0])))


def _lora_parts(manifest: Manifest) -> dict[str, dict[str, tuple[int, ...]]]:
    """Saved module name -> {LoRA factor part: shape}, for every module with LoRA factors."""
    parts: dict[str, dict[str, tuple[int, ...]]] = {}
    for tensor in manifest.tensors:
        key = peftkeys.parse_key(tensor.name)
        if key is not None and key.part in peftkeys.LORA_FACTORS and key.rest in ("", "weight"):
            parts.setdefault(key.module, {})[key.part] = tensor.shape
    return parts


def _needed(parts: Mapping[str, tuple[int, ...]], transposed: bool) -> tuple[int, ...] | None:
    a, b = parts.get(peftkeys.LORA_A), parts.get(peftkeys.LORA_B)
    if a is not None and b is not None and len(a) >= 2 and len(b) >= 2:
        return (a[1], b[0]) if transposed else (b[0], a[1])
    ea, eb = parts.get(peftkeys.LORA_EMBEDDING_A), parts.get(peftkeys.LORA_EMBEDDING_B)
    if ea is not None and eb is not None and len(ea) == 2 and len(eb) == 2:
        return (ea[1], eb[0])
    return None


# --- the structure check, against the model itself ----------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class _Fit:
    """What the structure check found: modules checked, and a resize the version needs."""

    modules: int
    resize_embeddings: int | None = None


def _fit_model(
    version: Version, config: Mapping[str, Any], view: modelclass.ModelView, label: str
) -> _Fit:
    """Check every module and tensor the version names against the model `view` shows."""
    manifest = version.manifest
    prefix = peftkeys.layer_prefix(manifest.peft_type)
    modules: dict[str, dict[str, tuple[int, ...]]] = {}
    whole: list[tuple[str, tuple[int, ...]]] = []
    for tensor in manifest.tensors:
        key = peftkeys.parse_key(tensor.name, prefix) if prefix is not None else None
        if (
            key is not None
            and key.module.startswith(peftkeys.PEFT_PREFIX)
            and peftkeys.model_name(key.module)
        ):
            part = key.part if key.rest in ("", "weight") else f"{key.part}.{key.rest}"
            modules.setdefault(key.module, {})[part] = tensor.shape
        elif tensor.name.startswith(peftkeys.PEFT_PREFIX):
            whole.append((tensor.name, tensor.shape))

    # whole tensors (modules to save, embedding copies): same shapes, or a resized vocabulary
    resize: int | None = None
    for name, shape in whole:
        actual = view.parameter(name)
        if actual is None or actual == shape:
            continue  # a wrapper's own tensor (trainable tokens), or as it should be
        role = view.embedding_role(name)
        resized = role is not None and len(shape) == 2 and len(actual) == 2
        if resized and shape[1] == actual[1] and resize in (None, shape[0]):
            resize = shape[0]
            continue
        raise IncompatibleBaseModel(
            version.ref, peftkeys.strip_wrappers(name), shape, actual, base=label
        )

    transposed = bool(config.get("fan_in_fan_out"))
    targeted = [t for t in config.get("target_parameters") or [] if isinstance(t, str)]
    checked = 0
    for module in sorted(modules, key=peftkeys.natural_key):
        parts = modules[module]
        name = peftkeys.strip_wrappers(module)
        info = view.module(module)
        needed = _needed(parts, transposed)
        if info is None:
            if view.converted(module):
                checked += 1  # transformers merges it into another tensor: PEFT converts it too
                continue
            raise IncompatibleBaseModel(version.ref, name, needed, None, base=label)
        checked += 1
        if needed is None:
            continue  # a method whose tensors do not give the module's shape: it exists
        a = parts.get(peftkeys.LORA_A)
        wrapped = _wrapped_parameters(info, targeted)
        if wrapped and a is not None and (peftkeys.wrapper_depth(module) or info.kind == "other"):
            if any(_fits_parameter(shape, a, needed) for shape in wrapped.values()):
                continue
            shapes = " or ".join(str(list(s)) for s in wrapped.values())
            raise IncompatibleBaseModel(
                version.ref,
                name,
                needed,
                None,
                base=label,
                hint=f"its target parameters there are {shapes}",
            )
        actual = info.weight
        if info.kind == modelclass.MODULE_CONV1D and not transposed:
            needed = (needed[1], needed[0])
        if actual is not None and len(actual) >= 2 and tuple(actual[:2]) == needed:
            continue
        vocabulary = view.embedding_role(f"{name}.weight") is not None  # embed_tokens, lm_head
        if (
            (info.kind == modelclass.MODULE_EMBEDDING or vocabulary)
            and actual is not None
            and len(actual) == 2
            and actual[1] == needed[1]
        ):
            if resize == needed[0] and vocabulary:
                continue
            raise IncompatibleBaseModel(
                version.ref,
                name,
                needed,
                tuple(actual),
                base=label,
                hint=f"the adapter was trained on a vocabulary resized to {needed[0]} tokens: "
                "resize the base model's token embeddings first",
            )
        raise IncompatibleBaseModel(
            version.ref, name, needed, tuple(actual) if actual is not None else None, base=label
        )
    return _Fit(modules=checked, resize_embeddings=resize)


def _wrapped_parameters(
    info: modelclass.ModuleInfo, targeted: list[str]
) -> dict[str, tuple[int, ...]]:
    """The module's own parameters that ``target_parameters`` names (matched as PEFT matches:
    the whole name, or a dotted suffix of ``module.parameter``)."""
    found = {}
    for pname, shape in info.parameters.items():
        key = f"{info.name}.{pname}"
        if any(key == t or key.endswith(f".{t}") for t in targeted):
            found[pname] = shape
    return found


def _fits_parameter(shape: tuple[int, ...], a: tuple[int, ...], needed: tuple[int, ...]) -> bool:
    """Whether LoRA factors needing (out, in) fit a wrapped parameter: 2-D (out, in), or a stack
    of experts (E, in, out) / (E, out, in) with ``lora_A`` holding r rows per expert."""
    if len(shape) == 2:
        return tuple(shape) == needed
    if len(shape) == 3:
        experts = shape[0]
        return experts > 0 and a[0] % experts == 0 and sorted(shape[1:]) == sorted(needed)
    return False


# --- the structure check from safetensors headers (transformers not installed) --------------------


def _candidates(module: str) -> list[str]:
    """Where a module's weight may sit in the base: as named, or with the outer wrapper's prefix
    dropped or added (a bare ``LlamaModel`` saves ``layers.0...`` for ``model.layers.0...``)."""
    found = [module]
    if "." in module:
        found.append(module.split(".", 1)[1])
    found.append(f"model.{module}")
    return found


def _fit_headers(version: Version, config: Mapping[str, Any], path: Path, label: str) -> _Fit:
    """The LoRA shape check from the base's safetensors headers; a tied ``lm_head`` (absent from
    the files) is checked against the input embeddings."""
    from adaptergit.fingerprint import read_structure

    structure = read_structure(path)  # headers only
    base_config = modelclass.read_base_config(path) or {}
    tied = base_config.get("tie_word_embeddings", True) is not False
    embeddings = sorted(
        n
        for n in structure
        if n.endswith(
            ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "shared.weight")
        )
    )

    def shape_of(module: str) -> tuple[int, ...] | None:
        entry = structure.get(f"{module}.weight")
        if entry is None and tied and module.rsplit(".", 1)[-1] == "lm_head" and embeddings:
            entry = structure.get(embeddings[0])
        return tuple(entry[1]) if entry is not None else None

    required = required_shapes(version.manifest, config)
    for module, needed in required.items():
        actual = None
        for candidate in _candidates(peftkeys.strip_wrappers(module)):
            actual = shape_of(candidate)
            if actual is not None:
                break
        if actual is None or tuple(actual[: len(needed)]) != needed:
            raise IncompatibleBaseModel(version.ref, module, needed, actual, base=label)
    return _Fit(modules=len(required))


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
    _refuse_lfs_pointers(path)
    return path


def _refuse_lfs_pointers(path: Path) -> None:
    """A base cloned without git-lfs holds pointer files where its weights should be."""
    from adaptergit.adapter import lfs_pointer

    files = sorted(path.glob("*.safetensors")) if path.is_dir() else [path]
    for file in files:
        if lfs_pointer(file) is not None:
            raise InvalidBaseModel(
                path,
                f"{file.name} is a Git LFS pointer, not the weights: the model was cloned without "
                "git-lfs; run `git lfs install && git lfs pull` in that clone",
            )


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


def _folder_view(
    version: Version, path: Path
) -> tuple[modelclass.ModelClass, modelclass.ModelView | None]:
    """The class the base at `path` is built as, and its modules (None: transformers cannot
    build it here, so the check reads headers)."""
    target = modelclass.resolve_base(path, version.config)
    built = modelclass.skeleton(target, path)
    return target, modelclass.ModelView(built) if built is not None else None


def _check(
    version: Version,
    config: Mapping[str, Any] | None,
    *,
    path: Path | None,
    view: modelclass.ModelView | None,
    label: str,
    allow_base_mismatch: bool,
) -> BaseCheck:
    from adaptergit.fingerprint import fingerprint_model

    manifest = version.manifest
    expected = manifest.base_model
    if view is not None:
        fit = _fit_model(version, config or {}, view, label)
    elif path is not None:
        fit = _fit_headers(version, config or {}, path, label)
    else:
        fit = _Fit(modules=0)

    def result(status: str, actual: BaseFingerprint | None) -> BaseCheck:
        return BaseCheck(
            ref=version.ref,
            status=status,
            modules=fit.modules,
            expected=expected,
            actual=actual,
            base=label,
            model_class=view.class_name if view is not None else None,
            resize_embeddings=fit.resize_embeddings,
        )

    if expected.content_hash is None:
        warnings.warn(
            f"{version.ref} recorded no base-model fingerprint (its base was not on disk when it "
            f"was committed); only the shapes of its {fit.modules} adapter modules were checked",
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
    """Check that `base_model` is the base the version `ref` was trained on; loads nothing.

    Args:
        ref: the version (``NAME``, ``NAME@vX.Y.Z``, ``NAME#STAGE``, ...).
        base_model: a folder, a hub id in the local Hugging Face cache, or a loaded model.
        repo: the registry (a `Repo` or its folder).
        base_model_path: the folder a loaded `base_model` came from, if it does not say.
        allow_base_mismatch: report other weights or tensors instead of raising.

    Returns:
        The `BaseCheck`; `BaseCheck.resize_embeddings` says when the base's vocabulary must be
        resized first (`load` does it).

    Raises:
        NotARepository: `repo` is not a registry.
        InvalidRef, NotFound: `ref` names nothing.
        InvalidBaseModel: `base_model` is not found on disk or in the Hugging Face cache, or
            is a clone whose weights are Git LFS pointers.
        IncompatibleBaseModel: a module the version needs is missing or does not fit: a LoRA
            pair ``lora_A`` (r, in_features) and ``lora_B`` (out_features, r) needs a base
            weight of shape (out_features, in_features).
        BaseModelMismatch: another base (unless `allow_base_mismatch`).
        BaseModelUnverifiable: a model in memory whose folder is unknown.
    """
    registry, owned = _open(repo)
    try:
        version = registry.resolve(ref, with_config=True)
        if isinstance(base_model, (str, Path)):
            path: Path | None = _resolve_path(base_model)
            assert path is not None
            _target, view = _folder_view(version, path)
            label = str(base_model)
        else:
            view = modelclass.ModelView(base_model)
            path = _model_path(base_model, base_model_path)
            label = str(path) if path is not None else type(base_model).__name__
        return _check(
            version,
            version.config,
            path=path,
            view=view,
            label=label,
            allow_base_mismatch=allow_base_mismatch,
        )
    finally:
        if owned:
            registry.close()


_MISSING_KEYS = "Found missing adapter keys while loading the checkpoint:"


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

    Args:
        ref: the version (``NAME``, ``NAME@vX.Y.Z``, ``NAME#STAGE``, ...).
        base_model: the base model's folder (or a hub id found in the local Hugging Face cache),
            loaded once by transformers as the class the adapter applies to
            (`adaptergit.modelclass`) with `model_kwargs`, after the check passes; or a model
            already loaded, which PEFT then modifies in place.
        repo: the registry (a `Repo` or its folder).
        base_model_path: the folder a loaded `base_model` came from, if its ``name_or_path``
            does not say.
        allow_base_mismatch: load onto other base weights or tensors, with a warning.
        adapter_name: the name PEFT gives the adapter.
        is_trainable: load it for further training.
        model_kwargs: passed to transformers' ``from_pretrained`` for a folder.

    Returns:
        The ``peft.PeftModel``, with the adapter loaded as `adapter_name` (in inference mode
        unless `is_trainable`).

    Raises:
        MissingDependency: torch, transformers or peft is not installed.
        NotARepository, InvalidRef, NotFound, InvalidBaseModel: see `check_base`.
        IncompatibleBaseModel, BaseModelMismatch, BaseModelUnverifiable: see `check_base`.
        WeightsMissing, NoRemote, TransferFailed, IntegrityError: the version's weights could
            not be brought back intact (see `Repo.checkout`).
        AdapterKeysMissing: PEFT left adapter parameters of the model without a tensor.
        PeftLoadFailed: PEFT refused to load it.
    """
    require_training_stack("adaptergit.load")
    registry, owned = _open(repo)
    try:
        version = registry.resolve(ref, with_config=True)
        config = version.config or {}
        if isinstance(base_model, (str, Path)):
            path = _resolve_path(base_model)
            target, view = _folder_view(version, path)
            check = _check(
                version,
                config,
                path=path,
                view=view,
                label=str(base_model),
                allow_base_mismatch=allow_base_mismatch,
            )
            model = modelclass.from_pretrained(target, path, **dict(model_kwargs or {}))
        else:
            model = base_model
            found = _model_path(model, base_model_path)
            check = _check(
                version,
                config,
                path=found,
                view=modelclass.ModelView(model),
                label=str(found) if found is not None else type(model).__name__,
                allow_base_mismatch=allow_base_mismatch,
            )
        if check.resize_embeddings is not None:
            model.resize_token_embeddings(check.resize_embeddings)
        with tempfile.TemporaryDirectory(prefix="adaptergit-load-") as tmp:
            # NAME@<commit>: exactly the version checked, even if NAME moves meanwhile
            folder = registry.checkout(f"{version.name}@{version.commit}", to=Path(tmp) / "adapter")
            return _peft_load(
                version.ref, model, folder, adapter_name=adapter_name, is_trainable=is_trainable
            )
    finally:
        if owned:
            registry.close()


def _peft_load(ref: str, model: Any, folder: Path, *, adapter_name: str, is_trainable: bool) -> Any:
    """``PeftModel.from_pretrained``, with its "missing adapter keys" warning made an error."""
    from peft import PeftModel

    model_class = type(model).__name__
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = PeftModel.from_pretrained(
                model, folder, adapter_name=adapter_name, is_trainable=is_trainable
            )
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            detail = " ".join(str(exc).split())
            raise PeftLoadFailed(ref, model_class, detail[:300] or type(exc).__name__) from None
    for item in caught:
        text = str(item.message)
        if text.startswith(_MISSING_KEYS) or (_MISSING_KEYS in text):
            listed = text.split(_MISSING_KEYS, 1)[1].strip().rstrip(".")
            keys = [k.strip(" '\"") for k in listed.strip("[]").split(",") if k.strip(" '\"")]
            raise AdapterKeysMissing(ref, model_class, keys)
        warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    return loaded


__all__ = ["BaseCheck", "check_base", "load", "required_shapes"]
