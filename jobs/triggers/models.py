"""A trigger's state (cursor, rate-limit window) and its firings: every event it saw and what became of it."""

from django.db import models

from orgs.models import TenantModel


class TriggerState(TenantModel):
    """One trigger of a job type; it outlives definition versions, like JobConfig."""

    job_type = models.CharField(max_length=200)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10)  # webhook | s3 | queue | github
    # S3: the LastModified high-water mark (ISO 8601) from which objects are listed again
    cursor = models.CharField(max_length=100, blank=True)
    window_start = models.DateTimeField(null=True, blank=True)
    window_count = models.PositiveIntegerField(default=0)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job_type", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "job_type", "name"], name="uniq_trigger_state"),
        ]

    def __str__(self) -> str:
        return f"{self.job_type}/{self.name}"


class Outcome(models.TextChoices):
    FIRED = "fired"
    FILTERED = "filtered"
    DUPLICATE = "duplicate"
    RATE_LIMITED = "rate_limited"
    ERROR = "error"


class TriggerFiring(TenantModel):
    """An event a trigger saw. The unique constraints make exactly-once a database fact: an S3
    object version or queue message (``event_key``) is handled once whoever polls, and one fired
    row holds a dedup key, so a duplicate's insert fails."""

    state = models.ForeignKey(TriggerState, on_delete=models.CASCADE, related_name="firings")
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    event_key = models.CharField(max_length=500, blank=True)
    dedup_key = models.CharField(max_length=200, blank=True)
    job_request = models.ForeignKey(
        "jobs.JobRequest", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["state", "event_key"], condition=~models.Q(event_key=""), name="uniq_trigger_event"
            ),
            models.UniqueConstraint(
                fields=["state", "dedup_key"],
                condition=~models.Q(dedup_key="") & models.Q(outcome="fired"),
                name="uniq_trigger_dedup_fired",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.state} {self.outcome}"
