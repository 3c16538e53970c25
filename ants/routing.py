"""Websocket routes for WEBSOCKET ants."""

websocket_urlpatterns: list = []
