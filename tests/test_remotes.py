"""Sharing a registry through real remotes on 127.0.0.1: directory, SSH (sshd), S3 (moto), git."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from adaptergit import Repo
from adaptergit.errors import NoRemote, TransferFailed

from .conftest import MakeAdapter
from .servers import SSHServer

REMOTE_KINDS = ["dir", "ssh", "s3"]


def git(cwd: Path, *args: str, check: bool = True, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adaptergit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class RemoteSpec:
    kind: str
    url: str
    options: dict[str, str]


@pytest.fixture
def remote_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RemoteSpec]:
    kind = request.param
    if kind == "dir":
        yield RemoteSpec(kind, str(tmp_path / "dvc-store"), {})
    elif kind == "ssh":
        server = request.getfixturevalue("ssh_server")
        server.trust(Path(os.environ["HOME"]))
        yield RemoteSpec(kind, server.url(tmp_path / "ssh-store"), {})
    else:
        server = request.getfixturevalue("s3_server")
        bucket = f"b-{uuid.uuid4().hex[:12]}"
        server.create_bucket(bucket)
        # Credentials come from the environment, as on a real machine; the endpoint is config.
        os.environ["AWS_ACCESS_KEY_ID"] = "testing"
        os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
        yield RemoteSpec(
            kind, f"s3://{bucket}/store", {"endpointurl": server.endpoint, "region": "us-east-1"}
        )
        os.environ.pop("AWS_ACCESS_KEY_ID", None)
        os.environ.pop("AWS_SECRET_ACCESS_KEY", None)


# The `shared` fixture: for a DVC remote, a registry with two versions, its bare git remote and
# the adapter folders committed.
Shared = Callable[[RemoteSpec], tuple[Repo, Path, list[Path]]]


@pytest.fixture
def shared(tmp_path: Path, make_adapter: MakeAdapter) -> Shared:
    """A registry with two versions, a bare git remote by path, and helpers."""

    def build(spec: RemoteSpec) -> tuple[Repo, Path, list[Path]]:
        repo = Repo.init(tmp_path / "origin-registry")
        srcs = [make_adapter(seed=1), make_adapter(seed=2)]
        for i, src in enumerate(srcs):
            repo.commit(src, name="shared", metrics={"loss": 2.0 - i})
        bare = tmp_path / "registry.git"
        git(tmp_path, "init", "-q", "--bare", str(bare))
        git(repo.root, "remote", "add", "origin", str(bare))
        repo.remote_add("store", spec.url, default=True, options=spec.options)
        return repo, bare, srcs

    return build


@pytest.mark.parametrize("remote_spec", REMOTE_KINDS, indirect=True)
def test_push_then_pull_in_a_fresh_clone(
    shared: Shared, remote_spec: RemoteSpec, tmp_path: Path
) -> None:
    repo, bare, srcs = shared(remote_spec)
    result = repo.push()
    assert set(result.uploaded) == {"shared@v0.0.1", "shared@v0.0.2"}
    assert "refs/tags/shared@v0.0.1:refs/tags/shared@v0.0.1" in result.git_refs
    # Pushing what is already there transfers nothing.
    assert repo.push().uploaded == ()
    assert "shared@v0.0.2" in git(bare, "tag", "-l")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    r = cli(clone, "pull", "shared@v0.0.1")
    assert r.returncode == 0, r.stderr
    weights = clone / "adapters/shared/adapter_model.safetensors"
    assert sha256(weights) == sha256(srcs[0] / "adapter_model.safetensors")
    r = cli(clone, "checkout", "shared@v0.0.2", "--to", str(tmp_path / "v2"))
    assert r.returncode == 0, r.stderr
    assert sha256(tmp_path / "v2/adapter_model.safetensors") == sha256(
        srcs[1] / "adapter_model.safetensors"
    )


def test_plain_dvc_pull_works_in_a_clone(shared: Shared, tmp_path: Path) -> None:
    repo, bare, srcs = shared(RemoteSpec("dir", str(tmp_path / "store"), {}))
    repo.push()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    subprocess.run(["dvc", "pull", "-q"], cwd=clone, check=True, capture_output=True)
    assert sha256(clone / "adapters/shared/adapter_model.safetensors") == sha256(
        srcs[1] / "adapter_model.safetensors"
    )


@pytest.mark.parametrize("remote_spec", REMOTE_KINDS, indirect=True)
def test_git_checkout_of_a_version_tag_brings_its_weights(
    shared: Shared, remote_spec: RemoteSpec, tmp_path: Path
) -> None:
    repo, bare, srcs = shared(remote_spec)
    repo.push()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    assert cli(clone, "hooks", "install").returncode == 0
    weights = clone / "adapters/shared/adapter_model.safetensors"
    git(clone, "checkout", "-q", "shared@v0.0.1")  # the hook fetches from the remote
    assert sha256(weights) == sha256(srcs[0] / "adapter_model.safetensors")
    git(clone, "checkout", "-q", "-")
    assert sha256(weights) == sha256(srcs[1] / "adapter_model.safetensors")


def test_plain_git_push_uploads_weights_first(
    shared: Shared, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    repo, _bare, _srcs = shared(RemoteSpec("dir", str(store), {}))
    repo.push()
    v3 = repo.commit(make_adapter(seed=3), name="shared")
    assert v3.manifest is not None
    md5 = v3.manifest.weights.md5
    obj = store / "files/md5" / md5[:2] / md5[2:]
    assert not obj.exists()
    out = subprocess.run(
        ["git", "push", "-q", "origin", "HEAD", "shared@v0.0.3"],
        cwd=repo.root,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert obj.exists()
    assert "uploaded weights of shared@v0.0.3" in out.stderr


def test_push_with_no_remote_says_how_to_add_one(registry: Repo, make_adapter: MakeAdapter) -> None:
    v = registry.commit(make_adapter(), name="x")
    with pytest.raises(NoRemote, match="adaptergit remote add NAME URL --default"):
        registry.push()
    assert v.manifest is not None
    registry.dvc.drop(v.manifest.weights.md5)
    r = cli(registry.root, "pull", "x")
    assert r.returncode == 1 and "adaptergit remote add" in r.stderr


def test_credentials_stay_out_of_git(registry: Repo, ssh_server: SSHServer) -> None:
    registry.remote_add(
        "s3store",
        "s3://bucket/path",
        options={
            "endpointurl": "http://127.0.0.1:9",
            "access_key_id": "AKIA",
            "secret_access_key": "SECRET",
        },
    )
    registry.remote_add("sshstore", "ssh://user:hunter2@127.0.0.1:22/srv/store")
    committed = git(registry.root, "show", "HEAD:.dvc/config")
    assert "SECRET" not in committed and "AKIA" not in committed and "hunter2" not in committed
    assert "endpointurl" in committed and "ssh://user@127.0.0.1:22/srv/store" in committed
    local = (registry.root / ".dvc/config.local").read_text()
    assert "SECRET" in local and "hunter2" in local
    assert "config.local" not in git(registry.root, "ls-files", ".dvc")
    assert git(registry.root, "status", "--porcelain") == ""


@pytest.mark.sshd
def test_remote_down_during_push_publishes_nothing_then_recovers(
    shared: Shared, tmp_path: Path
) -> None:
    server = SSHServer(tmp_path / "sshd").setup().start()
    server.trust(Path(os.environ["HOME"]))
    try:
        repo, bare, _srcs = shared(RemoteSpec("ssh", server.url(tmp_path / "ssh-store"), {}))
        server.stop()
        r = cli(repo.root, "push")
        assert r.returncode == 1
        assert r.stderr.startswith("adaptergit: error: push to DVC remote 'store' failed")
        assert "shared@v0.0.1" in r.stderr and "nothing was pushed to git" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert git(bare, "tag", "-l") == "" and git(bare, "branch") == ""
        # plain git push through the hook is refused the same way
        r2 = subprocess.run(
            ["git", "push", "origin", "HEAD", "--tags"],
            cwd=repo.root,
            capture_output=True,
            text=True,
        )
        assert r2.returncode != 0 and "push aborted" in r2.stderr
        assert git(bare, "tag", "-l") == ""
        server.start()
        r = cli(repo.root, "push")
        assert r.returncode == 0, r.stderr
        assert "shared@v0.0.2" in git(bare, "tag", "-l")
    finally:
        server.stop()


def test_killed_push_converges_on_rerun(
    shared: Shared, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    repo, bare, _srcs = shared(RemoteSpec("dir", str(store), {}))
    for seed in range(3, 8):
        repo.commit(make_adapter(seed=seed), name="shared")
    proc = subprocess.Popen(
        [sys.executable, "-m", "adaptergit", "push"], cwd=repo.root, stderr=subprocess.PIPE
    )
    time.sleep(0.8)  # part-way: DVC is loaded, transfers under way or about to start
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    r = cli(repo.root, "push")
    assert r.returncode == 0, r.stderr
    assert "busy" not in r.stderr
    assert len(git(bare, "tag", "-l").split()) == 7
    verify = cli(repo.root, "push")
    assert "weights: nothing to upload" in verify.stdout
    # No stale lock: ours can be taken at once, and DVC's own repository lock too.
    from adaptergit.fsutil import RepoLock

    with RepoLock(repo.state_dir / "lock", timeout=0):
        pass
    dvc = subprocess.run(["dvc", "status", "-q"], cwd=repo.root, capture_output=True, text=True)
    assert dvc.returncode == 0, dvc.stderr


def test_corrupt_cache_object_is_replaced_from_remote(shared: Shared, tmp_path: Path) -> None:
    repo, _bare, srcs = shared(RemoteSpec("dir", str(tmp_path / "store"), {}))
    repo.push()
    v1 = repo.resolve("shared@v0.0.1")
    assert v1.manifest is not None
    obj = repo.dvc.cache_path(v1.manifest.weights.md5)
    data = bytearray(obj.read_bytes())
    data[100] ^= 0xFF
    os.chmod(obj, 0o644)
    obj.write_bytes(bytes(data))
    os.chmod(obj, 0o444)
    out = repo.checkout("shared@v0.0.1", to=tmp_path / "v1")
    assert sha256(out / "adapter_model.safetensors") == sha256(
        srcs[0] / "adapter_model.safetensors"
    )
    assert sha256(obj) == v1.manifest.weights.sha256  # the cache was repaired too


def test_fetch_failure_names_versions(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    v = registry.commit(make_adapter(), name="x")
    registry.remote_add("store", str(tmp_path / "empty-store"), default=True)
    assert v.manifest is not None
    registry.dvc.drop(v.manifest.weights.md5)
    with pytest.raises(TransferFailed, match=r"x@v0\.0\.1"):
        registry.checkout("x", to=tmp_path / "out")


# --- pre-push: the cases git's own t5571-pre-push-hook covers ----------------------------------


def _prepush(repo: Repo, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adaptergit", "hook", "pre-push", "origin", "url"],
        cwd=repo.root,
        input=stdin,
        capture_output=True,
        text=True,
    )


def test_pre_push_stdin_cases(shared: Shared, make_adapter: MakeAdapter, tmp_path: Path) -> None:
    store = tmp_path / "store"
    repo, _bare, _srcs = shared(RemoteSpec("dir", str(store), {}))
    zero = "0" * 40
    head = git(repo.root, "rev-parse", "HEAD").strip()

    def on_remote(ref: str) -> bool:
        md5 = repo.resolve(ref).manifest.weights.md5
        return (store / "files/md5" / md5[:2] / md5[2:]).exists()

    # deleted ref: nothing to upload
    r = _prepush(repo, f"(delete) {zero} refs/heads/old {head}\n")
    assert r.returncode == 0 and not on_remote("shared@v0.0.1")

    def tag_line(tag: str) -> str:
        oid = git(repo.root, "rev-parse", tag).strip()
        return f"refs/tags/{tag} {oid} refs/tags/{tag} {zero}"

    # a branch without its versions' tags: refused before anything is uploaded
    r = _prepush(repo, f"refs/heads/main {head} refs/heads/main {zero}\n")
    assert r.returncode == 1 and "shared@v0.0.1, shared@v0.0.2 but not their tags" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not on_remote("shared@v0.0.1")
    # new branch (all-zero remote id) with its tags (as --follow-tags sends them): every
    # version reachable is uploaded
    tags = [tag_line("shared@v0.0.1"), tag_line("shared@v0.0.2")]
    r = _prepush(repo, "\n".join([f"refs/heads/main {head} refs/heads/main {zero}", *tags]) + "\n")
    assert r.returncode == 0, r.stderr
    assert on_remote("shared@v0.0.1") and on_remote("shared@v0.0.2")
    # a version on a side branch: its tag alone would name a commit no remote branch holds
    git(repo.root, "checkout", "-q", "-b", "side")
    v3 = repo.commit(make_adapter(seed=3), name="shared")
    side = git(repo.root, "rev-parse", "HEAD").strip()
    git(repo.root, "checkout", "-q", "-")
    r = _prepush(repo, tag_line("shared@v0.0.3") + "\n")
    assert r.returncode == 1 and "shared@v0.0.3" in r.stderr and not on_remote(v3.ref)
    # with its branch, it goes
    side_line = f"refs/heads/side {side} refs/heads/side {zero}"
    r = _prepush(repo, "\n".join([side_line, *tags, tag_line("shared@v0.0.3")]) + "\n")
    assert r.returncode == 0, r.stderr
    assert on_remote(v3.ref)
    # many refs at once, one of them a new adapter
    v4 = repo.commit(make_adapter(seed=4), name="other")
    head = git(repo.root, "rev-parse", "HEAD").strip()
    lines = [f"refs/heads/b{i} {head} refs/heads/b{i} {zero}" for i in range(30)]
    r = _prepush(repo, "\n".join([*lines, *tags, tag_line("other@v0.0.1")]) + "\n")
    assert r.returncode == 0, r.stderr
    assert on_remote(v4.ref)


def test_git_remote_over_ssh_with_ssh_dvc_remote(
    shared: Shared, ssh_server: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both halves over the same sshd: git by ssh:// URL, weights by dvc-ssh."""
    ssh_server.trust(Path(os.environ["HOME"]))
    monkeypatch.setenv("GIT_SSH_COMMAND", ssh_server.ssh_command)
    repo, bare, srcs = shared(RemoteSpec("ssh", ssh_server.url(tmp_path / "ssh-store"), {}))
    git(repo.root, "remote", "set-url", "origin", ssh_server.git_url(bare))
    result = repo.push()
    assert result.git_remote == "origin" and len(result.uploaded) == 2
    assert "shared@v0.0.2" in git(bare, "tag", "-l")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", ssh_server.git_url(bare), str(clone))
    r = cli(clone, "pull", "shared@v0.0.1")
    assert r.returncode == 0, r.stderr
    assert sha256(clone / "adapters/shared/adapter_model.safetensors") == sha256(
        srcs[0] / "adapter_model.safetensors"
    )


def test_failed_remote_add_leaves_config_as_it_was(
    registry: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (registry.root / ".dvc/config").read_bytes()
    head = git(registry.root, "rev-parse", "HEAD")
    # git cannot commit without an identity: the remote must not stay half-added.
    for var in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL", "GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("EMAIL", "")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    git(registry.root, "config", "user.useConfigOnly", "true")
    r = cli(registry.root, "remote", "add", "store", "ssh://u:secret@127.0.0.1:22/srv/store")
    assert r.returncode == 1 and r.stderr.startswith("adaptergit: error: git ")
    assert (registry.root / ".dvc/config").read_bytes() == before
    assert not (registry.root / ".dvc/config.local").exists()
    assert git(registry.root, "rev-parse", "HEAD") == head
    assert git(registry.root, "status", "--porcelain") == ""


def test_transfers_show_bytes_on_a_terminal(
    shared: Shared, ssh_server: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from adaptergit import cli

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    ssh_server.trust(Path(os.environ["HOME"]))
    repo, _bare, _srcs = shared(RemoteSpec("ssh", ssh_server.url(tmp_path / "store"), {}))
    monkeypatch.setattr(cli, "PROGRESS_MIN_BYTES", 0)  # the test adapters are small
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    assert cli.main(["-C", str(repo.root), "push"]) == 0
    drawn = screen.getvalue()
    assert "push" in drawn and "100%" in drawn


def _big_adapter(folder: Path, seed: int, mb: int = 4) -> Path:
    """A LoRA adapter of a few MB in PEFT's layout (random factors), so an upload takes a while."""
    import json

    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    layers = max(1, mb * 1_000_000 // (2 * 8 * 1024 * 4))
    tensors = {}
    for i in range(layers):
        prefix = f"base_model.model.model.layers.{i}.self_attn.q_proj"
        tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((8, 1024), dtype=np.float32)
        tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((1024, 8), dtype=np.float32)
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(
        json.dumps({"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"]})
    )
    return folder


def test_connection_lost_mid_upload_publishes_nothing_then_recovers(
    tmp_path: Path, ssh_server: SSHServer
) -> None:
    """The SSH remote goes away part-way through the upload (a relay drops every connection)."""
    from .servers import TcpProxy

    proxy = TcpProxy(ssh_server.port).start()
    home = Path(os.environ["HOME"])
    ssh_server.trust(home)
    with open(home / ".ssh/known_hosts", "a") as f:  # the relay's port serves the same host key
        key = (ssh_server.root / "host_ed25519.pub").read_text().split()
        f.write(f"[127.0.0.1]:{proxy.port} {key[0]} {key[1]}\n")
    try:
        repo = Repo.init(tmp_path / "reg")
        for seed in (1, 2):
            repo.commit(_big_adapter(tmp_path / f"a{seed}", seed), name="big")
        bare = tmp_path / "registry.git"
        git(tmp_path, "init", "-q", "--bare", str(bare))
        git(repo.root, "remote", "add", "origin", str(bare))
        store = tmp_path / "store"
        repo.remote_add(
            "store", f"ssh://{ssh_server.user}@127.0.0.1:{proxy.port}{store}", default=True
        )
        proxy.cut_after = 2_000_000  # past the handshake, inside the 8 MB of weights
        r = cli(repo.root, "push")
        assert proxy.sent >= 2_000_000  # the cut came mid-upload
        assert r.returncode == 1, r.stderr
        assert r.stderr.startswith("adaptergit: error: push to DVC remote 'store' failed")
        assert "big@v0.0." in r.stderr and "nothing was pushed to git" in r.stderr
        assert git(bare, "tag", "-l") == "" and git(bare, "branch") == ""
        proxy.cut_after = None
        proxy.start()  # the server is back
        r = cli(repo.root, "push")
        assert r.returncode == 0, r.stderr
        assert set(git(bare, "tag", "-l").split()) == {"big@v0.0.1", "big@v0.0.2"}
        for ref in ("big@v0.0.1", "big@v0.0.2"):
            md5 = repo.resolve(ref).manifest.weights.md5
            obj = store / "files/md5" / md5[:2] / md5[2:]
            assert sha256(obj) == repo.resolve(ref).manifest.weights.sha256
    finally:
        proxy.stop()
