"""The public figures of the hand-worked fleet (tests/fleet.py), as tables, API responses and page."""

import csv
import datetime as dt
import io
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reports import stats
from tests.factories import report
from tests.fleet import send

pytestmark = pytest.mark.django_db

TODAY = dt.date(2024, 4, 12)


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    monkeypatch.setattr(stats, "today", lambda: TODAY)


def query(**params):
    return stats.parse_query(params)


def custom(start, end, granularity="day"):
    return query(range="custom", start=f"2024-{start}", end=f"2024-{end}", granularity=granularity)


def test_headline(hand_fleet):
    figures = {key: value for key, _, value in stats.headline().rows}
    assert figures == {
        "active_instances": 2,  # A and B reported in the last 30 days; C is excluded
        "countries": 2,
        "users": 7 + 4,  # A's report of 04-12, B's of 04-05 (7 days old, still counted)
        "active_users": 7 + 7,
        "monthly_active_users": 2,  # only B's format 3 report has one
        "projects": 2,
        "workflows": 2,
        "runs_all_time": 10 + 20 + 7 + 5,  # B's format 1 all-time 1000 never counts
        "runs_30d": 42,
        "steps_all_time": 11 + 21 + 8 + 6,
        "steps_30d": 46,
    }


def test_runs_by_week_with_cumulative_and_incomplete(hand_fleet):
    table = stats.runs(custom("04-01", "04-12", "week"))
    assert table.columns == ["period", "runs", "steps", "cumulative_runs", "incomplete"]
    assert table.rows == [
        ["2024-04-01", 37, 40, 37, False],
        ["2024-04-08", 5, 6, 42, True],  # holds 04-11 and 04-12: still arriving
    ]


def test_cumulative_runs_start_from_everything_before_the_range(hand_fleet):
    table = stats.runs(custom("04-05", "04-06"))
    assert table.rows == [["2024-04-05", 7, 8, 37, False], ["2024-04-06", 0, 0, 37, False]]


def test_stocks_take_the_last_day_of_each_period(hand_fleet):
    assert stats.instances(custom("04-01", "04-12", "week")).rows == [
        ["2024-04-01", 2, 2, False],
        ["2024-04-08", 2, 0, True],
    ]
    assert stats.instances(custom("04-01", "04-12", "month")).rows == [["2024-04-01", 2, 2, True]]
    assert stats.users(custom("04-09", "04-11")).column("users") == [6 + 4, 4, 4]


def test_buckets_under_k_instances_merge_into_other(hand_fleet, settings):
    settings.STATS_MIN_INSTANCES = 3
    assert stats.countries(custom("04-05", "04-05")).rows == [["Other", "", "Other", 2]]
    table = stats.versions(custom("04-04", "04-05"))
    assert table.columns == ["period", "Other", "incomplete"]
    assert table.rows == [["2024-04-04", 2, False], ["2024-04-05", 2, False]]
    settings.STATS_MIN_INSTANCES = 1
    assert stats.countries(custom("04-05", "04-05")).rows == [
        ["KE", "KEN", "Kenya", 1],
        ["UG", "UGA", "Uganda", 1],
    ]
    table = stats.versions(custom("04-04", "04-05"))
    assert table.columns == ["period", "2.0", "2.4", "incomplete"]
    assert table.rows == [["2024-04-04", 1, 1, False], ["2024-04-05", 0, 2, False]]


def test_operating_systems_and_other_merge_with_k_two(hand_fleet, settings):
    settings.STATS_MIN_INSTANCES = 2
    assert stats.operating_systems(custom("04-05", "04-05")).rows == [["linux", 2]]
    send(report(instance="D", day="2024-04-05", os="FreeBSD"), "KE")
    assert stats.operating_systems(custom("04-05", "04-05")).rows == [["linux", 2], ["Other", 1]]


def test_ranges_end_today_and_all_starts_at_the_first_report(hand_fleet):
    assert (query(range="30d").start, query(range="30d").end) == (dt.date(2024, 3, 14), TODAY)
    assert query(range="1y").start == dt.date(2023, 4, 14)
    assert query(range="all").start == dt.date(2024, 4, 1)
    assert query().range == "90d" and query().granularity == "day"


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({"range": "5y"}, {"range": "must be one of 30d, 90d, 1y, all, custom"}),
        ({"granularity": "hour"}, {"granularity": "must be one of day, week, month"}),
        (
            {"range": "custom"},
            {
                "start": "must be a date as YYYY-MM-DD for a custom range",
                "end": "must be a date as YYYY-MM-DD for a custom range",
            },
        ),
        ({"range": "custom", "start": "2024-04-10", "end": "2024-04-01"}, {"start": "must not be after end"}),
        (
            {"range": "custom", "start": "2019-01-01", "end": "2030-01-01"},
            {
                "start": "must be between 2020-01-01 and today (2024-04-12)",
                "end": "must be between 2020-01-01 and today (2024-04-12)",
            },
        ),
    ],
)
def test_bad_parameters_are_named(params, errors):
    with pytest.raises(stats.InvalidQuery) as info:
        stats.parse_query(params)
    assert info.value.errors == errors


def test_stats_api_json_is_the_table(client, hand_fleet):
    response = client.get("/api/stats/runs?range=custom&start=2024-04-01&end=2024-04-12&granularity=week")
    assert response.status_code == 200
    body = response.json()
    assert body["columns"] == ["period", "runs", "steps", "cumulative_runs", "incomplete"]
    assert body["rows"] == [["2024-04-01", 37, 40, 37, False], ["2024-04-08", 5, 6, 42, True]]
    assert body["query"] == {
        "range": "custom",
        "granularity": "week",
        "start": "2024-04-01",
        "end": "2024-04-12",
    }


def test_stats_api_csv_download(client, hand_fleet):
    response = client.get(
        "/api/stats/instances?range=custom&start=2024-04-01&end=2024-04-12&granularity=week&format=csv"
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert list(csv.reader(io.StringIO(response.content.decode()))) == [
        ["period", "instances", "new_instances", "incomplete"],
        ["2024-04-01", "2", "2", "False"],
        ["2024-04-08", "2", "0", "True"],
    ]


def test_csv_cells_cannot_become_formulas(client, settings):
    settings.STATS_MIN_INSTANCES = 1
    send(report(instance="evil", day="2024-04-12", os='=HYPERLINK("http://x")'), "KE")
    rows = list(csv.reader(io.StringIO(client.get("/api/stats/os?format=csv").content.decode())))
    assert rows[1][0] == '\'=hyperlink("http://x")'


def test_stats_api_errors(client):
    bad = client.get("/api/stats/runs?range=forever")
    assert bad.status_code == 400
    assert bad.json()["errors"] == {"range": "must be one of 30d, 90d, 1y, all, custom"}
    missing = client.get("/api/stats/nothing")
    assert missing.status_code == 404 and missing.json()["status"] == "not_found"
    assert client.get("/api/stats/").json()["charts"]["runs"].endswith("/api/stats/runs")


def test_headline_api(client, hand_fleet):
    rows = client.get("/api/stats/headline").json()["rows"]
    assert ["runs_all_time", "Runs (all time)", 42] in rows


def test_stats_endpoints_are_in_the_openapi_schema(client):
    spec = json.loads(client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)
    assert {"/api/stats/{chart}", "/api/stats/headline", "/api/stats/"} <= set(spec["paths"])


def test_dashboard_shows_the_headline_and_every_chart(client, hand_fleet):
    page = client.get("/").content.decode()
    assert 'data-figure="runs_all_time">42<' in page
    assert 'data-figure="users">11<' in page
    for name in stats.CHARTS:
        assert f'id="figure-{name}"' in page and f'id="chart-{name}"' in page
        assert f"/api/stats/{name}?range=90d&amp;granularity=day&amp;format=csv" in page
    assert "https://" not in page.split("<footer")[0].replace("https://www.w3.org", "")


def test_dashboard_bad_parameters_get_a_clear_message_not_an_error(client, hand_fleet):
    response = client.get("/?range=custom&start=2024-02-30&granularity=hour")
    assert response.status_code == 400
    page = response.content.decode()
    assert "must be one of day, week, month" in page and "must be a date as YYYY-MM-DD" in page
    assert 'id="figure-runs"' in page  # the default view is still shown


def test_dashboard_reflects_new_reports_at_once(client, hand_fleet, django_capture_on_commit_callbacks):
    assert 'data-figure="runs_all_time">42<' in client.get("/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):  # the cache is reset once the report commits
        send(report(instance="A", fmt="2", day="2024-04-11", runs=100, steps=1), "KE")
    assert 'data-figure="runs_all_time">142<' in client.get("/").content.decode()


def test_head_is_answered_without_a_query(client):
    with CaptureQueriesContext(connection) as ctx:
        assert client.head("/").status_code == 200
    assert len(ctx.captured_queries) == 0


def test_cached_page_costs_only_cache_reads(client, hand_fleet):
    client.get("/")
    with CaptureQueriesContext(connection) as ctx:
        client.get("/")
    tables = " ".join(q["sql"] for q in ctx.captured_queries)
    assert "reports_dailycount" not in tables and len(ctx.captured_queries) <= 3


def test_reported_strings_show_as_text(client, settings):
    settings.STATS_MIN_INSTANCES = 1
    send(report(instance="x", day="2024-04-12", os="<script>alert(1)</script>"), "KE")
    page = client.get("/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # in the data table
