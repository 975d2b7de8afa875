"""Read the public figures from the daily table: ranges, granularity, the "Other" merge, caching.

Every function returns plain data (a `Table`: columns and rows, exactly what a chart draws and what
its CSV and JSON downloads hold). Nothing here reads submissions, projects or workflows: the cost of
a page depends on the range shown, not on how many reports are stored.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

import pycountry
from django.conf import settings
from django.db.models import Min, Sum
from django.utils import timezone

from . import cache
from .aggregates import UNKNOWN
from .models import DailyCount, Instance

OTHER = "Other"
RANGES = {"30d": 30, "90d": 90, "1y": 365}
RANGE_CHOICES = ("30d", "90d", "1y", "all", "custom")
GRANULARITIES = ("day", "week", "month")
ACTIVE_DAYS = 30
INCOMPLETE_DAYS = 2  # today and yesterday (UTC): reports for them are still arriving
EARLIEST = dt.date(2020, 1, 1)

DEFINITIONS = {
    "scope": "Only accepted reports of instances that are not excluded by moderators count.",
    "flows": "Runs and steps are flows: each day's report gives the runs and steps finished that day, and "
    "they add up over days. Format 1 reports carry all-time totals and never add to them.",
    "stocks": "Instances, users, active users (90 days), monthly active users (30 days), projects, workflows "
    "and jobs are stocks: they do not add up over days. An instance counts on a day when its latest report "
    "on or before that day is at most 7 days old, with that report's figures. Over a week or a month, "
    "a stock is its value on the period's last day.",
    "active": "An instance is active when it reported within the last 30 days.",
    "incomplete": "Today and yesterday (UTC) are incomplete: reports for them are still arriving.",
    "other": "To protect each instance, a country, version or operating system with fewer than {k} "
    "instances is counted under “Other”.",
}


class InvalidQuery(ValueError):
    """Bad range or granularity parameters; `errors` maps each parameter to a message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Query:
    range: str
    granularity: str
    start: dt.date
    end: dt.date

    def params(self) -> dict[str, str]:
        out = {"range": self.range, "granularity": self.granularity}
        if self.range == "custom":
            out.update(start=self.start.isoformat(), end=self.end.isoformat())
        return out

    @property
    def key(self) -> str:
        return f"{self.range}:{self.granularity}:{self.start}:{self.end}"


@dataclass
class Table:
    """The data behind one chart: named columns and rows of plain values."""

    name: str
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def column(self, name: str) -> list:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def as_dict(self, query: Query | None = None) -> dict:
        out = {"chart": self.name, "title": self.title, "columns": self.columns, "rows": self.rows}
        if self.notes:
            out["notes"] = self.notes
        if query is not None:
            out["query"] = {**query.params(), "start": query.start.isoformat(), "end": query.end.isoformat()}
        return out


def today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def min_instances() -> int:
    return settings.STATS_MIN_INSTANCES


def parse_query(params, *, now: dt.date | None = None) -> Query:
    """Validate range/granularity/start/end parameters (a QueryDict or dict)."""
    now = now or today()
    errors = {}
    range_ = params.get("range") or "90d"
    granularity = params.get("granularity") or "day"
    if range_ not in RANGE_CHOICES:
        errors["range"] = f"must be one of {', '.join(RANGE_CHOICES)}"
    if granularity not in GRANULARITIES:
        errors["granularity"] = f"must be one of {', '.join(GRANULARITIES)}"
    start = end = None
    if range_ == "custom":
        for name in ("start", "end"):
            raw = params.get(name) or ""
            try:
                value = dt.date.fromisoformat(raw)
                if len(raw) != 10:
                    raise ValueError
            except ValueError:
                errors[name] = "must be a date as YYYY-MM-DD for a custom range"
                continue
            if value < EARLIEST or value > now:
                errors[name] = f"must be between {EARLIEST.isoformat()} and today ({now.isoformat()})"
            elif name == "start":
                start = value
            else:
                end = value
        if start and end and start > end:
            errors["start"] = "must not be after end"
    if errors:
        raise InvalidQuery(errors)
    if range_ in RANGES:
        start, end = now - dt.timedelta(days=RANGES[range_] - 1), now
    elif range_ == "all":
        first = cache.cached("first-day", _first_day)
        start, end = min(first or now, now), now
    return Query(range=range_, granularity=granularity, start=start, end=end)


def _first_day() -> dt.date | None:
    return DailyCount.objects.filter(stat="reports", value__gt=0).aggregate(first=Min("day"))["first"]


# --- periods


def period_start(day: dt.date, granularity: str) -> dt.date:
    if granularity == "week":
        return day - dt.timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def periods(query: Query) -> list[tuple[dt.date, dt.date]]:
    """(first, last) day of each period in the range, clipped to the range."""
    out, day = [], query.start
    while day <= query.end:
        start = period_start(day, query.granularity)
        if query.granularity == "week":
            last = start + dt.timedelta(days=6)
        elif query.granularity == "month":
            last = (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
        else:
            last = start
        last = min(last, query.end)
        out.append((day, last))
        day = last + dt.timedelta(days=1)
    return out


def _incomplete(last: dt.date, now: dt.date) -> bool:
    return last > now - dt.timedelta(days=INCOMPLETE_DAYS)


# --- reading the table


def _daily(stats: tuple[str, ...], start: dt.date, end: dt.date) -> dict[tuple[str, str], dict[dt.date, int]]:
    out: dict[tuple[str, str], dict[dt.date, int]] = defaultdict(dict)
    rows = DailyCount.objects.filter(stat__in=stats, day__range=(start, end)).values_list(
        "stat", "subgroup", "day", "value"
    )
    for stat, subgroup, day, value in rows:
        out[(stat, subgroup)][day] = value
    return out


def _flow(daily: dict[dt.date, int], first: dt.date, last: dt.date) -> int:
    return sum(v for d, v in daily.items() if first <= d <= last)


def _stock(daily: dict[dt.date, int], last: dt.date) -> int:
    return daily.get(last, 0)


# --- the charts' tables


def runs(query: Query) -> Table:
    daily = _daily(("runs", "steps"), query.start, query.end)
    before = _total_before(("runs",), query.start)
    table = Table("runs", "Runs and steps", ["period", "runs", "steps", "cumulative_runs", "incomplete"])
    cumulative = before["runs"]
    now = today()
    for first, last in periods(query):
        r = _flow(daily[("runs", "")], first, last)
        cumulative += r
        table.rows.append(
            [
                first.isoformat(),
                r,
                _flow(daily[("steps", "")], first, last),
                cumulative,
                _incomplete(last, now),
            ]
        )
    return table


def _total_before(stats: tuple[str, ...], day: dt.date) -> dict[str, int]:
    rows = DailyCount.objects.filter(stat__in=stats, day__lt=day).values("stat").annotate(total=Sum("value"))
    out = dict.fromkeys(stats, 0)
    out.update({r["stat"]: r["total"] or 0 for r in rows})
    return out


def _stock_table(
    name: str, title: str, stats: tuple[str, ...], query: Query, flows: tuple[str, ...] = ()
) -> Table:
    daily = _daily(stats + flows, query.start, query.end)
    table = Table(name, title, ["period", *stats, *flows, "incomplete"])
    now = today()
    for first, last in periods(query):
        table.rows.append(
            [
                first.isoformat(),
                *(_stock(daily[(s, "")], last) for s in stats),
                *(_flow(daily[(f, "")], first, last) for f in flows),
                _incomplete(last, now),
            ]
        )
    return table


def instances(query: Query) -> Table:
    return _stock_table("instances", "Reporting instances", ("instances",), query, flows=("new_instances",))


def users(query: Query) -> Table:
    return _stock_table("users", "Users", ("users", "active_users", "monthly_active_users"), query)


def projects(query: Query) -> Table:
    return _stock_table("projects", "Projects and workflows", ("projects", "workflows", "jobs"), query)


def _merge_small(counts: dict[str, int], k: int) -> dict[str, int]:
    """Buckets with fewer than k instances go to "Other" (as do unknown ones)."""
    out: dict[str, int] = defaultdict(int)
    for bucket, value in counts.items():
        if value <= 0:
            continue
        out[bucket if value >= k and bucket != UNKNOWN else OTHER] += value
    return dict(out)


def versions(query: Query) -> Table:
    """Instances by Lightning version (major.minor) at the end of each period, small ones merged."""
    daily = _daily(("instances_by_version",), query.start, query.end)
    k = min_instances()
    per_period = []
    for first, last in periods(query):
        counts = {g: _stock(series, last) for (_, g), series in daily.items()}
        per_period.append((first, last, _merge_small(counts, k)))
    groups = sorted({g for *_, c in per_period for g in c if g != OTHER}, key=_version_key)
    if any(OTHER in c for *_, c in per_period):
        groups.append(OTHER)
    table = Table("versions", "Lightning versions in use", ["period", *groups, "incomplete"])
    now = today()
    for first, last, counts in per_period:
        table.rows.append([first.isoformat(), *(counts.get(g, 0) for g in groups), _incomplete(last, now)])
    table.notes.append(DEFINITIONS["other"].format(k=k))
    return table


def _version_key(group: str):
    try:
        return tuple(int(p) for p in group.split("."))
    except ValueError:
        return (10**9,)


def _snapshot(stat: str, day: dt.date) -> dict[str, int]:
    rows = DailyCount.objects.filter(stat=stat, day=day).values_list("subgroup", "value")
    return _merge_small(dict(rows), min_instances())


def operating_systems(query: Query) -> Table:
    counts = _snapshot("instances_by_os", query.end)
    table = Table("os", f"Operating systems on {query.end.isoformat()}", ["operating_system", "instances"])
    table.rows = _sorted_rows(counts)
    table.notes.append(DEFINITIONS["other"].format(k=min_instances()))
    return table


def countries(query: Query) -> Table:
    counts = _snapshot("instances_by_country", query.end)
    table = Table(
        "countries", f"Countries on {query.end.isoformat()}", ["country", "iso3", "name", "instances"]
    )
    for code, value in _sorted_rows(counts):
        country = pycountry.countries.get(alpha_2=code) if code != OTHER else None
        table.rows.append(
            [code, country.alpha_3 if country else "", _country_name(country) if country else OTHER, value]
        )
    table.notes.append(DEFINITIONS["other"].format(k=min_instances()))
    return table


def _country_name(country) -> str:
    return getattr(country, "common_name", None) or country.name


def _sorted_rows(counts: dict[str, int]) -> list[list]:
    rows = sorted(((b, v) for b, v in counts.items() if b != OTHER), key=lambda r: (-r[1], r[0]))
    if OTHER in counts:
        rows.append((OTHER, counts[OTHER]))
    return [list(r) for r in rows]


def headline() -> Table:
    """The headline figures: stocks now, flows all time and over the last 30 days."""
    now = today()
    since = now - dt.timedelta(days=ACTIVE_DAYS - 1)
    active = Instance.objects.filter(excluded=False, last_report_date__gte=since)
    stocks = dict(
        DailyCount.objects.filter(
            stat__in=("users", "active_users", "monthly_active_users", "projects", "workflows"),
            subgroup="",
            day=now,
        ).values_list("stat", "value")
    )
    flows_all = _total_before(("runs", "steps"), now + dt.timedelta(days=1))
    flows_30 = {
        r["stat"]: r["total"] or 0
        for r in DailyCount.objects.filter(stat__in=("runs", "steps"), day__gte=since)
        .values("stat")
        .annotate(total=Sum("value"))
    }
    table = Table("headline", "Headline figures", ["figure", "label", "value"])
    table.rows = [
        ["active_instances", "Reporting instances (last 30 days)", active.count()],
        ["countries", "Countries", active.exclude(country="").values("country").distinct().count()],
        ["users", "Users", stocks.get("users", 0)],
        ["active_users", "Active users (90 days)", stocks.get("active_users", 0)],
        ["monthly_active_users", "Monthly active users", stocks.get("monthly_active_users", 0)],
        ["projects", "Projects", stocks.get("projects", 0)],
        ["workflows", "Workflows", stocks.get("workflows", 0)],
        ["runs_all_time", "Runs (all time)", flows_all["runs"]],
        ["runs_30d", "Runs (last 30 days)", flows_30.get("runs", 0)],
        ["steps_all_time", "Steps (all time)", flows_all["steps"]],
        ["steps_30d", "Steps (last 30 days)", flows_30.get("steps", 0)],
    ]
    table.notes.append(f"As of {now.isoformat()} (UTC).")
    return table


CHARTS = {
    "runs": runs,
    "instances": instances,
    "users": users,
    "projects": projects,
    "versions": versions,
    "os": operating_systems,
    "countries": countries,
}


def chart(name: str, query: Query) -> Table:
    """One chart's table for a query, cached until the figures change."""
    return cache.cached(f"chart:{name}:{query.key}:{min_instances()}:{today()}", lambda: CHARTS[name](query))


def cached_headline() -> Table:
    return cache.cached(f"headline:{today()}", headline)
