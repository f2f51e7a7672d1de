"""Every PEFT method, every model family: commit, ``checkout --to``, ``PeftModel.from_pretrained``
and `adaptergit.load` give the trained model's outputs, and ``diff`` gives the numbers of the
full-matrix updates (PEFT's own ``get_delta_weight`` in float64, relative error < 1e-6).

Tiny bases are built from configs once per session and shared; one registry serves the module.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

import adaptergit
from adaptergit import Repo
from adaptergit.compare import AdapterDiff
from adaptergit.render import diff_lines

pytestmark = pytest.mark.filterwarnings("ignore")

# --- tiny bases, one per family ------------------------------------------------------------------


def _kw(**options: Any) -> dict[str, Any]:
    """Config options, some of which transformers' typed signatures do not list."""
    return options


def _llama(tied: bool = False) -> Any:
    import transformers as T

    return T.LlamaForCausalLM(
        T.LlamaConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=32,
            tie_word_embeddings=tied,
        )
    )


def _gpt2() -> Any:
    import transformers as T

    return T.GPT2LMHeadModel(
        T.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=32)
    )


def _t5() -> Any:
    import transformers as T

    return T.T5ForConditionalGeneration(
        T.T5Config(
            **_kw(
                vocab_size=64,
                d_model=32,
                d_kv=8,
                d_ff=48,
                num_layers=1,
                num_decoder_layers=1,
                num_heads=4,
                decoder_start_token_id=0,
                pad_token_id=0,
            )
        )
    )


def _bart() -> Any:
    import transformers as T

    return T.BartForConditionalGeneration(
        T.BartConfig(
            vocab_size=64,
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=48,
            decoder_ffn_dim=48,
            max_position_embeddings=32,
        )
    )


def _bert() -> Any:
    import transformers as T

    return T.BertForSequenceClassification(
        T.BertConfig(
            **_kw(
                vocab_size=64,
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=4,
                intermediate_size=48,
                num_labels=3,
            )
        )
    )


def _vit() -> Any:
    import transformers as T

    return T.ViTForImageClassification(
        T.ViTConfig(
            **_kw(
                image_size=16,
                patch_size=4,
                hidden_size=32,
                num_hidden_layers=1,
                num_attention_heads=4,
                intermediate_size=48,
                num_labels=3,
            )
        )
    )


def _llava() -> Any:
    import transformers as T

    vision = T.CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=8,
        patch_size=4,
    )
    text = T.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    return T.LlavaForConditionalGeneration(
        T.LlavaConfig(vision_config=vision, text_config=text, image_token_index=63)
    )


def _mixtral() -> Any:
    import transformers as T

    return T.MixtralForCausalLM(
        T.MixtralConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            num_local_experts=4,
            num_experts_per_tok=2,
        )
    )


IDS = torch.tensor([[3, 5, 7, 9, 11]])
PIXELS = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@dataclass(frozen=True)
class Family:
    build: Callable[[], Any]
    run: Callable[[Any], Any]  # the model's output to compare


def _lm(m: Any) -> Any:
    return m(input_ids=IDS).logits


def _seq2seq(m: Any) -> Any:
    return m(input_ids=IDS, decoder_input_ids=torch.tensor([[0, 4, 6]])).logits


FAMILIES = {
    "llama": Family(_llama, _lm),
    "llama-tied": Family(lambda: _llama(tied=True), _lm),
    "gpt2": Family(_gpt2, _lm),
    "t5": Family(_t5, _seq2seq),
    "bart": Family(_bart, _seq2seq),
    "bert": Family(_bert, _lm),
    "vit": Family(_vit, lambda m: m(pixel_values=PIXELS).logits),
    "llava": Family(_llava, _lm),
    "mixtral": Family(_mixtral, _lm),
}


@pytest.fixture(scope="session")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """family -> its tiny base model's folder, saved the first time it is asked for."""
    root = tmp_path_factory.mktemp("zoo-bases")
    made: dict[str, Path] = {}

    def base(family: str) -> Path:
        if family not in made:
            torch.manual_seed(0)
            FAMILIES[family].build().save_pretrained(root / family)
            made[family] = root / family
        return made[family]

    return base


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """One registry for the module (each case its own adapter name), made in isolation."""
    home = tmp_path_factory.mktemp("zoo-home")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Ada Tester",
            "GIT_AUTHOR_EMAIL": "ada@example.com",
            "GIT_COMMITTER_NAME": "Ada Tester",
            "GIT_COMMITTER_EMAIL": "ada@example.com",
            "DVC_NO_ANALYTICS": "1",
            "DVC_SITE_CACHE_DIR": str(home / "dvc-site"),
        }.items():
            mp.setenv(key, value)
        repo = Repo.init(tmp_path_factory.mktemp("zoo") / "registry")
    yield repo
    repo.close()


def base_model(folder: Path) -> Any:
    """A fresh copy of a base, loaded as the class its config.json names."""
    import transformers as T

    from adaptergit import modelclass

    target = modelclass.resolve_base(folder, None)
    return getattr(T, target.name).from_pretrained(folder).eval()


# --- the methods ---------------------------------------------------------------------------------

QV = ["q_proj", "v_proj"]


def lora(**kw: Any) -> Callable[[], Any]:
    from peft import LoraConfig

    return lambda: LoraConfig(**{"r": 4, "lora_alpha": 8, "target_modules": QV, **kw})


def config(cls: str, **kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        import peft

        return getattr(peft, cls)(**kw)

    return make


# (case, family, config, whether diff computes the update from factors)
CASES: list[tuple[str, str, Callable[[], Any], bool]] = [
    # LoRA and its variants
    ("lora", "llama", lora(task_type="CAUSAL_LM"), True),
    ("lora-no-task-type", "llama", lora(), True),
    ("lora-rslora", "llama", lora(use_rslora=True, r=8, lora_alpha=4), True),
    ("lora-dora", "llama", lora(use_dora=True, target_modules=r".*\.(q_proj|down_proj)"), True),
    (
        "lora-patterns",
        "llama",
        lora(
            rank_pattern={"^model.layers.0.self_attn.q_proj": 8},
            alpha_pattern={r"layers\.1\..*v_proj": 32},
        ),
        True,
    ),
    ("lora-bias", "llama", lora(lora_bias=True), True),
    ("lora-trainable-tokens", "llama", lora(trainable_token_indices=[3, 5, 7]), True),
    ("lora-embedding", "llama", lora(target_modules=["embed_tokens", "q_proj"]), True),
    (
        "lora-target-parameters",
        "llama",
        lora(target_modules=[], target_parameters=["self_attn.q_proj.weight"]),
        True,
    ),
    ("lora-lm-head-tied", "llama-tied", lora(target_modules=["q_proj", "lm_head"]), True),
    (
        "adalora",
        "llama",
        config(
            "AdaLoraConfig",
            init_r=4,
            target_r=2,
            total_step=10,
            target_modules=QV,
            task_type="CAUSAL_LM",
        ),
        True,
    ),
    # the other methods PEFT saves
    (
        "ia3",
        "llama",
        config(
            "IA3Config",
            target_modules=["q_proj", "v_proj", "down_proj"],
            feedforward_modules=["down_proj"],
            task_type="CAUSAL_LM",
        ),
        False,
    ),
    ("loha", "llama", config("LoHaConfig", r=4, alpha=8, target_modules=QV), True),
    ("lokr", "llama", config("LoKrConfig", r=4, alpha=8, target_modules=QV), True),
    (
        "lokr-decomposed",
        "llama",
        config(
            "LoKrConfig", r=2, alpha=4, decompose_both=True, decompose_factor=4, target_modules=QV
        ),
        True,
    ),
    (
        "vera",
        "llama",
        config("VeraConfig", r=4, target_modules=["q_proj", "v_proj", "down_proj"]),
        True,
    ),
    ("oft", "llama", config("OFTConfig", r=0, oft_block_size=8, target_modules=QV), False),
    ("boft", "llama", config("BOFTConfig", boft_block_size=4, target_modules=QV), False),
    ("hra", "llama", config("HRAConfig", r=4, target_modules=QV), False),
    (
        "prefix-tuning",
        "llama",
        config("PrefixTuningConfig", num_virtual_tokens=4, task_type="CAUSAL_LM"),
        False,
    ),
    (
        "prompt-tuning",
        "llama",
        config("PromptTuningConfig", num_virtual_tokens=4, task_type="CAUSAL_LM"),
        False,
    ),
    (
        "p-tuning",
        "llama",
        config(
            "PromptEncoderConfig",
            num_virtual_tokens=4,
            encoder_hidden_size=32,
            task_type="CAUSAL_LM",
        ),
        False,
    ),
    # model families
    (
        "gpt2-conv1d",
        "gpt2",
        lora(target_modules=["c_attn", "c_proj"], fan_in_fan_out=True, task_type="CAUSAL_LM"),
        True,
    ),
    ("t5-seq2seq", "t5", lora(target_modules=["q", "v"], task_type="SEQ_2_SEQ_LM"), True),
    (
        "t5-ia3",
        "t5",
        config(
            "IA3Config",
            target_modules=["k", "v", "wo"],
            feedforward_modules=["wo"],
            task_type="SEQ_2_SEQ_LM",
        ),
        False,
    ),
    (
        "bart-prefix",
        "bart",
        config("PrefixTuningConfig", num_virtual_tokens=4, task_type="SEQ_2_SEQ_LM"),
        False,
    ),
    (
        "bert-classifier",
        "bert",
        lora(target_modules=["query", "value"], modules_to_save=["classifier"]),
        True,
    ),
    (
        "vit-classifier",
        "vit",
        lora(target_modules=["q_proj", "v_proj", "projection"], modules_to_save=["classifier"]),
        True,
    ),
    (
        "llava-language-model",
        "llava",
        lora(target_modules=r".*language_model.*\.(q_proj|v_proj)"),
        True,
    ),
    (
        "mixtral-experts",
        "mixtral",
        lora(
            target_modules=[],
            task_type="CAUSAL_LM",
            target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"],
        ),
        True,
    ),
]


def perturb(model: Any, seed: int) -> None:
    """What training would do: every trainable parameter moves."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * 0.2)


def deltas(model: Any) -> dict[str, Any]:
    """diff's row name -> PEFT's full-matrix update, in float64: get_delta_weight of every tuner
    layer (one row per expert of a stacked MoE parameter)."""
    double = copy.deepcopy(model).double()
    found = {}
    for name, module in double.named_modules():
        if not hasattr(module, "get_delta_weight") or "default" not in _adapter_names(module):
            continue
        delta = module.get_delta_weight("default").detach()
        if hasattr(module, "parameter_name"):  # lora.ParamWrapper (target_parameters)
            outer = name
            while outer.endswith(".base_layer"):
                outer = outer[: -len(".base_layer")]
            pname = module.parameter_name
            row = outer if pname == "weight" else f"{outer}.{pname}"
            if module.num_experts > 1:
                for e in range(module.num_experts):
                    found[f"{row}[{e}]"] = delta[e]
                continue
            found[row] = delta
        else:
            found[name] = delta
    return found


def _adapter_names(module: Any) -> set[str]:
    names: set[str] = set()
    for attr in ("lora_A", "hada_w1_a", "lokr_w1", "lokr_w1_a", "vera_lambda_b", "lora_E"):
        value = getattr(module, attr, None)
        if isinstance(value, (torch.nn.ModuleDict, torch.nn.ParameterDict)):
            names.update(value.keys())
    return names


def check_numbers(diff: AdapterDiff, old: dict[str, Any], new: dict[str, Any]) -> int:
    """Compare every update row of `diff` with the full matrices; returns how many were."""
    rows = {m.name: m for m in diff.modules}
    checked = 0
    for name, d1 in old.items():
        d2 = new[name]
        n1, n2 = float(d1.norm()), float(d2.norm())
        if n1 == 0 and n2 == 0:
            continue  # e.g. an AdaLoRA module pruned to rank 0
        row = rows.get(name)
        assert row is not None and row.kind in ("lora", "loha", "lokr", "vera"), (
            name,
            sorted(rows),
        )
        rel = float((d2 - d1).norm()) / n1
        cosine = float((d1 * d2).sum()) / (n1 * n2)
        assert row.norm_old == pytest.approx(n1, rel=1e-6), name
        assert row.norm_new == pytest.approx(n2, rel=1e-6), name
        assert row.rel_change == pytest.approx(rel, rel=1e-6), name
        assert row.cosine == pytest.approx(cosine, rel=1e-6, abs=1e-9), name
        checked += 1
    return checked


# --- the round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "family", "make", "updates"), CASES, ids=[c[0] for c in CASES])
def test_round_trip(
    zoo: Repo,
    bases: Callable[[str], Path],
    tmp_path: Path,
    case: str,
    family: str,
    make: Callable[[], Any],
    updates: bool,
) -> None:
    from peft import PeftModel, get_peft_model

    run = FAMILIES[family].run
    base_dir = bases(family)
    torch.manual_seed(1)
    model = get_peft_model(base_model(base_dir), make())
    outputs, folders, references = [], [], []
    for seed in (1, 2):
        perturb(model, seed)
        model.eval()
        folders.append(tmp_path / f"v{seed}")
        model.save_pretrained(folders[-1])
        with torch.no_grad():
            outputs.append(run(model).clone())
        references.append(deltas(model) if updates else {})
        zoo.commit(folders[-1], name=case, base_model=base_dir, message=f"v{seed}")

    # v1: checkout --to gives PEFT's files back; PEFT and adaptergit.load (a folder) both load it
    exported = zoo.checkout(f"{case}@v0.0.1", to=tmp_path / "out")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (exported / name).read_bytes() == (folders[0] / name).read_bytes(), name
    with torch.no_grad():
        peft_loaded = PeftModel.from_pretrained(base_model(base_dir), exported).eval()
        assert torch.allclose(run(peft_loaded), outputs[0], atol=1e-6), "PeftModel.from_pretrained"
        ours = adaptergit.load(f"{case}@v0.0.1", base_dir, repo=zoo).eval()
        assert type(ours.base_model.model) is type(peft_loaded.base_model.model)
        assert torch.allclose(run(ours), outputs[0], atol=1e-6), "adaptergit.load, folder"
        # v2: adaptergit.load onto a model in memory, checked against that model
        ours = adaptergit.load(f"{case}@v0.0.2", base_model(base_dir), repo=zoo).eval()
        assert torch.allclose(run(ours), outputs[1], atol=1e-6), "adaptergit.load, in memory"

    diff = zoo.diff(f"{case}@v0.0.1", f"{case}@v0.0.2")
    assert diff.changed_modules
    if updates:
        assert check_numbers(diff, references[0], references[1]) > 0
        assert not diff.per_tensor
    else:
        assert diff.per_tensor and diff.per_tensor_note is not None
        assert all(m.kind == "tensor" for m in diff.modules)
        assert any(line.startswith("per-tensor only") for line in diff_lines(diff))


def test_every_method_peft_can_save_is_covered() -> None:
    """The cases above, plus the sweep below, reach every PEFT method this PEFT registers."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    covered = {c[2]().peft_type.value for c in CASES} | set(SWEEP) | set(NOT_SAVED)
    assert set(PEFT_TYPE_TO_CONFIG_MAPPING) - covered == set()


# Other methods PEFT saves: each one round trip on the tiny Llama (its tensors compared per tensor).
SWEEP: dict[str, dict[str, Any]] = {
    "BEFT": dict(target_modules=QV),
    "C3A": dict(block_size=8, target_modules=QV),
    "CARTRIDGE": dict(num_virtual_tokens=4),
    "CPT": dict(cpt_token_ids=[1, 2, 3], cpt_mask=[1, 1, 1], cpt_tokens_type_mask=[1, 2, 2]),
    "DEFT": dict(r=4, target_modules=QV),
    "DELORA": dict(r=4, target_modules=QV),
    "FOURIERFT": dict(n_frequency=64, target_modules=QV),
    "FROD": dict(target_modules=QV),
    "GLORA": dict(r=4, target_modules=QV),
    "GRALORA": dict(r=4, target_modules=QV),
    "HIRA": dict(r=4, target_modules=QV),
    "LILY": dict(r=4, target_modules=QV),
    "LN_TUNING": dict(target_modules=["input_layernorm"]),
    "MISS": dict(r=4, target_modules=QV),
    "MULTITASK_PROMPT_TUNING": dict(num_virtual_tokens=4),
    "OSF": dict(target_modules=QV),
    "PEANUT": dict(r=4, target_modules=QV),
    "PSOFT": dict(r=4, target_modules=QV),
    "PVERA": dict(r=4, target_modules=QV),
    "RANDLORA": dict(r=4, target_modules=QV),
    "ROAD": dict(group_size=8, target_modules=QV),
    "SHADOW": dict(r=4),
    "SHIRA": dict(r=4, target_modules=QV),
    "SUPERTUNING": dict(r=4, target_modules=QV),
    "TINYLORA": dict(r=4, target_modules=QV),
    "TRAINABLE_TOKENS": dict(target_modules=["embed_tokens"], token_indices=[3, 5]),
    "UNILORA": dict(r=4, target_modules=QV),
    "VBLORA": dict(vector_length=8, num_vectors=16, r=4, target_modules=QV),
    "WAVEFT": dict(n_frequency=64, target_modules=QV),
    "ADAPTION_PROMPT": dict(adapter_layers=1, adapter_len=4),
    "ADAMSS": dict(r=4, num_subspaces=2, target_modules=QV),
    "POLY": dict(r=4, n_tasks=1, target_modules=QV),
}
# Methods that do not save as one adapter folder: X-LoRA (sub-adapter folders: refused, see
# test_composite_methods_are_refused).
NOT_SAVED = {"XLORA"}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(SWEEP))
def test_method_sweep(zoo: Repo, bases: Callable[[str], Path], tmp_path: Path, method: str) -> None:
    from peft import PeftModel, PeftType, get_peft_model
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    if method == "ADAMSS":
        pytest.importorskip("sklearn")  # PEFT's AdaMSS needs scikit-learn (the dev extra has it)
    base_dir = bases("llama")
    options: dict[str, Any] = SWEEP[method]
    cfg = PEFT_TYPE_TO_CONFIG_MAPPING[PeftType(method)](task_type="CAUSAL_LM", **options)
    torch.manual_seed(1)
    model = get_peft_model(base_model(base_dir), cfg)
    name = method.lower().replace("_", "-")
    kwargs = (
        {"task_ids": torch.tensor([0])} if method in ("POLY", "MULTITASK_PROMPT_TUNING") else {}
    )
    for seed in (1, 2):
        perturb(model, seed)
        model.eval()
        model.save_pretrained(str(tmp_path / f"v{seed}"))
        with torch.no_grad():
            out = model(input_ids=IDS, **kwargs).logits.clone()
        zoo.commit(tmp_path / f"v{seed}", name=name, base_model=base_dir)
    exported = zoo.checkout(f"{name}@v0.0.2", to=tmp_path / "out")
    for file in ("adapter_config.json", "adapter_model.safetensors"):
        assert (exported / file).read_bytes() == (tmp_path / "v2" / file).read_bytes()
    with torch.no_grad():
        peft_loaded = PeftModel.from_pretrained(base_model(base_dir), exported).eval()
        assert torch.allclose(peft_loaded(input_ids=IDS, **kwargs).logits, out, atol=1e-6)
        ours = adaptergit.load(f"{name}@v0.0.2", base_dir, repo=zoo).eval()
        assert torch.allclose(ours(input_ids=IDS, **kwargs).logits, out, atol=1e-6)
    diff = zoo.diff(f"{name}@v0.0.1", f"{name}@v0.0.2")
    assert diff.changed_modules and diff.per_tensor


def test_composite_methods_are_refused(
    zoo: Repo, bases: Callable[[str], Path], tmp_path: Path
) -> None:
    """X-LoRA saves its sub-adapters in folders beside an empty top: refused in one line."""
    from peft import XLoraConfig, get_peft_model

    from adaptergit.errors import InvalidAdapter

    base_dir = bases("llama")
    subs = {}
    for i in range(2):
        sub = get_peft_model(
            base_model(base_dir), lora(task_type="CAUSAL_LM", init_lora_weights=False)()
        )
        sub.save_pretrained(tmp_path / f"lora{i}")
        subs[str(i)] = str(tmp_path / f"lora{i}")
    base = base_model(base_dir)
    base.config.use_cache = False
    xlora = get_peft_model(
        base, XLoraConfig(task_type="CAUSAL_LM", hidden_size=32, xlora_depth=1, adapters=subs)
    )
    xlora.save_pretrained(str(tmp_path / "xlora"))
    head = zoo.git.head()
    with pytest.raises(InvalidAdapter, match="X-LoRA"):
        zoo.commit(tmp_path / "xlora", name="xl")
    assert zoo.git.head() == head


# --- what the adapter applies to -----------------------------------------------------------------


def test_a_missing_adapter_key_is_an_error(
    zoo: Repo, bases: Callable[[str], Path], tmp_path: Path
) -> None:
    """PEFT only warns when a module its config targets found no tensor; load refuses."""
    import json

    from peft import get_peft_model
    from safetensors.torch import load_file, save_file

    from adaptergit.errors import AdapterKeysMissing

    base_dir = bases("llama")
    model = get_peft_model(
        base_model(base_dir), lora(task_type="CAUSAL_LM", init_lora_weights=False)()
    )
    model.save_pretrained(tmp_path / "a")
    tensors = load_file(tmp_path / "a" / "adapter_model.safetensors")
    save_file(
        {k: v for k, v in tensors.items() if "layers.1.self_attn.v_proj" not in k},
        tmp_path / "a" / "adapter_model.safetensors",
    )
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"]
    zoo.commit(tmp_path / "a", name="holes", base_model=base_dir)
    with pytest.raises(
        AdapterKeysMissing, match=r"holes@v0.0.1 did not load onto LlamaForCausalLM: 2 of"
    ):
        adaptergit.load("holes", base_dir, repo=zoo)


def test_resized_vocabulary(zoo: Repo, bases: Callable[[str], Path], tmp_path: Path) -> None:
    """Whole embedding matrices of a resized vocabulary: verify says so, load resizes first. A
    LoRA on the embeddings alone cannot be completed: refused, saying to resize the base."""
    from click.testing import CliRunner
    from peft import get_peft_model

    from adaptergit.cli import cli
    from adaptergit.errors import IncompatibleBaseModel

    base_dir = bases("llama")
    resized = base_model(base_dir)
    resized.resize_token_embeddings(70)
    model = get_peft_model(resized, lora(task_type="CAUSAL_LM", init_lora_weights=False)())
    model.save_pretrained(tmp_path / "full", save_embedding_layers=True)
    with torch.no_grad():
        expected = model.eval()(input_ids=torch.tensor([[1, 2, 69]])).logits
    zoo.commit(tmp_path / "full", name="resized", base_model=base_dir)
    result = CliRunner().invoke(
        cli, ["-C", str(zoo.root), "verify", "resized", "--base-model", str(base_dir)]
    )
    assert result.exit_code == 0, result.output
    assert "resized to 70" in result.output and "as LlamaForCausalLM" in result.output
    check = adaptergit.check_base("resized", base_dir, repo=zoo)
    assert check.exact and check.resize_embeddings == 70
    with torch.no_grad():
        loaded = adaptergit.load("resized", base_dir, repo=zoo).eval()
        assert torch.allclose(
            loaded(input_ids=torch.tensor([[1, 2, 69]])).logits, expected, atol=1e-6
        )

    resized = base_model(base_dir)
    resized.resize_token_embeddings(70)
    model = get_peft_model(
        resized, lora(target_modules=["embed_tokens"], init_lora_weights=False)()
    )
    model.save_pretrained(tmp_path / "lora-only", save_embedding_layers=False)
    zoo.commit(tmp_path / "lora-only", name="resized-lora", base_model=base_dir)
    with pytest.raises(IncompatibleBaseModel, match="resized to 70 tokens"):
        adaptergit.check_base("resized-lora", base_dir, repo=zoo)
    # a LoRA on lm_head of the resized vocabulary (PEFT saves its base layer whole, not the input
    # embeddings): it fits once resized, and loads as PEFT loads it onto a resized base
    from peft import PeftModel

    resized = base_model(base_dir)
    resized.resize_token_embeddings(70)
    model = get_peft_model(
        resized, lora(target_modules=["q_proj", "lm_head"], init_lora_weights=False)()
    )
    model.save_pretrained(str(tmp_path / "head"), save_embedding_layers=True)
    zoo.commit(tmp_path / "head", name="resized-head", base_model=base_dir)
    assert adaptergit.check_base("resized-head", base_dir, repo=zoo).resize_embeddings == 70
    torch.manual_seed(3)
    by_peft = base_model(base_dir)
    by_peft.resize_token_embeddings(70)
    by_peft = PeftModel.from_pretrained(by_peft, str(tmp_path / "head")).eval()
    torch.manual_seed(3)
    with torch.no_grad():
        loaded = adaptergit.load("resized-head", base_dir, repo=zoo).eval()
        logits = loaded(input_ids=torch.tensor([[1, 2, 69]])).logits
        assert torch.allclose(logits, by_peft(input_ids=torch.tensor([[1, 2, 69]])).logits)
    # checked against the model passed, not the files: resized in memory, it fits
    model_in_memory = base_model(base_dir)
    model_in_memory.resize_token_embeddings(70)
    check = adaptergit.check_base(
        "resized-lora", model_in_memory, repo=zoo, base_model_path=base_dir
    )
    assert check.status == "exact" and check.resize_embeddings is None


def test_tied_lm_head_from_the_headers_alone(
    zoo: Repo, bases: Callable[[str], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a model to look at (transformers cannot build it), the safetensors headers are
    read: a tied lm_head, absent from the files, is the input embeddings."""
    from peft import get_peft_model

    from adaptergit import modelclass
    from adaptergit.errors import IncompatibleBaseModel

    base_dir = bases("llama-tied")
    model = get_peft_model(
        base_model(base_dir), lora(target_modules=["q_proj", "lm_head"], init_lora_weights=False)()
    )
    model.save_pretrained(tmp_path / "head")
    zoo.commit(tmp_path / "head", name="tied-head", base_model=base_dir)
    monkeypatch.setattr(modelclass, "skeleton", lambda *args: None)
    check = adaptergit.check_base("tied-head", base_dir, repo=zoo)
    assert check.exact and check.model_class is None and check.modules == 3  # 2 q_proj, lm_head
    # the same files with embeddings not tied: no lm_head anywhere
    import json
    import shutil

    untied = tmp_path / "untied"
    shutil.copytree(base_dir, untied)
    config = json.loads((untied / "config.json").read_text())
    (untied / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": False}))
    with pytest.raises(IncompatibleBaseModel, match=r"module lm_head .* no such module"):
        adaptergit.check_base("tied-head", untied, repo=zoo, allow_base_mismatch=True)


def test_old_checkpoint_names_map_as_peft_maps_them(
    zoo: Repo, bases: Callable[[str], Path], tmp_path: Path
) -> None:
    """An adapter saved before transformers renamed LLaVA's modules (language_model.model.*) fits,
    as PEFT converts it on loading; ViT's old names are no longer converted by PEFT: refused."""
    import json

    from safetensors.torch import load_file, save_file

    from adaptergit.errors import IncompatibleBaseModel

    for family, old, new in (
        (
            "llava",
            "base_model.model.language_model.model.",
            "base_model.model.model.language_model.",
        ),
        (
            "vit",
            "base_model.model.vit.encoder.layer.0.attention.attention.query",
            "base_model.model.vit.layers.0.attention.q_proj",
        ),
    ):
        from peft import get_peft_model

        target = r".*language_model.*\.q_proj" if family == "llava" else ["q_proj"]
        model = get_peft_model(
            base_model(bases(family)), lora(target_modules=target, init_lora_weights=False)()
        )
        model.save_pretrained(tmp_path / family)
        weights = tmp_path / family / "adapter_model.safetensors"
        tensors = load_file(weights)
        assert any(k.startswith(new) for k in tensors)
        save_file({k.replace(new, old): v for k, v in tensors.items()}, weights)
        config = json.loads((tmp_path / family / "adapter_config.json").read_text())
        (tmp_path / family / "adapter_config.json").write_text(json.dumps(config))
        zoo.commit(tmp_path / family, name=f"old-{family}", base_model=bases(family))
    assert adaptergit.check_base("old-llava", bases("llava"), repo=zoo).exact
    with pytest.raises(IncompatibleBaseModel, match="no such module"):
        adaptergit.check_base("old-vit", bases("vit"), repo=zoo)


def test_model_card_names_the_class_load_uses(
    zoo: Repo, bases: Callable[[str], Path], tmp_path: Path
) -> None:
    from peft import get_peft_model

    for family, target, pipeline in (
        ("llama", QV, "text-generation"),
        ("vit", ["q_proj"], "image-classification"),
    ):
        model = get_peft_model(
            base_model(bases(family)), lora(target_modules=target, init_lora_weights=False)()
        )
        model.save_pretrained(tmp_path / family)  # no task_type: PEFT records auto_mapping
        zoo.commit(tmp_path / family, name=f"card-{family}", base_model=bases(family))
        card = (
            zoo.checkout(f"card-{family}", to=tmp_path / f"out-{family}") / "README.md"
        ).read_text()
        cls = "LlamaForCausalLM" if family == "llama" else "ViTForImageClassification"
        assert f"from transformers import {cls}" in card and f"pipeline_tag: {pipeline}" in card


def test_moe_rows_are_named_by_the_base_or_the_config(
    zoo: Repo, bases: Callable[[str], Path], tmp_path: Path
) -> None:
    """Nested wrappers of target_parameters: the inner one is the parameter the model registers
    first. With the base on disk its order counts; without, the config's order stands in."""
    from peft import get_peft_model

    from adaptergit import modelclass
    from adaptergit.compare import compare_weights

    base_dir = bases("mixtral")
    targets = ["mlp.experts.down_proj", "mlp.experts.gate_up_proj"]  # not the model's order
    model = get_peft_model(
        base_model(base_dir), lora(target_modules=[], target_parameters=targets)()
    )
    for seed in (1, 2):
        perturb(model, seed)
        model.save_pretrained(str(tmp_path / f"v{seed}"))
    config = model.peft_config["default"].to_dict()
    config["target_parameters"] = targets
    weights = [tmp_path / f"v{seed}" / "adapter_model.safetensors" for seed in (1, 2)]
    view = modelclass.base_view(str(base_dir), config)
    assert view is not None
    named = {
        m.name
        for m in compare_weights(*weights, old_config=config, new_config=config, base=view.module)
    }
    layer = "base_model.model.model.layers.0.mlp.experts"
    assert named == {f"{layer}.gate_up_proj[{e}]" for e in range(4)} | {
        f"{layer}.down_proj[{e}]" for e in range(4)
    }
    # without the base, the config order names the inner wrapper: here it is wrong, by design
    guessed = {m.name for m in compare_weights(*weights, old_config=config, new_config=config)}
    assert len(guessed) == 8 and all("[" in name for name in guessed)
