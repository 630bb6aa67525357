"""The OpenSearch ML plugins for ``cluster start --ml``: ML Commons, neural-search and what they extend.

Maven Central publishes the plugin zips (``org.opensearch.plugin:<name>:<version>.0@zip``) without ``.sha1``
files, so their SHA-256 digests are pinned here (taken from the first verified download; a changed file is
refused). A plugin zip holds the plugin's files at its top level; it is unpacked into the server's
``plugins/<descriptor name>/`` folder (what ``opensearch-plugin install`` does, minus the permission prompt:
the zips' ``plugin-security.policy`` files apply as shipped).

k-NN ships no native libraries in this zip (its Faiss/NMSLIB engines would need them); neural-search only
needs its classes (``extended.plugins=opensearch-knn``) and ``rank_features`` / ``neural_sparse`` never touch
a k-NN engine, so the Lucene side suffices for learned sparse retrieval.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from echo_splade.client import ConfigurationError

from ._maven_artifact import MavenArtifact
from ._zip_archive import extract_zip

#: OpenSearch version -> ((artifact id, sha256), ...) in dependency order.
_PINNED: dict[str, tuple[tuple[str, str], ...]] = {
    "2.19.6": (
        ("opensearch-job-scheduler", "c0172f2fb94c0819bbeb9bf21db694e26e285de4dddc9461759d0e0246c998e8"),
        ("opensearch-knn", "c21b9565624d29fd4024e3a3902712349006cb7894a73c45d976756a761e628f"),
        ("neural-search", "b38b136b280a219d7f4495dd5d7e11e92a528b874fe940fc8502b8a5c599c820"),
        ("opensearch-ml-plugin", "d0f4c2457ca5557d94ebd7c5e8d650b34326df54ad85851cc2eca0dd86e30d10"),
    ),
}
ML_PLUGIN_VERSIONS: tuple[str, ...] = tuple(_PINNED)


def ml_plugin_artifacts(version: str) -> tuple[MavenArtifact, ...]:
    """The four plugin zips for an OpenSearch ``version`` (``ValueError`` naming the versions that have them)."""
    if version not in _PINNED:
        raise ConfigurationError(
            f"the ML plugins are pinned for OpenSearch {', '.join(ML_PLUGIN_VERSIONS)}, not {version!r}",
            option="version",
        )
    return tuple(
        MavenArtifact("org.opensearch.plugin", name, f"{version}.0", "zip", sha256=digest)
        for name, digest in _PINNED[version]
    )


def plugin_name(archive: Path) -> str:
    """The ``name=`` of a plugin zip's ``plugin-descriptor.properties``."""
    with zipfile.ZipFile(archive) as zf:
        text = zf.read("plugin-descriptor.properties").decode("utf-8")
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "name" and value.strip():
            return value.strip()
    raise ValueError(f"{archive}: plugin-descriptor.properties has no name")


def unpack_plugin(archive: Path, plugins_dir: Path) -> Path:
    """Unpack one plugin zip into ``plugins_dir/<name>/``; return that folder."""
    target = plugins_dir / plugin_name(archive)
    target.mkdir(parents=True, exist_ok=True)
    extract_zip(archive, target)
    return target
