"""Stages (``NAME#prod``): GTO's stage tags, written exactly as ``gto assign`` writes them.

An assignment is an annotated tag ``NAME#STAGE#N`` on the version's commit, an unassignment
``NAME#STAGE!#N`` (`adaptergit.tags`); how they combine into "the version holding a stage" is the
index's (`adaptergit.index`). GTO orders events by tagger date, to the second; adaptergit dates
its own tags strictly after the artifact's previous stage tag, so ``gto show`` and
``adaptergit log`` always agree.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from adaptergit import tags as tag_grammar
from adaptergit.errors import (
    InvalidManifest,
    StageAlreadyAssigned,
    StageNotAssigned,
    UnknownRevision,
)
from adaptergit.refs import Ref, validate_name, validate_stage
from adaptergit.registry import Registry

ASSIGN = tag_grammar.ASSIGN
UNASSIGN = tag_grammar.UNASSIGN


@dataclass(frozen=True, kw_only=True, slots=True)
class StageEvent:
    """One assignment or unassignment of a stage to a version, as its GTO tag records it.

    Attributes:
        action: ``assign`` or ``unassign``.
        name: the adapter.
        stage: the stage.
        version: the version it applies to (``vX.Y.Z``; a short commit id if unregistered).
        commit: the version's commit.
        tag: the tag written.
        created: the tag's date, unix seconds.
    """

    action: str
    name: str
    stage: str
    version: str
    commit: str
    tag: str
    created: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> StageEvent:
        """Validate a dict written by `to_dict`.

        Args:
            data: the parsed JSON.

        Raises:
            InvalidManifest: not an object, a field missing or of the wrong type (``created`` is
                an int of unix seconds, the rest strings), or an action other than assign/unassign.
        """
        if not isinstance(data, dict):
            raise InvalidManifest("not an object", source="stage event")
        for f in dataclasses.fields(cls):
            kind = int if f.name == "created" else str
            value = data.get(f.name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise InvalidManifest(
                    f"expected a {kind.__name__}", key=f.name, source="stage event"
                )
        if data["action"] not in (ASSIGN, UNASSIGN):
            raise InvalidManifest("expected assign or unassign", key="action", source="stage event")
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def _write(
    registry: Registry,
    action: str,
    name: str,
    stage: str,
    version: str,
    commit: str,
    message: str,
) -> StageEvent:
    """Write one stage tag, dated after the artifact's previous stage tag."""
    index = registry.index
    counter = index.next_counter(name)
    when = max(int(time.time()), index.last_stage_time(name) + 1)
    unassign = action == UNASSIGN
    tag = tag_grammar.stage_tag(name, stage, counter, unassign=unassign)
    default = (tag_grammar.unassign_message if unassign else tag_grammar.assign_message)(
        name, stage, version
    )
    registry.git.create_tag(tag, commit, message or default, when=when)
    registry.refresh()
    return StageEvent(
        action=action, name=name, stage=stage, version=version, commit=commit, tag=tag, created=when
    )


def assign(registry: Registry, ref: str | Ref, stage: str, *, message: str = "") -> StageEvent:
    """Assign `stage` to the registered version `ref` names (a new ``NAME#STAGE#N`` tag).

    Raises:
        InvalidRef: a malformed stage.
        UnknownRevision: `ref` names a commit with no registered version.
        StageAlreadyAssigned: that version holds the stage already.
    """
    validate_stage(stage)
    with registry.lock():
        version = registry.resolve(ref)
        reg = registry.index.at_commit(version.name, version.commit)
        if reg is None:
            raise UnknownRevision(
                version.name, str(ref), "no version is registered at that commit; commit it first"
            )
        if stage in registry.index.stages_of(version.name, version.commit):
            raise StageAlreadyAssigned(version.name, stage, reg.label)
        return _write(registry, ASSIGN, version.name, stage, reg.label, version.commit, message)


def unassign(registry: Registry, name: str, stage: str, *, message: str = "") -> list[StageEvent]:
    """Take `stage` away from `name`: unassign it from every version where it is still active.

    GTO keeps an older assignment active when a newer one supersedes it, so unassigning only the
    holder would hand the stage back to the previous version; after this no version holds it.

    Raises:
        StageNotAssigned: no version of `name` holds `stage`.
    """
    validate_name(name)
    validate_stage(stage)
    with registry.lock():
        commits = registry.index.active_commits(name, stage)
        if not commits:
            raise StageNotAssigned(name, stage, registry.index.assigned_stages(name))
        events = []
        for commit in commits:
            reg = registry.index.at_commit(name, commit)
            label = reg.label if reg is not None else commit[:7]
            events.append(_write(registry, UNASSIGN, name, stage, label, commit, message))
        return events


__all__ = ["ASSIGN", "UNASSIGN", "StageEvent", "assign", "unassign"]
