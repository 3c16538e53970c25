"""Celery app for notifications, webhooks, reports and artifact expiry."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "formicary_site.settings")

app = Celery("formicary")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
