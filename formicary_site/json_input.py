"""JSON from clients (API bodies, the UI's extra params, websocket messages), read one way.

Python's ``json`` accepts what later breaks the server: nesting deep enough to exhaust the
stack (``RecursionError`` in the parser, the serializers or the renderer), ``NaN``/``Infinity``
(not JSON; PostgreSQL's jsonb refuses them), lone surrogates (``"\\ud800"``: no UTF-8 encoding,
so the database driver raises) and NUL characters (PostgreSQL text cannot hold them). ``loads``
refuses all of them with a sentence naming the problem, so callers answer 400.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class JSONInputError(ValueError):
    """The text is not JSON we accept; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise JSONInputError(f"{name} is not a JSON value")


def loads(text: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """The parsed value; ``JSONInputError`` when it is not JSON or breaks a rule above."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except JSONInputError:
        raise
    except RecursionError:
        raise JSONInputError(f"JSON nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError as exc:
        raise JSONInputError(f"JSON is not UTF-8 text (byte {exc.start})") from None
    except ValueError as exc:  # JSONDecodeError, and integers of over 4,300 digits
        raise JSONInputError(f"invalid JSON: {exc}") from None
    check(value, max_depth=max_depth)
    return value


def text_problem(text: str) -> str | None:
    """Why a string cannot be stored, or None."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate (\\u{ord(text[exc.start]):04x}), which is not Unicode text"
    return None


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Walks ``value`` without recursion: its depth and every string (keys too)."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise JSONInputError(f"JSON nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key, child in item.items():
                    if isinstance(key, str) and (problem := text_problem(key)):
                        raise JSONInputError(f"a key at {where or 'the top'} {problem}")
                    stack.append((child, depth + 1, f"{where}.{key}" if where else str(key)))
            else:
                stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, str) and (problem := text_problem(item)):
            raise JSONInputError(f"the value at {where or 'the top'} {problem}")
