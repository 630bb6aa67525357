"""Drop-in learned sparse retrieval for any app: a rewriting reverse proxy and a search page.

:class:`RewritingProxy` (``echo-splade proxy``) sits in front of a cluster: every request passes
through unchanged except ``_search`` / ``_msearch`` / ``_count`` bodies on the aliases you configure
(:class:`AliasRule`), whose text clauses :class:`BodyRewriter` turns into sparse (or hybrid) clauses
with the connector's ``SparseRetriever.rewrite`` (the rules of ``QueryRewriter``); every other byte
of the body stays as sent (:class:`JsonSplice`). :class:`SearchPage` (``echo-splade ui``) shows BM25,
sparse and hybrid hits side by side with the expansion terms each hit matched.

Imports ``client``, ``mappings``, ``connector`` and the public ``encoder`` API (lazily).
"""

from ._alias_rule import PROXY_MODES, AliasRule, ProxyMode
from ._body_rewriter import BodyRewriter
from ._guarded_encoder import GuardedEncoder
from ._json_splice import JsonSplice, MalformedJson
from ._proxy_config import ENCODER_ERROR_POLICIES, EncoderErrorPolicy, ProxyConfig
from ._query_encoder import EncoderUnavailable, QueryEncoder, load_query_encoder
from ._rewrite_outcome import RewriteOutcome
from ._rewrite_target import RewriteTarget
from ._rewriting_proxy import REWRITE_HEADER, RewritingProxy, engine_error
from ._search_page import SearchPage

__all__ = [
    "ENCODER_ERROR_POLICIES",
    "PROXY_MODES",
    "REWRITE_HEADER",
    "AliasRule",
    "BodyRewriter",
    "EncoderErrorPolicy",
    "EncoderUnavailable",
    "GuardedEncoder",
    "JsonSplice",
    "MalformedJson",
    "ProxyConfig",
    "ProxyMode",
    "QueryEncoder",
    "RewriteOutcome",
    "RewriteTarget",
    "RewritingProxy",
    "SearchPage",
    "engine_error",
    "load_query_encoder",
]
