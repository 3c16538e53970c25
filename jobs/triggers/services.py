"""Firing triggers: an event becomes a job request through the submit service, at most once.

Every event leaves a TriggerFiring row saying what became of it (fired, filtered, duplicate,
rate_limited, error and why). A firing runs in one transaction holding the trigger's state row,
so the rate window is counted exactly; the unique constraints of TriggerFiring drop an S3 object
or queue message seen twice and a second request for a dedup key, even across processes.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from jobs.definition.triggers import (
    KINDS,
    Decision,
    TriggerSpec,
    authorized,
    evaluate,
    github_push_params,
    signature_matches,
    trigger_named,
    webhook_event,
)
from jobs.models import JobConfig, JobDefinition
from jobs.services.requests import request_submit
from jobs.triggers.models import Outcome, TriggerFiring, TriggerState

GITHUB_SECRET_CONFIG = "GithubWebhookSecret"
GITHUB = "github"  # the state row GitHub pushes record their firings in
KEEP_UNKEYED_FIRINGS = 200  # webhook firings kept per trigger (keyed ones are the exactly-once memory)


class TriggerNotFound(Exception):
    pass


class TriggerUnauthorized(Exception):
    pass


class TriggerAmbiguous(Exception):
    pass


@dataclass(frozen=True)
class FireResult:
    outcome: str  # an Outcome, or "seen" for an event key handled before
    request_id: int | None = None
    reason: str = ""


# ---------------------------------------------------------------- finding triggers


def live_definitions() -> QuerySet[JobDefinition]:
    """The versions new requests run: only their triggers act."""
    return JobDefinition.objects.filter(is_latest=True, deleted_at__isnull=True)


def state_for(*, org_id: int, job_type: str, name: str, kind: str) -> TriggerState:
    state, _ = TriggerState.objects.get_or_create(
        organization_id=org_id, job_type=job_type, name=name, defaults={"kind": kind}
    )
    return state


def _config_secret(org_id: int, job_type: str, name: str) -> str:
    config = JobConfig.objects.filter(organization_id=org_id, job_type=job_type, name=name).first()
    return config.plain_value() if config else ""


T = TypeVar("T")


def _matching_org(
    candidates: list[tuple[int, T]], matches: Callable[[int, T], bool], what: str
) -> tuple[int, T]:
    """The one candidate (org id, thing) whose credential verifies: the path names no
    organization, so the secret picks it (two organizations may share a job type and name)."""
    verified = [(org_id, thing) for org_id, thing in candidates if matches(org_id, thing)]
    if not verified:
        raise TriggerUnauthorized(f"{what}: missing or wrong credential")
    if len(verified) > 1:
        raise TriggerAmbiguous(
            f"{what}: several organizations accept this credential; add ?org=<organization name>"
        )
    return verified[0]


# ---------------------------------------------------------------- firing


def _record(
    state: TriggerState, outcome: str, *, reason: str = "", event_key: str = "", **kw: Any
) -> TriggerFiring:
    return TriggerFiring.objects.create(
        organization_id=state.organization_id, state=state, outcome=outcome, reason=reason[:2000],
        event_key=event_key[:500], **kw,
    )  # fmt: skip


def _over_rate(state: TriggerState, trigger: TriggerSpec) -> bool:
    """Counts this firing in a fixed window unless it is full (the caller holds the row)."""
    if not trigger.rate_max:
        return False
    now = timezone.now()
    if state.window_start is None or now >= state.window_start + timedelta(seconds=trigger.rate_window_secs):
        state.window_start, state.window_count = now, 0
    if state.window_count >= trigger.rate_max:
        return True
    state.window_count += 1
    TriggerState.objects.filter(pk=state.pk).update(
        window_start=state.window_start, window_count=state.window_count
    )
    return False


def fire(
    *,
    state: TriggerState,
    trigger: TriggerSpec,
    decision: Decision,
    event_key: str = "",
    locked: bool = False,
) -> FireResult:
    """Act on a decision for ``state``'s trigger: one request, or a row saying why none."""
    with transaction.atomic():
        if not locked:
            state = TriggerState.objects.select_for_update().get(pk=state.pk)
        if event_key and TriggerFiring.objects.filter(state=state, event_key=event_key[:500]).exists():
            return FireResult("seen")
        if not decision.fire:
            _record(state, Outcome.FILTERED, reason=decision.reason, event_key=event_key)
            return FireResult(Outcome.FILTERED, reason=decision.reason)
        if decision.user_key:
            earlier = TriggerFiring.objects.filter(
                state=state, outcome=Outcome.FIRED, dedup_key=decision.user_key
            )
            first = earlier.values_list("job_request_id", flat=True).first()
            if first is not None or earlier.exists():
                reason = f"dedup_key {decision.user_key!r} already fired"
                _record(state, Outcome.DUPLICATE, reason=reason, event_key=event_key, dedup_key=decision.user_key,
                        job_request_id=first)  # fmt: skip
                return FireResult(Outcome.DUPLICATE, request_id=first, reason=reason)
        if _over_rate(state, trigger):
            reason = f"rate limit: {trigger.rate_max} per {trigger.rate_window_secs:g}s"
            _record(state, Outcome.RATE_LIMITED, reason=reason, event_key=event_key)
            return FireResult(Outcome.RATE_LIMITED, reason=reason)
        try:
            # the fired row first: a concurrent duplicate fails here, before any request exists
            with transaction.atomic():
                firing = _record(state, Outcome.FIRED, event_key=event_key, dedup_key=decision.user_key)
        except IntegrityError:
            return FireResult("seen")
        try:
            with transaction.atomic():
                request = request_submit(
                    org_id=state.organization_id, user=None, job_type=state.job_type, params=decision.params,
                    user_key=decision.user_key, triggered_by=_by(state),
                )  # fmt: skip
        except ValidationError as exc:
            reason = "; ".join(exc.messages)
            TriggerFiring.objects.filter(pk=firing.pk).update(outcome=Outcome.ERROR, reason=reason[:2000])
            return FireResult(Outcome.ERROR, reason=reason)
        TriggerFiring.objects.filter(pk=firing.pk).update(job_request=request)
        _prune(state)
        return FireResult(Outcome.FIRED, request_id=request.pk)


def _by(state: TriggerState) -> str:
    """What a request's "triggered by" says: ``webhook trigger deploy-hook``, ``github trigger``."""
    return f"{state.kind} trigger" + ("" if state.name == state.kind else f" {state.name}")


def _prune(state: TriggerState) -> None:
    old = TriggerFiring.objects.filter(state=state, event_key="").values_list("pk", flat=True)[
        KEEP_UNKEYED_FIRINGS:
    ]
    ids = list(old[:100])
    if ids:
        TriggerFiring.objects.filter(pk__in=ids).delete()


# ---------------------------------------------------------------- webhook triggers


def webhook_receive(
    *, job_type: str, name: str, org_name: str, body: bytes, headers: dict[str, str], query: dict[str, str]
) -> FireResult:
    """A call of ``POST /api/triggers/{job_type}/{name}``: authorized by the trigger's secret."""
    definitions = live_definitions().filter(job_type=job_type)
    if org_name:
        definitions = definitions.filter(organization__name=org_name)
    candidates: list[tuple[int, TriggerSpec]] = []
    for org_id, spec in definitions.values_list("organization_id", "spec"):
        trigger = trigger_named((spec or {}).get("triggers") or [], name)
        if trigger is not None and trigger.type == "webhook":
            candidates.append((org_id, trigger))
    if not candidates:
        raise TriggerNotFound(f"no webhook trigger {name!r} of job type {job_type!r}")
    lowered = {k.lower(): v for k, v in headers.items()}

    def matches(org_id: int, trigger: TriggerSpec) -> bool:
        secret = _config_secret(org_id, job_type, trigger.secret_config)
        return authorized(trigger, lowered.get(trigger.header.lower(), ""), secret, body)

    org_id, webhook = _matching_org(candidates, matches, f"trigger {name!r}")
    state = state_for(org_id=org_id, job_type=job_type, name=name, kind="webhook")
    return fire(state=state, trigger=webhook, decision=evaluate(webhook, webhook_event(body, headers, query)))


# ---------------------------------------------------------------- GitHub post-commit


@dataclass(frozen=True)
class GithubResult:
    status: str  # pong | ignored | fired
    message: str = ""
    fired: FireResult | None = None


def github_receive(*, job_type: str, org_name: str, body: bytes, headers: dict[str, str]) -> GithubResult:
    """A GitHub webhook delivery for ``job_type``, signed with its job config GithubWebhookSecret."""
    configs = JobConfig.objects.filter(job_type=job_type, name=GITHUB_SECRET_CONFIG)
    if org_name:
        configs = configs.filter(organization__name=org_name)
    candidates = [(c.organization_id, c) for c in configs]
    if not candidates:
        raise TriggerNotFound(f"job type {job_type!r} has no job config {GITHUB_SECRET_CONFIG}")
    lowered = {k.lower(): v for k, v in headers.items()}
    signature = lowered.get("x-hub-signature-256", "")
    org_id, _ = _matching_org(
        candidates,
        lambda _org, config: signature_matches(signature, config.plain_value(), body),
        "GitHub webhook",
    )
    event = lowered.get("x-github-event", "")
    if event == "ping":
        return GithubResult("pong", f"pong: job type {job_type!r} receives push events")
    if event != "push":
        return GithubResult("ignored", f"event {event or '(none)'!r} is not handled: only push starts a job")
    payload = webhook_event(body, {}, {})["Body"]
    params, why = github_push_params(payload)
    if params is None:
        return GithubResult("ignored", why)
    state = state_for(org_id=org_id, job_type=job_type, name=GITHUB, kind=GITHUB)
    # GitHub redelivers with the same delivery id: that is the exactly-once key
    result = fire(
        state=state, trigger=TriggerSpec(name=GITHUB, type=GITHUB), decision=Decision(True, params=params),
        event_key=lowered.get("x-github-delivery", ""),
    )  # fmt: skip
    return GithubResult("fired", fired=result)


# ---------------------------------------------------------------- state


def trigger_spec_of(definition: JobDefinition, name: str) -> TriggerSpec | None:
    if name == GITHUB:
        return TriggerSpec(name=GITHUB, type=GITHUB)
    return trigger_named((definition.spec or {}).get("triggers") or [], name)


def trigger_reset(*, state: TriggerState) -> TriggerState:
    """Forget the cursor and the rate window; the firings stay (they are the history)."""
    TriggerState.objects.filter(pk=state.pk).update(
        cursor="",
        window_start=None,
        window_count=0,
        last_polled_at=None,
        last_error="",
        updated_at=timezone.now(),
    )
    state.refresh_from_db()
    return state


__all__ = ["KINDS", "FireResult", "fire", "github_receive", "trigger_reset", "webhook_receive"]
