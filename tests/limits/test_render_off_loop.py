"""Heavy templates render off the queen's loop: another organization's jobs go on meanwhile
(issue 14, finding 6). No timing is asserted: the order of events is."""

import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor

from jobs.models import JobRequest
from jobs.queen.render_pool import FAST_STEPS, RenderPool
from tests.conftest import upload
from tests.engine.harness import wait_for_state

# about 6,000 steps: fine for the full budget, too much for the queen's loop
HEAVY = """\
job_type: heavy
tasks:
- task_type: t
  method: SHELL
  script:
    - echo {{range $i := Iterate 3000}}{{Add $i 1}}{{end}} | wc -c
"""
# as heavy as the request's N says: with N=100000 it passes no budget
HUGE = """\
job_type: huge
tasks:
- task_type: t
  method: SHELL
  script:
    - echo {{range $i := Iterate (.N | default 1)}}{{Add $i 1}}{{Add $i 2}}{{end}}
"""
LIGHT = """\
job_type: light
tasks:
- task_type: t
  method: SHELL
  script: ["true"]
"""


class GatedExecutor(ThreadPoolExecutor):
    """A render worker that starts nothing until the test opens the gate."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__(max_workers=1)
        self.gate = gate

    def submit(self, fn, /, *args, **kwargs) -> Future:  # type: ignore[no-untyped-def, override]
        def gated():  # type: ignore[no-untyped-def]
            self.gate.wait(60)
            return fn(*args, **kwargs)

        return super().submit(gated)


def _submit(client, job_type: str, **params) -> int:  # type: ignore[no-untyped-def]
    resp = client.post("/api/jobs/requests", {"job_type": job_type, "params": params}, format="json")
    assert resp.status_code == 201, resp.content
    return int(resp.json()["id"])


def test_another_orgs_light_job_completes_while_heavy_renders_wait_in_the_worker(standalone, api, bob_api):  # type: ignore[no-untyped-def]
    gate = threading.Event()
    executor: Executor = GatedExecutor(gate)
    # the queen has sent no render yet: swap in a pool whose worker waits for the gate
    renders = RenderPool(standalone.transport.wake, executor_factory=lambda: executor)
    standalone.queen.engine.parts.renders = renders
    try:
        assert upload(api, HEAVY).status_code == 201
        assert upload(bob_api, LIGHT).status_code == 201
        heavy = [_submit(api, "heavy") for _ in range(3)]
        light = _submit(bob_api, "light")
        done = wait_for_state(light)
        assert done.job_state == "COMPLETED", (done.error_code, done.error_message)
        # the heavy ones went to the worker and are still waiting there, not started
        assert renders.sent >= 3 and renders.pending() >= 1
        assert set(JobRequest.objects.filter(pk__in=heavy).values_list("job_state", flat=True)) == {"PENDING"}
        gate.set()
        for request_id in heavy:
            finished = wait_for_state(request_id)
            assert finished.job_state == "COMPLETED", (finished.error_code, finished.error_message)
    finally:
        gate.set()
        executor.shutdown(wait=False)


def test_a_render_over_the_budget_fails_its_job_naming_the_limit(standalone, api, bob_api):  # type: ignore[no-untyped-def]
    assert upload(api, HUGE).status_code == 201  # N is absent at upload: one iteration
    assert upload(bob_api, LIGHT).status_code == 201
    huge = _submit(api, "huge", N="100000")
    light = _submit(bob_api, "light")
    assert wait_for_state(light).job_state == "COMPLETED"
    failed = wait_for_state(huge, timeout=60)
    assert failed.job_state == "FAILED"
    # the step limit, or on a machine slowed down enough the render-time backstop
    assert "(limit max_steps)" in failed.error_message or "(limit max_render_secs)" in failed.error_message
    assert standalone.queen.engine.renders.sent >= 1  # rendered by the worker process, not the loop


def test_light_templates_render_in_the_loop() -> None:
    pool = RenderPool(
        lambda: None, executor_factory=lambda: (_ for _ in ()).throw(AssertionError("no worker"))
    )
    spec = pool.render(("start", 1, None), LIGHT.replace("true", "echo {{.X}}"), {"X": "y"})
    assert spec is not None and spec.tasks[0].script == ["echo y"]
    assert pool.sent == 0 and FAST_STEPS < 6000
