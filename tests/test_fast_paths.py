"""The shortcuts taken for speed give exactly what the long ways do, and commit stays lean."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Generator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptergit import Repo, strictjson
from adaptergit.errors import InvalidManifest
from adaptergit.manifest import TensorRecord

from .conftest import MakeAdapter


def test_iter_blobs_yields_what_read_blobs_returns(
    registry: Repo, make_adapter: MakeAdapter
) -> None:
    registry.commit(make_adapter(seed=1), name="a")
    registry.commit(make_adapter(seed=2), name="a")
    head = registry.git.head()
    names = [
        f"{head}:adapters/a/manifest.json",
        f"{head}:adapters/a/missing.json",
        f"{head}:adapters/a",  # a tree: None
        "a@v0.0.1:adapters/a/manifest.json",
        f"{head}:dvc.yaml",
        "no-such-rev:x",
    ] * 50
    assert list(registry.git.iter_blobs(names)) == registry.git.read_blobs(names)
    assert list(registry.git.iter_blobs([])) == []


def test_iter_blobs_stops_git_when_the_reader_stops(
    registry: Repo, make_adapter: MakeAdapter
) -> None:
    registry.commit(make_adapter(), name="a")
    names = [f"{registry.git.head()}:adapters/a/manifest.json"] * 5000
    stream = registry.git.iter_blobs(names)
    assert next(stream) is not None
    assert isinstance(stream, Generator)
    stream.close()  # the git process is ended and waited for; nothing hangs


RECORD = {"dtype": "F32", "shape": [4, 8], "blake3": "ab" * 32}


@settings(max_examples=100, deadline=None)
@given(
    entry=st.one_of(
        st.just(RECORD),
        st.dictionaries(
            st.sampled_from(["dtype", "shape", "blake3", "other"]),
            st.one_of(
                st.sampled_from(["F32", "BF16", "Q4", "ab" * 32, "AB" * 32, "ab" * 31]),
                st.lists(st.one_of(st.integers(-2, 5), st.booleans(), st.floats(0, 2)), max_size=3),
                st.none(),
                st.booleans(),
            ),
        ),
    ),
    name=st.sampled_from(["w", "", "layers.0.lora_A.weight"]),
)
def test_tensor_record_fast_path_agrees_with_the_checks(entry: object, name: str) -> None:
    """The one-expression acceptance of a well-formed entry accepts exactly what the field by
    field checks accept, and builds the same record."""
    from adaptergit import manifest

    fast: object
    try:
        fast = TensorRecord.from_dict(name, entry)
    except InvalidManifest as exc:
        fast = type(exc)
    # The slow path alone: an entry the fast path cannot take (a copy with an extra key)
    # goes through the checks; they must agree on `entry`.
    slow: object
    try:
        slow = manifest.TensorRecord.from_dict(
            name, _SlowDict(entry) if isinstance(entry, dict) else entry
        )
    except InvalidManifest as exc:
        slow = type(exc)
    assert fast == slow


@settings(max_examples=100, deadline=None)
@given(
    entries=st.dictionaries(
        st.sampled_from(["a", "b.lora_A.weight", "c", ""]),
        st.one_of(
            st.just(RECORD),
            st.just({**RECORD, "shape": [True, 2]}),
            st.just({**RECORD, "blake3": "AB" * 32}),
            st.just({**RECORD, "blake3": "ab" * 31 + "zz"}),
            st.just({**RECORD, "dtype": "Q4"}),
            st.just({**RECORD, "extra": 1}),
            st.just({"dtype": "F32", "shape": [1]}),
            st.just([1, 2]),
        ),
        max_size=4,
    )
)
def test_manifest_tensors_checked_at_once_as_one_by_one(entries: dict[str, object]) -> None:
    """All entries checked in one pass give the records (or the error) the entry-by-entry
    checks give."""
    from adaptergit.manifest import _well_formed_tensors

    def one_by_one() -> object:
        try:
            return tuple(
                TensorRecord.from_dict(k, v, "m", "tensors.") for k, v in sorted(entries.items())
            )
        except InvalidManifest as exc:
            return str(exc)

    fast = _well_formed_tensors(entries)
    slow = one_by_one()
    if fast is not None:
        assert fast == slow
    elif entries:
        assert isinstance(slow, str)


class _SlowDict(dict):  # type: ignore[type-arg]
    """A dict subclass: `type(data) is dict` fails, so from_dict takes the checking path."""


def test_duplicate_keys_are_still_named() -> None:
    with pytest.raises(strictjson.JsonError) as caught:
        strictjson.loads(b'{"a": 1, "b": {"c": 1, "c": 2}}', "x")
    assert caught.value.key == "c"
    assert strictjson.loads(b'{"a": {"b": [1, {"c": 2}]}}', "x") == {"a": {"b": [1, {"c": 2}]}}


def test_tool_versions_are_importlib_metadatas() -> None:
    from importlib import metadata

    from adaptergit.ops.commit import _tool_versions

    tools = _tool_versions(converted=True)
    for dist in ("adaptergit", "peft", "safetensors", "transformers", "torch"):
        assert tools[dist] == metadata.version(dist)
    assert list(tools)[:2] == ["adaptergit", "python"]


_COMMIT_PROBE = """
import json, sys
from adaptergit import Repo
with Repo(sys.argv[1]) as repo:
    repo.commit(sys.argv[2], name="bot")
print(json.dumps(sorted(sys.modules)))
"""


def test_a_folder_commit_imports_only_what_it_uses(
    registry: Repo, make_adapter: MakeAdapter
) -> None:
    """No numpy (the NaN check reads bytes), no importlib.metadata, no DVC, GitPython, torch,
    safetensors or thread pool."""
    src = make_adapter()
    out = subprocess.run(
        [sys.executable, "-c", _COMMIT_PROBE, str(registry.root), str(src)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    loaded = set(json.loads(out))
    unwanted = {
        "numpy",
        "importlib.metadata",
        "dvc",
        "git",
        "torch",
        "concurrent.futures",
        "safetensors",
    }
    assert not unwanted & loaded, sorted(unwanted & loaded)
    assert registry.resolve("bot").version == "v0.0.1"
    assert Path(registry.root / "adapters" / "bot" / "adapter_model.safetensors").is_file()


def test_status_remembers_which_manifest_the_weights_match(
    registry: Repo, make_adapter: MakeAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clean adapter whose weights file is unchanged since it was last matched is known clean
    without reading its manifest; a changed file is compared again."""
    import os

    from adaptergit.ops import status as status_mod

    registry.commit(make_adapter(), name="bot")
    weights = registry.root / "adapters" / "bot" / "adapter_model.safetensors"
    past = 1_600_000_000_000_000_000
    os.utime(weights, ns=(past, past))  # out of the racy-mtime window: cacheable
    assert registry.status().dirty == ()

    def unreadable(path: Path) -> None:
        raise AssertionError(f"status parsed {path}")

    monkeypatch.setattr(status_mod, "_manifest_file", unreadable)
    assert registry.status().dirty == ()
    monkeypatch.undo()

    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(past + 10**9, past + 10**9))
    (state,) = registry.status().dirty
    assert state.state == "modified" and "adapter_model.safetensors" in state.changed


def test_hash_files_takes_thousands_of_paths(tmp_path: Path) -> None:
    """Paths go to git on stdin: no command-line limit."""
    from adaptergit.gitrepo import GitRepo

    git = GitRepo.init(tmp_path / "repo")
    folder = tmp_path / "repo" / ("d" * 100)
    folder.mkdir()
    paths = []
    for i in range(6000):
        path = folder / f"{'f' * 200}{i}"
        path.write_bytes(b"%d\n" % (i % 7))
        paths.append(path)
    ids = git.hash_files(paths)
    assert len(ids) == 6000
    assert ids[:7] == [git.hash_files([p])[0] for p in paths[:7]]
    assert ids[7] == ids[0]


def test_a_commit_asks_git_for_head_and_identity_once(
    registry: Repo, make_adapter: MakeAdapter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HEAD read under the lock is the new commit's parent; `git var` is asked once, and the
    tag's date is the time it is written unless GIT_COMMITTER_DATE fixes it."""
    registry.commit(make_adapter(seed=1), name="m")
    log = tmp_path / "trace"
    fresh = Repo(registry.root)
    monkeypatch.setenv("GIT_TRACE", str(log))
    fresh.commit(make_adapter(seed=2), name="m")
    monkeypatch.delenv("GIT_TRACE")
    commands = [
        line.split("git ", 1)[1] for line in log.read_text().splitlines() if "built-in: git" in line
    ]
    assert sum(c.startswith("var ") for c in commands) == 1
    assert sum(c.startswith("rev-parse") and "HEAD^{commit}" in c for c in commands) == 1
    tagged = registry.resolve("m@v0.0.2")  # `created` is the tag's date, read by the index
    assert abs(tagged.created - time.time()) < 60 and tagged.commit

    monkeypatch.setenv("GIT_COMMITTER_DATE", "1700000000 +0200")
    fixed = Repo(registry.root)
    assert fixed.git.tagger().endswith(" 1700000000 +0200")
    assert fixed.git.tagger(when=1600000000).endswith(" 1600000000 +0200")
