"""Websocket routes of the web UI (live job events and logs)."""

from django.urls import path

from jobs import consumers

websocket_urlpatterns: list = [
    path("ws/jobs/requests/<int:request_id>/events", consumers.RequestEventsConsumer.as_asgi()),
    path("ws/jobs/tasks/<int:task_id>/logs", consumers.TaskLogConsumer.as_asgi()),
]
