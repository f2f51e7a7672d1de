"""``adaptergit demo``: the whole workflow on a tiny built-in model, with nothing to download.

A small Llama-style causal LM is built from a config and saved as the base model; a LoRA is
trained on a short built-in text with the Trainer callback, which versions each epoch with its
eval loss and marks the best; the registry is pushed to a directory remote, cloned into a second
folder (another machine, in effect), and the first version is pulled there and loaded with PEFT,
whose outputs are compared with the outputs recorded when that version was made.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptergit.errors import InvalidInput, InvalidManifest
from adaptergit.integrations import require_training_stack

NAME = "demo-bot"
EPOCHS = 3
SEQ_LEN = 32
SEED = 7
# A byte-level model: no tokenizer files needed, token id = byte value.
MODEL_CONFIG: dict[str, Any] = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=4,
    max_position_embeddings=SEQ_LEN,
)
LORA_CONFIG: dict[str, Any] = dict(
    r=8,
    lora_alpha=16,
    lora_dropout=0.0,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    modules_to_save=["lm_head"],  # the frozen random head would otherwise hold the loss up
    task_type="CAUSAL_LM",
)
TEXT = """\
Version control for adapters keeps every experiment. A commit records the weights, the config
and the metrics; a tag names the version; a stage says which version is in production. The base
model is fingerprinted, so an adapter is never loaded on the wrong base. Weights travel through a
DVC remote, history travels through git, and a clone on another machine gets back any version,
byte for byte. Train, evaluate, commit, compare, promote, push, pull, load: the loop is short.
"""
PROBE = "The base model is"
WIDTH = 200  # the log tables in full, stages included, whatever the terminal


@dataclass(frozen=True, kw_only=True, slots=True)
class DemoResult:
    """What the demo did: where, which versions, the best one, and the output check."""

    directory: Path
    versions: tuple[str, ...]
    best: str | None
    loaded: str
    max_abs_diff: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "versions": list(self.versions),
            "best": self.best,
            "loaded": self.loaded,
            "max_abs_diff": self.max_abs_diff,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: Any) -> DemoResult:
        if not isinstance(data, dict):
            raise InvalidManifest("not an object", source="demo result")
        try:
            return cls(
                directory=Path(data["directory"]),
                versions=tuple(str(v) for v in data["versions"]),
                best=data["best"],
                loaded=str(data["loaded"]),
                max_abs_diff=float(data["max_abs_diff"]),
                seconds=float(data["seconds"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidManifest(f"bad field: {exc}", source="demo result") from None


Echo = Callable[[str], None]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep the libraries' own banners, progress bars and warnings out of the demo's output."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    previous = logging.root.manager.disable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        try:
            yield
        finally:
            logging.disable(previous)
            if bars:
                hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def _encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def _chunks(ids: list[int], length: int, stride: int) -> list[list[int]]:
    return [ids[i : i + length] for i in range(0, len(ids) - length + 1, stride)]


def run_demo(
    directory: Path | str | None = None, *, echo: Echo = print, progress: bool = False
) -> DemoResult:
    """Run the demo in `directory` (a new temporary folder by default), printing each step."""
    started = time.monotonic()
    require_training_stack("adaptergit demo")
    if directory is None:
        root = Path(tempfile.mkdtemp(prefix="adaptergit-demo-"))
    else:
        root = Path(directory).absolute()
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise InvalidInput(f"{root} is not an empty folder; give the demo a new or empty one")
        root.mkdir(parents=True, exist_ok=True)
    with _quiet():
        return _run(root, echo, progress, started)


def _step(echo: Echo, command: str, note: str = "") -> None:
    echo("")
    echo(f"$ {command}" + (f"    # {note}" if note else ""))


def _run(root: Path, echo: Echo, progress: bool, started: float) -> DemoResult:
    from adaptergit.gitrepo import GitRepo
    from adaptergit.render import log_table
    from adaptergit.repo import Repo

    registry_dir = root / "registry"
    base_dir = root / "base-model"
    echo(f"adaptergit demo in {root}")

    _step(echo, "adaptergit init registry && cd registry")
    repo = Repo.init(registry_dir)
    echo(f"Initialised adaptergit registry in {repo.root}")

    _step(echo, "python make_base.py", "a tiny causal LM from a config, saved as the base model")
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(SEED)
    LlamaForCausalLM(LlamaConfig(**MODEL_CONFIG)).save_pretrained(base_dir)
    echo(f"saved {base_dir.name}/ ({sum(p.stat().st_size for p in base_dir.iterdir()) // 1000} kB)")

    _step(
        echo,
        "python train.py",
        f"Trainer(..., callbacks=[AdapterGitCallback(name={NAME!r}, every='epoch')])",
    )
    versions, best, recorded = _train(repo, base_dir, echo, progress)

    _step(echo, "adaptergit log")
    for line in log_table(repo.log(NAME), width=WIDTH):
        echo(line)

    storage = root / "dvc-storage"
    origin = root / "origin.git"
    _step(echo, f"adaptergit remote add storage {storage} --default")
    repo.remote_add("storage", str(storage), default=True)
    echo(f"added DVC remote storage ({storage}) as the default")
    _step(echo, f"git init --bare {origin} && git remote add origin {origin}")
    GitRepo.init_bare(origin)
    repo.git.add_remote("origin", str(origin))
    _step(echo, "adaptergit push")
    pushed = repo.push()
    echo(
        f"weights: uploaded {', '.join(pushed.uploaded) or 'nothing'} to DVC remote {pushed.remote}"
    )
    echo(f"git: pushed {len(pushed.git_refs)} ref(s) to {pushed.git_remote}")

    laptop = root / "laptop"
    first = versions[0]
    _step(echo, f"git clone {origin} {laptop} && cd {laptop}", "another machine, in effect")
    GitRepo.clone(str(origin), laptop).close()
    clone = Repo(laptop)
    _step(echo, f"adaptergit pull {first}")
    fetched = clone.pull([first])
    echo(f"fetched {', '.join(fetched.fetched) or 'nothing'}; checked out {first}")

    _step(echo, f"adaptergit checkout {NAME}#best --to hub-export", "README.md: a Hub model card")
    export = clone.checkout(f"{NAME}#best", to=laptop.parent / "hub-export")
    echo(
        f"{clone.resolve(f'{NAME}#best').ref} -> {export} ({', '.join(sorted(p.name for p in export.iterdir()))})"
    )

    _step(
        echo,
        f"python -c \"import adaptergit; adaptergit.load('{first}', '{base_dir}')\"",
        "checks the base model's fingerprint, then PEFT loads it",
    )
    import adaptergit

    model = adaptergit.load(first, base_dir, repo=clone)
    with torch.no_grad():
        logits = model(torch.tensor([_encode(PROBE)])).logits
    diff = float((logits - recorded[first]).abs().max())
    same = "identical" if diff == 0.0 else ("match" if diff < 1e-5 else "DIFFER")
    echo(
        f"loaded {first} on {base_dir.name}: outputs {same} to those saved at training time (max |Δ| = {diff:.1e})"
    )

    _step(echo, "adaptergit log", "in the clone: versions, metrics and stages came with git")
    for line in log_table(clone.log(NAME), width=WIDTH):
        echo(line)
    clone.close()
    repo.close()
    return DemoResult(
        directory=root,
        versions=tuple(versions),
        best=best,
        loaded=first,
        max_abs_diff=diff,
        seconds=time.monotonic() - started,
    )


def _train(
    repo: Any, base_dir: Path, echo: Echo, progress: bool
) -> tuple[list[str], str | None, dict[str, Any]]:
    """Train the LoRA for EPOCHS epochs with the callback; return versions, best, probe outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from adaptergit.integrations.transformers import AdapterGitCallback

    ids = _encode(TEXT)
    split = int(len(ids) * 0.8)
    train_rows = _chunks(ids[:split], SEQ_LEN, SEQ_LEN // 2)
    eval_rows = _chunks(ids[split:], SEQ_LEN, SEQ_LEN // 2)

    class Rows(torch.utils.data.Dataset[dict[str, Any]]):
        def __init__(self, rows: list[list[int]]) -> None:
            self.rows = [torch.tensor(r) for r in rows]

        def __len__(self) -> int:
            return len(self.rows)

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {"input_ids": self.rows[i], "labels": self.rows[i]}

    torch.manual_seed(SEED)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    model = get_peft_model(base, LoraConfig(**LORA_CONFIG))
    versioning = AdapterGitCallback(repo, name=NAME, every="epoch")
    recorded: dict[str, Any] = {}
    probe = torch.tensor([_encode(PROBE)])

    class Show(TrainerCallback):
        """Progress, and each version's outputs on a probe, kept to check the loaded copy."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if progress:
                per_epoch = max(state.max_steps // EPOCHS, 1)
                epoch, done = divmod(state.global_step - 1, per_epoch)
                epoch, done = epoch + 1, done + 1
                bar = "#" * done + "." * (per_epoch - done)
                sys.stdout.write(
                    f"\r  epoch {epoch}/{EPOCHS} [{bar}] step {state.global_step}/{state.max_steps}"
                )
                sys.stdout.flush()

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if len(versioning.versions) > len(recorded):
                version = versioning.versions[-1]
                net = kwargs["model"]
                was_training = net.training
                net.eval()
                with torch.no_grad():
                    recorded[version.ref] = net(probe).logits.clone()
                net.train(was_training)
                if progress:
                    sys.stdout.write("\r\033[K")
                metrics = kwargs.get("metrics") or {}
                best = "  #best" if versioning.best is version else ""
                echo(
                    f"  epoch {state.epoch:g}/{EPOCHS}  eval_loss {metrics.get('eval_loss', float('nan')):.4f}"
                    f"  -> {version.ref}{best}"
                )

    args = TrainingArguments(
        output_dir=str(base_dir.parent / "trainer-output"),
        num_train_epochs=EPOCHS,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=8,
        learning_rate=2e-2,
        warmup_steps=0,
        eval_strategy="epoch",
        save_strategy="no",
        logging_strategy="epoch",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        seed=SEED,
        data_seed=SEED,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Rows(train_rows),
        eval_dataset=Rows(eval_rows),
        callbacks=[versioning, Show()],
    )
    for printer in (PrinterCallback, ProgressCallback):  # the demo prints its own progress
        trainer.remove_callback(printer)
    trainer.train()
    return (
        [v.ref for v in versioning.versions],
        versioning.best.ref if versioning.best else None,
        recorded,
    )


__all__ = ["DemoResult", "run_demo"]
