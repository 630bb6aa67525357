"""One artifact on Maven Central, downloaded once into a local cache and checked against its ``.sha1``."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

MAVEN_REPOSITORIES: tuple[str, ...] = (
    "https://repo1.maven.org/maven2",
    "https://repo.maven.apache.org/maven2",
)


@dataclasses.dataclass(frozen=True)
class MavenArtifact:
    """``group:artifact:version[:classifier]@ext``, e.g. ``org.opensearch.plugin:mapper-extras-client:2.19.6@jar``."""

    group: str
    artifact: str
    version: str
    ext: str = "jar"
    classifier: str = ""
    #: A pinned SHA-256 (hex): verified instead of the repository's ``.sha1``, for artifacts published
    #: without one (the OpenSearch plugin zips ``org.opensearch.plugin:*:2.19.6.0@zip``).
    sha256: str = ""

    def __post_init__(self) -> None:
        for field in ("group", "artifact", "version", "ext"):
            value = getattr(self, field)
            if not value or "/" in value or ".." in value.split("."):
                raise ValueError(f"MavenArtifact.{field}: invalid value {value!r}")

    def __str__(self) -> str:
        extra = f":{self.classifier}" if self.classifier else ""
        return f"{self.group}:{self.artifact}:{self.version}{extra}@{self.ext}"

    @property
    def file_name(self) -> str:
        extra = f"-{self.classifier}" if self.classifier else ""
        return f"{self.artifact}-{self.version}{extra}.{self.ext}"

    @property
    def relative_path(self) -> str:
        """The path below a Maven repository root."""
        return "/".join([*self.group.split("."), self.artifact, self.version, self.file_name])

    def cached_path(self, cache_dir: Path) -> Path:
        return Path(cache_dir) / self.relative_path

    def fetch(
        self,
        cache_dir: Path,
        repositories: Sequence[str] = MAVEN_REPOSITORIES,
        timeout: float = 60.0,
    ) -> Path:
        """Return the cached file, downloading and verifying it first when missing.

        A file is only moved into the cache after its SHA-1 matched the repository's ``.sha1``, so a
        cached file is trusted without network access (a second start works offline).
        """
        target = self.cached_path(cache_dir)
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        failures = []
        for base in repositories:
            url = f"{base.rstrip('/')}/{self.relative_path}"
            try:
                expected = self.sha256.lower() if self.sha256 else self._expected_sha1(url, timeout)
                logger.info("downloading %s", url)
                digest = hashlib.sha256() if self.sha256 else hashlib.sha1()
                fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
                try:
                    with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                        while True:
                            chunk = response.read(1 << 20)
                            if not chunk:
                                break
                            digest.update(chunk)
                            out.write(chunk)
                    if digest.hexdigest() != expected:
                        raise OSError(f"{digest.name} mismatch: got {digest.hexdigest()}, expected {expected}")
                    os.replace(tmp, target)
                    os.chmod(target, 0o644)
                finally:
                    if os.path.exists(tmp):
                        os.unlink(tmp)
                return target
            except OSError as exc:  # URLError/HTTPError are OSErrors
                failures.append(f"{url}: {_describe(exc)}")
                logger.warning("could not fetch %s: %s", url, _describe(exc))
        raise FileNotFoundError(f"could not download {self} from Maven Central: " + "; ".join(failures))

    def _expected_sha1(self, url: str, timeout: float) -> str:
        try:
            with urllib.request.urlopen(url + ".sha1", timeout=timeout) as response:
                text = response.read().decode("ascii", "replace").split()
        except urllib.error.HTTPError as exc:
            raise OSError(f"checksum {url}.sha1: HTTP {exc.code}") from None
        if not text or len(text[0]) != 40:
            raise OSError(f"checksum {url}.sha1: not a SHA-1")
        return text[0].lower()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"unreachable ({exc.reason})"
    return str(exc) or type(exc).__name__
