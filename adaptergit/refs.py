"""Adapter names, stage names, semantic versions, and the references users type.

References: ``NAME`` or ``NAME@latest`` (the highest version), ``NAME@vX.Y.Z``, ``NAME@<git rev>``
(the adapter as of that commit) and ``NAME#STAGE``. Names and versions follow GTO
(``gto/constants.py``: artifact names, SemVer 2.0.0 with a ``v``); the tags built from them are
`adaptergit.tags`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

from adaptergit.errors import InvalidName, InvalidRef, InvalidVersion

# GTO's artifact name pattern, narrowed to what is also safe as a directory and a git ref
# component: lower-case letters, digits, '-' and '_' (GTO allows neither '.' nor '@' nor '#').
NAME_PATTERN = r"[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?"
# SemVer 2.0.0 with GTO's leading 'v' (build metadata is not used by GTO's own tags).
SEMVER_PATTERN = (
    r"v(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
)
_NAME_RE = re.compile(rf"^{NAME_PATTERN}$")
_SEMVER_RE = re.compile(rf"^{SEMVER_PATTERN}$")
_STAGE_RE = _NAME_RE
MAX_NAME_LENGTH = 100


def validate_name(name: str) -> str:
    """Return `name` if it is a valid adapter name, else raise InvalidName saying why.

    Valid: GTO's artifact names narrowed to what is safe as a folder and a git ref component:
    1 to 100 characters of ``a-z``, ``0-9``, ``-`` and ``_``, starting and ending with a letter
    or digit (`NAME_PATTERN`).

    Args:
        name: the name to check.

    Returns:
        `name` itself.

    Raises:
        InvalidName: it breaks a rule; the message says which.
    """
    if not isinstance(name, str) or not name:
        raise InvalidName(str(name), "the name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(name, f"longer than {MAX_NAME_LENGTH} characters")
    if _NAME_RE.match(name):
        return name
    if "/" in name or "\\" in name or name.startswith("."):
        reason = "a name cannot contain path separators or start with '.'"
    elif "." in name:
        reason = "'.' is not allowed: GTO artifact names take letters, digits, '-' and '_'"
    elif name != name.lower():
        reason = "use lower-case letters"
    elif name[0] in "-_" or name[-1] in "-_":
        reason = "must start and end with a letter or digit"
    else:
        bad = sorted({c for c in name if not re.match(r"[a-z0-9_-]", c)})
        reason = f"character(s) {''.join(bad)!r} not allowed; use a-z, 0-9, '-' and '_'"
    raise InvalidName(name, reason)


def validate_stage(stage: str) -> str:
    """Return `stage` if it is a valid stage name (as an adapter name: `NAME_PATTERN`).

    Raises:
        InvalidRef: it is not.
    """
    if not _STAGE_RE.match(stage or ""):
        raise InvalidRef(stage, "a stage is lower-case letters, digits, '-' and '_'")
    return stage


@total_ordering
@dataclass(frozen=True, slots=True)
class SemVer:
    """A version as GTO writes it: ``v`` + MAJOR.MINOR.PATCH, optionally -PRERELEASE."""

    major: int
    minor: int
    patch: int
    prerelease: str = ""

    @classmethod
    def parse(cls, text: str) -> SemVer:
        """Parse ``vMAJOR.MINOR.PATCH[-PRERELEASE]`` (SemVer 2.0.0 with GTO's ``v``).

        Raises:
            InvalidVersion: `text` is not one; ``1.2.0`` is told it lacks the ``v``.
        """
        match = _SEMVER_RE.match(text or "")
        if not match:
            if text and _SEMVER_RE.match("v" + text):
                raise InvalidVersion(text, f"versions start with 'v': did you mean v{text}?")
            raise InvalidVersion(text)
        return cls(
            int(match["major"]), int(match["minor"]), int(match["patch"]), match["pre"] or ""
        )

    @classmethod
    def is_valid(cls, text: str) -> bool:
        """Whether `text` is a version `parse` takes."""
        return bool(_SEMVER_RE.match(text or ""))

    def bump(self, part: str) -> SemVer:
        """The next version: ``major``, ``minor`` or ``patch`` incremented, lower parts zeroed.

        A ``patch`` bump of a pre-release is its release (``v1.2.0-rc.1`` -> ``v1.2.0``), as
        SemVer orders a release after its pre-releases.

        Raises:
            InvalidVersion: `part` is none of the three.
        """
        if part == "major":
            return SemVer(self.major + 1, 0, 0)
        if part == "minor":
            return SemVer(self.major, self.minor + 1, 0)
        if part == "patch":
            if self.prerelease:
                return SemVer(self.major, self.minor, self.patch)
            return SemVer(self.major, self.minor, self.patch + 1)
        raise InvalidVersion(part, "bump one of major, minor, patch")

    def sort_key(self) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
        """A tuple that sorts as the versions do (``sorted(vs, key=SemVer.sort_key)`` computes
        it once per version, where comparing the versions computes it twice per comparison)."""
        pre: tuple[tuple[int, int | str], ...] = tuple(
            (0, int(p)) if p.isdigit() else (1, p) for p in self.prerelease.split(".") if p
        )
        # A release sorts after its pre-releases.
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self.sort_key() < other.sort_key()

    def __str__(self) -> str:
        text = f"v{self.major}.{self.minor}.{self.patch}"
        return f"{text}-{self.prerelease}" if self.prerelease else text


FIRST_VERSION = SemVer(0, 0, 1)  # GTO's first version when none is given


@dataclass(frozen=True, slots=True)
class Ref:
    """A parsed reference: exactly one of version, revision, stage, or none of them for latest."""

    name: str
    version: SemVer | None = None
    revision: str | None = None
    stage: str | None = None

    @classmethod
    def parse(cls, text: str) -> Ref:
        """Parse ``NAME``, ``NAME@latest``, ``NAME@vX.Y.Z``, ``NAME@<git rev>`` or ``NAME#STAGE``.

        After ``@``, text that is a version is one; anything else is taken as a git revision
        (resolved later), unless it holds characters git forbids in revisions.

        Raises:
            InvalidRef: empty, a bad name or stage, nothing after ``@``, or an impossible
                revision.
        """
        if not isinstance(text, str) or not text.strip():
            raise InvalidRef(str(text), "empty reference")
        text = text.strip()
        if "#" in text:
            name, _, stage = text.partition("#")
            _check_ref_name(text, name)
            return cls(name=name, stage=validate_stage(stage))
        name, sep, spec = text.partition("@")
        _check_ref_name(text, name)
        if not sep:
            return cls(name=name)
        if not spec:
            raise InvalidRef(
                text, "nothing after '@'; use NAME@vX.Y.Z, NAME@latest or NAME@<git rev>"
            )
        if spec in ("latest", "greatest"):
            return cls(name=name)
        if SemVer.is_valid(spec):
            return cls(name=name, version=SemVer.parse(spec))
        if any(c in spec for c in " \t\n\x00~^:?*[\\") and not _REV_SUFFIX_RE.match(spec):
            raise InvalidRef(text, f"{spec!r} is not a version or a git revision")
        return cls(name=name, revision=spec)

    @property
    def is_latest(self) -> bool:
        """Whether it names the latest version (no version, revision or stage given)."""
        return self.version is None and self.revision is None and self.stage is None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.revision is not None:
            return f"{self.name}@{self.revision}"
        if self.stage is not None:
            return f"{self.name}#{self.stage}"
        return self.name


# Git revision syntax that is legitimate after '@': HEAD~2, main^, abc123^{commit}
_REV_SUFFIX_RE = re.compile(r"^[\w./-]+(?:[~^]\d*)*(?:\^\{\w*\})?$")


def _check_ref_name(text: str, name: str) -> None:
    try:
        validate_name(name)
    except InvalidName as exc:
        raise InvalidRef(text, exc.reason) from None
