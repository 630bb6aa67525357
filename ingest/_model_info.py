"""What provisioning and the documents need to know about the encoder, without keeping it loaded."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from echo_splade.mappings import model_name

__all__ = ["PRECISION_OPTIONS", "ModelInfo"]

#: ``from_pretrained`` options that choose how the model computes, not which model it is: like ``dtype`` they are
#: not part of ``model_rev`` (``EchoSpladeEncoder.quantize``), so the info ignores them.
PRECISION_OPTIONS: tuple[str, ...] = ("dtype", "quantize", "smooth", "compile")


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """``model`` (the name that reloads the encoder), ``model_rev`` and ``config`` of an encoder."""

    model: str
    model_rev: str
    config: dict

    @classmethod
    def of(cls, encoder: Any) -> ModelInfo:
        """The info of a loaded encoder (anything with ``source``/``model_id``, ``model_rev``, ``config``).

        Raises:
            ValueError: the encoder has no name that reloads it.
        """
        name = model_name(encoder)
        if not name:
            raise ValueError(f"the encoder {encoder!r} has no name or path that reloads it (source / model_id)")
        return cls(model=name, model_rev=str(encoder.model_rev), config=dict(getattr(encoder, "config", {}) or {}))

    @classmethod
    def load(
        cls, model: str, adapter: Optional[str] = None, options: Optional[dict] = None, device: Optional[str] = None
    ) -> ModelInfo:
        """The info of the encoder ``EchoSpladeEncoder.from_pretrained(model, adapter=adapter, **options)`` would
        load, read from its files (``echo_splade.json``, adapter and bias files) without loading any weights
        (:data:`PRECISION_OPTIONS` in ``options`` do not change it, but they are checked against the model and
        ``device``, where the encoder will run: None, not known).

        Raises:
            ValueError: an unknown or out-of-range option, precision options the model cannot run with on
                ``device`` (``EncoderSpec.check_precision``), or an adapter folder without a PEFT adapter.
        """
        from echo_splade.encoder import EncoderSpec  # lazy: its config check imports torch (no weights)

        options = options or {}
        model_options = {k: v for k, v in options.items() if k not in PRECISION_OPTIONS}
        spec = EncoderSpec.resolve(model, adapter=adapter, **model_options)
        spec.check_precision(options.get("quantize"), options.get("smooth"), device)
        return cls(model=spec.source, model_rev=spec.model_rev, config=spec.config)
