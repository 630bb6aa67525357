from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Optional

from ._alias_rule import AliasRule

__all__ = ["ProxyConfig", "EncoderErrorPolicy", "ENCODER_ERROR_POLICIES"]

EncoderErrorPolicy = Literal["fail", "passthrough"]
ENCODER_ERROR_POLICIES = ("fail", "passthrough")
_FILE_KEYS = (
    "upstream",
    "port",
    "host",
    "on_encoder_error",
    "ca_certs",
    "certfile",
    "keyfile",
    "timeout",
    "defaults",
    "alias",
)


@dataclasses.dataclass(frozen=True)
class ProxyConfig:
    """Everything ``echo-splade proxy`` runs with (no secrets: those come from the environment).

    ``on_encoder_error``: ``"fail"`` answers 503 in the engine's error format when the query encoder
    fails; ``"passthrough"`` sends the unmodified body and says so in the ``X-Echo-Splade-Rewrite``
    response header. ``ca_certs`` verifies the upstream's TLS certificate; ``certfile``/``keyfile``
    make the proxy itself listen on TLS. ``timeout``: seconds to wait for the upstream's answer.
    """

    upstreams: tuple[str, ...]
    aliases: tuple[AliasRule, ...] = ()
    port: int = 8700
    host: str = "127.0.0.1"
    on_encoder_error: EncoderErrorPolicy = "fail"
    ca_certs: Optional[str] = None
    verify_certs: bool = True
    certfile: Optional[str] = None
    keyfile: Optional[str] = None
    timeout: float = 120.0

    def __post_init__(self) -> None:
        if not self.upstreams:
            raise ValueError("give at least one upstream cluster URL (upstreams, e.g. http://host:9200)")
        for url in self.upstreams:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"upstream must be an http:// or https:// URL, got {url!r}")
        if self.on_encoder_error not in ENCODER_ERROR_POLICIES:
            raise ValueError(f"on_encoder_error must be one of {ENCODER_ERROR_POLICIES}, got {self.on_encoder_error!r}")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port must be within 0..65535, got {self.port!r}")
        if bool(self.certfile) != bool(self.keyfile):
            raise ValueError("listening on TLS needs both certfile and keyfile")
        if not isinstance(self.timeout, (int, float)) or self.timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {self.timeout!r}")
        names = [a.name for a in self.aliases]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"alias(es) configured twice: {duplicates}")

    @staticmethod
    def read_file(path: str | Path) -> dict[str, Any]:
        """The TOML config file as ``ProxyConfig`` keyword arguments (``aliases`` built from
        ``[defaults]`` and each ``[alias.NAME]`` table over it)."""
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"config file {path}: not valid TOML: {exc}") from None
        unknown = sorted(set(data) - set(_FILE_KEYS))
        if unknown:
            raise ValueError(f"config file {path}: unknown key(s) {unknown}; allowed: {list(_FILE_KEYS)}")
        out: dict[str, Any] = {k: v for k, v in data.items() if k not in ("upstream", "defaults", "alias")}
        if "upstream" in data:
            upstream = data["upstream"]
            out["upstreams"] = tuple([upstream] if isinstance(upstream, str) else upstream)
        defaults = data.get("defaults", {})
        tables = data.get("alias", {})
        if not isinstance(defaults, Mapping) or not isinstance(tables, Mapping):
            raise ValueError(f"config file {path}: [defaults] and [alias.NAME] must be tables")
        out["aliases"] = tuple(
            AliasRule.from_dict(name, {**defaults, **(table or {})}) for name, table in tables.items()
        )
        return out

    def with_aliases(self, rules: Sequence[AliasRule]) -> ProxyConfig:
        return dataclasses.replace(self, aliases=tuple(rules))
