"""adaptergit: version control for fine-tuned PEFT adapters, with git for the record and DVC for weights.

The public API is loaded lazily so that ``import adaptergit`` (and the CLI) start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adaptergit.errors import AdapterGitError

if TYPE_CHECKING:
    from adaptergit.errors import AdapterGitWarning
    from adaptergit.loading import BaseCheck, check_base, load
    from adaptergit.manifest import Manifest, Version
    from adaptergit.repo import Repo

__version__: str  # read lazily from the installed distribution (see __getattr__)

__all__ = [
    "AdapterGitError",
    "AdapterGitWarning",
    "BaseCheck",
    "Manifest",
    "Repo",
    "Version",
    "check_base",
    "load",
]

_LAZY = {
    "Repo": "adaptergit.repo",
    "AdapterGitWarning": "adaptergit.errors",
    "Version": "adaptergit.manifest",
    "Manifest": "adaptergit.manifest",
    "load": "adaptergit.loading",
    "check_base": "adaptergit.loading",
    "BaseCheck": "adaptergit.loading",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # the installed distribution's, as `adaptergit --version` prints
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("adaptergit")
        except PackageNotFoundError:  # pragma: no cover - run from a source tree, not installed
            return "0+unknown"
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'adaptergit' has no attribute {name!r}")
