"""Where things live in a registry: the one home of every file and folder name adaptergit uses.

A registry's work tree::

    .adaptergit.toml                     REGISTRY_CONFIG
    dvc.yaml                             DVC_YAML: every adapter as a DVC artifact
    adapters/NAME/                       ADAPTERS_DIR, one folder per adapter
        adapter_config.json              CONFIG_FILE    (git; PEFT's config, as saved)
        adapter_model.safetensors        WEIGHTS_FILE   (DVC; git-ignored)
        adapter_model.safetensors.dvc    POINTER_FILE   (git; DVC's pointer, as ``dvc add`` writes it)
        manifest.json                    MANIFEST_FILE  (git; the version record)
        metrics.json                     METRICS_FILE   (git; ``dvc metrics`` reads it)
        .gitignore                       GITIGNORE      (git; DVC's ignore entry for the weights)

The folder an adapter is exported to (``checkout --to``) holds the config, weights, manifest and
metrics, plus a Hugging Face model card (CARD_FILE). Names follow PEFT's ``save_pretrained``
(``adapter_config.json``, ``adapter_model.safetensors``, ``adapter_model.bin``) and DVC's ``.dvc``
suffix. Paths handed to git are POSIX strings relative to the work tree's root.
"""

from __future__ import annotations

REGISTRY_CONFIG = ".adaptergit.toml"
DVC_YAML = "dvc.yaml"
GITATTRIBUTES = ".gitattributes"
ADAPTERS_DIR = "adapters"

CONFIG_FILE = "adapter_config.json"  # PEFT's CONFIG_NAME
WEIGHTS_FILE = "adapter_model.safetensors"  # PEFT's SAFETENSORS_WEIGHTS_NAME
PICKLE_FILE = "adapter_model.bin"  # PEFT's WEIGHTS_NAME (a PyTorch pickle)
POINTER_FILE = WEIGHTS_FILE + ".dvc"
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.json"
GITIGNORE = ".gitignore"
CARD_FILE = "README.md"  # a Hugging Face model card, written by ``checkout --to``

# The files of ``adapters/NAME`` that git tracks; the weights are DVC's.
TRACKED_FILES = (CONFIG_FILE, METRICS_FILE, MANIFEST_FILE, POINTER_FILE, GITIGNORE)
# Every file adaptergit writes into ``adapters/NAME``.
ADAPTER_FILES = (*TRACKED_FILES, WEIGHTS_FILE)
# The files of an exported folder (``checkout --to``) besides the model card.
EXPORT_FILES = (CONFIG_FILE, WEIGHTS_FILE, MANIFEST_FILE, METRICS_FILE)


def adapter_path(name: str, filename: str | None = None) -> str:
    """``adapters/NAME`` or ``adapters/NAME/FILENAME``: a path inside the work tree, for git.

    Args:
        name: an adapter name, already validated by `adaptergit.refs.validate_name`.
        filename: one of this module's file names, or None for the folder itself.
    """
    folder = f"{ADAPTERS_DIR}/{name}"
    return folder if filename is None else f"{folder}/{filename}"


def adapter_of(path: str) -> tuple[str, str] | None:
    """Split ``adapters/NAME/FILE`` (a git path) into (NAME, FILE); None for any other path."""
    parts = path.split("/")
    if len(parts) == 3 and parts[0] == ADAPTERS_DIR and parts[1] and parts[2]:
        return parts[1], parts[2]
    return None


# Patterns (git pathspecs and gitattributes) matching one file of every adapter.
POINTER_GLOB = adapter_path("*", POINTER_FILE)
MANIFEST_GLOB = adapter_path("*", MANIFEST_FILE)

# adaptergit's own state, in the (common) git directory: never in the work tree, never committed.
STATE_DIR = "adaptergit"
# In STATE_DIR: the registry's folder relative to the repository's top level ("" at the top),
# written by ``init`` so that hooks, which git runs at the top level, find a subfolder registry.
REGISTRY_ROOT_FILE = "root"

# The name `adaptergit init --remote URL` gives that DVC remote in ``.dvc/config``.
DEFAULT_REMOTE = "storage"
