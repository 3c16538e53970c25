"""S3 and queue triggers: one poll step over every due trigger (the Celery task calls it).

Exactly once whoever polls: each trigger is polled in one transaction holding its state row
(``select_for_update(skip_locked=True)``: a second poller skips it), an object version or message
id is recorded in a unique firing row, and an S3 cursor only moves when that transaction commits.
A crash before the commit leaves the cursor behind and the next poll redoes the work; the
unique rows drop what already fired. Queue messages are acknowledged after the commit; one
left unacknowledged is read again and found already handled.
"""

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.definition.triggers import Decision, TriggerSpec, evaluate, trigger_named
from jobs.triggers.models import TriggerState
from jobs.triggers.services import fire, live_definitions, state_for

log = logging.getLogger(__name__)
QUEUE_CONSUMER = "formicary"  # one consumer name: a message a dead poller left pending is read again
QUEUE_BATCH = 100
_BEFORE = "there before the trigger started (or was reset)"


def triggers_poll(*, force: bool = False) -> int:
    """Poll every S3 and queue trigger that is due (``force``: all of them); the requests started."""
    started = 0
    definitions = live_definitions().filter(disabled=False, spec__triggers__0__isnull=False)
    for org_id, job_type, spec in definitions.values_list("organization_id", "job_type", "spec"):
        for raw in (spec or {}).get("triggers") or []:
            trigger = trigger_named([raw], str(raw.get("name", "")))
            if trigger is None or trigger.type not in ("s3", "queue"):
                continue
            state = state_for(org_id=org_id, job_type=job_type, name=trigger.name, kind=trigger.type)
            try:
                started += poll_one(state=state, trigger=trigger, force=force)
            except Exception as exc:  # one broken trigger (bucket gone, Redis down) must not stop the others
                log.warning("trigger %s failed: %s", state, exc)
                TriggerState.objects.filter(pk=state.pk).update(
                    last_error=str(exc)[:2000], last_polled_at=timezone.now()
                )
    return started


def poll_one(*, state: TriggerState, trigger: TriggerSpec, force: bool = False) -> int:
    acks: list[str] = []
    with transaction.atomic():
        locked = TriggerState.objects.select_for_update(skip_locked=True).filter(pk=state.pk).first()
        if locked is None:
            return 0  # another poller holds it now
        now = timezone.now()
        due = locked.last_polled_at is None or now >= locked.last_polled_at + timedelta(
            seconds=trigger.poll_interval_secs
        )
        if not (due or force):
            return 0
        if trigger.type == "s3":
            started = _poll_s3(locked, trigger)
        else:
            started, acks = _poll_queue(locked, trigger)
        TriggerState.objects.filter(pk=locked.pk).update(
            last_polled_at=now, last_error="", cursor=locked.cursor
        )
    if acks:
        _redis().xack(trigger.topic, trigger.group, *acks)
    return started


# ---------------------------------------------------------------- S3


def _s3_client() -> Any:
    import boto3

    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.FORMICARY_S3_ENDPOINT or None,
        region_name=settings.FORMICARY_S3_REGION or None,
        aws_access_key_id=settings.AWS_ACCESS_KEY_ID or None,
        aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY or None,
    )


def _poll_s3(state: TriggerState, trigger: TriggerSpec) -> int:
    """Objects modified at or after the cursor (inclusive: S3 times have whole seconds; the
    unique firing rows drop the ones seen before). The first poll only takes note: objects
    already there are not new."""
    first = not state.cursor
    since = (
        timezone.now().replace(microsecond=0) - timedelta(seconds=1)
        if first
        else datetime.fromisoformat(state.cursor)
    )
    newest = since
    started = 0
    pages = (
        _s3_client().get_paginator("list_objects_v2").paginate(Bucket=trigger.bucket, Prefix=trigger.prefix)
    )
    for page in pages:
        for obj in page.get("Contents", []):
            modified = obj["LastModified"].astimezone(UTC)
            if modified < since or not obj["Key"].endswith(trigger.suffix):
                continue
            newest = max(newest, modified)
            etag = str(obj.get("ETag", "")).strip('"')
            event_key = f"{etag}:{obj['Key']}"
            if first:
                fire(state=state, trigger=trigger, decision=Decision(False, reason=_BEFORE), event_key=event_key,
                     locked=True)  # fmt: skip
                continue
            event = {"Object": {"Key": obj["Key"], "Bucket": trigger.bucket, "Size": obj.get("Size", 0), "ETag": etag,
                                "LastModified": modified.isoformat()}}  # fmt: skip
            result = fire(state=state, trigger=trigger, decision=evaluate(trigger, event), event_key=event_key,
                          locked=True)  # fmt: skip
            started += result.outcome == "fired"
    state.cursor = newest.isoformat()
    return started


# ---------------------------------------------------------------- Redis streams


def _redis() -> Any:
    import redis

    if not settings.REDIS_URL:
        raise RuntimeError("queue triggers need REDIS_URL (a Redis stream)")
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


def _poll_queue(state: TriggerState, trigger: TriggerSpec) -> tuple[int, list[str]]:
    """New messages of the stream for the trigger's consumer group, and those left pending."""
    import redis

    client = _redis()
    try:
        # "0": a new group reads the stream's backlog too
        client.xgroup_create(trigger.topic, trigger.group, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    started, acks = 0, []
    for read_from in ("0", ">"):  # pending first, then new
        reply = client.xreadgroup(
            trigger.group, QUEUE_CONSUMER, {trigger.topic: read_from}, count=QUEUE_BATCH
        )
        for _stream, messages in reply or []:
            for message_id, fields in messages:
                if fields is None:  # deleted from the stream while pending
                    acks.append(message_id)
                    continue
                event = {
                    "Message": dict(fields),
                    "MessageID": message_id,
                    "Body": _json_or_text(fields.get("body")),
                }
                result = fire(state=state, trigger=trigger, decision=evaluate(trigger, event),
                              event_key=f"msg:{message_id}", locked=True)  # fmt: skip
                started += result.outcome == "fired"
                acks.append(message_id)
    return started, acks


def _json_or_text(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value
