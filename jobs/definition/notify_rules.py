"""Who is told when a job or a task ends: the reference's `notify` rules, as pure functions.

`notify: {email: {recipients: [...], when: ...}, slack: {recipients: [channels], when: ...}}`;
`when` is `always` (default), `onSuccess`, `onFailure` (also the first success after a failure)
or `never`. A channel whose rendered `except` contains "true" is suppressed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHANNELS = ("email", "slack")
WHEN = ("always", "onSuccess", "onFailure", "never")


@dataclass(frozen=True)
class Notice:
    channel: str  # "email" or "slack"
    recipients: tuple[str, ...]


def should_notify(when: str, succeeded: bool, previous_succeeded: bool | None) -> bool:
    """``previous_succeeded``: how the job type's run before this one ended (None: no earlier run)."""
    if when == "never":
        return False
    if when == "onSuccess":
        return succeeded
    if when == "onFailure":
        return not succeeded or previous_succeeded is False
    return True


def notices(notify: dict[str, Any], succeeded: bool, previous_succeeded: bool | None) -> list[Notice]:
    """The channels to send on, from a job's or a task's rendered ``notify`` mapping."""
    out: list[Notice] = []
    for channel in CHANNELS:
        conf = notify.get(channel)
        if not isinstance(conf, dict):
            continue
        if "true" in str(conf.get("except") or notify.get("except") or ""):
            continue
        recipients = conf.get("recipients") or []
        if isinstance(recipients, str):
            recipients = [r.strip() for r in recipients.split(",")]
        recipients = tuple(str(r).strip() for r in recipients if str(r).strip())
        if recipients and should_notify(str(conf.get("when") or "always"), succeeded, previous_succeeded):
            out.append(Notice(channel, recipients))
    return out


def problems(notify: dict[str, Any]) -> list[str]:
    """What is wrong with a `notify` mapping, as sentences (empty when it is fine)."""
    out = []
    for channel, conf in notify.items():
        if channel == "except":
            continue
        if channel not in CHANNELS:
            out.append(f"notify.{channel}: unknown channel (email or slack)")
        elif isinstance(conf, dict) and str(conf.get("when") or "always") not in WHEN:
            out.append(f"notify.{channel}.when: {conf.get('when')!r} is not one of {', '.join(WHEN)}")
    return out
