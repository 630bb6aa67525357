"""The Echo-SPLADE encoder: decoder LLM + (LoRA) + echo input + SPLADE head.

Depends on torch, transformers and peft only; nothing here knows about clusters.
Names load on first use, so the torch-free ones (``DEFAULT_MODEL``,
``document_text``, ``load_training_examples``, the BEIR
readers ``read_beir_queries``/``read_beir_qrels``, ...) can be imported by the
cluster-side code without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "CONFIG_FILE": "._encoder_spec",
    "EncoderSpec": "._encoder_spec",
    "EchoSpladeEncoder": "._echo_splade_encoder",
    "to_sparse_vector": "._echo_splade_encoder",
    "MlmSpladeEncoder": "._mlm_splade_encoder",
    "MlmTemplate": "._mlm_template",
    "EchoInput": "._echo_template",
    "EchoTemplate": "._echo_template",
    "naive_splade_weights": "._naive_reference",
    "BUILTIN_MODELS": "._model_registry",
    "DEFAULT_MODEL": "._model_registry",
    "MODEL_GUIDE": "._model_registry",
    "SHORT_NAMES": "._model_registry",
    "SMOLLM2_135M": "._model_registry",
    "TINY_MISTRAL": "._model_registry",
    "cache_dir": "._model_registry",
    "load_tokenizer": "._model_registry",
    "resolve_model": "._model_registry",
    "FlopsScheduler": "._flops_scheduler",
    "SparseVector": "._sparse_vector",
    "check_mass": "._pruning",
    "prune_weights": "._pruning",
    "SpladeLoss": "._splade_loss",
    "flops": "._splade_loss",
    "SpladePooling": "._splade_pooling",
    "SpladeTrainer": "._splade_trainer",
    "TrainingCollapsedError": "._splade_trainer",
    "DEFAULT_LORA_TARGETS": "._training_config",
    "TrainingConfig": "._training_config",
    "VocabBias": "._vocab_bias",
    "Int8Linear": "._int8_linear",
    "FusedProjections": "._fused_projections",
    "ProjectionSlice": "._projection_slice",
    "QUANTIZE_MODES": "._quantization",
    "INT8_DOCUMENT_OPTIONS": "._quantization",
    "INT8_QUERY_OPTIONS": "._quantization",
    "SMOOTH_ALPHA": "._smooth_quant",
    "CALIBRATION_TEXTS": "._smooth_quant",
    "DEFAULT_EXCLUDE": "._vocab_filter",
    "VocabFilter": "._vocab_filter",
    "QREL_HEADER_IDS": "._beir_folder",
    "iter_beir_corpus": "._beir_folder",
    "iter_beir_qrels": "._beir_folder",
    "read_beir_qrels": "._beir_folder",
    "read_beir_queries": "._beir_folder",
    "HELD_OUT_SPLITS": "._training_data",
    "TrainingExample": "._training_data",
    "document_text": "._training_data",
    "load_training_examples": "._training_data",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
