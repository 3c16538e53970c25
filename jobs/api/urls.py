from django.urls import path

from jobs.api import approvals as a
from jobs.api import definitions as d
from jobs.api import errors as e
from jobs.api import outbound as o
from jobs.api import requests as r
from jobs.api import resources as res
from jobs.api import triggers as t
from jobs.api.unsupported import unsupported

MERMAID = "Mermaid output is not supported here: use .../dot (Graphviz DOT) or .../dot.png"

urlpatterns = [
    path("jobs/definitions", d.DefinitionListCreate.as_view(), name="definitions"),
    path("jobs/plugins", d.PluginList.as_view(), name="plugins"),
    path(
        "jobs/definitions/type/<str:job_type>/versions",
        d.DefinitionVersions.as_view(),
        name="definition-versions",
    ),
    path("jobs/definitions/<str:key>", d.DefinitionDetail.as_view(), name="definition"),
    path("jobs/definitions/<str:key>/yaml", d.DefinitionYaml.as_view(), name="definition-yaml"),
    path("jobs/definitions/<str:key>/dot", d.DefinitionDot.as_view(), name="definition-dot"),
    path("jobs/definitions/<str:key>/dot.png", d.DefinitionDotPng.as_view(), name="definition-dot-png"),
    path("jobs/definitions/<str:key>/disable", d.DefinitionDisable.as_view(), name="definition-disable"),
    path("jobs/definitions/<str:key>/enable", d.DefinitionEnable.as_view(), name="definition-enable"),
    # the reference system's names for the same two actions
    path("jobs/definitions/<str:key>/pause", d.DefinitionDisable.as_view(), name="definition-pause"),
    path("jobs/definitions/<str:key>/unpause", d.DefinitionEnable.as_view(), name="definition-unpause"),
    path(
        "jobs/definitions/<str:key>/concurrency",
        d.DefinitionConcurrency.as_view(),
        name="definition-concurrency",
    ),
    path("jobs/definitions/<str:key>/stats", d.DefinitionStats.as_view(), name="definition-stats"),
    path("jobs/definitions/<str:key>/configs", d.ConfigListCreate.as_view(), name="job-configs"),
    path("jobs/definitions/<str:key>/configs/<int:config_id>", d.ConfigDetail.as_view(), name="job-config"),
    path("jobs/definitions/<str:key>/triggers", t.TriggerList.as_view(), name="definition-triggers"),
    path(
        "jobs/definitions/<str:key>/triggers/<str:name>/state",
        t.TriggerStateView.as_view(),
        name="trigger-state",
    ),
    path(
        "jobs/definitions/<str:key>/triggers/<str:name>/reset",
        t.TriggerReset.as_view(),
        name="trigger-reset",
    ),
    path("triggers/<str:job_type>/<str:name>", t.WebhookTrigger.as_view(), name="trigger-webhook"),
    path("auth/github/webhook", t.GithubWebhook.as_view(), name="github-webhook"),
    path("jobs/requests", r.RequestListCreate.as_view(), name="requests"),
    path("jobs/requests/bulk", r.RequestSubmitMany.as_view(), name="requests-bulk"),
    path("jobs/requests/dead_ids", r.RequestDeadIds.as_view(), name="request-dead-ids"),
    path("jobs/requests/stats", r.RequestStats.as_view(), name="request-stats"),
    path("jobs/requests/<int:pk>", r.RequestDetail.as_view(), name="request"),
    path("jobs/requests/<int:pk>/cancel", r.RequestCancel.as_view(), name="request-cancel"),
    path(
        "jobs/requests/<int:pk>/tasks/<str:task_type>/cancel",
        r.RequestTaskCancel.as_view(),
        name="request-task-cancel",
    ),  # fmt: skip
    path("jobs/requests/<int:pk>/pause", r.RequestPause.as_view(), name="request-pause"),
    path("jobs/requests/<int:pk>/resume", r.RequestResume.as_view(), name="request-resume"),
    path("jobs/requests/<int:pk>/restart", r.RequestRestart.as_view(), name="request-restart"),
    path("jobs/requests/<int:pk>/trigger", r.RequestTrigger.as_view(), name="request-trigger"),
    path("jobs/requests/<int:pk>/wait_time", r.RequestWaitTime.as_view(), name="request-wait-time"),
    path("jobs/requests/<int:pk>/dot", r.RequestDot.as_view(), name="request-dot"),
    path("jobs/requests/<int:pk>/dot.png", r.RequestDotPng.as_view(), name="request-dot-png"),
    path("jobs/requests/<int:pk>/logs", r.RequestLogs.as_view(), name="request-logs"),
    path("jobs/requests/<int:pk>/webhooks", o.RequestWebhooks.as_view(), name="request-webhooks"),
    path("reports", o.Reports.as_view(), name="reports"),
    path("metrics", o.metrics_view, name="metrics"),
    path("jobs/definitions/<str:key>/mermaid", unsupported(MERMAID)),
    path("jobs/requests/<int:pk>/mermaid", unsupported(MERMAID)),
    path("jobs/requests/<int:pk>/review", a.RequestReview.as_view(), name="request-review"),
    path("jobs/resources", res.ResourceList.as_view(), name="resources"),
    path("jobs/resources/<int:pk>", res.ResourceDetail.as_view(), name="resource"),
    path("jobs/resources/<int:pk>/disable", res.ResourceDisable.as_view(), name="resource-disable"),
    path("jobs/resources/<int:pk>/enable", res.ResourceEnable.as_view(), name="resource-enable"),
    path("jobs/resources/<int:pk>/configs", res.ResourceConfigAdd.as_view(), name="resource-configs"),
    path(
        "jobs/resources/<int:pk>/configs/<int:config_id>",
        res.ResourceConfigDelete.as_view(),
        name="resource-config",
    ),
    path("errors", e.ErrorCodeList.as_view(), name="error-codes"),
    path("errors/<int:pk>", e.ErrorCodeDetail.as_view(), name="error-code"),
]
