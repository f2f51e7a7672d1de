"""Real servers for the tests, on 127.0.0.1: OpenSSH's sshd and moto's S3 server.

Each is started by the test session itself; nothing is mocked, nothing leaves the machine.
A test that needs a program the README's set-up does not install (sshd, npm) is skipped with one
line naming the package to install, unless ``ADAPTERGIT_NO_SKIP=1`` (CI sets it) turns such a
skip into a failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
# Set by CI (.ci/run): a test that would be skipped for a missing program fails instead.
NO_SKIP_ENV = "ADAPTERGIT_NO_SKIP"


def needs(program: str, package: str, *, found: bool | None = None) -> None:
    """Skip the calling test or fixture unless `program` is there (on PATH unless `found` says).

    The reason is one line naming the package to install; with ``ADAPTERGIT_NO_SKIP=1`` the test
    fails with that line instead, so CI cannot pass by skipping.
    """
    import pytest  # the benchmarks import this module too, without pytest

    if found is None:
        found = shutil.which(program) is not None
    if found:
        return
    reason = f"needs {program}: install {package}"
    if os.environ.get(NO_SKIP_ENV, "") not in ("", "0"):
        pytest.fail(f"{reason} ({NO_SKIP_ENV} is set)", pytrace=False)
    pytest.skip(reason)


def needs_sshd() -> None:
    """`needs` OpenSSH's server and client (sshd, ssh, ssh-keygen)."""
    needs("sshd", "openssh-server", found=os.access(SSHD, os.X_OK))
    for program in ("ssh", "ssh-keygen"):
        needs(program, "openssh-client")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class SSHServer:
    """An sshd on 127.0.0.1 that lets the current user in with a key made for the test."""

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def user(self) -> str:
        import getpass

        return getpass.getuser()

    def setup(self) -> SSHServer:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for name in ("host_ed25519", "id_ed25519"):
            if not (self.root / name).exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.root / name)],
                    check=True,
                )
        shutil.copy(self.root / "id_ed25519.pub", self.root / "authorized_keys")
        os.chmod(self.root / "authorized_keys", 0o600)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
        (self.root / "sshd_config").write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.root / 'host_ed25519'}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    f"PidFile {self.root / 'sshd.pid'}",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin yes",
                    "StrictModes no",
                    "UsePAM no",
                    "MaxStartups 100",
                    "MaxSessions 100",
                    "Subsystem sftp internal-sftp",
                    "LogLevel ERROR",
                    # Keep the test session's environment (PATH to this Python's git and tools).
                    "PermitUserEnvironment no",
                ]
            )
            + "\n"
        )
        return self

    def start(self) -> SSHServer:
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "sshd.log", "ab"),  # noqa: SIM115
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None
        # sshd forks a process per connection; make sure none keeps serving.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)

    def trust(self, home: Path) -> None:
        """Set up ~/.ssh as a user would: the key, and the server in known_hosts."""
        ssh = home / ".ssh"
        ssh.mkdir(parents=True, exist_ok=True)
        os.chmod(ssh, 0o700)
        shutil.copy(self.key, ssh / "id_ed25519")
        os.chmod(ssh / "id_ed25519", 0o600)
        host_key = (self.root / "host_ed25519.pub").read_text().split()
        with open(ssh / "known_hosts", "a") as f:
            f.write(f"[127.0.0.1]:{self.port} {host_key[0]} {host_key[1]}\n")

    def url(self, path: Path | str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{Path(path)}"

    @property
    def ssh_command(self) -> str:
        """For GIT_SSH_COMMAND: use the test key, trust the test host key."""
        return (
            f"ssh -i {self.key} -p {self.port} -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes"
        )

    def git_url(self, path: Path | str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{Path(path)}"


@dataclass
class S3Server:
    """moto's threaded S3 server, as DVC's own dvc-s3 tests use it."""

    port: int = field(default_factory=free_port)
    server: ThreadedMotoServer | None = None

    def start(self) -> S3Server:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self.server = server
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def create_bucket(self, name: str) -> None:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=name)

    def options(self) -> dict[str, str]:
        return {
            "endpointurl": self.endpoint,
            "access_key_id": "testing",
            "secret_access_key": "testing",
            "region": "us-east-1",
        }


class TcpProxy:
    """A TCP relay on 127.0.0.1 in front of a server, that can drop dead mid-transfer.

    `cut_after` bytes sent by clients, it closes every connection and turns away new ones, as a
    server that goes down part-way through an upload looks to the client; `start()` again brings
    it back. It keeps its listening socket throughout, so the port cannot be lost in between.
    """

    def __init__(self, target_port: int) -> None:
        import threading

        self.target_port = target_port
        self.port = 0
        self.cut_after: int | None = None
        self.sent = 0
        self.down = False
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        import threading

        self.sent = 0
        self.down = False
        if self._server is None:
            server = socket.create_server(("127.0.0.1", 0))
            server.settimeout(0.2)
            self.port = server.getsockname()[1]
            self._server = server
            threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def _accept(self, server: socket.socket) -> None:
        import threading

        while self._server is server:
            try:
                client, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            if self.down:  # the "server" is gone: hang up at once
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                if counted:
                    self.sent += len(data)
                    if self.cut_after is not None and self.sent >= self.cut_after:
                        self.cut()
                        return
        except OSError:
            pass

    def cut(self) -> None:
        """Drop every connection and turn new ones away."""
        self.down = True
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.cut()
