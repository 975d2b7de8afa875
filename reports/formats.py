"""The report formats "1", "2" and "3": raw JSON -> a validated, typed report, or errors by field path.

Pure Python: no database, no request. The field tables below are the single definition of what a
report may hold; validation walks them, and the public "About the data" page is generated from them,
so the two cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field

FORMATS = ("1", "2", "3")
ALL = frozenset(FORMATS)
SINCE_2 = frozenset({"2", "3"})
ONLY_3 = frozenset({"3"})

# Counts are stored in PostgreSQL bigint columns; anything larger cannot be a real count.
MAX_COUNT = 2**63 - 1
MAX_TEXT = 200  # version and operating-system strings
MAX_ERRORS = 100  # a report with thousands of bad rows gets the first hundred, and a count
EARLIEST_REPORT_DATE = dt.date(2020, 1, 1)  # OpenFn Lightning did not exist before this

HEX64 = re.compile(r"[0-9A-Fa-f]{64}")


@dataclass(frozen=True)
class Field:
    """One field of a report object: its JSON name, kind, in which formats it is required or allowed."""

    name: str
    kind: str  # count | hash | uuid | text | date | datetime | format | object | list
    meaning: str
    kept: str
    required_in: frozenset[str] = ALL
    allowed_in: frozenset[str] = ALL
    nullable: bool = False

    def required(self, fmt: str) -> bool:
        return fmt in self.required_in

    def allowed(self, fmt: str) -> bool:
        return fmt in self.allowed_in or fmt in self.required_in

    def presence(self, fmt: str) -> str:
        """'required', 'optional' or 'not in this format', as the documentation says it."""
        if self.required(fmt):
            return "required"
        return "optional" if self.allowed(fmt) else "not in this format"

    @property
    def type_label(self) -> str:
        return KIND_LABELS[self.kind] + (" or null" if self.nullable else "")


KIND_LABELS = {
    "count": "integer ≥ 0",
    "hash": "64 hexadecimal characters",
    "uuid": "UUID",
    "text": f"text, at most {MAX_TEXT} characters",
    "date": "date, YYYY-MM-DD",
    "datetime": "date-time with a time zone (ISO-8601)",
    "format": 'text: "1", "2" or "3"',
    "object": "object",
    "list": "list",
}

REPORT_FIELDS = (
    Field("version", "format", 'The report format: "1", "2" or "3".', "Stored as the submission's format."),
    Field(
        "generated_at",
        "datetime",
        "When the instance generated the report (ISO-8601 with a time zone).",
        "Stored.",
    ),
    Field(
        "report_date",
        "date",
        "The UTC day the figures describe (YYYY-MM-DD). Format 1 has none: "
        "the day before generated_at is used.",
        "Stored as the submission's report date; one report per instance and day.",
        required_in=SINCE_2,
        allowed_in=SINCE_2,
    ),
    Field("instance", "object", "The reporting instance (see below).", "See the instance fields."),
    Field("projects", "list", "The instance's projects (may be empty).", "One row per project."),
)

INSTANCE_FIELDS = (
    Field(
        "hashed_uuid",
        "hash",
        "SHA-256 of the instance's UUID, 64 hexadecimal characters: identifies the instance anonymously.",
        "Stored upper-case; identifies the instance across reports.",
    ),
    Field(
        "cleartext_uuid",
        "uuid",
        "The instance's UUID in clear, sent only if the operator chose to. May be null.",
        "Stored when given, after checking that it hashes to hashed_uuid.",
        required_in=frozenset(),
        nullable=True,
    ),
    Field("version", "text", "The Lightning version, e.g. v2.4.2:match:f1bd9ae.", "Stored."),
    Field("operating_system", "text", "The operating system family, e.g. linux.", "Stored."),
    Field("no_of_users", "count", "Users of the instance on the report date.", "Stored."),
    Field(
        "no_of_active_users",
        "count",
        "Users active in the 90 days up to the report date.",
        "Stored.",
        required_in=SINCE_2,
    ),
    Field(
        "no_of_monthly_active_users",
        "count",
        "Users active in the 30 days up to the report date.",
        "Stored.",
        required_in=ONLY_3,
        allowed_in=ONLY_3,
    ),
)

PROJECT_FIELDS = (
    Field("hashed_uuid", "hash", "SHA-256 of the project's UUID.", "Stored upper-case."),
    Field(
        "cleartext_uuid",
        "uuid",
        "The project's UUID in clear, if the operator chose to send it. May be null.",
        "Stored when given and matching the hash.",
        required_in=frozenset(),
        nullable=True,
    ),
    Field("no_of_users", "count", "Users with access to the project.", "Stored."),
    Field(
        "no_of_active_users",
        "count",
        "Project users active in the 90 days up to the report date.",
        "Stored.",
        required_in=SINCE_2,
    ),
    Field(
        "no_of_monthly_active_users",
        "count",
        "Project users active in the 30 days up to the report date.",
        "Stored.",
        required_in=ONLY_3,
        allowed_in=ONLY_3,
    ),
    Field(
        "workflows",
        "list",
        "The project's workflows; a missing list means none.",
        "One row per workflow.",
        required_in=frozenset(),
    ),
)

WORKFLOW_FIELDS = (
    Field("hashed_uuid", "hash", "SHA-256 of the workflow's UUID.", "Stored upper-case."),
    Field(
        "cleartext_uuid",
        "uuid",
        "The workflow's UUID in clear, if the operator chose to send it. May be null.",
        "Stored when given and matching the hash.",
        required_in=frozenset(),
        nullable=True,
    ),
    Field("no_of_jobs", "count", "Jobs (steps of the workflow's design) in the workflow.", "Stored."),
    Field(
        "no_of_runs",
        "count",
        "Runs finished on the report date (format 1: all time, never added to daily totals).",
        "Stored.",
    ),
    Field(
        "no_of_steps",
        "count",
        "Steps executed on the report date (format 1: all time, never added to daily totals).",
        "Stored.",
    ),
    Field(
        "no_of_active_jobs",
        "count",
        "Jobs with at least one run in the reported period.",
        "Stored.",
        required_in=SINCE_2,
    ),
)

SECTIONS = (
    ("report", "", REPORT_FIELDS),
    ("instance", "instance", INSTANCE_FIELDS),
    ("project", "projects[]", PROJECT_FIELDS),
    ("workflow", "projects[].workflows[]", WORKFLOW_FIELDS),
)


@dataclass(frozen=True)
class Workflow:
    hashed_uuid: str
    cleartext_uuid: uuid.UUID | None
    no_of_jobs: int
    no_of_runs: int
    no_of_steps: int
    no_of_active_jobs: int | None


@dataclass(frozen=True)
class Project:
    hashed_uuid: str
    cleartext_uuid: uuid.UUID | None
    no_of_users: int
    no_of_active_users: int | None
    no_of_monthly_active_users: int | None
    workflows: tuple[Workflow, ...]


@dataclass(frozen=True)
class Instance:
    hashed_uuid: str
    cleartext_uuid: uuid.UUID | None
    version: str
    operating_system: str
    no_of_users: int
    no_of_active_users: int | None
    no_of_monthly_active_users: int | None


@dataclass(frozen=True)
class Report:
    """A report that passed validation, typed; `content_hash` identifies its content for duplicates."""

    format: str
    generated_at: dt.datetime
    report_date: dt.date
    instance: Instance
    projects: tuple[Project, ...]
    content_hash: str

    @property
    def workflows(self):
        return (w for p in self.projects for w in p.workflows)


class InvalidReport(Exception):
    """Raised with every problem found, as {field path: message}."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" if k else v for k, v in errors.items()))
        self.errors = errors


@dataclass
class _Errors:
    items: dict[str, str] = field(default_factory=dict)
    dropped: int = 0

    def add(self, path: str, message: str) -> None:
        if path in self.items:
            return
        if len(self.items) >= MAX_ERRORS:
            self.dropped += 1
            return
        self.items[path] = message

    def result(self) -> dict[str, str]:
        out = dict(self.items)
        if self.dropped:
            out["..."] = f"and {self.dropped} more errors"
        return out


def content_hash(data: dict) -> str:
    """A digest of the report's content that ignores key order and whitespace."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def hash_uuid(value: uuid.UUID | str) -> str:
    """The hash Lightning sends: upper-case hex SHA-256 of the lower-case hyphenated UUID."""
    return hashlib.sha256(str(value).lower().encode()).hexdigest().upper()


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _describe(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _check_count(value, path, errors):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        errors.add(path, f"must be an integer >= 0, not {_describe(value)}")
        return None
    if value > MAX_COUNT:
        errors.add(path, f"must be at most {MAX_COUNT}")
        return None
    return value


def _check_hash(value, path, errors):
    if not isinstance(value, str) or not HEX64.fullmatch(value):
        errors.add(path, "must be exactly 64 hexadecimal characters")
        return None
    return value.upper()


def _check_uuid(value, path, errors):
    if value is None:
        return None
    if not isinstance(value, str):
        errors.add(path, f"must be a UUID string or null, not {_describe(value)}")
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        errors.add(path, "must be a valid UUID")
        return None


def _check_text(value, path, errors):
    if not isinstance(value, str):
        errors.add(path, f"must be a string, not {_describe(value)}")
        return None
    value = value.strip()
    if not value:
        errors.add(path, "must not be empty")
        return None
    if len(value) > MAX_TEXT:
        errors.add(path, f"must be at most {MAX_TEXT} characters")
        return None
    if any(ord(c) < 32 for c in value):
        errors.add(path, "must not contain control characters")
        return None
    return value


def _check_datetime(value, path, errors):
    if not isinstance(value, str):
        errors.add(path, f"must be an ISO-8601 date-time string, not {_describe(value)}")
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        errors.add(path, "must be an ISO-8601 date-time, e.g. 2024-04-26T01:30:00Z")
        return None
    if parsed.tzinfo is None:
        errors.add(path, "must include a time zone, e.g. 2024-04-26T01:30:00Z")
        return None
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+05:00 is before the first representable instant
        errors.add(path, "is out of range")
        return None


def _check_date(value, path, errors):
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        errors.add(path, "must be a date as YYYY-MM-DD")
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        errors.add(path, "must be a real calendar date as YYYY-MM-DD")
        return None


_CHECKS = {
    "count": _check_count,
    "hash": _check_hash,
    "uuid": _check_uuid,
    "text": _check_text,
    "datetime": _check_datetime,
    "date": _check_date,
}


def _read_fields(obj: dict, fields, fmt: str, path: str, errors: _Errors) -> dict:
    """Check each defined field of one object; unknown keys are ignored (they stay in the raw JSON)."""
    values = {}
    for f in fields:
        fpath = _join(path, f.name)
        if f.name not in obj:
            if f.required(fmt):
                errors.add(fpath, "is required")
            values[f.name] = None
            continue
        if not f.allowed(fmt):
            values[f.name] = None  # tolerated and kept in the raw JSON, but not part of this format
            continue
        value = obj[f.name]
        if value is None and f.nullable:
            values[f.name] = None
            continue
        check = _CHECKS.get(f.kind)
        values[f.name] = check(value, fpath, errors) if check else value
    return values


def _check_uuid_pair(values: dict, path: str, errors: _Errors) -> None:
    clear, hashed = values.get("cleartext_uuid"), values.get("hashed_uuid")
    if clear is not None and hashed is not None and hash_uuid(clear) != hashed:
        errors.add(
            _join(path, "hashed_uuid"),
            "does not match cleartext_uuid (expected the upper-case SHA-256 of the lower-case UUID)",
        )


def _read_list(value, path: str, errors: _Errors, *, required: bool) -> list:
    if value is None and not required:
        return []
    if not isinstance(value, list):
        errors.add(path, f"must be a list, not {_describe(value)}")
        return []
    return value


def _read_workflows(raw, fmt, path, errors, seen: dict[str, str]) -> tuple[Workflow, ...]:
    """`seen` maps workflow hashes to where they first appeared, across the whole report."""
    workflows = []
    for i, item in enumerate(raw):
        wpath = f"{path}[{i}]"
        if not isinstance(item, dict):
            errors.add(wpath, f"must be an object, not {_describe(item)}")
            continue
        v = _read_fields(item, WORKFLOW_FIELDS, fmt, wpath, errors)
        _check_uuid_pair(v, wpath, errors)
        if v["hashed_uuid"] is not None:
            first = seen.setdefault(v["hashed_uuid"], wpath)
            if first != wpath:
                errors.add(_join(wpath, "hashed_uuid"), f"repeats {first}")
        workflows.append(Workflow(**{f.name: v[f.name] for f in WORKFLOW_FIELDS}))
    return tuple(workflows)


def _read_projects(raw, fmt, errors) -> tuple[Project, ...]:
    projects, seen_projects, seen_workflows = [], {}, {}
    for i, item in enumerate(raw):
        ppath = f"projects[{i}]"
        if not isinstance(item, dict):
            errors.add(ppath, f"must be an object, not {_describe(item)}")
            continue
        v = _read_fields(item, PROJECT_FIELDS, fmt, ppath, errors)
        _check_uuid_pair(v, ppath, errors)
        if v["hashed_uuid"] is not None:
            if v["hashed_uuid"] in seen_projects:
                errors.add(
                    _join(ppath, "hashed_uuid"), f"repeats projects[{seen_projects[v['hashed_uuid']]}]"
                )
            seen_projects.setdefault(v["hashed_uuid"], i)
        wpath = _join(ppath, "workflows")
        raw_workflows = _read_list(item.get("workflows"), wpath, errors, required=False)
        workflows = _read_workflows(raw_workflows, fmt, wpath, errors, seen_workflows)
        fields = {f.name: v[f.name] for f in PROJECT_FIELDS if f.name != "workflows"}
        projects.append(Project(**fields, workflows=workflows))
    return tuple(projects)


def validate(data, *, today: dt.date | None = None) -> Report:
    """Turn a decoded JSON value into a Report, or raise InvalidReport with every problem found."""
    errors = _Errors()
    if not isinstance(data, dict):
        raise InvalidReport({"": f"the report must be a JSON object, not {_describe(data)}"})
    fmt = data.get("version")
    if fmt not in FORMATS:
        shown = json.dumps(fmt)[:40] if fmt is not None else "missing"
        raise InvalidReport({"version": f'must be one of "1", "2", "3" (got {shown})'})

    top = _read_fields(data, REPORT_FIELDS, fmt, "", errors)
    raw_instance = data.get("instance")
    inst = {}
    if isinstance(raw_instance, dict):
        inst = _read_fields(raw_instance, INSTANCE_FIELDS, fmt, "instance", errors)
        _check_uuid_pair(inst, "instance", errors)
    elif "instance" in data:
        errors.add("instance", f"must be an object, not {_describe(raw_instance)}")
    projects = _read_projects(
        _read_list(data.get("projects"), "projects", errors, required=True), fmt, errors
    )

    generated_at, report_date = top["generated_at"], top["report_date"]
    if fmt == "1" and generated_at is not None:
        # The day before; 0001-01-01 has none, and is refused below as too early anyway.
        report_date = max(generated_at.date(), dt.date.min + dt.timedelta(days=1)) - dt.timedelta(days=1)
    if report_date is not None:
        today = today or dt.datetime.now(dt.UTC).date()
        if report_date > today + dt.timedelta(days=1):
            errors.add("report_date", "must not be later than tomorrow (UTC)")
        elif report_date < EARLIEST_REPORT_DATE:
            errors.add("report_date", f"must not be earlier than {EARLIEST_REPORT_DATE.isoformat()}")

    if errors.items:
        raise InvalidReport(errors.result())
    return Report(
        format=fmt,
        generated_at=generated_at,
        report_date=report_date,
        instance=Instance(**{f.name: inst[f.name] for f in INSTANCE_FIELDS}),
        projects=projects,
        content_hash=content_hash(data),
    )


def validated_fields() -> dict[str, set[str]]:
    """Every field path the validation knows, by section: what the documentation must list."""
    return {section: {f.name for f in fields} for section, _, fields in SECTIONS}
