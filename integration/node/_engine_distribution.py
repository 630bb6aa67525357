"""What makes up a runnable node of one engine/version: the server zip on Maven Central plus module jars."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Literal, Optional

from echo_splade.client import ConfigurationError

from ._maven_artifact import MavenArtifact
from ._ml_plugins import ml_plugin_artifacts

Engine = Literal["opensearch", "elasticsearch"]
ENGINES: tuple[str, ...] = ("opensearch", "elasticsearch")

#: Newest 2.19.x whose server zip and module jars all resolve on Maven Central (runs on Java 17).
DEFAULT_OPENSEARCH_VERSION = "2.19.6"
#: Newest 8.x integ-test-zip on Maven Central; its ``sparse_vector`` field lives in the server itself.
DEFAULT_ELASTICSEARCH_VERSION = "8.19.21"


@dataclasses.dataclass(frozen=True)
class ModuleSpec:
    """A module folder ``modules/<name>/`` assembled from jars plus a generated ``plugin-descriptor.properties``.

    ``java_sources`` (file names in this package's ``java/`` folder) are compiled at install time against the
    server's ``lib/`` jars into ``<name>.jar`` (needs ``javac``).
    """

    name: str
    classname: str
    description: str
    jars: tuple[MavenArtifact, ...] = ()
    java_sources: tuple[str, ...] = ()
    extended_plugins: tuple[str, ...] = ()
    security_policy: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class EngineDistribution:
    """Everything engine-specific about assembling and launching a local node.

    ``java`` is the inclusive range of Java feature releases the server runs on.
    """

    engine: Engine
    version: str
    server: MavenArtifact
    modules: tuple[ModuleSpec, ...]
    java: tuple[int, int]
    env_prefix: str  # OPENSEARCH_ / ES_: *_PATH_CONF, *_JAVA_OPTS, *_TMPDIR, *_JAVA_HOME
    config_file: str
    bootstrap_class: str
    default_port: int
    extra_settings: tuple[tuple[str, object], ...] = ()  # node settings (config file)
    # Idempotent (method, path, body) calls sent after every start: a single node wants no replicas by default.
    setup_requests: tuple[tuple[str, str, dict], ...] = ()
    # Plugin zips unpacked into plugins/ (``cluster start --ml``: ML Commons, neural-search, k-NN, job-scheduler).
    plugins: tuple[MavenArtifact, ...] = ()

    @classmethod
    def for_engine(cls, engine: str, version: Optional[str] = None, ml: bool = False) -> EngineDistribution:
        """``ml``: OpenSearch only: add the ML Commons / neural-search plugins (see ``_ml_plugins``)."""
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        if engine == "opensearch":
            dist = _opensearch(version or DEFAULT_OPENSEARCH_VERSION)
            if not ml:
                return dist
            return dataclasses.replace(
                dist, modules=(*dist.modules, _ingest_common(dist.version)), plugins=ml_plugin_artifacts(dist.version)
            )
        if ml:
            raise ConfigurationError(
                "the ML plugins need the opensearch engine (ML Commons and neural-search are OpenSearch plugins)",
                option="engine",
                value="opensearch",
            )
        return _elasticsearch(version or DEFAULT_ELASTICSEARCH_VERSION)

    @property
    def dir_name(self) -> str:
        """``<engine>-<version>-<digest>``: a changed module set installs beside, never over, a running one."""
        spec = json.dumps(
            [
                str(self.server),
                [
                    (
                        m.name,
                        m.classname,
                        [str(j) for j in m.jars],
                        m.java_sources,
                        m.extended_plugins,
                        m.security_policy,
                        _source_digest(m.java_sources),
                    )
                    for m in self.modules
                ],
                *([[str(p) for p in self.plugins]] if self.plugins else []),
            ],
            sort_keys=True,
        )
        return f"{self.engine}-{self.version}-{hashlib.sha1(spec.encode()).hexdigest()[:8]}"

    def artifacts(self) -> tuple[MavenArtifact, ...]:
        return (self.server, *(jar for module in self.modules for jar in module.jars), *self.plugins)


JAVA_SOURCES = Path(__file__).resolve().parent / "java"


def _source_digest(names: tuple[str, ...]) -> str:
    return hashlib.sha1(b"".join((JAVA_SOURCES / name).read_bytes() for name in names)).hexdigest()


#: engine -> (Maven group of its integ-test-zip server, {major version: inclusive Java feature-release range}).
#: One row per engine: a newly supported major is one more entry here (plus its modules, if they differ).
_SERVERS: dict[str, tuple[str, dict[int, tuple[int, int]]]] = {
    # 1.x/2.x still install a SecurityManager, which Java 24 removed; 1.3 predates Java 21 support.
    "opensearch": ("org.opensearch.distribution.integ-test-zip", {1: (11, 17), 2: (11, 23), 3: (21, 25)}),
    "elasticsearch": ("org.elasticsearch.distribution.integ-test-zip", {7: (11, 17), 8: (17, 25), 9: (21, 25)}),
}

#: Server zips published without a ``.sha1`` (Maven Central has none for OpenSearch 1.3.18-1.3.20 and
#: Elasticsearch 9.x): SHA-256 pinned from the file Maven Central served on 2026-11-29.
_SERVER_SHA256: dict[tuple[str, str], str] = {
    ("opensearch", "1.3.20"): "031e0cdcd14c7a5b9907dff8050fff76c7c2892c7313ea83c4a0bfbaae9265e3",
    # Elasticsearch 9.x integ-test zips have neither .sha1 nor .md5 there (9.0.0, 9.1.0, 9.1.5, 9.2.0 checked)
    ("elasticsearch", "9.2.0"): "bf44938a0490ba2a303d39c9cb64b38963dd08c812ce93e10816e878585bcb6b",
}

_NO_REPLICAS_TEMPLATE = {
    "index_patterns": ["*"],
    "priority": 0,
    "template": {"settings": {"number_of_replicas": 0}},
    "_meta": {"description": "echo-splade local single node: no replicas unless asked"},
}

#: ``MAJOR.MINOR`` -> (antlr4-runtime, asm) versions lang-painless's POM names; others take 2.19's.
_PAINLESS_DEPENDENCIES: dict[str, tuple[str, str]] = {
    "2.11": ("4.11.1", "9.6"),
    "2.19": ("4.13.1", "9.7"),
    "3.3": ("4.13.1", "9.7"),
}


def _server(engine: str, version: str) -> tuple[MavenArtifact, tuple[int, int]]:
    """The server zip of ``engine`` ``version`` and the Java range it runs on (``ValueError`` naming the majors)."""
    group, java_by_major = _SERVERS[engine]
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise ValueError(f"version must look like MAJOR.MINOR.PATCH, got {version!r}") from None
    if major not in java_by_major:
        majors = " or ".join(f"{m}.x" for m in java_by_major)
        raise ValueError(f"{_DISPLAY[engine]} version must be {majors}, got {version!r}")
    sha256 = _SERVER_SHA256.get((engine, version), "")
    return MavenArtifact(group, engine, version, "zip", sha256=sha256), java_by_major[major]


_DISPLAY = {"opensearch": "OpenSearch", "elasticsearch": "Elasticsearch"}


def _opensearch(version: str) -> EngineDistribution:
    server, java = _server("opensearch", version)
    major = int(version.split(".")[0])
    plugin = "org.opensearch.plugin"
    module = "ModulePlugin" if major >= 3 else "Plugin"  # 3.x renamed the modules' plugin classes
    mapper_extras = ModuleSpec(
        name="mapper-extras",
        classname=f"org.opensearch.index.mapper.MapperExtras{module}",
        description="Adds advanced field mappers (rank_features, rank_feature, search_as_you_type, ...)",
        jars=(MavenArtifact(plugin, "mapper-extras-client", version),),
    )
    # 1.3.x: lang-painless/analysis-common 1.3.x are not on Maven Central (only mapper-extras-client is):
    # the node runs without them (BM25 fields fall back to the `standard` analyzer: IndexSpec analyzer "auto").
    antlr, asm = _PAINLESS_DEPENDENCIES.get(".".join(version.split(".")[:2]), ("4.13.1", "9.7"))
    return EngineDistribution(
        engine="opensearch",
        version=version,
        server=server,
        modules=(mapper_extras,)
        if major == 1
        else (
            mapper_extras,
            ModuleSpec(
                name="lang-painless",
                classname=f"org.opensearch.painless.Painless{module}",
                description="Painless scripting (script_score, update scripts, ...)",
                jars=(
                    MavenArtifact(plugin, "lang-painless", version),
                    # lang-painless's runtime dependencies, at the versions its POM names
                    MavenArtifact("org.antlr", "antlr4-runtime", antlr),
                    *(
                        MavenArtifact("org.ow2.asm", name, asm)
                        for name in ("asm", "asm-util", "asm-tree", "asm-commons", "asm-analysis")
                    ),
                    MavenArtifact(plugin, "opensearch-scripting-painless-spi", version),
                ),
                security_policy=(
                    "grant {\n"
                    '  permission java.lang.RuntimePermission "createClassLoader";\n'
                    '  permission java.lang.RuntimePermission "getClassLoader";\n'
                    "};\n"
                ),
            ),
            ModuleSpec(
                name="analysis-common",
                classname=f"org.opensearch.analysis.common.CommonAnalysis{module}",
                description="Adds analyzers, tokenizers and token filters (english, stemmers, ...)",
                jars=(MavenArtifact(plugin, "analysis-common", version),),
                extended_plugins=("lang-painless",),
            ),
        ),
        java=java,
        env_prefix="OPENSEARCH_",
        config_file="opensearch.yml",
        bootstrap_class="org.opensearch.bootstrap.OpenSearch",
        default_port=9200,
        # One node: no replicas unless asked, so fresh indices are green (1.x lacks that cluster setting: a template).
        setup_requests=(("PUT", "/_cluster/settings", {"persistent": {"cluster.default_number_of_replicas": 0}}),)
        if major >= 2
        else (("PUT", "/_index_template/echo-splade-single-node", _NO_REPLICAS_TEMPLATE),),
    )


def _ingest_common(version: str) -> ModuleSpec:
    """The ``script``/``remove``/... ingest processors (the ML node's ingest pipeline builds the encoded text)."""
    return ModuleSpec(
        name="ingest-common",
        classname="org.opensearch.ingest.common.IngestCommonPlugin",
        description="Module for ingest processors that do not require additional security permissions or have large dependencies and resources",
        jars=(
            MavenArtifact("org.opensearch.plugin", "ingest-common", version),
            # its runtime dependencies, at the versions its POM (and opensearch-grok's) names
            MavenArtifact("org.opensearch", "opensearch-grok", version),
            MavenArtifact("org.opensearch", "opensearch-dissect", version),
            MavenArtifact("org.jruby.joni", "joni", "2.2.1"),
            MavenArtifact("org.jruby.jcodings", "jcodings", "1.0.61"),
        ),
        extended_plugins=("lang-painless",),
    )


def _elasticsearch(version: str) -> EngineDistribution:
    server, java = _server("elasticsearch", version)
    if version.split(".")[0] == "7":
        return _elasticsearch7(version, server, java)
    return EngineDistribution(
        engine="elasticsearch",
        version=version,
        server=server,
        modules=(
            ModuleSpec(
                name="echo-splade-root-endpoint",
                classname="org.echosplade.rootendpoint.RootEndpointPlugin",
                description="GET / (cluster name and version): the integ-test-zip lacks the rest-root module",
                java_sources=("RootEndpointPlugin.java",),
            ),
            ModuleSpec(
                name="echo-splade-security-analysis",
                classname="org.echosplade.securityanalysis.SecurityAnalysisPlugin",
                description="uax_url_email, pattern_capture, lowercase, unique: the analysis the security index "
                "declares (the integ-test-zip lacks analysis-common); needed with `cluster start --secure`",
                java_sources=("SecurityAnalysisPlugin.java",),
            ),
        ),
        java=java,
        env_prefix="ES_",
        config_file="elasticsearch.yml",
        bootstrap_class="org.elasticsearch",
        default_port=9201,
        extra_settings=(("xpack.security.enabled", False), ("xpack.ml.enabled", False)),
        setup_requests=(("PUT", "/_index_template/echo-splade-single-node", _NO_REPLICAS_TEMPLATE),),
    )


def _elasticsearch7(version: str, server: MavenArtifact, java: tuple[int, int]) -> EngineDistribution:
    """7.x: the server answers ``GET /`` itself and has no x-pack in the integ-test-zip; ``rank_features`` comes
    from the ``mapper-extras`` module, assembled from ``org.elasticsearch.plugin:mapper-extras-client``."""
    return EngineDistribution(
        engine="elasticsearch",
        version=version,
        server=server,
        modules=(
            ModuleSpec(
                name="mapper-extras",
                classname="org.elasticsearch.index.mapper.MapperExtrasPlugin",
                description="Adds advanced field mappers (rank_features, rank_feature, search_as_you_type, ...)",
                jars=(MavenArtifact("org.elasticsearch.plugin", "mapper-extras-client", version),),
            ),
        ),
        java=java,
        env_prefix="ES_",
        config_file="elasticsearch.yml",
        bootstrap_class="org.elasticsearch",
        default_port=9201,
        setup_requests=(("PUT", "/_index_template/echo-splade-single-node", _NO_REPLICAS_TEMPLATE),),
    )
