"""The pure decisions of orgs.quotas: plan periods, refusals and who may start."""

from datetime import UTC, datetime

from orgs import quotas


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_periods_follow_each_other_from_the_plans_start():
    assert quotas.period_start(at(2026, 1, 10), "WEEKLY", at(2026, 1, 30)) == at(2026, 1, 24)
    assert quotas.period_start(at(2026, 1, 10), "MONTHLY", at(2026, 3, 9, 23)) == at(2026, 2, 10)
    assert quotas.period_start(at(2026, 1, 10), "MONTHLY", at(2026, 3, 10)) == at(2026, 3, 10)
    # the 31st in a shorter month: its last day
    assert quotas.period_start(at(2026, 1, 31), "MONTHLY", at(2026, 3, 1)) == at(2026, 2, 28)
    assert quotas.period_start(at(2026, 1, 31), "MONTHLY", at(2026, 3, 31, 1)) == at(2026, 3, 31)
    assert quotas.period_start(at(2025, 2, 1), "SEMI_ANNUAL", at(2026, 1, 5)) == at(2025, 8, 1)
    assert quotas.period_start(at(2024, 2, 29), "ANNUAL", at(2025, 6, 1)) == at(2025, 2, 28)
    assert quotas.period_start(at(2026, 5, 1), "MONTHLY", at(2026, 4, 1)) == at(2026, 5, 1)  # not begun


def test_refusals_name_the_limit_and_the_usage():
    assert quotas.cpu_refusal(cpu_quota=0, cpu_used=1e9, policy="FREEMIUM", since=at(2026, 1, 1)) is None
    assert quotas.cpu_refusal(cpu_quota=10, cpu_used=9.9, policy="BASIC", since=at(2026, 1, 1)) is None
    why = quotas.cpu_refusal(cpu_quota=10, cpu_used=10.25, policy="BASIC", since=at(2026, 1, 1))
    assert why == ("CPU quota exceeded: this organization used 10.2 CPU seconds since 2026-01-01T00:00:00+00:00, "
                   "the BASIC plan's cpu_quota is 10")  # fmt: skip
    assert quotas.disk_refusal(disk_quota=100, used=60, adding=40, policy="BASIC") is None
    why = quotas.disk_refusal(disk_quota=100, used=60, adding=41, policy="BASIC")
    assert "stores 60 bytes of artifacts plus 41 bytes uploaded" in why and "disk_quota is 100 bytes" in why
    assert quotas.ants_refusal(max_ants=2, registered=1, policy="BASIC") is None
    assert "max_ants is 2" in quotas.ants_refusal(max_ants=2, registered=2, policy="BASIC")


def test_admit_keeps_each_organization_within_the_tighter_limit():
    limits = {
        1: quotas.OrgLimits(name="acme", org_max_concurrency=3, plan_max_concurrency=2, policy="BASIC"),
        2: quotas.OrgLimits(name="globex", org_max_concurrency=1),
    }
    pending = [(10, 1), (11, 2), (12, 1), (13, 2), (14, 3), (15, 1)]
    admitted, waiting = quotas.admit(pending, {1: 1}, limits)
    assert admitted == [10, 11, 14]  # acme had 1 running of 2; globex 0 of 1; org 3 has no limit
    assert waiting == {
        12: "waiting: 2 of 2 concurrent jobs are running (the BASIC plan's max_concurrency)",
        13: "waiting: 1 of 1 concurrent jobs are running (organization globex's max_concurrency)",
        15: "waiting: 2 of 2 concurrent jobs are running (the BASIC plan's max_concurrency)",
    }


def test_admit_holds_everything_of_an_organization_whose_storage_is_full():
    limits = {1: quotas.OrgLimits(name="acme", policy="BASIC", disk_quota=100, storage_used=100)}
    admitted, waiting = quotas.admit([(10, 1), (11, 2)], {}, limits)
    assert admitted == [11]
    assert (
        waiting[10]
        == "waiting: artifact storage is full: 100 of the BASIC plan's disk_quota 100 bytes are used"
    )
