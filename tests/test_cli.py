"""The command line: help, output, bad input refused with one line and no change, start-up cost."""

from __future__ import annotations

import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from adaptergit.cli import cli, main

from .conftest import MakeAdapter

COMMANDS = ["init", "commit", "log", "show", "checkout"]


def _all_commands() -> list[list[str]]:
    """Every visible command, and every subcommand of a group (remote add, hooks status, ...)."""
    import click

    found = []
    for name, command in sorted(cli.commands.items()):
        if command.hidden:
            continue
        found.append([name])
        if isinstance(command, click.Group):
            found += [[name, sub] for sub, c in sorted(command.commands.items()) if not c.hidden]
    return found


def run(*args: str, cwd: Path | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "adaptergit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        **kwargs,
    )


def snapshot(root: Path) -> dict[str, object]:
    """Everything a failed command must leave as it was."""

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=root, capture_output=True, text=True).stdout

    files = {}
    adapters = root / "adapters"
    if adapters.exists():
        for p in sorted(adapters.rglob("*")):
            if p.is_file():
                files[str(p.relative_to(root))] = p.read_bytes()
    cache = root / ".dvc" / "cache"
    return {
        "status": git("status", "--porcelain", "--ignored", "--untracked-files=all"),
        "tags": git("tag", "-l"),
        "head": git("rev-parse", "HEAD"),
        "files": files,
        "cache": sorted(str(p) for p in cache.rglob("*") if p.is_file()) if cache.exists() else [],
    }


@pytest.mark.parametrize("command", _all_commands(), ids=" ".join)
def test_help_describes_each_command(command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "Usage: " in result.output
    summary = result.output.split("\n\n")[1].strip()
    assert len(summary) > 20, summary


def test_top_level_help_lists_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"], catch_exceptions=False)
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


def test_commit_log_show_checkout_via_cli(tmp_path: Path, make_adapter: MakeAdapter) -> None:
    reg = tmp_path / "reg"
    assert main(["init", str(reg)]) == 0
    src = make_adapter(seed=1)
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"eval": {"loss": 1.25}}))
    r = run(
        "-C",
        str(reg),
        "commit",
        str(src),
        "--name",
        "demo",
        "-m",
        "first try",
        "--metrics",
        str(metrics),
        "--metric",
        "accuracy=0.5",
    )
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert line.startswith("demo@v0.0.1 ") and "base unknown" in line and "KB" in line
    r = run(
        "-C", str(reg), "commit", str(make_adapter(seed=2)), "--name", "demo", "--bump", "minor"
    )
    assert r.returncode == 0, r.stderr

    r = run("-C", str(reg), "log", env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["DATE", "VERSION", "COMMIT"]
    assert "v0.1.0" in lines[1] and "v0.0.1" in lines[2]
    assert "eval.loss=1.25" in lines[2] and "first try" in lines[2]
    narrow = run("-C", str(reg), "log", env={**os.environ, "COLUMNS": "80"}).stdout.splitlines()
    assert all(len(x) <= 80 for x in narrow)
    assert "v0.0.1" in narrow[2] and "first" in narrow[2]

    r = run("-C", str(reg), "log", "demo", "--json")
    data = json.loads(r.stdout)
    assert [v["version"] for v in data["versions"]] == ["v0.1.0", "v0.0.1"]

    r = run("-C", str(reg), "show", "demo@v0.0.1")
    assert "first try" in r.stdout and "sha256" in r.stdout
    r = run("-C", str(reg), "show", "demo@v0.0.1", "--json")
    assert json.loads(r.stdout)["metrics"] == {"accuracy": 0.5, "eval": {"loss": 1.25}}

    r = run("-C", str(reg), "checkout", "demo@v0.0.1", "--to", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "adapter_model.safetensors").read_bytes() == (
        src / "adapter_model.safetensors"
    ).read_bytes()


def _corrupt_safetensors(src: Path) -> None:
    path = src / "adapter_model.safetensors"
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    key = next(k for k in header if k != "__metadata__")
    header[key]["data_offsets"][1] += 4  # offsets no longer match the shape
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


class Evil:
    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return (os.system, ("touch /tmp/adaptergit-pwned",))


def _malicious_pickle(src: Path) -> None:
    (src / "adapter_model.safetensors").unlink()
    with open(src / "adapter_model.bin", "wb") as f:
        pickle.dump({"x": Evil()}, f)


def _nan_weights(src: Path) -> None:
    path = src / "adapter_model.safetensors"
    data = bytearray(path.read_bytes())
    data[-4:] = struct.pack("<f", float("nan"))
    path.write_bytes(data)


def _bad_config(src: Path) -> None:
    (src / "adapter_config.json").write_text('["not", "an", "object"]')


def _no_peft_type(src: Path) -> None:
    config = json.loads((src / "adapter_config.json").read_text())
    del config["peft_type"]
    (src / "adapter_config.json").write_text(json.dumps(config))


def _zero_size_tensor(src: Path) -> None:
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(src / "adapter_model.safetensors"))
    name = next(iter(tensors))
    tensors[name] = tensors[name][:0]
    save_file(tensors, str(src / "adapter_model.safetensors"))


def _duplicate_header_keys(src: Path) -> None:
    path = src / "adapter_model.safetensors"
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8 : 8 + n].decode()
    first = header.index('"', 1)
    key = header[1 : header.index('"', first + 1) + 1]
    entry_start = header.index("{", 1)
    entry = header[entry_start : header.index("}", entry_start) + 1]
    raw = ("{" + f"{key}:{entry}," + header[1:]).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


@pytest.mark.parametrize(
    ("case", "args", "prepare", "message"),
    [
        (
            "corrupt safetensors",
            ["--name", "x"],
            _corrupt_safetensors,
            "not a valid safetensors file",
        ),
        ("malicious pickle", ["--name", "x"], _malicious_pickle, "refused to load"),
        ("nan weights", ["--name", "x"], _nan_weights, "NaN"),
        ("bad config", ["--name", "x"], _bad_config, "adapter_config.json"),
        ("no peft_type", ["--name", "x"], _no_peft_type, "peft_type"),
        ("zero-size tensor", ["--name", "x"], _zero_size_tensor, "zero"),
        ("duplicate header keys", ["--name", "x"], _duplicate_header_keys, "duplicate"),
        ("path name", ["--name", "../../x"], None, "invalid adapter name '../../x'"),
        ("upper name", ["--name", "Bad"], None, "lower-case"),
        ("dotted name", ["--name", "a.b"], None, "GTO"),
        (
            "metric not a number",
            ["--name", "x", "--metric", "loss=abc"],
            None,
            "must be a finite number",
        ),
        ("metric nan", ["--name", "x", "--metric", "loss=nan"], None, "must be a finite number"),
        ("bad version", ["--name", "x", "--version", "1.0"], None, "expected vMAJOR.MINOR.PATCH"),
        (
            "missing base model",
            ["--name", "x", "--base-model", "/no/such/dir"],
            None,
            "/no/such/dir",
        ),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    tmp_path: Path,
    make_adapter: MakeAdapter,
    case: str,
    args: list[str],
    prepare: Callable[[Path], None] | None,
    message: str,
) -> None:
    reg = tmp_path / "reg"
    assert main(["init", str(reg)]) == 0
    assert main(["-C", str(reg), "commit", str(make_adapter(seed=9)), "--name", "x"]) == 0
    src = make_adapter(seed=1)
    if prepare:
        prepare(src)
    before = snapshot(reg)
    r = run("-C", str(reg), "commit", str(src), *args)
    assert r.returncode != 0
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("adaptergit: error: ")
    assert message in err, err
    assert "Traceback" not in err
    assert snapshot(reg) == before
    assert not Path("/tmp/adaptergit-pwned").exists()


def test_metrics_file_with_string_value_is_refused(
    tmp_path: Path, make_adapter: MakeAdapter
) -> None:
    reg = tmp_path / "reg"
    main(["init", str(reg)])
    bad = tmp_path / "m.json"
    bad.write_text('{"loss": "low"}')
    before = snapshot(reg)
    r = run("-C", str(reg), "commit", str(make_adapter()), "--name", "x", "--metrics", str(bad))
    assert r.returncode == 2 and "metric 'loss'" in r.stderr and "'low'" in r.stderr
    assert snapshot(reg) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply", id="deep"),
        pytest.param("[1, 2]", "expected a JSON object of metrics", id="list"),
        pytest.param(b"\xff\xfe", "not UTF-8", id="not-utf8"),
        pytest.param(None, "cannot read the metrics file", id="missing"),
    ],
)
def test_bad_metrics_file_is_one_clean_line(
    tmp_path: Path, make_adapter: MakeAdapter, content: str | bytes | None, message: str
) -> None:
    reg = tmp_path / "reg"
    main(["init", str(reg)])
    bad = tmp_path / "m.json"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    elif content is not None:
        bad.write_text(content)
    before = snapshot(reg)
    r = run("-C", str(reg), "commit", str(make_adapter()), "--name", "x", "--metrics", str(bad))
    err = r.stderr.strip()
    assert r.returncode == 2, err
    assert len(err.splitlines()) == 1 and message in err, err
    assert "unexpected error" not in err and "finite number" not in err, err
    assert snapshot(reg) == before


def test_metric_without_equals_says_key_value(tmp_path: Path, make_adapter: MakeAdapter) -> None:
    reg = tmp_path / "reg"
    main(["init", str(reg)])
    r = run("-C", str(reg), "commit", str(make_adapter()), "--name", "x", "--metric", "acc")
    assert r.returncode == 2 and "expected KEY=VALUE" in r.stderr, r.stderr
    assert "finite number" not in r.stderr


def test_unknown_refs_list_what_exists(tmp_path: Path, make_adapter: MakeAdapter) -> None:
    reg = tmp_path / "reg"
    main(["init", str(reg)])
    main(["-C", str(reg), "commit", str(make_adapter()), "--name", "alpha"])
    r = run("-C", str(reg), "show", "beta")
    assert r.returncode == 4 and "adapters here: alpha" in r.stderr
    r = run("-C", str(reg), "checkout", "alpha@v3.0.0")
    assert r.returncode == 4 and "its versions: v0.0.1" in r.stderr
    r = run("-C", str(reg), "-v", "show", "beta")
    assert "Traceback" in r.stderr


def test_not_a_registry(tmp_path: Path) -> None:
    r = run("-C", str(tmp_path), "log")
    assert r.returncode == 1
    assert "adaptergit init" in r.stderr and "Traceback" not in r.stderr


def test_cli_import_and_log_load_no_heavy_modules(
    tmp_path: Path, make_adapter: MakeAdapter
) -> None:
    reg = tmp_path / "reg"
    main(["init", str(reg)])
    main(["-C", str(reg), "commit", str(make_adapter()), "--name", "x"])
    code = (
        "import sys\n"
        "from adaptergit.cli import main\n"
        "heavy = ('torch', 'peft', 'transformers', 'dvc', 'numpy', 'safetensors')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, ('import', loaded)\n"
        f"rc = main(['-C', {str(reg)!r}, 'log'])\n"
        "assert rc == 0\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, ('log', loaded)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_two_commits_at_once_get_distinct_versions(
    tmp_path: Path, make_adapter: MakeAdapter
) -> None:
    reg = tmp_path / "reg"
    main(["init", str(reg)])
    a, b = make_adapter(seed=1), make_adapter(seed=2)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adaptergit",
                "-C",
                str(reg),
                "commit",
                str(src),
                "--name",
                "race",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for src in (a, b)
    ]
    results = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    ok = [r for r in results if r[2] == 0]
    busy = [r for r in results if r[2] != 0]
    assert all("busy" in r[1] for r in busy), busy
    versions = subprocess.run(
        ["git", "tag", "-l", "race@*"], cwd=reg, capture_output=True, text=True
    ).stdout.split()
    assert len(versions) == len(ok) >= 1
    assert len(set(versions)) == len(versions)
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=reg, capture_output=True, text=True
    )
    assert status.stdout == ""


def test_busy_repository_fails_cleanly(tmp_path: Path, make_adapter: MakeAdapter) -> None:
    import fcntl

    reg = tmp_path / "reg"
    main(["init", str(reg)])
    lock = reg / ".git" / "adaptergit" / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("4242\n")
        f.flush()
        before = snapshot(reg)
        r = run(
            "-C",
            str(reg),
            "commit",
            str(make_adapter()),
            "--name",
            "x",
            env={**os.environ, "ADAPTERGIT_LOCK_TIMEOUT": "0.3"},
        )
    assert r.returncode == 75
    assert "repository is busy" in r.stderr and "pid 4242" in r.stderr
    assert snapshot(reg) == before


def test_failed_git_step_rolls_back(tmp_path: Path, make_adapter: MakeAdapter) -> None:
    """A failure after the files were written (git refuses the tag) restores the adapter folder."""
    reg = tmp_path / "reg"
    main(["init", str(reg)])
    main(["-C", str(reg), "commit", str(make_adapter(seed=1)), "--name", "x"])
    before = snapshot(reg)
    # A stale ref lock makes git's ref transaction fail, as a crash of another git would.
    (reg / ".git" / "refs" / "tags" / "x@v0.0.2.lock").write_text("")
    r = run("-C", str(reg), "commit", str(make_adapter(seed=2)), "--name", "x")
    (reg / ".git" / "refs" / "tags" / "x@v0.0.2.lock").unlink()
    assert r.returncode == 1 and r.stderr.startswith("adaptergit: error: git ")
    after = snapshot(reg)
    assert after["status"] == before["status"]
    assert after["tags"] == before["tags"] and after["head"] == before["head"]
    assert after["files"] == before["files"]


def test_write_failure_like_full_disk_rolls_back(tmp_path: Path, make_adapter: MakeAdapter) -> None:
    """Writes fail with EFBIG part-way (a file-size limit stands in for a full disk)."""
    reg = tmp_path / "reg"
    main(["init", str(reg)])
    main(["-C", str(reg), "commit", str(make_adapter(seed=1)), "--name", "x"])
    before = snapshot(reg)
    code = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "from adaptergit.cli import main\n"
        f"sys.exit(main(['-C', {str(reg)!r}, 'commit', {str(make_adapter(seed=2))!r}, '--name', 'x']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert snapshot(reg) == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_interrupted_commit_leaves_repository_as_it_was(
    tmp_path: Path, make_adapter: MakeAdapter, sig: signal.Signals
) -> None:
    """Stop a commit inside its write phase; the repository (after the next command) is unchanged."""
    reg = tmp_path / "reg"
    main(["init", str(reg)])
    main(["-C", str(reg), "commit", str(make_adapter(seed=1)), "--name", "x"])
    before = snapshot(reg)
    marker = tmp_path / "paused"
    # Pause the commit right after the new files are in place, just before git records them.
    code = (
        "import sys, time, pathlib\n"
        "from adaptergit import gitrepo\n"
        "orig = gitrepo.GitRepo.commit_paths\n"
        "def paused(self, *a, **k):\n"
        f"    pathlib.Path({str(marker)!r}).write_text('x')\n"
        "    time.sleep(60)\n"
        "    return orig(self, *a, **k)\n"
        "gitrepo.GitRepo.commit_paths = paused\n"
        "from adaptergit.cli import main\n"
        f"sys.exit(main(['-C', {str(reg)!r}, 'commit', {str(make_adapter(seed=2))!r}, '--name', 'x']))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), proc.stderr.read() if proc.stderr else ""
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    if sig == signal.SIGINT:
        assert "interrupted" in err and "Traceback" not in err
    # The next command recovers whatever a kill left behind.
    assert main(["-C", str(reg), "checkout", "x"]) == 0
    after = snapshot(reg)
    assert after == before
    assert not list((reg / ".git" / "adaptergit").glob("txn-*"))


def test_a_long_bad_metric_value_is_shortened_in_the_error(
    tmp_path: Path, make_adapter: MakeAdapter
) -> None:
    reg = tmp_path / "reg"
    main(["init", str(reg)])
    value = "9" * 2_000 + "x"
    r = run(
        "-C", str(reg), "commit", str(make_adapter()), "--name", "x", "--metric", f"acc={value}"
    )
    err = r.stderr.strip()
    assert r.returncode == 2 and "must be a finite number" in err, err
    assert len(err.splitlines()) == 1 and len(err) < 200 and "2003 characters" in err, err
