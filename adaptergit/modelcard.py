"""The ``README.md`` model card that ``checkout --to`` writes, in the Hugging Face Hub's format.

YAML front matter (``library_name: peft``, ``base_model``, tags, the metrics as ``model-index``
results) and, below it, the version, commit, base-model fingerprint and how to load the folder, so
that the folder can be uploaded to the Hub as it is.
"""

from __future__ import annotations

from typing import Any

from adaptergit import modelclass
from adaptergit.errors import AdapterGitError
from adaptergit.fingerprint import is_hub_id, resolve_base_model
from adaptergit.manifest import Version
from adaptergit.metrics import flatten
from adaptergit.registry_yaml import dump_yaml

# PEFT task types -> the Hub's pipeline tags.
_PIPELINES = {
    "CAUSAL_LM": "text-generation",
    "SEQ_2_SEQ_LM": "text2text-generation",
    "SEQ_CLS": "text-classification",
    "TOKEN_CLS": "token-classification",
    "QUESTION_ANS": "question-answering",
    "FEATURE_EXTRACTION": "feature-extraction",
}
# transformers class names -> the Hub's pipeline tags, for adapters without a task type.
_CLASS_PIPELINES = (
    ("ForCausalLM", "text-generation"),
    ("LMHeadModel", "text-generation"),
    ("ForSequenceClassification", "text-classification"),
    ("ForTokenClassification", "token-classification"),
    ("ForQuestionAnswering", "question-answering"),
    ("ForImageClassification", "image-classification"),
)
# Training bookkeeping, not results: left out of model-index.
_NOT_RESULTS = frozenset({"step", "global_step", "epoch"})


def target(version: Version, config: dict[str, Any] | None) -> modelclass.ModelClass:
    """The class the card tells users to load the base as: the one `adaptergit.load` uses, with
    the base's ``config.json`` read when the base is still on disk (a folder, or the HF cache)."""
    name = version.manifest.base_model.name_or_path
    base_config = None
    if name:
        try:
            path, _name, _revision = resolve_base_model(None, {"base_model_name_or_path": name})
        except AdapterGitError:
            path = None
        base_config = modelclass.read_base_config(path)
    return modelclass.model_class(config, base_config)


def _pipeline(model: modelclass.ModelClass) -> str | None:
    """The Hub's pipeline tag: from the task type, else from the class's name."""
    if model.task_type in _PIPELINES:
        return _PIPELINES[model.task_type]
    for suffix, pipeline in _CLASS_PIPELINES:
        if model.name.endswith(suffix):
            return pipeline
    return None


def front_matter(
    version: Version, config: dict[str, Any] | None, model: modelclass.ModelClass | None = None
) -> dict[str, Any]:
    """The card's metadata as the Hub reads it (Hugging Face model card YAML front matter).

    ``library_name: peft``, ``base_model`` (a Hub id only), ``pipeline_tag``, ``tags`` (with
    ``base_model:adapter:ID``, as the Hub links adapters to bases) and a ``model-index`` of the
    version's metrics.

    Args:
        version: the version.
        config: its ``adapter_config.json``, or None.
        model: the class the base is built as (default: from `config`, see `target`).
    """
    manifest = version.manifest
    config = config or {}
    base = manifest.base_model.name_or_path
    hub_base = base if base and is_hub_id(base) else None
    pipeline = _pipeline(model if model is not None else target(version, config))
    peft_type = manifest.peft_type.lower()
    tags = ["adaptergit", "peft"] + ([peft_type] if peft_type else [])
    if hub_base:
        tags.append(f"base_model:adapter:{hub_base}")
    data: dict[str, Any] = {"library_name": "peft"}
    if hub_base:
        data["base_model"] = hub_base
    if pipeline:
        data["pipeline_tag"] = pipeline
    data["tags"] = tags
    results = {k: v for k, v in flatten(version.metrics).items() if k not in _NOT_RESULTS}
    if results:
        data["model-index"] = [
            {
                "name": version.name,
                "results": [
                    {
                        "task": {"type": pipeline or "other"},
                        "dataset": {"name": "evaluation data", "type": "custom"},
                        "metrics": [
                            {"type": key, "value": value, "name": key}
                            for key, value in results.items()
                        ],
                    }
                ],
            }
        ]
    return data


def render(version: Version, config: dict[str, Any] | None) -> bytes:
    """The whole README.md: YAML front matter (`front_matter`), then the version's record and
    how to load it with PEFT or `adaptergit.load`.

    Args:
        version: the version.
        config: its ``adapter_config.json``, or None.

    Returns:
        UTF-8 Markdown.
    """
    m = version.manifest
    model = target(version, config)
    lines = ["---", dump_yaml(front_matter(version, config, model)).rstrip("\n"), "---", ""]
    lines += [f"# {version.name} {version.version}", ""]
    if m.message:
        lines += [m.message, ""]
    base = m.base_model
    lines += [
        f"A {m.peft_type} adapter recorded with "
        "[adaptergit](https://pypi.org/project/adaptergit/).",
        "",
        "| | |",
        "|---|---|",
        f"| version | `{version.ref}` |",
        f"| commit | `{version.commit}` |",
    ]
    lines.append(
        f"| base model | `{base.name_or_path or 'unknown'}`"
        + (f" (revision `{base.revision}`)" if base.revision else "")
        + " |"
    )
    if base.content_hash:
        lines.append(f"| base content hash | `{base.content_hash}` |")
        lines.append(f"| base structure hash | `{base.structure_hash}` |")
    else:
        lines.append("| base fingerprint | not recorded (the base model was not on disk) |")
    lines.append(f"| weights sha256 | `{m.weights.sha256}` |")
    flat = flatten(version.metrics)
    if flat:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in flat.items()]
    base_ref = base.name_or_path or "BASE_MODEL"
    auto = model.name
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from peft import PeftModel",
        f"from transformers import {auto}",
        "",
        f'base = {auto}.from_pretrained("{base_ref}")',
        'model = PeftModel.from_pretrained(base, ".")  # this folder',
        "```",
        "",
        "or, from the registry, checking the base model's fingerprint first:",
        "",
        "```python",
        "import adaptergit",
        "",
        f'model = adaptergit.load("{version.ref}", "{base_ref}", repo="REGISTRY")',
        "```",
        "",
    ]
    return "\n".join(lines).encode()


__all__ = ["front_matter", "render", "target"]
