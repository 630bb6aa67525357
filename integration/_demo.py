from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

from echo_splade.client import Backend, ClusterError, ConnectionConfig, connect, redact_url
from echo_splade.connector import Hybrid, SparseRetriever, piece_scheme, token_label
from echo_splade.encoder import DEFAULT_MODEL, MODEL_GUIDE

from .node import LocalNode

logger = logging.getLogger(__name__)

__all__ = ["Demo", "DemoSearch", "SAMPLE_CORPUS", "SAMPLE_QUERIES"]

_HERE = Path(__file__).resolve().parent
#: 52 short original passages (health, science, cooking, travel, computing, history, ...), BEIR-style JSONL.
SAMPLE_CORPUS = _HERE / "sample_corpus.jsonl"
#: Example queries with the ids of the passages that answer them; most share few words with their answer.
SAMPLE_QUERIES = _HERE / "sample_queries.jsonl"

#: Demo pruning: zero-shot (untrained) vectors are dense, so keep each passage's and query's strongest terms.
DEMO_DOC_TOP_K = 128
DEMO_QUERY_TOP_K = 24
_LOCAL_HOSTS = ("127.0.0.1", "localhost")


@dataclasses.dataclass
class DemoSearch:
    """One example search of the demo.

    ``query_terms``: ``[(token, weight, is_expansion)]`` the query was searched with;
    ``hits``: the connector's hits (with explanations); ``expected``: ids of the
    passages that answer the query; ``sparse_rank``/``bm25_rank``: 1-based rank of
    the first expected passage in each system's top ``depth`` (``None``: not found).
    """

    query: str
    query_terms: list[tuple[str, float, bool]]
    hits: list[Any]
    expected: list[str]
    sparse_rank: Optional[int]
    bm25_rank: Optional[int]


class Demo:
    """The whole product on built-in defaults, in one call: node, index, ingest, searches with explanations.

    Steps: use the cluster at ``connection`` (when it is a local URL and nothing
    answers, start the project's local OpenSearch node there with
    :class:`LocalNode`, idempotently); load the encoder; provision an index and
    ingest :data:`SAMPLE_CORPUS` with :class:`echo_splade.ingest.IngestJob`
    (``resume``: a second run skips what is indexed); run each query of
    :data:`SAMPLE_QUERIES` through :class:`echo_splade.connector.SparseRetriever`
    with explanations, and through BM25 (the connector's ``multi_match``) for comparison.

    Progress lines go to ``echo`` (the CLI passes ``click.echo``; default: the logger).

    Args:
        connection: the cluster (``ConnectionConfig``); default ``http://127.0.0.1:9200``.
        model: encoder short name or folder (default ``echo_splade.encoder.DEFAULT_MODEL``).
        adapter: LoRA adapter folder merged into ``model``.
        index: index (alias) name; default ``echo-splade-demo-<model_rev>``, so each model gets its own.
        start_node: start the local node when nothing answers at a local URL.
        doc_top_k, query_top_k: pruning of passages and queries.
        k: hits shown per query.
        depth: how deep the expected passage is looked for in each ranking.
        explain_top_n: matched terms shown per hit.
        node_options: extra :class:`LocalNode` keyword arguments (``home``, ``heap``, ...).
    """

    def __init__(
        self,
        connection: Any = None,
        model: Optional[str] = None,
        adapter: Optional[str] = None,
        index: Optional[str] = None,
        start_node: bool = True,
        doc_top_k: Optional[int] = DEMO_DOC_TOP_K,
        query_top_k: Optional[int] = DEMO_QUERY_TOP_K,
        k: int = 3,
        depth: int = 10,
        explain_top_n: int = 6,
        node_options: Optional[dict] = None,
        corpus: Path = SAMPLE_CORPUS,
        queries: Path = SAMPLE_QUERIES,
        echo: Optional[Callable[[str], None]] = None,
    ) -> None:
        for name, value in (("k", k), ("depth", depth), ("explain_top_n", explain_top_n)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if depth < k:
            raise ValueError(f"depth ({depth}) must be >= k ({k})")
        self.connection = connection or ConnectionConfig()
        self.model = model
        self.adapter = adapter
        self.index = index
        self.start_node = start_node
        self.doc_top_k = doc_top_k
        self.query_top_k = query_top_k
        self.k = k
        self.depth = depth
        self.explain_top_n = explain_top_n
        self.node_options = dict(node_options or {})
        self.corpus = Path(corpus)
        self.queries = self._read_queries(Path(queries))
        self.echo = echo or logger.info
        #: The :class:`LocalNode` this demo started (it keeps running afterwards), else ``None``.
        self.started_node: Any = None

    @staticmethod
    def _read_queries(path: Path) -> list[dict]:
        queries = []
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    obj = json.loads(line)
                    if not isinstance(obj.get("text"), str) or not obj["text"].strip():
                        raise ValueError(f"{path}:{number}: a demo query needs a non-empty 'text'")
                    queries.append({"text": obj["text"], "relevant": list(obj.get("relevant") or [])})
        if not queries:
            raise ValueError(f"{path} holds no queries")
        return queries

    # -- steps ---------------------------------------------------------------------------
    def run(self) -> list[DemoSearch]:
        """Run the demo; return the example searches (they are also printed through ``echo``)."""
        started = time.monotonic()
        backend = self.ensure_cluster()
        try:
            encoder = self.load_encoder()
            index = self.index or f"echo-splade-demo-{encoder.model_rev}"
            self.ingest(index, encoder)
            results = self.search(backend, index, encoder)
        finally:
            backend.close()
        found_sparse = sum(1 for r in results if r.sparse_rank is not None and r.sparse_rank <= self.k)
        found_bm25 = sum(1 for r in results if r.bm25_rank is not None and r.bm25_rank <= self.k)
        self.echo("")
        self.echo(
            f"Expected passage in the top {self.k}: sparse {found_sparse}/{len(results)}, "
            f"BM25 {found_bm25}/{len(results)}."
        )
        self._print_guide(encoder)
        self.echo(
            f'Done in {time.monotonic() - started:.0f}s. Try: echo-splade search "your question" '
            f"--index {index} --explain"
        )
        if self.started_node is not None:
            port = "" if self.started_node.port == 9200 else f" --port {self.started_node.port}"
            self.echo(
                f"The local node keeps running at {self.started_node.url}; stop it with: echo-splade cluster stop{port}"
            )
        return results

    def ensure_cluster(self) -> Any:
        """Connect; when nothing answers at a local URL, start the local node there first."""
        url = self.connection.urls[0]
        self.echo(f"[1/4] Cluster at {redact_url(url)}")
        try:
            backend = connect(self.connection)
        except ClusterError as exc:
            parts = urlsplit(url)
            if not (
                self.start_node
                and exc.unreachable
                and len(self.connection.urls) == 1
                and parts.hostname in _LOCAL_HOSTS
                and parts.scheme == "http"
            ):
                raise
            node = LocalNode(port=parts.port or 9200, **self.node_options)
            self.echo(
                f"      nothing answers there: starting the local {node.engine} {node.version} node "
                f"(the first start downloads it from Maven Central)"
            )
            node.start()
            self.started_node = node
            backend = connect(self.connection)
        self.echo(f"      {backend.version_string} is up")
        return backend

    def load_encoder(self) -> Any:
        from echo_splade.encoder import EchoSpladeEncoder  # lazy: imports torch

        self.model = self.model or DEFAULT_MODEL
        self.echo(
            f"[2/4] Loading the encoder {self.model}{' + adapter ' + str(self.adapter) if self.adapter else ''} "
            "(the first use builds it into the model cache)"
        )
        started = time.monotonic()
        encoder = EchoSpladeEncoder.from_pretrained(self.model, adapter=self.adapter)
        self.echo(
            f"      ready in {time.monotonic() - started:.0f}s: {encoder.source}, model_rev {encoder.model_rev}, "
            f"vocabulary {encoder.vocab_size}"
        )
        return encoder

    def ingest(self, index: str, encoder: Any = None) -> Any:
        """Provision ``index`` when missing and ingest the sample corpus (resumable: reruns skip done passages)."""
        from echo_splade.ingest import IngestJob, ModelInfo  # lazy: IngestJob imports ray

        self.echo(
            f"[3/4] Ingesting {self.corpus.name} into {index} (provisioned when missing; "
            f"top {self.doc_top_k} terms per passage)"
        )
        with tempfile.TemporaryDirectory(prefix="echo-splade-demo-") as scratch:
            job = IngestJob(
                self.corpus,
                index,
                self.connection,
                model=self.model,
                adapter=self.adapter,
                corpus_format="jsonl",
                resume=True,
                doc_top_k=self.doc_top_k,
                dead_letter_path=Path(scratch) / "dead-letter.jsonl",
                # the encoder loaded for the queries: the job loads it only in its actors, not a third time
                model_info=ModelInfo.of(encoder) if encoder is not None else None,
            )
            last = [0.0]

            def progress(report: Any) -> None:
                now = time.monotonic()
                if now - last[0] >= 5.0:
                    last[0] = now
                    self.echo(f"      ... {report.indexed + report.skipped} passages done ({report.seconds:.0f}s)")

            report = job.run(progress=progress)
            if report.dead_lettered:
                dead = (Path(scratch) / "dead-letter.jsonl").read_text(encoding="utf-8")
                raise ValueError(f"{report.dead_lettered} sample passage(s) could not be ingested: {dead[:1000]}")
        self.echo(f"      {report.summary()}")
        return report

    def search(self, backend: Backend, index: str, encoder: Any) -> list[DemoSearch]:
        """Each sample query through the sparse retriever (with explanations) and BM25."""
        retriever = SparseRetriever(
            backend, index, encoder=encoder, mode="llm", query_top_k=self.query_top_k, explain_top_n=self.explain_top_n
        )
        lexical = Hybrid()
        self.echo(
            f"[4/4] Example searches: learned sparse retrieval ({self.query_top_k} query terms), "
            f"top {self.k} with the terms that matched; * marks expansion terms (not in the query text)"
        )
        results = []
        for query in self.queries:
            text = query["text"]
            own = self._own_tokens(encoder, text)
            terms = [(t, w, t not in own) for t, w in retriever.encode_query(text).items()]
            hits = retriever.search(text, k=self.depth, explain=True)
            bm25 = backend.search(index, {"query": lexical.bm25_clause(text), "size": self.depth, "_source": False})
            bm25_ids = [h["_id"] for h in bm25["hits"]["hits"]]
            result = DemoSearch(
                query=text,
                query_terms=terms,
                hits=hits[: self.k],
                expected=query["relevant"],
                sparse_rank=_first_rank([h.id for h in hits], query["relevant"]),
                bm25_rank=_first_rank(bm25_ids, query["relevant"]),
            )
            self._print(result, encoder, own)
            results.append(result)
        return results

    # -- printing ---------------------------------------------------------------------------
    def _print_guide(self, encoder: Any) -> None:
        """Which built-in model is best for what (``MODEL_GUIDE``), the one that ran first."""
        ran = getattr(encoder, "source", None)
        self.echo("Built-in models (--model):")
        for name in sorted(MODEL_GUIDE, key=lambda n: n != ran):
            self.echo(f"  {'*' if name == ran else ' '} {name}: {MODEL_GUIDE[name]}")

    @staticmethod
    def _own_tokens(encoder: Any, text: str) -> set[str]:
        """The query's own tokens (with and without a leading space, lower-cased variants too)."""
        own = set()
        for variant in (text, text.lower()):
            for prefix in ("", " "):
                ids = encoder.tokenizer(prefix + variant, add_special_tokens=False)["input_ids"]
                own.update(encoder.tokenizer.convert_ids_to_tokens(ids))
        return own

    def _print(self, result: DemoSearch, encoder: Any, own: set[str]) -> None:
        scheme = piece_scheme(encoder.tokenizer)

        def show(token: str, texts: tuple[str, ...] = ()) -> str:
            # a word piece is shown with the word it came from (query first, then the hit's text)
            return token_label(token, (result.query, *texts), scheme) + ("*" if token not in own else "")

        self.echo("")
        self.echo(f"  Query: {result.query}")
        top_terms = ", ".join(f"{show(t)} {w:.2f}" for t, w, _ in result.query_terms[:10])
        self.echo(f"    query terms: {top_terms}")
        for rank, hit in enumerate(result.hits, start=1):
            title = hit.source.get("title") or hit.source.get("text", "")[:60]
            mark = "  <- expected" if hit.id in result.expected else ""
            self.echo(f"    {rank}. [{hit.score:.2f}] {hit.id}: {title}{mark}")
            if hit.explanation is not None and hit.explanation.terms:
                texts = (str(hit.source.get("title") or ""), str(hit.source.get("text") or ""))
                matched = ", ".join(
                    f"{show(t.token, texts)} {t.query_weight:.2f}x{t.doc_weight:.2f}" for t in hit.explanation.terms
                )
                self.echo(f"         matched {hit.explanation.matched} terms: {matched}")
        if result.expected:
            self.echo(
                f"    expected {', '.join(result.expected)}: rank {_rank_text(result.sparse_rank, self.depth)} "
                f"with sparse, {_rank_text(result.bm25_rank, self.depth)} with BM25"
            )


def _first_rank(ids: list[str], expected: list[str]) -> Optional[int]:
    for rank, doc_id in enumerate(ids, start=1):
        if doc_id in expected:
            return rank
    return None


def _rank_text(rank: Optional[int], depth: int) -> str:
    return str(rank) if rank is not None else f">{depth}"
