"""The promise to operators, kept in public: the field list is the validation, retention changes no figure."""

import datetime as dt
import json
import re
from io import StringIO

import pytest
from django.core.management import call_command

from reports import aggregates, formats, ingest, stats
from reports.models import ModerationLog, ReviewItem, Submission
from reports.views import EXAMPLE_REPORT
from tests.factories import report

pytestmark = pytest.mark.django_db

SECTION_PATHS = {
    "report": "",
    "instance": "instance",
    "project": "projects[0]",
    "workflow": "projects[0].workflows[0]",
}


def listed_fields(page: str) -> dict[str, set[str]]:
    out = {}
    for section, body in re.findall(r'<table class="fields" data-section="(\w+)">(.*?)</table>', page, re.S):
        out[section] = set(re.findall(r'<tr data-field="(\w+)">', body))
    return out


def test_about_page_lists_exactly_the_validated_fields(client):
    page = client.get("/about/data").content.decode()
    assert listed_fields(page) == formats.validated_fields()


@pytest.mark.parametrize(
    ("section", "name", "kind"),
    [(section, f.name, f.kind) for section, _, fields in formats.SECTIONS for f in fields],
)
def test_every_listed_field_is_validated(section, name, kind):
    """A wrong value in any documented field is refused with that field's path."""
    data = report(fmt="3", cleartext=True)
    node = data if section == "report" else data["instance"] if section == "instance" else data["projects"][0]
    if section == "workflow":
        node = node["workflows"][0]
    node[name] = ["not", "valid"] if kind == "object" else {"not": "valid"}
    with pytest.raises(formats.InvalidReport) as info:
        formats.validate(data, today=dt.date(2024, 5, 1))
    path = f"{SECTION_PATHS[section]}.{name}".lstrip(".")
    assert path in info.value.errors


def test_about_page_shows_formats_example_opt_out_and_definitions(client, settings):
    settings.PRIVACY_CONTACT = "mailto:privacy@impact.example"
    page = client.get("/about/data").content.decode()
    row = re.search(r'<tr data-field="no_of_monthly_active_users">(.*?)</tr>', page, re.S).group(1)
    assert re.findall(r'class="presence[^"]*">([^<]+)<', row) == [
        "not in this format",
        "not in this format",
        "required",
    ]
    assert "USAGE_TRACKING_ENABLED=false" in page
    assert "privacy@impact.example" in page
    assert "never" in page and "IP) address" in page
    assert stats.DEFINITIONS["flows"] in page.replace("&#x27;", "'")
    assert "&quot;no_of_monthly_active_users&quot;: 41" in page


def test_the_example_report_is_valid():
    r = formats.validate(json.loads(EXAMPLE_REPORT.read_text()), today=dt.date(2024, 5, 1))
    assert r.format == "3" and len(list(r.workflows)) == 2


def test_every_page_links_about_the_data_and_privacy(client):
    for path in ["/", "/about/data", "/privacy", "/no-such-page"]:
        page = client.get(path).content.decode()
        assert 'href="/about/data"' in page and 'href="/privacy"' in page, path


def test_security_txt(client, settings):
    settings.SECURITY_CONTACT = "mailto:security@impact.example"
    response = client.get("/.well-known/security.txt")
    assert response["Content-Type"].startswith("text/plain")
    fields = dict(line.split(": ", 1) for line in response.content.decode().splitlines())
    assert fields["Contact"] == "mailto:security@impact.example"
    expires = dt.datetime.fromisoformat(fields["Expires"])
    assert dt.timedelta(days=300) < expires - dt.datetime.now(dt.UTC) < dt.timedelta(days=400)
    assert fields["Canonical"].endswith("/.well-known/security.txt")


def test_privacy_statement_uses_the_settings(client, settings):
    settings.OPERATOR_NAME = "The Example Foundation"
    settings.PRIVACY_CONTACT = "mailto:dpo@example.org"
    page = client.get("/privacy").content.decode()
    assert "The Example Foundation" in page and "dpo@example.org" in page


def receive(data, now):
    return ingest.receive(body=json.dumps(data).encode(), country="KE", now=now)


def test_retention_removes_old_entries_and_raw_reports_but_no_figure(client, settings):
    settings.REVIEW_RETENTION_DAYS = 90
    settings.RAW_REPORT_RETENTION_DAYS = 30
    now = dt.datetime.now(dt.UTC)
    old, recent = now - dt.timedelta(days=120), now - dt.timedelta(days=5)
    for n in range(3):
        receive(report(instance=f"i{n}", day=old.date()), now=old)
        receive(report(instance=f"i{n}", day=recent.date()), now=recent)
    receive(dict(report(), version="9"), now=old)  # rejected long ago
    receive(dict(report(), version="8"), now=recent)  # rejected recently
    figures = aggregates.table()
    headline = client.get("/api/stats/headline").json()
    chart = client.get("/api/stats/runs?range=1y").json()

    out = StringIO()
    call_command("apply_retention", stdout=out)
    assert out.getvalue().strip() == (
        "Retention removed 1 review-queue entries (older than 90 days) and the raw JSON of 3 reports "
        "(raw reports: older than 30 days)."
    )
    assert list(ReviewItem.objects.values_list("raw_body", flat=True)) == [
        json.dumps(dict(report(), version="8"))
    ]
    assert Submission.objects.filter(raw_body__isnull=True).count() == 3
    assert Submission.objects.filter(raw_body__isnull=False, received_at__gte=recent).count() == 3
    assert ModerationLog.objects.get().detail == {"review_items_deleted": 1, "raw_bodies_dropped": 3}

    assert aggregates.table() == figures
    assert client.get("/api/stats/headline").json() == headline
    assert client.get("/api/stats/runs?range=1y").json() == chart
    aggregates.rebuild()  # the figures can still be rebuilt from what is left
    assert aggregates.table() == figures

    again = StringIO()
    call_command("apply_retention", stdout=again)
    assert (
        "removed 0 review-queue entries" in again.getvalue() and "raw JSON of 0 reports" in again.getvalue()
    )


def test_retention_keeps_raw_reports_by_default_and_dry_run_changes_nothing(settings):
    settings.RAW_REPORT_RETENTION_DAYS = None
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    receive(report(day=old.date()), now=old)
    receive(dict(report(), version="9"), now=old)
    out = StringIO()
    call_command("apply_retention", "--dry-run", stdout=out)
    assert "would remove 1 review-queue entries" in out.getvalue()
    assert ReviewItem.objects.count() == 1
    call_command("apply_retention", stdout=StringIO())
    assert ReviewItem.objects.count() == 0
    assert Submission.objects.get().raw_body is not None
