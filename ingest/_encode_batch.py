from __future__ import annotations

import json
import logging
from typing import Any, Optional

from echo_splade.client import Backend, connect
from echo_splade.encoder import check_mass, document_text, prune_weights  # torch-free: the package loads lazily
from echo_splade.mappings import FLOAT_MIN_NORMAL, MODEL_REV_FIELD, document_source, model_name

from ._backoff import Backoff
from ._pipeline_rows import (
    EMPTY_VECTOR,
    ENCODE_DROPS,
    ENCODING_FAILED,
    STATUS_DEAD,
    STATUS_ENCODED,
    STATUS_SKIPPED,
)

logger = logging.getLogger(__name__)

__all__ = ["EncodeBatch", "document_text"]


class EncodeBatch:
    """Ray Data callable class: encode a batch of corpus records into index documents.

    One instance per actor; the encoder is loaded once, in ``__init__``. Each
    call takes an Arrow batch of reader records (see ``RECORD_FIELDS``) and
    returns one row per input row, without ``title``/``text``, plus

    - ``status``: ``"encoded"`` (``doc`` holds the document source as JSON:
      ``doc_id, title, text, sparse, model, model_rev``), ``"skipped"``
      (``resume`` found it in the index with the same ``model_rev``) or
      ``"dead"`` (``reason`` says why: a bad record from the reader, or
      ``encoding_failed``);
    - ``doc``: the serialised source, ``""`` unless encoded.

    Args:
        model, adapter, device, batch_size, max_length: passed to ``EchoSpladeEncoder.from_pretrained``.
        doc_top_k, min_weight: document pruning (``encode_documents(top_k=, min_weight=)``).
        doc_mass: then keep the largest weights until they hold this share of the document's total weight
            (``encoder.prune_weights(mass=)``; ``None``: no mass pruning).
        resume: ``{"connection": ConnectionConfig, "index": name}`` to skip documents already
            in that index with this encoder's ``model_rev`` (checked per batch with ``_mget``).
        torch_threads: CPU threads for torch in this actor (``None``: leave as is).
        encoder_options: further ``from_pretrained`` options (``truncate``, ``window_stride``, ...).
        expected_model_rev: the ``model_rev`` the job provisioned the index for (``ValueError`` when the
            encoder loaded here differs); ``None``: not checked.
    """

    def __init__(
        self,
        model: str,
        adapter: Optional[str] = None,
        device: Optional[str] = None,
        batch_size: int = 16,
        max_length: Optional[int] = None,
        doc_top_k: Optional[int] = None,
        min_weight: Optional[float] = None,
        doc_mass: Optional[float] = None,
        resume: Optional[dict] = None,
        torch_threads: Optional[int] = None,
        encoder_options: Optional[dict] = None,
        expected_model_rev: Optional[str] = None,
    ) -> None:
        check_mass(doc_mass)
        if torch_threads:
            import torch  # lazy: torch only where an encoder runs (this module also serves document_text)

            torch.set_num_threads(int(torch_threads))
        self.encoder = self.load_encoder(
            model,
            adapter=adapter,
            device=device,
            batch_size=batch_size,
            max_length=max_length,
            **(encoder_options or {}),
        )
        self.doc_top_k = doc_top_k
        self.doc_mass = doc_mass
        # Lucene rejects feature weights below Float.MIN_NORMAL: prune them rather than fail the document.
        self.min_weight = max(min_weight or 0.0, FLOAT_MIN_NORMAL)
        #: the name that reloads the encoder, recorded in each document (``mappings.model_name``)
        self.model = model_name(self.encoder)
        self.model_rev = self.encoder.model_rev
        if expected_model_rev is not None and self.model_rev != expected_model_rev:
            raise ValueError(
                f"the encoder {self.model} loaded here has model_rev {self.model_rev}, but the index was "
                f"prepared for model_rev {expected_model_rev}: the documents would not match the index"
            )
        self._resume_index: Optional[str] = None
        self._backend: Optional[Backend] = None
        if resume:
            self._backend = connect(resume["connection"])
            self._resume_index = resume["index"]
        self._backoff = Backoff()
        logger.info("encoder ready: %r (model_rev %s)", self.encoder, self.model_rev)

    def load_encoder(self, model: str, **kwargs: Any) -> Any:
        """The encoder: ``EchoSpladeEncoder.from_pretrained(model, **kwargs)``.

        A subclass may return any object with ``encode_documents(texts, top_k=, min_weight=)``,
        ``tokens(vector)``, ``source`` or ``model_id`` (the name recorded as the documents' ``model``)
        and ``model_rev`` (e.g. one serving precomputed vectors).
        """
        from echo_splade.encoder import EchoSpladeEncoder  # lazy: imports torch

        return EchoSpladeEncoder.from_pretrained(model, **kwargs)

    def _already_indexed(self, ids: list[str]) -> set[str]:
        """Ids present in the resume index with this encoder's ``model_rev``."""
        backend = self._backend
        if not ids or backend is None:
            return set()
        response = self._backoff.call(
            lambda: backend.request(
                "POST",
                f"/{self._resume_index}/_mget",
                body={"ids": ids},
                params={"_source_includes": MODEL_REV_FIELD},
            ),
            what="resume check (_mget)",
        )
        return {
            d["_id"]
            for d in response.get("docs", [])
            if d.get("found") and (d.get("_source") or {}).get(MODEL_REV_FIELD) == self.model_rev
        }

    def _source(self, row: dict, vector: Any) -> str:
        """The document source (``mappings.document_source``) as compact JSON."""
        weights = self.encoder.tokens(vector)
        if self.doc_mass is not None:
            weights = prune_weights(weights, mass=self.doc_mass)
        source = document_source(
            row["doc_id"],
            row["title"],
            row["text"],
            weights,
            model=self.model,
            model_rev=self.model_rev,
        )
        return json.dumps(source, ensure_ascii=False, separators=(",", ":"))

    def _encode(self, rows: list[dict]) -> list[tuple[str, str, str]]:
        """``(doc JSON, "", "")`` or ``("", reason, detail)`` per row; a failing batch is retried one document at
        a time. A document whose vector is empty is dead-lettered (``empty_vector``), never indexed without terms."""
        texts = [document_text(r["title"], r["text"]) for r in rows]
        try:
            vectors = self.encoder.encode_documents(texts, top_k=self.doc_top_k, min_weight=self.min_weight)
        except (ValueError, RuntimeError) as exc:
            if len(rows) == 1:
                return [("", ENCODING_FAILED, f"{type(exc).__name__}: {exc}")]
            logger.warning("encoding a batch of %d failed (%s); encoding one by one", len(rows), exc)
            return [self._encode([r])[0] for r in rows]
        return [
            (self._source(r, v), "", "") if len(v) else ("", EMPTY_VECTOR, "no term with a positive weight")
            for r, v in zip(rows, vectors)
        ]

    def __call__(self, batch):
        import pyarrow as pa  # lazy: heavy; only the Ray pipeline calls batches

        rows = batch.to_pylist()
        good = [i for i, r in enumerate(rows) if not r["reason"]]
        skip = self._already_indexed([rows[i]["doc_id"] for i in good])
        todo = [i for i in good if rows[i]["doc_id"] not in skip]
        status = [STATUS_DEAD] * len(rows)
        docs = [""] * len(rows)
        for i in good:
            if rows[i]["doc_id"] in skip:
                status[i] = STATUS_SKIPPED
        if todo:
            for i, (doc, reason, detail) in zip(todo, self._encode([rows[i] for i in todo])):
                if reason:
                    rows[i]["reason"], rows[i]["detail"] = reason, detail
                else:
                    status[i], docs[i] = STATUS_ENCODED, doc
        out = batch.drop_columns(list(ENCODE_DROPS))  # then ENCODE_ADDS, in that order
        out = out.append_column("reason", pa.array([r["reason"] for r in rows], pa.string()))
        out = out.append_column("detail", pa.array([r["detail"] for r in rows], pa.string()))
        out = out.append_column("status", pa.array(status, pa.string()))
        return out.append_column("doc", pa.array(docs, pa.string()))
