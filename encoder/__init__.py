"""The Echo-SPLADE encoder: decoder LLM + (LoRA) + echo input + SPLADE head.

Depends on torch, transformers and peft only; nothing here knows about clusters.
"""

from ._echo_splade_encoder import CONFIG_FILE, EchoSpladeEncoder
from ._echo_template import EchoInput, EchoTemplate
from ._naive_reference import naive_splade_weights
from ._model_registry import DEFAULT_MODEL, SHORT_NAMES, SMOLLM2_135M, TINY_MISTRAL, cache_dir, load_tokenizer, resolve_model
from ._flops_scheduler import FlopsScheduler
from ._sparse_vector import SparseVector
from ._splade_loss import SpladeLoss, flops
from ._splade_pooling import SpladePooling
from ._splade_trainer import SpladeTrainer, TrainingCollapsedError
from ._training_config import DEFAULT_LORA_TARGETS, TrainingConfig
from ._training_data import HELD_OUT_SPLITS, TrainingExample, document_text, load_training_examples

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_LORA_TARGETS",
    "DEFAULT_MODEL",
    "FlopsScheduler",
    "HELD_OUT_SPLITS",
    "SpladeLoss",
    "SpladeTrainer",
    "TrainingCollapsedError",
    "TrainingConfig",
    "TrainingExample",
    "document_text",
    "flops",
    "load_training_examples",
    "EchoInput",
    "EchoSpladeEncoder",
    "EchoTemplate",
    "SHORT_NAMES",
    "SMOLLM2_135M",
    "SparseVector",
    "SpladePooling",
    "TINY_MISTRAL",
    "cache_dir",
    "load_tokenizer",
    "naive_splade_weights",
    "resolve_model",
]
