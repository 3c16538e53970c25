"""Request bodies the way the reference system's clients send them."""

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from formicary_site.json_input import JSONInputError, check, loads
from jobs.definition.yamlsafe import load_yaml


class RawBodyParser(BaseParser):
    """Hands the body over untouched; the view decides how to read YAML or JSON."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        return stream.read() if stream is not None else b""


YAML_TYPES = ("application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml", "text/plain")
FORM_TYPE = "application/x-www-form-urlencoded"


def _base_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def is_yaml(content_type: str) -> bool:
    return _base_type(content_type) in YAML_TYPES


def looks_like_json(body: bytes) -> bool:
    return body.lstrip()[:1] in (b"{", b"[")


class ObjectBodyParser(BaseParser):
    """One object of fields from a JSON or YAML body (``application/yaml``, ``text/yaml``,
    ``application/x-yaml``). A body sent without a fitting type (curl's ``-d`` says
    form-urlencoded) is read as JSON when it looks like JSON, else as YAML or form fields."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        body = stream.read() if stream is not None else b""
        if not body.strip():
            return {}
        kind = _base_type(media_type or "")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"the body is not UTF-8 text (byte {exc.start})") from exc
        if kind == FORM_TYPE and not looks_like_json(body) and "=" in text and ":" not in text.split("=")[0]:
            return dict(parse_qsl(text, keep_blank_values=True))
        if kind == "application/json" or (kind not in YAML_TYPES and looks_like_json(body)):
            # the one JSON reader: depth limit, no NaN, no lone surrogates or NUL characters
            try:
                data = loads(text)
            except JSONInputError as exc:
                raise ParseError(str(exc)) from None
        else:
            # the project's YAML loader caps depth, aliases and size; then the same string checks
            data, problems = load_yaml(text)
            if problems:
                raise ParseError(str(problems[0]))
            try:
                check(data)
            except JSONInputError as exc:
                raise ParseError(str(exc)) from None
        if not isinstance(data, dict):
            raise ParseError("the body must be an object of fields (JSON or YAML)")
        return data


def _fold(name: str) -> str:
    return re.sub(r"[_\-\s]", "", name).lower()


def known_fields(data: Any, names: Iterable[str]) -> dict[str, Any]:
    """``data`` with keys spelled as the reference's clients spell them (``Name``, ``ErrorCode``,
    ``errorCode``, ``error_code``) renamed to ``names``; other keys are kept as they are."""
    if not hasattr(data, "items"):
        return data
    by_fold = {_fold(n): n for n in names}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = by_fold.get(_fold(str(key)), key)
        if name in out and name != key:
            continue  # the exact spelling wins over a folded one
        out[name] = value
    return out
