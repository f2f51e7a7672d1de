"""The Trainer callback on a resumed run, in the training log, and what keep_last says it kept."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch

from adaptergit import Repo

from .conftest import tiny_peft_model

if TYPE_CHECKING:
    from transformers import TrainerState, TrainingArguments

    from adaptergit.integrations.transformers import AdapterGitCallback


def events(
    callback: AdapterGitCallback, state: TrainerState, model: Any, metrics: dict[str, float]
) -> TrainingArguments:
    """One epoch's end as the Trainer calls it: epoch end, then evaluation."""
    from transformers import TrainerControl, TrainingArguments

    args = TrainingArguments(
        output_dir="unused", report_to="none", use_cpu=True, metric_for_best_model="eval_loss"
    )
    state.log_history.append({**metrics, "step": state.global_step})
    callback.on_epoch_end(args, state, TrainerControl(), model=model)
    callback.on_evaluate(args, state, TrainerControl(), model=model, metrics=metrics)
    return args


def fresh(registry: Repo) -> Repo:
    """The test's own Repo, its index re-read after the callback's Repo moved tags."""
    registry.registry.refresh()
    return registry


def test_a_resumed_run_keeps_the_trainers_restored_best(
    registry: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from adaptergit.integrations.transformers import AdapterGitCallback

    model = tiny_peft_model(seed=1)
    first = AdapterGitCallback(registry.root, name="bot", every="epoch")
    state = TrainerState(global_step=4, epoch=1.0)
    events(first, state, model, {"eval_loss": 1.0})
    assert registry.resolve("bot#best").version == "v0.0.1"

    # the run is interrupted; a new process resumes from the checkpoint the Trainer restores
    restored = TrainerState(global_step=4, epoch=1.0, best_metric=1.0)
    restored.log_history = [{"eval_loss": 1.0, "step": 4}]
    resumed = AdapterGitCallback(registry.root, name="bot", every="epoch")
    args = TrainingArguments(
        output_dir="unused", report_to="none", use_cpu=True, metric_for_best_model="eval_loss"
    )
    resumed.on_train_begin(args, restored, TrainerControl())
    assert resumed.best is not None and resumed.best.version == "v0.0.1"
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "lora_B" in n).add_(1.0)
    restored.global_step, restored.epoch = 8, 2.0
    events(resumed, restored, model, {"eval_loss": 2.0})  # worse than the restored best
    assert fresh(registry).resolve("bot").version == "v0.0.2"
    assert registry.resolve("bot#best").version == "v0.0.1"
    out = capsys.readouterr().out
    assert "adaptergit: resumed at step 4; best eval_loss so far 1" in out
    assert "adaptergit: recorded bot@v0.0.2 (step 8, epoch 2, eval_loss 2)" in out
    assert "#best" not in out.split("bot@v0.0.2", 1)[1].splitlines()[0]


def test_one_line_per_version_through_the_trainers_logger_when_it_shows_info(
    registry: Repo, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from transformers import TrainerState
    from transformers.utils import logging as hf_logging

    from adaptergit.integrations.transformers import AdapterGitCallback

    callback = AdapterGitCallback(registry.root, name="bot", every="epoch")
    model = tiny_peft_model(seed=2)
    events(callback, TrainerState(global_step=3, epoch=1.0), model, {"eval_loss": 1.5})
    assert capsys.readouterr().out.count("adaptergit: recorded bot@v0.0.1") == 1
    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity(logging.INFO)  # TrainingArguments(log_level="info")
    try:
        with caplog.at_level(logging.INFO, logger="transformers.trainer"):
            with torch.no_grad():
                next(p for n, p in model.named_parameters() if "lora_B" in n).add_(1.0)
            events(callback, TrainerState(global_step=6, epoch=2.0), model, {"eval_loss": 1.2})
    finally:
        hf_logging.set_verbosity(before)
    lines = [r.getMessage() for r in caplog.records if r.name == "transformers.trainer"]
    assert lines == [
        "adaptergit: recorded bot@v0.0.2 (step 6, epoch 2, eval_loss 1.2), now bot#best"
    ]
    assert "bot@v0.0.2" not in capsys.readouterr().out  # not twice
    quiet = AdapterGitCallback(registry.root, name="other", every="epoch", quiet=True)
    events(quiet, TrainerState(global_step=3, epoch=1.0), model, {"eval_loss": 1.5})
    assert "other@v0.0.1" not in capsys.readouterr().out


def test_keep_last_says_what_it_kept_and_why(
    registry: Repo, base_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import TrainerState

    from adaptergit.integrations.transformers import AdapterGitCallback

    callback = AdapterGitCallback(registry.root, name="bot", every="epoch", keep_last=1)
    model = tiny_peft_model(seed=3)
    for step, loss in ((2, 1.0), (4, 1.5), (6, 1.7)):
        with torch.no_grad():
            next(p for n, p in model.named_parameters() if "lora_B" in n).add_(0.5)
        events(callback, TrainerState(global_step=step, epoch=step / 2), model, {"eval_loss": loss})
    out = capsys.readouterr().out
    # v0.0.1 holds #best; v0.0.2 has nowhere safe to go: both are said once, with the reason
    assert out.count("kept the weights of bot@v0.0.1 in the local cache: holds a stage") == 1
    assert "bot@v0.0.2 in the local cache: there is no default DVC remote" in out
    registry.remote_add("storage", str(tmp_path / "store"), default=True)
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "lora_B" in n).add_(0.5)
    events(callback, TrainerState(global_step=8, epoch=4.0), model, {"eval_loss": 1.9})
    out = capsys.readouterr().out
    assert "bot@v0.0.2, bot@v0.0.3 in the local cache: DVC remote 'storage' does not hold" in out
    fresh(registry).push()
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "lora_B" in n).add_(0.5)
    events(callback, TrainerState(global_step=10, epoch=5.0), model, {"eval_loss": 2.0})
    out = capsys.readouterr().out
    assert "removed the weights of bot@v0.0.2, bot@v0.0.3, bot@v0.0.4 from the local cache" in out
    for ref, cached in (("bot@v0.0.1", True), ("bot@v0.0.2", False), ("bot@v0.0.5", True)):
        assert registry.dvc.in_cache(fresh(registry).resolve(ref).weights.md5) == cached


@pytest.mark.slow
def test_a_real_resumed_trainer_run(registry: Repo, base_model_dir: Path, tmp_path: Path) -> None:
    """Interrupted after two saved epochs, resumed for a third that goes badly: #best stays."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from adaptergit.integrations.transformers import AdapterGitCallback

    class Diverge(TrainerCallback):
        def on_epoch_begin(
            self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any
        ) -> None:
            if state.epoch >= 2:
                with torch.no_grad():
                    for n, p in model.named_parameters():
                        if "lora_B" in n:
                            p.add_(
                                torch.randn(p.shape, generator=torch.Generator().manual_seed(7))
                                * 10
                            )

    def trainer(epochs: int) -> Trainer:
        torch.manual_seed(0)
        model = get_peft_model(
            AutoModelForCausalLM.from_pretrained(base_model_dir),
            LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
        )
        args = TrainingArguments(
            output_dir=str(tmp_path / "out"),
            num_train_epochs=epochs,
            per_device_train_batch_size=8,
            learning_rate=5e-2,
            eval_strategy="epoch",
            save_strategy="epoch",
            report_to="none",
            metric_for_best_model="eval_loss",
            use_cpu=True,
            disable_tqdm=True,
            seed=0,
        )
        callbacks = [AdapterGitCallback(registry.root, name="bot"), Diverge()]
        data = [
            {"input_ids": torch.arange(i, i + 8) % 64, "labels": torch.arange(i, i + 8) % 64}
            for i in range(16)
        ]
        return Trainer(
            model=model, args=args, train_dataset=data, eval_dataset=data[:8], callbacks=callbacks
        )

    trainer(2).train()
    best_before = fresh(registry).resolve("bot#best")
    resumed = trainer(3)
    resumed.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-4"))
    fresh(registry)
    assert [v.version for v in registry.log("bot")] == ["v0.0.3", "v0.0.2", "v0.0.1"]
    assert resumed.state.best_model_checkpoint is not None
    best_step = int(resumed.state.best_model_checkpoint.rsplit("-", 1)[1])
    assert registry.resolve("bot#best").metrics["step"] == best_step
    assert registry.resolve("bot#best").version == best_before.version
