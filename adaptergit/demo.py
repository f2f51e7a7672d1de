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
from dataclasses import asdict, dataclass
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
        """A JSON-ready dict of the fields: the directory as text, `seconds` of wall time."""
        return asdict(self, dict_factory=_json_dict)

    @classmethod
    def from_dict(cls, data: Any) -> DemoResult:
        """Validate a dict written by `to_dict`.

        Args:
            data: the parsed JSON.

        Raises:
            InvalidManifest: not an object, or a field missing or of the wrong type.
        """
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


def _json_dict(items: list[tuple[str, Any]]) -> dict[str, Any]:
    """`dataclasses.asdict` factory: paths become text and tuples lists, as JSON has them."""
    return {
        k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
        for k, v in items
    }


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


def _in_work_tree(folder: Path) -> bool:
    """Whether `folder` is inside a git work tree."""
    from adaptergit.errors import NotARepository
    from adaptergit.gitrepo import GitRepo

    try:
        GitRepo(folder)
    except NotARepository:
        return False
    return True


def run_demo(directory: Path | str | None = None, *, echo: Echo = print) -> DemoResult:
    """Run the demo in `directory` (a new temporary folder by default), printing each step.

    Every step is printed as the command that does it, run in `directory`: the two Python steps
    are scripts the demo writes there (``make_base.py``, ``train.py``) and runs as ``python
    SCRIPT`` would, in this process; their own output goes to stdout.

    Raises:
        InvalidInput: `directory` exists and is not an empty folder.
        MissingDependency: torch, transformers or peft is not installed.
    """
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
        return _run(root, echo, started)


def _step(echo: Echo, command: str, note: str = "") -> None:
    echo("")
    echo(f"$ {command}" + (f"    # {note}" if note else ""))


# The demo's two Python steps, written into its folder as scripts (@NAME@ fields filled in).
MAKE_BASE = '''\
"""A tiny Llama-style causal LM, built from a config and saved as the base model (base-model/).

Written by `adaptergit demo`; `python make_base.py` in this folder makes it again.
"""

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

HERE = Path(__file__).resolve().parent
torch.manual_seed(@SEED@)
LlamaForCausalLM(LlamaConfig(**@CONFIG@)).save_pretrained(HERE / "base-model")
size = sum(p.stat().st_size for p in (HERE / "base-model").iterdir())
print(f"saved base-model/ ({size // 1000} kB)", flush=True)
'''

TRAIN = '''\
"""Train a LoRA on a short built-in text with the transformers Trainer; adaptergit's callback
records a version of it at each epoch end, with its eval loss, and marks the best one #best.

Written by `adaptergit demo`; `python train.py` in this folder trains again (more versions).
The Trainer's own output stays outside the registry, in trainer-output/.
"""

import sys
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from adaptergit.integrations.transformers import AdapterGitCallback

HERE = Path(__file__).resolve().parent
NAME = @NAME@
EPOCHS = @EPOCHS@
SEQ_LEN = @SEQ_LEN@
SEED = @SEED@
TEXT = @TEXT@
PROBE = @PROBE@  # each version's outputs on it are kept, to check the copy loaded later
LORA = @LORA@


def encode(text):
    return list(text.encode("utf-8"))  # a byte-level model: token id = byte value


class Rows(torch.utils.data.Dataset):
    def __init__(self, ids):
        step = SEQ_LEN // 2
        self.rows = [torch.tensor(ids[i : i + SEQ_LEN]) for i in range(0, len(ids) - SEQ_LEN + 1, step)]

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i], "labels": self.rows[i]}


class Show(TrainerCallback):
    """A progress bar on a terminal, and a line per epoch naming the version recorded."""

    def on_step_end(self, args, state, control, **kwargs):
        if sys.stdout.isatty():
            per_epoch = max(state.max_steps // EPOCHS, 1)
            done = (state.global_step - 1) % per_epoch + 1
            bar = "#" * done + "." * (per_epoch - done)
            sys.stdout.write(f"\\r  [{bar}] step {state.global_step}/{state.max_steps}")
            sys.stdout.flush()

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if len(versioning.versions) > len(recorded):
            version = versioning.versions[-1]
            was_training = model.training
            model.eval()
            with torch.no_grad():
                recorded[version.ref] = model(torch.tensor([encode(PROBE)])).logits.clone()
            model.train(was_training)
            best = "  #best" if versioning.best is version else ""
            clear = "\\r\\033[K" if sys.stdout.isatty() else ""
            loss = (metrics or {}).get("eval_loss", float("nan"))
            print(f"{clear}  epoch {state.epoch:g}/{EPOCHS}  eval_loss {loss:.4f}  -> {version.ref}{best}", flush=True)


ids = encode(TEXT)
split = int(len(ids) * 0.8)
torch.manual_seed(SEED)
model = get_peft_model(AutoModelForCausalLM.from_pretrained(HERE / "base-model"), LoraConfig(**LORA))
# quiet: Show prints a line per epoch naming the version instead of the callback's own line
versioning = AdapterGitCallback(HERE / "registry", name=NAME, every="epoch", quiet=True)
recorded = {}
args = TrainingArguments(
    output_dir=str(HERE / "trainer-output"),
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
    train_dataset=Rows(ids[:split]),
    eval_dataset=Rows(ids[split:]),
    callbacks=[versioning, Show()],
)
for printer in (PrinterCallback, ProgressCallback):  # Show prints a line per epoch instead
    trainer.remove_callback(printer)
trainer.train()
'''


def _script(path: Path, template: str, **fields: Any) -> Path:
    """Write a script from `template`, each ``@FIELD@`` replaced by the repr of its value."""
    text = template
    for key, value in fields.items():
        text = text.replace(f"@{key.upper()}@", repr(value))
    path.write_text(text)
    return path


def _run_script(path: Path) -> dict[str, Any]:
    """Run a script the demo wrote as ``python PATH`` would, but in this process (torch and
    transformers are loaded once); return its globals."""
    import runpy

    sys.stdout.flush()
    return runpy.run_path(str(path), run_name="__main__")


def _run(root: Path, echo: Echo, started: float) -> DemoResult:
    from adaptergit.gitrepo import GitRepo
    from adaptergit.render import log_table
    from adaptergit.repo import Repo

    registry_dir = root / "registry"
    base_dir = root / "base-model"
    storage = root / "dvc-storage"
    origin = root / "origin.git"
    laptop = root / "laptop"
    export_dir = root / "hub-export"
    echo(f"adaptergit demo in {root} (each command below starts there)")

    make_base = _script(root / "make_base.py", MAKE_BASE, seed=SEED, config=MODEL_CONFIG)
    _step(echo, f"python {make_base.name}", "a tiny causal LM from a config, saved as base-model/")
    _run_script(make_base)

    _step(
        echo,
        f"adaptergit init {registry_dir.name} --remote {storage}",
        "git + DVC, with a default DVC remote from the first commit",
    )
    if _in_work_tree(root):  # `init` there would make a folder of that repository
        _step(echo, f"git init {registry_dir.name}", "a repository of its own, inside yours")
        GitRepo.create(registry_dir)
    Repo.init(registry_dir, remote=str(storage)).close()
    echo(f"Initialised adaptergit registry in {registry_dir}")
    echo(f"DVC remote storage ({storage}) is the default")

    train = _script(
        root / "train.py",
        TRAIN,
        name=NAME,
        epochs=EPOCHS,
        seq_len=SEQ_LEN,
        seed=SEED,
        text=TEXT,
        probe=PROBE,
        lora=LORA_CONFIG,
    )
    _step(
        echo,
        f"python {train.name}",
        f"Trainer(..., callbacks=[AdapterGitCallback('registry', name={NAME!r}, every='epoch')])",
    )
    trained = _run_script(train)
    callback, recorded = trained["versioning"], trained["recorded"]
    versions = [v.ref for v in callback.versions]
    best = callback.best.ref if callback.best else None

    repo = Repo(registry_dir)
    _step(echo, f"cd {registry_dir.name} && adaptergit log")
    for line in log_table(repo.log(NAME), width=WIDTH):
        echo(line)

    _step(echo, f"git init --bare {origin} && git remote add origin {origin}")
    GitRepo.init_bare(origin)
    repo.git.add_remote("origin", str(origin))
    _step(echo, "adaptergit push")
    pushed = repo.push()
    echo(
        f"weights: uploaded {', '.join(pushed.uploaded) or 'nothing'} to DVC remote {pushed.remote}"
    )
    echo(f"git: pushed {len(pushed.git_updated)} ref(s) to {pushed.git_remote}")

    first = versions[0]
    _step(echo, f"git clone {origin} {laptop} && cd {laptop}", "another machine, in effect")
    GitRepo.clone(str(origin), laptop).close()
    clone = Repo(laptop)
    _step(echo, f"adaptergit pull {first}")
    fetched = clone.pull([first])
    echo(f"fetched {', '.join(fetched.fetched) or 'nothing'}; checked out {first}")

    _step(
        echo,
        f"adaptergit checkout {NAME}#best --to ../{export_dir.name}",
        "README.md: a Hub model card",
    )
    export = clone.checkout(f"{NAME}#best", to=export_dir)
    echo(
        f"{clone.resolve(f'{NAME}#best').ref} -> {export} ({', '.join(sorted(p.name for p in export.iterdir()))})"
    )

    _step(
        echo,
        f"python -c \"import adaptergit; adaptergit.load('{first}', '{base_dir}')\"",
        "checks the base model's fingerprint, then PEFT loads it",
    )
    import torch

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


__all__ = ["DemoResult", "run_demo"]
