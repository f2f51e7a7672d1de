"""The repository's adaptergit configuration, ``.adaptergit.toml`` at the work tree's root."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from adaptergit.errors import AdapterGitError, InvalidConfig
from adaptergit.layout import ADAPTERS_DIR, REGISTRY_CONFIG

DEFAULT_MAX_FILE_SIZE = 50 * 1024 * 1024
# The configuration is a few lines; a larger file is refused unread.
MAX_CONFIG_BYTES = 1 << 20
DEFAULT_REGEX_TIMEOUT = 1.0
# The built-in bounds, which a configuration may lower but not raise: the safetensors library's
# header limit, and adapter.MAX_CONFIG_SIZE.
MAX_HEADER_BYTES = 100_000_000
MAX_JSON_BYTES = 16 * 1024 * 1024

DEFAULT_TEXT = f"""\
# adaptergit configuration: https://pypi.org/project/adaptergit/
# Adapters live in {ADAPTERS_DIR}/NAME/; their weights are tracked by DVC (.dvc/).
schema_version = 1

[hooks]
# pre-commit refuses files larger than this (bytes) staged directly into git.
max_file_size = {DEFAULT_MAX_FILE_SIZE}
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """Bounds on what an untrusted adapter may cost, from ``[limits]`` in ``.adaptergit.toml``.

    Attributes:
        max_tensor_elements: the most elements one tensor of a PyTorch pickle
            (``adapter_model.bin``) may have once converted.
        max_pickle_bytes: the most bytes all tensors of a pickle may take once converted.
        max_header_bytes: the largest safetensors header accepted in a commit, bytes (at most
            the safetensors library's own bound, 100 MB).
        max_json_bytes: the largest ``adapter_config.json`` accepted in a commit, bytes (at most
            16 MiB).
        regex_timeout: seconds that matching a regular expression from an adapter's config
            (``target_modules``, ``rank_pattern``) may take in all, for one check.
    """

    max_tensor_elements: int = 1 << 34
    max_pickle_bytes: int = 64 << 30
    max_header_bytes: int = MAX_HEADER_BYTES
    max_json_bytes: int = MAX_JSON_BYTES
    regex_timeout: float = DEFAULT_REGEX_TIMEOUT


@dataclass(frozen=True, kw_only=True, slots=True)
class RepoConfig:
    """The repository's ``.adaptergit.toml``, read with `load`.

    Attributes:
        schema_version: the file's format version (1).
        max_file_size: ``[hooks] max_file_size``: the pre-commit hook refuses a file staged
            straight into git that is larger than this, in bytes (default 50 MiB).
        limits: ``[limits]``: bounds on what an untrusted adapter may cost (`Limits`).
    """

    schema_version: int = 1
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def load(cls, root: Path) -> RepoConfig:
        """Read ``.adaptergit.toml`` (defaults for what it does not set, or if it is absent).

        It arrives with ``git clone``: read without following a link, bounded in size, and any
        defect (bad TOML, nesting too deep, a wrong type) is one `InvalidConfig` naming the key.
        """
        import tomllib  # only the pre-commit hook and a few commands read the config

        from adaptergit.fsutil import read_in_tree

        path = root / REGISTRY_CONFIG
        try:
            raw = read_in_tree(root, REGISTRY_CONFIG, MAX_CONFIG_BYTES)
        except AdapterGitError as exc:
            raise InvalidConfig(path, str(exc)) from None
        if raw is None:
            return cls()
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidConfig(path, "not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidConfig(path, f"not valid TOML ({exc})") from None
        except RecursionError:
            raise InvalidConfig(path, "nested too deeply") from None
        hooks = _table(data, "hooks", path)
        size = hooks.get("max_file_size", DEFAULT_MAX_FILE_SIZE)
        if not _positive_int(size):
            raise InvalidConfig(
                path, "must be a positive number of bytes", key="hooks.max_file_size"
            )
        assert isinstance(size, int)
        schema = data.get("schema_version", 1)
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise InvalidConfig(path, "must be an integer", key="schema_version")
        return cls(schema_version=schema, max_file_size=size, limits=_limits(data, path))


def _table(data: dict[str, object], key: str, path: Path) -> dict[str, object]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise InvalidConfig(path, "must be a table", key=key)
    return value


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _limits(data: dict[str, object], path: Path) -> Limits:
    table = _table(data, "limits", path)
    default = Limits()
    values: dict[str, int | float] = {}
    ceilings = {"max_header_bytes": MAX_HEADER_BYTES, "max_json_bytes": MAX_JSON_BYTES}
    for key in ("max_tensor_elements", "max_pickle_bytes", *ceilings):
        value = table.get(key, getattr(default, key))
        if not _positive_int(value):
            raise InvalidConfig(path, "must be a positive integer", key=f"limits.{key}")
        assert isinstance(value, int)
        if value > ceilings.get(key, value):
            raise InvalidConfig(path, f"must be at most {ceilings[key]}", key=f"limits.{key}")
        values[key] = value
    timeout = table.get("regex_timeout", default.regex_timeout)
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout <= 3600
    ):
        raise InvalidConfig(
            path,
            "must be a number of seconds, above 0 and at most 3600",
            key="limits.regex_timeout",
        )
    return Limits(
        max_tensor_elements=int(values["max_tensor_elements"]),
        max_pickle_bytes=int(values["max_pickle_bytes"]),
        max_header_bytes=int(values["max_header_bytes"]),
        max_json_bytes=int(values["max_json_bytes"]),
        regex_timeout=float(timeout),
    )
