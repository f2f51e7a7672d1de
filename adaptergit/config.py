"""The repository's adaptergit configuration, ``.adaptergit.toml`` at the work tree's root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adaptergit.errors import InvalidConfig
from adaptergit.layout import ADAPTERS_DIR, REGISTRY_CONFIG

DEFAULT_MAX_FILE_SIZE = 50 * 1024 * 1024

DEFAULT_TEXT = f"""\
# adaptergit configuration: https://pypi.org/project/adaptergit/
# Adapters live in {ADAPTERS_DIR}/NAME/; their weights are tracked by DVC (.dvc/).
schema_version = 1

[hooks]
# pre-commit refuses files larger than this (bytes) staged directly into git.
max_file_size = {DEFAULT_MAX_FILE_SIZE}
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class RepoConfig:
    schema_version: int = 1
    max_file_size: int = DEFAULT_MAX_FILE_SIZE

    @classmethod
    def load(cls, root: Path) -> RepoConfig:
        import tomllib  # only the pre-commit hook and a few commands read the config

        path = root / REGISTRY_CONFIG
        try:
            data = tomllib.loads(path.read_text())
        except OSError:
            return cls()
        except tomllib.TOMLDecodeError as exc:
            raise InvalidConfig(path, f"not valid TOML ({exc})") from None
        hooks = data.get("hooks", {})
        size = hooks.get("max_file_size", DEFAULT_MAX_FILE_SIZE)
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise InvalidConfig(
                path, "must be a positive number of bytes", key="hooks.max_file_size"
            )
        schema = data.get("schema_version", 1)
        if not isinstance(schema, int):
            raise InvalidConfig(path, "must be an integer", key="schema_version")
        return cls(schema_version=schema, max_file_size=size)
