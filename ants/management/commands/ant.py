"""``manage.py ant``: a worker that needs only Redis (it reads no database)."""

import logging
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ants import reaper
from ants.artifact_hooks import install_artifact_hooks
from ants.artifact_store import config_from_settings, store_from_config
from ants.config import AntConfig, ConfigError
from ants.containers import install_container_handlers
from ants.messaging import transport_from_settings
from ants.messaging.sealing import DERIVED_KEY_PREFIX
from ants.worker import AntWorker


class Command(BaseCommand):
    help = (
        "Run an ant worker: it registers with the queens over Redis, runs up to --concurrency tasks "
        "at once and reports back. Settings come from --config (YAML), FORMICARY_ANT_* environment "
        "variables, then these options. SIGTERM stops it taking work; in-flight tasks finish first. "
        "Every setting (YAML keys, FORMICARY_ANT_* variables such as FORMICARY_ANT_DOCKER_HOST or "
        "FORMICARY_ANT_KUBERNETES_NAMESPACE, an example file) is listed in docs/ants.md."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--id", dest="ant_id", help="ant id (default: ant-<hostname>)")
        parser.add_argument(
            "--tags", nargs="*", help="tags this ant serves; tasks with tags go only to ants having them"
        )
        parser.add_argument("--methods", nargs="*", help="methods it runs, e.g. SHELL HTTP_GET DOCKER")
        parser.add_argument("--concurrency", type=int, help="tasks run at once")
        parser.add_argument("--config", help="YAML settings file")
        parser.add_argument("--heartbeat-secs", type=float, dest="heartbeat_secs")
        parser.add_argument("--work-root", dest="work_root", help="where task working directories go")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        logging.getLogger().setLevel(logging.INFO)
        try:
            config = AntConfig.from_yaml(opts["config"]) if opts["config"] else AntConfig.from_env()
            overrides = {k: opts[k] for k in ("ant_id", "tags", "methods", "concurrency", "heartbeat_secs",
                                              "work_root") if opts.get(k) is not None}  # fmt: skip
            config = config.with_overrides(**overrides)
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
        if not (config.redis_url or settings.REDIS_URL):
            raise CommandError("an ant needs Redis: set REDIS_URL (or use 'manage.py standalone')")
        # FORMICARY_ANT_PREFIX (config.prefix) wins; else the deployment's FORMICARY_REDIS_PREFIX
        prefix = config.prefix if os.environ.get("FORMICARY_ANT_PREFIX") else None
        # FORMICARY_MESSAGE_KEY: the deployment secret or this ant's own key (manage.py message_key)
        key = settings.FORMICARY_MESSAGE_KEY
        if key.startswith(DERIVED_KEY_PREFIX) and not key.startswith(f"{DERIVED_KEY_PREFIX}{config.ant_id}:"):
            raise CommandError(f"FORMICARY_MESSAGE_KEY is the key of another ant, not of {config.ant_id}")
        transport = transport_from_settings(settings, url=config.redis_url, prefix=prefix)
        self.stdout.write(f"ant {config.ant_id}: methods {' '.join(config.methods)}, tags {' '.join(config.tags)}, "
                          f"concurrency {config.concurrency}")  # fmt: skip
        reaper.enable()  # orphans of tasks come here and are waited for (often PID 1 of a container)
        try:
            worker = AntWorker(config, transport)
            # the object store from FORMICARY_S3_* (or the local data folder), as the web server uses
            install_artifact_hooks(worker, store_from_config(config_from_settings(settings)))
            install_container_handlers(worker)  # LIST/TERMINATE_CONTAINER; heartbeats list containers
            worker.run_forever()
        finally:
            transport.close()
