from django.apps import AppConfig


class TriggersConfig(AppConfig):
    name = "jobs.triggers"
    label = "triggers"
    verbose_name = "Triggers"
    default_auto_field = "django.db.models.BigAutoField"
