"""OpenAPI description of the bearer-token authentication (imported when the app is ready) and
of the permission each operation needs."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from orgs.permissions import required_permission


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "orgs.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "http", "scheme": "bearer", "description": "an API token: manage.py create_api_token"}


class PermissionAutoSchema(AutoSchema):
    """Each operation's description names the permission it needs (``orgs.roles``)."""

    def get_operation(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        operation = super().get_operation(*args, **kwargs)
        if operation is not None:
            needed = required_permission(self.view, self.method)
            text = operation.get("description", "")
            operation["description"] = f"{text}\n\nNeeds the `{needed}` permission.".strip()
        return operation
