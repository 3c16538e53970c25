"""Files that tasks produce (artifacts, logs, caches), stored through django-storages."""

from django.conf import settings
from django.db import models

from orgs.models import Organization, TenantModel


class Artifact(TenantModel):
    class Kind(models.TextChoices):
        ARTIFACT = "ARTIFACT"
        LOG = "LOG"
        CACHE = "CACHE"
        UPLOAD = "UPLOAD"

    # no index of its own: both composite indexes below start with it, and every task's log
    # writes a row
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.ARTIFACT)
    name = models.CharField(max_length=500)
    group = models.CharField(max_length=200, blank=True, help_text="cache key or upload group")
    job_request = models.ForeignKey(
        "jobs.JobRequest", null=True, blank=True, on_delete=models.SET_NULL, related_name="artifacts"
    )
    job_execution = models.ForeignKey(
        "jobs.JobExecution", null=True, blank=True, on_delete=models.SET_NULL, related_name="artifacts"
    )
    task_execution = models.ForeignKey(
        "jobs.TaskExecution", null=True, blank=True, on_delete=models.SET_NULL, related_name="artifacts"
    )
    job_type = models.CharField(max_length=200, blank=True)
    task_type = models.CharField(max_length=200, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    bucket = models.CharField(max_length=200, blank=True)
    storage_key = models.CharField(max_length=1000, unique=True)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    content_type = models.CharField(max_length=200, default="application/octet-stream")
    metadata = models.JSONField(default=dict, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["organization", "job_request", "task_type"]),
            models.Index(fields=["organization", "kind", "job_type", "group"]),
            models.Index(fields=["expires_at"]),
        ]

    def __str__(self) -> str:
        return self.name
