"""PEFT models committed directly, and the Trainer callback in real (tiny, CPU) training runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch

from adaptergit import Repo
from adaptergit.errors import NotAPeftModel, NothingToCommit, UnknownPeftAdapter

from .conftest import tiny_base_model, tiny_peft_model
from .helpers import git

if TYPE_CHECKING:
    from transformers import Trainer, TrainerCallback


def perturb(model: torch.nn.Module, adapter: str, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if f"lora_B.{adapter}." in name:
                param.add_(torch.randn(param.shape, generator=generator) * 0.05)


# --- PeftModel in Repo.commit ------------------------------------------------------------------


def test_commit_a_peft_model_as_peft_saves_it(registry: Repo, tmp_path: Path) -> None:
    model = tiny_peft_model(seed=3)
    version = registry.commit(model, name="bot", metrics={"eval_loss": 1.0}, message="from memory")
    model.save_pretrained(str(tmp_path / "saved"), safe_serialization=True)
    folder = registry.adapter_dir("bot")
    assert (folder / "adapter_model.safetensors").read_bytes() == (
        tmp_path / "saved" / "adapter_model.safetensors"
    ).read_bytes()
    assert json.loads((folder / "adapter_config.json").read_text()) == json.loads(
        (tmp_path / "saved" / "adapter_config.json").read_text()
    )
    assert version.ref == "bot@v0.0.1" and version.metrics == {"eval_loss": 1.0}
    # nothing is left behind in the registry's state folder
    assert not list((registry.state_dir).glob("peft-save-*"))
    with pytest.raises(NothingToCommit):
        registry.commit(model, name="bot")


def test_adapter_name_picks_one_adapter(registry: Repo) -> None:
    from peft import LoraConfig

    model = tiny_peft_model(seed=1)
    model.add_adapter(
        "summarise", LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM")
    )
    perturb(model, "summarise", 5)
    version = registry.commit(model, name="summary", adapter_name="summarise")
    assert version.manifest is not None
    assert {t.shape for t in version.manifest.tensors} == {(2, 32), (32, 2)}  # r=2, q_proj only
    config = json.loads((registry.adapter_dir("summary") / "adapter_config.json").read_text())
    assert config["r"] == 2 and config["target_modules"] == ["q_proj"]
    with pytest.raises(UnknownPeftAdapter, match=r"'nope'.*default, summarise"):
        registry.commit(model, name="x", adapter_name="nope")
    with pytest.raises(NotAPeftModel):
        registry.commit(tiny_base_model(), name="x")


def test_names_commits_several_adapters_in_one_git_commit(registry: Repo) -> None:
    from peft import LoraConfig

    model = tiny_peft_model(seed=1)
    model.add_adapter("task_b", LoraConfig(r=2, target_modules=["v_proj"], task_type="CAUSAL_LM"))
    perturb(model, "task_b", 6)
    versions = registry.commit(
        model, names={"default": "task-a", "task_b": "task-b"}, metrics={"eval_loss": 0.5}
    )
    assert [v.ref for v in versions] == ["task-a@v0.0.1", "task-b@v0.0.1"]
    assert versions[0].commit == versions[1].commit == registry.git.head()
    tags = git(registry.root, "tag", "--points-at", "HEAD").split()
    assert sorted(tags) == ["task-a@v0.0.1", "task-b@v0.0.1"]
    files = git(registry.root, "show", "--name-only", "--format=", "HEAD").split()
    assert "adapters/task-a/manifest.json" in files and "adapters/task-b/manifest.json" in files
    assert "dvc.yaml" in files
    assert git(registry.root, "status", "--porcelain") == ""
    # only what changed gets a new version
    perturb(model, "task_b", 7)
    again = registry.commit(model, names={"default": "task-a", "task_b": "task-b"})
    assert [v.ref for v in again] == ["task-b@v0.0.2"]
    with pytest.raises(NothingToCommit):
        registry.commit(model, names={"default": "task-a", "task_b": "task-b"})


# --- the Trainer callback ------------------------------------------------------------------------


class Rows(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Random token rows, the same each time for a seed."""

    def __init__(self, n: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.rows = torch.randint(0, 128, (n, 16), generator=generator)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.rows[i], "labels": self.rows[i]}


def train(
    tmp_path: Path, base_dir: Path, callbacks: list[TrainerCallback], **overrides: object
) -> Trainer:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    )
    options: dict[str, Any] = dict(
        output_dir=str(tmp_path / "trainer-out"),
        num_train_epochs=3,
        per_device_train_batch_size=8,
        learning_rate=5e-2,
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="epoch",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=0,
    )
    options.update(overrides)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(**options),
        train_dataset=Rows(24, 0),
        eval_dataset=Rows(8, 1),
        callbacks=callbacks,
    )
    trainer.train()
    return trainer


def test_callback_versions_every_epoch_and_marks_the_best(
    registry: Repo, base_model_dir: Path, tmp_path: Path
) -> None:
    from adaptergit.integrations.transformers import AdapterGitCallback

    callback = AdapterGitCallback(registry.root, name="bot", every="epoch")  # the one line
    trainer = train(tmp_path, base_model_dir, [callback])
    versions = registry.log("bot")
    assert [v.version for v in versions] == ["v0.0.3", "v0.0.2", "v0.0.1"]
    evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    for version, logged in zip(reversed(versions), evals, strict=True):
        assert version.metrics["eval_loss"] == pytest.approx(logged["eval_loss"])
        assert version.metrics["epoch"] == logged["epoch"]
        assert version.metrics["step"] == logged["step"]
        assert "eval_runtime" not in version.metrics and "train_loss" in version.metrics
    best = min(versions, key=lambda v: v.metrics["eval_loss"])
    assert registry.resolve("bot#best").version == best.version
    assert [v.stages for v in versions if v.stages] == [("best",)]
    assert callback.best is not None and callback.best.version == best.version
    assert versions[0].manifest is not None
    assert versions[0].manifest.base_model.name_or_path == str(base_model_dir)
    assert versions[-1].manifest is not None and versions[-1].manifest.message == "step 3, epoch 1"
    assert not (tmp_path / "trainer-out").exists() or not any((tmp_path / "trainer-out").iterdir())


def test_callback_on_saves_keeps_the_best_by_the_trainers_metric(
    registry: Repo, base_model_dir: Path, tmp_path: Path
) -> None:
    """'Keep the best by validation loss': the Trainer's own choice and #best agree."""
    from adaptergit.integrations.transformers import AdapterGitCallback

    trainer = train(
        tmp_path,
        base_model_dir,
        [AdapterGitCallback(registry.root, name="bot")],
        save_strategy="epoch",
        metric_for_best_model="eval_loss",
        load_best_model_at_end=True,
    )
    # the Trainer's checkpoints are all there, untouched by the callback
    checkpoints = sorted(p.name for p in (tmp_path / "trainer-out").iterdir())
    assert checkpoints == ["checkpoint-3", "checkpoint-6", "checkpoint-9"]
    assert trainer.state.best_model_checkpoint is not None
    best_step = int(trainer.state.best_model_checkpoint.rsplit("-", 1)[1])
    assert registry.resolve("bot#best").metrics["step"] == best_step
    assert len(registry.log("bot")) == 3


def test_callback_does_nothing_off_the_main_process(tmp_path: Path) -> None:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from adaptergit.integrations.transformers import AdapterGitCallback

    callback = AdapterGitCallback(tmp_path / "no-registry-here", name="bot", every="save")
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True)
    state = TrainerState(is_world_process_zero=False, global_step=5, epoch=1.0)
    model = tiny_peft_model()
    for event in ("on_train_begin", "on_epoch_end", "on_evaluate", "on_save", "on_train_end"):
        getattr(callback, event)(
            args, state, TrainerControl(), model=model, metrics={"eval_loss": 1.0}
        )
    assert callback.versions == [] and callback._repo is None
    with pytest.raises(ValueError, match="every"):
        AdapterGitCallback(tmp_path, name="bot", every="step")


def test_keep_last_drops_old_weights_only_where_the_remote_has_them(
    registry: Repo, base_model_dir: Path, tmp_path: Path
) -> None:
    from adaptergit.integrations.transformers import AdapterGitCallback

    registry.remote_add("storage", str(tmp_path / "dvc-storage"), default=True)
    callback = AdapterGitCallback(
        registry.root, name="bot", every="epoch", keep_last=1, metric="eval_loss"
    )
    train(tmp_path, base_model_dir, [callback])
    md5 = {v.ref: v.manifest.weights.md5 for v in callback.versions if v.manifest}
    # nothing was pushed yet: nothing may go
    assert all(registry.dvc.in_cache(m) for m in md5.values())
    registry.push()
    callback._evict_old()
    best = registry.resolve("bot#best").ref
    latest = callback.versions[-1].ref
    for ref, m in md5.items():
        assert registry.dvc.in_cache(m) == (ref in (best, latest)), ref
    # gone from the cache, not from the registry
    old = next(ref for ref in md5 if ref not in (best, latest))
    registry.checkout(old, to=tmp_path / "back")
    assert registry.dvc.in_cache(md5[old])


def test_collect_metrics_from_trainer_state() -> None:
    from transformers import TrainerState

    from adaptergit.integrations.transformers import collect_metrics

    state = TrainerState(global_step=20, epoch=2.0)
    state.log_history = [
        {"loss": 3.0, "step": 10},
        {"eval_loss": 2.5, "eval_runtime": 0.1, "eval_accuracy": 0.3, "step": 10},
        {"loss": 2.0, "step": 20},
        {"eval_loss": float("nan"), "eval_accuracy": 0.4, "eval_samples_per_second": 9.0},
    ]
    assert collect_metrics(state) == {
        "step": 20,
        "epoch": 2.0,
        "train_loss": 2.0,
        "eval_accuracy": 0.4,  # NaN cannot be a metric; timing is not a result
    }
