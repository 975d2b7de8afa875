"""The API contract Lightning depends on: every status, its message, and what was stored."""

import json
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import override_settings

from reports.models import Instance, Project, ReviewItem, Submission, Workflow
from tests.factories import instance_hash, report, seed_report

pytestmark = pytest.mark.django_db

SEED_BODY = open("tests/data/seed_report.json", "rb").read()  # noqa: SIM115


def test_seed_report_is_accepted_once_then_duplicate(post_report):
    first = post_report(SEED_BODY)
    assert first.status_code == 201
    assert first.json() == {
        "status": "created",
        "message": "the report was stored",
        "report_date": "2024-04-25",
    }
    again = post_report(SEED_BODY)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    submission = Submission.objects.get()
    assert submission.raw_body == SEED_BODY.decode()  # exactly as received, whitespace and all
    assert (submission.no_of_projects, submission.no_of_workflows, submission.no_of_runs) == (1, 2, 12)
    assert (submission.no_of_jobs, submission.no_of_active_jobs, submission.no_of_steps) == (5, 5, 30)
    assert Project.objects.count() == 1 and Workflow.objects.count() == 2
    assert ReviewItem.objects.count() == 0


def test_duplicate_ignores_key_order_and_whitespace(post_report):
    assert post_report(seed_report()).status_code == 201
    reordered = json.dumps(dict(reversed(list(seed_report().items()))), indent=4)
    assert post_report(reordered).json()["status"] == "duplicate"


def test_trailing_slash_is_served_without_redirect(post_report):
    response = post_report(report(), path="/api/metrics/")
    assert response.status_code == 201


def test_conflict_keeps_the_first_and_queues_the_second(post_report):
    assert post_report(report(users=10)).status_code == 201
    response = post_report(report(users=99))
    assert response.status_code == 200
    assert response.json()["status"] == "conflict"
    assert Submission.objects.get().no_of_users == 10
    item = ReviewItem.objects.get()
    assert item.reason == "conflict" and item.status == "pending"
    assert item.submission == Submission.objects.get()
    assert json.loads(item.raw_body)["instance"]["no_of_users"] == 99
    assert item.errors == {"report_date": "a different report for 2024-04-25 is already stored"}


def test_rejected_report_is_kept_with_its_errors(post_report):
    data = report(projects=3)
    data["projects"][2]["workflows"][0]["no_of_runs"] = -4
    response = post_report(data)
    assert response.status_code == 202
    assert response.json() == {
        "status": "rejected",
        "message": "the report is not valid; it was kept for review",
        "errors": {"projects[2].workflows[0].no_of_runs": "must be an integer >= 0, not a number"},
    }
    item = ReviewItem.objects.get()
    assert item.reason == "invalid" and item.status == "pending"
    assert item.errors == response.json()["errors"]
    assert item.instance_hash == instance_hash() and str(item.report_date) == "2024-04-25"
    assert Submission.objects.count() == 0 and Instance.objects.count() == 0


def test_unknown_format_version_is_rejected_and_kept(post_report):
    response = post_report(dict(report(), version="4"))
    assert response.status_code == 202
    assert response.json()["errors"] == {"version": 'must be one of "1", "2", "3" (got "4")'}
    assert ReviewItem.objects.get().errors == {"version": 'must be one of "1", "2", "3" (got "4")'}


def test_same_rejected_body_resent_is_counted_not_queued_twice(post_report):
    bad = dict(report(), version="9")
    for _ in range(3):
        assert post_report(bad).status_code == 202
    item = ReviewItem.objects.get()
    assert item.times_received == 3


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"version": ', "the body is not valid JSON: Expecting value at line 1 column 13"),
        (b"[1, 2]", "the body must be a JSON object"),
        (b'"report"', "the body must be a JSON object"),
        (b'{"a": NaN}', "the body is not valid JSON: NaN is not valid JSON"),
        (b'{"a": "\xff"}', "the body is not UTF-8 text (byte 7)"),
        (b"[" * 100_000 + b"]" * 100_000, "the body is not valid JSON: it is nested too deeply"),
    ],
)
def test_malformed_bodies_get_400_and_nothing_is_kept(post_report, body, message):
    response = post_report(body)
    assert response.status_code == 400
    assert response.json() == {"status": "malformed", "message": message}
    assert ReviewItem.objects.count() == 0 and Submission.objects.count() == 0


def test_empty_body_gets_400(post_report):
    response = post_report(b"")
    assert response.status_code == 400
    assert response.json()["message"] == "the body is empty: send the report as a JSON object"


@override_settings(REPORT_MAX_BYTES=1000)
def test_body_over_the_limit_gets_413(post_report):
    response = post_report(report(projects=5, workflows=5))
    assert response.status_code == 413
    assert response.json() == {
        "status": "too_large",
        "message": "the body is larger than the limit of 1000 bytes",
    }
    assert Submission.objects.count() == 0


def test_content_type_charset_is_accepted_and_other_types_get_415(post_report):
    assert post_report(report(), content_type="application/json; charset=utf-8").status_code == 201
    response = post_report(report(instance="i2"), content_type="text/plain")
    assert response.status_code == 415
    assert response.json()["status"] == "unsupported_media_type"
    assert response.json()["message"] == 'Unsupported media type "text/plain" in request.'


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_get_405_with_allow(api, method):
    response = getattr(api, method)("/api/metrics")
    assert response.status_code == 405
    assert response.json()["status"] == "method_not_allowed"
    assert "POST" in response["Allow"]


def test_throttle_answers_429_with_retry_after(post_report):
    rates = {"reports": "2/minute", "stats": "100/minute"}
    with override_settings(
        REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": rates, "EXCEPTION_HANDLER": "reports.api.exception_handler"}
    ):
        assert post_report(report(instance="a")).status_code == 201
        assert post_report(report(instance="b")).status_code == 201
        response = post_report(report(instance="c"))
        # another client address has its own allowance
        other = post_report(report(instance="d"), REMOTE_ADDR="192.0.2.9")
    assert response.status_code == 429
    assert response.json()["status"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 61
    assert other.status_code == 201
    assert not Submission.objects.filter(instance__hashed_uuid=instance_hash("c")).exists()


def test_database_unavailable_gets_503_with_retry_after(post_report):
    with mock.patch("reports.ingest.receive", side_effect=OperationalError("connection refused")):
        response = post_report(report())
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "message": "the database is unavailable; nothing was stored, please retry later",
    }
    assert response["Retry-After"] == "60"


def test_an_unexpected_error_is_a_json_503_not_a_500(post_report):
    with mock.patch("reports.ingest.receive", side_effect=KeyError("bug")):
        response = post_report(report())
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"


def test_unknown_api_path_is_a_json_404(api):
    response = api.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"status": "not_found", "message": "nothing at /api/nothing-here"}


def test_home_answers_head_and_get_without_redirect(client):
    assert client.head("/").status_code == 200
    assert client.get("/").status_code == 200


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}
    with mock.patch("django.db.backends.utils.CursorWrapper.execute", side_effect=OperationalError("down")):
        response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable"}


def test_openapi_schema_and_docs_are_served(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    spec = json.loads(schema.content)
    post = spec["paths"]["/api/metrics"]["post"]
    assert set(post["responses"]) >= {"200", "201", "202", "400", "413", "415", "429", "503"}
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
