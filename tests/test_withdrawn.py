"""GTO's whole vocabulary: deregistered versions and deprecated artifacts, honoured by `log`,
latest, stages and references exactly as ``gto show`` honours them."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from adaptergit import Repo
from adaptergit.cli import cli
from adaptergit.errors import AdapterGitWarning, AdapterWithdrawn
from adaptergit.gitrepo import TagInfo
from adaptergit.index import Index

from .conftest import MakeAdapter
from .test_stages import gto


def tags(*specs: tuple[str, str, int]) -> list[TagInfo]:
    return [TagInfo(name=n, commit=c, annotated=True, created=t) for n, c, t in specs]


def test_a_deregistered_version_is_not_latest_and_holds_no_stage() -> None:
    index = Index(
        tags(
            ("bot@v0.0.1", "c1", 10),
            ("bot#prod#1", "c1", 11),
            ("bot@v0.0.2", "c2", 12),
            ("bot#prod#2", "c2", 13),
            ("bot@v0.0.2!#3", "c2", 14),
        )
    )
    v1, v2 = index.registrations("bot")
    assert index.latest("bot") == v2  # new versions still follow the highest number
    assert index.latest_active("bot") == v1
    assert index.active("bot") == [v1]
    withdrawal = index.withdrawal(v2)
    assert withdrawal is not None and withdrawal.kind == "deregistered"
    assert withdrawal.tag == "bot@v0.0.2!#3"
    assert index.stage_commit("bot", "prod") == "c1"  # as `gto show bot#prod`


def test_a_deregistration_in_the_same_second_still_counts() -> None:
    # GTO's own tags carry no counter when written by `gto deprecate NAME V`
    index = Index(tags(("bot@v0.0.1", "c1", 10), ("bot@v0.0.1!", "c1", 10)))
    assert index.active("bot") == []


def test_a_deprecated_artifact_has_no_active_versions_until_registered_again() -> None:
    before = tags(
        ("bot@v0.0.1", "c1", 10), ("bot#prod#1", "c1", 11), ("bot@deprecated#2", "c1", 12)
    )
    index = Index(before)
    deprecation = index.deprecation("bot")
    assert deprecation is not None and deprecation.kind == "deprecated"
    assert index.active("bot") == [] and index.stage_commit("bot", "prod") is None
    # GTO: a later event (here a registration) brings the artifact back, older versions too
    index = Index([*before, *tags(("bot@v0.0.2", "c2", 13))])
    assert index.deprecation("bot") is None
    assert [r.label for r in index.active("bot")] == ["v0.0.1", "v0.0.2"]


def test_lightweight_withdrawal_tags_do_not_count() -> None:
    specs = [("bot@v0.0.1", "c1", 10)]
    light = TagInfo(name="bot@v0.0.1!#2", commit="c1", annotated=False, created=11)
    assert Index([*tags(*specs), light]).active("bot") != []


@pytest.fixture
def deregistered(registry: Repo, make_adapter: MakeAdapter) -> Repo:
    """bot v0.0.1 (prod), v0.0.2 (prod, then deregistered with `gto deprecate bot v0.0.2`)."""
    registry.commit(make_adapter(seed=1), name="bot", metrics={"eval_loss": 2.0})
    registry.assign("bot@v0.0.1", "prod")
    registry.commit(make_adapter(seed=2), name="bot", metrics={"eval_loss": 1.0})
    registry.assign("bot@v0.0.2", "prod")
    time.sleep(1)  # GTO orders events by the second
    gto(registry.root, "deprecate", "bot", "v0.0.2", "-m", "withdrawn: bad outputs")
    registry.registry.refresh()
    return registry


def test_latest_stages_log_and_show_agree_with_gto(deregistered: Repo) -> None:
    root = deregistered.root
    assert gto(root, "show", "bot@greatest", "--ref").split()[-1] == "bot@v0.0.1"
    assert gto(root, "show", "bot#prod", "--ref").split()[-1] == "bot@v0.0.1"
    assert deregistered.resolve("bot").version == "v0.0.1"
    assert deregistered.resolve("bot@latest").version == "v0.0.1"
    assert deregistered.resolve("bot#prod").version == "v0.0.1"
    assert [v.version for v in deregistered.log("bot")] == ["v0.0.1"]
    assert {v.version for v in deregistered.log("bot", withdrawn=True)} == {"v0.0.1", "v0.0.2"}
    # named explicitly, the withdrawn version is still readable, with a warning
    with pytest.warns(AdapterGitWarning, match="deregistered"):
        assert deregistered.resolve("bot@v0.0.2").version == "v0.0.2"
    [(reg, withdrawal)] = deregistered.withdrawn("bot")
    assert reg.tag == "bot@v0.0.2" and withdrawal.tag == "bot@v0.0.2!"


def test_cli_log_names_what_was_withdrawn(deregistered: Repo) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli, ["-C", str(deregistered.root), "log", "bot"], catch_exceptions=False
    )
    assert result.exit_code == 0
    rows = [line for line in result.output.splitlines() if "v0.0.2" in line]
    assert rows == ["withdrawn with GTO, not listed: bot@v0.0.2 (deregistered)"]
    result = runner.invoke(cli, ["-C", str(deregistered.root), "log", "--json"])
    data = json.loads(result.output)
    assert [v["version"] for v in data["versions"]] == ["v0.0.1"]
    assert data["withdrawn"][0]["kind"] == "deregistered"


def test_a_deprecated_adapter_has_no_latest(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    registry.commit(make_adapter(seed=1), name="bot")
    time.sleep(1)
    gto(registry.root, "deprecate", "bot", "-m", "retired")
    registry.registry.refresh()
    assert "bot" not in gto(registry.root, "show")
    with pytest.raises(AdapterWithdrawn, match="deprecated"):
        registry.resolve("bot")
    assert registry.log() == []
    proc = subprocess.run(
        ["adaptergit", "-C", str(registry.root), "show", "bot"], capture_output=True, text=True
    )
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1
    assert "deprecated" in proc.stderr
