"""Request types for views behind login or an authenticating API permission: their user is a
``User``, never ``AnonymousUser``. Annotating such a view's ``request`` with them tells mypy what
the decorator or permission class already guarantees at runtime."""

from django.http import HttpRequest
from rest_framework.request import Request

from orgs.models import User


class AuthedHttpRequest(HttpRequest):
    user: User


class AuthedRequest(Request):
    user: User
