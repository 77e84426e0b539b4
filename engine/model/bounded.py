"""Free-form JSON, bounded: how deep and how large a value is, measured without recursion,
parsing that never blows the stack, and values cut down to a depth that is safe to show.

Python's JSON parser and encoder, and pydantic's serializer, recurse once per level of
nesting; a value nested deep enough fails them all (RecursionError, or a serializer's own
depth limit). Every measure here walks with an explicit stack instead, so any value can
be judged, and `loads` names where a document too deep to parse goes too deep.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import DataVisaError

MAX_PARSE_DEPTH = 128  # deeper than any limit the engine accepts; far from the stack's end

JsonPath = list[str | int]  # keys and array indexes from the top of a document


class TooDeep(DataVisaError):
    """A JSON document nests deeper than can be parsed; `path` leads to where it does
    (keys and array indexes from the top), as far as `MAX_PARSE_DEPTH` levels."""

    def __init__(self, path: JsonPath) -> None:
        super().__init__(f"JSON nested more than {MAX_PARSE_DEPTH} levels deep")
        self.path = path


def depth(value: Any) -> int:
    """Levels of nesting: 0 for a scalar, 1 for a flat object or array, and so on."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def stored_size(value: Any) -> int:
    """Bytes of `value` as JSON, written compactly as the logs store it; needs a value
    whose `depth` is well under MAX_PARSE_DEPTH."""
    return len(json.dumps(value, separators=(",", ":")))


def problem(value: Any, max_bytes: int, max_depth: int) -> str | None:
    """Why `value` is outside the bounds (depth first, so the size is safe to measure),
    or None when it is inside."""
    if depth(value) > max_depth:
        return f"nested more than {max_depth} levels deep"
    if (size := stored_size(value)) > max_bytes:
        return f"{size} bytes as JSON, more than the {max_bytes} allowed"
    return None


def loads(text: str | bytes) -> Any:
    """`json.loads`, except that a document too deep to parse raises TooDeep, which says
    where, instead of RecursionError; malformed JSON raises ValueError as before."""
    try:
        return json.loads(text)
    except RecursionError:
        raw = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
        raise TooDeep(_deep_path(raw, MAX_PARSE_DEPTH)) from None


def _deep_path(text: str, limit: int) -> JsonPath:
    """The keys and indexes leading to the first array or object nested deeper than
    `limit`, scanning `text` once; only ever called on a document json could not parse."""
    path: JsonPath = []  # per open container: the key or index the scan is at inside it
    objects: list[bool] = []  # per open container: is it an object
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            after = end + 1
            while after < n and text[after] in " \t\r\n":
                after += 1
            if objects and objects[-1] and after < n and text[after] == ":":
                try:
                    path[-1] = json.loads(text[i : end + 1])
                except ValueError:
                    path[-1] = text[i + 1 : end]
            i = end + 1
            continue
        if c in "{[":
            if len(objects) >= limit:
                return path
            objects.append(c == "{")
            path.append("" if c == "{" else 0)
        elif c in "}]" and objects:
            objects.pop()
            path.pop()
        elif c == "," and objects and not objects[-1]:
            path[-1] = int(path[-1]) + 1
        i += 1
    return path


CUT = "(cut: nested too deeply to show)"


def cut(value: Any, max_depth: int) -> tuple[Any, list[str]]:
    """`value` with every array or object deeper than `max_depth` levels replaced by the
    CUT marker, and the JSON pointers of what was replaced (the first few)."""
    if depth(value) <= max_depth:
        return value, []
    cuts: list[str] = []
    root: list[Any] = [None]
    stack: list[tuple[Any, list[Any] | dict[Any, Any], Any, int, str]] = [(value, root, 0, 1, "")]
    while stack:
        item, parent, key, level, pointer = stack.pop()
        if not isinstance(item, dict | list):
            parent[key] = item
        elif level > max_depth:
            parent[key] = CUT
            if len(cuts) < 8:
                cuts.append(pointer)
        elif isinstance(item, dict):
            parent[key] = made = {}
            for k, child in reversed(item.items()):  # popped in order: keys keep theirs
                escaped = str(k).replace("~", "~0").replace("/", "~1")
                stack.append((child, made, k, level + 1, f"{pointer}/{escaped}"))
        else:
            parent[key] = made = [None] * len(item)
            for index, child in enumerate(item):
                stack.append((child, made, index, level + 1, f"{pointer}/{index}"))
    return root[0], sorted(cuts)
