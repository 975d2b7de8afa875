"""Moderation services: exact figures after exclude / include / delete, re-processing, the log."""

import datetime as dt
import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections

from reports import aggregates, cache, ingest, moderation
from reports.models import (
    DailyCount,
    Instance,
    ModerationLog,
    Project,
    ReviewItem,
    Submission,
    Workflow,
)
from tests.factories import changed, instance_hash, report

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def send(data, *, country="KE", now=NOW):
    return ingest.receive(body=json.dumps(data).encode(), country=country, now=now)


def instance(key) -> Instance:
    return Instance.objects.get(hashed_uuid=instance_hash(key))


def rebuilt() -> dict:
    """What a full rebuild gives, leaving the incremental table as it was."""
    incremental = aggregates.table()
    aggregates.rebuild()
    result = aggregates.table()
    DailyCount.objects.all().delete()
    aggregates.apply(incremental)
    return result


def runs_on(day: str) -> int:
    return aggregates.table().get(("runs", "", dt.date.fromisoformat(day)), 0)


@pytest.fixture
def moderator(django_user_model):
    return django_user_model.objects.create_user("mod", is_staff=True)


@pytest.fixture
def fleet():
    """A and B report on overlapping days; figures worked out by hand below."""
    for day in ("2024-04-20", "2024-04-21"):
        assert send(report(instance="A", day=day, runs=10, steps=1), country="KE").status == "created"
    assert send(report(instance="B", day="2024-04-21", runs=3, steps=1), country="UG").status == "created"


def test_exclude_takes_the_instance_out_of_every_figure_and_include_puts_it_back(fleet, moderator):
    before = aggregates.table()
    assert runs_on("2024-04-21") == 13

    excluded = moderation.exclude_instances(
        instances=[instance("A")], reason="demo instance", actor=moderator
    )
    assert excluded == 1

    a = instance("A")
    assert (a.excluded, a.excluded_reason) == (True, "demo instance")
    assert runs_on("2024-04-20") == 0 and runs_on("2024-04-21") == 3
    table = aggregates.table()
    assert table[("instances", "", dt.date(2024, 4, 21))] == 1
    assert ("instances_by_country", "KE", dt.date(2024, 4, 21)) not in table
    assert table == rebuilt()

    assert moderation.include_instances(instances=[a], actor=moderator, reason="was real") == 1
    assert instance("A").excluded is False and instance("A").excluded_reason == ""
    assert aggregates.table() == before


def test_an_excluded_instance_s_new_reports_do_not_count_until_it_is_included(fleet, moderator):
    moderation.exclude_instances(instances=[instance("A")], reason="runaway client", actor=moderator)
    assert send(report(instance="A", day="2024-04-22", runs=50)).status == "created"
    assert runs_on("2024-04-22") == 0
    assert aggregates.table() == rebuilt()

    moderation.include_instances(instances=[instance("A")], actor=moderator)
    assert runs_on("2024-04-22") == 50
    assert aggregates.table() == rebuilt()


def test_exclude_needs_a_reason_and_skips_instances_already_excluded(fleet, moderator):
    with pytest.raises(moderation.ModerationError):
        moderation.exclude_instances(instances=[instance("A")], reason="  ", actor=moderator)
    assert instance("A").excluded is False

    moderation.exclude_instances(instances=[instance("A")], reason="first", actor=moderator)
    table = aggregates.table()
    # Excluding again must not subtract the instance a second time.
    both = [instance("A"), instance("B")]
    assert moderation.exclude_instances(instances=both, reason="second", actor=moderator) == 1
    assert instance("A").excluded_reason == "first"
    assert runs_on("2024-04-21") == 0
    assert table != aggregates.table() and aggregates.table() == rebuilt()
    # Including an instance that is not excluded changes nothing.
    moderation.include_instances(instances=both, actor=moderator)
    table = aggregates.table()
    assert moderation.include_instances(instances=both, actor=moderator) == 0
    assert aggregates.table() == table


def test_every_change_is_logged_once_with_who_what_and_why(fleet, moderator):
    a = instance("A")
    moderation.exclude_instances(instances=[a], reason="test instance", actor=moderator)
    moderation.exclude_instances(instances=[a], reason="again", actor=moderator)  # no change, no row
    moderation.include_instances(instances=[a], actor=None)

    rows = list(ModerationLog.objects.order_by("id"))
    assert [(r.action, r.actor, r.actor_name, r.reason) for r in rows] == [
        ("exclude", moderator, "mod", "test instance"),
        ("include", None, "system", ""),
    ]
    assert rows[0].target == f"instance {a.hashed_uuid}"
    assert rows[0].detail["report_count"] == 2
    assert rows[1].detail["excluded_reason"] == "test instance"


def test_figures_change_in_the_cache_only_when_the_transaction_commits(
    fleet, moderator, django_capture_on_commit_callbacks
):
    generation = cache.generation()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        moderation.exclude_instances(instances=[instance("A")], reason="demo", actor=moderator)
    assert cache.figures_changed in callbacks
    assert cache.generation() != generation

    # Nothing changed: the cached pages stay valid.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        moderation.exclude_instances(instances=[instance("A")], reason="demo", actor=moderator)
    assert callbacks == []


def test_delete_removes_the_instance_its_reports_and_its_contributions(fleet, moderator):
    send(changed(report(instance="A", day="2024-04-21"), "instance.no_of_users", 99))  # a conflict
    send(changed(report(instance="A", day="2024-04-22"), "instance.no_of_users", -1))  # invalid
    send(changed(report(instance="B", day="2024-04-23"), "instance.no_of_users", -1))  # B's, stays
    assert ReviewItem.objects.count() == 3
    b_workflows = Workflow.objects.filter(submission__instance=instance("B")).count()

    detail = moderation.delete_instance(instance=instance("A"), actor=moderator, reason="operator asked")

    assert not Instance.objects.filter(hashed_uuid=instance_hash("A")).exists()
    assert Submission.objects.count() == 1
    assert Workflow.objects.count() == b_workflows and Project.objects.count() == 1
    assert list(ReviewItem.objects.values_list("instance_hash", flat=True)) == [instance_hash("B")]
    assert runs_on("2024-04-20") == 0 and runs_on("2024-04-21") == 3
    assert aggregates.table() == rebuilt()
    log = ModerationLog.objects.get(action="delete")
    assert (log.reason, log.actor) == ("operator asked", moderator)
    assert log.detail == detail
    assert detail["reports_deleted"] == detail["workflows_deleted"] == detail["review_entries_deleted"] == 2


def test_deleting_an_excluded_instance_leaves_the_figures_alone(fleet, moderator):
    moderation.exclude_instances(instances=[instance("A")], reason="demo", actor=moderator)
    table = aggregates.table()
    moderation.delete_instance(instance=instance("A"), actor=moderator, reason="")
    assert aggregates.table() == table == rebuilt()


# --- Review queue ---------------------------------------------------------------------------------


def rejected_for_a_future_date(**kwargs):
    """A report dated 2024-04-25 received on 2024-04-20: rejected as later than tomorrow then."""
    data = report(day="2024-04-25", **kwargs)
    outcome = send(data, now=dt.datetime(2024, 4, 20, 8, tzinfo=dt.UTC))
    assert outcome.status == "rejected"
    assert outcome.review_item.errors == {"report_date": "must not be later than tomorrow (UTC)"}
    return data, outcome.review_item


def test_reprocess_stores_a_report_that_is_valid_under_today_s_rules(moderator):
    _, item = rejected_for_a_future_date(runs=7)

    result = moderation.reprocess(item=item, actor=moderator, now=NOW)

    assert result.outcome == moderation.STORED
    item.refresh_from_db()
    submission = Submission.objects.get()
    assert (item.status, item.submission, item.errors) == ("reprocessed", submission, {})
    assert (item.resolved_at, item.resolved_by) == (NOW, moderator)
    # It counts like any report, and keeps the time it was first received.
    assert submission.report_date == dt.date(2024, 4, 25) and submission.received_at == item.received_at
    assert runs_on("2024-04-25") == 7
    assert aggregates.table() == rebuilt()
    log = ModerationLog.objects.get()
    assert (log.action, log.target) == ("reprocess", f"review entry {item.pk}")
    assert log.detail["outcome"] == "stored"


def test_reprocess_of_a_still_invalid_report_updates_its_errors_and_keeps_it_pending(moderator):
    data = changed(report(day="2024-04-25"), "instance.no_of_users", -1)
    item = send(data, now=dt.datetime(2024, 4, 20, tzinfo=dt.UTC)).review_item
    assert set(item.errors) == {"report_date", "instance.no_of_users"}

    result = moderation.reprocess(item=item, actor=moderator, now=NOW)

    assert result.outcome == moderation.STILL_INVALID and "still not a valid report" in result.message
    item.refresh_from_db()
    assert item.status == "pending" and item.resolved_at is None
    assert item.errors == {"instance.no_of_users": "must be an integer >= 0, not a number"}
    assert not Submission.objects.exists()
    assert ModerationLog.objects.get().detail["outcome"] == "invalid"


def test_reprocess_when_a_different_report_for_that_day_is_stored_says_so(moderator):
    _, item = rejected_for_a_future_date(users=10)
    stored = send(report(day="2024-04-25", users=11), now=NOW).submission
    table = aggregates.table()

    result = moderation.reprocess(item=item, actor=moderator, now=NOW)

    assert result.outcome == moderation.CONFLICT
    assert "already stored" in result.message and "2024-04-25" in result.message
    item.refresh_from_db()
    # Still waiting for a moderator, now as a conflict with the stored report; not counted as resent.
    assert (item.status, item.reason, item.submission, item.times_received) == (
        "pending",
        "conflict",
        stored,
        1,
    )
    assert item.errors == {"report_date": "a different report for 2024-04-25 is already stored"}
    assert Submission.objects.count() == 1 and ReviewItem.objects.count() == 1
    assert aggregates.table() == table


def test_reprocess_of_a_conflict_stays_a_conflict_while_the_stored_report_is_there(moderator):
    send(report(users=1))
    item = send(report(users=2)).review_item
    assert item.reason == "conflict"
    result = moderation.reprocess(item=item, actor=moderator, now=NOW)
    assert result.outcome == moderation.CONFLICT
    item.refresh_from_db()
    assert item.status == "pending" and item.times_received == 1


def test_reprocess_when_the_same_report_was_stored_meanwhile_links_to_it(moderator):
    data, item = rejected_for_a_future_date()
    stored = send(data, now=NOW).submission  # the instance sent it again once it was due

    result = moderation.reprocess(item=item, actor=moderator, now=NOW)

    assert result.outcome == moderation.ALREADY_STORED
    item.refresh_from_db()
    assert (item.status, item.submission) == ("reprocessed", stored)
    assert Submission.objects.count() == 1


def test_a_resolved_entry_cannot_be_reprocessed_or_dismissed_again(moderator):
    _, item = rejected_for_a_future_date()
    moderation.reprocess(item=item, actor=moderator, now=NOW)
    with pytest.raises(moderation.ModerationError):
        moderation.reprocess(item=item, actor=moderator, now=NOW)
    assert moderation.dismiss(items=[item], actor=moderator) == 0
    item.refresh_from_db()
    assert item.status == "reprocessed"
    assert Submission.objects.count() == 1


def test_dismiss_resolves_pending_entries_and_logs_why(moderator):
    _, first = rejected_for_a_future_date(instance="x")
    _, second = rejected_for_a_future_date(instance="y")

    assert moderation.dismiss(items=[first, second], actor=moderator, reason="test traffic", now=NOW) == 2

    for item in (first, second):
        item.refresh_from_db()
        assert (item.status, item.resolved_at, item.resolved_by) == ("dismissed", NOW, moderator)
    assert not Submission.objects.exists()
    logs = ModerationLog.objects.filter(action="dismiss")
    assert sorted(logs.values_list("target", flat=True)) == sorted(
        [f"review entry {first.pk}", f"review entry {second.pk}"]
    )
    assert set(logs.values_list("reason", flat=True)) == {"test traffic"}
    # The same body sent again is a new pending entry (the dismissed one is not reopened).
    send(report(instance="x", day="2024-04-25"), now=dt.datetime(2024, 4, 20, tzinfo=dt.UTC))
    assert ReviewItem.objects.filter(status="pending").count() == 1


# --- Concurrency on PostgreSQL ----------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_excluding_while_reports_arrive_keeps_the_figures_exact(fresh_cache):
    assert connection.vendor == "postgresql", "needs PostgreSQL row locks: run with DATABASE_URL set to one"
    actor = get_user_model().objects.create_user("mod", is_staff=True)
    send(report(instance="busy", day="2024-04-01"))
    busy = instance("busy")
    barrier = threading.Barrier(9)

    def arrive(n):
        try:
            barrier.wait()
            return send(report(instance="busy", day=f"2024-04-{n + 2:02d}", runs=n)).status
        finally:
            connections.close_all()

    def moderate():
        try:
            barrier.wait()
            return moderation.exclude_instances(instances=[busy], reason="runaway", actor=actor)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(9) as pool:
        arrivals = [pool.submit(arrive, n) for n in range(8)]
        excluded = pool.submit(moderate)
        assert [f.result() for f in arrivals] == ["created"] * 8
        assert excluded.result() == 1

    assert instance("busy").report_count == 9
    assert aggregates.table() == {}  # whatever the order, nothing of the excluded instance counts
    moderation.include_instances(instances=[busy], actor=actor)
    assert aggregates.table() == rebuilt()
    assert sum(v for (stat, _, _), v in aggregates.table().items() if stat == "reports") == 9
