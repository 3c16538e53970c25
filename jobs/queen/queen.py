"""The queen's loop: small steps, each doing one unit of work and saying how much it did.

It blocks on the response stream when idle, so an ant's answer or a submitted request (in the
same process) wakes it at once instead of a polling sleep.
"""

import logging
import os
import socket
import threading
import time

from django.db import close_old_connections

from ants.messaging.base import Transport
from jobs.queen import events
from jobs.queen.engine import Engine
from jobs.queen.resources import ResourceManager

log = logging.getLogger(__name__)


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
        ack_timeout_secs: float = 60.0,
    ) -> None:
        self.transport = transport
        self.queen_id = queen_id or default_queen_id()
        self.ant_timeout_secs = ant_timeout_secs
        self.block_ms = block_ms
        self.housekeeping_secs = housekeeping_secs
        self.resources = ResourceManager(ant_timeout_secs=ant_timeout_secs)
        self.engine = Engine(transport, self.resources, ack_timeout_secs=ack_timeout_secs)
        self.stopping = threading.Event()
        self._last_housekeeping = 0.0
        self._unsubscribe = events.subscribe(self._on_event)

    def _on_event(self, kind: str, payload: dict) -> None:
        if kind == "request_submitted":
            self.transport.wake()

    # -- steps --------------------------------------------------------------------------------------

    def heartbeats(self) -> int:
        regs = self.transport.read_registrations(block_ms=0)
        for reg in regs:
            self.resources.heard(reg)
        return len(regs)

    def responses(self, block_ms: int = 0) -> int:
        deliveries = self.transport.read_responses(self.queen_id, block_ms=block_ms, count=100)
        for delivery in deliveries:
            try:
                self.engine.apply_response(delivery.message)
            except Exception:
                # left unacked: this queen (or another) claims it again later
                log.exception("applying response %s failed", delivery.id)
                continue
            self.transport.ack_response(delivery.id)
        return len(deliveries)

    def housekeeping(self) -> int:
        now = time.monotonic()
        if now - self._last_housekeeping < self.housekeeping_secs:
            return 0
        self._last_housekeeping = now
        done = self.engine.recover_lost_tasks(self.ant_timeout_secs)
        done += self.engine.check_timeouts()
        for delivery in self.transport.claim_stale_responses(self.queen_id, min_idle_ms=10_000):
            self.engine.apply_response(delivery.message)
            self.transport.ack_response(delivery.id)
            done += 1
        return done

    def run_once(self, block_ms: int = 0) -> int:
        done = self.heartbeats()
        done += self.responses(block_ms=0)
        done += self.engine.schedule()
        done += self.engine.dispatch_ready()
        done += self.housekeeping()
        if not done and block_ms:
            done += self.responses(block_ms=block_ms)
        return done

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Pick up where a previous run of this queen left off."""
        for reg in self.transport.ant_registrations(max_age_secs=self.ant_timeout_secs).values():
            self.resources.heard(reg)
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
        log.info("queen %s stopped", self.queen_id)

    def stop(self) -> None:
        self.stopping.set()
        self._unsubscribe()
        self.transport.wake()
