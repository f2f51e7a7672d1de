"""Stages (``NAME#prod``): GTO's stage tags, read and written exactly as ``gto assign`` does.

An assignment is an annotated tag ``NAME#STAGE#N`` on the version's commit, an unassignment
``NAME#STAGE!#N``; N counts every such tag of the artifact. As in GTO (one version per stage,
ordered by time), a stage is active on a version while that version's latest event for it is an
assignment, and the stage belongs to the active version assigned most recently. GTO orders by the
tagger date, to the second; adaptergit breaks ties by N and dates its own tags strictly after the
artifact's previous stage tag, so ``gto show`` and ``adaptergit log`` always agree on them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from adaptergit.errors import (
    InvalidManifest,
    StageAlreadyAssigned,
    StageNotAssigned,
    UnknownRevision,
)
from adaptergit.gitrepo import TagInfo
from adaptergit.refs import Ref, parse_stage_tag, parse_version_tag, validate_name, validate_stage

if TYPE_CHECKING:
    from adaptergit.repo import Repo

ASSIGN = "assign"
UNASSIGN = "unassign"


@dataclass(frozen=True, kw_only=True, slots=True)
class StageEvent:
    """One assignment or unassignment of a stage to a version, as its GTO tag records it."""

    action: str  # "assign" | "unassign"
    name: str
    stage: str
    version: str
    commit: str
    tag: str
    created: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "name": self.name,
            "stage": self.stage,
            "version": self.version,
            "commit": self.commit,
            "tag": self.tag,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: Any) -> StageEvent:
        if not isinstance(data, dict):
            raise InvalidManifest("not an object", source="stage event")
        fields = {
            "action": str,
            "name": str,
            "stage": str,
            "version": str,
            "commit": str,
            "tag": str,
        }
        for key, kind in fields.items():
            if not isinstance(data.get(key), kind):
                raise InvalidManifest("missing or not a string", key=key, source="stage event")
        if data["action"] not in (ASSIGN, UNASSIGN):
            raise InvalidManifest("expected assign or unassign", key="action", source="stage event")
        created = data.get("created", 0)
        if not isinstance(created, int) or isinstance(created, bool):
            raise InvalidManifest("expected an integer", key="created", source="stage event")
        return cls(**{k: data[k] for k in fields}, created=created)


def current_stages(tags: Iterable[TagInfo]) -> dict[tuple[str, str], list[str]]:
    """(name, commit) -> the stages that version holds, from GTO stage tags (see module doc)."""
    # (name, stage, commit) -> (order of the latest event, whether it assigns)
    latest: dict[tuple[str, str, str], tuple[tuple[int, int], bool]] = {}
    for tag in tags:
        parsed = parse_stage_tag(tag.name)
        if not parsed or not tag.annotated:
            continue
        name, stage, cancel, counter = parsed
        key = (name, stage, tag.commit)
        order = (tag.created, counter)
        if key not in latest or order > latest[key][0]:
            latest[key] = (order, not cancel)
    holder: dict[tuple[str, str], tuple[tuple[int, int], str]] = {}
    for (name, stage, commit), (order, active) in latest.items():
        if active and ((name, stage) not in holder or order > holder[(name, stage)][0]):
            holder[(name, stage)] = (order, commit)
    result: dict[tuple[str, str], list[str]] = {}
    for (name, stage), (_order, commit) in sorted(holder.items()):
        result.setdefault((name, commit), []).append(stage)
    return result


def active_commits(tags: Iterable[TagInfo], name: str, stage: str) -> list[str]:
    """Every commit on which `stage` of `name` is still active (GTO keeps older ones active)."""
    latest: dict[str, tuple[tuple[int, int], bool]] = {}
    for tag in tags:
        parsed = parse_stage_tag(tag.name)
        if not parsed or not tag.annotated or parsed[0] != name or parsed[1] != stage:
            continue
        order = (tag.created, parsed[3])
        if tag.commit not in latest or order > latest[tag.commit][0]:
            latest[tag.commit] = (order, not parsed[2])
    return sorted(c for c, (_o, active) in latest.items() if active)


def _counter_and_time(tags: Iterable[TagInfo], name: str) -> tuple[int, int]:
    """GTO's next counter for `name` (one more than any of its tags' ``#N``), and the latest
    stage tag's date."""
    counted = re.compile(re.escape(name) + r"[@#].*#(\d+)")
    counter = 0
    last = 0
    for tag in tags:
        match = counted.fullmatch(tag.name)
        if match:
            counter = max(counter, int(match[1]))
        if parse_stage_tag(tag.name) and tag.name.startswith(f"{name}#"):
            last = max(last, tag.created)
    return counter + 1, last


def _version_tags(repo: Repo, name: str) -> dict[str, str]:
    """commit -> version (the highest registered there) of `name`."""
    found: dict[str, Any] = {}
    for tag in repo.git.tags([f"refs/tags/{name}@*"]):
        parsed = parse_version_tag(tag.name)
        if (
            parsed
            and tag.annotated
            and parsed[0] == name
            and (tag.commit not in found or parsed[1] > found[tag.commit])
        ):
            found[tag.commit] = parsed[1]
    return {commit: str(v) for commit, v in found.items()}


def _write(
    repo: Repo, action: str, name: str, stage: str, version: str, commit: str, message: str
) -> StageEvent:
    tags = repo.git.tags([f"refs/tags/{name}#*", f"refs/tags/{name}@*"])
    counter, last = _counter_and_time(tags, name)
    when = max(int(time.time()), last + 1)
    if action == ASSIGN:
        tag = f"{name}#{stage}#{counter}"
        text = message or f"Assigning stage {stage} to artifact {name} version {version}"
    else:
        tag = f"{name}#{stage}!#{counter}"
        text = message or f"Unassigning stage '{stage}' to artifact '{name}' version '{version}'"
    repo.git.create_tag(tag, commit, text, when=when)
    return StageEvent(
        action=action, name=name, stage=stage, version=version, commit=commit, tag=tag, created=when
    )


def assign(repo: Repo, ref: str | Ref, stage: str, *, message: str = "") -> StageEvent:
    """Assign `stage` to the registered version `ref` names (a new ``NAME#STAGE#N`` tag)."""
    validate_stage(stage)
    with repo._locked():
        version = repo.resolve(ref)
        registered = _version_tags(repo, version.name)
        if version.commit not in registered:
            raise UnknownRevision(
                version.name, str(ref), "no version is registered at that commit; commit it first"
            )
        label = registered[version.commit]
        held = repo._stages(version.name).get((version.name, version.commit), [])
        if stage in held:
            raise StageAlreadyAssigned(version.name, stage, label)
        return _write(repo, ASSIGN, version.name, stage, label, version.commit, message)


def unassign(repo: Repo, name: str, stage: str, *, message: str = "") -> list[StageEvent]:
    """Take `stage` away from `name`: unassign it from every version where it is still active.

    GTO keeps an older assignment active when a newer one supersedes it, so unassigning only the
    holder would hand the stage back to the previous version; after this no version holds it.
    """
    validate_name(name)
    validate_stage(stage)
    with repo._locked():
        tags = repo.git.tags([f"refs/tags/{name}#*"])
        commits = active_commits(tags, name, stage)
        if not commits:
            assigned = {s for (n, _c), ss in current_stages(tags).items() if n == name for s in ss}
            raise StageNotAssigned(name, stage, assigned)
        registered = _version_tags(repo, name)
        events = []
        for commit in commits:
            label = registered.get(commit, commit[:7])
            events.append(_write(repo, UNASSIGN, name, stage, label, commit, message))
        return events


__all__ = ["StageEvent", "active_commits", "assign", "current_stages", "unassign"]
