"""Time `adaptergit push` of a few new versions to a big registry on S3, against `dvc push --all-tags`.

The question (issue #9): does publishing cost in proportion to what is new, or to the registry?
One run builds, under benchmarks/work/team (deleted afterwards):

- an S3 server on 127.0.0.1 (moto, tests/servers.py) and, per registry size, a registry of
  --existing (5,000) versions of --adapters (10) small LoRAs: `adaptergit init`, `remote add`
  of an S3 bucket, one real `adaptergit commit` per adapter, then the rest as the same kind of
  commits and annotated version tags written with `git fast-import` (each version's weights
  differ; manifests, pointers and tags are adaptergit's format), their weights in the DVC cache;
  all of it pushed: the branch and tags to a bare git remote, the weights to the bucket;
- then --new (50) versions, committed with the Python API: what the timed pushes publish;
- the plain side: a copy of that registry (cache hard-linked, hooks removed) with its own bucket
  and bare git remote, holding the same published state.

Timed, best of --repeat, the remotes put back to the published state before each run:

- push: `adaptergit push` vs `dvc push --all-tags` + `git push origin HEAD --tags`;
- scaling: `adaptergit push` of the same --new versions on a registry of --small (500)
  versions: the ratio push(5,000) / push(500) is near 1 when the cost is the new versions';
- race: another clone publishes one version of an adapter first; `adaptergit push` replays and
  renumbers the new versions on top. git's trace2 events count the fetches and pushes it runs:
  the race adds one fetch and one push.

Usage: python benchmarks/bench_team.py [--existing 5000] [--new 50] [--repeat 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from bench_core import Tools, new_git_repo, scratch_dir
from bench_sync import steady_env
from make_fixtures import write_adapter

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "work" / "team"
WEIGHTS = "adapter_model.safetensors"
TARGET_VS_DVC = 0.1  # adaptergit push / dvc push --all-tags, 50 new over 5,000
# push over 5,000 versions / push over 500: 1 would be no dependence at all, 10 a cost in proportion
# to the registry. What remains is git's own: the remote's receive-pack checks the pushed objects
# against all its refs (10 times as many), and `for-each-ref` lists the tags.
TARGET_SCALING = 2.0
IDENT = "Adapter Bench <bench@example.com>"


@dataclass
class Registry:
    """One built registry and its remotes."""

    path: Path
    bare: Path
    bucket: str
    published_tip: str = ""
    published_tags: set[str] = field(default_factory=set)
    new_md5s: list[str] = field(default_factory=list)


def adapter_names(count: int) -> list[str]:
    return [f"a{i:02d}" for i in range(count)]


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def upload(client, bucket: str, cache: Path, md5s: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Put cache objects into the bucket where DVC keeps them (``store/files/md5/ab/cdef``)."""

    def put(md5: str) -> None:
        body = (cache / "files" / "md5" / md5[:2] / md5[2:]).read_bytes()
        client.put_object(Bucket=bucket, Key=f"store/files/md5/{md5[:2]}/{md5[2:]}", Body=body)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, md5s))


def fast_import_versions(
    tools: Tools, repo: Path, names: list[str], count: int, template: Path
) -> list[str]:
    """Commit `count` more versions, round-robin over `names`, each a commit and an annotated
    tag as adaptergit writes them, through one ``git fast-import``; return their weights' md5s."""
    import hashlib

    weights = (template / WEIGHTS).read_bytes()
    manifests = {
        n: json.loads((repo / "adapters" / n / "manifest.json").read_text()) for n in names
    }
    cache = repo / ".dvc" / "cache" / "files" / "md5"
    tip = subprocess.run(
        [tools.git, "rev-parse", "HEAD"],
        cwd=repo,
        env=tools.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stream: list[bytes] = []

    def data(payload: bytes) -> None:
        stream.append(b"data %d\n" % len(payload) + payload + b"\n")

    md5s = []
    when = int(time.time()) - count
    for i in range(count):
        name = names[i % len(names)]
        manifest = manifests[name]
        previous = manifest["version"]
        patch = int(previous.rsplit(".", 1)[1]) + 1
        version = f"v0.0.{patch}"
        body = weights[:-8] + (i + 1).to_bytes(8, "little")  # a different last value each
        md5, sha256 = hashlib.md5(body).hexdigest(), hashlib.sha256(body).hexdigest()
        path = cache / md5[:2] / md5[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        path.chmod(0o444)
        md5s.append(md5)
        manifest = {**manifest, "version": version, "parent": previous}
        manifest["weights"] = {**manifest["weights"], "md5": md5, "sha256": sha256}
        manifests[name] = manifest
        pointer = f"outs:\n- md5: {md5}\n  size: {len(body)}\n  hash: md5\n  path: {WEIGHTS}\n"
        stamp = f"{IDENT} {when + i} +0000".encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(b"mark :%d\n" % (i + 1))
        stream.append(b"author " + stamp + b"\ncommitter " + stamp + b"\n")
        data(f"Register {name}@{version}".encode())
        if i == 0:
            stream.append(f"from {tip}\n".encode())
        for filename, content in (
            ("manifest.json", json.dumps(manifest, indent=2) + "\n"),
            (f"{WEIGHTS}.dvc", pointer),
            ("metrics.json", json.dumps({"step": i}) + "\n"),
        ):
            stream.append(f"M 100644 inline adapters/{name}/{filename}\n".encode())
            data(content.encode())
        stream.append(f"tag {name}@{version}\nfrom :{i + 1}\n".encode())
        stream.append(b"tagger " + stamp + b"\n")
        data(f"Registering artifact {name} version {version}".encode())
    subprocess.run(
        [tools.git, "fast-import", "--quiet"],
        cwd=repo,
        env=tools.env,
        input=b"".join(stream),
        check=True,
    )
    subprocess.run(
        [tools.git, "-c", "core.hooksPath=/dev/null", "reset", "-q", "--hard", "main"],
        cwd=repo,
        env=tools.env,
        check=True,
    )
    for name in names:  # the work tree's weights, as a checkout leaves them
        md5 = manifests[name]["weights"]["md5"]
        dest = repo / "adapters" / name / WEIGHTS
        dest.unlink(missing_ok=True)
        shutil.copy(cache / md5[:2] / md5[2:], dest)
        dest.chmod(0o644)
    return md5s


def build(
    tools: Tools,
    work: Path,
    label: str,
    existing: int,
    names: list[str],
    new: int,
    endpoint: str,
    s3,  # type: ignore[no-untyped-def]
) -> Registry:
    """A registry with `existing` published versions and `new` unpublished ones."""
    from adaptergit import Repo

    bucket = f"bench-{label}"
    s3.create_bucket(Bucket=bucket)
    reg = Registry(path=work / label, bare=work / f"{label}.git", bucket=bucket)
    subprocess.run([tools.git, "init", "-q", "--bare", str(reg.bare)], env=tools.env, check=True)
    subprocess.run(
        [tools.git, "symbolic-ref", "HEAD", "refs/heads/main"],
        cwd=reg.bare,
        env=tools.env,
        check=True,
    )
    new_git_repo(tools, reg.path)
    tools.run(tools.git, "symbolic-ref", "HEAD", "refs/heads/main", cwd=reg.path)
    tools.run(tools.adaptergit, "init", reg.path, cwd=reg.path)
    tools.run(
        tools.adaptergit,
        "remote",
        "add",
        "store",
        f"s3://{bucket}/store",
        "--default",
        "-o",
        f"endpointurl={endpoint}",
        "-o",
        "region=us-east-1",
        cwd=reg.path,
    )
    tools.run(tools.git, "remote", "add", "origin", reg.bare, cwd=reg.path)
    template = work / "src" / "template"
    write_adapter(template, seed=1, layers=2, hidden=64, r=4)
    with Repo(reg.path) as repo:
        for name in names:
            repo.commit(template, name=name, message="first")
    md5s = fast_import_versions(tools, reg.path, names, existing - len(names), template)
    with Repo(reg.path) as repo:
        md5s += [v.weights.md5 for v in repo.log() if v.manifest.message == "first"]
    cache = reg.path / ".dvc" / "cache"
    upload(s3, bucket, cache, sorted(set(md5s)))
    tools.run(
        tools.git,
        "-c",
        "core.hooksPath=/dev/null",
        "push",
        "-q",
        "-u",
        "origin",
        "main",
        "refs/tags/*:refs/tags/*",
        cwd=reg.path,
    )
    reg.published_tip = git_text(tools, reg.path, "rev-parse", "HEAD")
    reg.published_tags = set(git_text(tools, reg.path, "tag", "-l").split())
    src = work / "src" / label
    with Repo(reg.path) as repo:
        for i in range(new):
            write_adapter(src / str(i), seed=1000 + i, layers=2, hidden=64, r=4)
            v = repo.commit(src / str(i), name=names[i % len(names)], message=f"new {i}")
            reg.new_md5s.append(v.weights.md5)
    return reg


def git_text(tools: Tools, cwd: Path, *args: str) -> str:
    return subprocess.run(
        [tools.git, *args], cwd=cwd, env=tools.env, capture_output=True, text=True, check=True
    ).stdout.strip()


def plain_copy(tools: Tools, reg: Registry, work: Path, endpoint: str, s3) -> Registry:  # type: ignore[no-untyped-def]
    """The same registry for the plain tools: no hooks, its own bucket and bare git remote."""
    dest = work / "plain"
    shutil.copytree(
        reg.path,
        dest,
        symlinks=True,
        ignore=lambda folder, _n: ["cache"] if Path(folder) == reg.path / ".dvc" else [],
    )
    shutil.copytree(reg.path / ".dvc" / "cache", dest / ".dvc" / "cache", copy_function=os.link)
    for hook in (dest / ".git" / "hooks").iterdir():
        if not hook.name.endswith(".sample"):
            hook.unlink()
    plain = Registry(path=dest, bare=work / "plain.git", bucket="bench-plain")
    s3.create_bucket(Bucket=plain.bucket)
    shutil.copytree(reg.bare, plain.bare)
    tools.run(tools.git, "remote", "set-url", "origin", plain.bare, cwd=dest)
    tools.run(
        tools.dvc, "remote", "modify", "--local", "store", "url", "s3://bench-plain/store", cwd=dest
    )
    published = [
        p.parent.name + p.name for p in (reg.path / ".dvc" / "cache" / "files" / "md5").glob("??/*")
    ]
    upload(s3, plain.bucket, dest / ".dvc" / "cache", sorted(set(published) - set(reg.new_md5s)))
    plain.published_tip, plain.published_tags = reg.published_tip, reg.published_tags
    plain.new_md5s = reg.new_md5s
    return plain


def reset(tools: Tools, reg: Registry, s3, local: bool = True) -> None:  # type: ignore[no-untyped-def]
    """The remotes back to the published state (the new versions' tags and weights gone), and
    the clone's view of them (its remote-tracking branch)."""
    s3.delete_objects(
        Bucket=reg.bucket,
        Delete={"Objects": [{"Key": f"store/files/md5/{m[:2]}/{m[2:]}"} for m in reg.new_md5s]},
    )
    extra = set(git_text(tools, reg.bare, "tag", "-l").split()) - reg.published_tags
    commands = [f"delete refs/tags/{t}" for t in sorted(extra)]
    commands.append(f"update refs/heads/main {reg.published_tip}")
    subprocess.run(
        [tools.git, "update-ref", "--stdin"],
        cwd=reg.bare,
        env=tools.env,
        input="\n".join(commands) + "\n",
        text=True,
        check=True,
    )
    if local:
        tools.run(
            tools.git, "update-ref", "refs/remotes/origin/main", reg.published_tip, cwd=reg.path
        )


def timed(
    tools: Tools, *cmds: list[str | Path], cwd: Path, env: dict[str, str] | None = None
) -> float:
    os.sync()
    started = time.perf_counter()
    for cmd in cmds:
        proc = subprocess.run(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env or tools.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if proc.returncode != 0:
            raise SystemExit(
                f"bench_team: {' '.join(map(str, cmd))} failed:\n{proc.stderr.decode()}"
            )
    return time.perf_counter() - started


def expect_published(tools: Tools, reg: Registry, s3, count: int, what: str) -> None:  # type: ignore[no-untyped-def]
    tags = set(git_text(tools, reg.bare, "tag", "-l").split()) - reg.published_tags
    keys = [f"store/files/md5/{m[:2]}/{m[2:]}" for m in reg.new_md5s]
    on_s3 = sum(
        1 for k in keys if s3.list_objects_v2(Bucket=reg.bucket, Prefix=k).get("KeyCount", 0)
    )
    if len(tags) < count or on_s3 != count:
        raise SystemExit(f"bench_team: {what}: {len(tags)} new tags, {on_s3} new objects on S3")


def trace_counts(path: Path) -> dict[str, int]:
    """git commands started, by name, from a trace2 event log (``GIT_TRACE2_EVENT``)."""
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "cmd_name":
            name = event.get("name", "")
            counts[name] = counts.get(name, 0) + 1
    return counts


def race(
    tools: Tools, work: Path, reg: Registry, s3, names: list[str]
) -> tuple[float, dict[str, int]]:  # type: ignore[no-untyped-def]
    """Another clone publishes one version of an adapter first; time the push that replays."""
    reset(tools, reg, s3)
    mate = work / "mate"
    shutil.rmtree(mate, ignore_errors=True)
    tools.run(tools.git, "clone", "-q", reg.bare, mate, cwd=work)
    tools.run(tools.adaptergit, "init", mate, cwd=mate)
    src = work / "src" / "mate"
    write_adapter(src, seed=99, layers=2, hidden=64, r=4)
    tools.run(tools.adaptergit, "commit", src, "--name", names[0], cwd=mate)
    tools.run(tools.adaptergit, "push", cwd=mate)
    trace = work / "trace.json"
    trace.unlink(missing_ok=True)
    env = {**tools.env, "GIT_TRACE2_EVENT": str(trace)}
    seconds = timed(tools, [tools.adaptergit, "push"], cwd=reg.path, env=env)
    counts = trace_counts(trace)
    return seconds, {"fetch": counts.get("fetch", 0), "push": counts.get("push", 0)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--existing", type=int, default=5000, help="versions already published")
    parser.add_argument("--small", type=int, default=500, help="the smaller registry (scaling)")
    parser.add_argument("--new", type=int, default=50, help="new versions to push")
    parser.add_argument("--adapters", type=int, default=10, help="adapters they belong to")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side (the best is kept)")
    parser.add_argument("--out", type=Path, help="write the metrics as flat JSON to this file")
    parser.add_argument("--keep", action="store_true", help="leave benchmarks/work/team behind")
    args = parser.parse_args(argv)
    names = adapter_names(args.adapters)

    sys.path.insert(0, str(ROOT))
    from tests.servers import S3Server

    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
    load_start = os.getloadavg()[0]
    with scratch_dir(WORK, args.keep) as work:
        env = steady_env(work)
        env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        os.environ.clear()
        os.environ.update(env)
        tools = Tools.found(env)
        import logging

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request
        server = S3Server().start()
        try:
            s3 = s3_client(server.endpoint)
            started = time.perf_counter()
            print(
                f"... building a registry of {args.existing} versions", file=sys.stderr, flush=True
            )
            big = build(tools, work, "big", args.existing, names, args.new, server.endpoint, s3)
            print(f"... and one of {args.small}", file=sys.stderr, flush=True)
            small = build(tools, work, "small", args.small, names, args.new, server.endpoint, s3)
            plain = plain_copy(tools, big, work, server.endpoint, s3)
            build_s = time.perf_counter() - started

            ours, theirs, ours_small = [], [], []
            for run in range(args.repeat + 1):  # run 0 is the untimed warm-up
                print(f"... run {run}", file=sys.stderr, flush=True)
                reset(tools, big, s3)
                t_ours = timed(tools, [tools.adaptergit, "push"], cwd=big.path)
                expect_published(tools, big, s3, args.new, "adaptergit push")
                reset(tools, small, s3)
                t_small = timed(tools, [tools.adaptergit, "push"], cwd=small.path)
                expect_published(tools, small, s3, args.new, "adaptergit push (small)")
                if not run:  # the warm-up compiles adaptergit; DVC's minutes need none
                    continue
                reset(tools, plain, s3, local=False)
                t_theirs = timed(
                    tools,
                    [tools.dvc, "push", "-q", "--all-tags"],
                    [tools.git, "push", "-q", "origin", "HEAD", "--tags"],
                    cwd=plain.path,
                )
                expect_published(tools, plain, s3, args.new, "dvc push --all-tags")
                if run:
                    ours.append(t_ours)
                    ours_small.append(t_small)
                    theirs.append(t_theirs)
            print("... a race", file=sys.stderr, flush=True)
            race_s, race_ops = race_on_fresh(tools, work, big, s3, names, args.new)
        finally:
            server.stop()
    load_end = os.getloadavg()[0]
    best = min(ours)
    flat: dict[str, float | int] = {
        "push_new_s": round(best, 3),
        "push_new_dvc_all_tags_s": round(min(theirs), 3),
        "push_vs_dvc_ratio": round(best / min(theirs), 4),
        "push_small_registry_s": round(min(ours_small), 3),
        "push_scaling_ratio": round(best / min(ours_small), 3),
        "race_push_s": round(race_s, 3),
        "race_over_push_ratio": round(race_s / best, 3),
        "race_fetches": race_ops["fetch"],
        "race_pushes": race_ops["push"],
        "existing_versions": args.existing,
        "small_registry_versions": args.small,
        "new_versions": args.new,
        "adapters": args.adapters,
        "targets_met": int(best / min(theirs) <= TARGET_VS_DVC)
        + int(best / min(ours_small) <= TARGET_SCALING)
        + int(race_ops["fetch"] <= 1 and race_ops["push"] <= 2),
        "targets": 3,
        "registry_build_s": round(build_s, 1),
        "repeat": args.repeat,
        "cpus": os.cpu_count() or 0,
        "load_1m_start": round(load_start, 2),
        "load_1m_end": round(load_end, 2),
    }
    for key, value in flat.items():
        print(f"{key:28} {value}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(flat, indent=2) + "\n")
    return 0


def race_on_fresh(
    tools: Tools, work: Path, reg: Registry, s3, names: list[str], new: int
) -> tuple[float, dict[str, int]]:  # type: ignore[no-untyped-def]
    """The race on a clone of the published state with `new` unpublished versions of its own."""
    from adaptergit import Repo

    reset(tools, reg, s3)
    clone = work / "racer"
    tools.run(tools.git, "clone", "-q", reg.bare, clone, cwd=work)
    tools.run(tools.adaptergit, "init", clone, cwd=clone)
    shutil.copytree(
        reg.path / ".dvc" / "cache",
        clone / ".dvc" / "cache",
        copy_function=os.link,
        dirs_exist_ok=True,
    )
    src = work / "src" / "racer"
    racer = Registry(
        path=clone,
        bare=reg.bare,
        bucket=reg.bucket,
        published_tip=reg.published_tip,
        published_tags=reg.published_tags,
    )
    with Repo(clone) as repo:
        for i in range(new):
            write_adapter(src / str(i), seed=5000 + i, layers=2, hidden=64, r=4)
            v = repo.commit(src / str(i), name=names[i % len(names)], message=f"racer {i}")
            racer.new_md5s.append(v.weights.md5)
    return race(tools, work, racer, s3, names)


if __name__ == "__main__":
    sys.exit(main())
