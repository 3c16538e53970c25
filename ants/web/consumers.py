"""WEBSOCKET ants: a websocket client (a browser tab, a script) that registers on ``ws/ants``
becomes an ant of its user's organization and runs WEBSOCKET tasks.

Protocol (JSON text frames; see docs/websocket-ants.md):

1. Connect with an API token (``Authorization: Bearer <token>`` header, or ``?token=<token>``
   since browsers cannot set headers) or a logged-in session. Anything else is refused at the
   handshake (close code 4401).
2. Register: ``{"ant_id": "browser-1", "tags": ["web", "js"], "methods": ["WEBSOCKET"],
   "max_capacity": 1}``. The answer is ``{"type": "registered", "ant_id": "ws-<org>-browser-1",
   ...}``. An ``AntWorker`` now runs for this socket on the process transport, in a thread,
   with ``organization_id`` set in its registrations: the queen sends it only WEBSOCKET tasks of
   this organization whose tags it has.
3. Tasks arrive as ``{"type": "task", ...TaskRequest fields}``; the client answers with
   ``{"task_execution_id", "attempt", "status": "COMPLETED"|"FAILED", "exit_code",
   "task_context", ...}`` (the task message itself with ``status`` added is fine) and gets
   ``{"type": "ack", ...}``. ``{"type": "log", "task_execution_id", "attempt", "lines": [...]}``
   adds log lines; ``{"type": "cancel", ...}`` tells the client a task was cancelled or timed out.
4. A malformed message gets ``{"type": "error", "error": "<what is wrong>"}``; the socket stays
   open.
5. On disconnect the tasks in flight fail with ``ERR_ANT_DISCONNECTED`` (their ``retry`` decides
   whether they run again, on any fitting ant), the worker stops and publishes a final
   registration with ``shutting_down`` so the queen stops routing to it. Requests the queen
   sent after that are never acknowledged and go back to READY through the queen's
   acknowledgement timeout (or are picked up when the same ant id reconnects).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone

from ants.config import AntConfig
from ants.executors.base import UnsupportedMethod
from ants.executors.websocket import WebsocketExecutor
from ants.worker import AntWorker
from formicary_site import json_input

logger = logging.getLogger(__name__)

METHOD = "WEBSOCKET"
CLOSE_UNAUTHENTICATED = 4401
CLIENT_ANT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
MAX_CAPACITY = 32
MAX_TAGS = 100
SEND_TIMEOUT_SECS = 30.0
STOP_TIMEOUT_SECS = 30.0

# Ant ids with an open socket in this process (a second registration of one id is refused).
_connected: dict[str, AntConsumer] = {}
_connected_lock = threading.Lock()


REGISTER = "Ant:Register"


def heartbeat_secs() -> float:
    return float(getattr(settings, "FORMICARY_WS_ANT_HEARTBEAT_SECS", 5.0))


def _token_of(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            parts = value.decode("latin-1").split()
            if len(parts) == 2 and parts[0].lower() == "bearer":
                return parts[1]
            return ""  # present but not "Bearer <token>": refused, no fallback to the session
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if "token" in query:
        return query["token"][0]
    return None


def authenticate(scope: dict[str, Any]) -> tuple[int, int] | None:
    """(organization id, user id) of the token's or the session's user; None when refused."""
    from orgs.models import ApiToken

    token = _token_of(scope)
    if token is not None:
        if not token:
            return None
        row = ApiToken.objects.select_related("user").filter(digest=ApiToken.digest_of(token)).first()
        if row is None or not row.user.is_active:
            return None
        if row.expires_at and row.expires_at < timezone.now():
            return None
        user = row.user
        granted = row.permissions()
    else:
        found = scope.get("user")
        if found is None or not getattr(found, "is_authenticated", False) or not found.is_active:
            return None
        user, granted = found, found.permissions()
    if not user.organization_id or REGISTER not in granted:
        return None  # running tasks (and receiving their secrets) needs Ant:Register
    return user.organization_id, user.pk


def parse_registration(message: dict[str, Any], org_id: int) -> tuple[AntConfig | None, str | None]:
    """The ant's config from a registration message, or the first problem with it."""
    kind = message.get("type", "register")
    if kind != "register":
        return None, f'type: expected a registration first ({{"ant_id", "tags", "methods"}}), got {kind!r}'
    ant_id = message.get("ant_id")
    if not isinstance(ant_id, str) or not CLIENT_ANT_ID_RE.match(ant_id):
        return (
            None,
            "ant_id: expected 1-100 letters, digits, '_', '.' or '-' (starting with a letter or digit)",
        )
    tags = message.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        return None, "tags: expected a list of non-empty strings"
    if len(tags) > MAX_TAGS:
        return None, f"tags: at most {MAX_TAGS}"
    methods = message.get("methods", [METHOD])
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        return None, "methods: expected a list of strings"
    methods = [m.strip().upper() for m in methods]
    if methods != [METHOD] and set(methods) != {METHOD}:
        return None, f"methods: a websocket ant runs {METHOD} tasks only, got {methods}"
    capacity = message.get("max_capacity", message.get("concurrency", 1))
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= capacity <= MAX_CAPACITY:
        return None, f"max_capacity: expected an integer from 1 to {MAX_CAPACITY}"
    config = AntConfig(
        ant_id=f"ws-{org_id}-{ant_id}",
        tags=[t.strip() for t in tags],
        methods=[METHOD],
        concurrency=capacity,
        heartbeat_secs=heartbeat_secs(),
        work_root=Path(tempfile.gettempdir()) / "formicary-ws-ants",
        organization_id=str(org_id),
    )
    return config, None


class AntConsumer(AsyncWebsocketConsumer):
    """``ws/ants``: one socket, one WEBSOCKET ant."""

    org_id: int | None = None
    worker: AntWorker | None = None
    executor: WebsocketExecutor | None = None
    thread: threading.Thread | None = None
    closed = False

    async def connect(self) -> None:
        auth = await database_sync_to_async(authenticate)(self.scope)
        if auth is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.org_id, self.user_id = auth
        self.loop = asyncio.get_running_loop()
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            await self._receive(text_data, bytes_data)
        except Exception:
            logger.exception("websocket ant %s: handling a message failed", self._ant_id())
            await self._error("internal error while handling the message")

    async def _receive(self, text_data: str | None, bytes_data: bytes | None) -> None:
        if text_data is None:
            try:
                text_data = (bytes_data or b"").decode("utf-8")
            except UnicodeDecodeError:
                await self._error("message is not UTF-8 text")
                return
        try:
            message = json_input.loads(text_data)  # depth limit, no NaN, lone surrogates or NUL
        except json_input.JSONInputError as exc:
            await self._error(f"message is not valid JSON: {exc}")
            return
        if not isinstance(message, dict):
            await self._error(f"message must be a JSON object, got {type(message).__name__}")
            return
        if self.worker is None:
            await self._register(message)
            return
        assert self.executor is not None
        kind = message.get("type")
        if "status" in message:
            problem = self.executor.deliver(message)
            if problem is not None:
                await self._error(problem, message)
            else:
                await self._send_json({"type": "ack", "task_execution_id": message["task_execution_id"],
                                       "attempt": message.get("attempt")})  # fmt: skip
        elif kind == "log":
            problem = self.executor.deliver_log(message)
            if problem is not None:
                await self._error(problem, message)
        elif kind == "ping":
            await self._send_json({"type": "pong"})
        elif kind == "register" or (kind is None and "methods" in message):
            await self._error(f"already registered as {self._ant_id()}")
        else:
            await self._error(
                "unknown message: expected a task answer with status COMPLETED or FAILED, "
                "or a message with type 'log' or 'ping'",
                message,
            )

    async def _register(self, message: dict[str, Any]) -> None:
        assert self.org_id is not None
        config, problem = parse_registration(message, self.org_id)
        if config is None:
            await self._error(problem or "invalid registration")
            return
        from orgs import usage

        with _connected_lock:
            mine = [a for a in _connected if a.startswith(f"ws-{self.org_id}-")]
        if problem := await database_sync_to_async(usage.ants_refusal)(self.org_id, config.ant_id, mine):
            await self._error(problem)  # the plan's max_ants
            return
        with _connected_lock:
            if config.ant_id in _connected:
                problem = f"ant_id: {message['ant_id']!r} is already connected; choose another ant_id"
            else:
                _connected[config.ant_id] = self
        if problem is not None:
            await self._error(problem)
            return
        from jobs.domain.messaging import get_transport

        self.executor = WebsocketExecutor(
            config, send=self._send_from_thread, organization_id=str(self.org_id)
        )
        self.worker = AntWorker(config, get_transport(), executor_lookup=self._lookup, block_ms=500)
        await self._send_json({
            "type": "registered", "ant_id": config.ant_id, "organization_id": config.organization_id,
            "tags": config.tags, "methods": config.methods, "max_capacity": config.concurrency,
        })  # fmt: skip
        self.thread = threading.Thread(target=self._run_worker, name=f"ws-ant-{config.ant_id}", daemon=True)
        self.thread.start()
        logger.info("websocket ant %s registered (tags %s)", config.ant_id, config.tags)

    def _run_worker(self) -> None:
        assert self.worker is not None
        try:
            self.worker.run_forever()
        except Exception:
            logger.exception("websocket ant %s: worker failed", self._ant_id())
        finally:
            with _connected_lock:
                if _connected.get(self.worker.config.ant_id) is self:
                    del _connected[self.worker.config.ant_id]
            if not self.closed:
                # The worker died under an open socket: close it so the client reconnects.
                asyncio.run_coroutine_threadsafe(self.close(code=1011), self.loop)

    def _lookup(self, method: str, config: Any) -> WebsocketExecutor:
        if method.upper() != METHOD or self.executor is None:
            raise UnsupportedMethod(f"a websocket ant runs {METHOD} tasks only, not {method}")
        return self.executor

    async def disconnect(self, code: int) -> None:
        self.closed = True
        if self.executor is not None:
            self.executor.close(f"websocket closed (code {code})")
        if self.worker is not None and self.thread is not None:
            self.worker.stop()
            await asyncio.get_running_loop().run_in_executor(None, self.thread.join, STOP_TIMEOUT_SECS)
            logger.info("websocket ant %s disconnected (code %s)", self._ant_id(), code)

    # -- sending ------------------------------------------------------------------------------------
    def _send_from_thread(self, message: dict[str, Any]) -> None:
        """Called by the worker's threads; raises when the socket is gone."""
        if self.closed:
            raise ConnectionError("websocket closed")
        future = asyncio.run_coroutine_threadsafe(self._send_json(message), self.loop)
        future.result(timeout=SEND_TIMEOUT_SECS)

    async def _send_json(self, message: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(message, separators=(",", ":"), default=str))

    async def _error(self, problem: str, about: dict[str, Any] | None = None) -> None:
        reply: dict[str, Any] = {"type": "error", "error": problem}
        if about is not None:
            for name in ("task_execution_id", "attempt"):
                if name in about:
                    reply[name] = about[name]
        if not self.closed:
            await self._send_json(reply)

    def _ant_id(self) -> str:
        return self.worker.config.ant_id if self.worker is not None else f"(unregistered, org {self.org_id})"
