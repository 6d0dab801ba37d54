"""Working-time calendar: worked examples a manager would check by hand, and properties over years of instants
including the DST changes of Europe/Berlin and America/New_York."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.calendar import WorkingCalendar

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = frozenset(range(5))
US = timedelta(microseconds=1)

BERLIN_OFFICE = WorkingCalendar(
    tz=BERLIN,
    workdays=WEEKDAYS,
    start=time(9),
    end=time(18),
    holidays=frozenset({date(2026, 4, 6), date(2026, 12, 25), date(2027, 1, 1), date(2028, 10, 30)}),
)
NEW_YORK_OFFICE = WorkingCalendar(
    tz=NEW_YORK,
    workdays=WEEKDAYS,
    start=time(8, 30),
    end=time(17),
    holidays=frozenset({date(2026, 7, 3), date(2026, 11, 26), date(2027, 3, 15)}),
)
# A night shift every day across the 02:00/03:00 change: its windows really are 1 h shorter or longer.
BERLIN_NIGHTS = WorkingCalendar(tz=BERLIN, workdays=frozenset(range(7)), start=time(0, 30), end=time(5))
CALENDARS = [BERLIN_OFFICE, NEW_YORK_OFFICE, BERLIN_NIGHTS]


def local(
    tz: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=tz)


def _dst_changes(tz: ZoneInfo, first_year: int, last_year: int) -> list[datetime]:
    changes = []
    at = datetime(first_year, 1, 1, tzinfo=UTC)
    end = datetime(last_year + 1, 1, 1, tzinfo=UTC)
    offset = at.astimezone(tz).utcoffset()
    while at < end:
        at += timedelta(hours=1)
        if (now := at.astimezone(tz).utcoffset()) != offset:
            changes.append(at)
            offset = now
    return changes


DST_CHANGES = _dst_changes(BERLIN, 2025, 2029) + _dst_changes(NEW_YORK, 2025, 2029)

any_instant = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2029, 12, 31), timezones=st.just(UTC)
)
near_dst_change = st.builds(
    lambda change, seconds: change + timedelta(seconds=seconds),
    st.sampled_from(DST_CHANGES),
    st.integers(min_value=-4 * 86400, max_value=4 * 86400),
)
instants = st.one_of(any_instant, near_dst_change)
calendars = st.sampled_from(CALENDARS)
whole_minutes = st.integers(min_value=0, max_value=30_000)
fractional_minutes = st.floats(min_value=0, max_value=30_000, allow_nan=False, allow_infinity=False)

# The calendar's per-day cache makes the first call of a run slower than the rest; no per-example deadline.
props = settings(max_examples=300, deadline=None)


# --- worked examples ---------------------------------------------------------------------------------------


def test_friday_evening_hour_continues_on_monday_morning() -> None:
    friday = local(BERLIN, 2026, 11, 13, 17, 30)
    assert BERLIN_OFFICE.add_working_minutes(friday, 60) == local(BERLIN, 2026, 11, 16, 9, 30)


def test_holiday_monday_pushes_the_deadline_to_tuesday() -> None:
    calendar = WorkingCalendar(BERLIN, WEEKDAYS, time(9), time(18), frozenset({date(2026, 11, 16)}))
    friday = local(BERLIN, 2026, 11, 13, 17, 30)
    assert calendar.add_working_minutes(friday, 60) == local(BERLIN, 2026, 11, 17, 9, 30)
    assert calendar.working_minutes_between(friday, local(BERLIN, 2026, 11, 17, 9, 30)) == 60


def test_weekend_order_counts_from_monday_opening() -> None:
    saturday = local(BERLIN, 2026, 11, 14, 12, 0)
    assert BERLIN_OFFICE.add_working_minutes(saturday, 15) == local(BERLIN, 2026, 11, 16, 9, 15)
    assert BERLIN_OFFICE.next_working_start(saturday) == local(BERLIN, 2026, 11, 16, 9, 0)


def test_spring_forward_weekend_berlin() -> None:
    # DST starts Sunday 2026-03-29: Friday is CET (UTC+1), Monday CEST (UTC+2).
    friday = local(BERLIN, 2026, 3, 27, 17, 30)
    monday = BERLIN_OFFICE.add_working_minutes(friday, 60)
    assert monday == datetime(2026, 3, 30, 7, 30, tzinfo=UTC)
    assert monday.astimezone(BERLIN).time() == time(9, 30)


def test_spring_forward_weekend_new_york() -> None:
    # DST starts Sunday 2026-03-08: Friday is EST (UTC-5), Monday EDT (UTC-4).
    friday = local(NEW_YORK, 2026, 3, 6, 16, 30)
    assert NEW_YORK_OFFICE.add_working_minutes(friday, 60) == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)


def test_office_day_is_nine_hours_on_dst_sundays_and_mondays() -> None:
    every_day = WorkingCalendar(BERLIN, frozenset(range(7)), time(9), time(18))
    for day in (date(2026, 3, 29), date(2026, 3, 30), date(2026, 10, 25), date(2026, 10, 26)):
        midnight = datetime.combine(day, time(0), tzinfo=BERLIN)
        next_midnight = datetime.combine(day + timedelta(days=1), time(0), tzinfo=BERLIN)
        assert every_day.working_minutes_between(midnight, next_midnight) == 540


def test_night_window_across_the_change_is_as_long_as_it_really_is() -> None:
    def night(day: date) -> float:
        start = datetime.combine(day, time(0), tzinfo=BERLIN)
        return BERLIN_NIGHTS.working_minutes_between(start, start.replace(hour=12))

    assert night(date(2026, 3, 28)) == 270
    assert night(date(2026, 3, 29)) == 210  # 02:00-03:00 does not exist
    assert night(date(2026, 10, 25)) == 330  # 02:00-03:00 happens twice


def test_large_budget_ten_working_days_and_more() -> None:
    monday = local(BERLIN, 2026, 1, 5, 9, 0)
    assert BERLIN_OFFICE.add_working_minutes(monday, 10 * 540) == local(BERLIN, 2026, 1, 16, 18, 0)
    # 14,400 min = 26 full days + 6 h: the 27th working day at 15:00.
    assert BERLIN_OFFICE.add_working_minutes(monday, 14_400) == local(BERLIN, 2026, 2, 10, 15, 0)


def test_zero_minutes_is_the_start_itself() -> None:
    sunday = local(BERLIN, 2026, 11, 15, 12, 0)
    assert BERLIN_OFFICE.add_working_minutes(sunday, 0) == sunday


def test_working_instants_and_window_edges() -> None:
    assert BERLIN_OFFICE.is_working(local(BERLIN, 2026, 11, 13, 9, 0))
    assert BERLIN_OFFICE.is_working(local(BERLIN, 2026, 11, 13, 17, 59, 59))
    assert not BERLIN_OFFICE.is_working(local(BERLIN, 2026, 11, 13, 18, 0))
    assert not BERLIN_OFFICE.is_working(local(BERLIN, 2026, 11, 13, 8, 59, 59))
    assert not BERLIN_OFFICE.is_working(local(BERLIN, 2026, 12, 25, 12, 0))  # holiday
    assert not BERLIN_OFFICE.is_working(local(BERLIN, 2026, 11, 14, 12, 0))  # Saturday


def test_results_are_utc_and_inputs_in_any_zone_agree() -> None:
    in_berlin = local(BERLIN, 2026, 11, 13, 17, 30)
    in_tokyo = in_berlin.astimezone(ZoneInfo("Asia/Tokyo"))
    result = BERLIN_OFFICE.add_working_minutes(in_tokyo, 60)
    assert result.tzinfo is UTC
    assert result == BERLIN_OFFICE.add_working_minutes(in_berlin, 60)


def test_calendar_minutes_are_elapsed_time() -> None:
    saturday = local(BERLIN, 2026, 3, 28, 12, 0)
    later = BERLIN_OFFICE.add_calendar_minutes(saturday, 24 * 60)
    assert later == saturday.astimezone(UTC) + timedelta(hours=24)
    # Across the DST change 24 h of elapsed time end at 13:00 local, not at 12:00 as wall-clock maths says.
    assert later.astimezone(BERLIN) == local(BERLIN, 2026, 3, 29, 13, 0)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        BERLIN_OFFICE.add_working_minutes(datetime(2026, 1, 5, 9), 10)
    with pytest.raises(ValueError, match=">= 0"):
        BERLIN_OFFICE.add_working_minutes(local(BERLIN, 2026, 1, 5, 9), -1)
    with pytest.raises(ValueError, match="finite"):
        BERLIN_OFFICE.add_working_minutes(local(BERLIN, 2026, 1, 5, 9), float("nan"))
    with pytest.raises(ValueError, match="workday"):
        WorkingCalendar(BERLIN, frozenset(), time(9), time(18))
    with pytest.raises(ValueError, match="start before"):
        WorkingCalendar(BERLIN, WEEKDAYS, time(18), time(9))
    with pytest.raises(ValueError, match="Monday"):
        WorkingCalendar(BERLIN, frozenset({7}), time(9), time(18))


# --- properties --------------------------------------------------------------------------------------------


@props
@given(calendars, instants, fractional_minutes)
def test_adding_then_measuring_gives_the_minutes_back(cal: WorkingCalendar, a: datetime, m: float) -> None:
    assert cal.working_minutes_between(a, cal.add_working_minutes(a, m)) == pytest.approx(m, abs=1e-6)


@props
@given(calendars, instants, whole_minutes, whole_minutes)
def test_adding_is_additive(cal: WorkingCalendar, a: datetime, m1: int, m2: int) -> None:
    assert cal.add_working_minutes(cal.add_working_minutes(a, m1), m2) == cal.add_working_minutes(a, m1 + m2)


@props
@given(calendars, instants, instants, whole_minutes, whole_minutes)
def test_adding_is_monotonic(cal: WorkingCalendar, a: datetime, b: datetime, m1: int, m2: int) -> None:
    a, b = sorted((a, b))
    m1, m2 = sorted((m1, m2))
    assert cal.add_working_minutes(a, m1) <= cal.add_working_minutes(a, m2)
    assert cal.add_working_minutes(a, m1) <= cal.add_working_minutes(b, m1)


@props
@given(calendars, instants, st.integers(min_value=1, max_value=30_000))
def test_deadline_is_reached_in_working_time(cal: WorkingCalendar, a: datetime, m: int) -> None:
    result = cal.add_working_minutes(a, m)
    # The last microsecond before the deadline was working time, so the deadline is a working instant or the
    # end of a window, never a moment in the night or on a day off.
    assert cal.is_working(result - US)
    assert result.astimezone(cal.tz).date() not in cal.holidays
    assert (result - US).astimezone(cal.tz).weekday() in cal.workdays


@props
@given(calendars, instants, instants, instants)
def test_measuring_is_additive_over_a_split(
    cal: WorkingCalendar, a: datetime, b: datetime, c: datetime
) -> None:
    a, b, c = sorted((a, b, c))
    whole = cal.working_minutes_between(a, c)
    assert whole == pytest.approx(
        cal.working_minutes_between(a, b) + cal.working_minutes_between(b, c), abs=1e-6
    )
    assert cal.working_minutes_between(c, a) == 0


@props
@given(calendars, instants)
def test_next_working_start_is_the_first_working_instant(cal: WorkingCalendar, a: datetime) -> None:
    start = cal.next_working_start(a)
    assert start >= a
    assert cal.is_working(start)
    assert cal.working_minutes_between(a, start) == 0
    assert cal.is_working(a) == (start == a)


@props
@given(
    st.sampled_from([BERLIN_OFFICE, NEW_YORK_OFFICE]), instants, st.integers(min_value=1, max_value=30_000)
)
def test_holidays_never_count(cal: WorkingCalendar, a: datetime, m: int) -> None:
    result = cal.add_working_minutes(a, m)
    for holiday in cal.holidays:
        opens = datetime.combine(holiday, time(0), tzinfo=cal.tz)
        closes = datetime.combine(holiday + timedelta(days=1), time(0), tzinfo=cal.tz)
        assert cal.working_minutes_between(opens, closes) == 0
        assert not opens <= result - US < closes
