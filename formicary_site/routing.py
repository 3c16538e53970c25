"""Websocket routes of every app."""

from ants.web.routing import websocket_urlpatterns as ant_routes
from jobs.routing import websocket_urlpatterns as job_routes

websocket_urlpatterns = [*job_routes, *ant_routes]
