"""Manual approval (a task with ``method: MANUAL``): its ``approval_policy`` and what the reviews
so far decide. Pure: the queen records reviews and carries the outcome out.

The rules follow the reference: ``min_approvals`` approvals (default 1) approve; with
``require_unanimous`` any rejection rejects; without it a rejection rejects only once the quorum
cannot be reached any more (with ``allowed_users`` the pool of voters is known; without it any
rejection is taken as final, as the reference does). On ``sla_deadline`` the ``timeout_action``
applies: ``AUTO_REJECT``, ``AUTO_APPROVE`` or ``ESCALATE`` (the default: people are told, and the
task keeps waiting). A person votes once. The requester may vote unless the policy says
``allow_self_approval: false`` (this project's addition: a reviewer other than the author).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobs.definition.durations import parse_duration

APPROVED = "APPROVED"
REJECTED = "REJECTED"
PENDING = "PENDING"
AUTO_APPROVE = "AUTO_APPROVE"
AUTO_REJECT = "AUTO_REJECT"
ESCALATE = "ESCALATE"
TIMEOUT_ACTIONS = (AUTO_APPROVE, AUTO_REJECT, ESCALATE)
MAX_APPROVALS = 100


class PolicyError(ValueError):
    """A field of ``approval_policy`` is wrong; the message names it."""


def _names(value: Any, field: str) -> tuple[str, ...]:
    """A comma-separated string (the reference's form) or a list of names."""
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        parts: Iterable[Any] = value.split(",")
    elif isinstance(value, list | tuple):
        parts = value
    else:
        raise PolicyError(f"approval_policy.{field}: expected a comma-separated string or a list")
    return tuple(s for s in (str(p).strip() for p in parts) if s)


@dataclass(frozen=True)
class ApprovalPolicy:
    min_approvals: int = 1
    require_unanimous: bool = False
    sla_deadline_secs: float = 0.0  # 0: no deadline
    timeout_action: str = ESCALATE
    escalation_recipients: tuple[str, ...] = ()
    escalation_message: str = ""
    allowed_users: tuple[str, ...] = ()  # usernames; empty: anyone with JobRequest:Approve
    allowed_roles: tuple[str, ...] = ()
    allow_self_approval: bool = True

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None) -> ApprovalPolicy:
        """The policy of a task definition; raises ``PolicyError`` naming the field."""
        raw = raw or {}
        if not isinstance(raw, Mapping):
            raise PolicyError("approval_policy: expected a mapping")
        unknown = sorted((str(k) for k in set(raw) - _FIELDS), key=str)
        if unknown:
            raise PolicyError(f"approval_policy.{unknown[0]}: unknown field")
        minimum = raw.get("min_approvals", 1)
        if isinstance(minimum, bool) or not isinstance(minimum, int) or not 1 <= minimum <= MAX_APPROVALS:
            raise PolicyError(
                f"approval_policy.min_approvals: expected a whole number from 1 to {MAX_APPROVALS}"
            )
        flags = {}
        for name in ("require_unanimous", "allow_self_approval"):
            value = raw.get(name, name == "allow_self_approval")
            if not isinstance(value, bool):
                raise PolicyError(f"approval_policy.{name}: expected true or false")
            flags[name] = value
        sla = 0.0
        if raw.get("sla_deadline") not in (None, "", 0):
            try:
                sla = parse_duration(raw["sla_deadline"])
            except ValueError as exc:
                raise PolicyError(f"approval_policy.sla_deadline: {exc}") from None
            if sla <= 0:
                raise PolicyError("approval_policy.sla_deadline: must be positive")
        action = str(raw.get("timeout_action") or ESCALATE).upper()
        if action not in TIMEOUT_ACTIONS:
            raise PolicyError(f"approval_policy.timeout_action: expected one of {', '.join(TIMEOUT_ACTIONS)}")
        message = raw.get("escalation_message", "")
        if not isinstance(message, str):
            raise PolicyError("approval_policy.escalation_message: expected text")
        policy = cls(
            min_approvals=minimum, sla_deadline_secs=sla, timeout_action=action,
            escalation_recipients=_names(raw.get("escalation_recipients"), "escalation_recipients"),
            escalation_message=message, allowed_users=_names(raw.get("allowed_users"), "allowed_users"),
            allowed_roles=_names(raw.get("allowed_roles"), "allowed_roles"), **flags,
        )  # fmt: skip
        if policy.allowed_users and policy.min_approvals > len(policy.allowed_users):
            raise PolicyError(
                f"approval_policy.min_approvals: {minimum} approvals cannot come from "
                f"{len(policy.allowed_users)} allowed users"
            )
        return policy


_FIELDS = {
    "min_approvals", "require_unanimous", "sla_deadline", "timeout_action", "escalation_recipients",
    "escalation_message", "allowed_users", "allowed_roles", "allow_self_approval",
}  # fmt: skip


@dataclass(frozen=True)
class Review:
    reviewer: str  # username
    status: str  # APPROVED | REJECTED
    comments: str = ""


@dataclass(frozen=True)
class Outcome:
    state: str  # PENDING | APPROVED | REJECTED
    reason: str


def may_review(
    policy: ApprovalPolicy, reviews: Sequence[Review], *, reviewer: str, role: str, requester: str
) -> str:
    """Why ``reviewer`` (of ``role``) may not vote now, or "" when they may."""
    if any(r.reviewer == reviewer for r in reviews):
        return f"{reviewer} has already reviewed this task"
    if not policy.allow_self_approval and reviewer == requester:
        return "the policy bars the requester from reviewing their own request"
    if (policy.allowed_users or policy.allowed_roles) and not (
        reviewer in policy.allowed_users or role in policy.allowed_roles
    ):
        return f"{reviewer} is not among the allowed reviewers"
    return ""


def decide(policy: ApprovalPolicy, reviews: Sequence[Review]) -> Outcome:
    """What the reviews so far decide."""
    approvals = sum(1 for r in reviews if r.status == APPROVED)
    rejections = sum(1 for r in reviews if r.status == REJECTED)
    if rejections:
        if policy.require_unanimous:
            return Outcome(REJECTED, "rejected (unanimous approval required)")
        if not policy.allowed_users:
            return Outcome(REJECTED, f"rejected by {rejections} reviewer(s)")
        left = max(len(policy.allowed_users) - approvals - rejections, 0)
        if approvals + left < policy.min_approvals:
            return Outcome(REJECTED, f"{policy.min_approvals} approvals can no longer be reached")
    if approvals >= policy.min_approvals:
        return Outcome(APPROVED, f"approved by {approvals} of {policy.min_approvals} required")
    return Outcome(PENDING, f"waiting: {approvals} of {policy.min_approvals} approvals")


def on_deadline(policy: ApprovalPolicy, waited_secs: float) -> str:
    """The action due once the task has waited ``waited_secs``: "" (none yet, or no SLA), or
    one of the timeout actions (ESCALATE fires once; the caller remembers that it did)."""
    if not policy.sla_deadline_secs or waited_secs < policy.sla_deadline_secs:
        return ""
    return policy.timeout_action
