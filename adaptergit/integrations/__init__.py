"""Where adapters are made and used: PEFT models (`peft`) and the transformers Trainer (`transformers`).

Each submodule imports its library at its top, so import only the one you use.
"""

from __future__ import annotations

from adaptergit.errors import MissingDependency

TRAINING_STACK = ("torch", "transformers", "peft")


def require_training_stack(purpose: str) -> None:
    """Fail with one clear line, not an ImportError, when torch, transformers or peft is missing."""
    import importlib.util

    for package in TRAINING_STACK:
        if importlib.util.find_spec(package) is None:
            raise MissingDependency(package, purpose, 'pip install "adaptergit[train]"')


__all__ = ["TRAINING_STACK", "require_training_stack"]
