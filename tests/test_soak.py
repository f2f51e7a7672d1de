"""A seeded, randomized team soak: 3 clones, one bare git remote, one S3 remote (moto).

Each step one member does something a team does (commit the same or another adapter, push,
pull with rebase or merge, assign a stage, gc --remote, a commit on a detached HEAD, a fresh
shallow CI clone that commits and pushes). After every step the published state must hold:

- every version tag on the remote names a commit reachable from the remote's branch whose
  manifest records exactly that version;
- no two published versions of one adapter share a number: every commit of the remote's branch
  that records a version is the one its tag names;
- every published version's weights are on the S3 remote, with the manifest's sha256;
- a published version never moves or disappears; at the end a fresh clone retrieves them all.

The default run (fixed seed, about 200 steps) fits CI's budget. A longer one with other seeds:

    ADAPTERGIT_SOAK_SEEDS=1-20 ADAPTERGIT_SOAK_STEPS=400 python -m pytest tests/test_soak.py

A failure names the seed and prints every operation that led there.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

from adaptergit.errors import AdapterGitError

from .servers import S3Server
from .team import Member, Team, write_adapter

DEFAULT_SEED = 20240917
ADAPTERS = ("a", "b", "c")
STAGES = ("prod", "staging")


def _seeds() -> list[int]:
    spec = os.environ.get("ADAPTERGIT_SOAK_SEEDS", "")
    if not spec:
        return [DEFAULT_SEED]
    seeds: list[int] = []
    for part in spec.split(","):
        low, _, high = part.partition("-")
        seeds += list(range(int(low), int(high or low) + 1))
    return seeds


class Soak:
    """The team, the operations, and the checks of the published state."""

    def __init__(self, base: Path, s3: S3Server, seed: int) -> None:
        bucket = f"soak-{uuid.uuid4().hex[:10]}"
        s3.create_bucket(bucket)
        import boto3

        self.s3 = boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        self.bucket = bucket
        self.team = Team(
            base,
            f"s3://{bucket}/store",
            {"endpointurl": s3.endpoint, "region": "us-east-1"},
        )
        self.rng = random.Random(seed)
        self.seed = seed
        self.log: list[str] = []
        self.sources = 0
        self.published: dict[str, tuple[str, str, str]] = {}  # tag -> (commit, md5, sha256)
        self.verified: set[str] = set()  # md5s whose bytes on S3 were checked
        self.checked_tip = ""  # the remote's main up to which recorded versions were checked

    # --- set-up --------------------------------------------------------------------------

    def start(self) -> None:
        self.team.found("m0", seed=1)
        self.log.append("m0: init, commit a, push")
        for name in ("m1", "m2"):
            self.team.join(name)
            self.log.append(f"{name}: clone")
        self.check()

    @property
    def members(self) -> list[Member]:
        return [m for name, m in self.team.members.items() if name.startswith("m")]

    def source(self) -> Path:
        self.sources += 1
        seed = self.rng.randrange(1_000_000)
        return write_adapter(self.team.base / "src" / f"s{self.sources}", seed)

    # --- operations ----------------------------------------------------------------------

    def op_commit(self, m: Member) -> str:
        name = self.rng.choice(ADAPTERS)
        with m.repo() as repo:
            v = repo.commit(self.source(), name=name, message=f"by {m.name}")
        return f"commit {v.ref}"

    def op_push(self, m: Member) -> str:
        with m.repo() as repo:
            result = repo.push()
        renamed = ", ".join(f"{a}->{b}" for a, b in (*result.renumbered, *result.restaged))
        return f"push {', '.join(result.versions) or '-'}" + (
            f" (renamed {renamed})" if renamed else ""
        )

    def op_pull_rebase(self, m: Member) -> str:
        out = m.run_git("pull", "-q", "--rebase")
        if out.returncode != 0:
            m.git("rebase", "--abort", check=False)
            return "pull --rebase: conflict, aborted"
        return "pull --rebase"

    def op_pull_merge(self, m: Member) -> str:
        out = m.run_git("pull", "-q", "--no-rebase", "--no-edit")
        if out.returncode != 0:
            m.git("merge", "--abort", check=False)
            return "pull (merge): conflict, aborted"
        return "pull (merge)"

    def op_assign(self, m: Member) -> str:
        with m.repo() as repo:
            versions = repo.log()
            if not versions:
                return "assign: no versions"
            v = self.rng.choice(versions)
            event = repo.assign(v.ref, self.rng.choice(STAGES))
        return f"assign {event.tag} -> {v.ref}"

    def op_gc_remote(self, m: Member) -> str:
        with m.repo() as repo:
            report = repo.gc(remote=True)
        gone = sorted(v for item in report.remote_removed for v in item.versions)
        return f"gc --remote (removed {', '.join(gone) or 'nothing'})"

    def op_detached_commit(self, m: Member) -> str:
        m.git("checkout", "-q", "--detach", "HEAD")
        try:
            with m.repo() as repo:
                v = repo.commit(self.source(), name=self.rng.choice(ADAPTERS), branch="main")
        finally:
            if not m.git("symbolic-ref", "-q", "HEAD", check=False).strip():
                m.git("checkout", "-q", "main")
        return f"detached commit --branch main {v.ref}"

    def op_shallow_ci(self, _m: Member) -> str:
        name = f"ci{self.sources}"
        ci = self.team.join(name, "--depth", "1")
        try:
            try:
                with ci.repo() as repo:
                    v = repo.commit(self.source(), name=self.rng.choice(ADAPTERS))
            except AdapterGitError as exc:
                ci.git("fetch", "-q", "--tags", "origin")
                with ci.repo() as repo:
                    v = repo.commit(self.source(), name=self.rng.choice(ADAPTERS))
                first = f"refused ({type(exc).__name__}), fetched tags, "
            else:
                first = ""
            with ci.repo() as repo:
                result = repo.push()
            return (
                f"shallow CI clone {name}: {first}commit {v.ref}, push {', '.join(result.versions)}"
            )
        finally:
            del self.team.members[name]
            shutil.rmtree(ci.root, ignore_errors=True)

    def operations(self) -> list[tuple[int, Callable[[Member], str]]]:
        return [
            (30, self.op_commit),
            (25, self.op_push),
            (12, self.op_pull_rebase),
            (8, self.op_pull_merge),
            (10, self.op_assign),
            (4, self.op_gc_remote),
            (4, self.op_detached_commit),
            (3, self.op_shallow_ci),
        ]

    def step(self, number: int) -> None:
        ops = self.operations()
        op = self.rng.choices([o for _w, o in ops], weights=[w for w, _o in ops])[0]
        member = self.rng.choice(self.members)
        try:
            what = op(member)
        except AdapterGitError as exc:  # a refusal is a fine outcome; a broken state is not
            what = f"{op.__name__[3:]}: refused: {type(exc).__name__}: {exc}"
        self.log.append(f"{number:3} {member.name}: {what}")
        self.check()

    # --- the published state --------------------------------------------------------------

    def remote(self, *args: str) -> str:
        return self.team.remote_git(*args)

    def read(self, objects: Iterable[str]) -> list[bytes]:
        """Blobs of the remote (``REV:PATH``), in one ``git cat-file --batch``."""
        names = list(objects)
        if not names:
            return []
        out = subprocess.run(
            ["git", "-C", str(self.team.origin), "cat-file", "--batch"],
            input="".join(f"{n}\n" for n in names).encode(),
            capture_output=True,
            check=True,
        ).stdout
        blobs, pos = [], 0
        for _ in names:
            end = out.index(b"\n", pos)
            size = int(out[pos:end].split()[2])
            blobs.append(out[end + 1 : end + 1 + size])
            pos = end + 2 + size
        return blobs

    def check(self) -> None:
        tags = {}
        for line in self.remote(
            "for-each-ref", "--format=%(refname:short) %(*objectname) %(objectname)", "refs/tags"
        ).splitlines():
            name, peeled, oid = ([*line.split(), ""])[:3]
            tags[name] = peeled or oid
        on_branch = set(self.remote("rev-list", "main").split())
        versions = {t: c for t, c in tags.items() if "@v" in t and "!" not in t}
        for tag, commit in sorted(versions.items()):
            name, _, version = tag.partition("@")
            self.expect(commit in on_branch, f"{tag} names {commit[:7]}, not on the remote's main")
            if tag in self.published:
                self.expect(self.published[tag][0] == commit, f"published {tag} moved")
                continue
            manifest = json.loads(
                next(iter(self.read([f"{commit}:adapters/{name}/manifest.json"])))
            )
            self.expect(
                manifest["version"] == version and manifest["name"] == name,
                f"{tag} names a commit recording {manifest['name']}@{manifest['version']}",
            )
            weights = manifest["weights"]
            self.published[tag] = (commit, weights["md5"], weights["sha256"])
        for tag in self.published:
            self.expect(tag in versions, f"published {tag} is gone from the remote")
        # every version the branch records is the one its tag names (no untagged duplicate);
        # commits already checked stay right: tags never move (checked above)
        since = ["--not", self.checked_tip] if self.checked_tip else []
        log = self.remote(
            "log",
            "--format=%x01%H",
            "--name-only",
            "main",
            *since,
            "--",
            "adapters/*/manifest.json",
        )
        recorded: list[tuple[str, str]] = []
        commit = ""
        for line in log.splitlines():
            if line.startswith("\x01"):
                commit = line[1:]
            elif line.strip():
                recorded.append((commit, line.strip()))
        for (commit, _path), raw in zip(
            recorded, self.read(f"{c}:{p}" for c, p in recorded), strict=True
        ):
            manifest = json.loads(raw)
            tag = f"{manifest['name']}@{manifest['version']}"
            self.expect(
                versions.get(tag) == commit,
                f"main's {commit[:7]} records {tag}, whose tag names "
                f"{(versions.get(tag) or 'nothing')[:7]}",
            )
        self.checked_tip = self.remote("rev-parse", "main").strip()
        # weights on S3, with the manifest's sha256
        keys = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            keys |= {o["Key"] for o in page.get("Contents", [])}
        for tag, (_commit, md5, sha256) in sorted(self.published.items()):
            key = f"store/files/md5/{md5[:2]}/{md5[2:]}"
            self.expect(key in keys, f"{tag}'s weights are not on the S3 remote")
            if md5 not in self.verified:
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                self.expect(
                    hashlib.sha256(body).hexdigest() == sha256, f"{tag}'s weights differ on S3"
                )
                self.verified.add(md5)

    def expect(self, condition: bool, what: str) -> None:
        if not condition:
            raise AssertionError(
                f"soak seed {self.seed}: {what}\noperations:\n" + "\n".join(self.log)
            )

    def finish(self) -> None:
        """A fresh clone retrieves every version ever published, byte for byte."""
        carol = self.team.join("carol")
        with carol.repo() as repo:
            refs = sorted(self.published)
            repo.fetch(refs)
            for ref in refs:
                v = repo.resolve(ref)
                path = repo.dvc.cache_path(v.weights.md5)
                self.expect(
                    hashlib.sha256(path.read_bytes()).hexdigest() == v.weights.sha256,
                    f"a fresh clone's {ref} differs",
                )


@pytest.fixture
def aws_credentials() -> Iterator[None]:
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    os.environ["ADAPTERGIT_NO_FETCH"] = "1"  # hooks use the local cache: pulls stay quick
    yield
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ADAPTERGIT_NO_FETCH"):
        os.environ.pop(key, None)


@pytest.mark.slow
@pytest.mark.parametrize("seed", _seeds())
def test_team_soak(seed: int, tmp_path: Path, s3_server: S3Server, aws_credentials: None) -> None:
    steps = int(os.environ.get("ADAPTERGIT_SOAK_STEPS", "200"))
    soak = Soak(tmp_path, s3_server, seed)
    soak.start()
    for number in range(1, steps + 1):
        soak.step(number)
    soak.finish()
    assert len(soak.published) > 10, "\n".join(soak.log)
