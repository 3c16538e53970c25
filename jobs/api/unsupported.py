"""Calls the reference documents on resources this project has, but which it does not do: a 400
that says so (and what to use instead), rather than a bare 404."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from formicary_site.api import OrgAPIView
from orgs import roles


class Unsupported(OrgAPIView):
    """``what``: the sentence the 400 answers with."""

    what = "this call is not supported"
    # every caller gets the same 400, whatever their role
    required_permissions = dict.fromkeys(("GET", "POST", "PUT", "DELETE"), roles.ANY_USER)

    def _refuse(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise ValidationError(self.what)

    get = post = put = delete = extend_schema(exclude=True)(_refuse)


def unsupported(what: str) -> Any:
    return Unsupported.as_view(what=what)
