"""Comparing two versions: resolve them, make sure their weights are in the cache, compare."""

from __future__ import annotations

from adaptergit.compare import AdapterDiff, BaseModules, diff_versions
from adaptergit.manifest import Version
from adaptergit.ops.checkout import fetch_missing
from adaptergit.refs import Ref
from adaptergit.registry import Registry


def diff(registry: Registry, ref_a: str | Ref, ref_b: str | Ref) -> AdapterDiff:
    """What changed from `ref_a` to `ref_b`: config, metrics, base model, weights per module.

    Weights are read only when their sha256 differ, and fetched from the default DVC remote when
    the cache lacks them. For ``target_parameters`` and VeRA adapters the base model's modules
    are read from its ``config.json`` when the base is on disk (see `_base_modules`).

    Raises:
        UnknownAdapter, UnknownVersion, ...: a reference names nothing.
        WeightsMissing, TransferFailed: weights that are in neither the cache nor the remote.
    """
    old = registry.resolve(ref_a, with_config=True)
    new = registry.resolve(ref_b, with_config=True)
    paths = None
    if old.weights.sha256 != new.weights.sha256:
        for version in (old, new):
            if not registry.dvc.in_cache(version.weights.md5):
                fetch_missing(registry, version)
        paths = (registry.dvc.cache_path(old.weights.md5), registry.dvc.cache_path(new.weights.md5))
    return diff_versions(
        old,
        new,
        paths[0] if paths else None,
        paths[1] if paths else None,
        old_config=old.config,
        new_config=new.config,
        base=_base_modules(old, new),
    )


def _base_modules(old: Version, new: Version) -> BaseModules | None:
    """The base model's modules, built on the meta device, when a version needs them: to name
    the nested wrappers of ``target_parameters`` and count MoE experts exactly, and for VeRA's
    layer sizes. Only then is transformers imported."""
    from adaptergit.modelclass import base_view

    needed = any(
        (v.config or {}).get("target_parameters") or v.manifest.peft_type.upper() == "VERA"
        for v in (old, new)
    )
    if not needed:
        return None
    for version in (new, old):
        view = base_view(version.manifest.base_model.name_or_path, version.config)
        if view is not None:
            return view.module
    return None


__all__ = ["diff"]
