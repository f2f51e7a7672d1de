"""What an adapter applies to: the transformers class of its base model, and that model's modules.

One model of it, used by `adaptergit.load`, `adaptergit.check_base` (``verify --base-model``), the
model card that ``checkout --to`` writes and ``diff``:

1. **The class.** The class PEFT recorded in ``adapter_config.json``'s ``auto_mapping`` (PEFT
   writes it whenever ``task_type`` is None: ``peft_model.PeftModel.save_pretrained``), if it is
   a transformers class; else the first of the base's ``config.json`` ``architectures`` that fits
   the ``task_type`` (any, without one); else the Auto class of ``task_type``
   (``peft.utils.TaskType``, as PEFT's ``MODEL_TYPE_TO_PEFT_MODEL_MAPPING`` pairs them); else
   ``AutoModel``. The class is never imported from anywhere but transformers.

2. **The modules.** PEFT saves a module's tensors under the module's name in the model it wrapped
   (``get_peft_model_state_dict``), and loads them onto the modules of the model it is given, after
   applying the model's checkpoint conversions (``_checkpoint_conversion_mapping`` in transformers
   4, ``conversion_mapping.get_model_conversion_mapping`` in 5: ViT's ``encoder.layer.N.attention.
   attention.query`` became ``layers.N.attention.q_proj``, LLaVA's ``language_model.model`` became
   ``model.language_model``, Mixtral's per-expert ``w1``/``w3`` became one stacked
   ``gate_up_proj``). The checkpoint files of such a base keep the old names, so the modules an
   adapter needs are looked up in the model itself: the one the user passed, or one built from the
   base's ``config.json`` on PyTorch's meta device (no memory, no weights read: milliseconds even for
   a 70B config). Tied weights need nothing special there: ``lm_head`` is a module even when the
   files hold only ``embed_tokens``. `ModelView` answers those questions.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from adaptergit import peftkeys, strictjson

# PEFT task types -> the transformers Auto class that loads a base model for them.
AUTO_CLASSES = {
    "CAUSAL_LM": "AutoModelForCausalLM",
    "SEQ_2_SEQ_LM": "AutoModelForSeq2SeqLM",
    "SEQ_CLS": "AutoModelForSequenceClassification",
    "TOKEN_CLS": "AutoModelForTokenClassification",
    "QUESTION_ANS": "AutoModelForQuestionAnswering",
    "FEATURE_EXTRACTION": "AutoModel",
}
# How transformers names the classes of each task (``LlamaForCausalLM``, ``GPT2LMHeadModel``,
# ``T5ForConditionalGeneration``, ...): an architecture fits a task when its name ends so.
_TASK_SUFFIXES = {
    "CAUSAL_LM": ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration"),
    "SEQ_2_SEQ_LM": ("ForConditionalGeneration", "ForSeq2SeqLM"),
    "SEQ_CLS": ("ForSequenceClassification",),
    "TOKEN_CLS": ("ForTokenClassification",),
    "QUESTION_ANS": ("ForQuestionAnswering",),
}
DEFAULT_CLASS = "AutoModel"

# Where the class came from, most specific first.
AUTO_MAPPING = "auto_mapping"
ARCHITECTURES = "architectures"
TASK_TYPE = "task_type"
DEFAULT = "default"

BASE_CONFIG = "config.json"  # transformers' CONFIG_NAME
_MAX_BASE_CONFIG = 16 * 1024 * 1024
_CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelClass:
    """The transformers class an adapter's base model is built as.

    Attributes:
        name: a transformers class (``LlamaForCausalLM``) or Auto class (``AutoModelForCausalLM``).
        source: where it came from: ``auto_mapping``, ``architectures``, ``task_type`` or
            ``default``.
        task_type: the adapter's PEFT task type, if it has one.
    """

    name: str
    source: str
    task_type: str | None = None

    @property
    def is_auto(self) -> bool:
        """Whether `name` is an Auto class (the concrete class then comes from the config)."""
        return self.name.startswith("Auto")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``name``, ``source``, ``task_type``."""
        return asdict(self)


def _fits_task(architecture: str, task_type: str | None) -> bool:
    suffixes = _TASK_SUFFIXES.get(task_type or "")
    return suffixes is None or architecture.endswith(suffixes)


def model_class(
    adapter_config: Mapping[str, Any] | None, base_config: Mapping[str, Any] | None = None
) -> ModelClass:
    """The class an adapter's base model is built as (see the module's docstring for the order).

    Imports nothing: the class is a name, resolved by `transformers_class`.

    Args:
        adapter_config: the adapter's ``adapter_config.json``.
        base_config: the base model's ``config.json``, if known.
    """
    config = adapter_config or {}
    task = config.get("task_type")
    task_type = task if isinstance(task, str) and task else None
    mapping = config.get("auto_mapping")
    if isinstance(mapping, Mapping):
        name, library = mapping.get("base_model_class"), mapping.get("parent_library")
        if (
            isinstance(name, str)
            and _CLASS_NAME.match(name)
            and isinstance(library, str)
            and (library == "transformers" or library.startswith("transformers."))
        ):
            return ModelClass(name=name, source=AUTO_MAPPING, task_type=task_type)
    architectures = (base_config or {}).get("architectures")
    if isinstance(architectures, list):
        for architecture in architectures:
            if (
                isinstance(architecture, str)
                and _CLASS_NAME.match(architecture)
                and _fits_task(architecture, task_type)
            ):
                return ModelClass(name=architecture, source=ARCHITECTURES, task_type=task_type)
    if task_type in AUTO_CLASSES:
        return ModelClass(name=AUTO_CLASSES[task_type], source=TASK_TYPE, task_type=task_type)
    return ModelClass(name=DEFAULT_CLASS, source=DEFAULT, task_type=task_type)


def read_base_config(path: Path | None) -> dict[str, Any] | None:
    """The ``config.json`` of a base model folder (or of the folder holding a weights file), or
    None when there is none or it is not a JSON object."""
    if path is None:
        return None
    folder = path if path.is_dir() else path.parent
    try:
        raw = (folder / BASE_CONFIG).read_bytes()
    except OSError:
        return None
    try:
        value = strictjson.loads(raw, str(folder / BASE_CONFIG), max_bytes=_MAX_BASE_CONFIG)
    except strictjson.JsonError:
        return None
    return value if isinstance(value, dict) else None


def transformers_class(model: ModelClass, base_config: Mapping[str, Any] | None = None) -> Any:
    """The transformers class object `model` names (imports transformers).

    A name transformers does not have (a model with remote code, a class from a newer version)
    falls back to the task's Auto class, then ``AutoModel``, as the order of the module says.
    """
    import transformers

    found = getattr(transformers, model.name, None)
    if isinstance(found, type):
        return found
    fallback = model_class({"task_type": model.task_type}, base_config)
    found = getattr(transformers, fallback.name, None)
    if isinstance(found, type):
        return found
    return transformers.AutoModel


def from_pretrained(model: ModelClass, path: Path, **kwargs: Any) -> Any:
    """Load the base model at `path` as `model` says, with transformers' ``from_pretrained``.

    Args:
        model: the class to build (`model_class`); an Auto class is resolved through the base's
            ``config.json``.
        path: the base model's folder.
        **kwargs: passed to ``from_pretrained`` (``torch_dtype``, ``device_map``, ...).

    Returns:
        The transformers model.

    Raises:
        OSError, ValueError: as transformers raises them (a missing folder or config, a model
            type it does not know).
    """
    cls = transformers_class(model, read_base_config(path))
    return cls.from_pretrained(path, **kwargs)


def skeleton(model: ModelClass, path: Path) -> Any | None:
    """The base model at `path` built from its ``config.json`` on the meta device: every module
    and parameter shape, no weights; None when transformers cannot build it (no config, remote
    code, a model type this transformers does not know)."""
    try:
        import torch
        import transformers
    except ImportError:
        return None
    folder = path if path.is_dir() else path.parent
    if not (folder / BASE_CONFIG).is_file():
        return None
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity(logging.ERROR)  # its notes on configs are for who loads the model
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=False)
            cls = transformers_class(model, read_base_config(folder))
            with torch.device("meta"):
                if cls.__name__.startswith("Auto"):
                    return cls.from_config(config)
                return cls._from_config(config)
    except Exception:  # any failure to build means: check from the files instead
        return None
    finally:
        hf_logging.set_verbosity(verbosity)


# --- a base model's modules -----------------------------------------------------------------------

MODULE_LINEAR = "linear"  # weight (out, in)
MODULE_CONV1D = "conv1d"  # transformers' Conv1D (GPT-2): weight (in, out)
MODULE_EMBEDDING = "embedding"  # weight (vocab, dim)
MODULE_CONV = "conv"  # weight (out, in / groups, *kernel)
MODULE_OTHER = "other"


@dataclass(frozen=True, kw_only=True, slots=True)
class ModuleInfo:
    """One module of a base model, as an adapter sees it.

    Attributes:
        name: its name in the model (after the model's checkpoint conversions).
        kind: `MODULE_LINEAR`, `MODULE_CONV1D`, `MODULE_EMBEDDING`, `MODULE_CONV` or `MODULE_OTHER`.
        weight: the shape of its ``weight``, if it has one.
        parameters: its own parameters (not its children's) -> shape, in registration order:
            what ``target_parameters`` wraps, one ``ParamWrapper`` inside the next.
    """

    name: str
    kind: str
    weight: tuple[int, ...] | None
    parameters: dict[str, tuple[int, ...]] = field(default_factory=dict)


class ModelView:
    """The modules and parameter shapes of a base model, looked up as PEFT looks them up.

    Args:
        model: a transformers model (loaded, or a `skeleton` on the meta device), or a PeftModel
            whose base is one.
    """

    def __init__(self, model: Any) -> None:
        base = model.get_base_model() if hasattr(model, "peft_config") else model
        self.model = base
        self.class_name = type(base).__name__
        self._modules: dict[str, Any] = dict(base.named_modules())
        self._params = {
            peftkeys.strip_wrappers(n): tuple(p.shape) for n, p in base.named_parameters()
        }
        self._renames = _checkpoint_renames(base)
        self.embeddings: dict[str, str] = {}  # parameter name -> "input" / "output"
        for role, getter in (
            ("input", "get_input_embeddings"),
            ("output", "get_output_embeddings"),
        ):
            try:
                module = getattr(base, getter)()
            except (AttributeError, NotImplementedError):
                continue
            for name, candidate in self._modules.items():
                if candidate is module and module is not None:
                    self.embeddings.setdefault(f"{peftkeys.strip_wrappers(name)}.weight", role)

    def _names(self, name: str) -> Iterator[str]:
        """`name` as saved, then as the model's checkpoint conversions rename it."""
        plain = peftkeys.strip_wrappers(name)
        yield plain
        renamed, _merged = self._renames(f"{plain}.weight")
        renamed = renamed.removesuffix(".weight")
        if renamed != plain:
            yield renamed

    def module(self, name: str) -> ModuleInfo | None:
        """The module an adapter saved as `name` (PEFT's wrapper prefix removed; ``base_layer``
        infixes of nested wrappers are skipped), or None if the model has none."""
        for candidate in self._names(name):
            found = self._modules.get(candidate)
            if found is None:
                found = self._unwrapped(candidate)
            if found is not None:
                return _module_info(candidate, found)
        return None

    def _unwrapped(self, name: str) -> Any:
        """A module of a model PEFT already wrapped: its ``base_layer`` chain's innermost."""
        parts = name.split(".")
        current: Any = self.model
        for part in parts:
            current = getattr(current, part, None)
            while current is not None and _is_tuner(current):
                current = getattr(current, "base_layer", None)
            if current is None:
                return None
        return current

    def parameter(self, name: str) -> tuple[int, ...] | None:
        """The shape of the model's parameter called `name` (as saved, or renamed), if any."""
        for candidate in self._names(name.removesuffix(".weight")):
            shape = self._params.get(
                f"{candidate}.weight" if name.endswith(".weight") else candidate
            )
            if shape is not None:
                return shape
        return self._params.get(peftkeys.strip_wrappers(name))

    def embedding_role(self, name: str) -> str | None:
        """``input`` or ``output`` when parameter `name` is the model's token embeddings."""
        for candidate in self._names(name.removesuffix(".weight")):
            role = self.embeddings.get(f"{candidate}.weight")
            if role is not None:
                return role
        return None

    def converted(self, name: str) -> bool:
        """Whether transformers merges a module saved as `name` into another tensor on loading
        (per-expert weights stacked into one), so that it cannot be looked up as it is."""
        return self._renames(f"{peftkeys.strip_wrappers(name)}.weight")[1]

    @property
    def vocab_size(self) -> int | None:
        """Rows of the input embeddings, if the model has them."""
        for name, role in self.embeddings.items():
            if role == "input":
                shape = self._params.get(name)
                return shape[0] if shape else None
        return None


def _is_tuner(module: Any) -> bool:
    """A PEFT layer wrapping a module (it has ``base_layer``) or a modules-to-save wrapper."""
    return hasattr(module, "base_layer") and hasattr(module, "active_adapters")


def _module_info(name: str, module: Any) -> ModuleInfo:
    kind = MODULE_OTHER
    cls = type(module).__name__
    weight = getattr(module, "weight", None)
    shape = tuple(weight.shape) if weight is not None and hasattr(weight, "shape") else None
    if cls == "Conv1D":
        kind = MODULE_CONV1D
    elif cls == "Embedding" or (
        cls.endswith("Embedding") and shape is not None and len(shape) == 2
    ):
        kind = MODULE_EMBEDDING
    elif cls.startswith("Conv") and shape is not None and len(shape) >= 3:
        kind = MODULE_CONV
    elif shape is not None and len(shape) == 2:
        kind = MODULE_LINEAR
    parameters = {
        pname: tuple(p.shape)
        for pname, p in getattr(module, "_parameters", {}).items()
        if p is not None
    }
    return ModuleInfo(name=name, kind=kind, weight=shape, parameters=parameters)


def _checkpoint_renames(model: Any) -> Callable[[str], tuple[str, bool]]:
    """A function renaming a checkpoint key as the model's loader renames it: (new key, whether
    a converter merges it into another tensor, e.g. per-expert weights into a stacked one)."""
    rules: list[tuple[re.Pattern[str], str]] = []
    mapping = getattr(model, "_checkpoint_conversion_mapping", None)  # transformers 4
    if isinstance(mapping, dict):
        for pattern, replacement in mapping.items():
            try:
                rules.append((re.compile(pattern), replacement))
            except (re.error, TypeError):
                continue
    transform: Callable[[str], tuple[str, bool]] | None = None
    try:  # transformers 5, where PEFT converts adapters too: for the model types it registers
        from transformers.conversion_mapping import (
            get_checkpoint_conversion_mapping,
            get_model_conversion_mapping,
        )
        from transformers.core_model_loading import (
            WeightConverter,
            WeightRenaming,
            rename_source_key,
        )

        model_type = getattr(getattr(model, "config", None), "model_type", None)
        registered = get_checkpoint_conversion_mapping(model_type) is not None  # type: ignore[no-untyped-call]
        conversions = list(get_model_conversion_mapping(model) or []) if registered else []
        renamings = [c for c in conversions if isinstance(c, WeightRenaming)]
        converters = [c for c in conversions if isinstance(c, WeightConverter)]
        prefix = getattr(model, "base_model_prefix", None)
        if conversions:

            def transform(key: str) -> tuple[str, bool]:
                renamed, pattern = rename_source_key(key, renamings, converters, prefix)
                return renamed, pattern is not None

    except Exception:
        transform = None

    def rename(key: str) -> tuple[str, bool]:
        for pattern, replacement in rules:
            new, count = pattern.subn(replacement, key)
            if count:
                key = new
                break
        return transform(key) if transform is not None else (key, False)

    return rename


def base_view(
    name_or_path: str | None, adapter_config: Mapping[str, Any] | None
) -> ModelView | None:
    """The modules of a version's base model, built on the meta device when the base it recorded
    (a folder, or a hub id in the local Hugging Face cache) is on disk; else None."""
    from adaptergit.errors import AdapterGitError
    from adaptergit.fingerprint import resolve_base_model

    if not name_or_path:
        return None
    try:
        path, _name, _revision = resolve_base_model(None, {"base_model_name_or_path": name_or_path})
    except AdapterGitError:
        return None
    if path is None:
        return None
    built = skeleton(resolve_base(path, adapter_config), path)
    return ModelView(built) if built is not None else None


def resolve_base(path: Path | None, adapter_config: Mapping[str, Any] | None) -> ModelClass:
    """The `ModelClass` of an adapter whose base model folder is `path` (None: not on disk).

    Args:
        path: the base model's folder or weights file; its ``config.json`` is read if present.
        adapter_config: the adapter's ``adapter_config.json``.
    """
    return model_class(adapter_config, read_base_config(path))


__all__ = [
    "AUTO_CLASSES",
    "ModelClass",
    "ModelView",
    "ModuleInfo",
    "base_view",
    "from_pretrained",
    "model_class",
    "read_base_config",
    "resolve_base",
    "skeleton",
    "transformers_class",
]
