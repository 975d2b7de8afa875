"""Real threads against a real PostgreSQL: simultaneous reports never duplicate, fail or corrupt."""

import datetime as dt
import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections

from reports import aggregates, ingest
from reports.models import Instance, ReviewItem, Submission
from tests.factories import report

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _postgres_only():
    assert connection.vendor == "postgresql", "run these with DATABASE_URL pointing at PostgreSQL"


def send_together(bodies: list[dict]) -> list[str]:
    """Send every body at the same moment, one thread (and database connection) each."""
    barrier = threading.Barrier(len(bodies))

    def send(data):
        try:
            barrier.wait()
            return ingest.receive(body=json.dumps(data).encode(), country="KE", now=NOW).status
        finally:
            connections.close_all()

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, bodies))


def test_simultaneous_first_reports_of_a_new_instance_create_it_once():
    statuses = send_together([report(instance="new", day=f"2024-05-{d:02d}") for d in range(1, 9)])
    assert statuses == ["created"] * 8
    assert Instance.objects.count() == 1
    instance = Instance.objects.get()
    assert instance.report_count == 8
    assert (instance.first_report_date, instance.last_report_date) == (
        dt.date(2024, 5, 1),
        dt.date(2024, 5, 8),
    )


def test_simultaneous_identical_reports_store_one_submission():
    statuses = send_together([report(instance="same")] * 8)
    assert sorted(statuses) == ["created"] + ["duplicate"] * 7
    assert Submission.objects.count() == 1


def test_simultaneous_different_reports_for_one_day_keep_one_and_queue_the_rest():
    statuses = send_together([report(instance="same", users=n) for n in range(6)])
    assert sorted(statuses) == ["conflict"] * 5 + ["created"]
    assert Submission.objects.count() == 1


def test_concurrent_ingestion_never_corrupts_the_aggregates():
    rng = random.Random(7)
    bodies = [
        report(
            instance=f"c{rng.randint(0, 5)}",
            day=dt.date(2024, 5, 1) + dt.timedelta(days=rng.randint(0, 20)),
            users=rng.randint(0, 9),
            runs=rng.randint(0, 9),
        )
        for _ in range(120)
    ]
    for start in range(0, len(bodies), 12):
        send_together(bodies[start : start + 12])
    incremental = aggregates.table()
    aggregates.rebuild()
    assert aggregates.table() == incremental
    assert (
        sum(v for (stat, _, _), v in incremental.items() if stat == "reports") == Submission.objects.count()
    )


def test_the_same_rejected_body_sent_together_is_queued_once_and_counted_each_time():
    bad = dict(report(instance="bad"), version="9")
    statuses = send_together([bad] * 8)
    assert statuses == ["rejected"] * 8
    item = ReviewItem.objects.get()
    assert item.times_received == 8
