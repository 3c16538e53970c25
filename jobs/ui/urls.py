"""Pages of the web UI (the REST API lives under /api)."""

from django.urls import path

from jobs.ui import approvals, reports, request_views, resources, views

app_name = "ui"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("jobs/definitions", views.definition_list, name="definitions"),
    path("jobs/definitions/upload", views.definition_upload_view, name="definition-upload"),
    path("jobs/definitions/<int:pk>", views.definition_detail, name="definition"),
    path("jobs/definitions/<int:pk>/graph.svg", views.definition_graph, name="definition-graph"),
    path("jobs/definitions/<int:pk>/submit", views.definition_submit, name="definition-submit"),
    path("jobs/definitions/<int:pk>/toggle", views.definition_toggle, name="definition-toggle"),
    path("jobs/definitions/<int:pk>/configs", views.definition_config_add, name="definition-config-add"),
    path(
        "jobs/definitions/<int:pk>/configs/<int:config_id>/delete",
        views.definition_config_delete,
        name="definition-config-delete",
    ),
    path("jobs/requests", views.request_list, name="requests"),
    path("jobs/requests/<int:pk>", views.request_detail, name="request"),
    path(
        "jobs/requests/<int:pk>/timeline", views.request_detail, {"view": "timeline"}, name="request-timeline"
    ),
    path("jobs/requests/<int:pk>/state.json", views.request_state, name="request-state"),
    path("jobs/requests/<int:pk>/page.json", request_views.request_page_state, name="request-page-state"),
    path("jobs/requests/<int:pk>/tasks/<int:task_id>/log.txt", request_views.task_log, name="task-log"),
    path("jobs/requests/<int:pk>/rerun-all", request_views.request_rerun_all, name="request-rerun-all"),
    path(
        "jobs/requests/<int:pk>/tasks/<str:task_type>/cancel",
        request_views.request_task_cancel,
        name="request-task-cancel",
    ),  # fmt: skip
    path("jobs/requests/<int:pk>/review", approvals.request_review, name="request-review"),
    path("jobs/approvals", approvals.waiting_for_me, name="approvals-waiting"),
    path("jobs/requests/<int:pk>/<str:action>", views.request_action, name="request-action"),
    path("artifacts", views.artifact_list, name="artifacts"),
    path("ants", views.ant_list, name="ants"),
    path("errors", views.error_code_list, name="error-codes"),
    path("jobs/resources", resources.resource_list, name="resources"),
    path("reports", reports.reports_page, name="reports"),
    path("configs", views.system_config_list, name="system-configs"),
]
