"""DRF parsers and query checks that turn unusable client text into a 400 naming the field.

The JSON parser reads through ``formicary_site.json_input`` (depth limit, no NaN, no lone
surrogates or NUL characters); the form parsers refuse NUL characters, which PostgreSQL text
cannot hold (form decoding already replaces bytes that are not UTF-8).
"""

from django.conf import settings
from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import ParseError, ValidationError

from formicary_site.json_input import JSONInputError, loads, text_problem


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        try:
            return loads(raw.decode(encoding))
        except UnicodeDecodeError as exc:
            raise ParseError(f"the body is not {encoding} text (byte {exc.start})") from None
        except JSONInputError as exc:
            raise ParseError(str(exc)) from None


def check_fields(data: QueryDict, what: str) -> None:
    """ValidationError naming the first field whose name or value cannot be stored."""
    for name, values in data.lists():
        for text in (name, *values):
            if isinstance(text, str) and (problem := text_problem(text)):
                raise ValidationError({name: f"{what} {problem}"})


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        data = super().parse(stream, media_type, parser_context)
        check_fields(data, "the form field")
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        result = super().parse(stream, media_type, parser_context)
        check_fields(result.data, "the form field")
        return result


def check_query(params: QueryDict) -> None:
    """Query parameters get the same rule: a 400 naming the parameter, not a database error."""
    check_fields(params, "the query parameter")
