"""Websocket handshakes from another site's page never ride on the session cookie.

A browser sends a site's cookies with any page's websocket handshake, so without this a page on
``http://evil.example`` could open ``/ws/ants`` or a job's live log as the logged-in user
(cross-site websocket hijacking). ``ALLOWED_HOSTS`` is ``*`` by default, which makes Channels'
``AllowedHostsOriginValidator`` accept every origin; so for a handshake whose ``Origin`` is not
the server's own (the ``Host`` it was asked for, a host named in ``ALLOWED_HOSTS`` other than
``*``, or one of ``CSRF_TRUSTED_ORIGINS``) the cookie
header is dropped before authentication. Clients that authenticate with an API token (scripts,
WEBSOCKET ants, with or without an ``Origin``) are unaffected; a handshake without ``Origin``
does not come from a browser page.
"""

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import validate_host


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def same_origin(scope: dict[str, Any]) -> bool:
    """True when the handshake has no ``Origin`` or the origin is the server's own."""
    origin = _header(scope, b"origin")
    if origin is None:
        return True
    origin = origin.strip().lower().rstrip("/")
    if origin in {o.lower().rstrip("/") for o in settings.CSRF_TRUSTED_ORIGINS}:
        return True
    host = (_header(scope, b"host") or "").strip().lower()
    try:
        parsed = urlsplit(origin)
        origin_host = parsed.netloc
        default_port = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parsed.scheme)
        if parsed.port is not None and parsed.port == default_port and parsed.hostname:
            origin_host = parsed.hostname  # "https://x:443" is the origin of Host "x"
    except ValueError:
        return False
    # hosts the operator names in ALLOWED_HOSTS (the "*" wildcard aside) are trusted origins too
    named = [h for h in settings.ALLOWED_HOSTS if h != "*"]
    if parsed.hostname and named and validate_host(parsed.hostname, named):
        return True
    if host.endswith(":80") or host.endswith(":443"):
        host_no_port = host.rsplit(":", 1)[0]
        return bool(origin_host) and origin_host in (host, host_no_port)
    return bool(origin_host) and origin_host == host


class SessionOnlyFromOwnOrigin:
    """ASGI middleware (outside ``AuthMiddlewareStack``): drops the cookie header of a websocket
    handshake from a foreign origin, so only a token can authenticate it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope.get("type") == "websocket" and not same_origin(scope):
            scope = {**scope, "headers": [(k, v) for k, v in scope.get("headers", []) if k != b"cookie"]}
        return await self.app(scope, receive, send)
