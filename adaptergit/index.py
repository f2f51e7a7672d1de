"""The registry's index: every version and stage, built once from one listing of the tags.

As GTO's ``registry.py`` builds its state once and then answers every question from it, every
query here (latest version, the version at a commit, the stages a version holds, GTO's next tag
counter) reads the same `Index`, made from one ``git for-each-ref refs/tags``. Only annotated tags
count, as in GTO.

Stages follow GTO's rules: a stage is active on a version while that version's latest event for it
is an assignment, and the stage belongs to the active version assigned most recently. Events are
ordered by tagger date (seconds, as GTO does), ties broken by the ``#N`` counter.

Withdrawals follow GTO too (``gto/base.py``): a version whose latest registration event is a
deregistration (``NAME@vX.Y.Z!#N``, written by ``gto deregister`` and ``gto deprecate NAME V``) is
no longer active, and an artifact whose latest event of all is a deprecation
(``NAME@deprecated#N``, ``gto deprecate NAME``) has no active versions at all. Inactive versions
stay in `registrations` (their weights are still recorded and kept); `active` leaves them out, and
so do "latest", the stages and the default ``log``, as ``gto show`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from adaptergit import tags as tag_grammar
from adaptergit.gitrepo import TagInfo
from adaptergit.refs import SemVer


@dataclass(frozen=True, kw_only=True, slots=True)
class Registration:
    """A registered version: an annotated tag ``NAME@vX.Y.Z`` on a commit.

    Attributes:
        name: the adapter's name.
        version: its version.
        tag: the tag's name.
        commit: the commit the tag points at.
        created: the tag's date, unix seconds.
    """

    name: str
    version: SemVer
    tag: str
    commit: str
    created: int

    @property
    def label(self) -> str:
        """``vX.Y.Z``."""
        return str(self.version)


@dataclass(frozen=True, kw_only=True, slots=True)
class StageEventTag:
    """One stage tag ``NAME#STAGE#N`` (assign) or ``NAME#STAGE!#N`` (unassign)."""

    name: str
    stage: str
    commit: str
    tag: str
    created: int
    counter: int
    assign: bool

    @property
    def order(self) -> tuple[int, int]:
        """(tag date in unix seconds, counter): how GTO orders events of one artifact."""
        return (self.created, self.counter)


@dataclass(frozen=True, kw_only=True, slots=True)
class Withdrawal:
    """A GTO tag that withdraws something: ``NAME@vX.Y.Z!#N`` (one version, `version` set) or
    ``NAME@deprecated#N`` (the whole artifact, `version` None).

    Attributes:
        name: the adapter.
        version: the deregistered version, or None for a deprecation of the artifact.
        tag: the tag's name.
        created: the tag's date, unix seconds.
        counter: its ``#N``.
    """

    name: str
    version: SemVer | None
    tag: str
    created: int
    counter: int

    @property
    def order(self) -> tuple[int, int]:
        """(tag date in unix seconds, counter): how GTO orders events of one artifact."""
        return (self.created, self.counter)

    @property
    def kind(self) -> str:
        """``deregistered`` or ``deprecated``, as GTO words it."""
        return "deprecated" if self.version is None else "deregistered"


def current_stages(tags: Iterable[TagInfo]) -> dict[tuple[str, str], list[str]]:
    """(name, commit) -> the stages held there, from GTO stage tags (see the module's doc)."""
    return Index(list(tags)).stages()


class Index:
    """Versions and stages of a registry, from its tags.

    Args:
        tags: every tag of the repository (`GitRepo.tags`), lightweight ones included: they
            do not count as versions, but they do occupy their names.
    """

    def __init__(self, tags: Sequence[TagInfo]) -> None:
        self._tags = {t.name: t for t in tags}
        self._versions: dict[str, list[Registration]] = {}
        self._events: dict[str, list[StageEventTag]] = {}
        self._withdrawals: dict[str, list[Withdrawal]] = {}
        self._counters: dict[str, int] = {}
        for tag in tags:
            parsed = tag_grammar.parse(tag.name)
            if parsed is None:
                continue
            if parsed.counter is not None:
                previous = self._counters.get(parsed.name, 0)
                self._counters[parsed.name] = max(previous, parsed.counter)
            if not tag.annotated:
                continue
            if parsed.action == tag_grammar.REGISTER:
                assert parsed.version is not None
                self._versions.setdefault(parsed.name, []).append(
                    Registration(
                        name=parsed.name,
                        version=parsed.version,
                        tag=tag.name,
                        commit=tag.commit,
                        created=tag.created,
                    )
                )
            elif parsed.action in (tag_grammar.ASSIGN, tag_grammar.UNASSIGN):
                assert parsed.stage is not None
                self._events.setdefault(parsed.name, []).append(
                    StageEventTag(
                        name=parsed.name,
                        stage=parsed.stage,
                        commit=tag.commit,
                        tag=tag.name,
                        created=tag.created,
                        counter=parsed.counter or 0,
                        assign=parsed.action == tag_grammar.ASSIGN,
                    )
                )
            elif parsed.action in (tag_grammar.DEREGISTER, tag_grammar.DEPRECATE):
                self._withdrawals.setdefault(parsed.name, []).append(
                    Withdrawal(
                        name=parsed.name,
                        version=parsed.version,
                        tag=tag.name,
                        created=tag.created,
                        counter=parsed.counter or 0,
                    )
                )
        for found in self._versions.values():
            found.sort(key=lambda r: r.version.sort_key())
        self._inactive = self._withdrawn()
        self._holders = self._stage_holders()

    # --- versions ---------------------------------------------------------------------------

    def names(self) -> set[str]:
        """Every adapter with a registered version."""
        return set(self._versions)

    def registrations(self, name: str | None = None) -> list[Registration]:
        """`name`'s registered versions, lowest first (every adapter's when None)."""
        if name is not None:
            return list(self._versions.get(name, ()))
        return [r for n in sorted(self._versions) for r in self._versions[n]]

    def latest(self, name: str) -> Registration | None:
        """`name`'s highest registered version, withdrawn or not (the one new versions follow)."""
        found = self._versions.get(name)
        return found[-1] if found else None

    # --- withdrawals (GTO's deregistrations and deprecations) -------------------------------

    def _withdrawn(self) -> dict[str, Withdrawal]:
        """Tag of each registration -> the withdrawal that makes it inactive."""
        inactive: dict[str, Withdrawal] = {}
        for name, regs in self._versions.items():
            withdrawals = self._withdrawals.get(name, [])
            deprecation = self.deprecation(name)
            for reg in regs:
                # A registration has no counter: a deregistration dated the same second follows it.
                later = [
                    w
                    for w in withdrawals
                    if w.version == reg.version and w.order >= (reg.created, 0)
                ]
                if later:
                    inactive[reg.tag] = max(later, key=lambda w: w.order)
                elif deprecation is not None:
                    inactive[reg.tag] = deprecation
        return inactive

    def deprecation(self, name: str) -> Withdrawal | None:
        """The ``NAME@deprecated#N`` tag that deprecates the whole of `name`, if its latest event
        of all is one (a later registration or stage tag brings the artifact back, as in GTO)."""
        deprecations = [w for w in self._withdrawals.get(name, ()) if w.version is None]
        if not deprecations:
            return None
        newest = max(deprecations, key=lambda w: w.order)
        others = [(r.created, 0) for r in self._versions.get(name, ())]
        others += [e.order for e in self._events.get(name, ())]
        others += [w.order for w in self._withdrawals.get(name, ()) if w.version is not None]
        if any(order > newest.order for order in others):
            return None
        return newest

    def withdrawal(self, reg: Registration) -> Withdrawal | None:
        """What withdrew `reg` (its deregistration, or its artifact's deprecation), or None if it
        is active."""
        return self._inactive.get(reg.tag)

    def active(self, name: str | None = None) -> list[Registration]:
        """`name`'s active versions (every adapter's when None), lowest first: registered and
        neither deregistered nor deprecated."""
        return [r for r in self.registrations(name) if r.tag not in self._inactive]

    def latest_active(self, name: str) -> Registration | None:
        """`name`'s highest active version: what ``NAME``, ``NAME@latest`` and GTO's
        ``NAME@greatest`` name."""
        found = self.active(name)
        return found[-1] if found else None

    def find(self, name: str, version: SemVer | str) -> Registration | None:
        """The registration of ``NAME@version``, withdrawn or not, or None.

        Args:
            name: the adapter.
            version: the version, parsed or as ``vX.Y.Z`` text.

        Raises:
            InvalidVersion: `version` is text that is not a version.
        """
        wanted = version if isinstance(version, SemVer) else SemVer.parse(version)
        for reg in self._versions.get(name, ()):
            if reg.version == wanted:
                return reg
        return None

    def at_commit(self, name: str, commit: str) -> Registration | None:
        """The highest version of `name` registered at `commit`, withdrawn or not, or None.

        Args:
            name: the adapter.
            commit: a full commit id (as the tags peel to).
        """
        found = [r for r in self._versions.get(name, ()) if r.commit == commit]
        return found[-1] if found else None

    def tag(self, name: str) -> TagInfo | None:
        """Any tag called `name`, annotated or lightweight."""
        return self._tags.get(name)

    # --- stages -----------------------------------------------------------------------------

    def _stage_holders(self) -> dict[tuple[str, str], StageEventTag]:
        """(name, stage) -> the latest active assignment: the version holding the stage.

        As in GTO, only active versions hold stages: assignments to a commit whose versions of
        `name` are all withdrawn, or to any commit of a deprecated artifact, do not count.
        """
        holders: dict[tuple[str, str], StageEventTag] = {}
        for name, events in self._events.items():
            if self.deprecation(name) is not None:
                continue
            registered: dict[str, bool] = {}  # commit -> holds an active version of name
            for reg in self._versions.get(name, ()):
                registered[reg.commit] = registered.get(reg.commit, False) or (
                    reg.tag not in self._inactive
                )
            latest: dict[tuple[str, str], StageEventTag] = {}  # (stage, commit) -> last event
            for event in events:
                if not registered.get(event.commit, True):
                    continue
                key = (event.stage, event.commit)
                if key not in latest or event.order > latest[key].order:
                    latest[key] = event
            for (stage, _commit), event in latest.items():
                held = holders.get((name, stage))
                if event.assign and (held is None or event.order > held.order):
                    holders[(name, stage)] = event
        return holders

    def stages(self, name: str | None = None) -> dict[tuple[str, str], list[str]]:
        """(name, commit) -> the stages that commit's version holds (of `name`, or every adapter)."""
        result: dict[tuple[str, str], list[str]] = {}
        for (held_name, stage), event in sorted(self._holders.items()):
            if name is None or held_name == name:
                result.setdefault((held_name, event.commit), []).append(stage)
        return result

    def stages_of(self, name: str, commit: str) -> tuple[str, ...]:
        """The stages the version of `name` at `commit` holds, sorted.

        Holding follows GTO: the latest assignment of a stage to an active version holds it.

        Args:
            name: the adapter.
            commit: a full commit id.
        """
        return tuple(
            stage
            for (held_name, stage), event in sorted(self._holders.items())
            if held_name == name and event.commit == commit
        )

    def stage_commit(self, name: str, stage: str) -> str | None:
        """The commit whose version of `name` holds `stage` (what ``NAME#STAGE`` names), or None.

        Args:
            name: the adapter.
            stage: the stage.
        """
        event = self._holders.get((name, stage))
        return event.commit if event else None

    def assigned_stages(self, name: str) -> list[str]:
        """The stages some version of `name` holds."""
        return sorted(stage for (held_name, stage) in self._holders if held_name == name)

    def active_commits(self, name: str, stage: str) -> list[str]:
        """Every commit on which `stage` of `name` is still active (GTO keeps older ones active).

        A commit counts when its latest event for `stage` is an assignment, even if a newer
        assignment elsewhere holds the stage now; `unassign` must withdraw each.

        Args:
            name: the adapter.
            stage: the stage.

        Returns:
            Commit ids, sorted.
        """
        latest: dict[str, StageEventTag] = {}
        for event in self._events.get(name, ()):
            if event.stage == stage and (
                event.commit not in latest or event.order > latest[event.commit].order
            ):
                latest[event.commit] = event
        return sorted(c for c, event in latest.items() if event.assign)

    def next_counter(self, name: str) -> int:
        """GTO's next ``#N`` for `name`: one more than any of its tags' counters."""
        return self._counters.get(name, 0) + 1

    def last_stage_time(self, name: str) -> int:
        """The date of `name`'s latest stage tag (unix seconds), 0 if it has none."""
        return max((e.created for e in self._events.get(name, ())), default=0)


__all__ = ["Index", "Registration", "StageEventTag", "Withdrawal", "current_stages"]
