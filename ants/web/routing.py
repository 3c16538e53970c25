"""Websocket routes for WEBSOCKET ants (see ants/consumers.py and docs/websocket-ants.md)."""

from django.urls import re_path

from ants.consumers import AntConsumer

websocket_urlpatterns: list = [
    re_path(r"^ws/ants/?$", AntConsumer.as_asgi()),
]
