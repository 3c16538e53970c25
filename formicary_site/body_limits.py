"""Request bodies capped before they are read (ASGI middleware around the Django app).

Django's ASGI handler reads a whole body before any view runs, and the API's parsers hold it in
memory: a 300 MB upload cost the server 900 MB before the view's own check refused it. Here a
declared ``Content-Length`` over the limit is answered 413 at once, without reading a byte, and a
chunked body is counted as it arrives and cut off (the app sees the client leave) at the limit.
Artifact uploads stream to the store and keep their own, larger limit.
"""

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# paths whose bodies are artifacts, streamed to the object store rather than held in memory
ARTIFACT_UPLOAD_PATHS = frozenset({"/api/artifacts"})


def body_limit(path: str) -> tuple[int, str]:
    """The most bytes a request body to ``path`` may have, and the setting that says so."""
    if path.rstrip("/") in ARTIFACT_UPLOAD_PATHS:
        return settings.FORMICARY_MAX_ARTIFACT_BYTES, "FORMICARY_MAX_ARTIFACT_BYTES"
    return settings.FORMICARY_MAX_BODY_BYTES, "FORMICARY_MAX_BODY_BYTES"


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


async def _refuse(send: Send, limit: int, setting: str) -> None:
    body = json.dumps(
        {"error": f"request body larger than {limit} bytes (the limit is {setting}={limit})"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = body_limit(scope.get("path", ""))
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _refuse(send, limit, setting)
            return
        received = 0
        over = False
        started = False

        async def receive_within_limit() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over = True  # the app stops reading as if the client had gone; we answer
                    return {"type": "http.disconnect"}
            return message

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, receive_within_limit, send_noting_start)
        if over and not started:
            await _refuse(send, limit, setting)
