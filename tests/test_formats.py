"""One test per validation rule: the message names the field path and says what is wrong."""

import datetime as dt
import uuid

import pytest

from reports.formats import InvalidReport, hash_uuid, validate, validated_fields
from tests.factories import DELETE, changed, report, seed_report

TODAY = dt.date(2024, 5, 1)


def errors_of(data) -> dict:
    with pytest.raises(InvalidReport) as info:
        validate(data, today=TODAY)
    return info.value.errors


def test_seed_example_is_a_valid_format_2_report():
    r = validate(seed_report(), today=TODAY)
    assert r.format == "2"
    assert r.report_date == dt.date(2024, 4, 25)
    assert r.instance.hashed_uuid.startswith("4CE189B9")
    assert r.instance.no_of_users == 137
    assert [len(p.workflows) for p in r.projects] == [2]
    assert sum(w.no_of_runs for w in r.workflows) == 12


@pytest.mark.parametrize("fmt", ["1", "2", "3"])
def test_each_format_is_accepted(fmt):
    r = validate(report(fmt=fmt, day="2024-04-25"), today=TODAY)
    assert r.format == fmt
    assert r.report_date == dt.date(2024, 4, 25)
    assert (r.instance.no_of_monthly_active_users is not None) == (fmt == "3")


def test_format_1_report_date_is_the_utc_day_before_generated_at():
    data = report(fmt="1")
    data["generated_at"] = "2024-03-10T00:30:00+02:00"  # 2024-03-09T22:30Z
    assert validate(data, today=TODAY).report_date == dt.date(2024, 3, 8)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("4", 'must be one of "1", "2", "3" (got "4")'),
        (2, 'must be one of "1", "2", "3" (got 2)'),
        (DELETE, 'must be one of "1", "2", "3" (got missing)'),
    ],
)
def test_unknown_or_missing_format_version(value, message):
    assert errors_of(changed(report(), "version", value)) == {"version": message}


def test_body_must_be_an_object():
    assert errors_of([1, 2]) == {"": "the report must be a JSON object, not a list"}


@pytest.mark.parametrize("field", ["generated_at", "report_date", "instance", "projects"])
def test_top_level_fields_are_required(field):
    assert errors_of(changed(report(), field, DELETE))[field] == "is required"


def test_generated_at_needs_a_time_zone():
    assert errors_of(changed(report(), "generated_at", "2024-04-26T01:30:00"))["generated_at"] == (
        "must include a time zone, e.g. 2024-04-26T01:30:00Z"
    )


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00Z", 1714000000])
def test_generated_at_must_be_iso_8601(value):
    assert errors_of(changed(report(), "generated_at", value))["generated_at"].startswith(
        "must be an ISO-8601"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2024-4-25", "must be a date as YYYY-MM-DD"),
        ("2024-02-30", "must be a real calendar date as YYYY-MM-DD"),
        (20240425, "must be a date as YYYY-MM-DD"),
    ],
)
def test_report_date_format(value, message):
    assert errors_of(changed(report(), "report_date", value))["report_date"] == message


def test_report_date_may_be_tomorrow_but_not_later():
    assert validate(report(day=TODAY + dt.timedelta(days=1)), today=TODAY)
    assert errors_of(report(day=TODAY + dt.timedelta(days=2)))["report_date"] == (
        "must not be later than tomorrow (UTC)"
    )


def test_report_date_before_lightning_existed_is_refused():
    assert errors_of(report(day="2019-12-31"))["report_date"] == "must not be earlier than 2020-01-01"


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (-1, "a number"),
        (1.5, "a number"),
        (True, "a boolean"),
        ("3", "a string"),
        (None, "null"),
        ([], "a list"),
    ],
)
def test_counts_must_be_non_negative_integers(value, kind):
    data = changed(report(projects=3), "projects.2.workflows.0.no_of_runs", value)
    assert errors_of(data) == {"projects[2].workflows[0].no_of_runs": f"must be an integer >= 0, not {kind}"}


def test_counts_must_fit_a_bigint():
    data = changed(report(), "instance.no_of_users", 2**63)
    assert errors_of(data) == {"instance.no_of_users": f"must be at most {2**63 - 1}"}
    assert validate(changed(report(), "instance.no_of_users", 2**63 - 1), today=TODAY)


@pytest.mark.parametrize(
    "field", ["no_of_users", "no_of_active_users", "version", "operating_system", "hashed_uuid"]
)
def test_instance_fields_are_required(field):
    assert errors_of(changed(report(fmt="2"), f"instance.{field}", DELETE)) == {
        f"instance.{field}": "is required"
    }


def test_monthly_active_users_required_in_format_3_only():
    assert errors_of(changed(report(fmt="3"), "instance.no_of_monthly_active_users", DELETE)) == {
        "instance.no_of_monthly_active_users": "is required"
    }
    r = validate(changed(report(fmt="2"), "instance.no_of_monthly_active_users", 4), today=TODAY)
    assert r.instance.no_of_monthly_active_users is None  # not part of format 2: kept only in the raw JSON


@pytest.mark.parametrize(
    "value", ["abc", "4CE189B993247E94FD2A9EDD28CEC9C9D5A7125AB85F4586A6C994D89DCC097", 42, "G" * 64]
)
def test_hashed_uuid_is_64_hex_characters(value):
    assert errors_of(changed(report(), "instance.hashed_uuid", value)) == {
        "instance.hashed_uuid": "must be exactly 64 hexadecimal characters"
    }


def test_hashed_uuid_is_stored_upper_case():
    data = changed(report(), "instance.hashed_uuid", report()["instance"]["hashed_uuid"].lower())
    assert validate(data, today=TODAY).instance.hashed_uuid == report()["instance"]["hashed_uuid"]


def test_cleartext_uuid_must_hash_to_hashed_uuid():
    data = report(cleartext=True)
    assert validate(data, today=TODAY).instance.cleartext_uuid == uuid.UUID(
        data["instance"]["cleartext_uuid"]
    )
    other = changed(data, "instance.cleartext_uuid", str(uuid.uuid4()))
    assert errors_of(other) == {
        "instance.hashed_uuid": "does not match cleartext_uuid "
        "(expected the upper-case SHA-256 of the lower-case UUID)"
    }


def test_cleartext_uuid_upper_case_is_hashed_in_lower_case():
    u = uuid.uuid4()
    data = changed(
        changed(report(), "instance.cleartext_uuid", str(u).upper()), "instance.hashed_uuid", hash_uuid(u)
    )
    assert validate(data, today=TODAY).instance.cleartext_uuid == u


def test_cleartext_uuid_must_be_a_uuid_or_null():
    assert (
        validate(changed(report(), "instance.cleartext_uuid", None), today=TODAY).instance.cleartext_uuid
        is None
    )
    assert errors_of(changed(report(), "instance.cleartext_uuid", "not-a-uuid")) == {
        "instance.cleartext_uuid": "must be a valid UUID"
    }


def test_workflow_cleartext_uuid_is_checked_too():
    data = changed(report(), "projects.0.workflows.0.cleartext_uuid", str(uuid.uuid4()))
    assert list(errors_of(data)) == ["projects[0].workflows[0].hashed_uuid"]


def test_same_project_twice_is_an_error():
    data = report(projects=2)
    data["projects"][1]["hashed_uuid"] = data["projects"][0]["hashed_uuid"]
    assert errors_of(data) == {"projects[1].hashed_uuid": "repeats projects[0]"}


def test_same_workflow_twice_is_an_error_even_across_projects():
    data = report(projects=2, workflows=2)
    data["projects"][0]["workflows"][1]["hashed_uuid"] = data["projects"][0]["workflows"][0]["hashed_uuid"]
    data["projects"][1]["workflows"][0]["hashed_uuid"] = data["projects"][0]["workflows"][0]["hashed_uuid"]
    assert errors_of(data) == {
        "projects[0].workflows[1].hashed_uuid": "repeats projects[0].workflows[0]",
        "projects[1].workflows[0].hashed_uuid": "repeats projects[0].workflows[0]",
    }


def test_missing_workflows_means_none_and_projects_may_be_empty():
    data = changed(report(), "projects.0.workflows", DELETE)
    assert validate(data, today=TODAY).projects[0].workflows == ()
    assert validate(changed(report(), "projects", []), today=TODAY).projects == ()


@pytest.mark.parametrize(
    ("path", "value", "field", "message"),
    [
        ("projects", {}, "projects", "must be a list, not an object"),
        ("projects.0", 7, "projects[0]", "must be an object, not a number"),
        ("projects.0.workflows", "x", "projects[0].workflows", "must be a list, not a string"),
        ("instance", [], "instance", "must be an object, not a list"),
    ],
)
def test_wrong_container_types(path, value, field, message):
    assert errors_of(changed(report(), path, value))[field] == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must not be empty"),
        ("x" * 201, "must be at most 200 characters"),
        (3, "must be a string, not a number"),
        ("v1\nv2", "must not contain control characters"),
    ],
)
def test_version_and_os_strings(value, message):
    assert errors_of(changed(report(), "instance.version", value)) == {"instance.version": message}


def test_unknown_keys_are_ignored():
    data = report()
    data["extra"] = {"anything": [1, 2]}
    data["instance"]["new_field"] = 3
    assert validate(data, today=TODAY).instance.no_of_users == 10


def test_every_error_is_reported_at_once_and_capped():
    data = report(projects=1, workflows=150)
    for w in data["projects"][0]["workflows"]:
        w["no_of_runs"] = -1
    errors = errors_of(data)
    assert len(errors) == 101
    assert errors["..."] == "and 50 more errors"


def test_content_hash_ignores_key_order_and_whitespace():
    a = report()
    b = dict(reversed(list(a.items())))
    assert validate(a, today=TODAY).content_hash == validate(b, today=TODAY).content_hash
    assert validate(a, today=TODAY).content_hash != validate(report(users=11), today=TODAY).content_hash


def test_validated_fields_cover_every_section():
    fields = validated_fields()
    assert fields["workflow"] == {
        "hashed_uuid",
        "cleartext_uuid",
        "no_of_jobs",
        "no_of_runs",
        "no_of_steps",
        "no_of_active_jobs",
    }
    assert "no_of_monthly_active_users" in fields["instance"]


def test_an_empty_instance_object_names_each_missing_field():
    # found by hypothesis: an empty object used to slip past the instance checks
    errors = errors_of(changed(report(), "instance", {}))
    assert errors["instance.hashed_uuid"] == "is required" and errors["instance.no_of_users"] == "is required"


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]
)
def test_dates_at_the_ends_of_the_calendar_are_refused_not_crashed_on(value):
    # found by schemathesis: the day before 0001-01-01 overflowed, and so did time zones at the edges
    errors = errors_of(changed(report(fmt="1"), "generated_at", value))
    assert errors in (
        {"generated_at": "is out of range"},
        {"report_date": "must not be earlier than 2020-01-01"},
        {"report_date": "must not be later than tomorrow (UTC)"},
    )
