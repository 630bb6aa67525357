from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Optional, Union

__all__ = ["JsonSplice", "MalformedJson"]

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*"', re.S)
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERAL = re.compile(r"true|false|null")

# A value's span: (start, end, children); children is {key: span} for an object, [span, ...] for an array.
Span = tuple[int, int, Union[dict, list, None]]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class MalformedJson(ValueError):
    """The text is not one JSON value (what the cluster would refuse with its own parse error)."""


class JsonSplice:
    """Replace changed parts of a JSON text while every other byte stays as it was.

    ``JsonSplice(text)`` parses ``text`` once (``value``: the decoded value, as ``json.loads`` gives it;
    duplicate keys: the last one wins, as there). :meth:`apply` takes a modified copy of ``value`` and
    returns ``text`` with only the smallest changed subtrees re-serialised (keys added after an object's own
    are inserted before its closing brace): whitespace, key order, number
    spellings and escapes of everything else are kept byte for byte.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            self.value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise MalformedJson(f"not valid JSON: {exc}") from None
        try:
            start = _WS.match(text, 0).end()  # type: ignore[union-attr]
            self.span, _ = self._scan(start)
        except RecursionError as exc:
            raise MalformedJson(f"nested too deeply: {exc}") from None

    def apply(self, new_value: Any) -> str:
        """``text`` with the parts where ``new_value`` differs from :attr:`value` replaced."""
        edits: list[tuple[int, int, str]] = []
        self._diff(self.value, new_value, self.span, edits)
        if not edits:
            return self.text
        out, pos = [], 0
        for start, end, replacement in sorted(edits):
            out.append(self.text[pos:start])
            out.append(replacement)
            pos = end
        out.append(self.text[pos:])
        return "".join(out)

    # -- diffing -----------------------------------------------------------
    def _diff(self, old: Any, new: Any, span: Span, edits: list[tuple[int, int, str]]) -> None:
        start, end, children = span
        if isinstance(old, Mapping) and isinstance(new, Mapping) and isinstance(children, dict):
            if list(new)[: len(old)] == list(old):  # the same keys, perhaps with new ones after them
                for key in old:
                    self._diff(old[key], new[key], children[key], edits)
                added = [key for key in new if key not in old]
                if added:  # inserted before the closing brace
                    pairs = ",".join(_dumps(key) + ":" + _dumps(new[key]) for key in added)
                    edits.append((end - 1, end - 1, ("," if old else "") + pairs))
                return
        elif isinstance(old, list) and isinstance(new, list) and isinstance(children, list):
            if len(old) == len(new):
                for o, n, s in zip(old, new, children):
                    self._diff(o, n, s, edits)
                return
        if type(old) is not type(new) or old != new:
            edits.append((start, end, _dumps(new)))

    # -- scanning (the text is known to be valid JSON: json.loads accepted it) --------------------
    def _scan(self, i: int) -> tuple[Span, int]:
        text = self.text
        ch = text[i]
        if ch == "{":
            children: dict[str, Span] = {}
            start = i
            i = self._skip(i + 1)
            if text[i] == "}":
                return (start, i + 1, children), i + 1
            while True:
                key_match = _STRING.match(text, i)
                if key_match is None:
                    raise MalformedJson(f"expected a key at {i}")
                key = json.loads(key_match.group(0))
                i = self._skip(key_match.end())
                i = self._skip(i + 1)  # the colon
                child, i = self._scan(i)
                children[key] = child
                i = self._skip(i)
                if text[i] == ",":
                    i = self._skip(i + 1)
                    continue
                return (start, i + 1, children), i + 1
        if ch == "[":
            items: list[Span] = []
            start = i
            i = self._skip(i + 1)
            if text[i] == "]":
                return (start, i + 1, items), i + 1
            while True:
                child, i = self._scan(i)
                items.append(child)
                i = self._skip(i)
                if text[i] == ",":
                    i = self._skip(i + 1)
                    continue
                return (start, i + 1, items), i + 1
        match: Optional[re.Match[str]]
        if ch == '"':
            match = _STRING.match(text, i)
        elif ch in "-0123456789":
            match = _NUMBER.match(text, i)
        else:
            match = _LITERAL.match(text, i)
        if match is None:
            raise MalformedJson(f"unexpected character at {i}")
        return (i, match.end(), None), match.end()

    def _skip(self, i: int) -> int:
        return _WS.match(self.text, i).end()  # type: ignore[union-attr]
