"""What a newcomer meets in the first hour: versions, re-running init, remotes in any order,
pull with no arguments, honest push output, error messages that say what to install or type."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import adaptergit
from adaptergit import Repo
from adaptergit.errors import git_reason
from adaptergit.text import human_size

from .conftest import NumpyAdapter


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return run(cwd, sys.executable, "-m", "adaptergit", *args, env=env)


def git(cwd: Path, *args: str) -> str:
    r = run(cwd, "git", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_version_is_the_installed_distributions(tmp_path: Path) -> None:
    installed = importlib.metadata.version("adaptergit")
    assert adaptergit.__version__ == installed
    assert installed in cli(tmp_path, "--version").stdout


def test_init_twice_says_the_registry_exists(tmp_path: Path) -> None:
    first = cli(tmp_path, "init", "reg")
    assert first.returncode == 0 and first.stdout.startswith("Initialised"), first.stderr
    head = git(tmp_path / "reg", "rev-parse", "HEAD")
    again = cli(tmp_path, "init", "reg")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("Reinitialised existing adaptergit registry")
    assert git(tmp_path / "reg", "rev-parse", "HEAD") == head


def test_init_with_a_remote_records_it_in_the_first_commit(tmp_path: Path) -> None:
    r = cli(tmp_path, "init", "reg", "--remote", str(tmp_path / "store"))
    assert r.returncode == 0, r.stderr
    first = git(tmp_path / "reg", "rev-list", "--max-parents=0", "HEAD").strip()
    config = git(tmp_path / "reg", "show", f"{first}:.dvc/config")
    assert "remote = storage" in config and str(tmp_path / "store") in config


def test_init_remote_options_go_to_the_first_commit_and_secrets_stay_local(
    tmp_path: Path,
) -> None:
    store = "ssh://ci@127.0.0.1/srv/adapters"
    r = cli(tmp_path, "init", "reg", "--remote", store, "-o", "port=2222", "-o", "password=hunter2")
    assert r.returncode == 0, r.stderr
    first = git(tmp_path / "reg", "rev-list", "--max-parents=0", "HEAD").strip()
    config = git(tmp_path / "reg", "show", f"{first}:.dvc/config")
    assert "port = 2222" in config and "hunter2" not in config
    assert "hunter2" in (tmp_path / "reg" / ".dvc" / "config.local").read_text()
    assert "hunter2" not in r.stdout + r.stderr
    with_password = cli(tmp_path, "init", "reg2", "--remote", "ssh://ci:hunter2@127.0.0.1/srv")
    assert with_password.returncode == 0, with_password.stderr
    assert "hunter2" not in with_password.stdout + with_password.stderr
    refused = cli(tmp_path, "init", "reg3", "--remote", store, "-o", "no_such_option=1")
    assert refused.returncode != 0 and "no_such_option" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "reg3").exists()
    alone = cli(tmp_path, "init", "other", "-o", "verify=true")
    assert alone.returncode == 2 and "needs --remote URL" in alone.stderr
    assert not (tmp_path / "other").exists()


def test_remote_add_after_versions_says_how_plain_dvc_reaches_them(
    registry: Repo, numpy_adapter: NumpyAdapter, tmp_path: Path
) -> None:
    registry.commit(numpy_adapter(1), name="bot")
    r = cli(registry.root, "remote", "add", "store", str(tmp_path / "store"), "--default")
    assert r.returncode == 0, r.stderr
    assert "bot@v0.0.1 came before this remote" in r.stdout
    assert f"dvc remote add --local -d store {tmp_path / 'store'}" in r.stdout
    registry.commit(numpy_adapter(2), name="bot")
    added = registry.remote_add("other", str(tmp_path / "other"))
    assert added.older == ("bot@v0.0.1", "bot@v0.0.2")  # neither commit names "other"


def test_remote_add_recipe_carries_the_remotes_options_but_no_secret(
    registry: Repo, numpy_adapter: NumpyAdapter, tmp_path: Path
) -> None:
    pytest.importorskip("dvc_s3")
    registry.commit(numpy_adapter(1), name="bot")
    added = registry.remote_add(
        "store",
        "s3://bucket/adapters",
        default=True,
        options={"endpointurl": "http://127.0.0.1:9", "secret_access_key": "hush"},
    )
    assert added.older == ("bot@v0.0.1",)
    recipe = added.local_recipe
    assert recipe.startswith("dvc remote add --local -d store s3://bucket/adapters && ")
    assert "dvc remote modify --local store endpointurl http://127.0.0.1:9" in recipe
    assert "hush" not in recipe and "secret_access_key" not in recipe
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(registry.root), str(clone)], check=True)
    subprocess.run(["git", "checkout", "-q", "bot@v0.0.1"], cwd=clone, check=True)
    subprocess.run(recipe, shell=True, cwd=clone, check=True, capture_output=True)
    local = (clone / ".dvc" / "config.local").read_text()
    assert "endpointurl = http://127.0.0.1:9" in local and "core" in local


def test_remote_modify_default_and_remove(registry: Repo, tmp_path: Path) -> None:
    root = registry.root
    for name in ("one", "two"):
        assert cli(root, "remote", "add", name, str(tmp_path / name)).returncode == 0
    r = cli(root, "remote", "modify", "one", "url", "ssh://ada:hunter2@example.com/store")
    assert r.returncode == 0, r.stderr
    r = cli(root, "remote", "default", "two")
    assert r.returncode == 0, r.stderr
    committed = git(root, "show", "HEAD:.dvc/config")
    assert "ssh://ada@example.com/store" in committed and "hunter2" not in committed
    assert "remote = two" in committed
    assert "hunter2" in (root / ".dvc/config.local").read_text()
    assert cli(root, "remote", "modify", "one", "password", "--unset").returncode == 0
    assert "hunter2" not in (root / ".dvc/config.local").read_text()
    r = cli(root, "remote", "remove", "two")
    assert r.returncode == 0, r.stderr
    listed = cli(root, "remote", "list").stdout
    assert "two" not in listed and "one" in listed
    assert "remote = two" not in git(root, "show", "HEAD:.dvc/config")
    assert git(root, "status", "--porcelain") == ""
    r = cli(root, "remote", "remove", "nope")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no remote named 'nope'" in r.stderr


def test_missing_remote_plugin_names_the_extra(registry: Repo, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "dvc_s3"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    env = {"PYTHONPATH": str(shadow.parent)}
    head = git(registry.root, "rev-parse", "HEAD")
    r = cli(registry.root, "remote", "add", "s", "s3://bucket/path", "--default", env=env)
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "adaptergit: error: s3:// remotes need dvc-s3, which is not installed; "
        'install it with `pip install "adaptergit[s3]"`'
    )
    assert git(registry.root, "rev-parse", "HEAD") == head


def test_push_pull_manners(registry: Repo, numpy_adapter: NumpyAdapter, tmp_path: Path) -> None:
    root = registry.root
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(root, "remote", "add", "origin", str(origin))
    registry.remote_add("store", str(tmp_path / "store"), default=True)
    a, b = numpy_adapter(1), numpy_adapter(2)
    registry.commit(a, name="a")
    registry.commit(b, name="b")
    first = cli(root, "push")
    assert first.returncode == 0, first.stderr
    assert "uploaded a@v0.0.1, b@v0.0.1" in first.stdout
    assert "@{upstream}" not in git(root, "rev-parse", "--abbrev-ref", "@{upstream}")  # set, as -u
    again = cli(root, "push")
    assert again.returncode == 0, again.stderr
    assert (  # push decides from the commits the remote lacks (#9): none, so nothing to upload
        "weights: nothing to upload (no unpublished version on this branch)" in again.stdout
    )
    assert "git: nothing to push (origin is up to date)" in again.stdout

    git(tmp_path, "clone", "-q", str(origin), "clone")
    clone = tmp_path / "clone"
    pulled = cli(clone, "pull")  # no refs: what the work tree has checked out, as dvc pull
    assert pulled.returncode == 0, pulled.stderr
    for name, src in (("a", a), ("b", b)):
        weights = clone / "adapters" / name / "adapter_model.safetensors"
        assert weights.read_bytes() == (src / "adapter_model.safetensors").read_bytes()
    assert git(clone, "status", "--porcelain") == ""
    assert "nothing (all in the cache already)" in cli(clone, "fetch").stdout


@given(st.integers(min_value=1, max_value=10**18))
def test_sizes_never_round_to_zero(n: int) -> None:
    text = human_size(n)
    assert not text.startswith("0 ") and not text.startswith("0.0"), text


def test_git_errors_keep_gits_reasons_and_advice() -> None:
    rejected = (
        "To /srv/origin.git\n ! [rejected]        main -> main (fetch first)\n"
        "error: failed to push some refs to '/srv/origin.git'\n"
        "hint: Updates were rejected because the remote contains work that you do\n"
    )
    assert git_reason(rejected) == (
        "! [rejected] main -> main (fetch first); failed to push some refs to '/srv/origin.git'"
    )
    identity = "Author identity unknown\n\n*** Please tell me who you are.\n\nRun\n"
    assert 'git config --global user.name "Your Name"' in git_reason(identity)


def test_init_again_upgrades_an_old_diff_driver(registry: Repo) -> None:
    """An older adaptergit set `adaptergit textconv` (PATH only): status says to run init again,
    which replaces it; a driver command of the user's own is left alone."""
    git(registry.root, "config", "diff.adaptergit.textconv", "adaptergit textconv")
    assert "git diff driver not configured" in cli(registry.root, "status").stdout
    assert cli(registry.root, "init", ".").returncode == 0
    value = git(registry.root, "config", "diff.adaptergit.textconv")
    assert "adaptergit_textconv()" in value and sys.executable in value
    git(registry.root, "config", "diff.adaptergit.textconv", "my-own-converter")
    assert cli(registry.root, "init", ".").returncode == 0
    assert git(registry.root, "config", "diff.adaptergit.textconv").strip() == "my-own-converter"


def test_rejected_push_says_why_and_what_to_do(registry: Repo, tmp_path: Path) -> None:
    """git writes a rejected ref to stdout under --porcelain: the error still names it."""
    root = registry.root
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(root, "remote", "add", "origin", str(origin))
    registry.remote_add("store", str(tmp_path / "store"), default=True)
    assert cli(root, "push").returncode == 0
    git(tmp_path, "clone", "-q", str(origin), "mate")
    (tmp_path / "mate/x.txt").write_text("x\n")
    git(tmp_path / "mate", "add", "x.txt")
    git(tmp_path / "mate", "commit", "-qm", "x", "--no-verify")
    git(tmp_path / "mate", "push", "-q", "--no-verify", "origin", "HEAD")
    (root / "y.txt").write_text("y\n")
    git(root, "add", "y.txt")
    git(root, "commit", "-qm", "y")
    r = cli(root, "push")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1
    assert "[rejected]" in r.stderr and "(fetch first)" in r.stderr and "`git pull`" in r.stderr


def test_the_cli_skips_teardown_only_when_exit_has_nothing_to_do() -> None:
    """`run` ends with os._exit only with no atexit callbacks and no thread that exit waits for.

    What the interpreter's environment registered (a ``sitecustomize``, a coverage hook) is
    cleared first, so that only the function's own logic is tried; what the CLI may import is
    held by tests/test_imports.py."""
    script = (
        "import atexit, threading, time\n"
        "from adaptergit import cli\n"
        "atexit._clear()\n"
        "print(cli._nothing_left_at_exit())\n"
        "t = threading.Thread(target=time.sleep, args=(0.5,)); t.start()\n"
        "print(cli._nothing_left_at_exit()); t.join()\n"
        "d = threading.Thread(target=time.sleep, args=(0.5,), daemon=True); d.start()\n"
        "print(cli._nothing_left_at_exit()); d.join()\n"  # exit does not wait for a daemon
        "import concurrent.futures as cf\n"
        "cf.ThreadPoolExecutor(1).submit(time.sleep, 0).result()\n"  # exit joins its workers
        "print(cli._nothing_left_at_exit())\n"
        "atexit.register(time.sleep, 0)\n"  # as logging and DVC register their shutdown
        "print(cli._nothing_left_at_exit())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    seen = out.stdout.split()
    assert seen == ["True", "False", "True", "False", "False"], out.stderr
