"""Job definitions, configs, requests, executions and tasks, error codes and system configs."""

from django.conf import settings
from django.db import models

from jobs.states import JobState, TaskState, choices
from orgs.models import Organization, SecretValueMixin, TenantModel


class JobDefinition(TenantModel):
    """One uploaded version of a job type. Every upload makes a new row; new requests use the latest."""

    job_type = models.CharField(max_length=200)
    version = models.PositiveIntegerField()
    sem_version = models.CharField(max_length=50, blank=True)
    description = models.TextField(blank=True)
    raw_yaml = models.TextField(help_text="the definition text exactly as uploaded (a template)")
    spec = models.JSONField(default=dict, help_text="the definition parsed at upload")
    content_sha256 = models.CharField(max_length=64)
    max_concurrency = models.PositiveIntegerField(default=1)
    cron_trigger = models.CharField(max_length=100, blank=True)
    public_plugin = models.BooleanField(default=False)
    tags = models.JSONField(default=list, blank=True)
    disabled = models.BooleanField(default=False)
    is_latest = models.BooleanField(default=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job_type", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "job_type", "version"], name="uniq_job_version"),
            models.UniqueConstraint(
                fields=["organization", "job_type"],
                condition=models.Q(is_latest=True),
                name="one_latest_per_job_type",
            ),
        ]
        indexes = [models.Index(fields=["public_plugin", "job_type"])]

    def __str__(self) -> str:
        return f"{self.job_type} v{self.version}"


class JobConfig(TenantModel, SecretValueMixin):
    """A name/value a job type's template sees; per job type so it survives new versions."""

    job_type = models.CharField(max_length=200)

    class Meta:
        ordering = ["job_type", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "job_type", "name"], name="uniq_job_config"),
        ]

    def __str__(self) -> str:
        return f"{self.job_type}.{self.name}"


class JobRequest(TenantModel):
    # Foreign keys without an index of their own where a composite index below starts with them:
    # every state change of a request writes each of its indexes.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    job_definition = models.ForeignKey(
        JobDefinition, on_delete=models.PROTECT, related_name="requests", db_index=False
    )
    job_type = models.CharField(max_length=200)
    job_version = models.CharField(max_length=50, blank=True)
    job_state = models.CharField(max_length=30, choices=choices(JobState), default=JobState.PENDING)
    job_priority = models.IntegerField(default=0)
    job_group = models.CharField(max_length=200, blank=True)
    user_key = models.CharField(max_length=200, blank=True)
    platform = models.CharField(max_length=100, blank=True)
    scheduled_at = models.DateTimeField()
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children"
    )
    # set when a cron tick created this request; unique so two queens cannot create a tick twice
    cron_key = models.CharField(max_length=250, null=True, blank=True, unique=True)
    cron_triggered = models.BooleanField(default=False)
    # how it came when not by a person's session: ``token <name>`` (an API token), ``<kind> trigger
    # <name>`` (webhook, s3, queue, github); cron and forks say so with the fields above
    triggered_by = models.CharField(max_length=200, blank=True)
    retried = models.PositiveIntegerField(default=0)
    schedule_attempts = models.PositiveIntegerField(default=0)
    # backoff for a request that could not start (no capable ant, concurrency full); for a
    # PAUSED request, when it resumes by itself (PAUSE_JOB with pause_time)
    not_before = models.DateTimeField(null=True, blank=True)
    # the next execution re-runs every task instead of reusing the last one's completed tasks
    hard_reset = models.BooleanField(default=False)
    state_message = models.CharField(max_length=500, blank=True, help_text="why it waits or how it ended")
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    last_execution = models.ForeignKey(
        "JobExecution", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            # the scheduler's pick: pending rows by priority then age
            models.Index(
                fields=["-job_priority", "id"],
                condition=models.Q(job_state="PENDING"),
                name="jobreq_pending_pick",
            ),
            # by state: the scheduler's running counts (every pass) and, as the partial index
            # above, its pick in order (SQLite cannot match a bound state to the partial index)
            models.Index(fields=["job_state", "-job_priority", "id"], name="jobreq_state_pick"),
            models.Index(fields=["organization", "job_state", "-id"]),
            models.Index(fields=["organization", "job_type", "-id"]),
            models.Index(fields=["job_definition", "job_state"]),
            # windows of the history by creation time (the stats API, the dashboard's last day):
            # a range of the index instead of every request of the organization
            models.Index(fields=["organization", "created_at"], name="jobreq_org_created"),
        ]

    def __str__(self) -> str:
        return f"{self.job_type}#{self.pk}"


class FinishedCount(TenantModel):
    """How many requests of a job type ended in a final state (COMPLETED, FAILED, CANCELLED,
    FILTERED), by the hour they were created: kept by ``jobs.domain.finished_counts`` in the
    transaction of each change (a job ending, a cancel, a restart, retention), so totals and
    windows of the history read a few of these rows instead of every request."""

    # uniq_finished_count starts with it
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, db_index=False)
    job_type = models.CharField(max_length=200)
    job_state = models.CharField(max_length=30, choices=choices(JobState))
    hour = models.DateTimeField(help_text="the hour (UTC) the requests were created in")
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "hour", "job_type", "job_state"], name="uniq_finished_count"
            )
        ]

    def __str__(self) -> str:
        return f"{self.job_type} {self.job_state} {self.hour:%Y-%m-%d %H}h: {self.n}"


class JobRequestParam(TenantModel, SecretValueMixin):
    # uniq_request_param starts with it
    job_request = models.ForeignKey(
        JobRequest, on_delete=models.CASCADE, related_name="params", db_index=False
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["job_request", "name"], name="uniq_request_param")]

    def __str__(self) -> str:
        return self.name


class JobExecution(TenantModel):
    job_request = models.ForeignKey(JobRequest, on_delete=models.CASCADE, related_name="executions")
    job_state = models.CharField(max_length=30, choices=choices(JobState), default=JobState.READY)
    exit_code = models.CharField(max_length=50, blank=True)
    exit_message = models.TextField(blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    # outputs of tasks that later tasks and templates see
    context = models.JSONField(default=dict, blank=True)
    # set when the job has failed and only its always_run tasks are left to run
    failed_task_type = models.CharField(max_length=200, blank=True)
    # a restart or retry reuses the results of tasks that completed in this earlier execution
    reuse_execution = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cpu_secs = models.FloatField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        # the newest finished executions of a window (durations in the stats and reports); set
        # once when the job ends, so the updates in between stay HOT
        indexes = [models.Index(fields=["organization", "ended_at"], name="jobexec_org_ended")]

    def __str__(self) -> str:
        return f"execution {self.pk} of request {self.job_request_id}"


class TaskExecution(TenantModel):
    # uniq_task_per_execution starts with it
    job_execution = models.ForeignKey(
        JobExecution, on_delete=models.CASCADE, related_name="tasks", db_index=False
    )
    task_type = models.CharField(max_length=200)
    method = models.CharField(max_length=50)
    task_state = models.CharField(max_length=30, choices=choices(TaskState), default=TaskState.READY)
    task_order = models.PositiveIntegerField(default=0)
    # a fan-out instance: the step's task_type and the item's index (its own task_type is
    # "<step>-fo-<index>", as the reference names it); empty and null on every other row
    fan_out_of = models.CharField(max_length=200, blank=True)
    fan_out_index = models.PositiveIntegerField(null=True, blank=True)
    # each dispatch to an ant increments attempt; responses carry it so stale ones are ignored
    attempt = models.PositiveIntegerField(default=0)
    retried = models.PositiveIntegerField(default=0)
    allow_failure = models.BooleanField(default=False)
    exit_code = models.CharField(max_length=50, blank=True)
    exit_message = models.TextField(blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    failed_command = models.TextField(blank=True)
    ant_id = models.CharField(max_length=200, blank=True)
    # the start time of the ant process (its incarnation) the attempt was sent to: when the ant
    # comes back under the same id with another start time, this attempt died with the old one
    ant_started_at = models.FloatField(null=True, blank=True)
    context = models.JSONField(default=dict, blank=True)
    stdout = models.JSONField(default=list, blank=True)
    cost_factor = models.FloatField(default=0)
    # seconds the ant measured the attempt run (TaskResponse.ran_secs): what CPU quotas count
    cpu_secs = models.FloatField(default=0)
    not_before = models.DateTimeField(null=True, blank=True, help_text="retry delay: not dispatched before")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # the earlier attempts of this row (a retry, a repeat or a lost ant sends it again): each one's
    # attempt, state, exit code, error, ant and times, so the request page shows every run
    earlier_attempts = models.JSONField(default=list, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job_execution_id", "task_order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["job_execution", "task_type"], name="uniq_task_per_execution"),
        ]
        indexes = [models.Index(fields=["task_state", "ant_id"])]

    def __str__(self) -> str:
        return f"{self.task_type} ({self.task_state})"


class TaskLogChunk(TenantModel):
    """A batch of consecutive output lines of one task execution, as the ant printed them."""

    # the (task_execution, attempt, first_seq) index starts with it
    task_execution = models.ForeignKey(
        TaskExecution, on_delete=models.CASCADE, related_name="log_chunks", db_index=False
    )
    attempt = models.PositiveIntegerField(default=1)
    first_seq = models.PositiveIntegerField()
    last_seq = models.PositiveIntegerField()
    text = models.TextField()
    # one letter per line of ``text`` (``o`` stdout, ``e`` stderr, ``s`` system): the UI styles a
    # stored log as it did live; empty in chunks stored before streams were kept (all stdout)
    streams = models.TextField(default="", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["task_execution_id", "attempt", "first_seq"]
        indexes = [models.Index(fields=["task_execution", "attempt", "first_seq"])]


class QueenLease(models.Model):
    """A named lease one queen holds at a time (the scheduler's leadership)."""

    name = models.CharField(max_length=100, unique=True)
    holder = models.CharField(max_length=200)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.holder}"


class ErrorCode(models.Model):
    """Maps task output or exit codes to an error code and what to do; global or per organization."""

    organization = models.ForeignKey("orgs.Organization", null=True, blank=True, on_delete=models.CASCADE)
    error_code = models.CharField(max_length=100)
    regex = models.CharField(max_length=500, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    description = models.TextField(blank=True)
    display_message = models.CharField(max_length=500, blank=True)
    display_code = models.CharField(max_length=100, blank=True)
    job_type = models.CharField(max_length=200, blank=True, help_text="empty or * for every job type")
    task_type_scope = models.CharField(max_length=200, blank=True)
    platform_scope = models.CharField(max_length=100, blank=True)
    command_scope = models.CharField(max_length=200, blank=True)
    action = models.CharField(
        max_length=50, blank=True, help_text="RETRY_TASK, RETRY_JOB, HARD_FAILURE or SUSPEND_JOB"
    )
    hard_failure = models.BooleanField(default=False, help_text="never retried, neither task nor job")
    retry = models.IntegerField(default=0, help_text="retries a RETRY_TASK or RETRY_JOB action allows")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["error_code"]

    def __str__(self) -> str:
        return self.error_code


class SystemConfig(SecretValueMixin):
    """Installation-wide settings (superusers only)."""

    scope = models.CharField(max_length=100, default="default")
    kind = models.CharField(max_length=100, default="setting")

    class Meta:
        ordering = ["scope", "kind", "name"]
        constraints = [models.UniqueConstraint(fields=["scope", "kind", "name"], name="uniq_system_config")]

    def __str__(self) -> str:
        return f"{self.scope}/{self.kind}/{self.name}"


class WebhookDelivery(TenantModel):
    """One attempt to call a job's or task's `webhook` (jobs/outbound/webhooks.py)."""

    job_request = models.ForeignKey(JobRequest, on_delete=models.CASCADE, related_name="webhook_deliveries")
    task_execution = models.ForeignKey(
        TaskExecution, null=True, blank=True, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    url = models.TextField()
    attempt = models.PositiveIntegerField(default=1)
    status_code = models.PositiveIntegerField(null=True, blank=True, help_text="none: no answer")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job_request_id", "id"]

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class JobResource(TenantModel):
    """A named, counted thing tasks lease before they run (the reference's job resource): a mutex
    (quota 1), a semaphore ("at most 2 deploys to staging") or a quota of units. Leases are
    ``JobResourceUse`` rows (jobs/queen/leases.py)."""

    resource_type = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    platform = models.CharField(max_length=100, blank=True)
    category = models.CharField(max_length=100, blank=True)
    tags = models.JSONField(default=list, blank=True)
    external_id = models.CharField(max_length=100, blank=True)
    valid_status = models.BooleanField(default=True, help_text="healthy: only valid resources are leased")
    quota = models.PositiveIntegerField(help_text="the most units leased at once (1: a mutex)")
    lease_timeout = models.FloatField(default=60.0, help_text="seconds a lease lasts unless released before")
    disabled = models.BooleanField(default=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["resource_type", "id"]
        indexes = [models.Index(fields=["organization", "resource_type"])]

    def __str__(self) -> str:
        return f"{self.resource_type} #{self.pk}"


class JobResourceConfig(SecretValueMixin):
    """A name/value a task that leases the resource sees in its template data and environment."""

    job_resource = models.ForeignKey(JobResource, on_delete=models.CASCADE, related_name="configs")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["job_resource", "name"], name="uniq_resource_config")]

    def __str__(self) -> str:
        return self.name


class JobResourceUse(TenantModel):
    """One lease of ``value`` units of a resource by one attempt of a task. Active while the
    attempt runs (or is about to); released when the task ends or moves on, or aborted when
    ``expires_at`` passes first."""

    job_resource = models.ForeignKey(JobResource, on_delete=models.CASCADE, related_name="uses")
    job_request = models.ForeignKey(JobRequest, on_delete=models.CASCADE, related_name="+")
    task_execution = models.ForeignKey(TaskExecution, on_delete=models.CASCADE, related_name="+")
    attempt = models.PositiveIntegerField(help_text="the task attempt the lease is for")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    value = models.PositiveIntegerField(default=1)
    active = models.BooleanField(default=True)
    aborted = models.BooleanField(default=False, help_text="released by its lease timeout")
    expires_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # one live lease per attempt; a released one may be followed by another
            models.UniqueConstraint(
                fields=["job_resource", "task_execution", "attempt"],
                condition=models.Q(active=True),
                name="uniq_resource_use_per_attempt",
            ),
        ]
        indexes = [models.Index(fields=["job_resource", "active"]), models.Index(fields=["active"])]

    def __str__(self) -> str:
        return f"{self.job_resource_id} by task {self.task_execution_id}"


class ApprovalReview(TenantModel):
    """One person's decision on a MANUAL task waiting for approval (jobs/services/approvals.py),
    or the queen's own when the SLA deadline passes (no user: AUTO_APPROVED, AUTO_REJECTED or
    ESCALATED, each at most once per wait)."""

    job_request = models.ForeignKey(JobRequest, on_delete=models.CASCADE, related_name="approval_reviews")
    job_execution = models.ForeignKey(JobExecution, on_delete=models.CASCADE, related_name="+")
    task_execution = models.ForeignKey(
        TaskExecution, on_delete=models.CASCADE, related_name="approval_reviews"
    )
    task_type = models.CharField(max_length=200)
    # the task's attempt of the wait: a revisited MANUAL task (a loop) waits, and is reviewed, anew
    attempt = models.PositiveIntegerField(default=1)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    username = models.CharField(max_length=150, blank=True)  # kept when the user is deleted
    status = models.CharField(max_length=20)
    comments = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job_request_id", "id"]
        constraints = [
            # a person votes once per wait; the queen escalates (or decides) once per wait
            models.UniqueConstraint(fields=["task_execution", "attempt", "user"], name="uniq_review_per_user"),
            models.UniqueConstraint(
                fields=["task_execution", "attempt"], condition=models.Q(user__isnull=True),
                name="uniq_review_by_queen",
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"{self.task_type} {self.status} by {self.username or 'the queen'}"
