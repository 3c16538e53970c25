"""Manual approval decisions (jobs.definition.approvals), pure: the policy, who may vote, what the
votes decide, and the SLA."""

import pytest

from jobs.definition.approvals import (
    APPROVED,
    AUTO_REJECT,
    ESCALATE,
    PENDING,
    REJECTED,
    ApprovalPolicy,
    PolicyError,
    Review,
    decide,
    may_review,
    on_deadline,
)


def test_defaults_and_a_full_policy() -> None:
    assert ApprovalPolicy.parse(None) == ApprovalPolicy()
    policy = ApprovalPolicy.parse({
        "min_approvals": 2, "require_unanimous": True, "sla_deadline": "4h", "timeout_action": "auto_reject",
        "escalation_recipients": "a@x.io, b@x.io", "escalation_message": "late", "allowed_users": ["ann", "bo"],
    })  # fmt: skip
    assert policy.sla_deadline_secs == 4 * 3600 and policy.timeout_action == AUTO_REJECT
    assert policy.escalation_recipients == ("a@x.io", "b@x.io") and policy.allowed_users == ("ann", "bo")


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ({"min_approvals": 0}, "min_approvals"),
        ({"min_approvals": "2"}, "min_approvals"),
        ({"require_unanimous": "yes"}, "require_unanimous"),
        ({"sla_deadline": "soon"}, "sla_deadline"),
        ({"sla_deadline": "-1h"}, "sla_deadline: must be positive"),
        ({"timeout_action": "WAIT"}, "timeout_action"),
        ({"escalation_recipients": 5}, "escalation_recipients"),
        ({"min_approvals": 3, "allowed_users": "a,b"}, "cannot come from 2 allowed users"),
        ({"approvers": 2}, "approval_policy.approvers: unknown"),
    ],
)
def test_bad_policies_name_the_field(raw, needle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyError, match=needle):
        ApprovalPolicy.parse(raw)


def _reviews(*votes: str) -> list[Review]:
    return [Review(f"user{i}", v) for i, v in enumerate(votes)]


@pytest.mark.parametrize(
    ("raw", "votes", "state"),
    [
        ({}, (), PENDING),
        ({}, (APPROVED,), APPROVED),
        ({}, (REJECTED,), REJECTED),
        ({"min_approvals": 2}, (APPROVED,), PENDING),
        ({"min_approvals": 2}, (APPROVED, APPROVED), APPROVED),
        ({"min_approvals": 2, "require_unanimous": True}, (APPROVED, REJECTED), REJECTED),
        # with a known pool, a rejection rejects only once the quorum cannot be reached
        ({"min_approvals": 2, "allowed_users": "user0,user1,user2"}, (REJECTED,), PENDING),
        (
            {"min_approvals": 2, "allowed_users": "user0,user1,user2"},
            (REJECTED, APPROVED, APPROVED),
            APPROVED,
        ),
        ({"min_approvals": 2, "allowed_users": "user0,user1,user2"}, (REJECTED, REJECTED), REJECTED),
        # without a pool any rejection is final, as in the reference
        ({"min_approvals": 2}, (APPROVED, REJECTED), REJECTED),
    ],
)
def test_what_the_votes_decide(raw, votes, state) -> None:  # type: ignore[no-untyped-def]
    assert decide(ApprovalPolicy.parse(raw), _reviews(*votes)).state == state


def test_who_may_vote() -> None:
    policy = ApprovalPolicy.parse({"allowed_users": "ann", "allowed_roles": "owner"})
    votes = [Review("ann", APPROVED)]
    assert (
        may_review(policy, votes, reviewer="ann", role="admin", requester="x")
        == "ann has already reviewed this task"
    )
    assert may_review(policy, [], reviewer="ann", role="member", requester="x") == ""
    assert may_review(policy, [], reviewer="olga", role="owner", requester="x") == ""
    assert "not among the allowed" in may_review(policy, [], reviewer="bo", role="admin", requester="x")
    barred = ApprovalPolicy.parse({"allow_self_approval": False})
    assert "requester" in may_review(barred, [], reviewer="bo", role="admin", requester="bo")
    assert may_review(ApprovalPolicy(), [], reviewer="bo", role="admin", requester="bo") == ""


def test_the_sla() -> None:
    assert on_deadline(ApprovalPolicy(), 10**9) == ""  # no deadline, no action
    policy = ApprovalPolicy.parse({"sla_deadline": "30m"})
    assert on_deadline(policy, 1799) == "" and on_deadline(policy, 1800) == ESCALATE
    assert (
        on_deadline(ApprovalPolicy.parse({"sla_deadline": 60, "timeout_action": "AUTO_REJECT"}), 61)
        == AUTO_REJECT
    )


def test_keys_of_mixed_types_are_named_not_a_crash() -> None:
    with pytest.raises(PolicyError, match="approval_policy.1: unknown field"):
        ApprovalPolicy.parse({1: 2, "a": 3})
