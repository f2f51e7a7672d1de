"""PEFT models handed to ``Repo.commit``: saved through PEFT's own ``save_pretrained``, one folder each."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from adaptergit.errors import InvalidInput, NotAPeftModel, UnknownPeftAdapter
from adaptergit.refs import validate_name


def is_peft_model(obj: Any) -> bool:
    """Whether `obj` is a peft.PeftModel (checked without importing peft for anything else)."""
    if isinstance(obj, (str, Path)) or not hasattr(obj, "peft_config"):
        return False
    from peft import PeftModel

    return isinstance(obj, PeftModel)


def select(
    model: Any,
    *,
    name: str | None,
    names: Mapping[str, str] | None,
    adapter_name: str | None,
) -> dict[str, str]:
    """PEFT adapter name -> registry name for what to commit, validated against the model.

    Args:
        model: a ``peft.PeftModel``.
        name: the registry name for one adapter.
        names: ``{peft adapter: registry name}`` for several (exclusive with `name`).
        adapter_name: with `name`, which adapter (default: the model's active one).

    Raises:
        NotAPeftModel: `model` is not a PeftModel.
        InvalidInput: neither or both of `name` and `names`, an empty `names`, or two
            adapters mapped to one registry name.
        UnknownPeftAdapter: the model has no such adapter.
        InvalidName: a registry name breaks the rules.
    """
    if not is_peft_model(model):
        raise NotAPeftModel(type(model).__name__)
    available = list(model.peft_config)
    if names is not None:
        if name is not None or adapter_name is not None:
            raise InvalidInput(
                "give names={adapter: name, ...} or name= (with adapter_name=), not both"
            )
        if not names:
            raise InvalidInput("names= is empty: map at least one PEFT adapter to a registry name")
        chosen = dict(names)
    else:
        if name is None:
            raise InvalidInput("name= is required: the registry name to record the adapter under")
        if adapter_name is None:
            active = getattr(model, "active_adapter", None)
            adapter_name = active if isinstance(active, str) else available[0]
        chosen = {adapter_name: name}
    for adapter, registry_name in chosen.items():
        if adapter not in available:
            raise UnknownPeftAdapter(adapter, available)
        validate_name(registry_name)
    if len(set(chosen.values())) != len(chosen):
        raise InvalidInput("names= maps two PEFT adapters to the same registry name")
    return chosen


@contextlib.contextmanager
def saved_adapters(
    model: Any, chosen: Mapping[str, str], workdir: Path
) -> Iterator[list[tuple[Path, str]]]:
    """Save the chosen adapters with ``save_pretrained(safe_serialization=True)`` into a temporary
    folder under `workdir`; yield (folder, registry name) pairs, deleted afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="peft-save-", dir=workdir) as tmp:
        root = Path(tmp)
        model.save_pretrained(root, selected_adapters=list(chosen), safe_serialization=True)
        # PEFT writes the adapter called "default" at the top and any other in a sub-folder.
        yield [
            (root if adapter == "default" else root / adapter, name)
            for adapter, name in chosen.items()
        ]


__all__ = ["is_peft_model", "saved_adapters", "select"]
