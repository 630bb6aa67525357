"""The settings of one encoder service (``echo-splade serve``): a fixed-key dataclass, validated once."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

#: The request field names the service reads (``POST /encode``); see ``EncodeRequest``.
DEFAULT_PORT = 8600
DEFAULT_MAX_BATCH_SIZE = 32
DEFAULT_BATCH_WAIT_MS = 5.0
DEFAULT_MAX_TEXTS = 256
#: Characters per text; longer texts are refused with 413 (shorter ones are windowed like ingest).
DEFAULT_MAX_CHARS = 100_000


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    """What ``echo-splade serve`` runs.

    Args:
        model: encoder short name, trained folder or HF model (``EchoSpladeEncoder.from_pretrained``).
        host, port: where the HTTP proxy listens (loopback by default).
        max_batch_size: texts per model call (dynamic batching across concurrent requests); 1 turns batching off.
        batch_wait_ms: how long the first text of a batch waits for others before the model runs.
        max_texts: texts per request (more: 413).
        max_chars: characters per text (more: 413); texts over the model's window are windowed like ingest.
        replicas: model replicas (each loads the model once; one per GPU with ``device="cuda"``).
        device: ``cpu``, ``cuda``, ... (default: CUDA when present).
        adapter: a PEFT LoRA adapter folder for ``model``.
        threads: torch CPU threads per replica (default: the machine's cores divided by ``replicas``).
        ray_port: the port of the local Ray cluster's GCS (the other Ray ports follow Ray's defaults).
        quantize, smooth, compile: ``EchoSpladeEncoder.from_pretrained`` options of each replica (CPU int8 and
            ``torch.compile``; ``INT8_QUERY_OPTIONS`` is what ``serve --int8`` sets); the encoder validates them.
    """

    model: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS
    max_texts: int = DEFAULT_MAX_TEXTS
    max_chars: int = DEFAULT_MAX_CHARS
    replicas: int = 1
    device: Optional[str] = None
    adapter: Optional[str] = None
    threads: Optional[int] = None
    ray_port: Optional[int] = None
    quantize: Optional[str] = None
    smooth: Optional[float] = None
    compile: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"model must be a non-empty name or folder, got {self.model!r}")
        for name, low in (("max_batch_size", 1), ("max_texts", 1), ("max_chars", 1), ("replicas", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not 1 <= int(self.port) <= 65535:
            raise ValueError(f"port must be in 1..65535, got {self.port!r}")
        if not isinstance(self.batch_wait_ms, (int, float)) or not 0 <= self.batch_wait_ms <= 10_000:
            raise ValueError(f"batch_wait_ms must be a number in 0..10000, got {self.batch_wait_ms!r}")
        if self.quantize is not None and not isinstance(self.quantize, str):
            raise ValueError(f"quantize must be a mode name or None, got {self.quantize!r}")
        if self.smooth is not None and (self.quantize is None or not isinstance(self.smooth, (int, float))):
            raise ValueError(f"smooth must be a number given with quantize, got {self.smooth!r}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be true or false, got {self.compile!r}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {self.threads!r}")

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
