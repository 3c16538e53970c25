"""Everything that leaves the product when a job or task ends: notifications, webhooks, metrics.

Nothing here runs in the queen's loop or a web request: the queen enqueues ids after its commit
(``hooks``), and the work runs on Celery (``jobs/tasks.py``) or, without a broker, on a small
in-process thread pool (``runner``).
"""
