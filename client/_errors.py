"""The errors the library owns besides :class:`ClusterError`: the caller can tell a wrong setting, bad input
and a cluster in the wrong state apart, and a command line can name the flag to fix (``option``).

All three subclass ``ValueError``, so code written against the earlier ``ValueError`` keeps working.
Messages name the library's parameter, never a command-line flag: ``echo-splade`` adds the flag hints.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["ClusterStateError", "ConfigurationError", "EchoSpladeValueError", "InputError"]


class EchoSpladeValueError(ValueError):
    """Base of the library's typed errors.

    Args:
        message: what is wrong, in the library's terms.
        option: the parameter (keyword argument / setting) the caller can change to fix it, if one.
        context: facts a front end may use in its hint (e.g. ``{"index": name}``).
    """

    def __init__(self, message: str, option: Optional[str] = None, **context: Any) -> None:
        super().__init__(message)
        self.option = option
        self.context = context


class ConfigurationError(EchoSpladeValueError):
    """Settings that cannot work: connection options, resources, an index spec the engine cannot hold."""


class InputError(EchoSpladeValueError):
    """Input data the library cannot use: a corpus layout, a query, weights."""


class ClusterStateError(EchoSpladeValueError):
    """The cluster or index is not in the state an operation needs (missing index, alias over several
    indices, no model recorded, missing or mistyped field)."""
