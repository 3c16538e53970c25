"""Input and output shapes of the organizations, users, tokens, configs and subscriptions API,
with the reference system's field names."""

from typing import Any

from rest_framework import serializers

from jobs.models import SystemConfig
from orgs import roles
from orgs.models import (
    ApiToken,
    AuditRecord,
    Invitation,
    Organization,
    OrgConfig,
    Subscription,
    User,
    UserConfig,
)


class SubscriptionSerializer(serializers.ModelSerializer):
    organization_id = serializers.IntegerField(read_only=True)
    user_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Subscription
        fields = [
            "id", "user_id", "organization_id", "policy", "kind", "period", "price", "max_concurrency",
            "cpu_quota", "disk_quota", "max_ants", "cost_factor", "started_at", "ended_at", "active",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class SubscriptionInput(serializers.Serializer):
    organization_id = serializers.IntegerField(required=False, help_text="superusers only; default: yours")
    policy = serializers.ChoiceField(choices=Subscription.Policy.choices, required=False)
    period = serializers.ChoiceField(choices=Subscription.Period.choices, required=False)
    price = serializers.IntegerField(min_value=0, required=False)
    max_concurrency = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)
    cpu_quota = serializers.IntegerField(min_value=0, required=False)
    disk_quota = serializers.IntegerField(min_value=0, required=False)
    max_ants = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)
    cost_factor = serializers.FloatField(
        min_value=0,
        max_value=1_000_000,
        required=False,
        help_text="cost of a CPU second of a task without its own",
    )
    started_at = serializers.DateTimeField(required=False)
    ended_at = serializers.DateTimeField(required=False, allow_null=True)
    active = serializers.BooleanField(required=False)


class OrganizationSerializer(serializers.ModelSerializer):
    org_unit = serializers.CharField(source="name", read_only=True)
    owner_user_id = serializers.SerializerMethodField()
    subscription = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = [
            "id", "name", "org_unit", "bundle_id", "owner_user_id", "max_concurrency", "subscription",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_owner_user_id(self, obj: Organization) -> int | None:
        owner = obj.users.filter(role=roles.OWNER).order_by("pk").values_list("pk", flat=True).first()
        return owner

    def get_subscription(self, obj: Organization) -> dict[str, Any] | None:
        active = Subscription.objects.filter(organization=obj, active=True).first()
        return SubscriptionSerializer(active).data if active else None


class OrganizationInput(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, help_text="also accepted as org_unit")
    org_unit = serializers.CharField(max_length=100, required=False)
    bundle_id = serializers.CharField(max_length=200, required=False, allow_blank=True)
    max_concurrency = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unit = attrs.pop("org_unit", None)
        if unit and "name" not in attrs:
            attrs["name"] = unit
        if "name" in attrs:
            attrs["name"] = attrs["name"].strip()
            if not attrs["name"]:
                raise serializers.ValidationError({"name": "must not be blank"})
            others = Organization.objects.filter(name__iexact=attrs["name"])
            if self.instance is not None:
                others = others.exclude(pk=self.instance.pk)
            if others.exists():
                raise serializers.ValidationError({"name": f"an organization named {attrs['name']!r} exists"})
        return attrs


class UserSerializer(serializers.ModelSerializer):
    name = serializers.SerializerMethodField()
    organization_id = serializers.IntegerField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(source="date_joined", read_only=True)

    class Meta:
        model = User
        fields = [
            "id", "name", "username", "email", "organization_id", "role", "notify", "notify_email",
            "is_active", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_name(self, obj: User) -> str:
        return obj.get_full_name()


class UserInput(serializers.Serializer):
    username = serializers.CharField(max_length=150, required=False)
    name = serializers.CharField(max_length=300, required=False, allow_blank=True)
    email = serializers.EmailField(required=False, allow_blank=True)
    role = serializers.ChoiceField(choices=roles.ROLES, required=False)
    password = serializers.CharField(required=False, write_only=True, min_length=8)
    is_active = serializers.BooleanField(required=False)

    def validate_username(self, value: str) -> str:
        value = value.strip()
        others = User.objects.filter(username=value)
        if self.instance is not None:
            others = others.exclude(pk=self.instance.pk)
        if not value or others.exists():
            raise serializers.ValidationError(f"the username {value!r} is blank or taken")
        return value

    def to_fields(self) -> dict[str, Any]:
        """The validated data as model fields (``name`` split into first and last)."""
        data = dict(self.validated_data)
        if "name" in data:
            first, _, last = data.pop("name").strip().partition(" ")
            data["first_name"], data["last_name"] = first[:150], last[:150]
        return data


class NotifyInput(serializers.Serializer):
    email = serializers.CharField(required=False, allow_blank=True, help_text="comma-separated addresses")
    slackChannel = serializers.CharField(required=False, allow_blank=True)  # noqa: N815 (the reference's name)
    when = serializers.ChoiceField(
        choices=["onSuccess", "onFailure", "always", "never"], required=False, default="onFailure"
    )

    def validate_email(self, value: str) -> list[str]:
        addresses = [a.strip() for a in value.split(",") if a.strip()]
        field = serializers.EmailField()
        for address in addresses:
            field.run_validation(address)
        return addresses


class TokenSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True)
    organization_id = serializers.IntegerField(read_only=True)
    token_name = serializers.CharField(source="name", read_only=True)
    sha256 = serializers.CharField(source="digest", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id", "user_id", "organization_id", "token_name", "sha256", "scopes", "expires_at",
            "created_at", "last_used_at",
        ]  # fmt: skip
        read_only_fields = fields


class NewTokenSerializer(TokenSerializer):
    api_token = serializers.CharField(read_only=True, help_text="the token itself: shown only in this answer")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "api_token"]
        read_only_fields = fields


class TokenInput(serializers.Serializer):
    token = serializers.CharField(
        max_length=100, required=False, help_text="the token's name (the reference's)"
    )
    token_name = serializers.CharField(max_length=100, required=False)
    scopes = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list,
        help_text="role names or permission names narrowing the token; empty: the user's role",
    )  # fmt: skip
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_scopes(self, value: list[str]) -> list[str]:
        try:
            roles.expand_scopes(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class ConfigInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    value = serializers.CharField(allow_blank=True, max_length=64 * 1024, trim_whitespace=False)
    secret = serializers.BooleanField(default=False)


class SystemConfigInput(ConfigInput):
    scope = serializers.CharField(max_length=100, default="default")
    kind = serializers.CharField(max_length=100, default="setting")


class _ConfigSerializer(serializers.ModelSerializer):
    value = serializers.SerializerMethodField()

    def get_value(self, obj: Any) -> str:
        return obj.display_value()


class OrgConfigSerializer(_ConfigSerializer):
    organization_id = serializers.IntegerField(read_only=True)
    configurable_id = serializers.IntegerField(source="organization_id", read_only=True)
    configurable_type = serializers.SerializerMethodField()

    class Meta:
        model = OrgConfig
        fields = [
            "id", "organization_id", "configurable_id", "configurable_type", "name", "value", "secret",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_configurable_type(self, obj: Any) -> str:
        return "organizations"


class UserConfigSerializer(_ConfigSerializer):
    user_id = serializers.IntegerField(read_only=True)
    organization_id = serializers.IntegerField(read_only=True)
    configurable_id = serializers.IntegerField(source="user_id", read_only=True)
    configurable_type = serializers.SerializerMethodField()

    class Meta:
        model = UserConfig
        fields = [
            "id", "user_id", "organization_id", "configurable_id", "configurable_type", "name", "value",
            "secret", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_configurable_type(self, obj: Any) -> str:
        return "users"


class SystemConfigSerializer(_ConfigSerializer):
    class Meta:
        model = SystemConfig
        fields = ["id", "scope", "kind", "name", "value", "secret", "created_at", "updated_at"]
        read_only_fields = fields


class RevealedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    value = serializers.CharField()
    secret = serializers.BooleanField()


class InvitationInput(serializers.Serializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(
        choices=roles.ROLES, default=roles.MEMBER, help_text="at most your own role"
    )


class InvitationSerializer(serializers.ModelSerializer):
    organization_id = serializers.IntegerField(read_only=True)
    invited_by_id = serializers.IntegerField(read_only=True, allow_null=True)
    accepted_by_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Invitation
        fields = [
            "id", "organization_id", "email", "role", "invited_by_id", "accepted_by_id", "accepted_at",
            "expires_at", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class AuditRecordSerializer(serializers.ModelSerializer):
    organization_id = serializers.IntegerField(read_only=True, allow_null=True)
    user_id = serializers.IntegerField(read_only=True, allow_null=True)
    token_id = serializers.IntegerField(read_only=True, allow_null=True)
    kind = serializers.CharField(source="action", read_only=True, help_text="the reference's name of action")

    class Meta:
        model = AuditRecord
        fields = [
            "id", "organization_id", "user_id", "username", "token_id", "token_name", "kind", "action",
            "object_type", "object_id", "remote_addr", "summary", "data", "created_at",
        ]  # fmt: skip
        read_only_fields = fields
