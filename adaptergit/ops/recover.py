"""Converging after a crash: finish or undo what killed commands left, on disk and on remotes.

Every write command does the local part first, under the repository lock (`Registry.lock`): the
journals of `adaptergit.txn` say what to put back or keep. ``adaptergit recover`` does it
explicitly, reports it, and also reaches the DVC remotes that killed uploads left partial files
on (which the next push or ``gc --remote`` to that remote would clean up otherwise).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptergit import txn
from adaptergit.errors import AdapterGitError
from adaptergit.registry import Registry
from adaptergit.txn import Recovered


@dataclass(frozen=True, kw_only=True, slots=True)
class RecoverReport:
    """What recovery did.

    Attributes:
        recovered: interrupted writes rolled back or completed, temporaries removed.
        remote_removed: partial uploads removed from DVC remotes (their paths there).
        remote_errors: remotes that could not be reached (their journals are kept for later).
    """

    recovered: tuple[Recovered, ...]
    remote_removed: tuple[str, ...] = field(default_factory=tuple)
    remote_errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def nothing(self) -> bool:
        """Whether there was nothing to finish, undo or clean up."""
        return not (self.recovered or self.remote_removed or self.remote_errors)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields (each `Recovered` as a dict)."""
        return dataclasses.asdict(self)


def recover(registry: Registry) -> RecoverReport:
    """Finish or undo interrupted writes, and clean up after interrupted uploads.

    Returns:
        What was done.

    Raises:
        RepositoryBusy: another command holds the repository.
    """
    removed: list[str] = []
    errors: list[str] = []
    with registry.lock():
        done = tuple(registry.recovered)
        remotes = sorted({j.remote for j in txn.pending_remote_temps(registry.state_dir)})
        for name in remotes:
            try:
                removed += registry.remotes.recover_remote(name)
            except AdapterGitError as exc:
                errors.append(f"{name}: {exc}")
    return RecoverReport(
        recovered=tuple(_relative(registry, r) for r in done),
        remote_removed=tuple(removed),
        remote_errors=tuple(errors),
    )


def _relative(registry: Registry, item: Recovered) -> Recovered:
    """`item` with its target relative to the work tree (``adapters/bot``, ``.`` for the root)."""
    target = Path(item.target)
    if target.is_absolute() and target.is_relative_to(registry.root):
        return dataclasses.replace(item, target=target.relative_to(registry.root).as_posix())
    return item


__all__ = ["RecoverReport", "recover"]
