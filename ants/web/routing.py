"""Websocket routes for WEBSOCKET ants (see ants/web/consumers.py and docs/websocket-ants.md)."""

from django.urls import re_path

from ants.web.consumers import AntConsumer

websocket_urlpatterns: list = [
    re_path(r"^ws/ants/?$", AntConsumer.as_asgi()),
]
