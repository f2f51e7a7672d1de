"""Stages: GTO's NAME#STAGE#N tags, written by adaptergit and by gto, read the same way by both."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptergit import Repo
from adaptergit.cli import cli
from adaptergit.errors import InvalidRef, StageAlreadyAssigned, StageNotAssigned, UnknownVersion
from adaptergit.gitrepo import TagInfo
from adaptergit.index import current_stages
from adaptergit.ops.stages import StageEvent

from .conftest import MakeAdapter


def tool(name: str) -> str:
    """The console script installed next to this Python (gto, dvc), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


def gto(cwd: Path, *args: str) -> str:
    proc = subprocess.run([tool("gto"), *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def tag_message(cwd: Path, tag: str) -> str:
    return subprocess.run(
        ["git", "tag", "-l", "--format=%(contents)", tag], cwd=cwd, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def two_versions(registry: Repo, make_adapter: MakeAdapter) -> Repo:
    registry.commit(make_adapter(seed=1), name="bot", metrics={"eval_loss": 2.0})
    registry.commit(make_adapter(seed=2), name="bot", metrics={"eval_loss": 1.0})
    return registry


def gto_stages(root: Path, name: str) -> dict[str, str]:
    """Stage -> version as `gto show NAME --json` reports it."""
    data = json.loads(gto(root, "show", name, "--json"))
    found: dict[str, str] = {}
    for version in data:
        for stage in version.get("stages", []):
            found.setdefault(stage["stage"], version["version"])
    return found


def test_assign_writes_gto_tags_that_gto_reads(two_versions: Repo) -> None:
    repo = two_versions
    event = repo.assign("bot@v0.0.1", "prod")
    assert event == StageEvent.from_dict(event.to_dict())
    assert (event.tag, event.version, event.action) == ("bot#prod#1", "v0.0.1", "assign")
    assert tag_message(repo.root, "bot#prod#1") == (
        "Assigning stage prod to artifact bot version v0.0.1"
    )
    # Moved in the same second: adaptergit dates its tag after the last, so gto agrees.
    repo.assign("bot@v0.0.2", "prod")
    assert repo.resolve("bot#prod").version == "v0.0.2"
    assert gto_stages(repo.root, "bot") == {"prod": "v0.0.2"}
    assert gto(repo.root, "show").count("v0.0.2") == 2  # latest and #prod
    log = {v.version: v.stages for v in repo.log("bot")}
    assert log == {"v0.0.2": ("prod",), "v0.0.1": ()}


def test_unassign_takes_the_stage_away_everywhere(two_versions: Repo) -> None:
    repo = two_versions
    repo.assign("bot@v0.0.1", "prod")
    repo.assign("bot@v0.0.2", "prod")
    events = repo.unassign("bot", "prod")
    # GTO would hand #prod back to v0.0.1 if only v0.0.2 were unassigned: both are.
    assert sorted(e.version for e in events) == ["v0.0.1", "v0.0.2"]
    assert all(e.tag.startswith("bot#prod!#") for e in events)
    assert tag_message(repo.root, events[0].tag).startswith(
        "Unassigning stage 'prod' to artifact 'bot'"
    )
    assert all(v.stages == () for v in repo.log("bot"))
    assert gto_stages(repo.root, "bot") == {}
    with pytest.raises(UnknownVersion, match="#prod"):
        repo.resolve("bot#prod")
    with pytest.raises(StageNotAssigned, match="no version of bot is in stage 'prod'"):
        repo.unassign("bot", "prod")


def test_stages_assigned_with_gto_are_read_the_same_way(two_versions: Repo) -> None:
    repo = two_versions
    gto(repo.root, "assign", "bot", "--version", "v0.0.1", "--stage", "staging")
    assert repo.resolve("bot#staging").version == "v0.0.1"
    assert {v.version: v.stages for v in repo.log("bot")}["v0.0.1"] == ("staging",)
    # adaptergit continues GTO's counter
    event = repo.assign("bot@v0.0.2", "prod")
    assert event.tag == "bot#prod#2"
    gto(repo.root, "deprecate", "bot", "v0.0.1", "staging")  # gto's unassign
    assert {v.version: v.stages for v in repo.log("bot")} == {"v0.0.2": ("prod",), "v0.0.1": ()}


def test_assign_refuses_what_gto_refuses(two_versions: Repo) -> None:
    repo = two_versions
    repo.assign("bot", "prod")
    with pytest.raises(StageAlreadyAssigned, match="already in stage 'prod'"):
        repo.assign("bot@v0.0.2", "prod")
    with pytest.raises(InvalidRef):
        repo.assign("bot", "Prod!")
    with pytest.raises(UnknownVersion):
        repo.assign("bot@v9.9.9", "prod")
    # NAME#STAGE is a reference too: copy a stage to another
    assert repo.assign("bot#prod", "canary").version == "v0.0.2"


def test_cli_assign_unassign_and_log(two_versions: Repo) -> None:
    root = str(two_versions.root)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["-C", root, "assign", "bot@v0.0.1", "--stage", "prod"], catch_exceptions=False
    )
    assert result.output.strip() == "assigned #prod to bot@v0.0.1 (tag bot#prod#1)"
    log = runner.invoke(cli, ["-C", root, "log"], catch_exceptions=False).output
    line = next(ln for ln in log.splitlines() if "v0.0.1" in ln)
    assert "#prod" in line
    shown = runner.invoke(cli, ["-C", root, "show", "bot#prod", "--json"], catch_exceptions=False)
    assert json.loads(shown.output)["version"] == "v0.0.1"
    result = runner.invoke(
        cli, ["-C", root, "unassign", "bot", "--stage", "prod"], catch_exceptions=False
    )
    assert result.output.strip() == "unassigned #prod from bot@v0.0.1 (tag bot#prod!#2)"


@pytest.mark.parametrize("command", ["assign", "unassign", "verify", "demo"])
def test_new_commands_have_help(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    summary = result.output.split("\n\n")[1].strip()
    assert len(summary) > 20, summary


# --- GTO's rules, on made-up tags -------------------------------------------------------------


def tag(name: str, commit: str, created: int) -> TagInfo:
    return TagInfo(name=name, commit=commit, annotated=True, created=created)


def test_current_stages_follows_gto() -> None:
    a, b = "a" * 40, "b" * 40
    tags = [tag("m#prod#1", a, 10), tag("m#prod#2", b, 20)]
    assert current_stages(tags) == {("m", b): ["prod"]}
    # unassigning the newer one hands the stage back to the older, still active, assignment
    assert current_stages([*tags, tag("m#prod!#3", b, 30)]) == {("m", a): ["prod"]}
    # the same second: the counter decides
    assert current_stages([tag("m#prod#2", b, 5), tag("m#prod#1", a, 5)]) == {("m", b): ["prod"]}
    # lightweight tags and other artifacts' tags are not assignments of m
    light = TagInfo(name="m#dev#4", commit=a, annotated=False, created=40)
    assert current_stages([light, tag("other#dev#1", a, 1)]) == {("other", a): ["dev"]}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.sampled_from(["prod", "dev"]), st.booleans()),
        min_size=1,
        max_size=12,
    )
)
def test_current_stages_matches_replaying_the_events(events: list[tuple[str, str, bool]]) -> None:
    """Replaying assign/unassign events in order gives the same holder as the tag reader."""
    tags = []
    active: dict[tuple[str, str], int] = {}  # (stage, commit) -> time of its live assignment
    for i, (c, stage, cancel) in enumerate(events, start=1):
        commit = c * 40
        tags.append(tag(f"m#{stage}{'!' if cancel else ''}#{i}", commit, 100 + i))
        if cancel:
            active.pop((stage, commit), None)
        else:
            active[(stage, commit)] = i
    expected: dict[tuple[str, str], list[str]] = {}
    for stage in ("dev", "prod"):
        live = [(t, commit) for (s, commit), t in active.items() if s == stage]
        if live:
            expected.setdefault(("m", max(live)[1]), []).append(stage)
    assert current_stages(tags) == expected
