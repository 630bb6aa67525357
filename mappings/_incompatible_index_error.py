from __future__ import annotations

__all__ = ["IncompatibleIndexError"]


class IncompatibleIndexError(ValueError):
    """An existing index cannot hold the requested spec; ``differences`` lists why."""

    def __init__(
        self, index: str, differences: list[str], hint: str = "use --new-version to create a new index version"
    ) -> None:
        self.index = index
        self.differences = list(differences)
        self.hint = hint
        super().__init__(f"index {index} is incompatible with the requested spec: {'; '.join(differences)} ({hint})")

    def __reduce__(self):  # picklable (crosses Ray process boundaries intact)
        return type(self), (self.index, self.differences, self.hint)
