"""Shared pieces of every tenant API view."""

from typing import Any

from django.db.models import QuerySet
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from formicary_site.parsers import check_query


class OrgAPIView(APIView):
    """An API view for a member of an organization; ``self.org_id`` scopes every query."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        check_query(request.query_params)

    @property
    def org_id(self) -> int:
        return int(self.request.user.organization_id)

    def paginate(self, request: Request, queryset: QuerySet, serializer_class: Any) -> Response:
        paginator = api_settings.DEFAULT_PAGINATION_CLASS()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(serializer_class(page, many=True).data)
