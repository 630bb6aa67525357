from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Optional

from ._errors import ConfigurationError

DEFAULT_URL = "http://127.0.0.1:9200"
Engine = Literal["opensearch", "elasticsearch"]
ENGINES = ("opensearch", "elasticsearch")
#: Where :meth:`ConnectionConfig.with_env_secrets` reads the secrets (the CLI's own variables).
PASSWORD_ENV = "ECHO_SPLADE_PASSWORD"
API_KEY_ENV = "ECHO_SPLADE_API_KEY"
_SECRET_ENV = {"password": PASSWORD_ENV, "api_key": API_KEY_ENV}


@dataclasses.dataclass(frozen=True)
class ConnectionConfig:
    """How to reach a cluster. Secrets never appear in ``repr``/``str``/logs.

    A URL's user-info (``https://user:secret@host:9200``) is moved into ``user``/``password``
    and removed from ``urls``, so no URL held here carries a secret.

    ``secrets_from_env`` (``("password",)``, ``("api_key",)``) marks a copy made by :meth:`without_secrets`
    (what crosses process boundaries, e.g. Ray actor arguments): the process that uses it reads those
    secrets from ``$ECHO_SPLADE_PASSWORD`` / ``$ECHO_SPLADE_API_KEY`` (:meth:`with_env_secrets`, which
    :func:`~echo_splade.client.connect` calls).
    """

    urls: Sequence[str] = (DEFAULT_URL,)
    user: Optional[str] = None
    password: Optional[str] = dataclasses.field(default=None, repr=False)
    api_key: Optional[str] = dataclasses.field(default=None, repr=False)
    ca_certs: Optional[str] = None
    verify_certs: bool = True
    timeout: float = 30.0
    engine: Optional[Engine] = None  # None: detect from the root endpoint
    secrets_from_env: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.urls, str):
            raise TypeError("ConnectionConfig.urls must be a sequence of URLs, not one string")
        if not self.urls:
            raise ValueError("ConnectionConfig.urls: at least one URL is required")
        urls, user, password = [], self.user, self.password
        for url in self.urls:
            clean, url_user, url_password = _split_userinfo(str(url))
            if url_user is not None:
                if user is not None and user != url_user:
                    raise ConfigurationError(
                        f"the URL {redact_url(str(url))} names a different user than the given user", option="user"
                    )
                if url_password is not None and password is not None and password != url_password:
                    raise ConfigurationError(
                        f"the URL {redact_url(str(url))} holds a different password than the given password",
                        option="password",
                    )
                user = url_user
                password = url_password if url_password is not None else password
            urls.append(clean)
        object.__setattr__(self, "urls", tuple(urls))
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "password", password)
        if self.engine is not None and self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.password is not None and self.user is None:
            raise ConfigurationError("a password was given without a user", option="user")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigurationError("the API key is empty", option="api_key")
        if self.ca_certs is not None and not os.path.isfile(self.ca_certs):
            raise ConfigurationError(f"CA bundle {self.ca_certs}: no such file", option="ca_certs")
        object.__setattr__(self, "secrets_from_env", tuple(self.secrets_from_env))
        unknown = set(self.secrets_from_env) - set(_SECRET_ENV)
        if unknown:
            raise ValueError(f"secrets_from_env holds {sorted(unknown)}; allowed: {sorted(_SECRET_ENV)}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")

    def describe(self) -> str:
        """A loggable description: URLs and auth *kind* only, never secrets."""
        return f"{', '.join(self.describe_urls())} (auth: {self.auth_kind})"

    @property
    def auth_kind(self) -> str:
        """``"api-key"``, ``"basic"`` or ``"none"``."""
        return "api-key" if (self.api_key or "api_key" in self.secrets_from_env) else ("basic" if self.user else "none")

    def describe_urls(self, urls: Optional[Iterable[str]] = None) -> list[str]:
        return [redact_url(u) for u in (self.urls if urls is None else urls)]

    def without_secrets(self) -> ConnectionConfig:
        """A copy without password and API key, marked to read them from the environment where it is used."""
        held = tuple(kind for kind in _SECRET_ENV if getattr(self, kind) is not None)
        if not held:
            return self
        return dataclasses.replace(self, password=None, api_key=None, secrets_from_env=held)

    def secret_environment(self) -> dict[str, str]:
        """``{ECHO_SPLADE_PASSWORD: ..., ECHO_SPLADE_API_KEY: ...}`` for the secrets this config holds: the
        environment a process needs to turn :meth:`without_secrets` back into this config."""
        return {env: getattr(self, kind) for kind, env in _SECRET_ENV.items() if getattr(self, kind) is not None}

    def with_env_secrets(self) -> ConnectionConfig:
        """For a copy from :meth:`without_secrets`: the config with its secrets read from the environment.

        Raises ValueError naming the variable when a user is set but neither secret is in the environment."""
        if not self.secrets_from_env:
            return self
        values: dict[str, Any] = {}
        for kind in self.secrets_from_env:
            value = os.environ.get(_SECRET_ENV[kind])
            if value is None:
                raise ValueError(
                    f"the cluster {kind.replace('_', ' ')} is not in this process's environment "
                    f"(${_SECRET_ENV[kind]}); a Ray worker gets it from the environment Ray was "
                    f"started with, or from the job's runtime_env env_vars"
                )
            values[kind] = value
        return dataclasses.replace(self, secrets_from_env=(), **values)


def redact_url(url: str) -> str:
    """``https://user:secret@host:9200`` -> ``https://***@host:9200``."""
    return _USERINFO.sub(r"\1***@", url)


def _split_userinfo(url: str) -> tuple[str, Optional[str], Optional[str]]:
    """``(url without user-info, user, password)``; user/password are percent-decoded, None when absent."""
    match = _USERINFO_PARTS.match(url)
    if not match:
        return url, None, None
    user, sep, password = match.group(2).partition(":")
    clean = match.group(1) + url[match.end() :]
    return clean, urllib.parse.unquote(user), (urllib.parse.unquote(password) if sep else None)


_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@")
_USERINFO_PARTS = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@]*)@")
