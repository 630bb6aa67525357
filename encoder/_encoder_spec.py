"""What an encoder is, read from its files alone: base model, adapter, options, ``model_rev`` (no weights loaded).

:meth:`EchoSpladeEncoder.from_pretrained` resolves a name or folder through :meth:`EncoderSpec.resolve` before it
loads anything, and the ingest driver uses the same spec to provision an index (``model``, ``model_rev``,
``config``) without loading the model: the LoRA adapter and the vocabulary bias are read from their
safetensors files and hashed exactly as the loaded encoder hashes them (:func:`model_rev_digest`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from ._model_registry import DEFAULT_MODEL, MASKED_LM_SHORT_NAMES, SHORT_NAMES, builtin_model_dir

__all__ = [
    "CONFIG_FILE",
    "CONFIG_KEYS",
    "MASKED_LM_OPTIONS",
    "REV_KEYS",
    "EncoderSpec",
    "check_options",
    "check_pruning",
    "model_rev_digest",
]

#: The file :meth:`EchoSpladeEncoder.save_pretrained` writes (base model, templates, defaults).
CONFIG_FILE = "echo_splade.json"
#: The encoder options (``EchoSpladeEncoder.config``): echo templates, max_length, pruning defaults, ...
CONFIG_KEYS: tuple[str, ...] = (
    "document_prefix",
    "document_separator",
    "query_prefix",
    "query_separator",
    "echo",
    "max_length",
    "window_stride",
    "truncate",
    "batch_size",
    "chunk_size",
    "top_k",
    "min_weight",
    "normalize",
    "exclude",
    "exclude_tokens",
)
#: Config keys that change the vectors (hashed into ``model_rev``); batch_size/chunk_size only change round-off.
REV_KEYS: tuple[str, ...] = tuple(k for k in CONFIG_KEYS if k not in ("batch_size", "chunk_size"))
#: What a masked-LM (BERT-style) SPLADE model always uses: no echo, no templates.
MASKED_LM_OPTIONS: Mapping[str, Any] = {
    "echo": False,
    "document_prefix": "",
    "document_separator": "",
    "query_prefix": "",
    "query_separator": "",
}
_ADAPTER_CONFIG = "adapter_config.json"
_ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def check_pruning(top_k: int | None, min_weight: float | None) -> None:
    """``ValueError`` unless ``top_k`` is a positive integer or None and ``min_weight`` is >= 0 or None."""
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
    if min_weight is not None and not min_weight >= 0:
        raise ValueError(f"min_weight must be >= 0 or None, got {min_weight!r}")


def check_options(max_length: int, batch_size: int, top_k: int | None, min_weight: float | None) -> None:
    """``ValueError`` naming the first encoder option out of range."""
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2, got {max_length}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    check_pruning(top_k, min_weight)


def model_rev_digest(model_id: str, gguf_file: Optional[str], rev_config: Mapping[str, Any], tensors: Mapping) -> str:
    """The 12-hex ``model_rev``: base model, GGUF file, the options that change the vectors, trained tensors.

    ``rev_config``: the :data:`REV_KEYS` values (without ``exclude``/``exclude_tokens`` when nothing is
    excluded, so encoders from before the vocabulary filter keep their hash); ``tensors``: name -> tensor
    (LoRA adapter tensors as PEFT names them, ``"vocab_bias"``), hashed as float32 in name order.
    """
    import torch  # lazy: only when there are tensors to hash

    digest = hashlib.sha256()
    digest.update(json.dumps({"model_id": model_id, "gguf_file": gguf_file, **rev_config}, sort_keys=True).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu", torch.float32).contiguous()
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:12]


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    """An encoder as its files describe it.

    Attributes:
        source: the name or path as given (what an index records as ``model``, what reloads the encoder).
        model_id: the base model (a short name, hub id or folder).
        gguf_file: the GGUF file the base model loads from, if any.
        adapter: the PEFT LoRA adapter folder merged into the weights, if any.
        directory: the folder written by ``save_pretrained`` (its vocabulary bias, if any), else None.
        options: the encoder options given or saved (a subset of :data:`CONFIG_KEYS`).
    """

    source: str
    model_id: str
    gguf_file: Optional[str]
    adapter: Optional[str]
    directory: Optional[Path]
    options: Mapping[str, Any]

    @classmethod
    def resolve(
        cls,
        name_or_path: str | os.PathLike = DEFAULT_MODEL,
        adapter: str | os.PathLike | None = None,
        max_length: int | None = None,
        batch_size: int | None = None,
        gguf_file: str | None = None,
        **config: Any,
    ) -> EncoderSpec:
        """What ``EchoSpladeEncoder.from_pretrained`` with these arguments loads (same arguments, no weights).

        Raises:
            ValueError: an option is not one of :data:`CONFIG_KEYS`.
        """
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(f"unknown encoder option(s) {unknown}; allowed: {list(CONFIG_KEYS)}")
        saved: dict[str, Any] = {}
        directory = None
        source = str(name_or_path)
        name_or_path = builtin_model_dir(name_or_path)
        config_file = Path(name_or_path) / CONFIG_FILE
        if config_file.is_file():
            saved = json.loads(config_file.read_text())
            saved.pop("format_version", None)
            directory = Path(name_or_path)
            name_or_path = saved.pop("model_id")
            gguf_file = gguf_file or saved.pop("gguf_file", None)
            saved.pop("gguf_file", None)
            if adapter is None and (directory / _ADAPTER_CONFIG).is_file():
                adapter = directory
            # folders saved before the vocabulary filter existed keep every token (their vectors stay the same)
            saved.setdefault("exclude", [])
        options = {**{k: v for k, v in saved.items() if k in CONFIG_KEYS}, **config}
        if max_length is not None:
            options["max_length"] = max_length
        if batch_size is not None:
            options["batch_size"] = batch_size
        return cls(
            source=source,
            model_id=str(name_or_path),
            gguf_file=gguf_file,
            adapter=str(adapter) if adapter is not None else None,
            directory=directory,
            options=options,
        )

    @property
    def masked_lm(self) -> bool:
        """Whether the base model is a masked LM (``config.json`` names a ``*ForMaskedLM``; hub ids: False)."""
        if self.model_id in SHORT_NAMES:  # known before it is built
            return self.model_id in MASKED_LM_SHORT_NAMES
        config = Path(self.model_id) / "config.json"
        if not config.is_file():
            return False
        return any(str(a).endswith("ForMaskedLM") for a in json.loads(config.read_text()).get("architectures") or [])

    def check_precision(self, quantize: Optional[str], smooth: Optional[float], device: Optional[str]) -> None:
        """Refuse precision options this encoder cannot run with, from its files alone (no weights): what
        ``from_pretrained`` checks before it loads the model and an ingest job before it starts encoder actors.

        Args:
            quantize: one of ``QUANTIZE_MODES`` or None.
            smooth: the SmoothQuant alpha (only with ``quantize``), or None.
            device: ``"cpu"``, ``"cuda"``, ... where the encoder will run; None: not known yet (not checked).

        Raises:
            ValueError: an unknown ``quantize`` mode, ``smooth`` without ``quantize`` or outside [0, 1], int8 on a
                device other than the CPU, or an echo-only option (``smooth``, ``"int8-token-head"``) on a
                masked-LM SPLADE model.
        """
        from ._quantization import check_quantize_mode  # lazy: imports torch
        from ._smooth_quant import check_alpha  # lazy: imports torch

        if quantize is None:
            if smooth is not None:
                raise ValueError("smooth is a setting of quantize: pass quantize='int8-token' (or another mode) too")
            return
        check_quantize_mode(quantize)
        if smooth is not None:
            check_alpha(smooth)
        if device is not None and device != "cpu":
            raise ValueError(
                f"quantize={quantize!r} runs on the CPU only; the encoder would run on {device!r} (use device='cpu')"
            )
        if self.masked_lm and quantize == "int8-token-head":
            raise ValueError(
                f"quantize={quantize!r} is for echo (causal LM) encoders and {self.source} is a "
                "masked LM; use 'int8-token'"
            )
        if self.masked_lm and smooth is not None:
            raise ValueError(
                f"smooth (SmoothQuant) is for echo (causal LM) encoders and {self.source} is a masked "
                "LM; quantize it without smooth"
            )

    @property
    def config(self) -> dict[str, Any]:
        """``EchoSpladeEncoder.config`` of the loaded encoder: every :data:`CONFIG_KEYS` value, defaults filled."""
        from ._echo_splade_encoder import EchoSpladeEncoder  # lazy: imports torch (no weights)
        from ._vocab_filter import VocabFilter  # lazy: imports torch

        parameters = inspect.signature(EchoSpladeEncoder.__init__).parameters
        values = {key: parameters[key].default for key in CONFIG_KEYS}
        values.update(self.options)
        if self.masked_lm:
            values.update(MASKED_LM_OPTIONS)
        check_options(values["max_length"], values["batch_size"], values["top_k"], values["min_weight"])
        vocab_filter = VocabFilter(values["exclude"], values["exclude_tokens"])
        values.update(
            echo=bool(values["echo"]),
            max_length=int(values["max_length"]),
            truncate=bool(values["truncate"]),
            batch_size=int(values["batch_size"]),
            chunk_size=int(values["chunk_size"]),
            exclude=list(vocab_filter.categories),
            exclude_tokens=list(vocab_filter.tokens),
        )
        return values

    @property
    def model_rev(self) -> str:
        """The loaded encoder's ``model_rev``, from the config, the adapter file and the bias file."""
        config = self.config
        rev_config = {key: config[key] for key in REV_KEYS}
        if not (config["exclude"] or config["exclude_tokens"]):
            del rev_config["exclude"], rev_config["exclude_tokens"]
        return model_rev_digest(self.model_id, self.gguf_file, rev_config, self.trained_tensors())

    def trained_tensors(self) -> dict[str, Any]:
        """The LoRA adapter tensors (as PEFT names them) and the vocabulary bias (``"vocab_bias"``), read from files.

        Raises:
            ValueError: the adapter folder holds no PEFT adapter.
        """
        tensors: dict[str, Any] = {}
        if self.adapter is not None:
            folder = Path(self.adapter)
            if not (folder / _ADAPTER_CONFIG).is_file():
                raise ValueError(f"{folder} is not a PEFT adapter directory (no {_ADAPTER_CONFIG})")
            files = [folder / name for name in _ADAPTER_FILES if (folder / name).is_file()]
            if not files:
                raise ValueError(f"{folder} holds no adapter weights (looked for {', '.join(_ADAPTER_FILES)})")
            if files[0].suffix == ".safetensors":
                from safetensors.torch import load_file

                tensors.update(load_file(str(files[0])))
            else:
                import torch

                tensors.update(torch.load(files[0], map_location="cpu", weights_only=True))
        if self.directory is not None:
            from ._vocab_bias import VocabBias  # lazy: imports torch

            bias = VocabBias.load(self.directory)
            if bias is not None:
                tensors["vocab_bias"] = bias.bias
        return tensors
