"""``manage.py standalone``: the whole product in one process, nothing else to install."""

import logging
import os
import tempfile
import threading
from pathlib import Path

import uvicorn
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from ants import reaper
from ants.artifact_hooks import install_artifact_hooks
from ants.config import AntConfig
from ants.executors.base import executor_for
from ants.executors.isolation import closed_folder, task_user_possible
from ants.executors.shell import ShellExecutor
from ants.methods import DEFAULT_ANT_METHODS
from ants.worker import AntWorker
from artifacts.storage import ant_store
from formicary_site import data_folder
from jobs.domain.logs import LogWriter
from jobs.domain.messaging import get_transport
from jobs.queen.queen import Queen, share_one_process
from jobs.services.secrets import secrets_reencrypt

log = logging.getLogger(__name__)


def _sweep_expired_artifacts(stopping: threading.Event, every_secs: float = 3600.0) -> None:
    from django.db import connections

    from artifacts.services import artifacts_expire

    while not stopping.wait(every_secs):
        try:
            artifacts_expire()
        except Exception:
            log.exception("expiring artifacts failed")
    connections.close_all()


def _poll_triggers(stopping: threading.Event, every_secs: float = 5.0) -> None:
    """The Celery task jobs.triggers.tasks.poll_triggers, run in-process (no broker here)."""
    from django.db import connections

    from jobs.triggers.tasks import poll_triggers

    while not stopping.wait(every_secs):
        try:
            poll_triggers()
        except Exception:
            log.exception("polling triggers failed")
    connections.close_all()


def _single_organization() -> bool:
    """SHELL tasks run on the local ant while the install has one organization (docs/security.md)."""
    from orgs.models import Organization

    return Organization.objects.count() <= 1


def _work_root() -> Path:
    """``FORMICARY_ANT_WORK_ROOT``, else ``<data folder>/work``; a root process whose data folder
    sits where task users cannot enter (``/root/...``) uses a fresh folder under the temp dir."""
    if configured := os.environ.get("FORMICARY_ANT_WORK_ROOT"):
        return Path(configured)
    work = settings.DATA_DIR / data_folder.WORK_FOLDER
    if task_user_possible() and closed_folder(work) is not None:
        work = Path(tempfile.mkdtemp(prefix="formicary-work-"))  # a new name: nobody pre-made it
        os.chmod(work, 0o711)
        log.info("task folders go to %s: task users cannot enter %s", work, closed_folder(settings.DATA_DIR))
    return work


LOCAL_METHODS = [*DEFAULT_ANT_METHODS, "MESSAGING"]


def docker_reachable(timeout: float = 2.0) -> bool:
    """Whether a Docker engine answers a ping (DOCKER_HOST or the local socket) within ``timeout``."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no engine, no permission, no SDK: the local ant just offers no DOCKER
        return False


def local_ant_methods(*, docker: bool) -> list[str]:
    """The local ant's methods; DOCKER too when an engine is reachable (as the reference's embedded ant)."""
    return [*LOCAL_METHODS, "DOCKER"] if docker else list(LOCAL_METHODS)


class Command(BaseCommand):
    help = (
        "Run Formicary in one process: the web app and API (ASGI), the queen and a local ant "
        "(SHELL and HTTP methods, DOCKER when a Docker engine answers), on the configured database (SQLite by default) with in-process "
        "messaging. Migrates the database first."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=7777)
        parser.add_argument("--concurrency", type=int, default=4, help="tasks the local ant runs at once")
        parser.add_argument("--no-ant", action="store_true", help="run no local ant (external ants only)")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        logging.getLogger().setLevel(logging.INFO)
        # the settings found or generated the keys (secret_key, encryption_key in the data folder)
        try:
            data_folder.protect(settings.DATA_DIR)
        except OSError as exc:
            log.warning("cannot make the data folder private: %s", exc)
        call_command("migrate", interactive=False, verbosity=0)
        # rows still under a key of an earlier version move to the current key (docs/security.md)
        try:
            reencrypted = sum(secrets_reencrypt(only_stale=True).values())
            if reencrypted:
                log.info("re-encrypted %d secrets with the current key", reencrypted)
        except ValueError as exc:
            log.warning("secrets not re-encrypted: %s (set FORMICARY_ENCRYPTION_KEYS_OLD)", exc)
        if "FORMICARY_DEFAULT_METHOD" not in os.environ:
            settings.FORMICARY_DEFAULT_METHOD = "SHELL"  # the local ant runs tasks that name no method
        share_one_process()
        transport = get_transport()
        queen = Queen(transport, queen_id="queen-standalone")
        writer = LogWriter(transport, consumer="queen-standalone")
        stopping = threading.Event()
        threads = [
            threading.Thread(target=queen.run_forever, name="queen", daemon=True),
            threading.Thread(target=writer.run_forever, name="log-writer", daemon=True),
            # what celery beat does in the distributed deployment
            threading.Thread(target=_sweep_expired_artifacts, args=(stopping,), name="expiry", daemon=True),
            threading.Thread(target=_poll_triggers, args=(stopping,), name="triggers", daemon=True),
        ]
        ant = None
        if not opts["no_ant"]:
            config = AntConfig(
                ant_id="ant-standalone", concurrency=opts["concurrency"], tags=[],
                methods=local_ant_methods(docker=docker_reachable()),
                work_root=_work_root(),
            )  # fmt: skip
            reaper.enable()  # orphans of tasks come to this process and are waited for
            shell = ShellExecutor(config, single_tenant=_single_organization)
            ant = AntWorker(config, transport,
                            executor_lookup=lambda method, cfg: shell if method == "SHELL" else executor_for(method, cfg))  # fmt: skip
            install_artifact_hooks(ant, ant_store())
            threads.append(threading.Thread(target=ant.run_forever, name="ant", daemon=True))
        for thread in threads:
            thread.start()
        self.stdout.write(
            f"Formicary standalone on http://{opts['host']}:{opts['port']}/ (API docs at /api/docs/)"
        )
        try:
            uvicorn.run("formicary_site.asgi:application", host=opts["host"], port=opts["port"], log_level="warning",
                        lifespan="off")  # fmt: skip
        finally:
            stopping.set()
            queen.stop()
            writer.stop()
            if ant is not None:
                ant.stop()
            for thread in threads:
                thread.join(timeout=30)
            transport.close()
