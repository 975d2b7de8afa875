"""Load on the production server: thousands of concurrent reports, none lost, none stored twice; and
the report throttle holds across gunicorn's worker processes.

A real gunicorn (the production command, sync workers) serves the test database that pytest-django
created; the reports come from 16 threads of httpx clients. bench/reliability.py runs a bigger
version of the same (docs/reliability.md).
"""

import re
from collections import Counter

import httpx
import pytest
from django.core.cache import cache
from django.db import connection

from reports.models import ReviewItem, Submission
from tests.factories import report
from tests.servers import Gunicorn, audit, database_url, make_workload, problems, production_env, send_all

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def test_database_env(transactional_db):
    """The production environment on pytest-django's test database. Requesting transactional_db here
    makes the servers started with it stop before the database is flushed at the end of the test."""
    assert connection.vendor == "postgresql", "run these with DATABASE_URL pointing at PostgreSQL"
    # The cache table is not flushed with the models' tables: start and end with no throttle counter
    # left by other tests that posted from this same address.
    cache.clear()
    yield production_env(database_url(connection.settings_dict))
    cache.clear()


def test_thousands_of_concurrent_reports_are_each_stored_exactly_once(test_database_env):
    workload = make_workload(distinct=1200, duplicates=550, conflicts=250, seed=6)
    with Gunicorn(test_database_env, workers=3) as server:
        answers = send_all(server.url, workload.bodies, threads=16)

    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {200, 201}, statuses  # every report valid: no 202, and nothing else at all
    words = Counter(a.word for a in answers)
    summary = workload.summary()
    # One "created" per distinct (instance, day), whichever of its copies or variants came first.
    assert words["created"] == statuses[201] == summary["distinct_reports"] == 1200
    assert words["created"] + words["duplicate"] + words["conflict"] == len(workload.bodies) == 2000
    assert words["conflict"] > 0 and words["duplicate"] > 0

    facts = audit()
    assert problems(workload, facts) == []
    assert Submission.objects.count() == 1200
    # Every body answered "conflict" has one pending entry in the review queue (problems() checks
    # which), each of its copies counted on it, even copies that arrived at the same moment.
    conflicts = ReviewItem.objects.filter(reason=ReviewItem.Reason.CONFLICT, status=ReviewItem.Status.PENDING)
    receipts = sum(conflicts.values_list("times_received", flat=True))
    assert 0 < conflicts.count() <= receipts == words["conflict"]


def test_the_report_throttle_holds_across_worker_processes(test_database_env):
    env = {**test_database_env, "REPORTS_THROTTLE_RATE": "10/minute"}
    # The worker's process id in each access-log line shows which process answered.
    log_format = "--access-logformat=PID %(p)s %(m)s %(s)s"
    statuses, retry_after = [], []
    with Gunicorn(env, workers=3, extra_args=[log_format]) as server:
        for n in range(30):
            # A new client, so a new connection each time: the kernel hands each to any worker.
            with httpx.Client(timeout=10) as client:
                r = client.post(
                    f"{server.url}/api/metrics",
                    json=report(instance=f"throttled-{n}"),
                )
            statuses.append(r.status_code)
            if r.status_code == 429:
                retry_after.append(r.headers.get("Retry-After"))
                assert r.json()["status"] == "throttled"
        log = server.log()

    assert statuses[:10] == [201] * 10
    assert statuses[10:] == [429] * 20
    # DRF answers Retry-After as the wait rounded up, plus one: at most the window and a second.
    assert all(value and 0 < int(value) <= 61 for value in retry_after), retry_after
    assert Submission.objects.count() == 10
    # The point: a process that had itself answered fewer than 10 requests still refused one, which a
    # counter in each process's memory would have let through.
    answered = re.findall(r"^PID <(\d+)> POST (\d{3})$", log, re.M)
    assert [int(status) for _, status in answered] == statuses, log
    seen: Counter = Counter()
    refused_early = 0
    for pid, status in answered:
        if status == "429" and seen[pid] < 10:
            refused_early += 1
        seen[pid] += 1
    assert len(seen) >= 2 and refused_early > 0, seen
