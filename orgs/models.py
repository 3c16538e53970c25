"""Organizations (tenants), users, API tokens and organization configs."""

import hashlib
import secrets

from django.contrib.auth.models import AbstractUser
from django.db import models

from orgs import crypto, roles


class Organization(models.Model):
    name = models.CharField(max_length=100, unique=True)
    bundle_id = models.CharField(max_length=200, blank=True)
    max_concurrency = models.PositiveIntegerField(default=0, help_text="0 means no limit")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="users"
    )
    notify_email = models.EmailField(blank=True)
    # the reference's notify settings: {"email": {"recipients": [...], "when": ...}, "slack": {...}}
    notify = models.JSONField(default=dict, blank=True)
    # false: this user is sent no job notifications (the reference's PUT /api/users/{id}/notify)
    notify_enabled = models.BooleanField(default=True)
    # existing members became owners by migration; new members get what their inviter chose
    role = models.CharField(max_length=20, choices=[(r, r) for r in roles.ROLES], default=roles.MEMBER)

    def __str__(self) -> str:
        return self.username

    def permissions(self) -> frozenset[str]:
        """What this user may do in their organization (by role; everything for a superuser)."""
        if self.is_superuser:
            return roles.effective(self.role, superuser=True)
        if not self.organization_id or not self.is_active:
            return frozenset()
        return roles.effective(self.role)


class TenantModel(models.Model):
    """Base for every row an organization owns: scoping always filters on this column."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE)

    class Meta:
        abstract = True


class ApiToken(TenantModel):
    """A bearer token. Only its SHA-256 is stored; the plain value is shown once."""

    PREFIX = "fmc_"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, default="default")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # permission or role names narrowing the user's role; empty: the user's role as it is
    scopes = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.user}:{self.name}"

    def permissions(self) -> frozenset[str]:
        """The user's permissions narrowed to this token's scopes."""
        user = self.user
        if not user.is_superuser and (not user.organization_id or not user.is_active):
            return frozenset()
        return roles.effective(user.role, superuser=user.is_superuser, scopes=self.scopes)

    @staticmethod
    def digest_of(plain: str) -> str:
        return hashlib.sha256(plain.encode()).hexdigest()

    @classmethod
    def new_plain(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)


class SecretValueMixin(models.Model):
    """name/value config whose value is encrypted at rest when ``secret`` is set."""

    name = models.CharField(max_length=200)
    value = models.TextField(blank=True)
    secret = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    def set_value(self, plain: str) -> None:
        self.value = crypto.encrypt(plain) if self.secret else plain

    def plain_value(self) -> str:
        return crypto.decrypt(self.value) if self.secret else self.value

    def display_value(self) -> str:
        return crypto.REDACTED if self.secret else self.value


class OrgConfig(TenantModel, SecretValueMixin):
    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="uniq_org_config")]

    def __str__(self) -> str:
        return self.name


class Invitation(TenantModel):
    email = models.EmailField()
    code = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    # the role the invitee gets: at most the inviter's (orgs.roles.can_grant)
    role = models.CharField(max_length=20, choices=[(r, r) for r in roles.ROLES], default=roles.MEMBER)
    accepted_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.email


class UserConfig(TenantModel, SecretValueMixin):
    """A member's own name/value config: in the jobs they submit it wins over the org's."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="configs")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="uniq_user_config")]

    def __str__(self) -> str:
        return f"{self.user}:{self.name}"


class Subscription(TenantModel):
    """An organization's plan and its limits (0 means no limit); one active per organization."""

    class Policy(models.TextChoices):
        FREEMIUM = "FREEMIUM"
        BASIC = "BASIC"
        ENTERPRISE = "ENTERPRISE"
        UNLIMITED = "UNLIMITED"

    class Period(models.TextChoices):
        WEEKLY = "WEEKLY"
        MONTHLY = "MONTHLY"
        SEMI_ANNUAL = "SEMI_ANNUAL"
        ANNUAL = "ANNUAL"

    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    policy = models.CharField(max_length=20, choices=Policy.choices, default=Policy.FREEMIUM)
    kind = models.CharField(max_length=20, default="ORGANIZATION")
    period = models.CharField(max_length=20, choices=Period.choices, default=Period.MONTHLY)
    price = models.BigIntegerField(default=0)
    max_concurrency = models.PositiveIntegerField(default=0, help_text="concurrent jobs")
    cpu_quota = models.BigIntegerField(default=0, help_text="CPU seconds per period")
    disk_quota = models.BigIntegerField(default=0, help_text="artifact storage bytes")
    max_ants = models.PositiveIntegerField(default=0)
    # cost of a CPU second of a task that states no cost_factor of its own (see orgs.usage)
    cost_factor = models.FloatField(default=1.0)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"], condition=models.Q(active=True), name="one_active_subscription"
            )
        ]

    def __str__(self) -> str:
        return f"{self.organization_id}:{self.policy}"


class AuditRecord(models.Model):
    """Who did what to which object, when and from where; ``summary``/``data`` never hold a
    secret value. Written through ``orgs.audit.record``."""

    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.SET_NULL)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    username = models.CharField(max_length=150, blank=True)  # kept when the user is deleted
    token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    token_name = models.CharField(max_length=100, blank=True)
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=100, blank=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="audit_org_time")]

    def __str__(self) -> str:
        return f"{self.username} {self.action} {self.object_type}:{self.object_id}"
