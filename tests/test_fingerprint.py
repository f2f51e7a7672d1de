"""Base-model fingerprints and the hash cache, on real safetensors files and a real SQLite cache."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import blake3
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adaptergit.errors import InvalidBaseModel, InvalidInput, InvalidManifest, InvalidSafetensors
from adaptergit.fingerprint import (
    TENSOR_HASH_KIND,
    fingerprint_for_adapter,
    fingerprint_model,
    model_files,
    read_structure,
    resolve_base_model,
)
from adaptergit.hashcache import DB_NAME, FileIdentity, HashCache, default_cache
from adaptergit.manifest import BaseFingerprint

# --- helpers ----------------------------------------------------------------------------------

Tensors = dict[str, tuple[str, tuple[int, ...], bytes]]


def write_safetensors(
    path: Path,
    tensors: Tensors,
    *,
    order: list[str] | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write a safetensors file by hand, with tensors laid out in `order`."""
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    names = order if order is not None else list(tensors)
    for name in names:
        dtype, shape, data = tensors[name]
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as stream:
        stream.write(len(raw).to_bytes(8, "little") + raw)
        for name in names:
            stream.write(tensors[name][2])
    return path


def sample_tensors(seed: int = 0) -> Tensors:
    """A few tensors, one big enough for the multithreaded hashing path and one empty."""
    data = blake3.blake3(seed.to_bytes(4, "little")).digest(length=400_000 + 4 * 6 + 2 * 8)
    return {
        "embed.weight": ("F32", (100_000,), data[:400_000]),
        "layer.0.bias": ("F32", (2, 3), data[400_000:400_024]),
        "layer.0.weight": ("F16", (2, 4), data[400_024:400_040]),
        "empty": ("I64", (0, 5), b""),
    }


def age(*paths: Path, seconds: int = 60) -> None:
    """Date files back, as a model downloaded a while ago would be (see hashcache.RACY_WINDOW_NS)."""
    for path in paths:
        stat = os.stat(path)
        past = stat.st_mtime_ns - seconds * 1_000_000_000
        os.utime(path, ns=(past, past))


def age_model(directory: Path) -> None:
    age(*model_files(directory))


class CountingCache(HashCache):
    """A real HashCache that counts its hits, misses and stores."""

    def __init__(self, directory: Path | None = None) -> None:
        super().__init__(directory)
        self.hits = self.misses = self.puts = 0

    def get(self, path: Path, kind: str, *, identity: FileIdentity | None = None) -> Any | None:
        value = super().get(path, kind, identity=identity)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(
        self, path: Path, kind: str, value: Any, *, identity: FileIdentity | None = None
    ) -> None:
        self.puts += 1
        super().put(path, kind, value, identity=identity)


def expected_hashes(tensors: Tensors) -> tuple[str, str]:
    """The documented hash definitions, computed independently of the implementation."""

    def line(values: list[object]) -> bytes:
        return json.dumps(values, separators=(",", ":")).encode() + b"\n"

    structure = blake3.blake3(b"adaptergit base-model structure v1\n")
    content = blake3.blake3(b"adaptergit base-model content v1\n")
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        structure.update(line([name, dtype, list(shape)]))
        content.update(line([name, dtype, list(shape), blake3.blake3(data).hexdigest()]))
    return structure.hexdigest(), content.hexdigest()


# --- tiny transformers models -----------------------------------------------------------------


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny Llama saved whole and sharded, with one weight changed, and with another shape."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("llama")
    torch.manual_seed(0)
    small: dict[str, Any] = dict(
        vocab_size=128,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    model = LlamaForCausalLM(LlamaConfig(intermediate_size=64, **small))
    model.save_pretrained(root / "whole", safe_serialization=True)
    model.save_pretrained(root / "sharded", safe_serialization=True, max_shard_size="20KB")
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[3, 5] += 1.0
    model.save_pretrained(root / "changed", safe_serialization=True)
    other = LlamaForCausalLM(LlamaConfig(intermediate_size=72, **small))
    other.save_pretrained(root / "reshaped", safe_serialization=True)
    dirs = {name: root / name for name in ("whole", "sharded", "changed", "reshaped")}
    for directory in dirs.values():
        age_model(directory)
    return dirs


def test_resharded_model_has_same_fingerprint(llama: dict[str, Path], tmp: Path) -> None:
    assert len(model_files(llama["sharded"])) > 1
    assert model_files(llama["whole"]) == [llama["whole"] / "model.safetensors"]
    cache = HashCache(tmp / "cache")
    whole = fingerprint_model(llama["whole"], cache=cache)
    sharded = fingerprint_model(llama["sharded"], cache=cache)
    assert whole.status == sharded.status == "verified"
    assert whole.structure_hash == sharded.structure_hash
    assert whole.content_hash == sharded.content_hash
    assert (whole.tensors, whole.size) == (sharded.tensors, sharded.size)
    assert read_structure(llama["whole"]) == read_structure(llama["sharded"])
    assert whole.size == sum(p.numel() * 4 for p in _llama_params(llama["whole"]).values())


def _llama_params(directory: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(directory / "model.safetensors")


def test_changed_weight_changes_content_only(llama: dict[str, Path], tmp: Path) -> None:
    cache = HashCache(tmp / "cache")
    whole = fingerprint_model(llama["whole"], cache=cache)
    changed = fingerprint_model(llama["changed"], cache=cache)
    assert changed.structure_hash == whole.structure_hash
    assert changed.content_hash != whole.content_hash
    assert changed.content_hash is not None
    assert changed.short == changed.content_hash[:12] != whole.short


def test_changed_shape_changes_structure(llama: dict[str, Path], tmp: Path) -> None:
    whole = fingerprint_model(llama["whole"], cache=HashCache(tmp / "cache"))
    reshaped = fingerprint_model(llama["reshaped"], cache=HashCache(tmp / "cache"))
    assert reshaped.structure_hash != whole.structure_hash
    assert reshaped.content_hash != whole.content_hash
    assert reshaped.tensors == whole.tensors


# --- the hash definitions, on hand-written files ----------------------------------------------


def test_hashes_follow_the_documented_definition(tmp: Path) -> None:
    tensors = sample_tensors()
    path = write_safetensors(tmp / "model.safetensors", tensors)
    fp = fingerprint_model(path, cache=HashCache(tmp / "cache"))
    assert (fp.structure_hash, fp.content_hash) == expected_hashes(tensors)
    assert fp.tensors == 4
    assert fp.size == sum(len(t[2]) for t in tensors.values())
    assert fp.name_or_path == str(path)
    assert read_structure(path) == {name: (t[0], t[1]) for name, t in sorted(tensors.items())}


def test_layout_metadata_and_sharding_do_not_matter(tmp: Path) -> None:
    tensors = sample_tensors()
    one = write_safetensors(tmp / "one" / "model.safetensors", tensors)
    shuffled = write_safetensors(
        tmp / "shuffled.safetensors",
        tensors,
        order=sorted(tensors, reverse=True),
        metadata={"format": "pt"},
    )
    names = sorted(tensors)
    shards = tmp / "shards"
    write_safetensors(shards / "b.safetensors", {n: tensors[n] for n in names[:2]})
    write_safetensors(shards / "a.safetensors", {n: tensors[n] for n in names[2:]})
    cache = HashCache(tmp / "cache")
    results = {fingerprint_model(p, cache=cache).content_hash for p in (one, shuffled, shards)}
    assert len(results) == 1
    assert fingerprint_model(one.parent, cache=cache).content_hash in results


def test_structure_needs_no_tensor_data(tmp: Path) -> None:
    tensors = sample_tensors()
    path = write_safetensors(tmp / "m.safetensors", tensors)
    with open(path, "r+b") as stream:  # scribble over the tensor data: headers are all it needs
        stream.seek(-1000, os.SEEK_END)
        stream.write(b"\xff" * 1000)
    assert read_structure(path) == {name: (t[0], t[1]) for name, t in sorted(tensors.items())}
    assert (
        fingerprint_model(path, cache=HashCache(tmp / "c")).structure_hash
        == expected_hashes(tensors)[0]
    )


def test_single_changed_byte_changes_content(tmp: Path) -> None:
    tensors = sample_tensors()
    a = write_safetensors(tmp / "a.safetensors", tensors)
    data = bytearray(tensors["embed.weight"][2])
    data[123_456] ^= 1
    tensors["embed.weight"] = ("F32", (100_000,), bytes(data))
    b = write_safetensors(tmp / "b.safetensors", tensors)
    cache = HashCache(tmp / "cache")
    fa, fb = fingerprint_model(a, cache=cache), fingerprint_model(b, cache=cache)
    assert fa.structure_hash == fb.structure_hash
    assert fa.content_hash != fb.content_hash


# --- which files make a model -----------------------------------------------------------------


def test_index_is_followed_and_other_files_ignored(tmp: Path) -> None:
    tensors = sample_tensors()
    names = sorted(tensors)
    model = tmp / "model"
    write_safetensors(
        model / "model-00001-of-00002.safetensors", {n: tensors[n] for n in names[:2]}
    )
    write_safetensors(
        model / "model-00002-of-00002.safetensors", {n: tensors[n] for n in names[2:]}
    )
    write_safetensors(model / "consolidated.safetensors", {"w": ("F32", (1,), b"\0" * 4)})
    weight_map = {
        n: f"model-0000{1 if i < 2 else 2}-of-00002.safetensors" for i, n in enumerate(names)
    }
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert [p.name for p in model_files(model)] == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    assert (
        fingerprint_model(model, cache=HashCache(tmp / "c")).content_hash
        == expected_hashes(tensors)[1]
    )

    weight_map[names[0]] = "model-00002-of-00002.safetensors"
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(InvalidBaseModel, match="the index says"):
        read_structure(model)

    (model / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(InvalidBaseModel, match=r"model-00002-of-00002\.safetensors.*missing"):
        model_files(model)

    (model / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"x": "../x.safetensors"}})
    )
    with pytest.raises(InvalidBaseModel, match="not a file name inside the model"):
        model_files(model)


def test_duplicate_tensor_across_shards_is_refused(tmp: Path) -> None:
    tensors = sample_tensors()
    write_safetensors(tmp / "m" / "a.safetensors", tensors)
    write_safetensors(tmp / "m" / "b.safetensors", {"layer.0.bias": tensors["layer.0.bias"]})
    with pytest.raises(
        InvalidBaseModel, match=r"'layer.0.bias' is in both a.safetensors and b.safetensors"
    ):
        read_structure(tmp / "m")
    with pytest.raises(InvalidBaseModel, match="is in both"):
        fingerprint_model(tmp / "m", cache=HashCache(tmp / "c"))


def test_no_weights_is_an_error(tmp: Path) -> None:
    (tmp / "empty").mkdir()
    (tmp / "empty" / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(InvalidBaseModel, match=r"no \.safetensors files"):
        model_files(tmp / "empty")
    with pytest.raises(InvalidBaseModel, match=r"only \.safetensors"):
        model_files(tmp / "empty" / "pytorch_model.bin")
    with pytest.raises(InvalidBaseModel, match="no such file"):
        fingerprint_model(tmp / "absent")
    (tmp / "bad.safetensors").write_bytes(b"\x05" + b"\0" * 20)
    with pytest.raises(InvalidSafetensors):
        fingerprint_model(tmp / "bad.safetensors", cache=HashCache(tmp / "c"))


# --- the hash cache ---------------------------------------------------------------------------


def test_second_run_reads_only_headers(tmp: Path) -> None:
    path = write_safetensors(tmp / "m.safetensors", sample_tensors())
    age(path)
    cache = CountingCache(tmp / "cache")
    first = fingerprint_model(path, cache=cache)
    assert (cache.hits, cache.misses, cache.puts) == (0, 1, 1)

    # Overwrite the tensor data in place and put size, inode and mtime back: the file's identity
    # is unchanged, so a run that gives the old hash has provably not read the data again.
    stat = os.stat(path)
    with open(path, "r+b") as stream:
        stream.seek(-400, os.SEEK_END)
        stream.write(b"\x01" * 400)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = CountingCache(tmp / "cache")  # a new instance: the cache persists on disk
    assert fingerprint_model(path, cache=again) == first
    assert (again.hits, again.misses, again.puts) == (1, 0, 0)


def test_rewritten_file_is_hashed_again(tmp: Path) -> None:
    tensors = sample_tensors()
    path = write_safetensors(tmp / "m.safetensors", tensors)
    age(path)
    cache = CountingCache(tmp / "cache")
    first = fingerprint_model(path, cache=cache)

    tensors["layer.0.bias"] = ("F32", (2, 3), b"\x07" * 24)  # same size, new content
    write_safetensors(path, tensors)
    second = fingerprint_model(path, cache=cache)
    assert second.content_hash == expected_hashes(tensors)[1] != first.content_hash
    assert cache.hits == 0

    write_safetensors(path, {"x": ("U8", (3,), b"abc")})  # another size
    assert (
        fingerprint_model(path, cache=cache).content_hash
        == expected_hashes({"x": ("U8", (3,), b"abc")})[1]
    )
    assert cache.hits == 0


def test_freshly_written_file_is_not_cached_until_its_mtime_is_safe(tmp: Path) -> None:
    path = write_safetensors(tmp / "m.safetensors", sample_tensors())
    cache = CountingCache(tmp / "cache")
    fingerprint_model(path, cache=cache)
    assert cache.get(path, TENSOR_HASH_KIND) is None  # a same-tick rewrite could go unseen
    age(path)
    fingerprint_model(path, cache=cache)
    fingerprint_model(path, cache=cache)
    assert cache.hits == 1


def test_cache_entry_follows_symlinks_to_the_real_file(tmp: Path) -> None:
    real = write_safetensors(tmp / "blobs" / "abc", sample_tensors())
    age(real)
    (tmp / "a").mkdir()
    (tmp / "b").mkdir()
    (tmp / "a" / "model.safetensors").symlink_to(real)
    (tmp / "b" / "model.safetensors").symlink_to(real)
    cache = CountingCache(tmp / "cache")
    fa = fingerprint_model(tmp / "a", cache=cache)
    fb = fingerprint_model(tmp / "b", cache=cache)
    assert fa.content_hash == fb.content_hash
    assert (cache.hits, cache.puts) == (1, 1)


def test_hash_cache_get_put(tmp: Path) -> None:
    target = tmp / "file"
    target.write_bytes(b"x")
    age(target)
    cache = HashCache(tmp / "cache")
    assert cache.get(target, "sha256") is None
    cache.put(target, "sha256", {"a": [1, 2]})
    cache.put(target, "md5", "abc")
    assert cache.get(target, "sha256") == {"a": [1, 2]}
    assert HashCache(tmp / "cache").get(target, "md5") == "abc"
    assert cache.get(tmp / "missing", "md5") is None
    cache.put(tmp / "missing", "md5", "x")  # nothing to tie it to: ignored
    cache.put(target, "bad", {1, 2})  # not JSON: ignored
    assert cache.get(target, "bad") is None
    target.write_bytes(b"y")
    assert cache.get(target, "sha256") is None


def test_identity_taken_before_reading_guards_against_changes(tmp: Path) -> None:
    target = tmp / "file"
    target.write_bytes(b"x")
    age(target)
    before = FileIdentity.of(target)
    target.write_bytes(b"yy")  # changed while "hashing"
    age(target)
    cache = HashCache(tmp / "cache")
    cache.put(target, "sha256", "hash of x", identity=before)
    assert cache.get(target, "sha256") is None


def test_default_cache_location(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_cache().directory == Path(os.environ["ADAPTERGIT_CACHE_DIR"])
    monkeypatch.delenv("ADAPTERGIT_CACHE_DIR")
    assert default_cache().directory == Path(os.environ["XDG_CACHE_HOME"]) / "adaptergit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache().directory == Path.home() / ".cache" / "adaptergit"

    path = write_safetensors(tmp / "m.safetensors", sample_tensors())
    age(path)
    monkeypatch.setenv("ADAPTERGIT_CACHE_DIR", str(tmp / "env-cache"))
    fingerprint_model(path)
    assert (tmp / "env-cache" / DB_NAME).is_file()
    assert HashCache(tmp / "env-cache").get(path, TENSOR_HASH_KIND) is not None


def test_corrupt_cache_is_ignored_and_rebuilt(tmp: Path) -> None:
    path = write_safetensors(tmp / "m.safetensors", sample_tensors())
    age(path)
    (tmp / "cache").mkdir()
    (tmp / "cache" / DB_NAME).write_bytes(b"this is not a SQLite database " * 200)
    cache = CountingCache(tmp / "cache")
    fp = fingerprint_model(path, cache=cache)
    assert fp.content_hash == expected_hashes(sample_tensors())[1]
    again = CountingCache(tmp / "cache")
    assert fingerprint_model(path, cache=again) == fp
    assert again.hits == 1


def test_garbled_cache_entries_are_ignored(tmp: Path) -> None:
    path = write_safetensors(tmp / "m.safetensors", sample_tensors())
    age(path)
    fp = fingerprint_model(path, cache=HashCache(tmp / "cache"))
    for garbage in ("not json", json.dumps({"embed.weight": "00"}), json.dumps([1, 2])):
        with sqlite3.connect(tmp / "cache" / DB_NAME) as db:
            db.execute("UPDATE hashes SET value = ?", (garbage,))
        db.close()
        cache = CountingCache(tmp / "cache")
        assert fingerprint_model(path, cache=cache) == fp
        assert cache.puts == 1


def test_unusable_cache_directory_is_ignored(tmp: Path) -> None:
    path = write_safetensors(tmp / "m.safetensors", sample_tensors())
    age(path)
    (tmp / "not-a-dir").write_text("a file where the cache directory should be")
    cache = HashCache(tmp / "not-a-dir")
    assert fingerprint_model(path, cache=cache).content_hash == expected_hashes(sample_tensors())[1]
    assert cache.get(path, TENSOR_HASH_KIND) is None


def test_cache_is_shared_safely_by_concurrent_processes(tmp: Path) -> None:
    files = []
    for i in range(40):
        files.append(tmp / "files" / f"f{i}")
        files[-1].parent.mkdir(exist_ok=True)
        files[-1].write_text(str(i))
        age(files[-1])
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from adaptergit.hashcache import HashCache
        cache = HashCache(Path(sys.argv[1]))
        worker = int(sys.argv[2])
        for i, name in enumerate(sys.argv[3:]):
            cache.put(Path(name), f"kind{worker}", [worker, i])
            assert cache.get(Path(name), f"kind{worker}") == [worker, i], name
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp / "cache"), str(w), *map(str, files)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    cache = HashCache(tmp / "cache")
    assert all(cache.get(f, f"kind{w}") == [w, i] for w in range(4) for i, f in enumerate(files))


# --- the Hugging Face cache -------------------------------------------------------------------

MAIN = "a" * 40
DEV = "b" * 40


@pytest.fixture
def hub(tmp: Path) -> Path:
    """A hub cache laid out as huggingface_hub leaves it: blobs, symlinked snapshots, refs."""
    hub = Path(os.environ["HF_HOME"]) / "hub"
    repo = hub / "models--org--tiny"
    for commit, seed in ((MAIN, 1), (DEV, 2)):
        blob = write_safetensors(repo / "blobs" / f"blob{seed}", sample_tensors(seed))
        age(blob)
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        (snapshot / "model.safetensors").symlink_to(Path("../../blobs") / blob.name)
        (snapshot / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(MAIN)
    (repo / "refs" / "dev").write_text(DEV + "\n")
    (repo / "refs" / "v1.0").write_text(DEV)  # tags are stored as refs too
    config_only = hub / "models--org--config-only" / "snapshots" / MAIN
    config_only.mkdir(parents=True)
    (config_only / "config.json").write_text("{}")
    (hub / "models--org--config-only" / "refs").mkdir()
    (hub / "models--org--config-only" / "refs" / "main").write_text(MAIN)
    return hub


@pytest.mark.parametrize(
    ("revision", "commit", "seed"),
    [
        (None, MAIN, 1),
        ("main", MAIN, 1),
        ("dev", DEV, 2),
        ("v1.0", DEV, 2),
        (DEV, DEV, 2),
        (MAIN, MAIN, 1),
    ],
)
def test_base_found_in_hub_cache(
    hub: Path, tmp: Path, revision: str | None, commit: str, seed: int
) -> None:
    config: dict[str, Any] = {"base_model_name_or_path": "org/tiny"}
    if revision is not None:
        config["revision"] = revision
    path, name, resolved = resolve_base_model(None, config)
    assert path == hub / "models--org--tiny" / "snapshots" / commit
    assert (name, resolved) == ("org/tiny", commit)
    fp = fingerprint_for_adapter(None, config, cache=HashCache(tmp / "cache"))
    assert fp.status == "verified"
    assert (fp.name_or_path, fp.revision) == ("org/tiny", commit)
    assert fp.content_hash == expected_hashes(sample_tensors(seed))[1]


def test_hub_cache_location(hub: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/..."""
    config = {"base_model_name_or_path": "org/tiny"}
    assert hub == Path.home() / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp / "elsewhere"))
    assert resolve_base_model(None, config)[0] is None
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    assert resolve_base_model(None, config)[0] is not None
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp / "hf-elsewhere"))
    assert resolve_base_model(None, config)[0] is None
    monkeypatch.delenv("HF_HOME")
    assert resolve_base_model(None, config)[0] is not None
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "xdg-elsewhere"))
    assert resolve_base_model(None, config)[0] is None
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_base_model(None, config)[0] is not None


@pytest.mark.parametrize(
    ("config", "name", "revision"),
    [
        ({"base_model_name_or_path": "org/absent"}, "org/absent", None),
        ({"base_model_name_or_path": "org/tiny", "revision": "nope"}, "org/tiny", "nope"),
        ({"base_model_name_or_path": "org/tiny", "revision": "c" * 40}, "org/tiny", "c" * 40),
        ({"base_model_name_or_path": "org/tiny", "revision": "../../x"}, "org/tiny", "../../x"),
        ({"base_model_name_or_path": "org/config-only"}, "org/config-only", None),
        (
            {"base_model_name_or_path": "/trained/on/another/machine"},
            "/trained/on/another/machine",
            None,
        ),
        ({}, None, None),
    ],
)
def test_base_not_on_disk_is_unknown(
    hub: Path, config: dict[str, Any], name: str | None, revision: str | None
) -> None:
    assert resolve_base_model(None, config) == (None, name, revision)
    fp = fingerprint_for_adapter(None, config)
    assert fp == BaseFingerprint(
        name_or_path=name,
        revision=revision,
        status="unknown",
        structure_hash=None,
        content_hash=None,
        tensors=None,
        size=None,
    )
    assert fp.short == "unknown"


def test_given_base_model_wins(hub: Path, tmp: Path) -> None:
    config = {"base_model_name_or_path": "org/other", "revision": "dev"}
    # A hub id given explicitly is looked up at its own default revision, not the config's.
    assert resolve_base_model("org/tiny", config)[1:] == ("org/tiny", MAIN)
    assert (
        resolve_base_model("org/tiny", {"base_model_name_or_path": "org/tiny", "revision": "dev"})[
            2
        ]
        == DEV
    )
    assert resolve_base_model("org/missing", config) == (None, "org/missing", None)

    local = write_safetensors(tmp / "local" / "model.safetensors", sample_tensors(3))
    assert resolve_base_model(str(local.parent), config) == (local.parent, str(local.parent), None)
    fp = fingerprint_for_adapter(local, config, cache=HashCache(tmp / "cache"))
    assert (fp.name_or_path, fp.revision, fp.status) == (str(local), None, "verified")
    snapshot = hub / "models--org--tiny" / "snapshots" / DEV
    assert resolve_base_model(snapshot, config) == (snapshot, str(snapshot), DEV)
    # PEFT records a local base path as given; an absolute one that exists is used.
    assert (
        resolve_base_model(None, {"base_model_name_or_path": str(local.parent)})[0] == local.parent
    )


@pytest.mark.parametrize(
    "missing", ["./no/such/model", "/no/such/model", "model.safetensors", "a/b/c", "~/nope"]
)
def test_given_base_model_that_does_not_exist_is_an_error(missing: str) -> None:
    with pytest.raises(InvalidInput, match="does not exist and is not a Hugging Face model id"):
        resolve_base_model(missing, {})
    with pytest.raises(InvalidBaseModel):
        fingerprint_for_adapter(Path("relative/path"), {})


def test_lookup_imports_nothing_heavy(hub: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        from adaptergit.fingerprint import fingerprint_for_adapter
        heavy = ("numpy", "torch", "transformers", "huggingface_hub", "safetensors", "sqlite3", "blake3")
        assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
        fp = fingerprint_for_adapter(None, {"base_model_name_or_path": "org/tiny"})
        assert fp.status == "verified", fp
        loaded = [m for m in ("numpy", "torch", "transformers", "huggingface_hub", "safetensors") if m in sys.modules]
        assert not loaded, loaded
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy()
    )
    assert result.returncode == 0, result.stderr


# --- the record -------------------------------------------------------------------------------

_hex = st.text("0123456789abcdef", min_size=64, max_size=64)
_name = st.none() | st.text(min_size=1, max_size=40)
fingerprints = st.one_of(
    st.builds(
        BaseFingerprint,
        name_or_path=_name,
        revision=_name,
        status=st.just("verified"),
        structure_hash=_hex,
        content_hash=_hex,
        tensors=st.integers(0, 10**6),
        size=st.integers(0, 10**13),
    ),
    st.builds(
        BaseFingerprint,
        name_or_path=_name,
        revision=_name,
        status=st.just("unknown"),
        structure_hash=st.none(),
        content_hash=st.none(),
        tensors=st.none(),
        size=st.none(),
    ),
)


@given(fingerprints)
def test_to_dict_from_dict_round_trip(fp: BaseFingerprint) -> None:
    data = fp.to_dict()
    assert BaseFingerprint.from_dict(data) == fp
    assert BaseFingerprint.from_dict(json.loads(json.dumps(data))) == fp


VALID = BaseFingerprint(
    name_or_path="org/tiny",
    revision=MAIN,
    status="verified",
    structure_hash="1" * 64,
    content_hash="2" * 64,
    tensors=3,
    size=48,
).to_dict()


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"status": "maybe"}, "status"),
        ({"content_hash": "XYZ"}, "content_hash"),
        ({"structure_hash": "A" * 64}, "structure_hash"),
        ({"content_hash": None}, "content_hash"),
        ({"tensors": -1}, "tensors"),
        ({"tensors": True}, "tensors"),
        ({"size": 1.5}, "size"),
        ({"name_or_path": 3}, "name_or_path"),
        ({"revision": ""}, "revision"),
        ({"colour": "blue"}, "colour"),
        ({"status": "unknown"}, "structure_hash"),
    ],
)
def test_from_dict_names_the_offending_key(change: dict[str, Any], key: str) -> None:
    with pytest.raises(InvalidManifest) as info:
        BaseFingerprint.from_dict({**VALID, **change})
    assert info.value.key == key
    assert repr(key) in str(info.value)


def test_from_dict_refuses_missing_keys_and_non_objects() -> None:
    data = dict(VALID)
    del data["size"]
    with pytest.raises(InvalidManifest) as info:
        BaseFingerprint.from_dict(data)
    assert info.value.key == "size"
    with pytest.raises(InvalidManifest, match="must be an object"):
        BaseFingerprint.from_dict(["not", "a", "dict"])
