from rest_framework.parsers import BaseParser


class RawBodyParser(BaseParser):
    """Hands the body over untouched; the view decides how to read YAML or JSON."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):  # type: ignore[no-untyped-def]
        return stream.read() if stream is not None else b""


YAML_TYPES = ("application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml", "text/plain")


def is_yaml(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() in YAML_TYPES
