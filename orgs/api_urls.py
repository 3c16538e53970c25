"""/api routes of organizations, users, tokens, configs and subscriptions."""

from django.urls import path

from orgs import api, audit_api, usage_api

urlpatterns = [
    path("orgs", api.OrgListCreate.as_view(), name="orgs"),
    path("orgs/<int:pk>", api.OrgDetail.as_view(), name="org"),
    path("orgs/usage_report", usage_api.UsageReport.as_view(), name="usage-report"),
    path("orgs/<int:pk>/invite", api.OrgInvite.as_view(), name="org-invite"),
    path("orgs/<int:org_id>/configs", api.OrgConfigListCreate.as_view(), name="org-configs"),
    path("orgs/<int:org_id>/configs/<int:pk>", api.OrgConfigDetail.as_view(), name="org-config"),
    path(
        "orgs/<int:org_id>/configs/<int:pk>/reveal", api.OrgConfigReveal.as_view(), name="org-config-reveal"
    ),
    path("users", api.UserListCreate.as_view(), name="users"),
    path("users/configs", api.UserConfigListCreate.as_view(), name="user-configs"),
    path("users/configs/<int:pk>", api.UserConfigDetail.as_view(), name="user-config"),
    path("users/configs/<int:pk>/reveal", api.UserConfigReveal.as_view(), name="user-config-reveal"),
    path("users/<int:pk>", api.UserDetail.as_view(), name="user"),
    path("users/<int:pk>/notify", api.UserNotify.as_view(), name="user-notify"),
    path("users/<int:user_id>/tokens", api.TokenListCreate.as_view(), name="user-tokens"),
    path("users/<int:user_id>/tokens/<int:pk>", api.TokenDetail.as_view(), name="user-token"),
    path("configs", api.SystemConfigListCreate.as_view(), name="system-configs"),
    path("configs/<int:pk>", api.SystemConfigDetail.as_view(), name="system-config"),
    path("audits", audit_api.AuditList.as_view(), name="audits"),
    path("subscriptions", api.SubscriptionListCreate.as_view(), name="subscriptions"),
    path("subscriptions/<int:pk>", api.SubscriptionDetail.as_view(), name="subscription"),
]
