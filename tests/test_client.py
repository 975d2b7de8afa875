"""The Lightning-like client: what it sends, re-sending only after HEAD / answers, and its summary."""

import datetime as dt
import json
import re

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from reports import client, demo
from reports.models import Submission

END = dt.date(2024, 6, 30)


def concurrency():
    # The live server shares SQLite's in-memory test database between threads, which then lock each
    # other out (answered 503, and re-sent): one request at a time there, several on PostgreSQL.
    return 1 if connection.vendor == "sqlite" else 3


def fleet_bodies(**kwargs):
    return [r.body() for r in demo.fleet(**{"instances": 3, "days": 5, "seed": 2, "end": END, **kwargs})]


@pytest.mark.django_db(transaction=True)
def test_send_reports_stores_every_report_and_summarises_by_status(live_server, fresh_cache, capsys):
    bodies = fleet_bodies()
    call_command(
        "send_reports",
        url=live_server.url,
        instances=3,
        days=5,
        seed=2,
        end=END,
        retry_wait=0,
        concurrency=concurrency(),
    )
    out = capsys.readouterr().out
    assert f"{len(bodies)} reports, {len(bodies)} requests in 1 round(s)" in out
    assert re.search(rf"^ +created +{len(bodies)}$", out, re.MULTILINE)
    assert "undelivered: 0" in out
    assert sorted(Submission.objects.values_list("raw_body", flat=True)) == sorted(b.decode() for b in bodies)

    # The same reports again: all duplicates, nothing new stored.
    summary = client.send_reports(url=live_server.url, bodies=bodies, concurrency=concurrency(), retry_wait=0)
    assert summary.outcomes == {"duplicate": len(bodies)} and summary.undelivered == 0
    assert Submission.objects.count() == len(bodies)


class FlakyTransport(httpx.BaseTransport):
    """Answers 503 to the first POST of each body and to the first HEAD; passes the rest through."""

    def __init__(self, inner: httpx.BaseTransport):
        self.inner = inner
        self.log: list[tuple[str, str, int]] = []
        self.seen: set[bytes] = set()
        self.heads = 0
        self.requests: list[httpx.Request] = []

    def handle_request(self, request):
        self.requests.append(request)
        body = request.read()
        if request.method == "POST" and body not in self.seen:
            self.seen.add(body)
            response = httpx.Response(503, json={"status": "unavailable"})
        elif request.method == "HEAD" and self.heads == 0:
            self.heads += 1
            response = httpx.Response(503)
        else:
            response = self.inner.handle_request(request)
        self.log.append((request.method, request.url.path, response.status_code))
        return response


@pytest.mark.django_db(transaction=True)
def test_failures_are_sent_again_only_after_head_answers_2xx(live_server, fresh_cache):
    bodies = fleet_bodies()
    transport = FlakyTransport(httpx.HTTPTransport())
    waits = []
    summary = client.send_reports(
        url=live_server.url,
        bodies=bodies,
        concurrency=concurrency(),
        retries=3,
        retry_wait=7,
        transport=transport,
        sleep=waits.append,
    )
    n = len(bodies)
    log = transport.log
    # Round 1: every POST fails. Then a HEAD that fails: nothing is sent. Then a HEAD that answers 200.
    assert log[:n] == [("POST", "/api/metrics", 503)] * n
    assert log[n] == ("HEAD", "/", 503)
    assert log[n + 1] == ("HEAD", "/", 200)
    assert sorted(log[n + 2 :]) == [("POST", "/api/metrics", 201)] * n
    assert waits == [7, 7]
    assert summary.outcomes == {"created": n} and summary.undelivered == 0
    assert summary.answers == {"HTTP 503": n, "created": n}
    assert (summary.rounds, summary.attempts, summary.unreachable_checks) == (2, 2 * n, 1)
    assert Submission.objects.count() == n

    # Sent as Lightning sends: JSON, no Accept, no credentials, nothing else of httpx's own.
    post = next(r for r in transport.requests if r.method == "POST")
    assert post.headers["content-type"] == "application/json"
    assert {"accept", "accept-encoding", "user-agent", "authorization", "cookie"}.isdisjoint(post.headers)
    assert json.loads(post.content)["instance"]["hashed_uuid"]


def test_redirects_are_not_followed_and_unreachable_servers_are_not_posted_to_again():
    seen = []

    def handler(request):
        seen.append((request.method, str(request.url)))
        if request.method == "POST":
            return httpx.Response(301, headers={"Location": "https://tracker.example/api/metrics"})
        raise httpx.ConnectError("connection refused")

    bodies = fleet_bodies(instances=2, days=2)
    summary = client.send_reports(
        url="http://tracker.example",
        bodies=bodies,
        retries=2,
        retry_wait=0,
        transport=httpx.MockTransport(handler),
        sleep=lambda s: None,
    )
    assert summary.outcomes == {"HTTP 301": len(bodies)} and summary.undelivered == len(bodies)
    assert summary.unreachable_checks == 2 and summary.rounds == 1
    assert [m for m, _ in seen] == ["POST"] * len(bodies) + ["HEAD", "HEAD"]
    assert all(url.startswith("http://tracker.example/") for _, url in seen)


def test_connection_errors_are_counted_and_the_command_fails_when_reports_are_undelivered(capsys):
    with pytest.raises(CommandError, match="could not be delivered"):
        call_command(
            "send_reports", url="http://127.0.0.1:9", instances=2, days=2, end=END, retries=0, timeout=2
        )
    out = capsys.readouterr().out
    assert "connection error" in out and "undelivered: " in out
