"""Websocket routes of the web UI (live job events and logs)."""

websocket_urlpatterns: list = []
