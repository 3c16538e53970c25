from django.contrib import admin

from artifacts.models import Artifact
from orgs.admin_scoping import OrgScopedAdmin


@admin.register(Artifact)
class ArtifactAdmin(OrgScopedAdmin):
    read_permission, write_permission = "Artifact:Read", "Artifact:Write"
    list_display = [
        "id",
        "name",
        "kind",
        "job_type",
        "task_type",
        "job_request",
        "size",
        "expires_at",
        "created_at",
    ]
    list_filter = ["kind"]
    search_fields = ["name", "job_type", "task_type", "sha256"]
    readonly_fields = [f.name for f in Artifact._meta.fields if f.name != "expires_at"]

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False
