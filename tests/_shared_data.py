"""Where the test collections live: ``../shared/data`` beside the repository root (CI lays ``shared/``
beside its clone), or ``ECHO_SPLADE_SHARED_DATA``. A missing collection fails the test naming the path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ECHO_SPLADE_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")


def shared_dataset(name: str) -> Path:
    """``SHARED_DATA / name``; ``pytest.fail`` (never a skip) when that folder does not exist."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.fail(
            f"test data folder missing: {path} (expected ../shared/data beside the repository root, "
            "or set ECHO_SPLADE_SHARED_DATA)",
            pytrace=False,
        )
    return path
