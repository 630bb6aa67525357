"""Long commands say how far they are when stderr is not a terminal (CI, nohup, a Ray job's log)."""

from __future__ import annotations

import types

from echo_splade.cli._progress import Progress


def test_plain_lines_when_not_on_a_terminal(capsys):
    progress = Progress("bm25", total=10, unit="query", units="queries", every=0.0)
    for done in range(1, 4):
        progress.update(done)
    progress.close()
    lines = capsys.readouterr().err.splitlines()
    assert (
        len(lines) == 4 and lines[0].startswith("bm25: 1/10 queries (") and lines[-1].startswith("bm25: 3/10 queries")
    )
    quiet = Progress("ingest", every=3600.0)
    quiet.update_from_report(types.SimpleNamespace(read=5, indexed=4, skipped=0, dead_lettered=1))
    quiet.close()  # nothing within the interval, and no closing line for a run shorter than one interval
    assert capsys.readouterr().err == ""
    assert quiet.line().startswith("ingest: 5 docs, indexed 4, skipped 0, dead 1 (")
