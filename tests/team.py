"""A team for the tests: clones of one registry, each with its own HOME and git identity, sharing
one bare git remote and one DVC remote (a directory, or a bucket on the test's S3 server).

Members act through the Python API in this process (their HOME and identity set while they act)
and through real ``git`` subprocesses, which run adaptergit's hooks as installed by ``init``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from adaptergit import Repo

WEIGHTS = "adapter_model.safetensors"


def write_adapter(folder: Path, seed: int, *, alpha: int = 8) -> Path:
    """A tiny LoRA folder (2 layers x q/v, r=4, hidden 32) as PEFT saves it, from `seed`."""
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for layer in range(2):
        for module in ("q_proj", "v_proj"):
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((4, 32)).astype(np.float32)
            tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((32, 4)).astype(np.float32)
    save_file(tensors, str(folder / WEIGHTS))
    config = {
        "peft_type": "LORA",
        "r": 4,
        "lora_alpha": alpha,
        "target_modules": ["q_proj", "v_proj"],
        "task_type": "CAUSAL_LM",
    }
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


@dataclass
class Member:
    """One person (or CI runner): a clone, a HOME, a git identity."""

    name: str
    root: Path
    home: Path

    @property
    def environ(self) -> dict[str, str]:
        ident = {"NAME": self.name, "EMAIL": f"{self.name}@example.com"}
        env = {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / ".config")}
        for who in ("AUTHOR", "COMMITTER"):
            for key, value in ident.items():
                env[f"GIT_{who}_{key}"] = value
        return env

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """This member's HOME and identity in this process, for API calls."""
        saved = {k: os.environ.get(k) for k in self.environ}
        os.environ.update(self.environ)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    @contextlib.contextmanager
    def repo(self) -> Iterator[Repo]:
        """The member's registry, opened as them."""
        with self.active(), Repo(self.root) as repo:
            yield repo

    def run_git(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A real git command in the clone (hooks run), as this member; its exit status kept."""
        return subprocess.run(
            ["git", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            env={**os.environ, **self.environ},
        )

    def git(self, *args: str, check: bool = True) -> str:
        """A real git command in the clone (hooks run), as this member; its stdout."""
        proc = self.run_git(*args)
        if check and proc.returncode != 0:
            raise AssertionError(f"{self.name}: git {' '.join(args)} failed: {proc.stderr}")
        return proc.stdout

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The adaptergit command in the clone, as this member."""
        import sys

        return subprocess.run(
            [sys.executable, "-m", "adaptergit", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            env={**os.environ, **self.environ},
            timeout=300,
        )


@dataclass
class Team:
    """A bare git remote (`origin`), a DVC remote, and the members' clones under `base`."""

    base: Path
    remote_url: str
    remote_options: dict[str, str] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)

    @property
    def origin(self) -> Path:
        return self.base / "origin.git"

    def _home(self, name: str) -> Path:
        home = self.base / f"home-{name}"
        (home / ".config").mkdir(parents=True, exist_ok=True)
        (home / ".gitconfig").write_text("[init]\n\tdefaultBranch = main\n")
        return home

    def found(self, name: str, seed: int = 1, adapter: str = "a") -> Member:
        """The first member: makes the registry, the remotes, a first version, and pushes."""
        subprocess.run(["git", "init", "-q", "--bare", str(self.origin)], check=True)
        subprocess.run(
            ["git", "-C", str(self.origin), "symbolic-ref", "HEAD", "refs/heads/main"], check=True
        )
        member = Member(name, self.base / name, self._home(name))
        self.members[name] = member
        with member.active():
            Repo.init(member.root).close()
        member.git("remote", "add", "origin", str(self.origin))
        with member.repo() as repo:
            repo.remote_add("store", self.remote_url, default=True, options=self.remote_options)
            repo.commit(write_adapter(self.base / "src" / f"{adapter}-{seed}", seed), name=adapter)
            repo.push()
        return member

    def join(self, name: str, *clone_args: str) -> Member:
        """A new member: ``git clone`` (extra arguments such as ``--depth 1``), ``adaptergit
        init .`` (hooks and merge driver), and the checked-out weights."""
        member = Member(name, self.base / name, self._home(name))
        self.members[name] = member
        subprocess.run(
            ["git", "clone", "-q", *clone_args, f"file://{self.origin}", str(member.root)],
            check=True,
            env={**os.environ, **member.environ},
        )
        with member.active():
            Repo.init(member.root).close()
        return member

    def remote_tag(self, tag: str) -> str | None:
        """The commit a tag names on the remote, or None."""
        proc = subprocess.run(
            [
                "git",
                "-C",
                str(self.origin),
                "rev-parse",
                "-q",
                "--verify",
                f"refs/tags/{tag}^{{commit}}",
            ],
            capture_output=True,
            text=True,
        )
        return proc.stdout.strip() or None

    def remote_git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.origin), *args], check=True, capture_output=True, text=True
        ).stdout
