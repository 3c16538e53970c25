"""REST API of organizations, users, API tokens, org/user/system configs and subscriptions (the
reference system's paths). Another organization's object is a 404; what a caller may do is
declared per method in ``required_permissions`` (``orgs.roles``)."""

from typing import Any

from django.db import IntegrityError
from django.db.models import ProtectedError, QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from formicary_site.api import OrgAPIView
from jobs.models import SystemConfig
from orgs import audit, invitations, roles, services
from orgs.api_serializers import (
    ConfigInput,
    InvitationInput,
    InvitationSerializer,
    NewTokenSerializer,
    NotifyInput,
    OrganizationInput,
    OrganizationSerializer,
    OrgConfigSerializer,
    RevealedSerializer,
    SubscriptionInput,
    SubscriptionSerializer,
    SystemConfigInput,
    SystemConfigSerializer,
    TokenInput,
    TokenSerializer,
    UserConfigSerializer,
    UserInput,
    UserSerializer,
)
from orgs.authed import AuthedRequest
from orgs.models import ApiToken, Organization, OrgConfig, Subscription, User, UserConfig
from orgs.permissions import effective_permissions, require

# Reached by an authenticated user who may belong to no organization; the view decides.
ANY_USER = roles.ANY_USER


def _visible_orgs(request: AuthedRequest) -> QuerySet[Organization]:
    """Every organization for a superuser, else only the caller's."""
    if request.user.is_superuser:
        return Organization.objects.all()
    return Organization.objects.filter(pk=request.user.organization_id or 0)


def _valid(serializer_class: Any, data: Any, **kwargs: Any) -> Any:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer


def _reveal(request: AuthedRequest, config: Any) -> Response:
    audit.record(request, f"{type(config).__name__}:Reveal", config, summary=f"revealed {config.name}")
    return Response(
        {"id": config.pk, "name": config.name, "value": config.plain_value(), "secret": config.secret}
    )


def _config_saved(request: AuthedRequest, action: str, config: Any) -> None:
    audit.record(request, f"{type(config).__name__}:{action}", config,
                 summary=f"{action.lower()}d {config.name}", data={"name": config.name, "secret": config.secret})  # fmt: skip


# -- organizations --------------------------------------------------------------------------------


class OrgListCreate(OrgAPIView):
    allow_without_org = True
    required_permissions = {"GET": "Org:Read", "POST": ANY_USER}

    @extend_schema(responses=OrganizationSerializer(many=True), parameters=[OpenApiParameter("name", str)])
    def get(self, request: AuthedRequest) -> Response:
        qs = _visible_orgs(request)
        if request.query_params.get("name"):
            qs = qs.filter(name__icontains=request.query_params["name"])
        return self.paginate(request, qs, OrganizationSerializer)

    @extend_schema(
        request=OrganizationInput,
        responses={201: OrganizationSerializer},
        description="A superuser creates any organization; a user without one creates theirs and becomes its owner.",
    )
    def post(self, request: AuthedRequest) -> Response:
        if not request.user.is_superuser and request.user.organization_id:
            raise PermissionDenied("you already belong to an organization")
        data = _valid(OrganizationInput, request.data).validated_data
        if not data.get("name"):
            raise ValidationError({"name": "required"})
        try:
            org = services.org_create(creator=request.user, **data)
        except IntegrityError:
            raise ValidationError({"name": f"an organization named {data['name']!r} exists"}) from None
        audit.record(request, "Organization:Create", org, summary=f"created {org.name}")
        return Response(OrganizationSerializer(org).data, status=status.HTTP_201_CREATED)


class OrgDetail(OrgAPIView):
    allow_without_org = True
    required_permissions = {"GET": "Org:Read", "PUT": "Org:Admin", "DELETE": "Org:Admin"}

    def _org(self, pk: int) -> Organization:
        return get_object_or_404(_visible_orgs(self.request), pk=pk)

    @extend_schema(responses=OrganizationSerializer)
    def get(self, request: AuthedRequest, pk: int) -> Response:
        return Response(OrganizationSerializer(self._org(pk)).data)

    @extend_schema(request=OrganizationInput, responses=OrganizationSerializer)
    def put(self, request: AuthedRequest, pk: int) -> Response:
        org = self._org(pk)
        data = _valid(OrganizationInput, request.data, instance=org).validated_data
        services.save_fields(org, data)
        audit.record(request, "Organization:Update", org, summary=f"updated {', '.join(sorted(data))}")
        return Response(OrganizationSerializer(org).data)

    @extend_schema(responses={200: None})
    def delete(self, request: AuthedRequest, pk: int) -> Response:
        org = self._org(pk)
        audit.record(request, "Organization:Delete", org, summary=f"deleted {org.name}", organization_id=None)
        try:
            services.org_delete(org=org)
        except ProtectedError as exc:
            raise ValidationError(f"the organization still has rows that protect it: {exc.args[0]}") from None
        return Response(status=status.HTTP_200_OK)


class OrgInvite(OrgAPIView):
    allow_without_org = True
    required_permissions = {"POST": "User:Write"}

    @extend_schema(
        request=InvitationInput,
        responses={201: InvitationSerializer},
        description="Mail a signed link that expires in 7 days and joins the organization with "
        "`role` (at most yours). 503 when the mail cannot be sent (no invitation stays).",
    )
    def post(self, request: AuthedRequest, pk: int) -> Response:
        org = get_object_or_404(_visible_orgs(request), pk=pk)
        data = _valid(InvitationInput, request.data).validated_data
        try:
            invitation = invitations.invite(inviter=request.user, org=org, request=request, **data)
        except invitations.InvitationRefused as exc:
            raise PermissionDenied(str(exc)) from None
        except invitations.MailNotSent as exc:
            return Response({"error": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)


# -- org configs ----------------------------------------------------------------------------------


class _OrgConfigView(OrgAPIView):
    allow_without_org = True

    def _org(self, org_id: int) -> Organization:
        return get_object_or_404(_visible_orgs(self.request), pk=org_id)

    def _config(self, org_id: int, pk: int) -> OrgConfig:
        return get_object_or_404(OrgConfig.objects.filter(organization=self._org(org_id)), pk=pk)


class OrgConfigListCreate(_OrgConfigView):
    required_permissions = {"GET": "Config:Read", "POST": "Config:Write"}

    @extend_schema(responses=OrgConfigSerializer(many=True), parameters=[OpenApiParameter("name", str)])
    def get(self, request: AuthedRequest, org_id: int) -> Response:
        qs = OrgConfig.objects.filter(organization=self._org(org_id))
        if request.query_params.get("name"):
            qs = qs.filter(name=request.query_params["name"])
        return self.paginate(request, qs, OrgConfigSerializer)

    @extend_schema(request=ConfigInput, responses={201: OrgConfigSerializer})
    def post(self, request: AuthedRequest, org_id: int) -> Response:
        org = self._org(org_id)
        data = _valid(ConfigInput, request.data).validated_data
        if OrgConfig.objects.filter(organization=org, name=data["name"]).exists():
            raise ValidationError({"name": f"the organization has a config named {data['name']!r}: PUT it"})
        config = services.config_save(OrgConfig(organization=org), **data)
        _config_saved(request, "Create", config)
        return Response(OrgConfigSerializer(config).data, status=status.HTTP_201_CREATED)


class OrgConfigDetail(_OrgConfigView):
    required_permissions = {"GET": "Config:Read", "PUT": "Config:Write", "DELETE": "Config:Write"}

    @extend_schema(responses=OrgConfigSerializer)
    def get(self, request: AuthedRequest, org_id: int, pk: int) -> Response:
        return Response(OrgConfigSerializer(self._config(org_id, pk)).data)

    @extend_schema(request=ConfigInput, responses=OrgConfigSerializer)
    def put(self, request: AuthedRequest, org_id: int, pk: int) -> Response:
        config = self._config(org_id, pk)
        data = _valid(ConfigInput, request.data).validated_data
        clash = OrgConfig.objects.filter(organization_id=config.organization_id, name=data["name"])
        if clash.exclude(pk=config.pk).exists():
            raise ValidationError({"name": f"the organization has another config named {data['name']!r}"})
        config = services.config_save(config, **data)
        _config_saved(request, "Update", config)
        return Response(OrgConfigSerializer(config).data)

    @extend_schema(responses={200: None})
    def delete(self, request: AuthedRequest, org_id: int, pk: int) -> Response:
        config = self._config(org_id, pk)
        _config_saved(request, "Delete", config)
        config.delete()
        return Response(status=status.HTTP_200_OK)


class OrgConfigReveal(_OrgConfigView):
    required_permissions = {"GET": "Config:Reveal"}

    @extend_schema(responses=RevealedSerializer, description="The plain value; the reveal is audited.")
    def get(self, request: AuthedRequest, org_id: int, pk: int) -> Response:
        return _reveal(request, self._config(org_id, pk))


# -- users ----------------------------------------------------------------------------------------


def _check_grant(request: AuthedRequest, role: str) -> None:
    if not request.user.is_superuser and not roles.can_grant(request.user.role, role):
        raise PermissionDenied(f"a {request.user.role} cannot grant or change the {role} role")


class _UserView(OrgAPIView):
    def _user(self, pk: int) -> User:
        return get_object_or_404(User.objects.filter(organization_id=self.org_id), pk=pk)

    def _self_or(self, user: User, permission: str) -> None:
        """Changing oneself needs only the route's permission; another member needs more, and
        a role at least as strong as theirs (an admin cannot deactivate an owner)."""
        if user.pk != self.request.user.pk:
            require(self.request, permission)
            _check_grant(self.request, user.role)


class UserListCreate(_UserView):
    required_permissions = {"GET": "User:Read", "POST": "User:Write"}

    @extend_schema(
        responses=UserSerializer(many=True),
        parameters=[
            OpenApiParameter("username", str),
            OpenApiParameter("email", str),
            OpenApiParameter("role", str),
        ],
    )
    def get(self, request: AuthedRequest) -> Response:
        qs = User.objects.filter(organization_id=self.org_id).order_by("username")
        for name in ("username", "email", "role"):
            if request.query_params.get(name):
                qs = qs.filter(**{f"{name}__iexact": request.query_params[name]})
        return self.paginate(request, qs, UserSerializer)

    @extend_schema(request=UserInput, responses={201: UserSerializer})
    def post(self, request: AuthedRequest) -> Response:
        serializer = _valid(UserInput, request.data)
        fields = serializer.to_fields()
        if not fields.get("username"):
            raise ValidationError({"username": "required"})
        role = fields.pop("role", roles.MEMBER)
        _check_grant(request, role)
        user = services.user_create(org_id=self.org_id, role=role, **fields)
        audit.record(request, "User:Create", user, summary=f"added {user.username} as {role}")
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class UserDetail(_UserView):
    required_permissions = {"GET": "User:Read", "PUT": "Profile:Write", "DELETE": "User:Write"}

    @extend_schema(responses=UserSerializer)
    def get(self, request: AuthedRequest, pk: int) -> Response:
        return Response(UserSerializer(self._user(pk)).data)

    @extend_schema(
        request=UserInput, responses=UserSerializer, description="Oneself, or another member with User:Write."
    )
    def put(self, request: AuthedRequest, pk: int) -> Response:
        user = self._user(pk)
        self._self_or(user, "User:Write")
        fields = _valid(UserInput, request.data, instance=user).to_fields()
        if "role" in fields and fields["role"] != user.role:
            require(request, "User:Write")
            if user.pk == request.user.pk:
                raise PermissionDenied("you cannot change your own role")
            _check_grant(request, user.role)
            _check_grant(request, fields["role"])
        if fields.get("is_active") is False and user.pk == request.user.pk:
            raise PermissionDenied("you cannot deactivate yourself")
        password = fields.pop("password", None)
        if password:
            user.set_password(password)
        services.save_fields(user, fields)
        audit.record(request, "User:Update", user, summary=f"updated {', '.join(sorted(fields)) or 'nothing'}",
                     data={k: v for k, v in fields.items() if k in ("role", "is_active")})  # fmt: skip
        return Response(UserSerializer(user).data)

    @extend_schema(responses={200: None})
    def delete(self, request: AuthedRequest, pk: int) -> Response:
        user = self._user(pk)
        if user.pk == request.user.pk:
            raise PermissionDenied("you cannot delete yourself")
        _check_grant(request, user.role)
        audit.record(request, "User:Delete", user, summary=f"removed {user.username}")
        user.delete()
        return Response(status=status.HTTP_200_OK)


class UserNotify(_UserView):
    required_permissions = {"PUT": "Profile:Write"}

    @extend_schema(request=NotifyInput, responses=UserSerializer)
    def put(self, request: AuthedRequest, pk: int) -> Response:
        user = self._user(pk)
        self._self_or(user, "User:Write")
        data = _valid(NotifyInput, request.data).validated_data
        notify = dict(user.notify or {})
        if "email" in data:
            notify["email"] = {"recipients": data["email"], "when": data["when"]}
            user.notify_email = data["email"][0] if data["email"] else ""
        if "slackChannel" in data:
            notify["slack"] = {"recipients": [data["slackChannel"]] if data["slackChannel"] else [],
                               "when": data["when"]}  # fmt: skip
        user.notify = notify
        user.save(update_fields=["notify", "notify_email"])
        audit.record(request, "User:Notify", user, summary="updated notifications")
        return Response(UserSerializer(user).data)


# -- tokens ---------------------------------------------------------------------------------------


class TokenListCreate(_UserView):
    required_permissions = {"GET": "User:Read", "POST": "Token:Write"}

    @extend_schema(
        responses=TokenSerializer(many=True), description="Yours, or another member's with User:Write."
    )
    def get(self, request: AuthedRequest, user_id: int) -> Response:
        user = self._user(user_id)
        self._self_or(user, "User:Write")
        return self.paginate(request, ApiToken.objects.filter(user=user), TokenSerializer)

    @extend_schema(
        request=TokenInput,
        responses={201: NewTokenSerializer},
        description='A token for yourself; `scopes` narrows it (e.g. `["viewer"]`, `["JobRequest:Submit"]`).',
    )
    def post(self, request: AuthedRequest, user_id: int) -> Response:
        user = self._user(user_id)
        if user.pk != request.user.pk:
            raise PermissionDenied("tokens are issued only to their own user")
        data = _valid(TokenInput, request.data or request.query_params).validated_data
        through_token = isinstance(request.auth, ApiToken)
        try:
            issued = services.token_issue(
                user=user, name=data.get("token_name") or data.get("token") or "api token", scopes=data["scopes"],
                within=effective_permissions(request.user, request.auth) if through_token else None,
                expires_at=data.get("expires_at"),
            )  # fmt: skip
        except ValueError as exc:
            raise ValidationError({"scopes": str(exc)}) from None
        audit.record(request, "Token:Create", issued.token, summary=f"issued {issued.token.name}",
                     data={"scopes": issued.token.scopes})  # fmt: skip
        body = dict(NewTokenSerializer(issued.token).data, api_token=issued.plain)
        return Response(body, status=status.HTTP_201_CREATED)


class TokenDetail(_UserView):
    required_permissions = {"DELETE": "Token:Write"}

    @extend_schema(
        responses={200: None}, description="Revoke your token, or another member's with User:Write."
    )
    def delete(self, request: AuthedRequest, user_id: int, pk: int) -> Response:
        user = self._user(user_id)
        self._self_or(user, "User:Write")
        token = get_object_or_404(ApiToken.objects.filter(user=user, organization_id=self.org_id), pk=pk)
        audit.record(request, "Token:Delete", token, summary=f"revoked {token.name}")
        token.delete()
        return Response(status=status.HTTP_200_OK)


# -- user configs ---------------------------------------------------------------------------------


class _UserConfigView(OrgAPIView):
    def _configs(self) -> QuerySet[UserConfig]:
        return UserConfig.objects.filter(user=self.request.user, organization_id=self.org_id)


class UserConfigListCreate(_UserConfigView):
    required_permissions = {"GET": "Config:Read", "POST": "Config:Write"}

    @extend_schema(responses=UserConfigSerializer(many=True), description="The caller's own configs.")
    def get(self, request: AuthedRequest) -> Response:
        return self.paginate(request, self._configs(), UserConfigSerializer)

    @extend_schema(request=ConfigInput, responses={201: UserConfigSerializer})
    def post(self, request: AuthedRequest) -> Response:
        data = _valid(ConfigInput, request.data).validated_data
        if self._configs().filter(name=data["name"]).exists():
            raise ValidationError({"name": f"you have a config named {data['name']!r}: PUT it"})
        config = services.config_save(UserConfig(user=request.user, organization_id=self.org_id), **data)
        _config_saved(request, "Create", config)
        return Response(UserConfigSerializer(config).data, status=status.HTTP_201_CREATED)


class UserConfigDetail(_UserConfigView):
    required_permissions = {"GET": "Config:Read", "PUT": "Config:Write", "DELETE": "Config:Write"}

    @extend_schema(responses=UserConfigSerializer)
    def get(self, request: AuthedRequest, pk: int) -> Response:
        return Response(UserConfigSerializer(get_object_or_404(self._configs(), pk=pk)).data)

    @extend_schema(request=ConfigInput, responses=UserConfigSerializer)
    def put(self, request: AuthedRequest, pk: int) -> Response:
        config = get_object_or_404(self._configs(), pk=pk)
        data = _valid(ConfigInput, request.data).validated_data
        if self._configs().filter(name=data["name"]).exclude(pk=pk).exists():
            raise ValidationError({"name": f"you have another config named {data['name']!r}"})
        config = services.config_save(config, **data)
        _config_saved(request, "Update", config)
        return Response(UserConfigSerializer(config).data)

    @extend_schema(responses={200: None})
    def delete(self, request: AuthedRequest, pk: int) -> Response:
        config = get_object_or_404(self._configs(), pk=pk)
        _config_saved(request, "Delete", config)
        config.delete()
        return Response(status=status.HTTP_200_OK)


class UserConfigReveal(_UserConfigView):
    required_permissions = {"GET": "Config:Reveal"}

    @extend_schema(responses=RevealedSerializer, description="The plain value; the reveal is audited.")
    def get(self, request: AuthedRequest, pk: int) -> Response:
        return _reveal(request, get_object_or_404(self._configs(), pk=pk))


# -- system configs (superusers) ------------------------------------------------------------------


class SystemConfigListCreate(OrgAPIView):
    allow_without_org = True
    required_permissions = {"GET": roles.SYSTEM_ADMIN, "POST": roles.SYSTEM_ADMIN}

    @extend_schema(responses=SystemConfigSerializer(many=True), parameters=[OpenApiParameter("scope", str)])
    def get(self, request: AuthedRequest) -> Response:
        qs = SystemConfig.objects.all()
        if request.query_params.get("scope"):
            qs = qs.filter(scope=request.query_params["scope"])
        return self.paginate(request, qs, SystemConfigSerializer)

    @extend_schema(request=SystemConfigInput, responses={201: SystemConfigSerializer})
    def post(self, request: AuthedRequest) -> Response:
        data = dict(_valid(SystemConfigInput, request.data).validated_data)
        key = {k: data.pop(k) for k in ("scope", "kind")}
        if SystemConfig.objects.filter(name=data["name"], **key).exists():
            raise ValidationError(
                {"name": f"a system config {key['scope']}/{key['kind']}/{data['name']} exists"}
            )
        config = services.config_save(SystemConfig(**key), **data)
        _config_saved(request, "Create", config)
        return Response(SystemConfigSerializer(config).data, status=status.HTTP_201_CREATED)


class SystemConfigDetail(OrgAPIView):
    allow_without_org = True
    required_permissions = {
        "GET": roles.SYSTEM_ADMIN,
        "PUT": roles.SYSTEM_ADMIN,
        "DELETE": roles.SYSTEM_ADMIN,
    }

    @extend_schema(responses=SystemConfigSerializer)
    def get(self, request: AuthedRequest, pk: int) -> Response:
        return Response(SystemConfigSerializer(get_object_or_404(SystemConfig, pk=pk)).data)

    @extend_schema(request=SystemConfigInput, responses=SystemConfigSerializer)
    def put(self, request: AuthedRequest, pk: int) -> Response:
        config = get_object_or_404(SystemConfig, pk=pk)
        data = dict(_valid(SystemConfigInput, request.data).validated_data)
        config.scope, config.kind = data.pop("scope"), data.pop("kind")
        clash = SystemConfig.objects.filter(scope=config.scope, kind=config.kind, name=data["name"])
        if clash.exclude(pk=pk).exists():
            raise ValidationError({"name": "another system config has that scope, kind and name"})
        config = services.config_save(config, **data)
        _config_saved(request, "Update", config)
        return Response(SystemConfigSerializer(config).data)

    @extend_schema(responses={200: None})
    def delete(self, request: AuthedRequest, pk: int) -> Response:
        config = get_object_or_404(SystemConfig, pk=pk)
        _config_saved(request, "Delete", config)
        config.delete()
        return Response(status=status.HTTP_200_OK)


# -- subscriptions --------------------------------------------------------------------------------


def _subscriptions(request: AuthedRequest) -> QuerySet[Subscription]:
    return Subscription.objects.filter(organization__in=_visible_orgs(request))


class SubscriptionListCreate(OrgAPIView):
    allow_without_org = True
    required_permissions = {"GET": "Subscription:Read", "POST": "Subscription:Write"}

    @extend_schema(responses=SubscriptionSerializer(many=True), parameters=[OpenApiParameter("active", bool)])
    def get(self, request: AuthedRequest) -> Response:
        qs = _subscriptions(request)
        active = request.query_params.get("active")
        if active:
            if active.lower() not in ("true", "false", "1", "0"):
                raise ValidationError({"active": f"must be true or false, got {active!r}"})
            qs = qs.filter(active=active.lower() in ("true", "1"))
        return self.paginate(request, qs, SubscriptionSerializer)

    @extend_schema(
        request=SubscriptionInput,
        responses={201: SubscriptionSerializer},
        description="A new active subscription ends the organization's current one.",
    )
    def post(self, request: AuthedRequest) -> Response:
        data = dict(_valid(SubscriptionInput, request.data).validated_data)
        org_id = data.pop("organization_id", None) or request.user.organization_id
        if not org_id:
            raise ValidationError({"organization_id": "required: you belong to no organization"})
        org = get_object_or_404(_visible_orgs(request), pk=org_id)
        subscription = services.subscription_save(Subscription(organization=org, user=request.user), data)
        audit.record(request, "Subscription:Create", subscription, summary=f"{subscription.policy} plan",
                     data={k: v for k, v in data.items() if not hasattr(v, "isoformat")})  # fmt: skip
        return Response(SubscriptionSerializer(subscription).data, status=status.HTTP_201_CREATED)


class SubscriptionDetail(OrgAPIView):
    allow_without_org = True
    required_permissions = {
        "GET": "Subscription:Read",
        "PUT": "Subscription:Write",
        "DELETE": "Subscription:Write",
    }

    @extend_schema(responses=SubscriptionSerializer)
    def get(self, request: AuthedRequest, pk: int) -> Response:
        return Response(SubscriptionSerializer(get_object_or_404(_subscriptions(request), pk=pk)).data)

    @extend_schema(request=SubscriptionInput, responses=SubscriptionSerializer)
    def put(self, request: AuthedRequest, pk: int) -> Response:
        subscription = get_object_or_404(_subscriptions(request), pk=pk)
        data = dict(_valid(SubscriptionInput, request.data).validated_data)
        if data.pop("organization_id", subscription.organization_id) != subscription.organization_id:
            raise ValidationError({"organization_id": "a subscription cannot move to another organization"})
        subscription = services.subscription_save(subscription, data)
        audit.record(request, "Subscription:Update", subscription, summary=f"updated {', '.join(sorted(data))}",
                     data={k: v for k, v in data.items() if not hasattr(v, "isoformat")})  # fmt: skip
        return Response(SubscriptionSerializer(subscription).data)

    @extend_schema(responses={200: None})
    def delete(self, request: AuthedRequest, pk: int) -> Response:
        subscription = get_object_or_404(_subscriptions(request), pk=pk)
        audit.record(
            request, "Subscription:Delete", subscription, summary=f"deleted the {subscription.policy} plan"
        )
        subscription.delete()
        return Response(status=status.HTTP_200_OK)
