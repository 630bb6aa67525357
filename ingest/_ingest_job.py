from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional, TypeVar, Union

from echo_splade.client import Backend, ClusterError, ClusterStateError, ConnectionConfig, connect
from echo_splade.encoder import DEFAULT_MODEL, check_mass
from echo_splade.mappings import (
    DOC_PRECISION_META_KEY,
    DOC_PRUNING_META_KEY,
    IndexSpec,
    bulk_load_settings,
    provision,
    update_index_meta,
)

from ._corpus_datasource import CorpusDatasource
from ._corpus_reader import CorpusFormat, CorpusReader
from ._dead_letter import DeadLetter
from ._encode_batch import EncodeBatch
from ._ingest_report import IngestReport
from ._model_info import ModelInfo
from ._pipeline_rows import LOCATION_FIELDS, STATUS_ENCODED, STATUS_SKIPPED
from ._ray_runtime import AUX_CPUS, STREAM_BLOCK_BYTES, RayRuntime, ray_initialized
from ._write_batch import WriteBatch

logger = logging.getLogger(__name__)

__all__ = ["IngestJob", "DEFAULT_DOC_TOP_K", "DEFAULT_INGEST_MODEL"]

DEFAULT_INGEST_MODEL = DEFAULT_MODEL  # the built-in model (torch-free import)
#: Default document pruning: an untrained SPLADE head gives ~every vocabulary entry a weight > 0,
#: so keep the 256 largest (a trained model usually has fewer non-zeros and is unaffected).
DEFAULT_DOC_TOP_K = 256


E = TypeVar("E", bound=BaseException)


def _find_cause(exc: BaseException, kind: type[E]) -> Optional[E]:
    """The exception of ``kind`` in ``exc``'s cause/context chain (Ray wraps actor errors).

    Ray re-raises a worker's error as a subclass of both ``RayTaskError`` and the original
    class, whose message is the whole remote traceback; the original (exactly ``kind``,
    reachable through ``.cause``) is preferred.
    """
    seen: set[int] = set()
    stack: list[Optional[BaseException]] = [exc]
    found: list[E] = []
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            found.append(current)
        stack.extend([current.__cause__, current.__context__, getattr(current, "cause", None)])
    exact = [e for e in found if type(e) is kind]
    return exact[0] if exact else (found[0] if found else None)


def _release_frames(error: BaseException) -> None:
    """Drop the local variables of the finished frames in ``error``'s traceback chain.

    A failed run's exception keeps Ray Data's executor alive through those frames (and a caller keeps the
    exception: ``pytest.raises``, a notebook's ``sys.last_value``): its bulk-writer and encoder actors then
    stay alive in a shared Ray and hold their CPUs, so the next job in the same process (``resume=True``)
    waits forever for a CPU. Measured: 0.5 of 2 CPUs free after a failed run before, 2.0 after. The
    traceback itself (files, lines) stays printable.
    """
    seen: set[int] = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


def _stage_actor_handles(stages: tuple[type, ...]) -> dict[str, Any]:
    """The live Ray actor handles of ``stages``' actor pools in this process, by ``repr`` (one per actor)."""
    import gc

    from ray.actor import ActorHandle  # lazy: see RayRuntime

    names = tuple(f"Actor(MapWorker(MapBatches({stage.__name__}))," for stage in stages)
    # type(), not isinstance(): some objects (torch.distributed.reduce_op) warn when their class is asked for
    return {repr(o): o for o in gc.get_objects() if issubclass(type(o), ActorHandle) and repr(o).startswith(names)}


def _block_hint(error: BaseException) -> str:
    """How to lift the flood-stage block when ``error`` names it and does not say so already."""
    text = str(error)
    if "read-only-allow-delete" not in text or "index.blocks.read_only_allow_delete" in text:
        return ""
    return (
        " (the index is blocked by index.blocks.read_only_allow_delete: a node's disk passed the flood-stage "
        "watermark; free space, then lift it: PUT /<index>/_settings "
        '{"index.blocks.read_only_allow_delete": null})'
    )


class IngestJob:
    """Encode a corpus with Echo-SPLADE and bulk-index it, exactly once per id, on Ray Data.

    Pipeline: :class:`CorpusReader` (one streaming read task; bad records marked)
    -> :class:`EncodeBatch` on a pool of ``actors`` actors (the encoder loaded once
    per actor; ``num_gpus=1`` each when the Ray cluster has GPUs, CPU actors
    otherwise; with ``resume``, ids already indexed with the same ``model_rev``
    are skipped per batch) -> :class:`WriteBatch` on a pool of ``writers``
    actors with their own clients (so encoding never waits on bulk requests)
    -> the driver, which counts, writes the dead-letter file and reports progress.

    The index is provisioned (``echo_splade.mappings.provision``) when missing,
    or checked for compatibility with the encoder when present; with
    ``provision=False`` it must exist and is used as is. Bulk-load settings
    (refresh off, no replicas) hold for the run and are restored at the end,
    also on failure or Ctrl-C; then the index is refreshed.

    Args:
        corpus: a BEIR folder, JSONL file or Parquet file/folder (see :class:`CorpusReader`).
        index: the index (alias) name.
        connection: how to reach the cluster; every writer actor opens its own client.
        model, adapter, max_length, device: the encoder (``EchoSpladeEncoder.from_pretrained``).
            ``device=None``: CUDA actors when the Ray cluster has GPUs, else CPU.
        encoder_options: further ``from_pretrained`` options (e.g. ``{"truncate": True}``).
        torch_threads: torch CPU threads per CPU encoder actor (default: the CPUs divided among the
            actors; on a machine shared with other busy processes, 1 is often much faster).
        corpus_format, id_field, title_field, text_field: see :class:`CorpusReader`.
        resume: skip documents already indexed with this encoder's ``model_rev``.
        provision: create the index when missing (``False``: it must exist).
        encoder_resources: custom Ray resources each encoder actor needs (``{"encoder": 1}``: only on nodes
            started with ``ray start --resources '{"encoder": N}'``), besides its CPUs or GPU.
        shards, replicas: of the index when this job creates it (default 1 and 0); an existing index
            keeps its own (``shards`` given: it must match).
        doc_top_k: keep the ``doc_top_k`` largest weights per document (``None``: all).
        min_weight: drop weights below this.
        doc_mass: then keep the largest weights until they hold this share of the document's total weight
            (``None`` or 1: no mass pruning); recorded with ``doc_top_k``/``min_weight`` in the index ``_meta``.
            0.8 measured best for ``llm``-mode queries (README "Measured": document pruning) and it also helped
            inference-free queries on SciFact (BERT peer); not the default: measured on that one model only, and on
            a small corpus (the demo's) inference-free queries of few tokens then find fewer than k documents.
        batch_size: documents per encoder call (and per forward pass).
        actors: encoder actors (default: one per GPU; on CPU one per 8 CPUs, at least 1).
        writers: bulk-writer actors.
        writer_options: :class:`BulkWriter` keyword arguments (``max_chunk_docs``, ``max_chunk_bytes``,
            ``max_retries``, ``initial_backoff``, ``max_backoff``).
        ray_address: an existing Ray cluster (``"auto"`` or ``"ray://host:10001"``); ``None``:
            the ``RAY_ADDRESS`` environment variable (set under ``ray job submit``), else a
            local Ray with this machine's CPUs, unless Ray is already initialised.
        report_path: write the :class:`IngestReport` there as JSON (also on failure).
        dead_letter_path: the dead-letter JSONL file (default: beside the report,
            ``<report stem>.dead-letter.jsonl``, else ``<index>.dead-letter.jsonl`` in the working
            directory). A run removes the previous run's file when its pipeline starts and creates
            the file at its first bad record, so a clean run leaves none.
        limit: read only the first ``limit`` records (a trial run).
        block_rows: records per block read from the corpus.
        encode_stage: the encode stage's callable class: :class:`EncodeBatch` or a subclass
            (e.g. overriding ``load_encoder`` to serve precomputed vectors in a benchmark).
        model_info: the :class:`ModelInfo` of ``model`` when the caller has the encoder loaded already
            (``ModelInfo.of(encoder)``; the demo does): the job then loads the model only in its encoder
            actors, which check that they get the same ``model_rev``. ``None``: the job reads it from the
            model's files (:class:`echo_splade.encoder.EncoderSpec`: no weights loaded on the driver).
    """

    def __init__(
        self,
        corpus: Union[str, os.PathLike],
        index: str,
        connection: Optional[ConnectionConfig] = None,
        *,
        model: str = DEFAULT_INGEST_MODEL,
        adapter: Optional[str] = None,
        max_length: Optional[int] = None,
        device: Optional[str] = None,
        encoder_options: Optional[dict] = None,
        torch_threads: Optional[int] = None,
        corpus_format: CorpusFormat = "auto",
        id_field: str = "_id",
        title_field: str = "title",
        text_field: str = "text",
        resume: bool = False,
        provision: bool = True,
        encoder_resources: Optional[dict] = None,
        shards: Optional[int] = None,
        replicas: Optional[int] = None,
        doc_top_k: Optional[int] = DEFAULT_DOC_TOP_K,
        min_weight: Optional[float] = None,
        doc_mass: Optional[float] = None,
        batch_size: int = 32,
        actors: Optional[int] = None,
        writers: int = 2,
        writer_options: Optional[dict] = None,
        ray_address: Optional[str] = None,
        report_path: Optional[Union[str, os.PathLike]] = None,
        dead_letter_path: Optional[Union[str, os.PathLike]] = None,
        limit: Optional[int] = None,
        block_rows: int = 1000,
        encode_stage: type = EncodeBatch,
        model_info: Optional[ModelInfo] = None,
    ) -> None:
        for name, value, low in (("batch_size", batch_size, 1), ("writers", writers, 1), ("block_rows", block_rows, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if torch_threads is not None and (not isinstance(torch_threads, int) or torch_threads < 1):
            raise ValueError(f"torch_threads must be an integer >= 1 or None, got {torch_threads!r}")
        if actors is not None and (not isinstance(actors, int) or actors < 1):
            raise ValueError(f"actors must be an integer >= 1 or None, got {actors!r}")
        if doc_top_k is not None and (not isinstance(doc_top_k, int) or doc_top_k < 1):
            raise ValueError(f"doc_top_k must be an integer >= 1 or None, got {doc_top_k!r}")
        if min_weight is not None and not min_weight >= 0:
            raise ValueError(f"min_weight must be >= 0, got {min_weight!r}")
        check_mass(doc_mass)
        if device not in (None, "cpu", "cuda"):
            raise ValueError(f"device must be one of (None, 'cpu', 'cuda'), got {device!r}")
        clash = sorted({"adapter", "device", "batch_size", "max_length"} & set(encoder_options or {}))
        if clash:
            raise ValueError(f"encoder_options must not hold {clash}: pass them as IngestJob arguments")
        for label, count, least in (("shards", shards, 1), ("replicas", replicas, 0)):
            if count is not None and (not isinstance(count, int) or count < least):
                raise ValueError(f"{label} must be an integer >= {least} or None, got {count!r}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if not index:
            raise ValueError("index must be a non-empty name")
        self.reader = CorpusReader(
            corpus,
            format=corpus_format,
            id_field=id_field,
            title_field=title_field,
            text_field=text_field,
            batch_size=block_rows,
        )
        self.index = index
        self.connection = connection or ConnectionConfig()
        self.model = str(model)
        self.adapter = str(adapter) if adapter else None
        self.max_length = max_length
        self.device = device
        self.encoder_options = dict(encoder_options or {})
        self.torch_threads = torch_threads
        self.resume = resume
        self.provision = provision
        self.shards = shards
        if encoder_resources is not None and (
            not isinstance(encoder_resources, dict)
            or not all(
                isinstance(k, str) and isinstance(v, (int, float)) and v > 0 for k, v in encoder_resources.items()
            )
        ):
            raise ValueError(
                f"encoder_resources must map Ray resource names to amounts > 0, e.g. {{'encoder': 1}}, got {encoder_resources!r}"
            )
        self.encoder_resources = dict(encoder_resources or {})
        self.replicas = replicas
        self.doc_top_k = doc_top_k
        self.min_weight = min_weight
        self.doc_mass = None if doc_mass == 1 else doc_mass
        self.batch_size = batch_size
        self.actors = actors
        self.writers = writers
        self.writer_options = dict(writer_options or {})
        self.ray_address = ray_address
        self.report_path = Path(report_path) if report_path else None
        if dead_letter_path:
            self.dead_letter_path = Path(dead_letter_path)
        elif self.report_path is not None:
            self.dead_letter_path = self.report_path.with_name(self.report_path.stem + ".dead-letter.jsonl")
        else:
            self.dead_letter_path = Path(f"{index}.dead-letter.jsonl")
        self.limit = limit
        self.block_rows = block_rows
        if not (isinstance(encode_stage, type) and issubclass(encode_stage, EncodeBatch)):
            raise ValueError(f"encode_stage must be EncodeBatch or a subclass of it, got {encode_stage!r}")
        self.encode_stage = encode_stage
        if model_info is not None and not isinstance(model_info, ModelInfo):
            raise ValueError(f"model_info must be a ModelInfo (ModelInfo.of(encoder)), got {model_info!r}")
        self.model_info = model_info
        #: The report of the last (or current) :meth:`run`.
        self.report: Optional[IngestReport] = None

    def __repr__(self) -> str:
        return (
            f"IngestJob(corpus={str(self.reader.path)!r}, index={self.index!r}, model={self.model!r}, "
            f"resume={self.resume}, connection={self.connection.describe()!r})"
        )

    # -- Ray -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _secret_environment(self) -> Iterator[None]:
        """Put the connection's password / API key into this process's environment while the job runs.

        Ray workers of a Ray instance this job starts inherit the driver's environment, so the actors get the
        secrets without them ever being task or actor arguments (which Ray stores and may log). On a Ray
        cluster started elsewhere, pass them in the job's runtime_env ``env_vars`` (README). Put back after.
        """
        secrets = self.connection.secret_environment()
        previous = {name: os.environ.get(name) for name in secrets}
        os.environ.update(secrets)
        try:
            yield
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def _model_info(self, device: Optional[str]) -> ModelInfo:
        """The encoder's :class:`ModelInfo`: the caller's (``model_info``), else read from the model's files
        (no weights are loaded on the driver: only the encoder actors load the model), the precision options
        checked against the model and ``device`` (where the actors will run) before any actor starts."""
        if self.model_info is not None:
            return self.model_info
        options = {**self.encoder_options, "max_length": self.max_length}
        return ModelInfo.load(self.model, self.adapter, options, device=device)

    # -- index ---------------------------------------------------------------------------
    def _prepare_index(self, backend: Backend, info: ModelInfo) -> None:
        if not self.provision:
            return
        layout = {k: v for k, v in (("shards", self.shards), ("replicas", self.replicas)) if v is not None}
        if self.shards is None and backend.exists(self.index):
            # an existing index keeps the primaries it was created with (`provision --shards 3`): only its
            # mapping and _meta are checked against the encoder, not its shard count
            counts = {
                int(body["settings"]["index.number_of_shards"]) for body in backend.get_settings(self.index).values()
            }
            if len(counts) == 1:
                layout["shards"] = counts.pop()
        plan = provision(backend, IndexSpec.for_model(self.index, info.model, info.model_rev, info.config, **layout))
        logger.info("index %s: %s", self.index, plan.summary())

    def _record_document_settings(self, backend: Backend, device: Optional[str]) -> None:
        """Record this run's document pruning and encoder precision in the index ``_meta`` (read back by ``eval``
        reports); warn when the index already holds documents written otherwise.

        ``device``: where the encoder actors run (``"cpu"`` or ``"cuda"``), for the dtype they default to.
        """
        pruning = {"top_k": self.doc_top_k, "min_weight": self.min_weight, "mass": self.doc_mass}
        precision = self.document_precision(device)
        entries = {DOC_PRUNING_META_KEY: pruning, DOC_PRECISION_META_KEY: precision}
        for physical, old in update_index_meta(backend, self.index, entries).items():
            old_pruning, old_precision = old[DOC_PRUNING_META_KEY], old[DOC_PRECISION_META_KEY]
            if old_pruning is not None and {"mass": None, **old_pruning} != pruning:  # runs before mass pruning
                logger.warning(
                    "index %s holds documents pruned with %s and this run prunes with %s: the index now mixes both",
                    physical,
                    old_pruning,
                    pruning,
                )
            if old_precision is not None and old_precision != precision:  # runs before it: not recorded, unknown
                logger.warning(
                    "index %s holds documents encoded with %s and this run encodes with %s: the index now mixes both",
                    physical,
                    old_precision,
                    precision,
                )

    def document_precision(self, device: Optional[str]) -> dict:
        """``{"dtype", "quantize", "smooth"}`` the encoder actors compute documents with on ``device``: the
        ``dtype`` asked for in ``encoder_options`` (else the encoder's default: bfloat16 on CUDA, float32 on the
        CPU), and the int8 options (None: not quantized)."""
        dtype = self.encoder_options.get("dtype")
        if dtype is None:
            dtype = "bfloat16" if device == "cuda" else "float32"
        return {
            "dtype": dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch."),
            "quantize": self.encoder_options.get("quantize"),
            "smooth": self.encoder_options.get("smooth"),
        }

    # -- the run -----------------------------------------------------------------------
    def _block_plan(self) -> tuple[int, int]:
        """``(rows per writer call, Ray Data target block bytes)``: what keeps the pipeline streaming.

        Ray Data merges small blocks up to ``target_max_block_size`` bytes (the reader's and the encoder's
        output alike) and lets a task's output out only in such blocks, the last at the task's end; a writer
        stage called with ``batch_size`` rows waits until that many encoded rows have arrived. With 256 KiB
        blocks and 500-row writer calls, encoded documents waited for hundreds of others: the first of ~2,000
        MEDLINE-sized documents reached the index after ~20 minutes on a 2-core CPU. With
        :data:`STREAM_BLOCK_BYTES` (16 KiB; an encoder call's output of ``batch_size`` documents with their
        text and terms is larger) every encoder call's output leaves its actor when the call returns, and the
        writer is called with ``batch_size`` rows, i.e. about one encoder call's documents (its
        :class:`BulkWriter` still splits requests by ``max_chunk_docs``/``max_chunk_bytes``). ``block_rows``
        stays the reader's unit; the block bytes decide what travels.
        """
        return self.batch_size, STREAM_BLOCK_BYTES

    def _dataset(self, actors: int, resources: dict, device: Optional[str], threads: Optional[int], model_rev: str):
        import ray  # lazy: `import ray` takes seconds

        # The corpus path is the driver's: read it on the driver's node.
        here = {"ray.io/node-id": ray.get_runtime_context().get_node_id()}
        source = CorpusDatasource(self.reader, block_rows=self.block_rows, limit=self.limit)
        write_rows = self._block_plan()[0]
        ds = ray.data.read_datasource(source, override_num_blocks=1, num_cpus=AUX_CPUS, label_selector=here)
        # Actor arguments are stored and may be logged by Ray: they carry the connection without its secrets,
        # which the actors read from their environment (see _secret_environment).
        connection = self.connection.without_secrets()
        encode_kwargs = dict(
            model=self.model,
            adapter=self.adapter,
            device=device,
            batch_size=self.batch_size,
            max_length=self.max_length,
            doc_top_k=self.doc_top_k,
            min_weight=self.min_weight,
            doc_mass=self.doc_mass,
            torch_threads=threads,
            encoder_options=self.encoder_options,
            resume={"connection": connection, "index": self.index} if self.resume else None,
            expected_model_rev=model_rev,
        )
        ds = ds.map_batches(
            self.encode_stage,
            fn_constructor_kwargs=encode_kwargs,
            batch_size=self.batch_size,
            batch_format="pyarrow",
            concurrency=actors,  # a fixed pool of `actors` actors, each loading the encoder once
            **resources,
        )
        return ds.map_batches(
            WriteBatch,
            fn_constructor_kwargs=dict(connection=connection, index=self.index, writer_options=self.writer_options),
            batch_size=write_rows,
            batch_format="pyarrow",
            concurrency=self.writers,
            num_cpus=AUX_CPUS,
        )

    @staticmethod
    def _account(batch: Any, report: IngestReport, dead: DeadLetter) -> None:
        cols = batch.to_pydict()
        for i, status in enumerate(cols["status"]):
            report.read += 1
            if status == STATUS_ENCODED:
                report.encoded += 1
            if cols["indexed"][i]:
                report.indexed += 1
            elif status == STATUS_SKIPPED:
                report.skipped += 1
            if cols["reason"][i]:
                where = {k: cols[k][i] for k in LOCATION_FIELDS if cols[k][i] not in (-1, "")}
                dead.add(
                    cols["reason"][i], doc_id=cols["doc_id"][i], detail=cols["detail"][i], raw=cols["raw"][i], **where
                )
        report.dead_lettered = dead.count
        report.dead_letter_reasons = dict(dead.counts)

    @staticmethod
    def _stop_stage_actors(stages: tuple[type, ...], others: set[str]) -> None:
        """Kill this failed run's encoder and writer actors, which Ray Data may leave alive in a Ray that stays up.

        When a stage fails before the first result reaches the driver, Ray Data (2.60) shuts its executor down
        without killing the actors (it only drops its own references) while callbacks of the unfinished actor
        tasks, held by Ray's core worker, keep the handles: the actors live on with their CPUs, and the next job
        in the same process (``resume=True``, a notebook, the tests) waits forever for a CPU. Measured with an
        encode stage failing on its first call: 1.0 of 2 CPUs stayed taken after the failed run, also after
        ``gc.collect()``; the handles' only referrers were ``functools.partial(..., actor_to_return=...)``
        callbacks. ``others``: stage actors that existed before this run (another job's), left alone.
        """
        import ray  # lazy: see RayRuntime

        leftovers = {key: handle for key, handle in _stage_actor_handles(stages).items() if key not in others}
        for handle in leftovers.values():
            with contextlib.suppress(Exception):  # already dead, or Ray going down
                ray.kill(handle, no_restart=True)
        if leftovers:
            logger.info("stopped %d encoder/writer actor(s) of the failed run", len(leftovers))

    def run(self, progress: Optional[Callable[[IngestReport], None]] = None) -> IngestReport:
        """Run the job; return its report (also kept in :attr:`report`).

        ``progress`` is called with the live report after every batch of results
        (raising from it, e.g. ``KeyboardInterrupt``, stops the job cleanly).

        Raises:
            ClusterError: the cluster stayed unreachable (after the writers' retries) or refused a
                request; the message says how many documents were indexed; ``resume=True`` finishes later.
            ValueError: bad options, corpus layout or an index incompatible with the encoder.
        """
        report = self.report = IngestReport(
            index=self.index, corpus=str(self.reader.path), dead_letter_path=str(self.dead_letter_path)
        )
        started = time.monotonic()
        runtime = RayRuntime(self.ray_address)
        dead = DeadLetter(self.dead_letter_path)
        backend = None
        secret_env = contextlib.ExitStack()
        ray_running_before = ray_initialized()
        stages = (self.encode_stage, WriteBatch)
        others: set[str] = set()  # stage actors of other jobs in this process, left alone
        try:
            backend = connect(self.connection)
            if not self.provision and not backend.exists(self.index):
                raise ClusterStateError(
                    f"index {self.index} does not exist and provisioning is off", option="provision", index=self.index
                )
            secret_env.enter_context(self._secret_environment())
            if ray_running_before and self.connection.secret_environment():
                logger.info(
                    "Ray was already running: its workers read the cluster secret from their own environment (%s)",
                    ", ".join(sorted(self.connection.secret_environment())),
                )
            runtime.start()
            actors, resources, device, threads = runtime.encoder_resources(
                self.device, self.actors, self.writers, self.torch_threads, custom=self.encoder_resources
            )
            info = self._model_info(device)
            report.model, report.model_rev = info.model, info.model_rev
            logger.info(
                "ingest %s -> %s with %s (model_rev %s): %d encoder actor(s) %s, %d writer(s)",
                self.reader.path,
                self.index,
                info.model,
                info.model_rev,
                actors,
                resources,
                self.writers,
            )
            self._prepare_index(backend, info)
            self._record_document_settings(backend, device)
            if ray_running_before:  # only a Ray that stays up can hold other jobs' actors (and needs the clean-up)
                others = set(_stage_actor_handles(stages))
            with bulk_load_settings(backend, self.index), runtime.data_context(block_bytes=self._block_plan()[1]):
                dead.discard_previous()
                batches = self._dataset(actors, resources, device, threads, info.model_rev).iter_batches(
                    batch_size=None, batch_format="pyarrow"
                )
                try:
                    for batch in batches:
                        self._account(batch, report, dead)
                        report.seconds = time.monotonic() - started
                        if progress is not None:
                            progress(report)
                finally:
                    close = getattr(batches, "close", None)
                    if close is not None:
                        close()
                    del batches  # it holds Ray Data's executor and, through it, the stage actors
            report.status = "completed"
        except KeyboardInterrupt as exc:
            report.status, report.error = "interrupted", "interrupted"
            _release_frames(exc)
            raise
        except Exception as exc:
            report.status = "failed"
            _release_frames(exc)
            cause = _find_cause(exc, ClusterError)
            if cause is not None:
                message = (
                    f"{cause}{_block_hint(cause)} -- the job stopped after indexing {report.indexed} document(s); "
                    f"run it again with resume=True to finish"
                )
                report.error = message
                # option: the parameter that finishes it (the CLI names --resume)
                stopped = type(cause)(
                    message, status=cause.status, error_type=cause.error_type, reason=cause.reason, option="resume"
                )
                raise stopped from exc
            report.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            report.seconds = time.monotonic() - started
            dead.close()
            report.dead_lettered = dead.count
            report.dead_letter_reasons = dict(dead.counts)
            if self.report_path is not None:
                self.report.write(self.report_path)
            if backend is not None:
                backend.close()
            # "ray" in sys.modules: a run that failed before it needed Ray (cluster unreachable) does not import it
            if report.status != "completed" and not runtime.started and "ray" in sys.modules and ray_initialized():
                self._stop_stage_actors(stages, others)
            runtime.shutdown()
            secret_env.close()
            logger.info("ingest %s", report.summary())
        return report
