"""Re-encrypting secrets at rest with the current key (``manage.py rotate_keys``)."""

from jobs.models import JobConfig, JobRequestParam, SystemConfig
from orgs import crypto
from orgs.models import OrgConfig, SecretValueMixin

ENCRYPTED_MODELS: tuple[type[SecretValueMixin], ...] = (OrgConfig, JobConfig, JobRequestParam, SystemConfig)


def secrets_reencrypt(*, only_stale: bool = False, batch: int = 500) -> dict[str, int]:
    """Encrypt every secret row again with ``FORMICARY_ENCRYPTION_KEY`` (``only_stale``: only rows
    still under an old or legacy key). Each row is written only if it did not change meanwhile,
    so a concurrent edit is never overwritten. Returns rows rewritten per model; raises ValueError
    naming the first row no configured key opens (nothing after it is rewritten)."""
    counts: dict[str, int] = {}
    for model in ENCRYPTED_MODELS:
        done = 0
        rows = model._default_manager.filter(secret=True).values_list("pk", "value").order_by("pk")
        for pk, value in rows.iterator(chunk_size=batch):
            if only_stale and crypto.under_current_key(value):
                continue
            try:
                fresh = crypto.reencrypt(value)
            except ValueError as exc:
                raise ValueError(f"{model.__name__} {pk}: {exc}") from None
            done += model._default_manager.filter(pk=pk, value=value).update(value=fresh)
        counts[model.__name__] = done
    return counts
