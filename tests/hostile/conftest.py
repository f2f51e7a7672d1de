"""Crafted registries for the hostile suite: built with plain git commands, as an attacker would.

`World` is one scenario's folder: a registry (``reg``), the adapters it was made from, an
``outside`` folder standing for the user's other files (which must never change), and helpers to
run ``adaptergit`` and ``git`` as the user would, in subprocesses, so that exit statuses, hooks and
the one-line error rule are what users get.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ADAPTERGIT = str(Path(sys.executable).parent / "adaptergit")
WEIGHTS = "adapter_model.safetensors"


def write_adapter(
    folder: Path, value: float = 1.0, *, dim: int = 8, config: dict[str, object] | None = None
) -> Path:
    """A small LoRA folder (q_proj A and B, F32 filled with `value`), without torch."""
    folder.mkdir(parents=True, exist_ok=True)
    r = 2
    a = struct.pack("<f", value) * (r * dim)
    b = struct.pack("<f", 0.5) * (dim * r)
    header = {
        "base_model.model.q_proj.lora_A.weight": {
            "dtype": "F32",
            "shape": [r, dim],
            "data_offsets": [0, len(a)],
        },
        "base_model.model.q_proj.lora_B.weight": {
            "dtype": "F32",
            "shape": [dim, r],
            "data_offsets": [len(a), len(a) + len(b)],
        },
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    (folder / WEIGHTS).write_bytes(struct.pack("<Q", len(raw)) + raw + a + b)
    conf = {"peft_type": "LORA", "r": r, "lora_alpha": 2 * r, "target_modules": ["q_proj"]}
    (folder / "adapter_config.json").write_text(json.dumps(config if config is not None else conf))
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder` (links as their targets, files as their sha256)."""
    found: dict[str, str] = {}
    if not folder.exists():
        return found
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                found[rel] = "link:" + os.readlink(path)
            elif path.is_file():
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = "special"
    return found


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def assert_clean(result: Result) -> None:
    """No traceback, no "unexpected error"; a failure says why (a report, or one error line)."""
    assert "Traceback" not in result.text, result.text
    assert "unexpected error" not in result.text, result.text
    assert result.code in (0, 1, 2, 3, 4, 75), result.text
    lines = [line for line in result.err.splitlines() if line.strip()]
    errors = [line for line in lines if not line.startswith("adaptergit: warning:")]
    if result.code != 0:
        assert errors or result.out.strip(), result.text
    if errors:
        assert errors[-1].startswith("adaptergit: "), result.text


class World:
    """One scenario's folder; see the module's doc."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.reg = base / "reg"
        self.outside = base / "outside"
        self.outside.mkdir(parents=True, exist_ok=True)
        (self.outside / "secret.yaml").write_text("users:\n- token: FAKE-SECRET-TOKEN-1234\n")
        (self.outside / "bot").mkdir(exist_ok=True)
        (self.outside / "bot" / "adapter_config.json").write_text("the user's own file\n")

    def run(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
        proc = subprocess.run(
            [ADAPTERGIT, *args],
            cwd=cwd or self.reg,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            timeout=120,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, cwd: Path | None = None) -> Result:
        result = self.run(*args, cwd=cwd)
        assert result.code == 0, result.text
        return result

    def git(self, *args: str, cwd: Path | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            ["git", *args], cwd=cwd or self.reg, capture_output=True, text=True, timeout=120
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def adapter(self, name: str, value: float, **kwargs) -> Path:  # type: ignore[no-untyped-def]
        return write_adapter(self.base / "src" / name, value, **kwargs)

    def all_objects_text(self, repo: Path | None = None) -> bytes:
        """The bytes of every git object reachable from any ref (what a push could publish)."""
        repo = repo or self.reg
        ids = subprocess.run(
            ["git", "rev-list", "--all", "--objects"], cwd=repo, capture_output=True, text=True
        ).stdout
        names = "".join(line.split()[0] + "\n" for line in ids.splitlines() if line.strip())
        return subprocess.run(
            ["git", "cat-file", "--batch"], cwd=repo, input=names.encode(), capture_output=True
        ).stdout

    def cache_object(self, md5: str, reg: Path | None = None) -> Path:
        return (reg or self.reg) / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]

    def md5(self, name: str, reg: Path | None = None) -> str:
        manifest = json.loads(((reg or self.reg) / "adapters" / name / "manifest.json").read_text())
        return str(manifest["weights"]["md5"])


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with bot@v0.0.1 and bot@v0.0.2, made once and copied for each test."""
    base = tmp_path_factory.mktemp("hostile-template")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Ada Tester",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "GIT_COMMITTER_NAME": "Ada Tester",
        "GIT_COMMITTER_EMAIL": "ada@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(base / "home"),
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(base / "dvc-site"),
    }
    (base / "home").mkdir()
    subprocess.run(["git", "config", "--global", "init.defaultBranch", "main"], env=env, check=True)
    write_adapter(base / "v1", 1.0)
    write_adapter(base / "v2", 2.0)
    for args in (
        ["init", "reg"],
        ["-C", "reg", "commit", str(base / "v1"), "--name", "bot", "-m", "one"],
        ["-C", "reg", "commit", str(base / "v2"), "--name", "bot", "-m", "two"],
    ):
        subprocess.run([ADAPTERGIT, *args], cwd=base, env=env, check=True, capture_output=True)
    return base / "reg"


@pytest.fixture
def world(tmp_path: Path, template: Path) -> World:
    """A fresh copy of the template registry in its own scenario folder."""
    w = World(tmp_path)
    shutil.copytree(template, w.reg, symlinks=True)
    write_adapter(tmp_path / "v1", 1.0)
    write_adapter(tmp_path / "v2", 2.0)
    write_adapter(tmp_path / "v3", 3.0)
    return w
