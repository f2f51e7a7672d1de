"""GTO's tag grammar: every tag adaptergit writes or reads, built and parsed in this one place.

The forms are GTO's (``gto/tag.py``, ``gto/constants.py``), so ``gto show`` and adaptergit read the
same registry:

=================================  ==========================================================
``NAME@vX.Y.Z``                    register version vX.Y.Z of artifact NAME
``NAME@vX.Y.Z!#N``                 deregister it (``gto deregister``, ``gto deprecate NAME V``)
``NAME#STAGE#N``                   assign STAGE to the version whose commit the tag points at
``NAME#STAGE!#N``                  unassign it
``NAME@deprecated#N``              deprecate the whole artifact (``gto deprecate NAME``)
=================================  ==========================================================

N is GTO's counter: one more than the highest ``#N`` of any tag of that artifact. Every tag is
annotated; GTO ignores lightweight tags, and so does adaptergit. Messages are GTO's defaults.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from adaptergit.refs import NAME_PATTERN, SEMVER_PATTERN, SemVer

REGISTER = "register"
DEREGISTER = "deregister"
ASSIGN = "assign"
UNASSIGN = "unassign"
DEPRECATE = "deprecate"

REFS_PREFIX = "refs/tags/"

_TAG_RE = re.compile(
    rf"^(?P<name>{NAME_PATTERN})"
    rf"(?:(?:#(?P<stage>{NAME_PATTERN})|@(?P<version>{SEMVER_PATTERN}))(?P<cancel>!?)"
    r"|@(?P<deprecated>deprecated))"
    r"(?:#(?P<counter>[0-9]+))?$"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ParsedTag:
    """What a GTO tag name says: an action on artifact `name`, and its counter if it has one."""

    action: str  # REGISTER, DEREGISTER, ASSIGN, UNASSIGN or DEPRECATE
    name: str
    version: SemVer | None = None  # REGISTER, DEREGISTER
    stage: str | None = None  # ASSIGN, UNASSIGN
    counter: int | None = None


def parse(tag: str) -> ParsedTag | None:
    """Parse a tag name (without ``refs/tags/``); None for a tag that is not GTO's."""
    match = _TAG_RE.match(tag)
    if not match:
        return None
    counter = int(match["counter"]) if match["counter"] else None
    cancel = bool(match["cancel"])
    if match["deprecated"]:
        return ParsedTag(action=DEPRECATE, name=match["name"], counter=counter)
    if match["stage"]:
        return ParsedTag(
            action=UNASSIGN if cancel else ASSIGN,
            name=match["name"],
            stage=match["stage"],
            counter=counter,
        )
    return ParsedTag(
        action=DEREGISTER if cancel else REGISTER,
        name=match["name"],
        version=SemVer.parse(match["version"]),
        counter=counter,
    )


def parse_version_tag(tag: str) -> tuple[str, SemVer] | None:
    """(name, version) of a registration tag ``NAME@vX.Y.Z`` (GTO may add ``#N``); else None."""
    parsed = parse(tag)
    if parsed is None or parsed.action != REGISTER:
        return None
    assert parsed.version is not None
    return parsed.name, parsed.version


def version_order(tag: str) -> tuple[str, SemVer]:
    """Sort key of registration tags: by name, then by version (not as text: v0.0.10 > v0.0.9).

    Raises:
        ValueError: `tag` is not a registration tag.
    """
    parsed = parse_version_tag(tag)
    if parsed is None:
        raise ValueError(f"{tag!r} is not a version tag")
    return parsed


def version_tag(name: str, version: SemVer | str) -> str:
    """``NAME@vX.Y.Z``: the tag that registers a version (``gto register``).

    Args:
        name: the artifact (adapter) name, already validated.
        version: the version, parsed or as ``vX.Y.Z`` text.
    """
    return f"{name}@{version}"


def deregister_tag(name: str, version: SemVer | str, counter: int) -> str:
    """``NAME@vX.Y.Z!#N``: the tag that withdraws a registered version (``gto deregister``).

    Args:
        name: the artifact name.
        version: the version withdrawn.
        counter: GTO's counter N (`next_counter`).
    """
    return f"{name}@{version}!#{counter}"


def stage_tag(name: str, stage: str, counter: int, *, unassign: bool = False) -> str:
    """``NAME#STAGE#N`` (assign) or ``NAME#STAGE!#N`` (unassign), as ``gto assign`` writes them.

    Args:
        name: the artifact name.
        stage: the stage.
        counter: GTO's counter N (`next_counter`).
        unassign: build the unassignment tag.
    """
    return f"{name}#{stage}{'!' if unassign else ''}#{counter}"


def deprecate_tag(name: str, counter: int) -> str:
    """``NAME@deprecated#N``: the tag that deprecates a whole artifact (``gto deprecate NAME``).

    Args:
        name: the artifact name.
        counter: GTO's counter N (`next_counter`).
    """
    return f"{name}@deprecated#{counter}"


def full_ref(tag: str) -> str:
    """``refs/tags/TAG``."""
    return REFS_PREFIX + tag


def short_name(ref: str) -> str:
    """TAG from ``refs/tags/TAG`` (any other string is returned as it is)."""
    return ref.removeprefix(REFS_PREFIX)


def name_patterns(name: str | None = None) -> list[str]:
    """``for-each-ref`` patterns for every tag of `name` (all tags when None)."""
    if name is None:
        return [REFS_PREFIX.rstrip("/")]
    return [f"{REFS_PREFIX}{name}@*", f"{REFS_PREFIX}{name}#*"]


def event_patterns() -> list[str]:
    """``for-each-ref`` patterns for the tags with a ``#N`` counter (stage, deregistration and
    deprecation tags) of every artifact, leaving the version tags out: few, however many
    versions there are."""
    return [f"{REFS_PREFIX}*#*"]


def next_counter(tags: Iterable[str], name: str) -> int:
    """GTO's next ``#N`` for artifact `name`: one more than the highest of its tags' counters.

    Args:
        tags: tag names (without ``refs/tags/``), of any artifacts; others' are ignored.
        name: the artifact.

    Returns:
        1 when `name` has no counted tag yet.
    """
    highest = 0
    for tag in tags:
        parsed = parse(tag)
        if parsed is not None and parsed.name == name and parsed.counter is not None:
            highest = max(highest, parsed.counter)
    return highest + 1


# GTO's default messages (gto/registry.py), so `git show TAG` reads the same whichever tool wrote it.


def register_message(name: str, version: SemVer | str, message: str = "") -> str:
    """The message of a registration tag: GTO's line, then the user's message if any.

    Args:
        name: the artifact name.
        version: the version registered.
        message: the user's message ("" for none).
    """
    text = f"Registering artifact {name} version {version}"
    return f"{text}\n\n{message}" if message else text


def assign_message(name: str, stage: str, version: str) -> str:
    """GTO's default message of an assignment tag (``gto/registry.py``).

    Args:
        name: the artifact name.
        stage: the stage assigned.
        version: the version (``vX.Y.Z``, or a short commit for an unregistered one).
    """
    return f"Assigning stage {stage} to artifact {name} version {version}"


def unassign_message(name: str, stage: str, version: str) -> str:
    """GTO's default message of an unassignment tag, quoted as GTO quotes it.

    Args:
        name: the artifact name.
        stage: the stage unassigned.
        version: the version (``vX.Y.Z``, or a short commit for an unregistered one).
    """
    return f"Unassigning stage '{stage}' to artifact '{name}' version '{version}'"


__all__ = [
    "ASSIGN",
    "DEPRECATE",
    "DEREGISTER",
    "REGISTER",
    "UNASSIGN",
    "ParsedTag",
    "assign_message",
    "deprecate_tag",
    "deregister_tag",
    "event_patterns",
    "full_ref",
    "name_patterns",
    "next_counter",
    "parse",
    "parse_version_tag",
    "register_message",
    "short_name",
    "stage_tag",
    "unassign_message",
    "version_order",
    "version_tag",
]
