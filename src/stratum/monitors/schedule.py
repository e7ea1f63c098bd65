"""EventBridge Scheduler schedule expressions: parsing, validation and next fire times.

Syntax (exactly as EventBridge Scheduler accepts it):

- ``cron(minutes hours day-of-month month day-of-week year)``: six fields; ``, - * /`` everywhere,
  ``?`` in exactly one of day-of-month / day-of-week, ``L`` and ``W`` (``nW``, ``LW``) in
  day-of-month, ``L`` (``nL``) and ``#`` (``n#k``) in day-of-week, names JAN-DEC and SUN-SAT
  (SUN-SAT are 1-7), years 1970-2199;
- ``rate(N minute|minutes|hour|hours|day|days)``: singular unit for 1, plural above;
- ``at(yyyy-mm-ddThh:mm:ss)``: once.

Times are wall-clock times in an IANA ``timezone`` (default UTC) with EventBridge's daylight-saving
behaviour: a local time that does not exist (spring forward) is skipped, a local time that occurs twice
(fall back) runs once, at its first occurrence. The finest granularity is one minute.

The calendar arithmetic is cronsim's (minute/hour/day/month/day-of-week fields, ``L``, ``LW``, ``nL``,
``#``) on naive local times; this module translates the AWS fields to it and adds what cronsim has no
field for: the year (a filter and a jump to the next allowed year) and ``nW`` (cronsim iterates the
few candidate days around n, we keep the nearest weekday).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from stratum.errors import BadRequest

MIN_YEAR, MAX_YEAR = 1970, 2199
MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
DAYS = "SUN MON TUE WED THU FRI SAT".split()  # AWS: SUN=1 .. SAT=7
RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


class ScheduleError(BadRequest):
    code, title = "invalid_schedule", "Invalid schedule expression"


@dataclass(frozen=True)
class Schedule:
    """A parsed expression in a zone. ``kind`` is ``cron``, ``rate`` or ``at``."""

    expression: str
    timezone: str
    kind: str
    cron: str | None = None  # cronsim expression (5 fields) for kind == cron
    years: frozenset[int] | None = None  # None: every year
    nearest_weekday: int | None = None  # the n of an ``nW`` day-of-month
    rate_seconds: int | None = None
    at: datetime | None = None  # naive local time for kind == at

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_fires(self, after: datetime, count: int = 1, *, anchor: datetime | None = None) -> list[datetime]:
        """The next ``count`` fire times strictly after ``after`` (aware), as aware times in the zone.

        ``rate`` schedules fire every N units from ``anchor`` (the schedule's start; default ``after``)."""
        if after.tzinfo is None:
            raise ValueError("after must be timezone-aware")
        if self.kind == "rate":
            assert self.rate_seconds is not None
            start = (anchor or after).astimezone(UTC).replace(microsecond=0)
            step = timedelta(seconds=self.rate_seconds)
            k = max(0, int((after.astimezone(UTC) - start) // step) + 1)
            return [(start + (k + i) * step).astimezone(self.zone) for i in range(count)]
        if self.kind == "at":
            assert self.at is not None
            t = _localize(self.at, self.zone)
            return [t] if t is not None and t > after and count > 0 else []
        return list(self._cron_fires(after, count))

    def _cron_fires(self, after: datetime, count: int):
        zone = self.zone
        after = after.replace(microsecond=0) if after.microsecond == 0 else after
        start = after.astimezone(zone).replace(tzinfo=None, microsecond=0)
        # a repeated hour: a naive time at or before `start` may still be after `after` (second occurrence)
        start -= timedelta(hours=1)
        out: list[datetime] = []
        while len(out) < count:
            if self.years is not None:
                later = [y for y in self.years if y >= start.year]
                if not later:
                    return out
                if min(later) > start.year:
                    start = datetime(min(later), 1, 1) - timedelta(minutes=1)
            it = CronSim(self.cron or "", start)
            restart = None
            for naive in it:
                if naive.year > MAX_YEAR:
                    return out
                if self.years is not None and naive.year not in self.years:
                    restart = naive
                    break
                if self.nearest_weekday is not None and naive.day != _nearest_weekday(
                    naive.year, naive.month, self.nearest_weekday
                ):
                    continue
                t = _localize(naive, zone)
                if t is None or t <= after:
                    continue  # skipped (does not exist locally), or not after `after`
                out.append(t)
                if len(out) == count:
                    return out
            if restart is None:
                return out
            start = datetime(restart.year + 1, 1, 1) - timedelta(minutes=1)
        return out


def _localize(naive: datetime, zone: ZoneInfo) -> datetime | None:
    """The first occurrence of a local wall time, or None when it does not exist in the zone."""
    t = naive.replace(tzinfo=zone, fold=0)
    if t.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return None
    return t


def _nearest_weekday(year: int, month: int, n: int) -> int:
    """Day of the month of the weekday nearest to day ``n`` (``nW``), never leaving the month."""
    last = calendar.monthrange(year, month)[1]
    d = min(n, last)
    wd = date(year, month, d).weekday()  # Mon=0 .. Sun=6
    if wd == 5:  # Saturday: the Friday before, unless that leaves the month
        return d - 1 if d > 1 else d + 2
    if wd == 6:  # Sunday: the Monday after, unless that leaves the month
        return d + 1 if d < last else d - 2
    return d


# -- parsing -------------------------------------------------------------------------------------
_CRON = re.compile(r"^cron\((.*)\)$", re.S)
_RATE = re.compile(r"^rate\((.*)\)$", re.S)
_AT = re.compile(r"^at\((.*)\)$", re.S)
_TOKEN = re.compile(r"^[0-9A-Z*?/,#LW-]+$")


def parse(expression: str, timezone: str = "UTC") -> Schedule:
    """Parse and validate. Raises ``ScheduleError`` (a 400) saying what is wrong."""
    if not isinstance(expression, str) or not expression.strip():
        raise ScheduleError("the schedule expression is empty")
    expr = expression.strip()
    tz = check_timezone(timezone)
    if m := _CRON.match(expr):
        return _parse_cron(expr, m.group(1), tz)
    if m := _RATE.match(expr):
        return _parse_rate(expr, m.group(1), tz)
    if m := _AT.match(expr):
        return _parse_at(expr, m.group(1), tz)
    raise ScheduleError(
        f"{expr!r} is not a schedule expression: use cron(min hour day-of-month month day-of-week year), "
        "rate(N minutes|hours|days) or at(yyyy-mm-ddThh:mm:ss)"
    )


def check_timezone(timezone: str | None) -> str:
    tz = (timezone or "UTC").strip()
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {tz!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'") from None
    return tz


def _parse_rate(expr: str, body: str, tz: str) -> Schedule:
    m = re.fullmatch(r"\s*(\d+)\s+([a-z]+)\s*", body)
    if not m:
        raise ScheduleError(f"{expr!r}: a rate is rate(N unit), with unit minute(s), hour(s) or day(s)")
    n, unit = int(m.group(1)), m.group(2)
    base = unit[:-1] if unit.endswith("s") else unit
    if base not in RATE_UNITS:
        raise ScheduleError(f"{expr!r}: unknown unit {unit!r}; use minute(s), hour(s) or day(s)")
    if n < 1:
        raise ScheduleError(f"{expr!r}: the rate must be a positive whole number (minimum one minute)")
    if n == 1 and unit != base:
        raise ScheduleError(f"{expr!r}: with a value of 1 the unit is singular ({base})")
    if n > 1 and unit == base:
        raise ScheduleError(f"{expr!r}: with a value above 1 the unit is plural ({base}s)")
    return Schedule(expr, tz, "rate", rate_seconds=n * RATE_UNITS[base])


def _parse_at(expr: str, body: str, tz: str) -> Schedule:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}", body.strip()):
        raise ScheduleError(f"{expr!r}: a one-time schedule is at(yyyy-mm-ddThh:mm:ss)")
    try:
        at = datetime.strptime(body.strip(), "%Y-%m-%dT%H:%M:%S")
    except ValueError as exc:
        raise ScheduleError(f"{expr!r}: {exc}") from None
    return Schedule(expr, tz, "at", at=at)


def _parse_cron(expr: str, body: str, tz: str) -> Schedule:
    fields = body.split()
    if len(fields) != 6:
        raise ScheduleError(
            f"{expr!r}: a cron expression has six fields (minutes hours day-of-month month day-of-week year), "
            f"found {len(fields)}"
        )
    fields = [f.upper() for f in fields]
    names = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
    for name, f in zip(names, fields, strict=True):
        if not _TOKEN.match(f):
            raise ScheduleError(f"{expr!r}: invalid character in the {name} field {f!r}")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise ScheduleError(f"{expr!r}: exactly one of day-of-month and day-of-week must be '?'")
    for name, f in (("minutes", minute), ("hours", hour), ("month", month), ("year", year)):
        if any(c in f for c in "?LW#"):
            raise ScheduleError(f"{expr!r}: the {name} field {f!r} does not take ? L W #")
    _check_numbers("minutes", minute, 0, 59, expr)
    _check_numbers("hours", hour, 0, 23, expr)
    month_c = _translate_names(month, MONTHS, 1, "month", expr)
    _check_numbers("month", month_c, 1, 12, expr)
    nearest = None
    if dom == "?":
        dom_c = "*"
    elif m := re.fullmatch(r"(\d{1,2})W", dom):
        nearest = int(m.group(1))
        if not 1 <= nearest <= 31:
            raise ScheduleError(f"{expr!r}: day-of-month {dom!r} is out of range 1-31")
        dom_c = f"{max(1, nearest - 2)}-{min(31, nearest + 2)}"
    elif dom in ("L", "LW"):
        dom_c = dom
    else:
        if any(c in dom for c in "LW#"):
            raise ScheduleError(f"{expr!r}: day-of-month {dom!r}: use L, LW or nW alone")
        _check_numbers("day-of-month", dom, 1, 31, expr)
        dom_c = dom
    dow_c = "*" if dow == "?" else _translate_dow(dow, expr)
    years = None if year == "*" else frozenset(_expand("year", year, MIN_YEAR, MAX_YEAR, expr))
    cron = f"{minute} {hour} {dom_c} {month_c} {dow_c}"
    try:
        CronSim(cron, datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ScheduleError(f"{expr!r}: {exc}") from None
    sched = Schedule(expr, tz, "cron", cron=cron, years=years, nearest_weekday=nearest)
    return sched


def _translate_names(f: str, names: list[str], base: int, what: str, expr: str) -> str:
    def sub(m: re.Match) -> str:
        word = m.group(0)
        if word not in names:
            raise ScheduleError(f"{expr!r}: unknown {what} name {word!r}")
        return str(names.index(word) + base)

    return re.sub(r"[A-Z]{3,}", sub, f)


def _translate_dow(f: str, expr: str) -> str:
    """AWS day-of-week (SUN=1..SAT=7, names, ``L``, ``nL``, ``n#k``) to cronsim's (SUN=0..SAT=6)."""
    if f == "L":
        return "6"  # L alone: the last day of the week, i.e. every Saturday (7); nL is the last n of the month
    f = _translate_names(f, DAYS, 1, "day-of-week", expr)
    out = []
    for term in f.split(","):
        if m := re.fullmatch(r"(\d)L", term):
            out.append(f"{_dow(int(m.group(1)), expr)}L")
        elif m := re.fullmatch(r"(\d)#(\d)", term):
            k = int(m.group(2))
            if not 1 <= k <= 5:
                raise ScheduleError(f"{expr!r}: day-of-week {term!r}: the occurrence after # is 1-5")
            out.append(f"{_dow(int(m.group(1)), expr)}#{k}")
        elif any(c in term for c in "L#W"):
            raise ScheduleError(f"{expr!r}: day-of-week term {term!r} is not valid (use n, n-m, nL or n#k)")
        else:
            base, _, step = term.partition("/")
            if base == "*":
                rng = "*"
            elif "-" in base:
                a, _, b = base.partition("-")
                lo, hi = _dow(_int(a, expr), expr), _dow(_int(b, expr), expr)
                if lo > hi:
                    raise ScheduleError(f"{expr!r}: day-of-week range {term!r} runs backwards")
                rng = f"{lo}-{hi}"
            else:
                rng = str(_dow(_int(base, expr), expr))
            if step:
                _int(step, expr)
                if base != "*" and "-" not in base:
                    rng = f"{rng}-6"
            out.append(f"{rng}/{step}" if step else rng)
    return ",".join(out)


def _dow(n: int, expr: str) -> int:
    if not 1 <= n <= 7:
        raise ScheduleError(f"{expr!r}: day-of-week {n} is out of range 1-7 (SUN-SAT)")
    return n - 1


def _int(s: str, expr: str) -> int:
    if not s.isdigit():
        raise ScheduleError(f"{expr!r}: {s!r} is not a number")
    return int(s)


def _check_numbers(what: str, f: str, lo: int, hi: int, expr: str) -> None:
    _expand(what, f, lo, hi, expr)


def _expand(what: str, f: str, lo: int, hi: int, expr: str) -> set[int]:
    out: set[int] = set()
    for term in f.split(","):
        base, slash, step_s = term.partition("/")
        if slash and (not step_s.isdigit() or int(step_s) == 0):
            raise ScheduleError(f"{expr!r}: {what} step {term!r} must be a positive number")
        if base == "*":
            a, b = lo, hi
        elif "-" in base:
            x, _, y = base.partition("-")
            if not x.isdigit() or not y.isdigit():
                raise ScheduleError(f"{expr!r}: {what} range {term!r} is not valid")
            a, b = int(x), int(y)
            if a > b:
                raise ScheduleError(f"{expr!r}: {what} range {term!r} runs backwards")
        elif base.isdigit():
            a = int(base)
            b = hi if slash else a
        else:
            raise ScheduleError(f"{expr!r}: {what} value {term!r} is not valid")
        if not (lo <= a <= hi and lo <= b <= hi):
            raise ScheduleError(f"{expr!r}: {what} {term!r} is out of range {lo}-{hi}")
        out.update(range(a, b + 1, int(step_s) if slash else 1))
    return out


def preview(expression: str, timezone: str = "UTC", *, count: int = 5, after: datetime | None = None) -> list[str]:
    """ISO 8601 strings (with the zone's UTC offset) of the next ``count`` fire times after ``after``."""
    sched = parse(expression, timezone)
    after = after or datetime.now(UTC)
    if after.tzinfo is None:
        after = after.replace(tzinfo=sched.zone)
    return [t.isoformat() for t in sched.next_fires(after, count)]
