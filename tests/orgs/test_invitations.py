"""Invitations by email through a real SMTP server: the mail arrives with a signed link that joins
the organization with the invited role, once, before it expires, never beyond the inviter's role."""

import re
from datetime import timedelta

import pytest
from django.core import signing
from django.test import Client
from django.utils import timezone

from orgs import invitations, roles, services
from orgs.models import AuditRecord, Invitation, User

pytestmark = pytest.mark.django_db


def _link(message) -> str:  # type: ignore[no-untyped-def]
    body = message.get_body(preferencelist=("plain",)).get_content()
    found = re.search(r"https?://\S+/orgs/invitations/(\S+)", body)
    assert found, body
    return "/orgs/invitations/" + found.group(1)


def _invite(api, org_id: int, email: str, role: str):  # type: ignore[no-untyped-def]
    return api.post(f"/api/orgs/{org_id}/invite", {"email": email, "role": role}, format="json")


def test_invite_mail_link_sign_up_joins_with_the_role(api, alice, smtp_server):  # type: ignore[no-untyped-def]
    resp = _invite(api, alice.org_id, "carol@example.com", "admin")
    assert resp.status_code == 201, resp.content
    assert resp.json()["role"] == "admin" and "code" not in resp.json()
    message = smtp_server.wait_for("carol@example.com")
    assert "acme" in message["Subject"]
    link = _link(message)

    visitor = Client()
    page = visitor.get(link)
    assert page.status_code == 200 and "as <strong>admin</strong>" in page.content.decode()
    resp = visitor.post(link, {"username": "carol", "password": "a-long-pass-phrase"})
    assert resp.status_code == 302, resp.content.decode()[:500]
    carol = User.objects.get(username="carol")
    assert (carol.organization_id, carol.role, carol.email) == (alice.org_id, "admin", "carol@example.com")
    assert visitor.get("/account/members").status_code == 200  # signed in, a member now

    # used once: a second visitor is refused
    again = Client().post(link, {"username": "mallory", "password": "a-long-pass-phrase"})
    assert again.status_code == 400 and "already been used" in again.content.decode()
    assert not User.objects.filter(username="mallory").exists()

    actions = set(AuditRecord.objects.filter(organization_id=alice.org_id).values_list("action", flat=True))
    assert {"Invitation:Create", "Invitation:Accept"} <= actions


def test_a_signed_in_user_without_an_organization_accepts(api, alice, smtp_server):  # type: ignore[no-untyped-def]
    assert _invite(api, alice.org_id, "dave@example.com", "viewer").status_code == 201
    link = _link(smtp_server.wait_for("dave@example.com"))
    dave = User.objects.create_user(username="dave", password="pw-dave-12345")
    client = Client()
    client.force_login(dave)
    assert client.post(link).status_code == 302
    dave.refresh_from_db()
    assert (dave.organization_id, dave.role) == (alice.org_id, "viewer")


def test_an_expired_link_is_refused(api, alice, smtp_server):  # type: ignore[no-untyped-def]
    assert _invite(api, alice.org_id, "late@example.com", "member").status_code == 201
    link = _link(smtp_server.wait_for("late@example.com"))
    Invitation.objects.filter(email="late@example.com").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    resp = Client().post(link, {"username": "late", "password": "a-long-pass-phrase"})
    assert resp.status_code == 400 and "expired" in resp.content.decode()
    assert not User.objects.filter(username="late").exists()


def test_no_escalation_no_other_org_no_forged_link(api, bob_api, alice, bob, smtp_server):  # type: ignore[no-untyped-def]
    admin = services.user_ensure(username="acme-admin", org_name="acme", create=True, role="admin")
    admin_api = type(api)()
    admin_api.credentials(HTTP_AUTHORIZATION=f"Bearer {services.token_issue(user=admin).plain}")
    # an admin invites up to admin, never an owner
    refused = _invite(admin_api, alice.org_id, "boss@example.com", "owner")
    assert refused.status_code == 403 and "cannot invite a owner" in refused.json()["error"]
    assert _invite(admin_api, alice.org_id, "peer@example.com", "admin").status_code == 201
    # a viewer and a member cannot invite at all
    viewer = services.user_ensure(username="acme-viewer", org_name="acme", create=True, role="viewer")
    viewer_api = type(api)()
    viewer_api.credentials(HTTP_AUTHORIZATION=f"Bearer {services.token_issue(user=viewer).plain}")
    assert _invite(viewer_api, alice.org_id, "x@example.com", "viewer").status_code == 403
    # another organization is a 404; a bad role or email a 400 naming the field
    assert _invite(api, bob.org_id, "x@example.com", "viewer").status_code == 404
    assert _invite(api, alice.org_id, "x@example.com", "king").json()["error"].startswith("role:")
    assert _invite(api, alice.org_id, "not-an-email", "viewer").json()["error"].startswith("email:")
    assert not Invitation.objects.filter(email__in=["boss@example.com", "x@example.com"]).exists()

    # a link whose organization or role was changed does not verify
    link = _link(smtp_server.wait_for("peer@example.com"))
    token = link.rsplit("/", 1)[1]
    payload = signing.loads(token, salt=invitations.SALT)
    for forged in (
        dict(payload, r=roles.OWNER),  # signed with another key: the site's is secret
        dict(payload, o=bob.org_id),
    ):
        fake = signing.dumps(forged, key="not-the-site-key", salt=invitations.SALT, compress=True)
        resp = Client().post(
            f"/orgs/invitations/{fake}", {"username": "eve", "password": "a-long-pass-phrase"}
        )
        assert resp.status_code == 400 and "not valid" in resp.content.decode()
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert Client().get(f"/orgs/invitations/{tampered}").status_code == 400
    # a genuine signature that disagrees with the row (its role changed since) is refused too
    Invitation.objects.filter(email="peer@example.com").update(role="viewer")
    assert "not valid" in Client().get(link).content.decode()
    assert not User.objects.filter(username="eve").exists()


def test_a_user_of_another_organization_cannot_accept(api, alice, bob, smtp_server):  # type: ignore[no-untyped-def]
    assert _invite(api, alice.org_id, "bob@example.com", "member").status_code == 201
    link = _link(smtp_server.wait_for("bob@example.com"))
    client = Client()
    client.force_login(bob.user)
    resp = client.post(link)
    assert resp.status_code == 400 and "already belong" in resp.content.decode()
    bob.user.refresh_from_db()
    assert bob.user.organization_id == bob.org_id


def test_the_mail_server_down_is_a_503_and_no_invitation(api, alice, settings):  # type: ignore[no-untyped-def]
    from tests.conftest import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens
    resp = _invite(api, alice.org_id, "nobody@example.com", "member")
    assert resp.status_code == 503 and "could not be sent" in resp.json()["error"]
    assert not Invitation.objects.filter(email="nobody@example.com").exists()


def test_the_members_page_invites_with_a_role_and_changes_roles(alice, smtp_server):  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(alice.user)
    resp = client.post("/account/invite", {"email": "fay@example.com", "role": "viewer"})
    assert resp.status_code == 302
    assert Invitation.objects.get(email="fay@example.com").role == "viewer"
    assert "/orgs/invitations/" in _link(smtp_server.wait_for("fay@example.com"))
    gus = User.objects.create_user(username="gus", organization_id=alice.org_id, role="member")
    assert client.post(f"/account/members/{gus.pk}/role", {"role": "admin"}).status_code == 302
    gus.refresh_from_db()
    assert gus.role == "admin"
    # nobody changes their own role; an admin cannot make an owner
    assert client.post(f"/account/members/{alice.user.pk}/role", {"role": "viewer"}).status_code == 403
    gus_client = Client()
    gus_client.force_login(gus)
    assert gus_client.post(f"/account/members/{alice.user.pk}/role", {"role": "viewer"}).status_code == 403
    assert gus_client.post("/account/invite", {"email": "h@example.com", "role": "owner"}).status_code == 403
    record = AuditRecord.objects.get(action="User:Role")
    assert (record.username, record.object_id, record.data) == (
        "alice",
        str(gus.pk),
        {"from": "member", "to": "admin"},
    )


def test_the_admin_cannot_mint_an_invitation(alice):  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import Permission

    # the admin would skip the role check and the mail: invitations are seen there, not made
    alice.user.user_permissions.add(*Permission.objects.filter(codename__endswith="_invitation"))
    client = Client()
    client.force_login(alice.user)
    assert client.get("/admin/orgs/invitation/").status_code == 200
    assert client.get("/admin/orgs/invitation/add/").status_code == 403
