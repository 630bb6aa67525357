from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import save_file

from ._echo_template import EchoInput, EchoTemplate
from ._encoder_spec import (
    CONFIG_FILE,
    CONFIG_KEYS,
    REV_KEYS,
    EncoderSpec,
    check_options,
    check_pruning,
    model_rev_digest,
)
from ._int8_linear import Int8Linear
from ._model_registry import DEFAULT_MODEL, load_model_from_gguf, resolve_model
from ._quantization import check_quantizable, quantize_backbone
from ._smooth_quant import CALIBRATION_TEXTS, activation_maxima, check_alpha, smooth_backbone, smoothed_inputs
from ._sparse_vector import SparseVector
from ._splade_pooling import Normalize, SpladePooling
from ._vocab_bias import BIAS_FILE, VocabBias
from ._vocab_filter import DEFAULT_EXCLUDE, ExcludeCategory, VocabFilter

logger = logging.getLogger(__name__)

CONFIG_FORMAT_VERSION = 1
TextKind = Literal["document", "query"]
#: What :meth:`EchoSpladeEncoder.max_logits` reports for a token the :class:`VocabFilter` excludes.
EXCLUDED_LOGIT = -1.0e4
_KINDS = ("document", "query")
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as given, else CUDA when present, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``dtype`` as given (a ``torch.dtype`` or one of the names in ``_DTYPES``), else bf16 on CUDA and fp32 on CPU."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)} or a torch.dtype, got {dtype!r}")
    return _DTYPES[dtype]


class EchoSpladeEncoder:
    """Echo-Mistral-SPLADE: a decoder LLM read through its LM head into sparse vocabulary vectors.

    Each text ``T`` is fed as ``[BOS] + tok(prefix) + T + tok(separator) + T``
    (see :class:`EchoTemplate`); the backbone runs to its final hidden states, and
    only the positions of the second copy of ``T`` go through the LM head
    (:class:`SpladePooling`): ``w_v = max_p log(1 + relu(logit_{p,v}))``.

    Texts are sorted by length into batches (order restored), right-padded with an
    attention mask and explicit position ids, so a text gets the same vector alone
    or in any batch. Texts longer than ``max_length`` are split into windows that are
    max-pooled together (``truncate=True`` keeps the first window only).

    Build it with :meth:`from_pretrained`; the constructor takes a loaded model.

    Args:
        model: a Hugging Face causal LM (LoRA merged), or a PEFT model while training.
        tokenizer: its tokenizer.
        model_id: the base model's name or path (a short name such as ``tiny-mistral`` stays short).
        document_prefix, document_separator: echo template of documents.
        query_prefix, query_separator: echo template of queries.
        echo: repeat the text (``False`` = ablation: one copy, all of it pooled).
        max_length: model input limit per window, template included.
        window_stride: text tokens between window starts (``None``: window size, no overlap).
        truncate: keep only the first window of a long text instead of windowing.
        batch_size: windows per forward pass.
        chunk_size: pooled positions per LM-head call.
        top_k: default pruning, keep the ``top_k`` largest weights (``None``: all).
        min_weight: default pruning, drop weights below it (``None``: keep all > 0).
        normalize: ``"none"``: pool raw logits (the paper); ``"log_softmax"``: pool per-position
            log-probabilities (see :class:`SpladePooling`; pair it with a :class:`VocabBias`).
        exclude: vocabulary categories the head never emits (:class:`VocabFilter`: ``"special"``,
            ``"whitespace"``, ``"punctuation"``); default all three. ``[]`` keeps every token (the paper).
        exclude_tokens: extra vocabulary strings the head never emits.
        gguf_file: GGUF file name the base model was loaded from, if any.
        adapter_state: LoRA adapter tensors that were merged into ``model`` (kept for saving and ``model_rev``).
        adapter_config: the matching PEFT config.
        vocab_bias: a per-vocabulary LM-head bias added before the activation (:class:`VocabBias`), or None.
        source: the name or path that loads this encoder back (``from_pretrained(source)``): a built-in
            short name or a trained folder, where ``model_id`` is only its base model; default ``model_id``.
            Recorded in the index so the query side loads the same encoder.
    """

    config_keys = list(CONFIG_KEYS)
    #: whether ``quantize("int8-token-head")`` applies (the SPLADE head reads ``get_output_embeddings()``)
    _int8_head_supported = True
    #: Config keys that change the vectors (hashed into ``model_rev``).
    rev_keys = list(REV_KEYS)

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        model_id: str,
        *,
        document_prefix: str = "Document:",
        document_separator: str = "\nDocument again:",
        query_prefix: str = "Query:",
        query_separator: str = "\nQuery again:",
        echo: bool = True,
        max_length: int = 512,
        window_stride: int | None = None,
        truncate: bool = False,
        batch_size: int = 8,
        chunk_size: int = 256,
        top_k: int | None = None,
        min_weight: float | None = None,
        normalize: Normalize = "none",
        exclude: Sequence[ExcludeCategory] = DEFAULT_EXCLUDE,
        exclude_tokens: Sequence[str] = (),
        gguf_file: str | None = None,
        adapter_state: dict[str, torch.Tensor] | None = None,
        adapter_config: Any = None,
        vocab_bias: VocabBias | None = None,
        source: str | None = None,
    ) -> None:
        check_options(max_length, batch_size, top_k, min_weight)
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = str(model_id)
        self.source = str(source) if source else self.model_id
        self.gguf_file = gguf_file
        self.document_prefix, self.document_separator = document_prefix, document_separator
        self.query_prefix, self.query_separator = query_prefix, query_separator
        self.echo = bool(echo)
        self.max_length = int(max_length)
        self.window_stride = window_stride
        self.truncate = bool(truncate)
        self.batch_size = int(batch_size)
        self.chunk_size = int(chunk_size)
        self.top_k = top_k
        self.min_weight = min_weight
        self.pooling = SpladePooling(chunk_size, normalize)
        self.normalize = normalize
        self.vocab_filter = VocabFilter(exclude, exclude_tokens)
        self.templates = {
            "document": EchoTemplate(tokenizer, document_prefix, document_separator, echo),
            "query": EchoTemplate(tokenizer, query_prefix, query_separator, echo),
        }
        for template in self.templates.values():  # fail now, not on the first long text
            template.windows([], self.max_length, window_stride)
        self.adapter_state = adapter_state
        self.adapter_config = adapter_config
        if vocab_bias is not None and vocab_bias.vocab_size != self.vocab_size:
            raise ValueError(
                f"vocab_bias has {vocab_bias.vocab_size} entries but the model's LM head has {self.vocab_size}"
            )
        self.vocab_bias = vocab_bias.to(self.device) if vocab_bias is not None else None
        #: ``[vocab]`` bool on the model's device, True where the head never emits (None: nothing excluded)
        self.excluded = (
            self.vocab_filter.mask(tokenizer, self.vocab_size).to(self.device) if self.vocab_filter.active else None
        )
        self._model_rev: str | None = None
        #: the :meth:`quantize` mode once it ran (``"int8"``, ...), else ``None`` (fp32 or ``dtype``)
        self.quantized: str | None = None
        #: the LM head the SPLADE head uses instead of the model's (``quantize="int8-token-head"``), else ``None``
        self.head_override: torch.nn.Module | None = None
        #: whether :meth:`compile` ran
        self.compiled = False

    # ------------------------------------------------------------------ loading / saving
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike = DEFAULT_MODEL,
        adapter: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_length: int | None = None,
        batch_size: int | None = None,
        gguf_file: str | None = None,
        quantize: str | None = None,
        compile: bool = False,
        smooth: float | None = None,
        **config: Any,
    ) -> EchoSpladeEncoder:
        """Load an encoder: an echo model on a causal LM, or an :class:`MlmSpladeEncoder` when the model's
        ``config.json`` names a masked-LM architecture (BERT-style SPLADE, e.g. ``splade-tiny``).

        Args:
            name_or_path: a Hugging Face causal LM directory or hub id, a short name
                (``echo-splade-smollm2-135m`` the built-in trained encoder, ``smollm2-135m``
                and ``tiny-mistral`` base models), or a directory written by
                :meth:`save_pretrained` (its ``echo_splade.json`` gives the base model,
                templates and defaults; its adapter and vocabulary bias are loaded).
            adapter: a PEFT LoRA adapter directory, merged into the weights for inference.
            device: default CUDA when present, else CPU.
            dtype: default bf16 on CUDA, fp32 on CPU.
            max_length: model input limit per window (default 512, or the saved value).
            batch_size: windows per forward pass (default 8, or the saved value).
            gguf_file: load the base model from this GGUF file inside ``name_or_path``.
            quantize: ``"int8"``, ``"int8-token"`` or ``"int8-token-head"``: int8 quantization of the backbone's
                linear layers (CPU only; see :meth:`quantize`). ``None`` (default): exact fp32 on the CPU, the
                reference.
            compile: ``torch.compile`` the backbone (after ``quantize``; see :meth:`compile`).
            smooth: with ``quantize``, migrate activation outliers into the weights first (SmoothQuant alpha;
                :data:`SMOOTH_ALPHA` is the value chosen on dev data; see :meth:`quantize`).
            **config: any other of :attr:`config_keys` (overrides saved values).

        Raises:
            ValueError: an unknown option, or precision options the model cannot run with on ``device``
                (:meth:`EncoderSpec.check_precision`), before any weight is loaded.
        """
        spec = EncoderSpec.resolve(name_or_path, adapter, max_length, batch_size, gguf_file, **config)
        torch_device = resolve_device(device)
        spec.check_precision(quantize, smooth, torch_device.type)  # before any weight is loaded
        vocab_bias = VocabBias.load(spec.directory) if spec.directory is not None else None
        name_or_path, adapter, gguf_file, merged, source = (
            spec.model_id,
            spec.adapter,
            spec.gguf_file,
            dict(spec.options),
            spec.source,
        )

        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch_dtype = resolve_dtype(dtype, torch_device)
        path = resolve_model(str(name_or_path))
        if spec.masked_lm:  # a BERT-style SPLADE model: the peer of the echo model, same interface
            from transformers import AutoModelForMaskedLM

            from ._mlm_splade_encoder import MlmSpladeEncoder  # lazy: that module imports this one (a cycle)

            model = AutoModelForMaskedLM.from_pretrained(path, dtype=torch_dtype).to(torch_device).eval()
            tokenizer = AutoTokenizer.from_pretrained(path)
            logger.info("loaded masked-LM SPLADE %s on %s (%s)", name_or_path, torch_device, torch_dtype)
            mlm = MlmSpladeEncoder(model, tokenizer, str(name_or_path), vocab_bias=vocab_bias, source=source, **merged)
            if quantize is not None:
                mlm.quantize(quantize, smooth=smooth)
            if compile:
                mlm.compile()
            return mlm
        if gguf_file:
            model = load_model_from_gguf(path, gguf_file, torch_dtype)
            tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=gguf_file)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
            tokenizer = AutoTokenizer.from_pretrained(path)
        adapter_state = adapter_config = None
        if adapter is not None:
            model, adapter_state, adapter_config = _merge_adapter(model, adapter)
        model.to(torch_device).eval()
        logger.info(
            "loaded %s%s on %s (%s)",
            name_or_path,
            f" + adapter {adapter}" if adapter else "",
            torch_device,
            torch_dtype,
        )
        encoder = cls(
            model,
            tokenizer,
            str(name_or_path),
            gguf_file=gguf_file,
            adapter_state=adapter_state,
            adapter_config=adapter_config,
            vocab_bias=vocab_bias,
            source=source,
            **merged,
        )
        if quantize is not None:
            encoder.quantize(quantize, smooth=smooth)
        if compile:
            encoder.compile()
        return encoder

    def quantize(
        self, mode: str = "int8", smooth: float | None = None, calibration: Sequence[str] | None = None
    ) -> None:
        """Run the backbone's linear layers in int8 (CPU only), in place; ``mode`` one of ``QUANTIZE_MODES``.

        Like ``dtype`` it is a precision choice of this process, not part of :attr:`model_rev`. Measured on the
        built-in (README, "Measured"): ``"int8"`` (one activation scale per call) is far from fp32 (mean cosine
        ~0.7); ``"int8-token"`` (per-token activation scales, :class:`Int8Linear`) ~0.986 and
        ``"int8-token-head"`` (also an int8 copy of the LM head for the SPLADE head) ~0.984, against >= 0.98 per
        text wanted: options for query encoding on a CPU, off by default. Otherwise the LM head keeps fp32.

        Args:
            mode: one of ``QUANTIZE_MODES``.
            smooth: SmoothQuant alpha in [0, 1] (``echo_splade.encoder._smooth_quant``): before quantizing, each
                linear layer's input channels are divided by ``max|X| ** smooth / max|W| ** (1 - smooth)`` and
                its weight columns multiplied by it, the division folded into the layer before (the same fp32
                function), so the per-channel activation outliers of the decoder move into the weights.
                :data:`SMOOTH_ALPHA` (0.7) was chosen on dev data (README). Echo (Llama-family) encoders only.
            calibration: texts encoded as queries, in fp32, to measure ``max|X|`` (default
                :data:`CALIBRATION_TEXTS`, generic sentences). Only with ``smooth``.

        Raises:
            ValueError: an unknown ``mode``, a model not on the CPU, a PEFT model being trained, ``smooth``
                outside [0, 1] or on an encoder without Llama-family layers, or ``calibration`` without ``smooth``.
        """
        if _is_peft(self.model):
            raise ValueError("quantize is for inference: merge the LoRA adapter first (from_pretrained does)")
        if self.quantized is not None:
            raise ValueError(f"the encoder is already quantized ({self.quantized})")
        if self.compiled:
            raise ValueError("quantize before compile: the compiled backbone would keep the old layers")
        check_quantizable(self.backbone, mode)  # before smoothing changes any weight
        if mode == "int8-token-head" and not self._int8_head_supported:
            raise ValueError(f"quantize={mode!r} is for echo (causal LM) encoders; use 'int8-token'")
        if calibration is not None and smooth is None:
            raise ValueError("calibration texts are for smooth: pass smooth (e.g. SMOOTH_ALPHA) too")
        if smooth is not None:
            self._smooth(smooth, list(calibration) if calibration is not None else list(CALIBRATION_TEXTS))
        quantize_backbone(self.backbone, mode)
        if mode == "int8-token-head":
            # a quantized COPY: the tied input embeddings keep the fp32 weight
            self.head_override = Int8Linear(self.model.get_output_embeddings())
        self.quantized = mode if smooth is None else f"{mode}+smooth{smooth:g}"

    def _smooth(self, alpha: float, calibration: list[str]) -> None:
        """Measure the linear layers' input maxima on ``calibration`` and migrate them (:func:`smooth_backbone`)."""
        check_alpha(alpha)
        if not calibration:
            raise ValueError("smooth needs at least one calibration text")
        names = smoothed_inputs(self.backbone)  # before calibrating: a backbone it cannot smooth is refused first
        maxima = activation_maxima(self.backbone, lambda: self.encode(calibration, "query"), names)
        smooth_backbone(self.backbone, maxima, alpha)

    def compile(self, dynamic: bool = True) -> None:
        """Compile the backbone with ``torch.compile`` (inductor; on the CPU it needs a C++ compiler), in place.

        The first forward pass pays the compilation (minutes on a 2-core CPU; inductor's on-disk cache shortens
        later processes' first call), then each pass skips Python overhead and fuses the element-wise work
        (norms, rotary embeddings, ``Int8Linear``'s activation quantization). ``dynamic=True``: one graph for
        every text length (without it each new length compiles again). Worth it in long-running processes
        (``SparseRetriever`` in a service), not in a one-off CLI call; README "Measured" has the figures.
        Combine it with :meth:`quantize` by quantizing first. Vectors: the same up to float rounding.

        Raises:
            ValueError: already compiled, or a PEFT model being trained.
        """
        if _is_peft(self.model):
            raise ValueError("compile is for inference: merge the LoRA adapter first (from_pretrained does)")
        if self.compiled:
            raise ValueError("the encoder is already compiled")
        self.backbone.compile(dynamic=dynamic)
        self.compiled = True

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Write the LoRA adapter and vocabulary bias (if any) and ``echo_splade.json``; :meth:`from_pretrained` reads them back."""
        target = Path(directory)
        target.mkdir(parents=True, exist_ok=True)
        if _is_peft(self.model):
            self.model.save_pretrained(str(target))
        elif self.adapter_state is not None:
            save_file(
                {k: v.contiguous() for k, v in self.adapter_state.items()}, str(target / "adapter_model.safetensors")
            )
            self.adapter_config.save_pretrained(str(target))
        if self.vocab_bias is not None:
            self.vocab_bias.save(target)
        else:
            (target / BIAS_FILE).unlink(missing_ok=True)
        payload = {
            "format_version": CONFIG_FORMAT_VERSION,
            "model_id": self.model_id,
            "gguf_file": self.gguf_file,
            **self.config,
        }
        (target / CONFIG_FILE).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        logger.info("saved encoder config%s to %s", " and adapter" if self.has_adapter else "", target)

    # ------------------------------------------------------------------ properties
    @property
    def exclude(self) -> list[str]:
        return list(self.vocab_filter.categories)

    @property
    def exclude_tokens(self) -> list[str]:
        return list(self.vocab_filter.tokens)

    @property
    def config(self) -> dict[str, Any]:
        """The encoder options (:attr:`config_keys`): echo templates, max_length, pruning defaults, ..."""
        return {key: getattr(self, key) for key in self.config_keys}

    @property
    def has_adapter(self) -> bool:
        """Whether anything was trained on top of the base model (a LoRA adapter or a vocabulary bias)."""
        return self.adapter_state is not None or _is_peft(self.model) or self.vocab_bias is not None

    @property
    def vocab_size(self) -> int:
        return int(self.model.get_output_embeddings().weight.shape[0])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def model_rev(self) -> str:
        """Stable short hash of the base model id, the adapter weights and the options that change the vectors."""
        if (
            self._model_rev is None
            or _is_peft(self.model)
            or (self.vocab_bias is not None and self.vocab_bias.bias.requires_grad)
        ):
            rev_config = {key: getattr(self, key) for key in self.rev_keys}
            if not self.vocab_filter.active:  # the hash of encoders from before the filter existed is unchanged
                del rev_config["exclude"], rev_config["exclude_tokens"]
            state = self.adapter_state
            if _is_peft(self.model):
                from peft import get_peft_model_state_dict

                state = get_peft_model_state_dict(self.model)
            state = dict(state or {})
            if self.vocab_bias is not None:
                state["vocab_bias"] = self.vocab_bias.bias
            self._model_rev = model_rev_digest(self.model_id, self.gguf_file, rev_config, state)
        return self._model_rev

    def id_to_token(self, token_id: int) -> str:
        return self.tokenizer.convert_ids_to_tokens(int(token_id))

    def tokens(self, vector: SparseVector) -> dict[str, float]:
        """``{token_string: weight}`` for a vector (token strings are unique per id)."""
        names = self.tokenizer.convert_ids_to_tokens(list(vector.indices))
        return dict(zip(names, vector.values))

    # ------------------------------------------------------------------ encoding
    def encode_documents(
        self, texts: Sequence[str], top_k: int | None = None, min_weight: float | None = None
    ) -> list[SparseVector]:
        """One :class:`SparseVector` per document, in input order."""
        return self.encode(texts, "document", top_k=top_k, min_weight=min_weight)

    def encode_queries(
        self, texts: Sequence[str], top_k: int | None = None, min_weight: float | None = None
    ) -> list[SparseVector]:
        """One :class:`SparseVector` per query, in input order."""
        return self.encode(texts, "query", top_k=top_k, min_weight=min_weight)

    def encode(
        self,
        texts: Sequence[str],
        kind: TextKind = "document",
        top_k: int | None = None,
        min_weight: float | None = None,
    ) -> list[SparseVector]:
        """Encode ``texts`` as ``kind`` (``"document"`` or ``"query"``).

        Args:
            texts: the texts; an empty or whitespace-only one raises ``ValueError`` naming its
                position before any work is done.
            kind: which echo template to use.
            top_k: keep the ``top_k`` largest weights (default: the encoder's ``top_k``).
            min_weight: drop weights below this (default: the encoder's ``min_weight``).
        """
        top_k = self.top_k if top_k is None else top_k
        min_weight = self.min_weight if min_weight is None else min_weight
        check_pruning(top_k, min_weight)
        results: list[SparseVector | None] = [None] * len(texts)
        for row, weights in self._pooled(texts, kind, raw=False):
            results[row] = to_sparse_vector(weights, top_k, min_weight)
        return results  # type: ignore[return-value]

    def max_logits(
        self, texts: Sequence[str], kind: TextKind = "document", truncate: bool | None = None
    ) -> torch.Tensor:
        """The max-pooled LM-head logits (log-probabilities when ``normalize="log_softmax"``), before bias and
        activation: ``[len(texts), vocab]`` float32 on CPU.

        ``weights = log1p(relu(max_logits + vocab_bias))``; used to calibrate and fit a :class:`VocabBias`
        without running the backbone again. ``truncate`` overrides the encoder's setting.
        """
        out = torch.empty(len(texts), self.vocab_size)
        for row, logits in self._pooled(texts, kind, raw=True, truncate=truncate):
            out[row] = logits
        return out

    def _pooled(
        self, texts: Sequence[str], kind: TextKind, raw: bool, truncate: bool | None = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """``(text position, [vocab] vector)`` per text, in length-sorted batch order, windows max-pooled."""
        windows = self.prepare(texts, kind, truncate=truncate)
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i][1].input_ids))
        remaining = [0] * len(texts)
        for row, _ in windows:
            remaining[row] += 1
        partial: dict[int, torch.Tensor] = {}
        for start in range(0, len(order), self.batch_size):
            batch = [windows[i] for i in order[start : start + self.batch_size]]
            rows = sorted({row for row, _ in batch})
            local = {row: j for j, row in enumerate(rows)}
            with torch.inference_mode():  # not around the yield: the caller's code is its own business
                pooled = self.forward_inputs(
                    [inp for _, inp in batch], [local[row] for row, _ in batch], len(rows), raw=raw
                ).cpu()
            for row, j in local.items():
                # max over windows: weights are monotone in the logits, so this is exact in both forms
                vec = pooled[j] if row not in partial else torch.maximum(partial.pop(row), pooled[j])
                remaining[row] -= sum(1 for r, _ in batch if r == row)
                if remaining[row]:
                    partial[row] = vec
                else:
                    yield row, vec

    def prepare(
        self, texts: Sequence[str], kind: TextKind = "document", truncate: bool | None = None
    ) -> list[tuple[int, EchoInput]]:
        """Validate and tokenize ``texts`` into echo inputs: ``(text position, window)`` pairs."""
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {list(_KINDS)}, got {kind!r}")
        if isinstance(texts, str):
            raise ValueError("texts must be a sequence of strings, not a single string")
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"text at position {i} is {type(text).__name__}, expected str")
            if not text.strip():
                raise ValueError(f"text at position {i} is empty or whitespace-only")
        if not texts:
            return []
        template = self.templates[kind]
        token_ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        truncate = self.truncate if truncate is None else truncate
        out: list[tuple[int, EchoInput]] = []
        for i, ids in enumerate(token_ids):
            if not ids:
                raise ValueError(f"text at position {i} has no tokens")
            out.extend((i, w) for w in template.windows(ids, self.max_length, self.window_stride, truncate))
        return out

    def forward(self, texts: Sequence[str], kind: TextKind = "document", truncate: bool = True) -> torch.Tensor:
        """Differentiable weights for ``texts`` in one batch (training): ``[len(texts), vocab]`` float32.

        Long texts are truncated to one window unless ``truncate=False`` (then windows are max-pooled).
        """
        windows = self.prepare(texts, kind, truncate=truncate)
        return self.forward_inputs([w for _, w in windows], [row for row, _ in windows], len(texts))

    def forward_inputs(
        self, inputs: Sequence[EchoInput], rows: Sequence[int], num_rows: int, raw: bool = False
    ) -> torch.Tensor:
        """Run one right-padded batch and pool it.

        Args:
            inputs: echo inputs (windows).
            rows: output row of each input (windows of one text share a row).
            num_rows: number of output rows.
            raw: return the max-pooled logits before bias and activation.

        Returns:
            ``[num_rows, vocab]`` float32 weights (or max logits when ``raw``).
        """
        device = self.device
        input_ids, attention_mask = self.padded(inputs)
        pool_mask = torch.zeros(input_ids.shape, dtype=torch.bool)
        for b, inp in enumerate(inputs):
            pool_mask[b, inp.pool_start : inp.pool_end] = True
        # Positions count real tokens only, so any padding side gives each text its unpadded positions.
        position_ids = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
        hidden = self.backbone(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            position_ids=position_ids.to(device),
            use_cache=False,
        ).last_hidden_state  # [batch, seq, hidden]
        row_index = torch.tensor(list(rows), dtype=torch.long)
        lm_head = self.head_override if self.head_override is not None else self.model.get_output_embeddings()
        if raw:
            pooled = self.pooling.max_logits(
                hidden, pool_mask.to(device), lm_head, num_rows=num_rows, row_index=row_index
            )
            # excluded columns: far below any logit or log-probability (finite, so statistics and fp16 caches of
            # these features stay finite); the activation maps them to weight 0
            return pooled if self.excluded is None else pooled.masked_fill(self.excluded, EXCLUDED_LOGIT)
        bias = self.vocab_bias.bias if self.vocab_bias is not None else None
        weights = self.pooling(hidden, pool_mask.to(device), lm_head, num_rows=num_rows, row_index=row_index, bias=bias)
        # per column, so the same as masking each position before the max-pool; no gradient reaches these columns
        return weights if self.excluded is None else weights.masked_fill(self.excluded, 0.0)

    def padded(self, inputs: Sequence[EchoInput]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(input_ids, attention_mask)``, ``[len(inputs), longest]`` long tensors on the CPU, right-padded."""
        longest = max(len(inp.input_ids) for inp in inputs)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(inputs), longest), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(inputs), longest), dtype=torch.long)
        for b, inp in enumerate(inputs):
            input_ids[b, : len(inp.input_ids)] = torch.tensor(inp.input_ids)
            attention_mask[b, : len(inp.input_ids)] = 1
        return input_ids, attention_mask

    @property
    def backbone(self) -> torch.nn.Module:
        """The decoder stack without the LM head (LoRA layers, if any, live inside it)."""
        model = self.model.get_base_model() if _is_peft(self.model) else self.model
        return model.get_decoder()

    def __repr__(self) -> str:
        return (
            f"EchoSpladeEncoder(source={self.source!r}, model_id={self.model_id!r}, adapter={self.has_adapter}, "
            f"max_length={self.max_length}, echo={self.echo}, device={self.device}"
            + (f", quantized={self.quantized!r})" if self.quantized else ")")
        )


def _is_peft(model: Any) -> bool:
    """Whether ``model`` is a PEFT wrapper (without importing peft, which is heavy, when it is not loaded)."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(model, peft.PeftModel)


def _merge_adapter(model: Any, adapter: str | os.PathLike) -> tuple[Any, dict[str, torch.Tensor], Any]:
    """Load a PEFT LoRA adapter onto ``model`` and merge it; return the merged model, adapter tensors and config."""
    from peft import PeftModel, get_peft_model_state_dict

    if not (Path(adapter) / "adapter_config.json").is_file():
        raise ValueError(f"{adapter} is not a PEFT adapter directory (no adapter_config.json)")
    peft_model = PeftModel.from_pretrained(model, str(adapter))
    state = {k: v.detach().to("cpu").clone() for k, v in get_peft_model_state_dict(peft_model).items()}
    config = peft_model.peft_config["default"]
    return peft_model.merge_and_unload(), state, config


def to_sparse_vector(weights: torch.Tensor, top_k: int | None, min_weight: float | None) -> SparseVector:
    """Prune a ``[vocab]`` weight vector into a :class:`SparseVector` (weights > 0 only, sorted by id).

    Raises:
        ValueError: the vector holds NaN or infinite weights (a broken model must not be indexed as a sparser vector).
    """
    if not bool(torch.isfinite(weights).all()):
        bad = int((~torch.isfinite(weights)).sum())
        raise ValueError(f"the model produced {bad} non-finite weight(s) (NaN or inf)")
    keep = weights > 0
    if min_weight is not None:
        keep &= weights >= min_weight
    indices = keep.nonzero(as_tuple=True)[0]
    if top_k is not None and indices.numel() > top_k:
        top = torch.topk(weights[indices], top_k).indices
        indices = indices[top].sort().values
    return SparseVector(indices.tolist(), weights[indices].tolist())
