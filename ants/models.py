"""The queen's record of ants. Only queen-side code imports this; the ant process never does."""

from django.db import models


class AntRegistration(models.Model):
    ant_id = models.CharField(max_length=200, unique=True)
    ant_topic = models.CharField(max_length=300, blank=True)
    tags = models.JSONField(default=list, blank=True)
    methods = models.JSONField(default=list, blank=True)
    max_capacity = models.PositiveIntegerField(default=1)
    current_load = models.PositiveIntegerField(default=0)
    total_executed = models.PositiveIntegerField(default=0)
    allocations = models.JSONField(default=dict, blank=True)
    # Running containers from the last persisted heartbeat (see ants.protocol.AntRegistration).
    containers = models.JSONField(default=list, blank=True)
    # Set for an ant dedicated to one organization (a WEBSOCKET ant a user connected); empty:
    # a shared ant. Only that organization (and superusers) see a dedicated ant in the API.
    organization_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    alive = models.BooleanField(default=True)
    shutting_down = models.BooleanField(default=False)
    ant_started_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ant_id"]

    def __str__(self) -> str:
        return self.ant_id
