"""Reads of triggers: a definition's triggers with their state and recent firings."""

from typing import Any

from jobs.definition.triggers import TriggerSpec, trigger_named
from jobs.models import JobDefinition
from jobs.triggers.models import TriggerState
from jobs.triggers.services import GITHUB

RECENT_FIRINGS = 50


def _url(definition: JobDefinition, trigger: TriggerSpec) -> str | None:
    if trigger.type == "webhook":
        return f"/api/triggers/{definition.job_type}/{trigger.name}"
    if trigger.type == GITHUB:
        return f"/api/auth/github/webhook?job_type={definition.job_type}"
    return None


def _overview(definition: JobDefinition, trigger: TriggerSpec, state: TriggerState | None) -> dict[str, Any]:
    firings = list(state.firings.all()[:RECENT_FIRINGS]) if state else []
    return {
        "name": trigger.name,
        "type": trigger.type,
        "url": _url(definition, trigger),
        "cursor": state.cursor if state else "",
        "window_start": state.window_start if state else None,
        "window_count": state.window_count if state else 0,
        "rate_limit": {"max": trigger.rate_max, "window_secs": trigger.rate_window_secs}
        if trigger.rate_max
        else None,
        "last_polled_at": state.last_polled_at if state else None,
        "last_error": state.last_error if state else "",
        "firings": firings,
        "state": state,
    }


def _states(definition: JobDefinition) -> dict[str, TriggerState]:
    rows = TriggerState.objects.filter(
        organization_id=definition.organization_id, job_type=definition.job_type
    )
    return {s.name: s for s in rows}


def triggers_overview(definition: JobDefinition) -> list[dict[str, Any]]:
    """The definition's triggers, then GitHub pushes when the job type has received any."""
    states = _states(definition)
    out = []
    for raw in (definition.spec or {}).get("triggers") or []:
        trigger = trigger_named([raw], str(raw.get("name", "")))
        if trigger is not None:
            out.append(_overview(definition, trigger, states.get(trigger.name)))
    if GITHUB in states:
        out.append(_overview(definition, TriggerSpec(name=GITHUB, type=GITHUB), states[GITHUB]))
    return out


def trigger_overview(definition: JobDefinition, name: str) -> dict[str, Any] | None:
    return next((t for t in triggers_overview(definition) if t["name"] == name), None)
