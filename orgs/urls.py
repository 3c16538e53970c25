"""Account pages: the user's page (API tokens, invitations) and joining an organization."""

from django.urls import path

from orgs import audit_views, usage_views, views

app_name = "orgs"

urlpatterns = [
    path("account", views.account, name="account"),
    path("account/tokens", views.token_create, name="token-create"),
    path("account/tokens/<int:token_id>/delete", views.token_delete, name="token-delete"),
    path("account/invite", views.invite, name="invite"),
    path("account/members", views.members, name="members"),
    path("account/members/<int:user_id>/role", views.member_role, name="member-role"),
    path("orgs/invitations/<str:token>", views.invitation, name="invitation"),
    path("account/audit", audit_views.audit_list, name="audit"),
    path("orgs/setup", views.setup, name="setup"),
    path("usage", usage_views.usage_page, name="usage"),
    path("orgs/join/<str:code>", views.join, name="join"),
]
