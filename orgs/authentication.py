"""``Authorization: Bearer <token>`` for the REST API."""

from django.utils import timezone
from rest_framework import authentication, exceptions

from orgs.models import ApiToken


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):  # type: ignore[no-untyped-def]
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if not parts:  # a header of only whitespace
            raise exceptions.AuthenticationFailed("Authorization header is empty: send 'Bearer <token>'")
        if parts[0].lower() != self.keyword.lower():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'")
        token = (
            ApiToken.objects.select_related("user", "user__organization")
            .filter(digest=ApiToken.digest_of(parts[1]))
            .first()
        )
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("invalid or revoked API token")
        if token.expires_at and token.expires_at < timezone.now():
            raise exceptions.AuthenticationFailed("API token has expired")
        return token.user, token

    def authenticate_header(self, request) -> str:  # type: ignore[no-untyped-def]
        return self.keyword
