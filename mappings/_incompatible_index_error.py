from __future__ import annotations

from echo_splade.client import ClusterStateError

__all__ = ["IncompatibleIndexError"]


class IncompatibleIndexError(ClusterStateError):
    """An existing index cannot hold the requested spec; ``differences`` lists why.

    ``hint`` says what would help, in the library's terms; ``option`` is the ``provision`` parameter
    that does it (``new_version`` by default, ``swap`` when a newer version exists), for a CLI's flag hint.
    """

    def __init__(
        self,
        index: str,
        differences: list[str],
        hint: str = "create a new index version",
        option: str = "new_version",
    ) -> None:
        self.index = index
        self.differences = list(differences)
        self.hint = hint
        super().__init__(
            f"index {index} is incompatible with the requested spec: {'; '.join(differences)} ({hint})",
            option=option,
            index=index,
        )

    def __reduce__(self):  # picklable (crosses Ray process boundaries intact)
        return type(self), (self.index, self.differences, self.hint, self.option)
