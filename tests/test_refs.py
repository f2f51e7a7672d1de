"""Names, versions and references: parsing rules and round trips."""

from __future__ import annotations

import contextlib
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptergit import tags
from adaptergit.errors import InvalidName, InvalidRef, InvalidVersion
from adaptergit.refs import Ref, SemVer, validate_name
from adaptergit.tags import parse_version_tag

names = st.from_regex(r"\A[a-z0-9]([a-z0-9_-]{0,20}[a-z0-9])?\Z")
versions = st.builds(SemVer, st.integers(0, 999), st.integers(0, 999), st.integers(0, 999))


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../../x", "path separators"),
        ("a/b", "path separators"),
        (".hidden", "path separators"),
        ("a.b", "GTO"),
        ("Upper", "lower-case"),
        ("-lead", "start and end"),
        ("trail_", "start and end"),
        ("sp ace", "not allowed"),
        ("a@b", "not allowed"),
        ("", "empty"),
        ("x" * 101, "longer than"),
    ],
)
def test_bad_names(name: str, reason: str) -> None:
    with pytest.raises(InvalidName, match=reason):
        validate_name(name)


@given(names)
def test_valid_names_are_valid_git_refs_and_gto_names(name: str) -> None:
    validate_name(name)
    assert parse_version_tag(f"{name}@v1.0.0") == (name, SemVer(1, 0, 0))


@settings(max_examples=25, deadline=None)
@given(names)
def test_names_pass_git_check_ref_format(name: str) -> None:
    rc = subprocess.run(["git", "check-ref-format", f"refs/tags/{name}@v1.2.3"]).returncode
    assert rc == 0


@given(versions)
def test_semver_round_trip(v: SemVer) -> None:
    assert SemVer.parse(str(v)) == v


@given(versions, versions)
def test_semver_order_matches_tuples(a: SemVer, b: SemVer) -> None:
    assert (a < b) == ((a.major, a.minor, a.patch) < (b.major, b.minor, b.patch))


def test_prerelease_sorts_before_release() -> None:
    assert SemVer.parse("v1.0.0-rc.1") < SemVer.parse("v1.0.0")
    assert SemVer.parse("v1.0.0-rc.2") < SemVer.parse("v1.0.0-rc.10")


def test_bumps() -> None:
    v = SemVer.parse("v1.2.3")
    assert str(v.bump("patch")) == "v1.2.4"
    assert str(v.bump("minor")) == "v1.3.0"
    assert str(v.bump("major")) == "v2.0.0"


@pytest.mark.parametrize("text", ["1.2.3", "v1.2", "v01.2.3", "latest", ""])
def test_bad_versions(text: str) -> None:
    with pytest.raises(InvalidVersion):
        SemVer.parse(text)


@given(names, versions)
def test_ref_round_trip(name: str, v: SemVer) -> None:
    for text in (name, f"{name}@{v}", f"{name}#prod", f"{name}@HEAD~2"):
        assert str(Ref.parse(text)) == text


def test_ref_kinds() -> None:
    assert Ref.parse("x").is_latest and Ref.parse("x@latest").is_latest
    assert Ref.parse("x@v1.2.0").version == SemVer(1, 2, 0)
    assert Ref.parse("x@abc123").revision == "abc123"
    assert Ref.parse("x@main^").revision == "main^"
    assert Ref.parse("x#prod").stage == "prod"


@pytest.mark.parametrize("text", ["", "../x@v1.0.0", "x@", "X", "x#Prod", "x@a b"])
def test_bad_refs(text: str) -> None:
    with pytest.raises(InvalidRef):
        Ref.parse(text)


@given(st.text(max_size=30))
def test_ref_parse_never_crashes(text: str) -> None:
    with contextlib.suppress(InvalidRef):
        Ref.parse(text)


def test_stage_tags() -> None:
    assert tags.parse("m#prod#3") == tags.ParsedTag(
        action=tags.ASSIGN, name="m", stage="prod", counter=3
    )
    assert tags.parse("m#prod!#4") == tags.ParsedTag(
        action=tags.UNASSIGN, name="m", stage="prod", counter=4
    )
    assert tags.parse("m#prod") == tags.ParsedTag(action=tags.ASSIGN, name="m", stage="prod")
    assert tags.parse("m@v1.0.0") == tags.ParsedTag(
        action=tags.REGISTER, name="m", version=SemVer(1, 0, 0)
    )
    assert tags.parse("m@v1.0.0!#5") == tags.ParsedTag(
        action=tags.DEREGISTER, name="m", version=SemVer(1, 0, 0), counter=5
    )
    assert tags.parse("m@deprecated#6") == tags.ParsedTag(
        action=tags.DEPRECATE, name="m", counter=6
    )
    assert tags.parse("m#prod#x") is None
    assert tags.stage_tag("m", "prod", 3) == "m#prod#3"
    assert tags.stage_tag("m", "prod", 4, unassign=True) == "m#prod!#4"
