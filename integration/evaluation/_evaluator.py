from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal, Optional, Union

from tqdm.auto import tqdm

from echo_splade.client import ClusterError, ClusterStateError, connect
from echo_splade.connector import Hybrid, SparseRetriever
from echo_splade.encoder import DEFAULT_MODEL
from echo_splade.ingest import index_text_only
from echo_splade.mappings import DOC_PRECISION_META_KEY, DOC_PRUNING_META_KEY, IndexSpec, model_name, read_index_meta

from ._eval_dataset import EvalDataset
from ._eval_report import METRICS, SYSTEMS, EvalReport
from ._run_metrics import RunMetrics

logger = logging.getLogger(__name__)

__all__ = ["Evaluator", "SelfHits", "SystemName"]

SystemName = Literal["bm25", "sparse", "sparse-inference-free", "hybrid"]
SelfHits = Literal["auto", "drop", "keep"]
SELF_HITS = ("auto", "drop", "keep")
#: Systems that run the encoder at query time (the others need no model weights).
_LLM_SYSTEMS = ("sparse", "hybrid")
_MODEL_SYSTEMS = ("sparse", "sparse-inference-free", "hybrid")


class Evaluator:
    """Retrieval quality and latency of BM25, learned sparse and hybrid search inside the cluster.

    Every judged query of an :class:`EvalDataset` goes through each system;
    the metrics (``nDCG@10``, ``Recall@100``, ``MRR@10``) come from ``ranx``,
    and ``p50_ms`` is the median client-side wall time of one query (query
    encoding, request and response included).

    Systems (report names):

    - ``bm25``: the connector's lexical clause (:meth:`Hybrid.bm25_clause`: a
      ``multi_match`` over ``title`` and ``text``, analysed with the analyzer
      provisioning chose, ``english`` by default), scored by the cluster's BM25;
    - ``sparse``: :class:`SparseRetriever` in ``llm`` mode (the encoder's query template);
    - ``sparse-inference-free``: :class:`SparseRetriever` in ``inference-free`` mode
      (tokenizer + IDF over the indexed features, no model at query time);
    - ``hybrid``: :class:`SparseRetriever` ``llm`` mode fused client-side with BM25 (:class:`Hybrid`).

    Each system's ranking is scored in the order the cluster (or the fusion)
    returned it: scores given to ``ranx`` are ``depth - rank``, so ties in the
    cluster's scores cannot be re-ordered by the metrics library.

    When the index is missing, :meth:`ensure_index` provisions it and ingests
    the dataset's corpus with :class:`echo_splade.ingest.IngestJob` (or, for a
    ``bm25``-only run without a model, indexes the text alone).

    Args:
        connection: how to reach the cluster (the ingest job's writers open their own clients).
        index: the alias (or index) holding the dataset's corpus.
        systems: which of :data:`SYSTEMS` to run, in this order.
        model: the encoder (short name, directory, or a ``save_pretrained`` folder);
            ``None``: ``echo_splade.encoder.DEFAULT_MODEL`` for systems that need one.
            A ``bm25``-only run needs none: a missing index is then built from the
            text alone (:meth:`index_text_only`), without encoding.
        adapter: a LoRA adapter folder merged into ``model``.
        encoder: an already loaded ``EchoSpladeEncoder`` (overrides ``model``/``adapter``).
        depth: results per query (Recall@100 needs 100).
        self_hits: ``"drop"`` removes a query's own document from its results (the
            ArguAna convention), ``"keep"`` does not, ``"auto"`` decides with
            :meth:`EvalDataset.detect_self_hits`.
        hybrid: the fusion of the ``hybrid`` system (a :class:`Hybrid`, a method name or a dict).
        query_top_k: query terms kept by the sparse systems.
        doc_top_k: document pruning when this evaluator ingests (``None``: the ingest default).
        max_length: the encoder's input limit per window (``None``: the model's default); part of
            ``model_rev``, so queries and an index ingested here use the same value.
        truncate: encode only the first window of a long text (documents and queries) instead of
            max-pooling all windows: faster on a CPU, and stated in the report. Part of ``model_rev`` too.
        progress: ``True``: a progress bar per system (tqdm, on stderr); a callable: called as
            ``progress(system, queries_done, queries_total)`` after each query (the CLI logs lines with it
            when stderr is not a terminal); ``False``: nothing.
    """

    def __init__(
        self,
        connection: Any,
        index: str,
        systems: Sequence[SystemName] = ("bm25", "sparse", "sparse-inference-free", "hybrid"),
        model: Optional[str] = None,
        adapter: Optional[Union[str, os.PathLike]] = None,
        encoder: Any = None,
        depth: int = 100,
        self_hits: SelfHits = "auto",
        hybrid: Any = True,
        query_top_k: Optional[int] = 64,
        doc_top_k: Optional[int] = None,
        max_length: Optional[int] = None,
        truncate: bool = False,
        progress: Union[bool, Callable[[str, int, int], None]] = False,
    ) -> None:
        systems = tuple(systems)
        unknown = [s for s in systems if s not in SYSTEMS]
        if unknown or not systems:
            raise ValueError(f"systems must be a non-empty selection of {SYSTEMS}, got {list(systems)}")
        if len(set(systems)) != len(systems):
            raise ValueError(f"systems lists a system twice: {list(systems)}")
        if self_hits not in SELF_HITS:
            raise ValueError(f"self_hits must be one of {SELF_HITS}, got {self_hits!r}")
        if not isinstance(depth, int) or depth < 10:
            raise ValueError(f"depth must be an integer >= 10 (nDCG@10 and MRR@10 need 10 results), got {depth!r}")
        if not isinstance(index, str) or not index:
            raise ValueError("index must be a non-empty index or alias name")
        self.hybrid = Hybrid.coerce(hybrid) or Hybrid()
        self.connection = connection
        self.index = index
        self.systems: tuple[str, ...] = systems
        self.adapter = str(adapter) if adapter else None
        self._encoder = encoder
        self.needs_model = any(s in _MODEL_SYSTEMS for s in systems)
        if model is not None:
            self.model: Optional[str] = str(model)
        elif encoder is None and (self.needs_model or self.adapter):
            self.model = self._default_model()
        else:
            self.model = None  # bm25 only (or a loaded encoder): no model to name
        self.depth = depth
        self.self_hits = self_hits
        self.query_top_k = query_top_k
        self.doc_top_k = doc_top_k
        if max_length is not None and (not isinstance(max_length, int) or max_length < 2):
            raise ValueError(f"max_length must be an integer >= 2 or None, got {max_length!r}")
        self.max_length = max_length
        self.truncate = bool(truncate)
        self.progress = progress
        self._backend = None
        #: What :meth:`ensure_index` did when it built the index (JSON-able: ``mode``, ``indexed``, ``seconds``,
        #: and the ingest report's fields), else ``None``.
        self.ingest_info: Optional[dict] = None

    def __repr__(self) -> str:
        return f"Evaluator(index={self.index!r}, systems={list(self.systems)}, model={self.model!r}, adapter={self.adapter!r})"

    @staticmethod
    def _default_model() -> str:
        return DEFAULT_MODEL

    # -- collaborators ------------------------------------------------------------------
    @property
    def backend(self) -> Any:
        if self._backend is None:
            self._backend = connect(self.connection)
        return self._backend

    @property
    def encoder(self) -> Any:
        """The query encoder of the ``sparse`` and ``hybrid`` systems, loaded once."""
        if self._encoder is None:
            from echo_splade.encoder import EchoSpladeEncoder  # lazy: imports torch

            logger.info("loading encoder %s%s", self.model, f" + adapter {self.adapter}" if self.adapter else "")
            self._encoder = EchoSpladeEncoder.from_pretrained(
                self.model,
                adapter=self.adapter,
                max_length=self.max_length,
                **({"truncate": True} if self.truncate else {}),
            )
        return self._encoder

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    # -- the index ------------------------------------------------------------------------
    def ensure_index(
        self,
        dataset: EvalDataset,
        report_dir: Optional[Union[str, os.PathLike]] = None,
        progress: Optional[Callable[[Any], None]] = None,
    ) -> bool:
        """Provision the index and ingest the dataset's corpus unless the index exists.

        Returns ``True`` when it built the index: with the ingest job when a model is
        set, else (``bm25`` only) from the text alone. An existing index is checked:
        the sparse systems need vectors, and ``sparse``/``hybrid`` need this
        encoder's (same ``model_rev``); otherwise a ``ValueError`` says why.
        """
        if self.backend.exists(self.index):
            self._check_index_model()
            return False
        if self.model is None:
            if self._encoder is not None:
                raise ValueError(
                    "the index is missing and the evaluator was given a loaded encoder without a model "
                    "name or path; pass model= so the ingest job can load it on its workers"
                )
            self.index_text_only(dataset)
            return True
        from echo_splade.ingest import IngestJob  # lazy: imports ray

        model_arg = {"model": self.model, "adapter": self.adapter, "max_length": self.max_length}
        options: dict[str, Any] = {}
        if self.doc_top_k is not None:
            options["doc_top_k"] = self.doc_top_k
        if self.truncate:
            options["encoder_options"] = {"truncate": True}
        report_path = Path(report_dir) / f"{self.index}.ingest.json" if report_dir else None
        logger.info(
            "index %s is missing: provisioning it and ingesting %s with %s",
            self.index,
            dataset.corpus_path,
            model_arg["model"],
        )
        job = IngestJob(
            dataset.path,
            self.index,
            self.connection,
            corpus_format="beir",
            report_path=report_path,
            **model_arg,
            **options,
        )
        report = job.run(progress=progress)
        self.ingest_info = {"mode": "ingest job", **report.to_dict()}
        return True

    def index_text_only(self, dataset: EvalDataset) -> int:
        """BM25-only evaluation: provision the index and write ``title``/``text`` without encoding anything.

        Delegates to :func:`echo_splade.ingest.index_text_only` (the ingest library's
        :class:`CorpusReader` and :class:`BulkWriter`, the provisioning and bulk-load
        settings of :mod:`echo_splade.mappings`). The index records no model, so the
        sparse systems refuse it. Bad corpus records are skipped (counted and logged).
        Returns the number of documents indexed.
        """
        info = index_text_only(self.backend, self.index, dataset.path, format="beir")
        self.ingest_info = {"mode": "text only (BM25, no encoding)", **info}
        return info["indexed"]

    def _check_index_model(self) -> None:
        """The sparse systems need an index with vectors; ``sparse``/``hybrid`` need this encoder's vectors."""
        if not any(s in _MODEL_SYSTEMS for s in self.systems):
            return
        meta = read_index_meta(self.backend, self.index)
        stored = meta.get("model_rev")
        if not stored:
            raise ClusterStateError(
                f"index {self.index!r} records no model: it holds no sparse vectors (e.g. it was built "
                "for a BM25-only evaluation); evaluate the sparse systems on another index",
                option="index",
            )
        if not any(s in _LLM_SYSTEMS for s in self.systems):
            return
        rev = self.encoder.model_rev
        if stored != rev:
            raise ValueError(
                f"index {self.index!r} holds vectors of model {meta.get('model')!r} (model_rev {stored}), but the "
                f"evaluated encoder is {model_name(self.encoder)!r}{' + adapter ' + self.adapter if self.adapter else ''} "
                f"(model_rev {rev}); evaluate it on its own index (another --index) or re-ingest"
            )

    # -- running ------------------------------------------------------------------------
    def evaluate(self, dataset: EvalDataset) -> EvalReport:
        """Run every system over ``dataset``'s queries; return the figures and the configuration."""
        if not self.backend.exists(self.index):
            raise ValueError(f"index {self.index!r} does not exist; ingest the corpus first (ensure_index)")
        if self.backend.count(self.index) == 0:
            # (ranx cannot even build a run without one hit: the figures would be a crash, not zeros)
            raise ClusterStateError(
                f"index {self.index!r} exists but holds no documents (an ingest that stopped before its first "
                "write?): finish the ingest into it (resume) or delete the index to have it built again",
                option="index",
            )
        drop_self = self.self_hits == "drop" or (self.self_hits == "auto" and dataset.detect_self_hits())
        metrics = RunMetrics(dataset.qrels)
        figures: dict[str, dict[str, float]] = {}
        errors: dict[str, int] = {}
        extra_seconds: dict[str, float] = {}
        for system in self.systems:
            search, setup_seconds = self._searcher(system)
            if setup_seconds:
                extra_seconds[system] = round(setup_seconds, 3)
            run, latencies, failed = self._run_system(system, search, dataset, drop_self)
            errors[system] = failed
            scores = metrics.score(run, system)
            figures[system] = {m: round(scores[m], 4) for m in METRICS}
            figures[system]["p50_ms"] = round(statistics.median(latencies) * 1000.0, 2) if latencies else math.nan
            logger.info("%s: %s", system, figures[system])
        config = self._config(dataset, drop_self, errors, extra_seconds)
        return EvalReport(systems=figures, config=config)

    def _run_system(
        self, system: str, search: Callable[[str, int], list[tuple[str, float]]], dataset: EvalDataset, drop_self: bool
    ) -> tuple[dict, list[float], int]:
        fetch = self.depth + 1 if drop_self else self.depth
        run: dict[str, dict[str, float]] = {}
        latencies: list[float] = []
        failed = 0
        items = tqdm(
            dataset.queries.items(),
            total=len(dataset),
            desc=system,
            unit="q",
            disable=self.progress is not True,
            leave=True,
        )
        report = self.progress if callable(self.progress) else None
        for qid, text in items:
            started = time.perf_counter()
            try:
                ranked = search(text, fetch)
            except ClusterError as exc:
                if exc.unreachable:
                    raise
                failed += 1
                logger.warning("%s: query %s failed and counts as no results: %s", system, qid, exc)
                ranked = []
            latencies.append(time.perf_counter() - started)
            ids = [doc_id for doc_id, _ in ranked if not (drop_self and doc_id == qid)][: self.depth]
            run[qid] = {doc_id: float(self.depth - rank) for rank, doc_id in enumerate(ids)}
            if report is not None:
                report(system, len(run), len(dataset))
        if failed:
            logger.warning("%s: %d of %d queries failed", system, failed, len(dataset))
        return run, latencies, failed

    def _searcher(self, system: str) -> tuple[Callable[[str, int], list[tuple[str, float]]], float]:
        """``(search(text, k) -> [(doc_id, score)], seconds of untimed setup)`` for one system."""
        field = read_index_meta(self.backend, self.index).get("sparse_field", "sparse")
        if system == "bm25":
            hybrid = self.hybrid
            # like the sparse systems (SparseRetriever.search): the whole source (a source filter costs the
            # cluster more than sending the sparse field back; measured 2-4 ms a query on SciFact)
            source = True

            def bm25(text: str, k: int) -> list[tuple[str, float]]:
                body = {"query": hybrid.bm25_clause(text), "size": k, "_source": source}
                hits = self.backend.search(self.index, body)["hits"]["hits"]
                return [(h["_id"], float(h["_score"] or 0.0)) for h in hits]

            return bm25, 0.0
        if system == "sparse-inference-free":
            tokenizer = self._encoder.tokenizer if self._encoder is not None else self._tokenizer_source()
            retriever = SparseRetriever(
                self.backend,
                self.index,
                mode="inference-free",
                tokenizer=tokenizer,
                field=field,
                query_top_k=self.query_top_k,
            )
            started = time.perf_counter()
            features = retriever.refresh_document_frequencies()
            setup = time.perf_counter() - started
            logger.info("document frequencies of %d features refreshed in %.1fs (untimed)", features, setup)
        else:
            retriever = SparseRetriever(
                self.backend, self.index, encoder=self.encoder, mode="llm", field=field, query_top_k=self.query_top_k
            )
            setup = 0.0
        hybrid = self.hybrid if system == "hybrid" else False

        def sparse(text: str, k: int) -> list[tuple[str, float]]:
            return [(h.id, h.score) for h in retriever.search(text, k=k, hybrid=hybrid)]

        return sparse, setup

    def _tokenizer_source(self) -> str:
        """What ``load_tokenizer`` reads for inference-free mode: the adapter folder when it is a saved encoder."""
        if self.adapter and (Path(self.adapter) / "echo_splade.json").is_file():
            return self.adapter
        return str(self.model)

    # -- configuration ----------------------------------------------------------------------
    def _config(self, dataset: EvalDataset, drop_self: bool, errors: dict, setup_seconds: dict) -> dict:
        backend = self.backend
        meta = read_index_meta(backend, self.index)
        aliases = backend.get_aliases(self.index)
        physical = sorted(aliases) if aliases else [self.index]
        mapping = backend.get_mapping(self.index)
        analyzers = {}
        for body in mapping.values():
            props = body.get("mappings", {}).get("properties", {})
            for field in self.hybrid.fields:
                if field in props:
                    analyzers[field] = props[field].get("analyzer", "standard")
        config: dict[str, Any] = {
            "dataset": str(dataset.path),
            "dataset_name": dataset.name,
            "split": dataset.split,
            "num_queries": len(dataset),
            "index": self.index,
            "physical_index": physical,
            "num_docs": backend.count(self.index),
            "engine": backend.version_string,
            "analyzer": analyzers,
            "bm25": {"query": self.hybrid.bm25_clause("<query text>"), "similarity": self._similarity()},
            "model": self.model,
            "adapter": self.adapter,
            "model_rev": None,
            "index_model": meta.get("model"),
            "index_model_rev": meta.get("model_rev"),
            "templates": meta.get("echo_templates"),
            "pruning": {
                "query_top_k": self.query_top_k,
                "doc": self._doc_pruning(meta),
            },
            # how ingest's encoder computed the documents ({"dtype", "quantize", "smooth"}; None: not recorded)
            "doc_precision": meta.get(DOC_PRECISION_META_KEY),
            "hybrid": dataclasses.asdict(self.hybrid),
            "max_length": self.max_length,
            "truncate": self.truncate,
            "depth": self.depth,
            "self_hits": {"mode": self.self_hits, "dropped": drop_self},
            "systems": list(self.systems),
            "failed_queries": errors,
            "untimed_setup_seconds": setup_seconds,
            "latency": "p50 of client-side wall time per query (query encoding + request + response)",
            "metrics_library": f"ranx {_version('ranx')}",
            "echo_splade": _version("echo-splade"),
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        if self._encoder is not None:
            enc = self._encoder
            config["model"] = config["model"] or model_name(enc)
            config["model_rev"] = enc.model_rev
            config["encoder_config"] = dict(enc.config)
            config["templates"] = config["templates"] or IndexSpec.from_encoder(self.index, enc).echo_templates
        if self.ingest_info is not None:
            config["ingest"] = dict(self.ingest_info)
        return config

    def _similarity(self) -> Any:
        """The index's custom similarity settings, else the engine default (Lucene BM25, k1=1.2, b=0.75)."""
        custom = {}
        for body in self.backend.get_settings(self.index).values():
            custom.update({k: v for k, v in body.get("settings", {}).items() if k.startswith("index.similarity.")})
        return custom or "engine default: BM25 (Lucene k1=1.2, b=0.75)"

    @staticmethod
    def _doc_pruning(meta: dict) -> Any:
        """The ingest job's document pruning recorded in the index (``None``: no vectors in the index)."""
        if DOC_PRUNING_META_KEY in meta:
            return meta[DOC_PRUNING_META_KEY]
        return None if meta.get("model") is None else "not recorded (ingested before echo-splade recorded it)"


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"
