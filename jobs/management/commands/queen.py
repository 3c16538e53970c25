"""``manage.py queen``: scheduler and supervisors over PostgreSQL and Redis."""

import logging
import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs import fastsql
from jobs.domain.logs import LogWriter
from jobs.domain.messaging import get_transport
from jobs.queen.queen import Queen, default_queen_id


class Command(BaseCommand):
    help = (
        "Run a queen: it schedules pending job requests, sends tasks to ants, applies their results "
        "and stores their logs. Needs REDIS_URL and a database. SIGTERM stops it cleanly; a restarted "
        "queen resumes every job from the database."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument(
            "--id", dest="queen_id", default=None, help="queen id (default: queen-<hostname>)"
        )
        parser.add_argument("--ant-timeout", type=float, default=15.0,
                            help="seconds without a heartbeat before an ant is considered gone")  # fmt: skip

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        logging.getLogger().setLevel(logging.INFO)
        fastsql.for_queen()  # psycopg's parse cache widened in the queen process only
        if not settings.REDIS_URL:
            raise CommandError("a queen needs Redis: set REDIS_URL (or use 'manage.py standalone')")
        transport = get_transport()
        queen_id = opts["queen_id"] or default_queen_id()
        queen = Queen(transport, queen_id=queen_id, ant_timeout_secs=opts["ant_timeout"])
        writer = LogWriter(transport, consumer=queen_id)
        writer_thread = threading.Thread(target=writer.run_forever, name="log-writer", daemon=True)

        def on_signal(signum, frame):  # type: ignore[no-untyped-def]
            queen.stopping.set()
            writer.stop()
            threading.Thread(target=transport.wake, daemon=True).start()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        writer_thread.start()
        self.stdout.write(f"queen {queen_id} running")
        queen.run_forever()
        writer_thread.join(timeout=5)
        transport.close()
