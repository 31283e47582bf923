"""Pure schedule rules: cron validation and arithmetic, batch modes, entities, which changes move the next run."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.db.models import Schedule, SyncMode
from shared.schedules import (
    ScheduleError,
    apply_changes,
    check_cron,
    check_entity,
    check_mode,
    describe,
    next_run,
    plan_next_run,
)

NOW = datetime(2030, 3, 15, 10, 7, 30, tzinfo=UTC)
PLUS_2 = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/5 * * * *", NOW, datetime(2030, 3, 15, 10, 10, tzinfo=UTC)),
        ("0 2 * * *", NOW, datetime(2030, 3, 16, 2, 0, tzinfo=UTC)),
        ("0 0 1 1 *", NOW, datetime(2031, 1, 1, tzinfo=UTC)),
        # Strictly after: a run exactly at `after` is the one just fired, not the next.
        ("*/5 * * * *", datetime(2030, 3, 15, 10, 10, tzinfo=UTC), datetime(2030, 3, 15, 10, 15, tzinfo=UTC)),
        # Cron is read in UTC, whatever offset the given time carries.
        ("0 12 * * *", datetime(2030, 3, 15, 13, 0, tzinfo=PLUS_2), datetime(2030, 3, 15, 12, 0, tzinfo=UTC)),
    ],
)
def test_next_run_is_the_next_utc_match_strictly_after(expr: str, after: datetime, expected: datetime) -> None:
    result = next_run(expr, after)
    assert result == expected
    assert result.utcoffset() == timedelta(0)


def test_cron_whitespace_is_normalised() -> None:
    assert check_cron("  0   2 *\t* MON-FRI ") == "0 2 * * MON-FRI"
    assert describe("0 2 * * MON-FRI") == "At 02:00 on Monday through Friday"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("61 * * * *", "invalid cron expression '61 * * * *': Bad minute"),
        ("0 25 * * *", "Bad hour"),
        ("0 0 30 2 *", "Bad day-of-month"),
        ("0 0 * 13 *", "Bad month"),
        ("* * * *", "needs 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ("0 * * * * *", "needs 5 fields (minute hour day-of-month month day-of-week), got 6"),
        ("@daily", "got 1"),
        ("", "got 0"),
    ],
)
def test_bad_cron_says_what_is_wrong(expr: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(message)):
        check_cron(expr)


def test_schedules_run_full_or_delta_only() -> None:
    assert check_mode("full") is SyncMode.FULL
    assert check_mode("delta") is SyncMode.DELTA
    with pytest.raises(ScheduleError, match="'custom' needs a from-to window"):
        check_mode("custom")
    with pytest.raises(ScheduleError, match="unknown mode 'weekly'"):
        check_mode("weekly")


def test_unknown_entity_lists_the_known_ones() -> None:
    assert check_entity("sales_order") == "sales_order"
    with pytest.raises(ScheduleError, match="unknown entity 'orders'; expected one of product, category"):
        check_entity("orders")


def schedule(cron: str = "0 2 * * *", active: bool = True) -> Schedule:
    s = Schedule(name="nightly", entity="product", mode="delta", cron=cron, active=active)
    plan_next_run(s, NOW)
    return s


def test_inactive_schedules_have_no_next_run() -> None:
    assert schedule().next_run_at == datetime(2030, 3, 16, 2, 0, tzinfo=UTC)
    assert schedule(active=False).next_run_at is None


def test_next_run_moves_only_when_cron_or_active_changes() -> None:
    s = schedule()
    later = NOW + timedelta(days=3)
    apply_changes(s, {"name": "renamed", "mode": "full", "entity": "category"}, later)
    assert (s.name, s.mode, s.entity) == ("renamed", "full", "category")
    assert s.next_run_at == datetime(2030, 3, 16, 2, 0, tzinfo=UTC)
    # Same cron given again (e.g. by PUT) keeps the planned run.
    apply_changes(s, {"cron": "0 2 * * *", "active": True}, later)
    assert s.next_run_at == datetime(2030, 3, 16, 2, 0, tzinfo=UTC)

    apply_changes(s, {"cron": "30 4 * * *"}, later)
    assert s.next_run_at == datetime(2030, 3, 19, 4, 30, tzinfo=UTC)
    apply_changes(s, {"active": False}, later)
    assert s.next_run_at is None
    apply_changes(s, {"active": True}, later)
    assert s.next_run_at == datetime(2030, 3, 19, 4, 30, tzinfo=UTC)
