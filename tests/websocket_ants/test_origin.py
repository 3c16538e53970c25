"""A websocket handshake from another site's page is not authenticated by the session cookie
(issue 14, finding 8: ``/ws/ants`` accepted ``Origin: http://evil.example`` with a session)."""

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing.websocket import WebsocketCommunicator
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def transport(settings, in_process_transport):  # type: ignore[no-untyped-def]
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def session_cookie(member: Any) -> bytes:
    client = Client()
    client.force_login(member.user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


def connects(path: str, headers: list[tuple[bytes, bytes]]) -> bool:
    from formicary_site.asgi import application

    async def go() -> bool:
        comm = WebsocketCommunicator(application, path, headers=[(b"host", b"formicary.test:7777"), *headers])
        connected, _ = await comm.connect()
        if connected:
            await comm.disconnect()
        return connected

    return async_to_sync(go)()


def test_session_from_a_foreign_origin_is_refused(alice):
    cookie = session_cookie(alice)
    assert not connects("/ws/ants", [(b"origin", b"http://evil.example"), (b"cookie", cookie)])
    assert not connects("/ws/ants", [(b"origin", b"http://formicary.test:7778"), (b"cookie", cookie)])


def test_session_from_the_servers_own_origin_works(alice):
    cookie = session_cookie(alice)
    assert connects("/ws/ants", [(b"origin", b"http://formicary.test:7777"), (b"cookie", cookie)])


def test_session_from_a_trusted_origin_works(alice, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://ui.example"]
    cookie = session_cookie(alice)
    assert connects("/ws/ants", [(b"origin", b"https://ui.example"), (b"cookie", cookie)])


def test_token_authenticated_ants_work_with_or_without_origin(alice):
    bearer = (b"authorization", f"Bearer {alice.token}".encode())
    assert connects("/ws/ants", [bearer])
    assert connects("/ws/ants", [bearer, (b"origin", b"http://evil.example")])
    assert connects(f"/ws/ants?token={alice.token}", [(b"origin", b"http://evil.example")])


def test_job_events_from_a_foreign_origin_are_refused(alice):
    from jobs.services.definitions import definition_upload
    from jobs.services.requests import request_submit

    definition_upload(org_id=alice.org_id, user=alice.user,
                      text="job_type: j\ntasks:\n- task_type: t\n  method: SHELL\n  script: [echo]\n")  # fmt: skip
    request = request_submit(org_id=alice.org_id, user=alice.user, job_type="j", params={})
    cookie = session_cookie(alice)
    path = f"/ws/jobs/requests/{request.pk}/events"
    assert connects(path, [(b"origin", b"http://formicary.test:7777"), (b"cookie", cookie)])
    assert not connects(path, [(b"origin", b"http://evil.example"), (b"cookie", cookie)])
