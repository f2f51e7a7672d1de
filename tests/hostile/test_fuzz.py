"""Hypothesis: every parser of registry data fails only with a clean adaptergit error.

Manifests, ``.dvc`` pointers, adapter configs, ``.dvc/config``, ``.adaptergit.toml``, ``dvc.yaml``
and tag messages all arrive with ``git clone``; whatever they hold, the parsers either accept it
or raise an `AdapterGitError` (one line for the user), never anything else.
"""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptergit import Repo, registry_yaml, strictjson
from adaptergit.adapter import load_adapter_config
from adaptergit.config import RepoConfig
from adaptergit.dvcrepo import Pointer, parse_config
from adaptergit.errors import AdapterGitError
from adaptergit.manifest import Manifest
from adaptergit.text import printable

from .conftest import write_adapter

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

VALID_MANIFEST: dict[str, Any] = {
    "schema_version": 1,
    "name": "bot",
    "version": "v0.0.1",
    "parent": None,
    "created": "2024-01-01T00:00:00+00:00",
    "message": "",
    "peft_type": "LORA",
    "base_model": {
        "name_or_path": None,
        "revision": None,
        "status": "unknown",
        "structure_hash": None,
        "content_hash": None,
        "tensors": None,
        "size": None,
    },
    "weights": {
        "file": "adapter_model.safetensors",
        "sha256": "a" * 64,
        "md5": "b" * 32,
        "size": 10,
        "source_format": "safetensors",
    },
    "tensors": {"t": {"dtype": "F32", "shape": [2, 2], "blake3": "c" * 64}},
    "tool": {"adaptergit": "0"},
}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    return found


@st.composite
def mutated_manifests(draw: st.DrawFn) -> bytes:
    """A valid manifest with one value (at any depth) replaced or removed."""
    doc = copy.deepcopy(VALID_MANIFEST)
    path = draw(st.sampled_from(_paths(doc)[1:]))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()):
        parent[path[-1]] = draw(json_values)
    else:
        del parent[path[-1]]
    return json.dumps(doc).encode()


def _only_clean(call: Any, *args: Any) -> None:
    with contextlib.suppress(AdapterGitError):
        call(*args)


@FUZZ
@given(
    st.one_of(
        mutated_manifests(),
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
    )
)
def test_manifest_parsing(raw: bytes) -> None:
    _only_clean(Manifest.from_json, raw, "adapters/bot/manifest.json at 1234567")


def test_the_unmutated_manifest_is_valid() -> None:
    assert Manifest.from_json(json.dumps(VALID_MANIFEST)).name == "bot"


pointer_lines = st.sampled_from(
    ["outs:", "- md5: " + "d" * 32, "  size: 12", "  path: x", "  hash: md5", "md5:", "size: -1"]
)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        st.lists(st.one_of(pointer_lines, st.text(max_size=30)), max_size=8).map(
            lambda lines: "\n".join(lines).encode("utf-8", "surrogatepass")
        ),
        st.just(b"md5: " + b"0" * 32 + b"\npath: x\nsize: " + b"9" * 5000),
        st.just(b" " * 100_000 + b"md5"),
    )
)
def test_pointer_parsing(raw: bytes) -> None:
    try:
        pointer = Pointer.parse(raw, "adapters/bot/adapter_model.safetensors.dvc")
    except AdapterGitError:
        return
    assert len(pointer.md5) == 32 and pointer.path


@FUZZ
@given(st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
def test_strict_json(raw: bytes) -> None:
    _only_clean(strictjson.loads, raw, "metrics.json")


@FUZZ
@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_adapter_config(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "adapter_config.json"
    path.write_bytes(raw)
    _only_clean(load_adapter_config, path)


ini_lines = st.sampled_from(
    ["[core]", "remote = x", "['remote \"x\"']", "url = /tmp/x", "[cache]", "dir = ..", "[", "= ="]
)


@FUZZ
@given(st.lists(st.one_of(ini_lines, st.text(max_size=20)), max_size=8).map("\n".join))
def test_dvc_config(text: str) -> None:
    _only_clean(parse_config, text)


toml_lines = st.sampled_from(
    ["[hooks]", "[limits]", "max_file_size = 5", "regex_timeout = 0.5", "schema_version = 'x'",
     "max_tensor_elements = 1e9", "limits = 1", "a = [[[[", "[[hooks]]"]
)  # fmt: skip


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=100), st.lists(toml_lines, max_size=6).map("\n".join).map(str.encode)
    )
)
def test_repository_config(tmp_path: Path, raw: bytes) -> None:
    (tmp_path / ".adaptergit.toml").write_bytes(raw)
    _only_clean(RepoConfig.load, tmp_path)


yaml_lines = st.sampled_from(
    ["artifacts:", "  bot: {path: x}", "metrics: 3", "params:", "- a", "&a [*a, *a]", "!!python/object:os.system", "{"]
)  # fmt: skip


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=200), st.lists(yaml_lines, max_size=6).map("\n".join).map(str.encode)
    )
)
def test_dvc_yaml(raw: bytes) -> None:
    entry = registry_yaml.ArtifactEntry(name="bot", desc="d")
    _only_clean(registry_yaml.update, b"# mine\n" + raw, [entry])


@FUZZ
@given(st.text(max_size=40))
def test_printable_leaves_no_control_characters(text: str) -> None:
    shown = printable(text, one_line=True)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(min_size=1, max_size=60))
def test_tag_messages_of_any_bytes(registry: Repo, message: bytes) -> None:
    """Tags whose messages hold any byte (0x1E, NUL-free binary, escapes) never break reading."""
    root = registry.root
    if registry.git.head() is None:
        registry.commit(write_adapter(root.parent / "src", 1.0), name="bot")
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    body = (
        f"object {head}\ntype commit\ntag bot@v0.0.9\ntagger T <t@e> 1700000000 +0000\n\n".encode()
        + message.replace(b"\x00", b"?")
        + b"\n"
    )
    made = subprocess.run(["git", "mktag"], cwd=root, input=body, capture_output=True)
    assert made.returncode == 0, made.stderr
    oid = made.stdout.decode().strip()
    subprocess.run(["git", "update-ref", "refs/tags/bot@v0.0.9", oid], cwd=root, check=True)
    registry.registry.refresh()
    try:
        registry.log()
        registry.unmanaged()
    finally:
        subprocess.run(["git", "update-ref", "-d", "refs/tags/bot@v0.0.9"], cwd=root, check=True)
