# ruff: noqa: F811  (the browser fixtures are imported, then named as test arguments)
"""The members, invitations, tokens and audit pages in Chromium, against the real ASGI server;
invitation mail goes through a real SMTP server process."""

import re

import pytest

from orgs import roles, services
from orgs.models import ApiToken, AuditRecord, User
from tests.ui.browser_kit import chromium, open_page  # noqa: F401
from tests.ui.test_browser import asgi_server  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_members_page_changes_a_role_and_an_invitation_mail_is_accepted(
    chromium, asgi_server, alice, smtp_server
):  # type: ignore[no-untyped-def]
    mia = User.objects.create_user(username="mia", organization_id=alice.org_id, role=roles.MEMBER)
    page = open_page(chromium, asgi_server, alice.user)
    page.goto("/account/members")
    assert page.locator("#members tr[data-member=alice]").count() == 1
    row = page.locator("#members tr[data-member=mia]")
    row.locator("select").select_option("admin")
    row.get_by_role("button", name="Change role").click()
    page.wait_for_selector(".msg >> text=mia is now admin")
    mia.refresh_from_db()
    assert mia.role == "admin"
    # one's own role is not offered for change
    assert page.locator("#members tr[data-member=alice] select").count() == 0

    page.fill("#invite-form input[name=email]", "nina@example.com")
    page.select_option("#invite-form select[name=role]", "viewer")
    page.click("#invite-form button")
    page.wait_for_selector(".msg >> text=invitation sent to nina@example.com (viewer)")
    assert "nina@example.com" in page.locator("#invitations").inner_text()

    body = smtp_server.wait_for("nina@example.com").get_body(preferencelist=("plain",)).get_content()
    link = re.search(r"(https?://\S+/orgs/invitations/\S+)", body).group(1)  # type: ignore[union-attr]
    assert link.startswith(asgi_server)
    newcomer = open_page(chromium, asgi_server)  # nobody signed in
    newcomer.goto(link)
    assert "as viewer" in newcomer.locator(".auth-card").inner_text()
    newcomer.fill("#id_username", "nina")
    newcomer.fill("#id_password", "a-long-pass-phrase")
    newcomer.click("#signup button[type=submit]")
    newcomer.wait_for_selector(".msg >> text=welcome to acme")
    nina = User.objects.get(username="nina")
    assert (nina.organization_id, nina.role) == (alice.org_id, "viewer")
    # the link works once
    newcomer.goto(link)
    assert "already been used" in newcomer.locator("#refused").inner_text()


def test_tokens_page_creates_a_scoped_token_and_revokes_it(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    page = open_page(chromium, asgi_server, alice.user)
    page.goto("/account")
    page.fill("#tokens input[name=name]", "ci-read")
    page.select_option("#tokens select[name=scope]", "viewer")
    page.click("#tokens button.primary")
    plain = page.locator("#new-token").inner_text().strip()
    token = ApiToken.objects.get(user=alice.user, name="ci-read")
    assert ApiToken.digest_of(plain) == token.digest
    assert set(token.scopes) == set(roles.ROLE_PERMISSIONS["viewer"])
    row = page.locator("#tokens tr", has_text="ci-read")
    row.get_by_role("button", name="Revoke").click()  # the confirm dialog is accepted
    page.wait_for_selector(".msg >> text=token ci-read revoked")
    assert not ApiToken.objects.filter(pk=token.pk).exists()
    assert page.locator("#tokens tr", has_text="ci-read").count() == 0


def test_audit_page_shows_what_was_just_done_filters_and_hides_from_a_viewer(chromium, asgi_server, alice):  # type: ignore[no-untyped-def]
    page = open_page(chromium, asgi_server, alice.user)
    # actions through the pages: a token made and revoked, a member's role changed
    page.goto("/account")
    page.fill("#tokens input[name=name]", "short-lived")
    page.click("#tokens button.primary")
    page.locator("#tokens tr", has_text="short-lived").get_by_role("button", name="Revoke").click()
    page.wait_for_selector(".msg >> text=revoked")
    User.objects.create_user(username="vic", organization_id=alice.org_id, role=roles.VIEWER)
    page.goto("/account/members")
    row = page.locator("#members tr[data-member=vic]")
    row.locator("select").select_option("member")
    row.get_by_role("button", name="Change role").click()
    page.wait_for_selector(".msg >> text=vic is now member")

    page.click("nav >> text=Audit log")
    page.wait_for_url("**/account/audit")
    table = page.locator("#audit-records tbody").inner_text()
    for action in ("Token:Create", "Token:Delete", "User:Role"):
        assert action in table
    assert "viewer -> member" in table and "127.0.0.1" in table
    page.fill("#f-kind", "Token:Delete")
    page.click("#audit-filters button")
    page.wait_for_url("**kind=Token*")
    rows = page.locator("#audit-records tbody tr")
    assert rows.count() == AuditRecord.objects.filter(action="Token:Delete").count() == 1
    assert "revoked short-lived" in rows.first.inner_text()

    # a viewer has no audit link, and the page itself is refused
    viewer = services.user_ensure(username="acme-viewer", org_name="acme", create=True, role=roles.VIEWER)
    other = open_page(chromium, asgi_server, viewer)
    other.goto("/account")
    assert other.locator("nav >> text=Audit log").count() == 0
    assert other.goto("/account/audit").status == 403
