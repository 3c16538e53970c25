"""Pagination in the reference system's shape: ``page`` (from 0) and ``pageSize`` in,
``Records``/``TotalRecords``/``Page``/``PageSize``/``TotalPages`` out."""

import math
from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response

MAX_PAGE_SIZE = 1000


def _int_param(request: Any, names: tuple[str, ...], default: int, lo: int, hi: int) -> int:
    for name in names:
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            continue
        try:
            value = int(raw)
        except ValueError:
            raise ValidationError({name: f"must be a whole number, got {raw!r}"}) from None
        if not lo <= value <= hi:
            raise ValidationError({name: f"must be between {lo} and {hi}"})
        return value
    return default


class Pagination(BasePagination):
    default_page_size = 200
    known_total: int | None = None  # set by a view that counts its rows better than count()

    def paginate_queryset(self, queryset, request, view=None):  # type: ignore[no-untyped-def]
        self.page = _int_param(request, ("page",), 0, 0, 10_000_000)
        self.page_size = _int_param(
            request, ("pageSize", "page_size"), self.default_page_size, 1, MAX_PAGE_SIZE
        )
        self.total = queryset.count() if self.known_total is None else self.known_total
        start = self.page * self.page_size
        return list(queryset[start : start + self.page_size])

    def get_paginated_response(self, data):  # type: ignore[no-untyped-def]
        return Response(
            {
                "Records": data,
                "TotalRecords": self.total,
                "Page": self.page,
                "PageSize": self.page_size,
                "TotalPages": math.ceil(self.total / self.page_size) if self.page_size else 0,
            }
        )

    def get_paginated_response_schema(self, schema):  # type: ignore[no-untyped-def]
        return {
            "type": "object",
            "properties": {
                "Records": schema,
                "TotalRecords": {"type": "integer"},
                "Page": {"type": "integer"},
                "PageSize": {"type": "integer"},
                "TotalPages": {"type": "integer"},
            },
        }
