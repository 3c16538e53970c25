"""The queen's loop: small steps, each doing one unit of work and saying how much it did.

It blocks on the response stream when idle, so an ant's answer or a submitted request (in the
same process) wakes it at once instead of a polling sleep.
"""

import logging
import os
import socket
import sys
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connections

from ants.messaging.base import Transport
from ants.protocol import STATUS_EXECUTING
from jobs.domain import events
from jobs.queen import leases
from jobs.queen.cron import CronScheduler
from jobs.queen.engine import ACK_TIMEOUT_SECS, DISPATCH_LIMIT, Engine, prepare
from jobs.queen.leader import Lease
from jobs.queen.resources import ResourceManager
from jobs.states import JOB_TERMINAL

log = logging.getLogger(__name__)
TERMINAL = {str(s) for s in JOB_TERMINAL}
# requests started per pass (dispatching goes on in between) and the look-up's fallback period
SCHEDULE_BATCH = 20
SCHEDULE_EVERY_SECS = 0.25
HEARTBEAT_READ_SECS = 0.1
RESPONSES_READ = 100  # answers read per pass at most
# READY tasks are looked for after anything that may have made one sendable, and otherwise this
# often (retry delays, tasks made READY by other processes)
DISPATCH_EVERY_SECS = 0.1


def share_one_process() -> None:
    """Tune the interpreter for a queen, an ant and a web server as threads of one process
    (``manage.py standalone``): a thread back from I/O (a web request's database round trip, an
    ant's finished task) gets the GIL from a busy thread within 0.5 ms instead of Python's
    default 5 ms, which otherwise dominates every short step."""
    sys.setswitchinterval(0.0005)


def default_queen_id() -> str:
    return f"queen-{socket.gethostname()}"


class Queen:
    def __init__(
        self,
        transport: Transport,
        *,
        queen_id: str | None = None,
        ant_timeout_secs: float = 15.0,
        block_ms: int = 50,
        housekeeping_secs: float = 1.0,
        ack_timeout_secs: float = ACK_TIMEOUT_SECS,
        lease_ttl_secs: float = 6.0,
    ) -> None:
        self.transport = transport
        self.queen_id = queen_id or default_queen_id()
        self.ant_timeout_secs = ant_timeout_secs
        self.block_ms = block_ms
        self.housekeeping_secs = housekeeping_secs
        self.resources = ResourceManager(
            ant_timeout_secs=ant_timeout_secs,
            prefetch=settings.FORMICARY_QUEEN_PREFETCH,
            prefetch_secs=settings.FORMICARY_QUEEN_PREFETCH_SECS,
        )
        self.engine = Engine(transport, self.resources, ack_timeout_secs=ack_timeout_secs)
        self.lease = Lease(self.queen_id, ttl_secs=lease_ttl_secs)
        self.cron = CronScheduler()
        self.is_leader = False
        self.stopping = threading.Event()
        self._last_housekeeping = 0.0
        self._last_lease = 0.0
        self._last_cron = 0.0
        self._last_schedule = 0.0
        self._last_heartbeats = 0.0
        self._last_dispatch = 0.0
        self._wakes_seen = 0
        self._dispatch_wanted = True
        # set when something may have become startable: a submit in this process, a job that
        # ended while a job type was at its max_concurrency, a pass that hit its limit
        self._schedule_wanted = True
        self._unsubscribe = events.subscribe(self._on_event)

    def _on_event(self, kind: str, payload: dict) -> None:
        if kind == "request_submitted":
            self._schedule_wanted = True
            self.transport.wake()
        elif kind == "job_state" and payload.get("job_state") in TERMINAL and self.engine.types_at_limit():
            self._schedule_wanted = True

    # -- steps --------------------------------------------------------------------------------------

    def heartbeats(self) -> int:
        """Ants heartbeat every few seconds: reading them on every pass was a Redis round trip per
        pass for nothing, so a busy queen reads them every HEARTBEAT_READ_SECS."""
        now = time.monotonic()
        if now - self._last_heartbeats < HEARTBEAT_READ_SECS:
            return 0
        self._last_heartbeats = now
        regs = self.transport.read_registrations(block_ms=0)
        for reg in regs:
            self.resources.heard(reg)
        self._recover_restarted()
        self._dispatch_wanted |= bool(regs)  # an ant may have come or freed room
        self.resources.persist()  # the rows, in one batch every few seconds
        return len(regs)

    def _recover_restarted(self) -> None:
        """Attempts sent to an earlier process of a restarted ant go back to READY at once."""
        pending = self.resources.unrecovered()
        if pending:
            self.engine.recover_restarted_ants(pending)

    def responses(self, block_ms: int = 0) -> int:
        deliveries = self.transport.read_responses(self.queen_id, block_ms=block_ms, count=RESPONSES_READ)
        # a short task's EXECUTING and final answers often arrive together: the final one is enough
        finished = {d.message.key for d in deliveries if d.message.status != STATUS_EXECUTING}
        done, todo = [], []
        for delivery in deliveries:
            if delivery.message.status == STATUS_EXECUTING and delivery.message.key in finished:
                done.append(delivery.id)
            else:
                todo.append(delivery)
        results = self.engine.apply_responses([d.message for d in todo])
        # one that failed is left unacked: this queen (or another) claims it again later
        done += [d.id for d, result in zip(todo, results, strict=True) if result is not None]
        if done:
            self.transport.ack_responses(done)
        self._dispatch_wanted |= bool(deliveries)
        return len(deliveries)

    def dispatching(self) -> int:
        """Send the READY tasks that can go. Looking costs a query, and most passes of a busy
        queen come right after one that changed nothing: it looks after answers, starts,
        heartbeats or housekeeping, and otherwise every DISPATCH_EVERY_SECS. A wake is not a
        reason: it says a request was submitted, and a submitted request has no task yet (the
        look before its start was a query for nothing on every submit)."""
        now = time.monotonic()
        if not (self._dispatch_wanted or now - self._last_dispatch >= DISPATCH_EVERY_SECS):
            return 0
        self._dispatch_wanted, self._last_dispatch = False, now
        sent = self.engine.dispatch_ready()
        self._dispatch_wanted = sent >= DISPATCH_LIMIT  # more may be waiting
        return sent

    def leadership(self) -> None:
        """Take or renew the scheduler lease (a third of its lifetime between tries)."""
        now = time.monotonic()
        if now - self._last_lease >= self.lease.ttl.total_seconds() / 3 or not self.lease.is_held():
            self._last_lease = now
            was_leader = self.is_leader
            self.is_leader = self.lease.try_acquire()
            if self.is_leader != was_leader:
                log.info(
                    "queen %s %s the scheduler",
                    self.queen_id,
                    "now leads" if self.is_leader else "stopped leading",
                )

    def scheduling(self) -> int:
        """Only the leader starts requests (and fires cron ticks and resumes paused jobs, in
        ``timers``).

        Looking for startable requests costs two queries, so a pass does it only when something
        may have changed, and otherwise a few times a second (retry delays, scheduled times)."""
        if not self.is_leader:
            return 0
        now = time.monotonic()
        done = 0
        wakes = self.transport.wakes_read
        if (
            self._schedule_wanted
            or wakes != self._wakes_seen
            or now - self._last_schedule >= SCHEDULE_EVERY_SECS
        ):
            self._schedule_wanted, self._wakes_seen, self._last_schedule = False, wakes, now
            done = self.engine.schedule(limit=SCHEDULE_BATCH)
            if done >= SCHEDULE_BATCH:
                self._schedule_wanted = True  # more may be waiting
        return done

    def _start_asked(self) -> bool:
        """A submit in this process or a wake from another asked this leader to schedule."""
        return self.is_leader and (self._schedule_wanted or self.transport.wakes_read != self._wakes_seen)

    def timers(self) -> int:
        """The leader fires cron ticks and resumes paused jobs whose time has come, twice a
        second (after the dispatch of what a pass started: a start does not wait for them)."""
        now = time.monotonic()
        if not self.is_leader or now - self._last_cron < 0.5:
            return 0
        self._last_cron = now
        return self.cron.run_once() + self.engine.resume_due()

    def housekeeping(self) -> int:
        now = time.monotonic()
        if now - self._last_housekeeping < self.housekeeping_secs:
            return 0
        self._last_housekeeping = now
        # another queen may have applied the answers to tasks this queen sent: room on ants is
        # what the database says is running, not what this queen remembers
        self._recover_restarted()  # again, when it failed at the heartbeat
        # answers read earlier that failed to apply go first: the checks below must not take a
        # task whose answer is here for a lost one
        done = 0
        for delivery in self.transport.claim_stale_responses(self.queen_id, min_idle_ms=10_000):
            self.engine.apply_response(delivery.message)
            self.transport.ack_response(delivery.id)
            done += 1
        self.engine.sync_reservations()
        done += self.engine.recover_lost_tasks(self.ant_timeout_secs)
        done += self.engine.check_timeouts()
        done += self.engine.check_awaits()
        done += self.engine.check_approval_deadlines()
        leases.release_ended()  # leases of tasks that ended (jobs/queen/leases.py)
        return done

    def run_once(self, block_ms: int = 0) -> int:
        self.leadership()
        done = self.heartbeats()
        answers = self.responses(block_ms=0)
        done += answers
        # answers free room on ants: the next tasks go before anything else is looked at; a
        # periodic look alone waits for the start a submit asked for (it looks after it anyway)
        deferred = self._start_asked() and not self._dispatch_wanted
        if not deferred:
            done += self.dispatching()
        started = self.scheduling()
        self._dispatch_wanted |= bool(started)
        if deferred or (started and not answers and not self.resources.all_full()):
            # the first tasks of the requests just started go now, before timers, housekeeping
            # and the next read of answers (what a submit waits for on an idle queen); a busy
            # queen keeps its order: they go with the next answers, in the pass those make anyway
            done += self.dispatching()
        kept = self.timers() + self.housekeeping()
        self._dispatch_wanted |= bool(kept)
        done += started + kept
        if not done and block_ms:
            done += self.responses(block_ms=block_ms)
        return done

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Pick up where a previous run of this queen left off."""
        prepare(max(DISPATCH_LIMIT, RESPONSES_READ))
        for reg in self.transport.ant_registrations(max_age_secs=self.ant_timeout_secs).values():
            self.resources.heard(reg)
        self.resources.persist(force=True)
        self._recover_restarted()  # ants that restarted while no queen listened
        self.engine.sync_reservations()
        # responses this queen id read before it died and never acked
        for delivery in self.transport.claim_stale_responses(self.queen_id, min_idle_ms=0):
            if delivery.id:
                try:
                    self.engine.apply_response(delivery.message)
                finally:
                    self.transport.ack_response(delivery.id)

    def run_forever(self) -> None:
        log.info("queen %s starting (pid %s)", self.queen_id, os.getpid())
        self.start()
        while not self.stopping.is_set():
            try:
                self.run_once(block_ms=self.block_ms)
            except Exception:
                log.exception("queen step failed")
                close_old_connections()
                time.sleep(0.5)
        if self.is_leader:
            self.lease.release()  # hand over at once instead of after the lease expires
        try:
            self.resources.persist(force=True)  # the last heartbeats heard (an ant's goodbye)
        except Exception:
            log.exception("persisting the ants failed")
        self.engine.renders.close()
        connections.close_all()  # this thread's connections: a stopped queen holds none
        log.info("queen %s stopped", self.queen_id)

    def stop(self) -> None:
        self.stopping.set()
        self._unsubscribe()
        self.transport.wake()
