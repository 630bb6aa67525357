from __future__ import annotations

import dataclasses
import re
from typing import Literal, Optional, Sequence

DEFAULT_URL = "http://127.0.0.1:9200"
Engine = Literal["opensearch", "elasticsearch"]
ENGINES = ("opensearch", "elasticsearch")


@dataclasses.dataclass(frozen=True)
class ConnectionConfig:
    """How to reach a cluster. Secrets never appear in ``repr``/``str``/logs."""

    urls: Sequence[str] = (DEFAULT_URL,)
    user: Optional[str] = None
    password: Optional[str] = dataclasses.field(default=None, repr=False)
    api_key: Optional[str] = dataclasses.field(default=None, repr=False)
    ca_certs: Optional[str] = None
    verify_certs: bool = True
    timeout: float = 30.0
    engine: Optional[Engine] = None  # None: detect from the root endpoint

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("ConnectionConfig.urls: at least one URL is required")
        object.__setattr__(self, "urls", tuple(self.urls))
        if self.engine is not None and self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.password is not None and self.user is None:
            raise ValueError("a password was given without --user")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")

    def describe(self) -> str:
        """A loggable description: URLs and auth *kind* only, never secrets."""
        auth = "api-key" if self.api_key else ("basic" if self.user else "none")
        return f"{', '.join(redact_url(u) for u in self.urls)} (auth: {auth})"


def redact_url(url: str) -> str:
    """``https://user:secret@host:9200`` -> ``https://***@host:9200``."""
    return _USERINFO.sub(r"\1***@", url)


_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@")
