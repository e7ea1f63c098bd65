"""Schedule expressions with EventBridge Scheduler semantics: a table of expressions and their next fire
times (worked out by hand from the calendar), including L, W, #, ?, year ranges and daylight-saving
transitions in two zones; and the errors for invalid expressions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stratum.monitors.schedule import ScheduleError, parse, preview

AFTER = datetime(2026, 3, 1, tzinfo=UTC)  # a Sunday

TABLE = [
    # (expression, timezone, after, expected next fire times)
    ("cron(0 10 * * ? *)", "UTC", AFTER, ["2026-03-01T10:00:00+00:00", "2026-03-02T10:00:00+00:00"]),
    ("cron(15 12 ? * MON-FRI *)", "UTC", AFTER, ["2026-03-02T12:15:00+00:00", "2026-03-03T12:15:00+00:00"]),
    # SUN-SAT are 1-7: 2 is Monday
    ("cron(0 8 ? * 2 *)", "UTC", AFTER, ["2026-03-02T08:00:00+00:00", "2026-03-09T08:00:00+00:00"]),
    # L: last day of the month; LW: last weekday (May 31 2026 is a Sunday -> Friday 29)
    ("cron(0 0 L * ? *)", "UTC", AFTER, ["2026-03-31T00:00:00+00:00", "2026-04-30T00:00:00+00:00"]),
    ("cron(0 0 LW 5 ? *)", "UTC", AFTER, ["2026-05-29T00:00:00+00:00", "2027-05-31T00:00:00+00:00"]),
    # 6L: the last Friday; L alone in day-of-week: every Saturday
    ("cron(0 10 ? * 6L *)", "UTC", AFTER, ["2026-03-27T10:00:00+00:00", "2026-04-24T10:00:00+00:00"]),
    ("cron(0 12 ? * L *)", "UTC", AFTER, ["2026-03-07T12:00:00+00:00", "2026-03-14T12:00:00+00:00"]),
    # nW: the weekday nearest the 15th (Mar 15 2026 is a Sunday -> Monday 16; Aug 15 2026 a Saturday -> Friday 14)
    ("cron(0 9 15W * ? *)", "UTC", AFTER, ["2026-03-16T09:00:00+00:00", "2026-04-15T09:00:00+00:00"]),
    ("cron(0 9 15W 8 ? *)", "UTC", AFTER, ["2026-08-14T09:00:00+00:00", "2027-08-16T09:00:00+00:00"]),
    # 1W when the 1st is a Saturday: Monday the 3rd (Aug 1 2026), never the month before
    ("cron(0 9 1W 8 ? 2026)", "UTC", AFTER, ["2026-08-03T09:00:00+00:00"]),
    # #: the first Monday, the third Friday
    ("cron(0 8 ? * MON#1 *)", "UTC", AFTER, ["2026-03-02T08:00:00+00:00", "2026-04-06T08:00:00+00:00"]),
    ("cron(30 7 ? * 6#3 *)", "UTC", AFTER, ["2026-03-20T07:30:00+00:00", "2026-04-17T07:30:00+00:00"]),
    # year ranges and lists
    ("cron(0 0 1 1 ? 2028-2029)", "UTC", AFTER, ["2028-01-01T00:00:00+00:00", "2029-01-01T00:00:00+00:00"]),
    ("cron(0 0 29 2 ? *)", "UTC", AFTER, ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]),
    ("cron(0 0 1 1 ? 2027,2030)", "UTC", AFTER, ["2027-01-01T00:00:00+00:00", "2030-01-01T00:00:00+00:00"]),
    ("cron(0 0 1 1 ? 2025)", "UTC", AFTER, []),
    # steps and names
    ("cron(0/20 9 ? JAN-MAR MON *)", "UTC", AFTER, ["2026-03-02T09:00:00+00:00", "2026-03-02T09:20:00+00:00"]),
    # daylight saving, America/New_York: 2026-03-08 02:30 does not exist (skipped); 2026-11-01 01:30 runs once
    (
        "cron(30 2 * * ? *)",
        "America/New_York",
        datetime(2026, 3, 7, tzinfo=UTC),
        ["2026-03-07T02:30:00-05:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        "cron(30 1 * * ? *)",
        "America/New_York",
        datetime(2026, 10, 31, 12, tzinfo=UTC),
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    # Europe/Berlin: 2026-03-29 02:30 does not exist; 2026-10-25 02:30 happens twice and runs once
    (
        "cron(30 2 * * ? *)",
        "Europe/Berlin",
        datetime(2026, 3, 28, 12, tzinfo=UTC),
        ["2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"],
    ),
    (
        "cron(30 2 * * ? *)",
        "Europe/Berlin",
        datetime(2026, 10, 24, 12, tzinfo=UTC),
        ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
    ),
    # hourly through the Berlin fall-back hour: 02:00 once
    (
        "cron(0 * * * ? *)",
        "Europe/Berlin",
        datetime(2026, 10, 24, 23, 30, tzinfo=UTC),
        ["2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00"],
    ),
    # rate: every N units from the start; at: once
    ("rate(1 minute)", "UTC", AFTER, ["2026-03-01T00:01:00+00:00", "2026-03-01T00:02:00+00:00"]),
    ("rate(2 hours)", "UTC", AFTER, ["2026-03-01T02:00:00+00:00", "2026-03-01T04:00:00+00:00"]),
    ("at(2026-06-01T09:30:00)", "Europe/Berlin", AFTER, ["2026-06-01T09:30:00+02:00"]),
    ("at(2026-03-29T02:30:00)", "Europe/Berlin", AFTER, []),  # does not exist locally
    ("at(2025-06-01T09:30:00)", "UTC", AFTER, []),
]


@pytest.mark.parametrize(("expr", "tz", "after", "expected"), TABLE)
def test_next_fire_times(expr, tz, after, expected) -> None:
    assert preview(expr, tz, count=len(expected) or 1, after=after)[: len(expected) or 1] == expected


def test_strictly_after() -> None:
    at_fire = datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert preview("cron(0 10 * * ? *)", "UTC", count=1, after=at_fire) == ["2026-03-03T10:00:00+00:00"]


BAD = [
    ("cron(0 10 * * * *)", "exactly one of day-of-month and day-of-week"),
    ("cron(0 10 ? * ? *)", "exactly one of day-of-month and day-of-week"),
    ("cron(0 10 * * ?)", "six fields"),
    ("cron(60 10 * * ? *)", "minutes"),
    ("cron(0 24 * * ? *)", "hours"),
    ("cron(0 0 32 * ? *)", "day-of-month"),
    ("cron(0 0 ? * 8 *)", "day-of-week 8 is out of range 1-7"),
    ("cron(0 0 ? * MON#6 *)", "1-5"),
    ("cron(0 0 * FOO ? *)", "unknown month name"),
    ("cron(0 0 * * ? 1969)", "year"),
    ("cron(0 0 * * ? 2200)", "year"),
    ("cron(0 0 5-1 * ? *)", "backwards"),
    ("rate(0 minutes)", "positive"),
    ("rate(1 minutes)", "singular"),
    ("rate(5 minute)", "plural"),
    ("rate(5 seconds)", "unknown unit"),
    ("at(2026-13-01T00:00:00)", "at("),
    ("every day", "not a schedule expression"),
    ("", "empty"),
]


@pytest.mark.parametrize(("expr", "why"), BAD)
def test_invalid_expressions_say_what_is_wrong(expr, why) -> None:
    with pytest.raises(ScheduleError) as e:
        parse(expr)
    assert why in e.value.detail
    assert e.value.status == 400


def test_unknown_timezone() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        parse("rate(1 hour)", "Mars/Olympus")


def test_local_scheduler_fires_due_monitors(tmp_path) -> None:
    from stratum.monitors.model import MonitorIn
    from tests.fixtures.runtime import make_runtime

    rt = make_runtime(tmp_path / "d")
    try:
        svc = rt.monitors
        body = {
            "label": "s",
            "rule": {"kind": "yield_below", "params": {"limit": 0.5}},
            "trigger": {"schedule": {"expression": "cron(0/5 * * * ? *)"}},
        }
        m = svc.create("default", MonitorIn.model_validate(body))
        sched = svc.scheduler
        t = datetime(2026, 3, 2, 10, 1, tzinfo=UTC)
        assert sched.tick(t) == []  # first sight: nothing is caught up
        assert sched.tick(t.replace(minute=4)) == []
        assert sched.tick(t.replace(minute=5, second=3)) == [("default", m.monitor_id)]
        assert sched.tick(t.replace(minute=6)) == []
        svc.set_state("default", m.monitor_id, "paused")
        assert sched.tick(t.replace(minute=11)) == []
        runs, _ = svc.runs("default", m.monitor_id)
        assert [(r.trigger, r.status) for r in runs] == [("schedule", "ok")]  # an empty workspace
    finally:
        rt.close()
