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
    alive = models.BooleanField(default=True)
    shutting_down = models.BooleanField(default=False)
    ant_started_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ant_id"]

    def __str__(self) -> str:
        return self.ant_id
