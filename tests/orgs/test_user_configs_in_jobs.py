"""A job's tasks see the submitting user's configs over the organization's, on the batched
dispatch path too (where a request without any configs skips loading them)."""

import pytest

from ants.messaging import InProcessTransport
from ants.protocol import AntRegistration
from jobs.queen.engine import Engine
from jobs.queen.resources import ResourceManager
from jobs.services.definitions import definition_upload
from jobs.services.requests import request_submit
from orgs import services
from orgs.models import OrgConfig, UserConfig

pytestmark = pytest.mark.django_db(transaction=True)

TEMPLATED = """\
job_type: u-templated
max_concurrency: 100
tasks:
- task_type: one
  method: SHELL
  script: ["echo {{.Target}}"]
"""


def test_dispatched_task_gets_the_submitters_config(alice):  # type: ignore[no-untyped-def]
    definition_upload(org_id=alice.org_id, user=alice.user, text=TEMPLATED)
    resources = ResourceManager()
    resources.heard(AntRegistration(ant_id="ant-u", max_capacity=10, methods=["SHELL"]))
    engine = Engine(InProcessTransport(), resources)
    carol = services.user_ensure(username="carol", org_name="acme", create=True)
    services.config_save(UserConfig(user=alice.user, organization_id=alice.org_id), name="Target", value="alice-box",
                         secret=False)  # fmt: skip
    ours = request_submit(org_id=alice.org_id, user=alice.user, job_type="u-templated", params={})
    assert engine.schedule() == 1  # sent to the ant with its start
    # carol has no config of her own: she gets the organization's
    services.config_save(
        OrgConfig(organization_id=alice.org_id), name="Target", value="org-box", secret=False
    )
    theirs = request_submit(org_id=alice.org_id, user=carol, job_type="u-templated", params={})
    assert engine.schedule() == 1  # sent to the ant with its start
    sent = {d.message.job_request_id: d.message for d in engine.transport.read_tasks("ant-u", "c", 0, 10)}
    assert sent[ours.pk].spec["script"] == ["echo alice-box"]
    assert sent[theirs.pk].spec["script"] == ["echo org-box"]
