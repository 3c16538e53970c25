"""Shared pieces of every tenant API view."""

from typing import Any

from django.db.models import QuerySet
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from formicary_site.pagination import Pagination
from formicary_site.parsers import check_query
from orgs.authed import AuthedRequest


def new_paginator() -> Pagination:
    """An instance of the configured pagination class (REST_FRAMEWORK's DEFAULT_PAGINATION_CLASS),
    which pages querysets and plain lists alike."""
    # the stubs type the setting as its dotted path; api_settings imports it: a class at runtime
    pagination_class: type[Pagination] = api_settings.DEFAULT_PAGINATION_CLASS  # type: ignore[assignment]
    return pagination_class()


class OrgAPIView(APIView):
    """An API view for a member of an organization; ``self.org_id`` scopes every query."""

    request: AuthedRequest  # the default permission (HasPermission) refuses anonymous callers

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        check_query(request.query_params)

    @property
    def org_id(self) -> int:
        org_id = self.request.user.organization_id
        assert org_id is not None, "HasPermission lets only members of an organization through"
        return org_id

    def paginate(
        self, request: Request, queryset: QuerySet, serializer_class: Any, total: int | None = None
    ) -> Response:
        """A page of ``queryset``; ``total`` (TotalRecords) when the caller knows it, else counted."""
        paginator = new_paginator()
        paginator.known_total = total
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)
