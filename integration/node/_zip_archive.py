"""Unpack a downloaded zip (server or plugin) without letting a member escape the target folder."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path


def extract_zip(archive: Path, target: Path) -> None:
    """Extract every member of ``archive`` into ``target``, keeping the executable bits.

    A member whose path would land outside ``target`` (``../``, absolute) is a ``ValueError`` naming it.
    """
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            path = target / member.filename
            if not path.resolve().is_relative_to(target.resolve()):
                raise ValueError(f"{archive}: unsafe member path {member.filename!r}")
            zf.extract(member, target)
            mode = (member.external_attr >> 16) & 0o777
            if mode:
                os.chmod(path, mode)
