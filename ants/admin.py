from django.contrib import admin

from ants.models import AntRegistration


@admin.register(AntRegistration)
class AntRegistrationAdmin(admin.ModelAdmin):
    list_display = ["ant_id", "alive", "max_capacity", "current_load", "total_executed", "last_heartbeat_at"]
    list_filter = ["alive", "shutting_down"]
    search_fields = ["ant_id"]
    readonly_fields = [f.name for f in AntRegistration._meta.fields]

    def get_exclude(self, request, obj=None):  # type: ignore[no-untyped-def]
        # allocations name other organizations' requests: superusers only
        return None if request.user.is_superuser else ["allocations"]

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        excluded = set(self.get_exclude(request, obj) or [])
        return [f for f in self.readonly_fields if f not in excluded]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False  # ants register themselves
