"""Replaying this clone's unpublished versions on top of what others published first.

Two clones that both record the next version of an adapter both call it, say, ``a@v0.0.2``. The
first to push publishes it; the second push is rejected (the remote's branch moved on, or its tag
``a@v0.0.2`` exists). `plan` then rebuilds the second clone's unpublished version commits on top
of the remote's branch, one by one, as ``git rebase`` would, and renumbers each version past the
remote's latest version of that adapter (its tags, and the versions its branch's manifests record,
so that a commit published without its tag is never given a twin): the manifest's ``version`` and ``parent``, the commit's
subject, the tag and the ``dvc.yaml`` entry. Stage tags (``NAME#STAGE#N``) that clash are renamed
past the remote's counter and dated after its last stage event, so the last assignment published
wins, for GTO as for adaptergit.

What is replayed, and only that: commits reachable from HEAD and not from the remote's branch,
each a non-merge commit carrying at least one version tag the remote does not have, and changing
only those adapters' folders and ``dvc.yaml``. A published version (its tag on the remote, with
the same object) is never renumbered, moved or rewritten; any other local commit stops the replay
(the user integrates it with git). Nothing is written to a ref here: the plan names new objects
(commits, tags) that the push publishes first, and `apply` moves the local refs only after that.

`follow_rewrite` is the same idea for a plain ``git rebase`` / ``git commit --amend`` (the
post-rewrite hook): unpublished version and stage tags follow their commits to the rewritten ones.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from adaptergit import registry_yaml, strictjson
from adaptergit import tags as tag_grammar
from adaptergit.errors import AdapterGitError
from adaptergit.gitrepo import TagInfo
from adaptergit.index import Index, Registration
from adaptergit.layout import CONFIG_FILE, DVC_YAML, MANIFEST_FILE, adapter_of, adapter_path
from adaptergit.manifest import Manifest
from adaptergit.refs import SemVer
from adaptergit.registry import Registry
from adaptergit.tags import ParsedTag

# Where a copy of the remote's tags is fetched, so that clashing local tags are not clobbered.
REMOTE_TAGS = "refs/adaptergit/remote-tags/"


class NotReplayable(AdapterGitError):
    """A local commit that adaptergit does not rewrite by itself (the user integrates it)."""

    MERGE = "is a merge"

    def __init__(self, commit: str, reason: str) -> None:
        self.commit = commit
        self.reason = reason
        super().__init__(f"commit {commit[:7]} {reason}")


@dataclass(frozen=True, kw_only=True, slots=True)
class NewTag:
    """A tag the replay writes: its name, the tag object, and the local tag it replaces."""

    name: str
    oid: str
    commit: str
    replaces: str | None = None  # the local tag's name before the replay
    replaces_oid: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """What a replay publishes and then does to the local refs.

    Attributes:
        head: the local branch's commit before the replay.
        tip: the branch's new commit (`head` when no commit had to be rewritten).
        commits: old commit -> its rewritten commit.
        tags: tags written (new objects), with the local tags they replace.
        unpublished: local tags pushed as they are (not on the remote, no clash).
        renumbered: (old ref, new ref) of each version whose number changed,
            e.g. ("a@v0.0.2", "a@v0.0.3").
        restaged: (old tag, new tag) of each renamed stage tag.
    """

    head: str
    tip: str
    commits: dict[str, str] = field(default_factory=dict)
    tags: tuple[NewTag, ...] = ()
    unpublished: tuple[str, ...] = ()
    renumbered: tuple[tuple[str, str], ...] = ()
    restaged: tuple[tuple[str, str], ...] = ()

    def refspecs(self, branch: str | None) -> list[str]:
        """What to push: the branch at `tip`, then every new and unpublished tag."""
        specs = [f"{self.tip}:refs/heads/{branch}"] if branch else []
        specs += [f"{t.oid}:{tag_grammar.full_ref(t.name)}" for t in self.tags]
        specs += [f"{tag_grammar.full_ref(t)}:{tag_grammar.full_ref(t)}" for t in self.unpublished]
        return specs


def _bump_kind(parent: str | None, version: SemVer) -> str:
    """Which part a version bumped from its parent: ``major``, ``minor`` or ``patch``."""
    if parent is None:
        return "patch"
    try:
        before = SemVer.parse(parent)
    except AdapterGitError:
        return "patch"
    if version.major != before.major:
        return "major"
    if version.minor != before.minor:
        return "minor"
    return "patch"


def _retitle(message: str, renames: Mapping[str, str]) -> str:
    """The commit message with the subject's version refs renamed (``a@v0.0.2`` -> ``a@v0.0.3``)."""
    subject, sep, body = message.partition("\n")
    for old, new in renames.items():
        subject = subject.replace(old, new)
    return subject + sep + body


def _version_message(old: str, name: str, version: str) -> str:
    """A version tag's message for a new number: GTO's first line, the user's text kept."""
    _first, _sep, rest = old.partition("\n\n")
    return tag_grammar.register_message(name, version, rest.strip())


class _Numbers:
    """Version numbers and GTO counters as the remote has them, plus those the replay takes."""

    def __init__(
        self,
        remote: Sequence[TagInfo],
        taken: set[str],
        recorded: Mapping[str, set[SemVer]] | None = None,
    ) -> None:
        self.remote = Index(list(remote))
        self.recorded = dict(recorded or {})
        self.taken = taken | {
            tag_grammar.version_tag(name, v) for name, vs in self.recorded.items() for v in vs
        }
        self.latest: dict[str, SemVer] = {}
        self.counters: dict[str, int] = {}
        self.stage_time: dict[str, int] = {}

    def latest_of(self, name: str) -> SemVer | None:
        """The highest version of `name` on the remote (tagged, or recorded by a manifest on
        its branch) or given by this replay so far."""
        reg = self.remote.latest(name)
        found = [v for v in (reg.version if reg else None, self.latest.get(name)) if v]
        found += self.recorded.get(name, ())
        return max(found) if found else None

    def keep(self, name: str, version: SemVer) -> None:
        """A version that keeps its number (its commit is not rewritten)."""
        self.taken.add(tag_grammar.version_tag(name, version))
        latest = self.latest.get(name)
        self.latest[name] = max(version, latest) if latest else version

    def version_for(self, name: str, wanted: SemVer, parent: str | None) -> SemVer:
        """`wanted` when it is free and newer than the latest, else the next free one past the
        latest, bumping the part the version bumped from its parent."""
        latest = self.latest_of(name)
        new = wanted
        if tag_grammar.version_tag(name, new) in self.taken or (latest and new <= latest):
            new = (latest or wanted).bump(_bump_kind(parent, wanted))
            while tag_grammar.version_tag(name, new) in self.taken:
                new = new.bump("patch")
        self.keep(name, new)
        return new

    def keep_counter(self, name: str, counter: int, created: int) -> None:
        """A stage tag that keeps its name: later renamed ones go past it."""
        self.counters[name] = max(self.counters.get(name, 0), counter)
        self.stage_time[name] = max(self.stage_time.get(name, 0), created)

    def counter_free(self, name: str, counter: int, created: int) -> bool:
        """Whether a stage tag's counter and date still come after everything published."""
        return (
            counter >= self.remote.next_counter(name)
            and counter > self.counters.get(name, 0)
            and created > self.remote.last_stage_time(name)
        )

    def next_counter(self, name: str) -> int:
        counter = max(self.remote.next_counter(name), self.counters.get(name, 0) + 1)
        self.counters[name] = counter
        return counter

    def stage_time_after(self, name: str, created: int) -> int:
        """A date for a renamed stage tag: after the remote's last stage event of `name`."""
        when = max(created, self.remote.last_stage_time(name) + 1, self.stage_time.get(name, 0))
        self.stage_time[name] = when
        return when


def remote_tag_names(registry: Registry, head: str, base: str | None) -> set[str]:
    """The artifact names whose remote tags a replay of `head` onto `base` must know: those
    with version tags on the commits to replay, and those with stage tags anywhere."""
    commits = set(registry.git.rev_list(head, [base] if base else []))
    names = {r.name for r in registry.index.registrations() if r.commit in commits}
    for tag in registry.git.tags(tag_grammar.event_patterns()):
        parsed = tag_grammar.parse(tag.name)
        if parsed is not None and parsed.stage is not None:
            names.add(parsed.name)
    return names


def recorded_on_branch(
    registry: Registry, head: str, base: str | None, names: Iterable[str]
) -> dict[str, set[SemVer]]:
    """The versions of adapters `names` that the remote's branch records in its manifests,
    tagged there or not: each one's manifest at `base`, and those that the remote's commits
    this clone lacks (reachable from `base`, not from `head`) change. A commit published
    without its tag (a plain ``git push`` without the hooks) still holds its number, so a
    replay numbers past it. Costs one ``git log`` over those commits and one batched read."""
    names = set(names)
    if base is None or not names:
        return {}
    git = registry.git
    paths = [adapter_path(name, MANIFEST_FILE) for name in sorted(names)]
    specs = {f"{c}:{p}" for c, p in git.introduced_files(base, [head], paths)}
    specs.update(f"{base}:{p}" for p in paths)
    found: dict[str, set[SemVer]] = {}
    ordered = sorted(specs)
    for spec, raw in zip(ordered, git.read_blobs(ordered), strict=True):
        where = adapter_of(spec.partition(":")[2])
        if raw is None or where is None:
            continue
        try:
            version = SemVer.parse(Manifest.from_json(raw, spec).version)
        except AdapterGitError:
            continue  # a damaged manifest numbers nothing
        found.setdefault(where[0], set()).add(version)
    return found


def plan(registry: Registry, head: str, base: str | None, remote_tags: Sequence[TagInfo]) -> Plan:
    """Rebuild the unpublished versions of `head` on top of `base` (the remote's branch).

    Args:
        registry: the registry.
        head: the local branch's commit.
        base: the remote branch's commit, or None when the remote has no such branch.
        remote_tags: the remote's tags of every name concerned (see `remote_tag_names`), as
            fetched into `REMOTE_TAGS`.

    Returns:
        The plan: nothing is written to a ref.

    Raises:
        NotReplayable: a local commit that must be rewritten is not an unpublished version
            commit (a merge, a commit of other files, or a published version).
    """
    git = registry.git
    local = git.tags()
    by_tag = {t.name: t for t in local}
    remote_by_name = {t.name: t for t in remote_tags}
    published = {
        t.name for t in local if t.name in remote_by_name and remote_by_name[t.name].oid == t.oid
    }
    index = registry.index
    commits = git.rev_list(head, [base]) if base else []
    regs_at: dict[str, list[Registration]] = {}
    for reg in index.registrations():
        regs_at.setdefault(reg.commit, []).append(reg)
    movable = {r.tag for c in commits for r in regs_at.get(c, []) if r.tag not in published}
    recorded = recorded_on_branch(
        registry, head, base, {r.name for c in commits for r in regs_at.get(c, [])}
    )
    on_branch = {tag_grammar.version_tag(n, v) for n, vs in recorded.items() for v in vs}
    numbers = _Numbers(
        remote_tags,
        {t.name for t in local if t.name not in movable} | set(remote_by_name),
        recorded,
    )

    rewritten: dict[str, str] = {}
    new_tags: list[NewTag] = []
    renumbered: list[tuple[str, str]] = []
    unpublished: list[str] = []
    entries: dict[str, registry_yaml.ArtifactEntry] | None = None
    current = base or head
    for c in commits:
        regs = regs_at.get(c, [])
        clash = any(
            (r.tag in remote_by_name or r.tag in on_branch) and r.tag not in published for r in regs
        )
        if not rewritten and not clash and git.commit_object(c).parents == (current,):
            current = c  # on top of the remote already, no clash: it stays as it is
            for reg in regs:
                numbers.keep(reg.name, reg.version)
                if reg.tag not in published:
                    unpublished.append(reg.tag)
            continue
        if entries is None:  # dvc.yaml's entries where the replay starts; each commit adds its own
            entries = registry_yaml.entries_at(registry, current)
        current = _replay_commit(
            registry, c, current, regs, published, numbers, by_tag, new_tags, renumbered, entries
        )
        rewritten[c] = current

    # Stage tags not on the remote: as they are while they still come after everything
    # published; from the first that does not (a clash, or on a rewritten commit), renamed.
    restaged: list[tuple[str, str]] = []
    renames = dict(renumbered)
    pending: dict[str, list[tuple[TagInfo, ParsedTag]]] = {}
    for tag in local:
        parsed = tag_grammar.parse(tag.name)
        if parsed is None or parsed.stage is None or tag.name in published or not tag.annotated:
            continue
        pending.setdefault(parsed.name, []).append((tag, parsed))
    for name, events in sorted(pending.items()):
        events.sort(key=lambda e: (e[0].created, e[1].counter or 0))
        renaming = False
        for tag, parsed in events:
            assert parsed.stage is not None
            target = rewritten.get(tag.commit, tag.commit)
            renaming = renaming or (
                tag.name in remote_by_name
                or target != tag.commit
                or not numbers.counter_free(name, parsed.counter or 0, tag.created)
            )
            if not renaming:
                numbers.keep_counter(name, parsed.counter or 0, tag.created)
                unpublished.append(tag.name)
                continue
            counter = numbers.next_counter(name)
            when = numbers.stage_time_after(name, tag.created)
            new_name = tag_grammar.stage_tag(
                name, parsed.stage, counter, unassign=parsed.action == tag_grammar.UNASSIGN
            )
            message = git.tag_message(tag.oid)
            for old, new in renames.items():  # "... version v0.0.2" of a renumbered version
                if old.partition("@")[0] == name:
                    old_v, new_v = old.partition("@")[2], new.partition("@")[2]
                    message = message.replace(f"version {old_v}", f"version {new_v}")
                    message = message.replace(f"version '{old_v}'", f"version '{new_v}'")
            oid = git.write_tag(new_name, target, message, when=when)
            new_tags.append(
                NewTag(
                    name=new_name, oid=oid, commit=target, replaces=tag.name, replaces_oid=tag.oid
                )
            )
            if new_name != tag.name:  # else it only follows its rewritten commit
                restaged.append((tag.name, new_name))
    return Plan(
        head=head,
        tip=current,
        commits=rewritten,
        tags=tuple(new_tags),
        unpublished=tuple(sorted(set(unpublished))),
        renumbered=tuple(renumbered),
        restaged=tuple(restaged),
    )


def _replay_commit(
    registry: Registry,
    commit: str,
    onto: str,
    regs: Sequence[Registration],
    published: set[str],
    numbers: _Numbers,
    by_tag: Mapping[str, TagInfo],
    new_tags: list[NewTag],
    renumbered: list[tuple[str, str]],
    entries: dict[str, registry_yaml.ArtifactEntry],
) -> str:
    """Rewrite one version commit on top of `onto`; return the new commit. `entries` (dvc.yaml's,
    as at `onto`) gets this commit's adapters."""
    git = registry.git
    info = git.commit_object(commit)
    if len(info.parents) != 1:
        raise NotReplayable(commit, NotReplayable.MERGE)
    if not regs:
        raise NotReplayable(commit, f"records no version ({_subject(info.message)!r})")
    done = [r.tag for r in regs if r.tag in published]
    if done:
        raise NotReplayable(
            commit, f"holds {', '.join(done)}, already published, but is not on the remote branch"
        )
    names = {r.name for r in regs}
    inside, outside = git.paths_changed(info.parents[0], commit)
    foreign = outside + [
        p for p in inside if p != DVC_YAML and (adapter_of(p) or ("", ""))[0] not in names
    ]
    if foreign:
        raise NotReplayable(commit, f"also changes {', '.join(sorted(foreign)[:3])}")
    files: dict[str, tuple[str, str] | None] = {}
    renames: dict[str, str] = {}
    for reg in sorted(regs, key=lambda r: r.name):
        folder = adapter_path(reg.name)
        mine = git.subtree_files(commit, folder)
        files.update({p: None for p in git.subtree_files(onto, folder) if p not in mine})
        files.update(mine)
        path = adapter_path(reg.name, MANIFEST_FILE)
        raw, raw_config = git.read_blobs(
            [f"{commit}:{path}", f"{commit}:{adapter_path(reg.name, CONFIG_FILE)}"]
        )
        if raw is None:
            raise NotReplayable(commit, f"has no {path}")
        manifest = Manifest.from_json(raw, path)
        before = numbers.latest_of(reg.name)
        version = numbers.version_for(reg.name, reg.version, manifest.parent)
        parent = str(before) if before is not None else manifest.parent
        updated = dataclasses.replace(manifest, version=str(version), parent=parent)
        files[path] = (mine.get(path, ("100644", ""))[0], git.write_blob(updated.to_json()))
        try:
            config = strictjson.loads(raw_config, path) if raw_config is not None else None
        except AdapterGitError:
            config = None  # a damaged config: the entry without its fields, as entries_at does
        entries[reg.name] = registry_yaml.entry_for(
            reg.name,
            manifest.peft_type,
            config if isinstance(config, dict) else None,
            manifest.base_model,
        )
        new_ref = tag_grammar.version_tag(reg.name, version)
        if new_ref != reg.tag:
            renames[reg.tag] = new_ref
            renumbered.append((reg.tag, new_ref))
    dvc_yaml = registry_yaml.update(git.read_blob(onto, DVC_YAML), entries.values())
    files[DVC_YAML] = ("100644", git.write_blob(dvc_yaml))
    tree = git.build_tree(onto, files)
    new_commit = git.write_commit(tree, [onto], _retitle(info.message, renames), info.author)
    now = int(time.time())
    for reg in regs:
        old = by_tag[reg.tag]
        name = renames.get(reg.tag, reg.tag)
        message = _version_message(git.tag_message(old.oid), reg.name, name.partition("@")[2])
        oid = git.write_tag(name, new_commit, message, when=max(now, old.created))
        new_tags.append(
            NewTag(name=name, oid=oid, commit=new_commit, replaces=reg.tag, replaces_oid=old.oid)
        )
    return new_commit


def _subject(message: str) -> str:
    return message.partition("\n")[0][:60]


def apply(
    registry: Registry,
    result: Plan,
    remote_tags: Iterable[TagInfo],
    *,
    tracking_ref: str | None,
) -> None:
    """After the push: the local tags as published, and the remote's tags of these names.

    The branch itself is moved by the caller (it updates the work tree too). In one ref
    transaction: replaced tags are deleted or updated, new ones created, the remote's tags that
    this clone lacks (or held under a replaced name) added, so ``log`` shows what the team
    published, and the remote-tracking branch set to the pushed tip.
    """
    git = registry.git
    local = {t.name: t for t in git.tags()}
    final: dict[str, str | None] = {}
    for tag in result.tags:
        if tag.replaces is not None:
            final.setdefault(tag.replaces, None)
    for tag in result.tags:
        final[tag.name] = tag.oid
    for theirs in remote_tags:
        if final.get(theirs.name, "") is None or theirs.name not in local:
            final[theirs.name] = theirs.oid
    commands = []
    for name, oid in sorted(final.items()):
        ref, mine = tag_grammar.full_ref(name), local.get(name)
        if oid is None:
            if mine is not None:
                commands.append(f"delete {ref} {mine.oid}")
        elif mine is None:
            commands.append(f"create {ref} {oid}")
        elif mine.oid != oid:
            commands.append(f"update {ref} {oid} {mine.oid}")
    if tracking_ref is not None:
        commands.append(f"update {tracking_ref} {result.tip}")
    git.update_refs(commands, "adaptergit push: replayed on the remote's branch")
    registry.refresh()


def follow_rewrite(registry: Registry, pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Move unpublished version and stage tags from rewritten commits to their new commits.

    After ``git rebase`` or ``git commit --amend`` (git's post-rewrite hook gives the (old, new)
    pairs), a version tag still names the old commit. It follows the commit when the old commit
    is on no remote-tracking branch (so not published through a branch) and the new commit
    records the same version (the adapter's folder is identical); the tag is re-created with
    its message and date. Anything else is left alone (and `adaptergit push` reports it).

    Returns:
        The tags moved.
    """
    git = registry.git
    by_commit: dict[str, list[TagInfo]] = {}
    for tag in git.tags():
        by_commit.setdefault(tag.commit, []).append(tag)
    moves = [(old, new) for old, new in pairs if old in by_commit and old != new]
    if not moves:
        return []
    published = {old for old, _new in moves if git.on_remote_branch(old)}
    commands = []
    moved = []
    for old, new in moves:
        if old in published:
            continue
        for tag in by_commit[old]:
            parsed = tag_grammar.parse(tag.name)
            if parsed is None or not tag.annotated:
                continue
            folder = adapter_path(parsed.name)
            same = git.object_ids([f"{old}:{folder}", f"{new}:{folder}"], kind="tree")
            if same[0] is None or same[0] != same[1]:
                continue
            message = git.tag_message(tag.oid)
            oid = git.write_tag(tag.name, new, message, when=tag.created)
            commands.append(f"update {tag_grammar.full_ref(tag.name)} {oid} {tag.oid}")
            moved.append(tag.name)
    git.update_refs(commands, "adaptergit: follow rewritten commits")
    registry.refresh()
    return moved


__all__ = ["REMOTE_TAGS", "NewTag", "NotReplayable", "Plan", "apply", "follow_rewrite", "plan"]
