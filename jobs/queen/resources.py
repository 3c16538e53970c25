"""The resource manager: which ants are alive, what they can run, and how much room they have.

Live state comes from heartbeats (``AntRegistration`` messages) and is kept here, in memory:
placement never reads the database. Capacity is reserved here before a task is sent, so the
queen never sends an ant more than it has room for; the ant also enforces its own limit, so
several queens at worst make a task wait in an ant's stream.

The ants' rows (``ants.models.AntRegistration``: what the API, the UI and the plans' limits
read) are written in batches: a heartbeat only notes the ant as heard, and ``persist`` writes
every ant heard since the last batch in one upsert, at most every ``PERSIST_EVERY_SECS``, and
only the columns that changed. One ``update_or_create`` per heartbeat on the queen's loop was
200 statements a second with 1,000 ants, which left the loop no time to schedule. The rows are
at most that interval (plus the ant's heartbeat period) behind; a new queen learns the fleet
from the ants' hash and their next heartbeats, never from the rows.
"""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ants.models import AntRegistration as AntRow
from ants.protocol import AntRegistration

# The ants heard since the last batch are persisted for the API and UI this often (one statement).
PERSIST_EVERY_SECS = 5.0
# The row columns a heartbeat fills (``last_heartbeat_at`` and ``alive`` come from the queen).
ROW_FIELDS = (
    "ant_topic", "tags", "methods", "max_capacity", "current_load", "total_executed", "allocations",
    "containers", "organization_id", "shutting_down", "ant_started_at", "last_heartbeat_at", "alive",
)  # fmt: skip
# ... and those a heartbeat may change besides its time
CONTENT_FIELDS = tuple(f for f in ROW_FIELDS if f != "last_heartbeat_at")
# Tasks are sent ahead to a busy ant by how long its tasks hold a slot: for short tasks the
# queen's round trip is most of a slot's time, for long ones it is nothing and a task sent ahead
# would wait behind a long one while another ant may free up first. So a slot gets as many
# tasks ahead as it runs in ``prefetch_secs`` (at the pace of its last answers), at most
# ``prefetch``: a task sent ahead waits about that long at worst.
PREFETCH_AFTER_ANSWERS = 3
# Below this a task's run time says more about clocks than about the task.
MIN_RUN_SECS = 0.001
# A heartbeat heard this long after a task was sent has seen it (the ant reads its stream when it
# has a free slot), so "not busy and not running it" then means the message was lost.
HEARD_AFTER_SEND_SECS = 1.0
# A task its ant says it no longer runs, heartbeat after heartbeat for this long, while its final
# answer never came: the answer was lost (a database that lost its last commits in a crash, a
# Redis without durable writes). Long enough for an answer that is still on its way or that
# failed to apply to be claimed again and applied first (queens claim those after 10 s).
ANSWER_LOST_SECS = 15.0


@dataclass
class AntState:
    reg: AntRegistration
    last_seen: float
    reserved: set[int] = field(default_factory=set)  # task execution ids sent and not finished
    prefetch: int = 0  # at most this many tasks per slot may wait in the ant's stream
    prefetch_secs: float = 0.0  # ... and at most this much work at the ant's pace
    # moving average of how long its tasks held a slot; None until a few tasks came back
    run_secs: float | None = None
    answered: int = 0
    # the attempts sent to earlier processes under this id were put back (see ``unrecovered``)
    recovered: bool = False

    @property
    def ahead(self) -> int:
        """Tasks per slot that may wait in the ant's stream."""
        if not self.prefetch or self.run_secs is None:
            return 0
        return min(self.prefetch, int(self.prefetch_secs / max(self.run_secs, MIN_RUN_SECS)))

    @property
    def room(self) -> int:
        """Tasks it may hold: running and waiting in its stream."""
        return self.reg.max_capacity * (1 + self.ahead)

    @property
    def free(self) -> int:
        return self.room - len(self.reserved)

    def observe(self, ran_secs: float) -> None:
        self.answered += 1
        if self.answered >= PREFETCH_AFTER_ANSWERS:
            ran_secs = max(ran_secs, 0.0)
            self.run_secs = ran_secs if self.run_secs is None else 0.8 * self.run_secs + 0.2 * ran_secs


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


class ResourceManager:
    def __init__(  # type: ignore[no-untyped-def]
        self, ant_timeout_secs: float = 15.0, clock=time.time, prefetch: int = 0, prefetch_secs: float = 0.1
    ) -> None:
        self.ant_timeout_secs = ant_timeout_secs
        self.clock = clock
        # A task may be sent to an ant whose slots are all busy (see ``AntState.ahead``): it
        # waits in the ant's stream and starts the moment a slot frees, without a round trip
        # through the queen (the ant reads it in the same round trip that answers the last one).
        self.prefetch = max(0, prefetch)
        self.prefetch_secs = max(0.0, prefetch_secs)
        self.ants: dict[str, AntState] = {}
        # (ant, request, task type) of a running task its ant's heartbeats stopped listing: since when
        self._unlisted: dict[tuple[str, int, str], float] = {}
        # rows to write at the next ``persist``: ant id -> its columns; and what was written last
        self._unsaved: dict[str, dict[str, Any]] = {}
        self._saved: dict[str, dict[str, Any]] = {}
        self._persisted_at = clock()
        self._urgent = False
        # no ant has more room than this (its slots and the tasks it may have ahead, see
        # ``AntState.ahead``): ``choose`` stops at the first ant that has it. Raised as ants are
        # heard and answer, made exact again with each batch of rows.
        self._most_room = 0

    # -- heartbeats ---------------------------------------------------------------------------------
    def heard(self, reg: AntRegistration) -> bool:
        """Note a heartbeat; True when it is the first this queen hears from that incarnation of
        the ant (its process started at ``ant_started_at``): whatever was sent to an earlier
        incarnation under the same id died with it (see ``Engine.recover_restarted_ants``)."""
        now = self.clock()
        state = self.ants.get(reg.ant_id)
        new = state is None or state.reg.ant_started_at != reg.ant_started_at
        if state is None:
            state = self.ants[reg.ant_id] = AntState(
                reg=reg, last_seen=now, prefetch=self.prefetch, prefetch_secs=self.prefetch_secs
            )
        elif reg.created_at < state.reg.created_at or reg.ant_started_at < state.reg.ant_started_at:
            return False  # an older heartbeat (or an earlier incarnation's) arriving late
        elif new:
            # a restarted process runs nothing yet: its predecessor's slots are free
            state.reserved = set()
            state.recovered = False
        state.reg, state.last_seen = reg, now
        self._most_room = max(self._most_room, state.room)
        self._unsaved[reg.ant_id] = self._row(reg, now, alive=not reg.shutting_down)
        # an ant new to the rows, or leaving, is written at the next pass (the API shows it at once)
        self._urgent |= reg.shutting_down or reg.ant_id not in self._saved
        return new

    def unrecovered(self) -> list[str]:
        """Ants heard in a new process whose earlier attempts are not yet put back: kept until
        done, so a failure on the way (the database restarting) only delays it."""
        return [ant_id for ant_id, s in self.ants.items() if not s.recovered]

    def mark_recovered(self, ant_id: str, incarnation: float) -> None:
        state = self.ants.get(ant_id)
        if state is not None and state.reg.ant_started_at == incarnation:
            state.recovered = True

    def incarnation(self, ant_id: str) -> float | None:
        """The start time of the ant process now known under ``ant_id`` (tasks sent to it carry it)."""
        state = self.ants.get(ant_id)
        return state.reg.ant_started_at if state is not None else None

    @staticmethod
    def _row(reg: AntRegistration, seen: float, alive: bool) -> dict[str, Any]:
        return {
            "ant_topic": reg.ant_topic, "tags": reg.tags, "methods": reg.methods,
            "max_capacity": reg.max_capacity, "current_load": reg.current_load,
            "total_executed": reg.total_executed, "allocations": reg.allocations, "alive": alive,
            "containers": reg.containers, "organization_id": reg.organization_id,
            "shutting_down": reg.shutting_down, "ant_started_at": _ts(reg.ant_started_at),
            "last_heartbeat_at": _ts(seen),
        }  # fmt: skip

    def persist(self, force: bool = False) -> int:
        """Write the rows of the ants heard since the last batch, when ``PERSIST_EVERY_SECS`` have
        passed, an ant new to the rows or leaving was heard, or ``force``. Two statements at
        most: the ants whose heartbeat says something new (load, allocations, containers, ...)
        in one upsert of the columns that changed; the others (an idle fleet: nearly all) in one
        ``UPDATE`` of ``last_heartbeat_at`` to the oldest of their heartbeats of the batch (never
        later than the truth, at most one interval earlier). Returns the rows written. On
        failure the rows stay queued for the next batch, an interval later."""
        now = self.clock()
        if not self._unsaved or not (force or self._urgent or now - self._persisted_at >= PERSIST_EVERY_SECS):
            return 0
        rows, self._unsaved, self._urgent = self._unsaved, {}, False
        news: dict[str, dict[str, Any]] = {}
        changed: set[str] = {"last_heartbeat_at"}
        for ant_id, row in rows.items():
            before = self._saved.get(ant_id)
            fields = ROW_FIELDS if before is None else [k for k in CONTENT_FIELDS if row[k] != before[k]]
            if fields:
                news[ant_id] = row
                changed.update(fields)
        seen = [ant_id for ant_id in rows if ant_id not in news]
        try:
            if news:  # in ant id order: two queens writing the same rows lock them alike
                AntRow.objects.bulk_create(
                    [AntRow(ant_id=ant_id, **row) for ant_id, row in sorted(news.items())],
                    update_conflicts=True, unique_fields=["ant_id"],
                    update_fields=[f for f in ROW_FIELDS if f in changed],
                )  # fmt: skip
            if seen:
                oldest = min(rows[ant_id]["last_heartbeat_at"] for ant_id in seen)
                AntRow.objects.filter(ant_id__in=sorted(seen)).update(last_heartbeat_at=oldest)
        except Exception:
            self._unsaved = {**rows, **self._unsaved}  # newer heartbeats win
            self._persisted_at = now
            raise
        for ant_id, row in rows.items():
            if ant_id in self.ants:  # not the departed
                self._saved[ant_id] = row
        self._persisted_at = now
        self._most_room = max((state.room for state in self.ants.values()), default=0)
        return len(rows)

    def expire(self) -> list[str]:
        """Forget ants silent longer than the timeout (or that said they are leaving)."""
        now = self.clock()
        gone = [
            ant_id for ant_id, s in self.ants.items()
            if now - s.last_seen > self.ant_timeout_secs or s.reg.shutting_down
        ]  # fmt: skip
        silent = []
        for ant_id in gone:
            state = self.ants.pop(ant_id)
            self._saved.pop(ant_id, None)  # written in full when it comes back
            if now - state.last_seen > self.ant_timeout_secs:
                silent.append(ant_id)
        if silent:
            # its last heartbeat first, if still queued (the row may not exist yet)
            self.persist(force=any(a in self._unsaved for a in silent))
            AntRow.objects.filter(ant_id__in=silent).update(alive=False)
        return gone

    def silent(self) -> list[str]:
        """Ants that stopped heartbeating (not those that left politely): their tasks are lost."""
        now = self.clock()
        return [a for a, s in self.ants.items() if now - s.last_seen > self.ant_timeout_secs]

    # -- placement ----------------------------------------------------------------------------------
    def _fits(self, state: AntState, method: str, wanted: set[str], org_id: int | None, now: float) -> bool:
        reg = state.reg
        owner = reg.organization_id
        return (
            not reg.shutting_down
            and (not owner or owner == str(org_id))
            and method in reg.methods
            and (not wanted or wanted.issubset(reg.tags))
            and now - state.last_seen <= self.ant_timeout_secs
        )

    def fits(self, ant_id: str, method: str, tags: list[str], org_id: int | None = None) -> bool:
        """The ant (still known) runs ``method`` tasks with ``tags`` of ``org_id``."""
        state = self.ants.get(ant_id)
        return state is not None and self._fits(state, method, set(tags), org_id, self.clock())

    def capable(self, method: str, tags: list[str], org_id: int | None = None) -> bool:
        now, wanted = self.clock(), set(tags)
        return any(self._fits(s, method, wanted, org_id, now) for s in self.ants.values())

    def choose(self, method: str, tags: list[str], org_id: int | None = None) -> str | None:
        """The fitting ant with the most free room (the first of equals), or None when every
        fitting ant is full. Called per task over the ants: room is looked at first, fit only
        for a better one, and an ant with all the room any may have ends the search (in a large
        fleet, mostly idle, the first fitting one)."""
        now, wanted, most_room = self.clock(), set(tags), self._most_room
        best: AntState | None = None
        most = 0
        for state in self.ants.values():
            free = state.free
            if free > most and self._fits(state, method, wanted, org_id, now):
                best, most = state, free
                if free >= most_room:
                    break
        return best.reg.ant_id if best else None

    def may_hold(self, ant_id: str, request_id: int, task_type: str, sent_at: float) -> bool:
        """The ant may have the task sent at ``sent_at``, waiting in its stream or running with
        the acknowledgement on its way: every slot was busy at its last heartbeat, the heartbeat
        lists the task, or no heartbeat came after the send (one before says nothing of it)."""
        state = self.ants.get(ant_id)
        if state is None:
            return False  # a lost ant's tasks are recovered as such
        running = state.reg.allocations.get(str(request_id), {})
        return (
            state.reg.current_load >= state.reg.max_capacity
            or task_type in running
            or state.last_seen < sent_at + HEARD_AFTER_SEND_SECS
        )

    def answer_lost(self, ant_id: str, request_id: int, task_type: str, sent_at: float) -> bool:
        """The ant acknowledged the task sent at ``sent_at``, and its heartbeats have not listed it
        for ``ANSWER_LOST_SECS``: it ended there, and its answer is lost. An ant that is gone or
        leaving says nothing here (its tasks are recovered as a lost ant's)."""
        state, key = self.ants.get(ant_id), (ant_id, request_id, task_type)
        if (
            state is None
            or state.reg.shutting_down
            or task_type in state.reg.allocations.get(str(request_id), {})
            or state.last_seen < sent_at + HEARD_AFTER_SEND_SECS
        ):
            self._unlisted.pop(key, None)
            return False
        since = self._unlisted.setdefault(key, self.clock())
        return self.clock() - since >= ANSWER_LOST_SECS

    def keep_unlisted(self, keys: set[tuple[str, int, str]]) -> None:
        """Forget the unlisted tasks that are no longer running."""
        self._unlisted = {k: v for k, v in self._unlisted.items() if k in keys}

    def all_full(self) -> bool:
        """Ants are known and none has a free slot: no task for an ant can be sent now."""
        return bool(self.ants) and all(s.free <= 0 for s in self.ants.values())

    def reserve(self, ant_id: str, task_id: int) -> None:
        if ant_id in self.ants:
            self.ants[ant_id].reserved.add(task_id)

    def unreserve(self, ant_id: str, task_id: int) -> None:
        """Give back room reserved for a task that was not sent after all."""
        state = self.ants.get(ant_id)
        if state is not None:
            state.reserved.discard(task_id)

    def release(self, ant_id: str, task_id: int, ran_secs: float | None = None) -> None:
        """The task's room is free again: it was answered (it held a slot ``ran_secs``, when the
        answer says), cancelled or given up."""
        state = self.ants.get(ant_id)
        if state is not None and task_id in state.reserved:
            state.reserved.discard(task_id)
            if ran_secs is not None:
                state.observe(ran_secs)
                self._most_room = max(self._most_room, state.room)

    def sync_reservations(self, running: dict[str, set[int]]) -> None:
        """Reset reservations from the database's running tasks (after restart, or periodically)."""
        for ant_id, state in self.ants.items():
            state.reserved = set(running.get(ant_id, set()))

    def waiting_reason(self, method: str, tags: list[str], org_id: int | None = None) -> str:
        wanted = f"method {method}" + (f" and tags {', '.join(tags)}" if tags else "")
        if self.capable(method, tags, org_id):
            return f"waiting for room on an ant with {wanted}"
        return f"no live ant with {wanted}"
