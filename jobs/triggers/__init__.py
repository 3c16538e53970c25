"""Event triggers: webhook, S3 and queue events that start job requests (docs/triggers.md).

The pure part (checks, templates, signatures) is jobs/definition/triggers.py; here are the state
and firing rows, the service that fires, the S3 and queue pollers and their Celery task.
"""
