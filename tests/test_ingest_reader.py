"""Corpus readers and the dead-letter file (no cluster, no Ray)."""

from __future__ import annotations

import gzip
import json
import pickle

import pytest
from _shared_data import shared_dataset

from echo_splade.client import InputError
from echo_splade.ingest import DEAD_LETTER_REASONS, BulkIndexError, CorpusReader, DeadLetter

CRANFIELD = str(shared_dataset("cranfield"))


def _write_lines(path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def test_beir_folder_streams_every_record_and_flags_empty_ones():
    reader = CorpusReader(CRANFIELD)
    assert reader.format == "beir" and reader.count_hint() == 1400
    records = list(reader)
    assert len(records) == 1400
    bad = {r["doc_id"]: r for r in records if r["reason"]}
    # cranfield has two records with empty title and text
    assert {k: v["reason"] for k, v in bad.items()} == {"471": "empty_document", "995": "empty_document"}
    assert bad["471"]["line"] == 471 and bad["471"]["offset"] > 0
    good = [r for r in records if not r["reason"]]
    assert len({r["doc_id"] for r in good}) == 1398
    assert good[0]["doc_id"] == "1" and good[0]["title"].startswith("experimental investigation")


def test_jsonl_bad_records_are_marked_with_reason_and_position(tmp_path):
    path = tmp_path / "c.jsonl"
    lines = [
        b'{"id": "a", "name": "T", "body": "first"}',
        b"not json at all",
        b'{"id": "b", "name": "", "body": "   "}',
        b'["a", "list"]',
        b'{"name": "no id", "body": "x"}',
        b'{"id": "a", "name": "dup", "body": "again"}',
        b'{"id": "c", "body": "caf\xff broken utf8"}',
        b"",
        b'{"id": 7, "body": ["not", "text"]}',
        b'{"id": 8, "name": null, "body": 3.5}',
        b'{"id": true, "body": "bool id"}',
        b'{"id": "' + b"x" * 513 + b'", "body": "id too long for the cluster"}',
    ]
    _write_lines(path, lines)
    reader = CorpusReader(path, id_field="id", title_field="name", text_field="body", batch_size=4)
    assert reader.format == "jsonl"
    assert reader.count_hint() == 11  # the blank line is not a record
    records = list(reader)
    assert [(r["doc_id"], r["reason"]) for r in records] == [
        ("a", ""),
        ("", "invalid_json"),
        ("b", "empty_document"),
        ("", "not_an_object"),
        ("", "missing_id"),
        ("a", "duplicate_id"),
        ("", "undecodable_bytes"),
        ("7", "invalid_field"),
        ("8", ""),
        ("", "invalid_field"),
        ("", "invalid_field"),
    ]
    assert records[8]["text"] == "3.5" and records[8]["title"] == ""
    assert records[6]["line"] == 7 and records[6]["offset"] == sum(len(x) + 1 for x in lines[:6])
    assert "broken utf8" in records[6]["raw"]
    assert all(r["reason"] in DEAD_LETTER_REASONS for r in records if r["reason"])
    batches = list(reader.iter_batches())
    assert [len(b) for b in batches] == [4, 4, 3]


def test_gzip_jsonl_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"_id": f"d{i}", "title": f"t{i}", "text": f"text {i}"} for i in range(25)]
    gz = tmp_path / "c.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in rows) + "\n")
    assert [r["doc_id"] for r in CorpusReader(gz)] == [r["_id"] for r in rows]

    folder = tmp_path / "pq"
    folder.mkdir()
    table = pa.Table.from_pylist(
        rows + [{"_id": None, "title": "x", "text": "y"}, {"_id": "d3", "title": "", "text": "z"}]
    )
    pq.write_table(table.slice(0, 20), folder / "part-0.parquet", row_group_size=7)
    pq.write_table(table.slice(20), folder / "part-1.parquet")
    reader = CorpusReader(folder, batch_size=5)
    assert reader.format == "parquet" and reader.count_hint() == 27
    records = list(reader)
    assert [r["doc_id"] for r in records if not r["reason"]] == [r["_id"] for r in rows]
    assert [(r["row"], r["reason"]) for r in records if r["reason"]] == [(25, "missing_id"), (26, "duplicate_id")]
    assert records[20]["file"] == "part-1.parquet"

    with pytest.raises(InputError, match=r"no column 'body'.*set the id/text field names") as bad:
        list(CorpusReader(folder, text_field="body"))
    assert bad.value.option == "id_field/text_field"  # the CLI names --id-field/--text-field


def test_reader_rejects_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus not found"):
        CorpusReader(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="format must be one of"):
        CorpusReader(CRANFIELD, format="csv")
    with pytest.raises(ValueError, match="does not hold"):
        CorpusReader(tmp_path)
    with pytest.raises(InputError, match="must be a folder holding corpus.jsonl"):
        CorpusReader(f"{CRANFIELD}/corpus.jsonl", format="beir")


def test_dead_letter_file(tmp_path):
    path = tmp_path / "sub" / "dead.jsonl"
    with DeadLetter(path) as dead:
        dead.add("invalid_json", file="c.jsonl", line=3, offset=40, detail="Expecting value", raw="x" * 2000)
        dead.add("rejected", doc_id="9", detail="HTTP 400: mapper_parsing_exception: boom")
        with pytest.raises(ValueError, match="reason must be one of"):
            dead.add("whatever")
    assert dead.count == 2 and dead.counts == {"invalid_json": 1, "rejected": 1}
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[0] == {
        "reason": "invalid_json",
        "file": "c.jsonl",
        "line": 3,
        "offset": 40,
        "detail": "Expecting value",
        "raw": "x" * DeadLetter.RAW_CHARS,
    }
    assert lines[1] == {"reason": "rejected", "doc_id": "9", "detail": "HTTP 400: mapper_parsing_exception: boom"}
    # a new run truncates: the file describes one run
    DeadLetter(path).open().close()
    assert path.read_text() == ""
    # a clean run leaves no file from an earlier run behind
    DeadLetter(path).discard_previous()
    assert not path.exists()


def test_bulk_index_error_pickles_with_its_errors():
    items = [{"index": {"_id": "1", "status": 400, "error": {"type": "mapper_parsing_exception"}}}]
    err = pickle.loads(pickle.dumps(BulkIndexError("1 document(s) failed to index", items)))
    assert err.errors == items and str(err) == "1 document(s) failed to index"
