"""`/api/metrics` in the distributed shape: a queen, an ant, a `celery worker` and the web server
(uvicorn) are separate processes sharing one PROMETHEUS_MULTIPROC_DIR. The queen counts the
finished tasks, the Celery worker the failed webhook calls; one scrape of the web server shows
both (and the ant's capacity, from its heartbeats), parsed by prometheus_client's parser."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from ants.messaging import transport_from_url
from jobs.services.requests import request_submit
from tests.conftest import free_port, upload
from tests.engine.conftest import ROOT, Processes
from tests.engine.harness import wait_for_state
from tests.events.conftest import eventually

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (hrun starts Redis)")

DEFINITION = """\
job_type: counted-{tag}
tasks:
- task_type: one
  method: SHELL
  tags: [shared]
  script: ["echo one"]
  on_completed: two
- task_type: two
  method: SHELL
  tags: [shared]
  script: ["echo two"]
  webhook: {{url: "{hook}/task"}}
"""


def scrape(base: str, token: str) -> dict[str, dict[tuple, float]]:  # type: ignore[type-arg]
    text = requests.get(f"{base}/api/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10).text
    return {
        f.name: {tuple(sorted(s.labels.items())) + (s.name,): s.value for s in f.samples}
        for f in text_string_to_metric_families(text)
    }


def value(found: dict, family: str, sample: str, **labels: str) -> float:  # type: ignore[type-arg]
    return found.get(family, {}).get((*sorted(labels.items()), sample), 0.0)


def test_one_scrape_sums_the_counters_of_the_queen_and_the_celery_worker(
    api, alice, tmp_path, http_sink, transactional_db, use_transport
):  # type: ignore[no-untyped-def]
    tag, token, port = uuid.uuid4().hex[:8], uuid.uuid4().hex, free_port()
    prom = tmp_path / "prom"
    prom.mkdir()
    http_sink.fail_first = 1000  # every webhook call fails: the Celery worker counts each
    processes = Processes(tmp_path)
    processes.env.update(
        PROMETHEUS_MULTIPROC_DIR=str(prom), FORMICARY_METRICS_TOKEN=token, FORMICARY_OUTBOUND_IN_PROCESS="false",
        FORMICARY_OUTBOUND_ATTEMPTS="2", FORMICARY_OUTBOUND_RETRY_SECS="0.2",
    )  # fmt: skip
    use_transport(transport_from_url(os.environ["REDIS_URL"], prefix=processes.prefix))
    celery = [sys.executable, "-m", "celery", "-A", "formicary_site.celery", "worker", "--pool=solo", "-l", "info",
              "--without-mingle", "--without-gossip", "--without-heartbeat"]  # fmt: skip
    web = [sys.executable, "-m", "uvicorn", "formicary_site.asgi:application", "--port", str(port),
           "--log-level", "warning", "--lifespan", "off"]  # fmt: skip
    try:
        queen = processes.start_queen()
        processes.start_ant("ant-a", ["shared"])
        worker = _spawn(processes, "celery", celery)
        _spawn(processes, "web", web)
        processes.wait_ready(["queen", "ant-a"])
        assert upload(api, DEFINITION.format(tag=tag, hook=http_sink.url)).status_code == 201
        for _ in range(2):
            request = request_submit(org_id=alice.org_id, user=alice.user, job_type=f"counted-{tag}")
            assert wait_for_state(request.pk, timeout=90).job_state == "COMPLETED", processes.logs()
        base = f"http://127.0.0.1:{port}"

        def all_counted() -> dict | None:  # type: ignore[type-arg]
            try:
                found = scrape(base, token)
            except (requests.RequestException, ValueError):
                return None  # the web server is still starting
            tasks = value(found, "formicary_tasks_finished", "formicary_tasks_finished_total",
                          method="SHELL", state="COMPLETED")  # fmt: skip
            hooks = value(
                found, "formicary_webhook_failures", "formicary_webhook_failures_total", level="task"
            )
            return found if tasks >= 4 and hooks >= 4 else None  # 2 runs x 2 tasks; 2 webhooks x 2 attempts

        found = eventually(all_counted, timeout=120)
        assert value(found, "formicary_ant_capacity", "formicary_ant_capacity", ant_id="ant-a") == 2
        durations = value(found, "formicary_task_duration_seconds", "formicary_task_duration_seconds_count",
                          method="SHELL")  # fmt: skip
        assert durations >= 4
        # the counts come from the files of two other processes: the queen's and the worker's
        writers = {int(p.stem.rsplit("_", 1)[1]) for p in prom.glob("counter_*.db")}
        assert {queen.pid, worker.pid} <= writers, (writers, processes.logs())
        assert requests.get(f"{base}/api/metrics", timeout=10).status_code == 401  # the token is still needed
    finally:
        processes.stop()


def _spawn(processes: Processes, name: str, args: list[str]) -> subprocess.Popen:
    log = open(processes.tmp / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(args, env=processes.env, stdout=log, stderr=subprocess.STDOUT, cwd=Path(ROOT))
    processes.procs[name] = proc
    return proc
