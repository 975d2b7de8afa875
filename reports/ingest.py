"""Store one received report: created, duplicate, conflict or rejected, each in one transaction.

Nothing received is dropped: an accepted report is stored once with its projects, workflows and
aggregates; anything else well-formed goes to the review queue with its reasons. The number of
queries does not depend on the size of the report.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, models, transaction
from django.db.models import F
from django.utils import timezone

from . import aggregates, cache
from .formats import InvalidReport, Report, validate
from .models import Instance, Project, ReviewItem, Submission, Workflow

CREATED, DUPLICATE, CONFLICT, REJECTED = "created", "duplicate", "conflict", "rejected"


class MalformedBody(ValueError):
    """The body is not a JSON object: the client is told so and nothing is kept."""


@dataclass(frozen=True)
class Outcome:
    status: str
    submission: Submission | None = None
    review_item: ReviewItem | None = None
    errors: dict[str, str] = field(default_factory=dict)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_body(body: bytes) -> tuple[str, dict]:
    """Decode a request body into its text (stored as received) and a JSON object."""
    if not body:
        raise MalformedBody("the body is empty: send the report as a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedBody(f"the body is not UTF-8 text (byte {exc.start})") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MalformedBody(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:
        raise MalformedBody(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedBody("the body is not valid JSON: it is nested too deeply") from None
    if not isinstance(data, dict):
        raise MalformedBody("the body must be a JSON object")
    if "\x00" in text:
        # PostgreSQL text cannot hold NUL; JSON only allows it escaped, so this is never a real report.
        raise MalformedBody("the body contains a NUL character")
    return text, data


def receive(*, body: bytes, country: str = "", now: dt.datetime | None = None) -> Outcome:
    """Validate and store one request body. Raises MalformedBody for what is not a JSON object."""
    text, data = parse_body(body)
    now = now or timezone.now()
    try:
        report = validate(data, today=now.date())
    except InvalidReport as exc:
        item = keep_for_review(
            raw_body=text,
            data=data,
            reason=ReviewItem.Reason.INVALID,
            errors=exc.errors,
            country=country,
            now=now,
        )
        return Outcome(REJECTED, review_item=item, errors=exc.errors)
    return store(report=report, raw_body=text, data=data, country=country, now=now)


def store(*, report: Report, raw_body: str, data: dict, country: str, now: dt.datetime) -> Outcome:
    """Store a valid report once; an existing report for that instance and day wins."""
    try:
        with transaction.atomic():
            outcome = _store(report=report, raw_body=raw_body, country=country, now=now)
    except IntegrityError:
        # Only reachable if the row lock below was bypassed; the constraint still holds the line.
        outcome = Outcome(CONFLICT)
    if outcome.status == CONFLICT:
        item = keep_for_review(
            raw_body=raw_body,
            data=data,
            reason=ReviewItem.Reason.CONFLICT,
            errors={"report_date": f"a different report for {report.report_date} is already stored"},
            country=country,
            now=now,
            submission=outcome.submission,
        )
        return Outcome(CONFLICT, submission=outcome.submission, review_item=item)
    return outcome


def _locked_instance(report: Report, now: dt.datetime) -> Instance:
    """The report's instance, created if new, locked for the rest of the transaction.

    The lock serialises reports of one instance, so that duplicates are seen and the aggregates
    are computed from a stable set of neighbouring reports; other instances are not held up. One
    statement: ON CONFLICT DO UPDATE takes the row lock that SELECT ... FOR UPDATE would.
    """
    conn = connections[DEFAULT_DB_ALIAS]
    table = conn.ops.quote_name(Instance._meta.db_table)
    sql = (
        f"INSERT INTO {table} (hashed_uuid, version, operating_system, country, report_count, excluded, "
        "excluded_reason, created_at) VALUES (%s, '', '', '', 0, %s, '', %s) "
        "ON CONFLICT (hashed_uuid) DO UPDATE SET hashed_uuid = excluded.hashed_uuid "
        "RETURNING id, first_report_date, last_report_date, excluded, cleartext_uuid"
    )
    with conn.cursor() as cursor:
        cursor.execute(sql, [report.instance.hashed_uuid, False, now])
        pk, first, last, excluded, clear = cursor.fetchone()
    fields = Instance._meta
    return Instance(
        pk=pk,
        hashed_uuid=report.instance.hashed_uuid,
        first_report_date=fields.get_field("first_report_date").to_python(first),
        last_report_date=fields.get_field("last_report_date").to_python(last),
        excluded=bool(excluded),
        cleartext_uuid=fields.get_field("cleartext_uuid").to_python(clear),
    )


# What a report becomes in each table, shared by the single path (`store`) and the bulk one
# (`store_many`): a column tuple and a function from the validated report to a row of it.
SUBMISSION_COLUMNS = (
    "instance",
    "report_date",
    "format",
    "generated_at",
    "received_at",
    "version",
    "operating_system",
    "country",
    "no_of_users",
    "no_of_active_users",
    "no_of_monthly_active_users",
    "no_of_projects",
    "no_of_workflows",
    "no_of_jobs",
    "no_of_active_jobs",
    "no_of_runs",
    "no_of_steps",
    "content_hash",
    "raw_body",
)
PROJECT_COLUMNS = (
    "submission",
    "hashed_uuid",
    "cleartext_uuid",
    "no_of_users",
    "no_of_active_users",
    "no_of_monthly_active_users",
)
WORKFLOW_COLUMNS = (
    "submission",
    "project",
    "hashed_uuid",
    "cleartext_uuid",
    "no_of_jobs",
    "no_of_runs",
    "no_of_steps",
    "no_of_active_jobs",
)


def submission_row(
    report: Report, *, instance_id: int, country: str, now: dt.datetime, raw_body: str
) -> tuple:
    """The submission's values in SUBMISSION_COLUMNS order, with its totals over the details."""
    i, workflows = report.instance, list(report.workflows)
    return (
        instance_id,
        report.report_date,
        report.format,
        report.generated_at,
        now,
        i.version,
        i.operating_system,
        country,
        i.no_of_users,
        i.no_of_active_users,
        i.no_of_monthly_active_users,
        len(report.projects),
        len(workflows),
        sum(w.no_of_jobs for w in workflows),
        sum(w.no_of_active_jobs or 0 for w in workflows),
        sum(w.no_of_runs for w in workflows),
        sum(w.no_of_steps for w in workflows),
        report.content_hash,
        raw_body,
    )


def project_row(project, *, submission_id: int) -> tuple:
    p = project
    return (
        submission_id,
        p.hashed_uuid,
        p.cleartext_uuid,
        p.no_of_users,
        p.no_of_active_users,
        p.no_of_monthly_active_users,
    )


def workflow_rows(project, *, submission_id: int, project_id: int) -> list[tuple]:
    return [
        (
            submission_id,
            project_id,
            w.hashed_uuid,
            w.cleartext_uuid,
            w.no_of_jobs,
            w.no_of_runs,
            w.no_of_steps,
            w.no_of_active_jobs,
        )
        for w in project.workflows
    ]


def _store(*, report: Report, raw_body: str, country: str, now: dt.datetime) -> Outcome:
    instance = _locked_instance(report, now)
    existing = (
        Submission.objects.filter(instance=instance, report_date=report.report_date)
        .only("id", "content_hash", "instance_id", "report_date")
        .first()
    )
    if existing is not None:
        status = DUPLICATE if existing.content_hash == report.content_hash else CONFLICT
        return Outcome(status, submission=existing)

    row = submission_row(report, instance_id=instance.pk, country=country, now=now, raw_body=raw_body)
    values = dict(zip(SUBMISSION_COLUMNS, row, strict=True))
    submission = Submission.objects.create(**{**values, "instance": instance})
    _store_details(submission, report.projects)
    previous_first = instance.first_report_date
    _update_instance(instance, report, country)
    aggregates.record_submission(
        instance=instance,
        facts=aggregates.Facts(**{name: getattr(submission, name) for name in aggregates.FACT_FIELDS}),
        previous_first_date=previous_first,
    )
    return Outcome(CREATED, submission=submission)


def _store_details(submission: Submission, projects) -> None:
    """Insert the projects, then the workflows, one statement each whatever their number."""
    if not projects:
        return
    rows = [project_row(p, submission_id=submission.pk) for p in projects]
    project_ids = dict(_insert_rows(Project, PROJECT_COLUMNS, rows, returning=("hashed_uuid", "id")))
    rows = [
        row
        for p in projects
        for row in workflow_rows(p, submission_id=submission.pk, project_id=project_ids[p.hashed_uuid])
    ]
    if rows:
        _insert_rows(Workflow, WORKFLOW_COLUMNS, rows)


def _insert_rows(model, fields: tuple[str, ...], rows: list[tuple], returning: tuple[str, ...] = ()) -> list:
    """INSERT any number of rows in one statement: columns as arrays through unnest() on PostgreSQL,
    one JSON document through json_each() on SQLite. Django's bulk_create would split large reports
    into many statements (SQLite) and bind a parameter per value (PostgreSQL)."""
    conn = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: the proxy costs a lookup per use
    qn = conn.ops.quote_name
    opts = model._meta
    model_fields = [opts.get_field(name) for name in fields]
    columns = ", ".join(qn(f.column) for f in model_fields)
    # Only UUIDs need converting (SQLite stores them as hex); the other values are ints, str or None.
    uuid_columns = [i for i, f in enumerate(model_fields) if isinstance(f, models.UUIDField)]
    prepared = [list(row) for row in rows]
    for row in prepared:
        for i in uuid_columns:
            row[i] = model_fields[i].get_db_prep_value(row[i], conn)
    if conn.vendor == "postgresql":
        arrays = ", ".join(
            f"%s::{f.rel_db_type(conn) if f.is_relation else f.db_type(conn)}[]" for f in model_fields
        )
        # Names come from the model's fields; every value is a bound parameter.
        sql = f"INSERT INTO {qn(opts.db_table)} ({columns}) SELECT * FROM unnest({arrays})"
        params = [list(column) for column in zip(*prepared, strict=True)]
    else:
        values = ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(model_fields)))
        sql = f"INSERT INTO {qn(opts.db_table)} ({columns}) SELECT {values} FROM json_each(%s)"
        params = [json.dumps(prepared, default=str)]
    if returning:
        sql += " RETURNING " + ", ".join(qn(opts.get_field(name).column) for name in returning)
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if returning else []


def _update_instance(instance: Instance, report: Report, country: str) -> None:
    day = report.report_date
    changes = {"report_count": F("report_count") + 1}
    if instance.first_report_date is None or day < instance.first_report_date:
        changes["first_report_date"] = day
    if instance.last_report_date is None or day >= instance.last_report_date:
        changes.update(
            last_report_date=day,
            version=report.instance.version,
            operating_system=report.instance.operating_system,
            country=country,
        )
    if report.instance.cleartext_uuid is not None and instance.cleartext_uuid is None:
        changes["cleartext_uuid"] = report.instance.cleartext_uuid
    Instance.objects.filter(pk=instance.pk).update(**changes)
    for name, value in changes.items():
        if name != "report_count":
            setattr(instance, name, value)


def keep_for_review(
    *,
    raw_body: str,
    data: dict,
    reason: str,
    errors: dict,
    country: str,
    now: dt.datetime,
    submission: Submission | None = None,
) -> ReviewItem:
    """Queue a body for an admin; the same body re-sent while pending is counted on the same entry."""
    body_hash = hashlib.sha256(raw_body.encode()).hexdigest()
    pending = ReviewItem.objects.filter(body_hash=body_hash, status=ReviewItem.Status.PENDING)

    def count_again() -> ReviewItem | None:
        if pending.update(times_received=F("times_received") + 1, last_received_at=now):
            return pending.get()
        return None

    with transaction.atomic():
        item = count_again()
        if item is not None:
            return item
        try:
            with transaction.atomic():  # a savepoint: the same body may be queued concurrently
                return ReviewItem.objects.create(
                    reason=reason,
                    errors=errors,
                    raw_body=raw_body,
                    body_hash=body_hash,
                    instance_hash=_instance_hash_of(data),
                    report_date=_report_date_of(data),
                    country=country,
                    received_at=now,
                    last_received_at=now,
                    submission=submission,
                )
        except IntegrityError:
            # Another request queued it first (the unique index waited for its commit): count this one.
            return count_again() or pending.get()


def _instance_hash_of(data: dict) -> str:
    instance = data.get("instance")
    value = instance.get("hashed_uuid") if isinstance(instance, dict) else None
    return value.upper() if isinstance(value, str) and len(value) == 64 else ""


def _report_date_of(data: dict) -> dt.date | None:
    value = data.get("report_date")
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        return None


# --- Bulk loading: many reports at once (the demo fleet, imports) ---------------------------------

MALFORMED = "malformed"
BULK_CHUNK = 2000


class _Raced(Exception):
    """A report of the batch was stored by someone else after the batch was checked."""


def store_many(
    *,
    items: Iterable[tuple[bytes | str, str]],
    now: dt.datetime | None = None,
    chunk_size: int = BULK_CHUNK,
) -> Counter:
    """Store (body, country) pairs exactly as `receive` would one after the other, far faster.

    Returns how many were created, duplicate, conflict, rejected or malformed (not a JSON object:
    nothing kept, as the API would answer 400). New reports are stored `chunk_size` at a time, each
    chunk in one transaction with a few multi-row statements (COPY on PostgreSQL); anything else (a
    repeat of a stored report, an invalid one) goes through `receive`, in order, so it ends exactly as
    it would have. The daily aggregates are not kept up report by report: they are rebuilt once at
    the end, so the cost of a call includes one full `aggregates.rebuild()` whatever its size; and
    like the rebuild it is meant for loading (the demo, imports), not for a server receiving reports
    at the same moment, whose incremental updates the rebuild could overwrite.
    """
    now = now or timezone.now()
    counts: Counter = Counter()
    bulk_created = 0
    for chunk in _batches(items, chunk_size):
        bulk_created += _store_chunk(chunk, now=now, counts=counts)
    if bulk_created:
        aggregates.rebuild()
        cache.figures_changed()
    return counts


def _batches(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch


@dataclass
class _Pending:
    raw: bytes
    country: str
    text: str
    report: Report


def _store_chunk(chunk: list, *, now: dt.datetime, counts: Counter) -> int:
    """Returns how many reports were stored by the bulk path (the rest went through `receive`)."""
    parsed: list[tuple[bytes, str, _Pending | None]] = []
    for body, country in chunk:
        raw = body.encode() if isinstance(body, str) else body
        try:
            text, data = parse_body(raw)
        except MalformedBody:
            counts[MALFORMED] += 1
            continue
        try:
            report = validate(data, today=now.date())
        except InvalidReport:
            parsed.append((raw, country, None))
            continue
        parsed.append((raw, country, _Pending(raw, country, text, report)))

    stored = _stored_keys([p.report for _, _, p in parsed if p is not None])
    batch: list[_Pending] = []
    seen: set[tuple[str, dt.date]] = set()
    bulk_created = 0

    def flush() -> None:
        nonlocal bulk_created
        if batch:
            bulk_created += _store_batch(batch, now=now, counts=counts)
            batch.clear()

    for raw, country, pending in parsed:
        key = _key(pending.report) if pending is not None else None
        if key is None or key in stored or key in seen:
            # Invalid, or a repeat of a stored report: the single path decides, after what precedes it.
            flush()
            counts[receive(body=raw, country=country, now=now).status] += 1
            continue
        seen.add(key)
        batch.append(pending)
    flush()
    return bulk_created


def _key(report: Report) -> tuple[str, dt.date]:
    return report.instance.hashed_uuid, report.report_date


def _stored_keys(reports: list[Report]) -> set[tuple[str, dt.date]]:
    """Which (instance hash, report date) of these reports are already stored."""
    keys = {_key(r) for r in reports}
    if not keys:
        return set()
    rows = Submission.objects.filter(
        instance__hashed_uuid__in={h for h, _ in keys}, report_date__in={d for _, d in keys}
    ).values_list("instance__hashed_uuid", "report_date")
    return keys & set(rows)


def _store_batch(batch: list[_Pending], *, now: dt.datetime, counts: Counter) -> int:
    try:
        with transaction.atomic():
            _insert_batch(batch, now=now)
    except (_Raced, IntegrityError):
        # Another writer stored one of these meanwhile: let the single path sort each one out.
        for p in batch:
            counts[receive(body=p.raw, country=p.country, now=now).status] += 1
        return 0
    counts[CREATED] += len(batch)
    return len(batch)


def _insert_batch(batch: list[_Pending], *, now: dt.datetime) -> None:
    """Store reports known to be new, with their instances' bookkeeping, in a handful of statements."""
    hashes = sorted({p.report.instance.hashed_uuid for p in batch})
    Instance.objects.bulk_create([Instance(hashed_uuid=h) for h in hashes], ignore_conflicts=True)
    # Locked in one order, as `_locked_instance` locks them, so that concurrent writers queue.
    instances = {
        i.hashed_uuid: i
        for i in Instance.objects.select_for_update()
        .filter(hashed_uuid__in=hashes)
        .order_by("hashed_uuid")
        .only(
            "id",
            "hashed_uuid",
            "first_report_date",
            "last_report_date",
            "version",
            "operating_system",
            "country",
            "cleartext_uuid",
        )
    }
    keys = {(instances[h].pk, d) for h, d in map(_key, (p.report for p in batch))}
    stored = Submission.objects.filter(
        instance_id__in={i for i, _ in keys}, report_date__in={d for _, d in keys}
    ).values_list("instance_id", "report_date")
    if keys & set(stored):
        raise _Raced

    submission_rows = [
        submission_row(
            p.report,
            instance_id=instances[p.report.instance.hashed_uuid].pk,
            country=p.country,
            now=now,
            raw_body=p.text,
        )
        for p in batch
    ]
    submission_ids = _bulk_insert(
        Submission, SUBMISSION_COLUMNS, submission_rows, key=lambda row: (row[0], _iso(row[1]))
    )
    project_rows, owners = [], []
    for p, row in zip(batch, submission_rows, strict=True):
        submission_id = submission_ids[(row[0], _iso(row[1]))]
        for project in p.report.projects:
            project_rows.append(project_row(project, submission_id=submission_id))
            owners.append(project)
    project_ids = _bulk_insert(Project, PROJECT_COLUMNS, project_rows, key=lambda row: (row[0], row[1]))
    rows = [
        row
        for prow, project in zip(project_rows, owners, strict=True)
        for row in workflow_rows(project, submission_id=prow[0], project_id=project_ids[(prow[0], prow[1])])
    ]
    _bulk_insert(Workflow, WORKFLOW_COLUMNS, rows)
    _update_instances(instances, batch)


def _iso(day) -> str:
    # SQLite hands dates back as text, PostgreSQL as dates.
    return day if isinstance(day, str) else day.isoformat()


def _bulk_insert(model, fields: tuple[str, ...], rows: list[tuple], key=None) -> dict:
    """Insert rows; with `key` (row -> natural key), return {natural key: new id}.

    PostgreSQL: ids drawn from the table's sequence in one query, rows sent with COPY (no parameters
    to bind, no per-row statement). SQLite: one INSERT through `_insert_rows`, ids by RETURNING.
    """
    if not rows:
        return {}
    if connection.vendor != "postgresql":
        if key is None:
            _insert_rows(model, fields, rows)
            return {}
        # The RETURNING columns are the natural key's, by position: (first field, second field).
        returned = _insert_rows(model, fields, rows, returning=(fields[0], fields[1], "id"))
        return {(a, _iso(b)): pk for a, b, pk in returned}

    opts = model._meta
    qn = connection.ops.quote_name
    columns = [opts.get_field(name).column for name in fields]
    ids = {}
    with connection.cursor() as cursor:
        if key is not None:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
                [opts.db_table, len(rows)],
            )
            new_ids = sorted(pk for (pk,) in cursor.fetchall())
            ids = {key(row): pk for row, pk in zip(rows, new_ids, strict=True)}
            columns = ["id", *columns]
            rows = [(pk, *row) for row, pk in zip(rows, new_ids, strict=True)]
        # Names come from the model's fields; the values travel as COPY data, never as SQL.
        sql = f"COPY {qn(opts.db_table)} ({', '.join(qn(c) for c in columns)}) FROM STDIN"
        with cursor.cursor.copy(sql) as copy:
            for row in rows:
                copy.write_row(row)
    return ids


def _update_instances(instances: dict[str, Instance], batch: list[_Pending]) -> None:
    """Apply `_update_instance`'s rules for every report of the batch, in order: one row per instance."""
    counts: Counter = Counter()
    for p in batch:
        r = p.report
        instance = instances[r.instance.hashed_uuid]
        day = r.report_date
        counts[instance.pk] += 1
        if instance.first_report_date is None or day < instance.first_report_date:
            instance.first_report_date = day
        if instance.last_report_date is None or day >= instance.last_report_date:
            instance.last_report_date = day
            instance.version = r.instance.version
            instance.operating_system = r.instance.operating_system
            instance.country = p.country
        if r.instance.cleartext_uuid is not None and instance.cleartext_uuid is None:
            instance.cleartext_uuid = r.instance.cleartext_uuid
    names = (
        "first_report_date",
        "last_report_date",
        "version",
        "operating_system",
        "country",
        "cleartext_uuid",
    )
    opts = Instance._meta
    qn = connection.ops.quote_name
    fields = [opts.get_field(name) for name in names]
    assignments = ", ".join(f"{qn(f.column)} = %s" for f in fields)
    count_column = qn(opts.get_field("report_count").column)
    sql = (
        f"UPDATE {qn(opts.db_table)} SET {assignments}, {count_column} = {count_column} + %s "
        f"WHERE {qn(opts.pk.column)} = %s"
    )
    params = [
        [*(f.get_db_prep_value(getattr(i, f.attname), connection) for f in fields), counts[i.pk], i.pk]
        for i in instances.values()
        if counts[i.pk]
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
