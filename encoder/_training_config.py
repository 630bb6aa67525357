from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, get_args

from ._model_registry import SMOLLM2_135M
from ._splade_pooling import Normalize
from ._vocab_filter import DEFAULT_EXCLUDE, VocabFilter

#: The attention and MLP projections of Llama/Mistral-style decoders.
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainingConfig:
    """Everything that defines a training run (saved next to the adapter and in every checkpoint).

    Args:
        model: base model name/path or short name.
        gguf_file: load the base model from this GGUF file.
        max_length: model input tokens per text, template and both copies included (texts are truncated).
        steps: optimizer steps of the LoRA stage (0: no LoRA, only the head stage).
        batch_size: queries per micro-batch (each with its positive and hard negative, if any).
        grad_accum: micro-batches per optimizer step (contrastive negatives stay within a micro-batch).
        learning_rate, warmup_steps, weight_decay, max_grad_norm: AdamW with linear warm-up and decay.
        lora_r, lora_alpha, lora_dropout, lora_targets: the LoRA adapter.
        lora_layers: only adapt these decoder layers (``None``: all); fewer, top layers train faster.
        train_modules: modules trained in full next to the LoRA (PEFT ``modules_to_save``), matched by
            name suffix, e.g. ``("model.norm",)`` for the final norm that feeds the LM head.
        lambda_q, lambda_d, flops_ramp_steps: FLOPS regularisation and its quadratic warm-up.
        temperature: InfoNCE temperature on dot-product scores.
        seed: data order, initialisation and dropout.
        checkpoint_every: save a resumable checkpoint every N steps (0: only at the end).
        keep_checkpoints: how many recent checkpoints to keep.
        gradient_checkpointing: recompute activations in the backward pass to save memory.
        collapse_patience: stop after this many consecutive steps with all-zero vectors.
        echo: echo the input (``False``: ablation).
        normalize: what the SPLADE head pools: ``"none"`` raw logits (the paper), ``"log_softmax"``
            per-position log-probabilities (see :class:`SpladePooling`).
        vocab_bias_init: start a trainable per-vocabulary bias (:class:`VocabBias`) at this constant
            (``None``: no bias). With ``normalize="log_softmax"`` it is the log-probability threshold
            ``-b`` a token must pass to get weight.
        head_steps: steps of the head stage, run before the LoRA stage: only the vocabulary bias
            is trained, on max-pooled logits computed once per distinct training text (exact, since
            the bias commutes with the max; no backbone passes, so thousands of steps take seconds).
            Holds ``texts x vocab`` float16 in memory.
        head_batch_size: queries per head-stage step (in-batch negatives are cheap there).
        head_learning_rate: Adam learning rate of the bias (both stages).
        exclude: vocabulary categories the head never emits (:class:`VocabFilter`); default
            special, whitespace-only and punctuation-only tokens. ``()`` keeps all.
        exclude_tokens: extra vocabulary strings the head never emits.
    """

    model: str = SMOLLM2_135M  # the backbone (the built-in trained encoder is DEFAULT_MODEL)
    gguf_file: str | None = None
    max_length: int = 256
    steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1
    learning_rate: float = 2e-4
    warmup_steps: int = 50
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: tuple[str, ...] = field(default_factory=lambda: DEFAULT_LORA_TARGETS)
    lora_layers: tuple[int, ...] | None = None
    train_modules: tuple[str, ...] = ()
    lambda_q: float = 5e-4
    lambda_d: float = 5e-4
    flops_ramp_steps: int = 100
    temperature: float = 1.0
    seed: int = 42
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    gradient_checkpointing: bool = True
    collapse_patience: int = 3
    echo: bool = True
    normalize: Normalize = "none"
    vocab_bias_init: float | None = None
    head_steps: int = 0
    head_batch_size: int = 64
    head_learning_rate: float = 0.05
    exclude: tuple[str, ...] = field(default_factory=lambda: tuple(DEFAULT_EXCLUDE))
    exclude_tokens: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.lora_targets = tuple(self.lora_targets)
        self.train_modules = tuple(self.train_modules)
        self.exclude = tuple(self.exclude)
        self.exclude_tokens = tuple(self.exclude_tokens)
        VocabFilter(self.exclude, self.exclude_tokens)  # type: ignore[arg-type]  # validates the names
        if self.lora_layers is not None:
            self.lora_layers = tuple(int(i) for i in self.lora_layers)
        positive = (
            "max_length",
            "batch_size",
            "head_batch_size",
            "grad_accum",
            "lora_r",
            "lora_alpha",
            "collapse_patience",
            "keep_checkpoints",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        non_negative = (
            "steps",
            "head_steps",
            "warmup_steps",
            "weight_decay",
            "lambda_q",
            "lambda_d",
            "flops_ramp_steps",
            "checkpoint_every",
        )
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.learning_rate <= 0 or self.temperature <= 0 or self.max_grad_norm <= 0:
            raise ValueError("learning_rate, temperature and max_grad_norm must be > 0")
        if self.normalize not in get_args(Normalize):
            raise ValueError(f"normalize must be one of {list(get_args(Normalize))}, got {self.normalize!r}")
        if self.head_steps and self.vocab_bias_init is None:
            raise ValueError("head_steps > 0 trains the vocabulary bias: set vocab_bias_init too")
        if self.steps == 0 and self.head_steps == 0:
            raise ValueError("nothing to train: steps and head_steps are both 0")
        if self.head_learning_rate <= 0:
            raise ValueError(f"head_learning_rate must be > 0, got {self.head_learning_rate}")
        if not self.lora_targets:
            raise ValueError("lora_targets must name at least one module")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lora_targets"] = list(self.lora_targets)
        data["train_modules"] = list(self.train_modules)
        data["exclude"] = list(self.exclude)
        data["exclude_tokens"] = list(self.exclude_tokens)
        data["lora_layers"] = None if self.lora_layers is None else list(self.lora_layers)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training option(s) {unknown}; allowed: {sorted(known)}")
        return cls(**data)
