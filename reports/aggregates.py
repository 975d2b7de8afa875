"""Keep the daily aggregate table (DailyCount) true as reports arrive and as moderation changes.

What one instance adds to the table is a pure function of its submissions (`contributions`):
- flows, on the report date, formats 2 and 3 only: runs, steps;
- stocks, by the 7-day rule: on day D an instance counts with the figures of its latest report on or
  before D, when that report is at most 7 days old: instances, users, active users, monthly active
  users, projects, workflows, jobs, and instances by version (major.minor), OS and country;
- new_instances, on the instance's first report date; reports, on each report date.

A new report on day D can only change days D..D+7, which depend only on reports dated D-7..D+7; so an
arriving report costs a constant amount of work: the difference of the instance's contributions in
that window before and after it. Excluding, including or deleting an instance applies its whole
contribution once. `rebuild` recomputes everything from the submissions; the two must agree.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction

from .models import DailyCount, Instance, Submission

STALE_AFTER_DAYS = 7
WINDOW = dt.timedelta(days=STALE_AFTER_DAYS)
ONE_DAY = dt.timedelta(days=1)

FLOW_STATS = ("runs", "steps")
STOCK_STATS = (
    "instances",
    "users",
    "active_users",
    "monthly_active_users",
    "projects",
    "workflows",
    "jobs",
)
BREAKDOWN_STATS = ("instances_by_version", "instances_by_os", "instances_by_country")
EVENT_STATS = ("new_instances", "reports")
ALL_STATS = FLOW_STATS + STOCK_STATS + BREAKDOWN_STATS + EVENT_STATS

UNKNOWN = "unknown"
_VERSION = re.compile(r"v?(\d+)\.(\d+)")

# The columns `contributions` reads, in one place so every query asks for the same ones.
FACT_FIELDS = (
    "report_date",
    "format",
    "version",
    "operating_system",
    "country",
    "no_of_users",
    "no_of_active_users",
    "no_of_monthly_active_users",
    "no_of_projects",
    "no_of_workflows",
    "no_of_jobs",
    "no_of_runs",
    "no_of_steps",
)

Key = tuple[str, str, dt.date]


def version_group(version: str) -> str:
    """'v2.4.2:match:f1bd9ae' -> '2.4': adoption is shown by major.minor."""
    m = _VERSION.match(version or "")
    return f"{int(m.group(1))}.{int(m.group(2))}" if m else UNKNOWN


def os_group(operating_system: str) -> str:
    return (operating_system or "").strip().lower() or UNKNOWN


@dataclass(frozen=True)
class Facts:
    """What the aggregates need of one submission."""

    report_date: dt.date
    format: str
    version: str
    operating_system: str
    country: str
    no_of_users: int
    no_of_active_users: int | None
    no_of_monthly_active_users: int | None
    no_of_projects: int
    no_of_workflows: int
    no_of_jobs: int
    no_of_runs: int
    no_of_steps: int

    def stocks(self) -> dict[tuple[str, str], int]:
        return {
            ("instances", ""): 1,
            ("users", ""): self.no_of_users,
            ("active_users", ""): self.no_of_active_users or 0,
            ("monthly_active_users", ""): self.no_of_monthly_active_users or 0,
            ("projects", ""): self.no_of_projects,
            ("workflows", ""): self.no_of_workflows,
            ("jobs", ""): self.no_of_jobs,
            ("instances_by_version", version_group(self.version)): 1,
            ("instances_by_os", os_group(self.operating_system)): 1,
            ("instances_by_country", self.country or UNKNOWN): 1,
        }


def facts_of(rows: Iterable[dict]) -> list[Facts]:
    return sorted((Facts(**row) for row in rows), key=lambda f: f.report_date)


def contributions(
    facts: list[Facts], *, first: dt.date | None = None, last: dt.date | None = None, events: bool = True
) -> Counter:
    """What an instance with these submissions (sorted by date) adds to the table, on days first..last."""
    out: Counter = Counter()
    for i, f in enumerate(facts):
        covered_until = f.report_date + WINDOW
        if i + 1 < len(facts):
            covered_until = min(covered_until, facts[i + 1].report_date - ONE_DAY)
        start = max(f.report_date, first) if first else f.report_date
        end = min(covered_until, last) if last else covered_until
        stocks = f.stocks()
        day = start
        while day <= end:
            for (stat, subgroup), value in stocks.items():
                out[(stat, subgroup, day)] += value
            day += ONE_DAY
        in_range = (first is None or f.report_date >= first) and (last is None or f.report_date <= last)
        if in_range and f.format != Submission.Format.V1:
            out[("runs", "", f.report_date)] += f.no_of_runs
            out[("steps", "", f.report_date)] += f.no_of_steps
        if events and in_range:
            out[("reports", "", f.report_date)] += 1
    if events and facts and (first is None or facts[0].report_date >= first):
        out[("new_instances", "", facts[0].report_date)] += 1
    return out


def _difference(after: Counter, before: Counter) -> dict[Key, int]:
    keys = after.keys() | before.keys()
    return {k: after[k] - before[k] for k in keys if after[k] != before[k]}


def apply(delta: dict[Key, int]) -> None:
    """Add each value to its row, creating rows as needed, in one statement.

    Rows are written in key order so that concurrent transactions lock them in the same order and
    cannot deadlock; the addition happens in the database, so concurrent writers never lose an update.
    """
    rows = sorted((k, v) for k, v in delta.items() if v)
    if not rows:
        return
    table = connection.ops.quote_name(DailyCount._meta.db_table)
    # SQLite caps the number of bound parameters; 4 per row keeps a chunk well under it.
    for start in range(0, len(rows), 5000):
        chunk = rows[start : start + 5000]
        values = ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
        params = [p for (stat, subgroup, day), value in chunk for p in (stat, subgroup, day, value)]
        sql = (
            f"INSERT INTO {table} (stat, subgroup, day, value) VALUES {values} "
            f"ON CONFLICT (stat, subgroup, day) DO UPDATE SET value = {table}.value + excluded.value"
        )  # the table name comes from the model; every value is a bound parameter
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _facts_between(instance: Instance, first: dt.date, last: dt.date) -> list[Facts]:
    rows = instance.submissions.filter(report_date__range=(first, last)).values(*FACT_FIELDS)
    return facts_of(rows)


def record_submission(*, instance: Instance, facts: Facts, previous_first_date: dt.date | None) -> None:
    """Account for a submission just stored for `instance` (whose row the caller holds locked).

    Must run in the transaction that stored it, after the insert.
    """
    if instance.excluded:
        return
    day = facts.report_date
    neighbours = _facts_between(instance, day - WINDOW, day + WINDOW)
    without = [f for f in neighbours if f.report_date != day]
    after = contributions(neighbours, first=day, last=day + WINDOW, events=False)
    before = contributions(without, first=day, last=day + WINDOW, events=False)
    delta = _difference(after, before)
    delta[("reports", "", day)] = delta.get(("reports", "", day), 0) + 1
    if previous_first_date is None or day < previous_first_date:
        delta[("new_instances", "", day)] = delta.get(("new_instances", "", day), 0) + 1
        if previous_first_date is not None:
            key = ("new_instances", "", previous_first_date)
            delta[key] = delta.get(key, 0) - 1
    apply(delta)


def instance_contributions(instance: Instance) -> Counter:
    return contributions(facts_of(instance.submissions.values(*FACT_FIELDS)))


def add_instance(instance: Instance) -> None:
    """Count every report of the instance (when it is included again)."""
    apply(dict(instance_contributions(instance)))


def remove_instance(instance: Instance) -> None:
    """Take every report of the instance out of the figures (when excluded or before deletion)."""
    apply({k: -v for k, v in instance_contributions(instance).items()})


@transaction.atomic
def rebuild() -> int:
    """Recompute the whole table from the stored submissions; returns the number of rows written."""
    total: Counter = Counter()
    rows = (
        Submission.objects.filter(instance__excluded=False)
        .order_by("instance_id", "report_date")
        .values_list("instance_id", *FACT_FIELDS)
    )
    current, batch = None, []
    for row in rows.iterator(chunk_size=5000):
        if row[0] != current:
            total.update(contributions(batch))
            current, batch = row[0], []
        batch.append(Facts(*row[1:]))
    total.update(contributions(batch))
    DailyCount.objects.all().delete()
    DailyCount.objects.bulk_create(
        (DailyCount(stat=s, subgroup=g, day=d, value=v) for (s, g, d), v in total.items() if v),
        batch_size=5000,
    )
    return sum(1 for v in total.values() if v)


def table() -> dict[Key, int]:
    """The table's non-zero rows, for comparison (rows can be left at zero after a removal)."""
    return {
        (s, g, d): v
        for s, g, d, v in DailyCount.objects.exclude(value=0).values_list("stat", "subgroup", "day", "value")
    }
