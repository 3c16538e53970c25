from django.apps import AppConfig


class AntsConfig(AppConfig):
    name = "ants"
    verbose_name = "Ants (workers)"
