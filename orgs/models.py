"""Organizations (tenants), users, API tokens and organization configs."""

import hashlib
import secrets

from django.contrib.auth.models import AbstractUser
from django.db import models

from orgs import crypto


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

    def __str__(self) -> str:
        return self.username


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

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.user}:{self.name}"

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
    accepted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.email
