"""Websocket consumers of the web UI: a job request's lifecycle events and a task's live log lines.

Both check that the user's organization owns the object before joining anything; another
organization's id is refused exactly like an id that does not exist. What they send is for live
display only: the page renders the database state first and these messages move it forward.
"""

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from jobs.domain.logs import task_log_lines
from jobs.domain.messaging import get_transport
from jobs.models import JobRequest, TaskExecution
from jobs.states import TASK_TERMINAL
from orgs.scoping import for_user

log = logging.getLogger(__name__)

# Close code for "not found or not yours" (4000-4999 are application codes).
CLOSE_FORBIDDEN = 4403
# A blocked read wakes at least this often to notice a closed socket or a finished task.
TAIL_BLOCK_MS = 500
# Tailing blocks a thread per open log view; they get their own pool so they never starve the
# threads Django's ORM calls run on.
_tail_pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="log-tail")


WATCH = "JobRequest:Read"


def may_watch(user: Any) -> bool:
    """Watching is reading: every role may (``JobRequest:Read``); browsers never act here."""
    return bool(user is not None and getattr(user, "is_authenticated", False) and WATCH in user.permissions())


def request_snapshot(user: Any, request_id: int) -> dict[str, Any] | None:
    """The request's current job and task states, or None when the user may not see it."""
    if not may_watch(user):
        return None
    request = for_user(JobRequest, user).filter(pk=request_id).select_related("last_execution").first()
    if request is None:
        return None
    tasks = []
    if request.last_execution is not None:
        tasks = [
            {"task_execution_id": t.pk, "task_type": t.task_type, "task_state": t.task_state,
             "exit_code": t.exit_code}
            # a fan-out's instances (up to 10,000) reach the page through page.json, under their step
            for t in request.last_execution.tasks.filter(fan_out_of="")
        ]  # fmt: skip
    return {"kind": "snapshot", "job_request_id": request.pk, "job_state": request.job_state, "tasks": tasks}


def visible_task(user: Any, task_id: int) -> TaskExecution | None:
    if not may_watch(user):
        return None
    return for_user(TaskExecution, user).filter(pk=task_id).first()


def task_finished(task_id: int) -> bool:
    state = TaskExecution.objects.filter(pk=task_id).values_list("task_state", flat=True).first()
    return state is None or state in TASK_TERMINAL


class RequestEventsConsumer(AsyncJsonWebsocketConsumer):
    """``ws/jobs/requests/<id>/events``: a snapshot on connect, then every lifecycle event."""

    group: str | None = None

    async def connect(self) -> None:
        request_id = int(self.scope["url_route"]["kwargs"]["request_id"])
        snapshot = await database_sync_to_async(request_snapshot)(self.scope.get("user"), request_id)
        if snapshot is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.group = f"job-{request_id}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # after joining: an event between the page render and now is covered by the snapshot
        await self.send_json(snapshot)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """Browsers only listen; anything they send (JSON or not, text or bytes) is ignored."""

    async def job_events(self, message: dict[str, Any]) -> None:
        """The request's events of one batch, in order: one frame each, as ``job_event`` sends."""
        for event in message["events"]:
            await self.job_event(event)

    async def job_event(self, event: dict[str, Any]) -> None:
        """One event (also what a process of the previous release still sends)."""
        await self.send_json({k: v for k, v in event.items() if k not in ("type", "organization_id")})


class TaskLogConsumer(AsyncJsonWebsocketConsumer):
    """``ws/jobs/tasks/<id>/logs``: every line of the task so far, then new lines as printed.

    Lines come from the task's live log stream; a task whose stream is gone (finished long ago)
    is served from the stored log chunks. Messages: ``{"kind": "lines", "lines": [...]}`` and
    ``{"kind": "end"}`` once the task has finished and its last line was sent.
    """

    tail: asyncio.Task | None = None

    async def connect(self) -> None:
        self.task_id = int(self.scope["url_route"]["kwargs"]["task_id"])
        task = await database_sync_to_async(visible_task)(self.scope.get("user"), self.task_id)
        if task is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.closing = False
        await self.accept()
        self.tail = asyncio.create_task(self._tail(task))

    async def disconnect(self, code: int) -> None:
        self.closing = True
        if self.tail is not None:
            self.tail.cancel()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        """Browsers only listen; anything they send (JSON or not, text or bytes) is ignored."""

    async def _read(self, after: str, block_ms: int) -> list[tuple[str, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            _tail_pool, get_transport().read_logs, self.task_id, after, block_ms
        )

    async def _send_lines(self, batch: list[tuple[str, Any]]) -> None:
        lines = [
            {
                "seq": line.seq,
                "line": line.line,
                "attempt": line.attempt,
                "stream": line.stream,
                "ts": line.ts,
            }
            for _, line in batch
        ]
        await self.send_json({"kind": "lines", "lines": lines})

    async def _tail(self, task: TaskExecution) -> None:
        try:
            after = "0"
            batch = await self._read(after, 0)
            if not batch and task.task_state in TASK_TERMINAL:
                stored = await database_sync_to_async(task_log_lines)(task.pk, task.attempt or None)
                await self.send_json(
                    {"kind": "lines", "stored": True,
                     "lines": [{"seq": i + 1, "line": t, "stream": s, "attempt": task.attempt}
                               for i, (t, s) in enumerate(stored)]}
                )  # fmt: skip
                await self.send_json({"kind": "end"})
                return
            while not self.closing:
                if batch:
                    after = batch[-1][0]
                    await self._send_lines(batch)
                elif await database_sync_to_async(task_finished)(self.task_id):
                    # one last look: lines published just before the final state
                    batch = await self._read(after, 0)
                    if batch:
                        continue
                    await self.send_json({"kind": "end"})
                    return
                batch = await self._read(after, TAIL_BLOCK_MS)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # a browser that goes away mid-send is normal (the server names it ClientDisconnected)
            if self.closing or type(exc).__name__ == "ClientDisconnected":
                return
            log.exception("tailing the log of task %s failed", self.task_id)
            await self.close()
