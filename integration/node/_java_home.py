"""Find a Java installation whose feature release lies in a given range."""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

logger = logging.getLogger(__name__)

JAVA_HOME_ENV = "ECHO_SPLADE_JAVA_HOME"


@dataclasses.dataclass(frozen=True)
class JavaHome:
    """A JDK/JRE directory (has ``bin/java``) and its feature release, e.g. 17."""

    path: Path
    major: int

    @classmethod
    def find(cls, minimum: int, maximum: int) -> JavaHome:
        """The first installation in ``[minimum, maximum]``: ``$ECHO_SPLADE_JAVA_HOME``, ``$JAVA_HOME``,
        ``java`` on ``PATH``, then ``/usr/lib/jvm/*`` (newest first)."""
        seen = []
        for path in _candidates():
            major = _feature_release(path)
            if major is None:
                continue
            seen.append(f"{path} (Java {major})")
            if minimum <= major <= maximum:
                logger.info("using Java %s at %s", major, path)
                return cls(path, major)
        found = ", ".join(seen) or "none"
        raise FileNotFoundError(
            f"no Java {minimum}..{maximum} found (looked at: {found}); install one "
            f"(e.g. `apt-get install openjdk-17-jdk-headless`) or set {JAVA_HOME_ENV}"
        )


def _candidates() -> Iterator[Path]:
    for name in (JAVA_HOME_ENV, "JAVA_HOME"):
        if os.environ.get(name):
            yield Path(os.environ[name])
    java = shutil.which("java")
    if java:
        yield Path(os.path.realpath(java)).parent.parent
    for path in sorted(glob.glob("/usr/lib/jvm/*"), reverse=True):
        if not os.path.islink(path):
            yield Path(path)


def _feature_release(home: Path) -> Optional[int]:
    if not (home / "bin" / "java").is_file():
        return None
    try:
        text = (home / "release").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r'^JAVA_VERSION="(?:1\.)?(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match else None
