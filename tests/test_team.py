"""A team: several clones, each with its own HOME, one bare git remote, one DVC remote.

One test per situation of issue #9: publishing all or nothing, races resolved by replaying and
renumbering, plain git rebase and merge, commits from a partial view refused, gc that keeps what
others need, shared caches and worktrees, a registry in a subfolder of a bigger repository.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adaptergit import Repo
from adaptergit.dvcrepo import DvcRemotes
from adaptergit.errors import (
    AnotherRegistry,
    DetachedHead,
    GcRefused,
    MissingVersionTags,
    OperationInProgress,
    PushRejected,
    VersionOffBranch,
)
from adaptergit.ops.verify import LOST

from .team import WEIGHTS, Member, Team, write_adapter


@pytest.fixture
def team(tmp_path: Path) -> Team:
    store = tmp_path / "store"
    store.mkdir()
    return Team(tmp_path, str(store))


def src(team: Team, seed: int, **kwargs: int) -> Path:
    return write_adapter(team.base / "src" / f"s{seed}", seed, **kwargs)


def _race(
    team: Team, alice_seed: int, bob_seed: int, *, name: str = "a", found_seed: int = 1
) -> Member:
    """The start of a race: alice founds the registry, bob clones it, alice publishes a version
    of ``a``, and bob, not having pulled, commits a version of `name`; returns bob."""
    alice = team.found("alice", seed=found_seed)
    bob = team.join("bob")
    with alice.repo() as repo:
        repo.commit(src(team, alice_seed), name="a")
        repo.push()
    with bob.repo() as repo:
        repo.commit(src(team, bob_seed), name=name)
    return bob


def manifest_at(team: Team, rev: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        team.remote_git("show", f"{rev}:adapters/{name}/manifest.json")
    )
    return data


def assert_remote_consistent(team: Team, name: str) -> None:
    """The remote's branch holds, for `name`, the version its tag names."""
    version = manifest_at(team, "main", name)["version"]
    last = team.remote_git("log", "-1", "--format=%H", "main", "--", f"adapters/{name}").strip()
    assert team.remote_tag(f"{name}@{version}") == last


# --- publishing and races ---------------------------------------------------------------------


def test_racing_versions_are_replayed_and_renumbered(team: Team) -> None:
    alice = team.found("alice")
    bob = team.join("bob")
    with alice.repo() as repo:
        repo.commit(src(team, 21), name="a", message="alice v2")
    with bob.repo() as repo:
        mine = repo.commit(src(team, 22), name="a", message="bob v2")
        assert mine.version == "v0.0.2"
    with alice.repo() as repo:
        repo.push()
    alice_v2 = team.remote_tag("a@v0.0.2")
    with bob.repo() as repo:
        result = repo.push()
        assert result.renumbered == (("a@v0.0.2", "a@v0.0.3"),) and result.attempts == 2
        assert result.versions == ("a@v0.0.3",)
        bob_v3 = repo.resolve("a@v0.0.3")
        assert bob_v3.manifest.parent == "v0.0.2"
        assert bob_v3.weights.sha256 == mine.weights.sha256
        assert repo.resolve("a@v0.0.2").commit == alice_v2  # alice's, fetched
        assert repo.status().clean
    assert team.remote_tag("a@v0.0.2") == alice_v2  # a published version never moves
    assert_remote_consistent(team, "a")
    assert manifest_at(team, "main", "a")["version"] == "v0.0.3"
    assert "a@v0.0.3: bob v2" in team.remote_git("log", "-1", "--format=%s", "main")
    # bob's work tree follows: his weights, the new manifest, alice's history underneath
    assert bob.git("status", "--porcelain") == ""
    assert (bob.root / "adapters/a" / WEIGHTS).read_bytes() == (
        team.base / "src/s22" / WEIGHTS
    ).read_bytes()
    # a fresh clone gets both versions and their weights
    carol = team.join("carol")
    with carol.repo() as repo:
        for ref, seed in (("a@v0.0.2", 21), ("a@v0.0.3", 22)):
            out = repo.checkout(ref, to=team.base / "out" / ref)
            assert (out / WEIGHTS).read_bytes() == (
                team.base / f"src/s{seed}" / WEIGHTS
            ).read_bytes()


def test_push_of_several_versions_replays_them_in_order(team: Team) -> None:
    alice = team.found("alice")
    bob = team.join("bob")
    with alice.repo() as repo:
        repo.commit(src(team, 31), name="a")
        repo.commit(src(team, 32), name="b")
        repo.push()
    with bob.repo() as repo:
        repo.commit(src(team, 33), name="a")  # v0.0.2, taken
        repo.commit(src(team, 34), name="a", bump="minor")  # v0.1.0, free: kept
        repo.commit(src(team, 35), name="c")  # a new adapter: v0.0.1 stays
        result = repo.push()
    assert dict(result.renumbered) == {"a@v0.0.2": "a@v0.0.3"}
    assert sorted(result.versions) == ["a@v0.0.3", "a@v0.1.0", "c@v0.0.1"]
    assert manifest_at(team, "a@v0.1.0", "a")["parent"] == "v0.0.3"
    for tag in ("a@v0.0.2", "a@v0.0.3", "a@v0.1.0", "b@v0.0.1", "c@v0.0.1"):
        commit = team.remote_tag(tag)
        assert commit is not None
        team.remote_git("merge-base", "--is-ancestor", commit, "main")
    dvc_yaml = team.remote_git("show", "main:dvc.yaml")
    assert all(f"  {n}:" in dvc_yaml for n in ("a", "b", "c"))


def test_rejected_push_names_the_ref_and_changes_nothing(team: Team) -> None:
    alice = team.found("alice")
    bob = team.join("bob")
    (alice.root / "notes.txt").write_text("x\n")
    alice.git("add", "notes.txt")
    alice.git("commit", "-q", "-m", "notes")
    alice.git("push", "-q", "origin", "main")
    before = team.remote_git("rev-parse", "main")
    with bob.repo() as repo:
        repo.commit(src(team, 41), name="a")
        (bob.root / "other.txt").write_text("y\n")
        bob.git("add", "other.txt")
        bob.git("commit", "-q", "-m", "not a version")
        with pytest.raises(PushRejected, match=r"main \(fetch first\)") as err:
            repo.push()
        assert "not a version" in str(err.value)
    assert team.remote_git("rev-parse", "main") == before
    assert team.remote_tag("a@v0.0.2") is None
    # the CLI says it in one line, with git's reason
    out = bob.cli("push")
    assert out.returncode != 0 and "main (non-fast-forward)" in out.stderr  # fetched by now
    assert len(out.stderr.strip().splitlines()) == 1


def test_stage_race_ends_with_one_holder_everyone_agrees_on(team: Team) -> None:
    alice = team.found("alice")
    with alice.repo() as repo:
        repo.commit(src(team, 52), name="a")
        repo.commit(src(team, 53), name="a")
        repo.push()
    bob = team.join("bob")
    with alice.repo() as repo:
        assert repo.assign("a@v0.0.2", "prod").tag == "a#prod#1"
    with bob.repo() as repo:
        assert repo.assign("a@v0.0.3", "prod").tag == "a#prod#1"
    with alice.repo() as repo:
        repo.push()
    with bob.repo() as repo:
        result = repo.push()
        assert result.restaged == (("a#prod#1", "a#prod#2"),)
        assert repo.resolve("a#prod").version == "v0.0.3"
    alice.git("fetch", "-q", "--tags", "origin")
    carol = team.join("carol")
    for member in (alice, carol):
        with member.repo() as repo:
            assert repo.resolve("a#prod").version == "v0.0.3"
    gto = subprocess.run(
        ["gto", "show", "a#prod", "--ref"], cwd=carol.root, capture_output=True, text=True
    )
    assert gto.stdout.strip().splitlines()[-1] == "a@v0.0.3"


def test_pull_rebase_moves_tags_and_weights_then_push_publishes(team: Team) -> None:
    bob = _race(team, 61, 62, name="b")
    bob.git("pull", "-q", "--rebase")
    # post-rewrite: b@v0.0.1 names the rebased commit, a@v0.0.2's weights are in place
    assert bob.git("rev-parse", "b@v0.0.1^{commit}").strip() == bob.git("rev-parse", "HEAD").strip()
    assert (bob.root / "adapters/a" / WEIGHTS).read_bytes() == (
        team.base / "src/s61" / WEIGHTS
    ).read_bytes()
    with bob.repo() as repo:
        assert {a.state for a in repo.status().adapters} == {"clean"}
        assert repo.push().versions == ("b@v0.0.1",)
    assert_remote_consistent(team, "b")


def test_push_after_a_rebase_without_hooks_moves_the_tag(team: Team) -> None:
    bob = _race(team, 71, 72, name="b")
    bob.git("-c", "core.hooksPath=/dev/null", "pull", "-q", "--rebase")
    with bob.repo() as repo:
        assert repo.push().versions == ("b@v0.0.1",)
    assert_remote_consistent(team, "b")


def test_dvc_yaml_merges_when_two_clones_add_adapters(team: Team) -> None:
    alice = team.found("alice")
    bob = team.join("bob")
    with alice.repo() as repo:
        repo.commit(src(team, 81), name="b-alice")
        repo.commit(src(team, 83, alpha=16), name="a")  # a config change: a's entry changes
        repo.push()
    with bob.repo() as repo:
        repo.commit(src(team, 82), name="c-bob")
    bob.git("-c", "pull.rebase=false", "pull", "-q", "--no-edit")
    assert bob.git("diff", "--name-only", "--diff-filter=U") == ""
    text = (bob.root / "dvc.yaml").read_text()
    assert "b-alice:" in text and "c-bob:" in text and "lora_alpha: 16" in text
    dvc = subprocess.run(["dvc", "metrics", "show", "--json"], cwd=bob.root, capture_output=True)
    assert dvc.returncode == 0


def test_pre_push_hook_refuses_a_version_number_the_remote_gave_another(team: Team) -> None:
    bob = _race(team, 91, 92)
    bob.git("fetch", "-q", "origin", "main")
    bob.git("merge", "-q", "-s", "ours", "--no-edit", "origin/main")  # keeps his a@v0.0.2
    before = team.remote_git("rev-parse", "main")
    out = bob.run_git("push", "origin", "main")
    assert out.returncode != 0 and "a@v0.0.2" in out.stderr
    assert team.remote_git("rev-parse", "main") == before


def registered(team: Team, ref: str) -> int:
    """How many commits of the remote's main register `ref` (their subject names it)."""
    subjects = team.remote_git("log", "--format=%s", "main").splitlines()
    return sum(1 for line in subjects if line.split(":")[0] == f"Register {ref}")


def test_plain_git_push_carries_the_tags_or_is_refused(team: Team) -> None:
    team.found("alice")
    bob, carol = team.join("bob"), team.join("carol")
    with bob.repo() as repo:
        repo.commit(src(team, 141), name="a")
    with carol.repo() as repo:
        mine = repo.commit(src(team, 142), name="a")
    before = team.remote_git("rev-parse", "main")
    # without its tag, the version's commit does not go: one line naming it and the fix
    refused = carol.run_git("push", "--no-follow-tags", "origin", "main")
    assert refused.returncode != 0
    line = [x for x in refused.stderr.splitlines() if x.startswith("adaptergit:")]
    assert len(line) == 1 and "a@v0.0.2" in line[0] and "adaptergit push" in line[0]
    assert team.remote_git("rev-parse", "main") == before and team.remote_tag("a@v0.0.2") is None
    # `adaptergit init` set push.followTags: a plain push carries the tag with the commit
    carol.git("push", "-q", "origin", "main")
    assert team.remote_tag("a@v0.0.2") == mine.commit
    with bob.repo() as repo:
        assert repo.push().renumbered == (("a@v0.0.2", "a@v0.0.3"),)
    with carol.repo() as repo:
        assert repo.push().git_updated == ()
    assert registered(team, "a@v0.0.2") == registered(team, "a@v0.0.3") == 1
    assert_remote_consistent(team, "a")


def test_replay_numbers_past_a_version_published_without_its_tag(team: Team) -> None:
    team.found("alice")
    bob, carol = team.join("bob"), team.join("carol")
    with bob.repo() as repo:
        repo.commit(src(team, 151), name="a")
    with carol.repo() as repo:
        mine = repo.commit(src(team, 152), name="a")
    # published without hooks and without the tag (as before the hook refused it)
    carol.git("push", "-q", "--no-verify", "--no-follow-tags", "origin", "main")
    assert team.remote_tag("a@v0.0.2") is None
    with bob.repo() as repo:  # the remote's branch records a@v0.0.2: bob's goes past it
        result = repo.push()
        assert result.renumbered == (("a@v0.0.2", "a@v0.0.3"),)
    with carol.repo() as repo:  # carol's tag, left behind, is published now
        result = repo.push()
        assert result.versions == ("a@v0.0.2",) and result.git_updated == ("refs/tags/a@v0.0.2",)
        assert result.uploaded == ("a@v0.0.2",)  # the hook never ran: its weights go too
    assert team.remote_tag("a@v0.0.2") == mine.commit
    assert registered(team, "a@v0.0.2") == registered(team, "a@v0.0.3") == 1
    assert_remote_consistent(team, "a")
    dave = team.join("dave")
    with dave.repo() as repo:
        out = repo.checkout("a@v0.0.2", to=team.base / "out")
        assert (out / WEIGHTS).read_bytes() == (team.base / "src/s152" / WEIGHTS).read_bytes()


def test_push_publishes_a_tag_a_plain_push_left_behind_or_names_the_clash(team: Team) -> None:
    team.found("alice")
    carol = team.join("carol")
    with carol.repo() as repo:
        mine = repo.commit(src(team, 161), name="solo")
    carol.git("push", "-q", "--no-verify", "--no-follow-tags", "origin", "main")
    out = carol.cli("push")
    assert out.returncode == 0 and "nothing to push" not in out.stdout, out.stdout
    assert team.remote_tag("solo@v0.0.1") == mine.commit
    # the same, but meanwhile the remote gave the number to another commit: one line, no push
    bob = team.join("bob")
    with carol.repo() as repo:
        repo.commit(src(team, 162), name="solo")
    carol.git("push", "-q", "--no-verify", "--no-follow-tags", "origin", "main")
    with bob.repo() as repo:
        theirs = repo.commit(src(team, 163), name="solo")  # bob's solo@v0.0.2, on no branch
    bob.git("push", "-q", "--no-verify", "origin", "solo@v0.0.2")
    before = team.remote_git("show-ref")
    out = carol.cli("push")
    assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "solo@v0.0.2" in out.stderr and theirs.commit[:7] in out.stderr
    assert team.remote_git("show-ref") == before


def test_push_of_a_ref_publishes_its_branch_with_it(team: Team) -> None:
    team.found("alice")
    bob, carol = team.join("bob"), team.join("carol")
    with bob.repo() as repo:
        mine = repo.commit(src(team, 171), name="a")
        result = repo.push(["a@v0.0.2"])
        assert "a@v0.0.2" in result.versions
    tag = team.remote_tag("a@v0.0.2")
    assert tag == mine.commit
    team.remote_git("merge-base", "--is-ancestor", mine.commit, "main")
    with carol.repo() as repo:  # the next one numbers past it, and replays nothing
        repo.commit(src(team, 172), name="a")
        assert repo.push().renumbered == (("a@v0.0.2", "a@v0.0.3"),)
    # a version on a branch that is not checked out: refused, nothing pushed
    bob.git("pull", "-q")
    bob.git("checkout", "-q", "-b", "side")
    with bob.repo() as repo:
        repo.commit(src(team, 173), name="a")  # a@v0.0.4
    bob.git("checkout", "-q", "main")
    before = team.remote_git("show-ref")
    with bob.repo() as repo, pytest.raises(VersionOffBranch, match=r"a@v0\.0\.4"):
        repo.push(["a@v0.0.4"])
    assert team.remote_git("show-ref") == before


# --- numbering from a partial view ------------------------------------------------------------


def test_commit_refuses_in_a_shallow_or_tagless_clone(team: Team) -> None:
    alice = team.found("alice")
    with alice.repo() as repo:
        repo.commit(src(team, 101), name="b")
        repo.push()
    for args in (("--depth", "1"), ("--no-tags",)):
        ci = team.join(f"ci{len(args)}", *args)
        head = ci.git("rev-parse", "HEAD")
        tags = ci.git("tag")
        with ci.repo() as repo, pytest.raises(MissingVersionTags, match="git fetch --tags origin"):
            repo.commit(src(team, 102), name="a")
        assert ci.git("rev-parse", "HEAD") == head and ci.git("tag") == tags
        ci.git("fetch", "-q", "--tags", "origin")
        with ci.repo() as repo:
            assert repo.commit(src(team, 102), name="a").version == "v0.0.2"


def test_commit_refuses_on_a_detached_head_unless_given_a_branch(team: Team) -> None:
    team.found("alice")
    ci = team.join("ci")
    ci.git("checkout", "-q", "--detach", "HEAD")
    with ci.repo() as repo, pytest.raises(DetachedHead, match="--branch"):
        repo.commit(src(team, 111), name="a")
    assert ci.git("tag") == "a@v0.0.1\n"
    with ci.repo() as repo:
        v = repo.commit(src(team, 111), name="a", branch="main")
        assert ci.git("symbolic-ref", "--short", "HEAD").strip() == "main"
        assert repo.push().versions == (v.ref,)
    assert_remote_consistent(team, "a")


def test_commit_refuses_during_a_merge(team: Team) -> None:
    bob = _race(team, 121, 122)
    bob.git("-c", "pull.rebase=false", "pull", "-q", "--no-edit", check=False)
    assert (bob.root / ".git/MERGE_HEAD").exists()
    head, conflicts = (
        bob.git("rev-parse", "HEAD"),
        bob.git("diff", "--name-only", "--diff-filter=U"),
    )
    with bob.repo() as repo, pytest.raises(OperationInProgress, match="merge --abort"):
        repo.commit(src(team, 123), name="a")
    assert bob.git("rev-parse", "HEAD") == head
    assert bob.git("diff", "--name-only", "--diff-filter=U") == conflicts


def test_a_merge_over_a_clashing_version_names_the_way_out(team: Team) -> None:
    """bob commits a@v0.0.2 while alice publishes hers, merges (not rebases) her work in and
    keeps his side: push cannot renumber a version under a merge, and says so with the fix
    (not `git pull`, which would change nothing); that fix, followed, publishes his a@v0.0.3."""
    bob = _race(team, 162, 163, found_seed=161)
    bob.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main", check=False)
    bob.git("checkout", "--ours", "--", "adapters/a")
    bob.git("add", "-A", "adapters/a")
    bob.git("commit", "-q", "--no-edit")
    merge = bob.git("rev-parse", "--short=7", "HEAD").strip()
    result = bob.cli("push")
    assert result.returncode != 0
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and "git pull" not in err, err
    assert f"git reset --keep {merge}^1" in err and "adaptergit push" in err, err
    bob.git("reset", "-q", "--keep", f"{merge}^1")
    result = bob.cli("push")
    assert result.returncode == 0, result.stderr
    assert "renumbered a@v0.0.2 -> a@v0.0.3" in result.stdout
    assert team.remote_tag("a@v0.0.3") is not None


# --- gc never deletes what someone else needs ----------------------------------------------------


def test_gc_remote_from_a_stale_clone_keeps_what_teammates_published(team: Team) -> None:
    alice = team.found("alice")
    with alice.repo() as repo:
        for seed in (132, 133, 134):
            repo.commit(src(team, seed), name="a")
        repo.push()
    bob = team.join("bob")
    with bob.repo() as repo:
        repo.assign("a@v0.0.2", "prod")
        bob.git("branch", "rollback", "a@v0.0.1")
        bob.git("push", "-q", "origin", "rollback")
        repo.checkout("a@v0.0.3", to=team.base / "v3")
        repo.commit(team.base / "v3", name="a", message="re-release v3")
        repo.push()
    with alice.repo() as repo:  # never fetched; her HEAD still holds a@v0.0.4
        report = repo.gc(keep_last=1, remote=True)
        assert report.git_remotes == ("origin",) and report.remote_removed == ()
    carol = team.join("carol")
    with carol.repo() as repo:
        for ref in ("a", "a#prod", "a@v0.0.1", "a@v0.0.3"):
            repo.checkout(ref, to=team.base / "c" / ref.replace("#", "-"))
    with bob.repo() as repo:  # up to date: a@v0.0.4 is on no branch, neither latest nor staged
        report = repo.gc(keep_last=1, remote=True)
        assert {v for item in report.remote_removed for v in item.versions} == {"a@v0.0.4"}
    alice.git("remote", "set-url", "origin", str(team.base / "nowhere.git"))
    with alice.repo() as repo, pytest.raises(GcRefused, match="origin"):
        repo.gc(keep_last=1, remote=True)


def _store_object(team: Team, member: Member, ref: str) -> Path:
    """Where version `ref`'s weights lie on the team's DVC remote (a directory)."""
    manifest = json.loads(member.git("show", f"{ref}:adapters/a/manifest.json"))
    md5 = str(manifest["weights"]["md5"])
    return Path(team.remote_url) / "files" / "md5" / md5[:2] / md5[2:]


def _republish_v1_as_v3(team: Team) -> Member:
    """alice publishes a@v0.0.1 and a@v0.0.2; bob commits v0.0.1's bytes again as a@v0.0.3,
    so his push finds its weights on the DVC remote and uploads nothing."""
    alice = team.found("alice", seed=151)
    with alice.repo() as repo:
        repo.commit(src(team, 152), name="a")
        repo.push()
    bob = team.join("bob")
    with bob.repo() as repo:
        repo.checkout("a@v0.0.1", to=team.base / "v1")
        repo.commit(team.base / "v1", name="a", message="roll back")
    return bob


def test_gc_remote_during_a_push_that_needs_what_it_deletes(team: Team) -> None:
    """A teammate's ``gc --remote --keep-last 1`` runs while bob's push is in flight (a
    pre-receive hook on the git remote: gc reads the remote before bob's refs land) and deletes
    a@v0.0.1's object, which bob's a@v0.0.3 needs: bob's push checks after its refs landed
    and uploads it again, so a new clone gets a@v0.0.3."""
    bob = _republish_v1_as_v3(team)
    carol = team.join("carol")
    log = team.base / "gc.log"
    hook = team.origin / "hooks" / "pre-receive"
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in carol.environ.items())
    hook.write_text(
        "#!/bin/sh\ncat >/dev/null\n"
        "unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_DIR\n"
        f"cd {shlex.quote(str(carol.root))} && env {env} {shlex.quote(sys.executable)} "
        f"-m adaptergit gc --remote --keep-last 1 > {shlex.quote(str(log))} 2>&1\n"
        "exit 0\n"
    )
    hook.chmod(0o755)
    result = bob.cli("push")
    hook.unlink()
    assert result.returncode == 0, result.stderr
    assert "removed 1 object(s)" in log.read_text() and "a@v0.0.1" in log.read_text()
    assert _store_object(team, bob, "a@v0.0.3").is_file()
    dave = team.join("dave")
    with dave.repo() as repo:
        repo.checkout("a@v0.0.3", to=team.base / "dave-v3")


def test_gc_remote_puts_back_what_a_push_published_meanwhile(
    team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bob's push lands after alice's ``gc --remote`` read the git remote and before it deletes
    (a plain ``git push`` with no hooks, so no check of bob's follows): gc reads the remote
    again after deleting, finds a@v0.0.3 needs a@v0.0.1's object, and puts it back from its
    cache, which keeps it too."""
    bob = _republish_v1_as_v3(team)
    alice = team.members["alice"]
    remove = DvcRemotes.remove

    def remove_after_bobs_push(self: DvcRemotes, md5s: Any, remote: str) -> set[str]:
        bob.git("push", "-q", "--no-verify", "origin", "main", "a@v0.0.3")
        return remove(self, md5s, remote)

    monkeypatch.setattr(DvcRemotes, "remove", remove_after_bobs_push)
    with alice.repo() as repo:
        report = repo.gc(keep_last=1, remote=True)
        assert report.remote_removed == ()
        assert report.removed == ()
    assert _store_object(team, bob, "a@v0.0.3").is_file()


def test_gc_deletes_only_objects_proven_to_be_this_registrys(team: Team, tmp_path: Path) -> None:
    alice = team.found("alice")
    with alice.repo() as repo:
        repo.commit(src(team, 141), name="a")
        cache = repo.dvc.cache_dir / "files" / "md5"
        # another project's object in the (shared) cache, named by a doctored old pointer
        foreign = os.urandom(5000)
        import hashlib

        md5 = hashlib.md5(foreign).hexdigest()
        (cache / md5[:2]).mkdir(exist_ok=True)
        (cache / md5[:2] / md5[2:]).write_bytes(foreign)
        manifest = json.loads((alice.root / "adapters/a/manifest.json").read_text())
        manifest["weights"]["md5"] = md5
        manifest["version"] = "v0.0.9"
        (alice.root / "adapters/a/manifest.json").write_text(json.dumps(manifest, indent=2))
        alice.git("commit", "-q", "--no-verify", "-am", "doctored")
        alice.git("reset", "-q", "--hard", "HEAD~1")
        alice.git("tag", "-a", "evidence", "-m", "x", "HEAD@{1}")  # keeps the commit in history
        alice.git("tag", "-d", "evidence")
        report = repo.gc(keep_last=1, force=True)
        assert (cache / md5[:2] / md5[2:]).read_bytes() == foreign
        assert md5 not in {i.md5 for i in report.removed}


def test_gc_without_a_remote_keeps_the_only_copy_and_verify_reports_lost(
    registry: Repo, tmp_path: Path
) -> None:
    for seed in (151, 152):
        registry.commit(write_adapter(tmp_path / f"s{seed}", seed), name="bot")
    report = registry.gc(keep_last=1)
    assert report.removed == () and [v for i in report.only_copy for v in i.versions] == [
        "bot@v0.0.1"
    ]
    assert registry.verify(all=True) == []
    registry.gc(keep_last=1, force=True)
    problems = registry.verify(all=True)
    assert [(p.ref, p.kind) for p in problems] == [("bot@v0.0.1", LOST)]


# --- shared machines -------------------------------------------------------------------------------


def test_group_shared_cache_folders_are_group_writable(registry: Repo, tmp_path: Path) -> None:
    shared = tmp_path / "shared-cache"
    subprocess.run(["dvc", "config", "cache.dir", str(shared)], cwd=registry.root, check=True)
    subprocess.run(["dvc", "config", "cache.shared", "group"], cwd=registry.root, check=True)
    old = os.umask(0o022)
    try:
        v = registry.commit(write_adapter(tmp_path / "s", 161), name="a")
    finally:
        os.umask(old)
    folder = registry.dvc.cache_path(v.weights.md5).parent
    for path in (folder, folder.parent, folder.parent.parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o2775, path


def test_linked_worktree_uses_the_main_cache(registry: Repo, tmp_path: Path) -> None:
    for seed in (171, 172):
        registry.commit(write_adapter(tmp_path / f"s{seed}", seed), name="bot")
    wt = tmp_path / "wt"
    subprocess.run(
        ["git", "worktree", "add", "-q", str(wt), "bot@v0.0.1"], cwd=registry.root, check=True
    )
    assert (wt / "adapters/bot" / WEIGHTS).read_bytes() == (
        tmp_path / "s171" / WEIGHTS
    ).read_bytes()
    with Repo(wt) as repo:
        assert repo.dvc.cache_dir == registry.dvc.cache_dir
        assert repo.status().missing == ()
    (wt / "adapters/bot" / WEIGHTS).unlink()
    subprocess.run(["dvc", "checkout", "-q"], cwd=wt, check=True)  # plain DVC shares it too
    assert (wt / "adapters/bot" / WEIGHTS).exists()


# --- a registry inside a bigger repository ----------------------------------------------------


def test_registry_in_a_subfolder_of_a_monorepo(tmp_path: Path) -> None:
    mono = tmp_path / "mono"
    mono.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=mono, check=True)
    (mono / "app.py").write_text("print(1)\n")
    subprocess.run(["git", "add", "."], cwd=mono, check=True)
    subprocess.run(["git", "commit", "-q", "-m", "monorepo"], cwd=mono, check=True)
    with Repo.init(mono / "ml" / "registry") as repo:
        assert not (mono / "ml/registry/.git").exists()
        v1 = repo.commit(write_adapter(tmp_path / "s1", 181), name="a")
        repo.commit(write_adapter(tmp_path / "s2", 182), name="a")
        assert [v.version for v in repo.log("a")] == ["v0.0.2", "v0.0.1"]
        assert repo.status().clean
    files = subprocess.run(["git", "ls-files"], cwd=mono, capture_output=True, text=True).stdout
    assert "ml/registry/adapters/a/manifest.json" in files and "ml/registry/dvc.yaml" in files
    # from below the registry's folder, and git checkout of a tag brings the weights (hooks)
    (mono / "ml/registry/adapters/a/sub").mkdir()
    with Repo(mono / "ml/registry/adapters/a/sub") as repo:
        assert repo.resolve("a@v0.0.1").commit == v1.commit
    subprocess.run(["git", "checkout", "-q", "a@v0.0.1"], cwd=mono, check=True)
    assert (mono / "ml/registry/adapters/a" / WEIGHTS).read_bytes() == (
        tmp_path / "s1" / WEIGHTS
    ).read_bytes()
    subprocess.run(["git", "checkout", "-q", "main"], cwd=mono, check=True)
    with pytest.raises(AnotherRegistry, match="ml/registry"):
        Repo.init(mono / "other")
    assert not (mono / "other").exists()


def test_amend_of_a_version_commit_keeps_its_tag(registry: Repo, tmp_path: Path) -> None:
    v = registry.commit(write_adapter(tmp_path / "s", 191), name="a", message="first try")
    registry.assign(v.ref, "prod")
    run = subprocess.run(
        ["git", "commit", "-q", "--amend", "-m", "a@v0.0.1: better words"],
        cwd=registry.root,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=registry.root, capture_output=True, text=True
    ).stdout.strip()
    with Repo(registry.root) as repo:
        assert repo.resolve("a@v0.0.1").commit == head != v.commit
        assert repo.resolve("a#prod").commit == head


def test_dvc_yaml_merge_takes_each_adapter_from_the_side_that_changed_it() -> None:
    from adaptergit.registry_yaml import ArtifactEntry, merge3, render

    def doc(**entries: str) -> bytes:
        return render(ArtifactEntry(name=n, desc=d) for n, d in entries.items())

    base = doc(a="a1", b="b1", c="c1")
    ours = doc(a="a2", b="b1", d="d1")  # changed a, removed c, added d
    theirs = doc(a="a1", b="b2", c="c1", e="e1")  # changed b, added e
    merged = merge3(base, ours, theirs)
    assert merged == doc(a="a2", b="b2", d="d1", e="e1")
    assert merge3(base, doc(a="x"), doc(a="y")) == doc(a="x")  # both changed: ours
    assert merge3(b"stages: {}\n", ours, theirs) is None  # not adaptergit's: git's line merge
