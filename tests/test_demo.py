"""`adaptergit demo`, the README's first command, run for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adaptergit import Repo
from adaptergit.demo import DemoResult, run_demo
from adaptergit.errors import InvalidInput


@pytest.mark.slow
def test_demo_runs_the_whole_workflow(tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(tmp_path / "demo", echo=lines.append)
    assert DemoResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    text = "\n".join(lines)
    commands = [line[2:] for line in lines if line.startswith("$ ")]
    assert [c.split()[1] for c in commands if c.startswith("adaptergit")] == [
        "init",
        "push",
        "pull",
        "checkout",
        "log",
    ]
    assert "cd registry && adaptergit log" in commands
    assert "adaptergit init registry --remote" in text  # a remote from the first commit
    # every step can be typed as shown: the scripts are there, the export where it says
    root = result.directory
    for command in commands:
        if command.startswith("python ") and command.split()[1].endswith(".py"):
            assert (root / command.split()[1]).is_file()
    assert "--to ../hub-export" in text and (root / "laptop/../hub-export").is_dir()
    assert not (root / "registry/trainer-output").exists()  # training output outside
    assert result.versions == ("demo-bot@v0.0.1", "demo-bot@v0.0.2", "demo-bot@v0.0.3")
    assert result.max_abs_diff == 0.0 and "outputs identical" in text
    registry = Repo(root / "registry")
    versions = registry.log("demo-bot")
    assert all("eval_loss" in v.metrics for v in versions)
    best = min(versions, key=lambda v: v.metrics["eval_loss"])
    assert result.best == best.ref and registry.resolve("demo-bot#best").ref == best.ref
    # the clone got everything through git and the DVC remote
    laptop = Repo(root / "laptop")
    assert [v.ref for v in laptop.log("demo-bot")] == [v.ref for v in versions]
    assert laptop.resolve("demo-bot#best").ref == best.ref
    manifest = json.loads((root / "laptop" / "adapters" / "demo-bot" / "manifest.json").read_text())
    assert manifest["version"] == "v0.0.1"
    assert (root / "laptop" / "adapters" / "demo-bot" / "adapter_model.safetensors").is_file()
    assert (root / "hub-export" / "README.md").read_text().startswith("---\nlibrary_name: peft\n")
    # every table shows the stage
    assert sum("#best" in line for line in lines if line.startswith("20")) == 2
    registry.close()
    laptop.close()


@pytest.mark.slow
def test_demo_command_in_a_fresh_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "adaptergit", "demo", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "$ adaptergit push" in proc.stdout and "done in" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_demo_refuses_a_folder_in_use(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine\n")
    with pytest.raises(InvalidInput, match="not an empty folder"):
        run_demo(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
