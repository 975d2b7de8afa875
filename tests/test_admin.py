"""The admin as moderators use it: every action through HTTP, permissions, figures, speed on big tables."""

import datetime as dt
import json
import re
import uuid

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.paginator import Paginator
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from reports import admin as reports_admin
from reports import aggregates, cache, ingest, moderation
from reports.models import DailyCount, Instance, ModerationLog, ReviewItem, Submission, Workflow
from tests.factories import changed, instance_hash, report

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)
PAST = dt.datetime(2024, 4, 20, 8, tzinfo=dt.UTC)  # when 2024-04-25 was "later than tomorrow"


def send(data, *, country="KE", now=NOW):
    return ingest.receive(body=json.dumps(data).encode(), country=country, now=now)


def instance(key) -> Instance:
    return Instance.objects.get(hashed_uuid=instance_hash(key))


def url(name, *args) -> str:
    return reverse(f"admin:reports_{name}", args=args)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def runs_on(day: str) -> int:
    return aggregates.table().get(("runs", "", dt.date.fromisoformat(day)), 0)


def rebuilt() -> dict:
    """The table a full rebuild gives, leaving the incremental one in place."""
    incremental = aggregates.table()
    aggregates.rebuild()
    result = aggregates.table()
    DailyCount.objects.all().delete()
    aggregates.apply(incremental)
    return result


def shown(response) -> list:
    return list(response.context["cl"].result_list)


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.org", "unused-password")


@pytest.fixture
def moderator(django_user_model):
    user = django_user_model.objects.create_user("mod", is_staff=True)
    user.groups.add(Group.objects.get(name="Moderators"))
    return user


@pytest.fixture
def staff(django_user_model):
    """Staff without any permission."""
    return django_user_model.objects.create_user("staff", is_staff=True)


@pytest.fixture
def viewer(django_user_model):
    """Staff who may look at instances and the review queue, but not moderate."""
    user = django_user_model.objects.create_user("viewer", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="reports",
            codename__in=["view_instance", "view_reviewitem", "view_submission"],
        )
    )
    return user


@pytest.fixture
def fleet():
    """A (two reports, KE) and B (one report, UG): runs 10 + 10 by A, 3 by B."""
    for day in ("2024-04-20", "2024-04-21"):
        assert send(report(instance="A", day=day, runs=10, steps=1), country="KE").status == "created"
    assert send(report(instance="B", day="2024-04-21", runs=3, steps=1), country="UG").status == "created"


# --- Roles ----------------------------------------------------------------------------------------


def test_the_moderators_group_is_created_by_the_migrations_with_exactly_its_permissions(moderator):
    group = Group.objects.get(name="Moderators")
    assert {
        f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")
    } == {
        "reports.view_instance",
        "reports.moderate_instance",
        "reports.view_submission",
        "reports.view_project",
        "reports.view_workflow",
        "reports.view_reviewitem",
        "reports.review_report",
        "reports.view_moderationlog",
    }
    assert moderator.has_perm("reports.moderate_instance") and moderator.has_perm("reports.review_report")
    assert not moderator.has_perm("reports.delete_instance")
    assert not moderator.has_perm("reports.change_moderationlog")


# --- Instances: exclude and include ----------------------------------------------------------------


def test_a_moderator_excludes_instances_with_a_reason_and_the_public_figures_follow(
    client, moderator, fleet, django_capture_on_commit_callbacks
):
    client.force_login(moderator)
    before = aggregates.table()
    generation = cache.generation()
    a = instance("A")
    selection = {"action": "exclude_selected", "_selected_action": [a.pk]}

    # The action first asks for a reason, changing nothing.
    response = client.post(url("instance_changelist"), selection)
    assert response.status_code == 200
    assert a.short_hash in response.text and 'name="reason"' in response.text
    assert not instance("A").excluded

    # A blank reason is refused.
    response = client.post(url("instance_changelist"), {**selection, "confirm": "yes", "reason": " "})
    assert response.status_code == 200 and "This field is required" in response.text
    assert not instance("A").excluded and not ModerationLog.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url("instance_changelist"),
            {**selection, "confirm": "yes", "reason": "demo instance"},
            follow=True,
        )
    assert messages_of(response) == ["Excluded 1 instance(s) from the public figures."]
    a = instance("A")
    assert (a.excluded, a.excluded_reason) == (True, "demo instance")
    assert not instance("B").excluded
    # The public figures no longer count A, and the cached pages are stale.
    assert (runs_on("2024-04-20"), runs_on("2024-04-21")) == (0, 3)
    assert aggregates.table()[("instances", "", dt.date(2024, 4, 21))] == 1
    assert aggregates.table() == rebuilt() != before
    assert cache.generation() != generation
    log = ModerationLog.objects.get()
    assert (log.action, log.actor, log.reason, log.target) == (
        "exclude",
        moderator,
        "demo instance",
        f"instance {a.hashed_uuid}",
    )

    # Including it again (no reason needed) gives back exactly the figures before.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url("instance_changelist"),
            {"action": "include_selected", "_selected_action": [a.pk], "confirm": "yes", "reason": ""},
            follow=True,
        )
    assert messages_of(response) == ["Included 1 instance(s) in the public figures again."]
    assert not instance("A").excluded
    assert aggregates.table() == before
    actions = ModerationLog.objects.order_by("id").values_list("action", flat=True)
    assert list(actions) == ["exclude", "include"]


def test_bulk_exclusion_of_a_whole_filtered_list(client, moderator, fleet):
    client.force_login(moderator)
    # "Select all" across pages posts select_across; the confirmation page carries it on.
    selection = {"action": "exclude_selected", "_selected_action": [instance("A").pk], "select_across": "1"}
    response = client.post(url("instance_changelist") + "?country=UG", selection)
    assert 'name="select_across" value="1"' in response.text
    assert instance("B").short_hash in response.text and instance("A").short_hash not in response.text
    client.post(url("instance_changelist") + "?country=UG", {**selection, "confirm": "yes", "reason": "test"})
    assert list(Instance.objects.filter(excluded=True)) == [instance("B")]


def test_one_instance_is_excluded_and_included_from_its_own_page(client, moderator, fleet):
    client.force_login(moderator)
    a = instance("A")
    page = client.get(url("instance_change", a.pk))
    assert url("instance_exclude", a.pk) in page.text
    assert url("instance_include", a.pk) not in page.text
    assert 'name="_save"' not in page.text  # the data is read-only

    form = client.get(url("instance_exclude", a.pk))
    assert form.status_code == 200 and 'name="reason"' in form.text and not instance("A").excluded

    response = client.post(url("instance_exclude", a.pk), {"confirm": "yes", "reason": "staging copy"})
    assert response.status_code == 302 and response.url == url("instance_change", a.pk)
    assert instance("A").excluded and runs_on("2024-04-20") == 0

    page = client.get(url("instance_change", a.pk))
    assert url("instance_include", a.pk) in page.text
    assert "staging copy" in page.text  # the reason and the moderation history

    client.post(url("instance_include", a.pk), {"confirm": "yes"})
    assert not instance("A").excluded and runs_on("2024-04-20") == 10


def test_without_the_permission_nothing_changes(client, staff, viewer, fleet, django_user_model):
    a = instance("A")
    before = aggregates.table()
    exclude = {"action": "exclude_selected", "_selected_action": [a.pk], "confirm": "yes", "reason": "x"}

    # Staff without permissions see nothing and can do nothing.
    client.force_login(staff)
    assert client.get(url("instance_changelist")).status_code == 403
    assert client.post(url("instance_changelist"), exclude).status_code == 403
    assert client.get(url("instance_exclude", a.pk)).status_code == 403
    assert client.post(url("instance_exclude", a.pk), {"confirm": "yes", "reason": "x"}).status_code == 403

    # Who may only look is not offered the actions, and cannot reach them.
    client.force_login(viewer)
    page = client.get(url("instance_changelist"))
    assert page.status_code == 200 and "exclude_selected" not in page.text
    client.post(url("instance_changelist"), exclude)
    assert client.post(url("instance_exclude", a.pk), {"confirm": "yes", "reason": "x"}).status_code == 403
    assert url("instance_exclude", a.pk) not in client.get(url("instance_change", a.pk)).text

    # Users who are not staff are sent to the login page.
    client.force_login(django_user_model.objects.create_user("visitor"))
    response = client.post(url("instance_exclude", a.pk), {"confirm": "yes", "reason": "x"})
    assert response.status_code == 302 and "/login/" in response.url

    assert not Instance.objects.filter(excluded=True).exists()
    assert not ModerationLog.objects.exists()
    assert aggregates.table() == before


# --- Instances: delete ----------------------------------------------------------------------------


def test_only_superusers_delete_an_instance_and_the_figures_follow(client, moderator, superuser, fleet):
    send(changed(report(instance="A", day="2024-04-22"), "instance.no_of_users", -1))  # in review
    a = instance("A")

    client.force_login(moderator)
    assert client.get(url("instance_delete", a.pk)).status_code == 403
    assert client.post(url("instance_delete", a.pk), {"post": "yes"}).status_code == 403
    assert Instance.objects.filter(pk=a.pk).exists()

    client.force_login(superuser)
    page = client.get(url("instance_delete", a.pk))
    # What goes is counted, not listed row by row, and a reason is asked.
    assert page.status_code == 200 and 'name="reason"' in page.text
    assert re.search(r"Workflows: 2\b", page.text) and re.search(r"Submissions: 2\b", page.text)
    assert "delete_selected" not in client.get(url("instance_changelist")).text

    response = client.post(url("instance_delete", a.pk), {"post": "yes", "reason": "operator's request"})
    assert response.status_code == 302
    assert not Instance.objects.filter(pk=a.pk).exists()
    assert not Submission.objects.filter(instance_id=a.pk).exists()
    assert not ReviewItem.objects.filter(instance_hash=a.hashed_uuid).exists()
    assert Workflow.objects.count() == 1  # B's
    assert (runs_on("2024-04-20"), runs_on("2024-04-21")) == (0, 3)
    assert aggregates.table() == rebuilt()
    log = ModerationLog.objects.get()
    assert (log.action, log.actor, log.reason) == ("delete", superuser, "operator's request")


# --- Instances: list, filters, search --------------------------------------------------------------


def test_instance_list_filters_and_search(client, moderator):
    today = timezone.localdate()
    send(report(instance="new", day=today, version="v2.5.1:edge:x", os="Linux"), now=timezone.now())
    send(report(instance="old", day="2024-04-20", version="v2.4.2:match:y", cleartext=True), country="")
    send(report(instance="gone", day="2024-04-20", os="darwin"), country="UG")
    moderation.exclude_instances(instances=[instance("gone")], reason="test", actor=moderator)
    client.force_login(moderator)
    changelist = url("instance_changelist")

    def keys(query):
        response = client.get(f"{changelist}?{query}")
        assert response.status_code == 200
        by_hash = {instance_hash(k): k for k in ("new", "old", "gone")}
        return sorted(by_hash[i.hashed_uuid] for i in shown(response))

    assert keys("") == ["gone", "new", "old"]
    assert keys("excluded__exact=1") == ["gone"]
    assert keys("last_seen=7") == ["new"]
    assert keys("last_seen=older") == ["gone", "old"]
    assert keys("version=2.5") == ["new"]
    assert keys("os=linux") == ["new", "old"]  # "Linux" and "linux" are one OS, as in the figures
    assert keys("country=unknown") == ["old"]
    assert keys("country=UG&excluded__exact=1") == ["gone"]
    # A hash's first characters, in any case, or the cleartext UUID.
    assert keys(f"q={instance_hash('old')[:8].lower()}") == ["old"]
    cleartext = instance("old").cleartext_uuid
    assert keys(f"q={cleartext}") == ["old"]
    assert keys(f"q={uuid.uuid4()}") == []
    assert keys("q=not-a-hash") == []
    # Counts next to each filter choice, on demand (a small table).
    assert re.search(r"linux\s*\(2\)", client.get(f"{changelist}?_facets=True").text)


# --- Submissions ----------------------------------------------------------------------------------


def test_a_report_page_shows_the_escaped_raw_json_and_at_most_100_workflows(client, moderator):
    data = report(projects=2, workflows=75)
    data["note"] = "<script>alert('x')</script>"  # unknown keys are kept in the raw JSON
    submission = send(data).submission
    client.force_login(moderator)

    page = client.get(url("submission_change", submission.pk))

    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page.text
    assert "  &quot;version&quot;: &quot;3&quot;," in page.text  # pretty-printed
    assert "first 100 of 150" in page.text.lower()
    assert len(re.findall(r'id="workflows-\d+"', page.text)) == 100
    assert len(re.findall(r'id="projects-\d+"', page.text)) == 2
    assert 'name="_save"' not in page.text


def test_a_huge_raw_body_is_shown_in_part(client, moderator, monkeypatch):
    monkeypatch.setattr(reports_admin, "MAX_SHOWN_JSON", 200)
    submission = send(report(workflows=20)).submission
    client.force_login(moderator)
    page = client.get(url("submission_change", submission.pk))
    pretty = json.dumps(json.loads(Submission.objects.get().raw_body), indent=2)
    assert f"… {len(pretty) - 200:,} more characters not shown" in page.text


def test_a_report_page_costs_the_same_queries_whatever_its_size(client, moderator):
    small = send(report(instance="small", workflows=1)).submission
    large = send(report(instance="large", projects=5, workflows=60)).submission
    client.force_login(moderator)
    client.get(url("submission_change", small.pk))  # warm the session and caches

    def queries(submission):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url("submission_change", submission.pk)).status_code == 200
        return len(ctx.captured_queries)

    assert queries(small) == queries(large)


def test_submission_filters_and_search(client, moderator, fleet):
    send(report(instance="C", fmt="1", day="2024-04-19"))
    client.force_login(moderator)
    changelist = url("submission_changelist")
    a = instance("A")

    def found(query):
        response = client.get(f"{changelist}?{query}")
        assert response.status_code == 200
        return sorted((s.instance.hashed_uuid[:4], s.report_date.isoformat()) for s in shown(response))

    a4, b4, c4 = (instance_hash(k)[:4] for k in "ABC")
    assert found(f"instance={a.pk}") == [(a4, "2024-04-20"), (a4, "2024-04-21")]
    assert a.short_hash in client.get(f"{changelist}?instance={a.pk}").text  # the filter says which
    assert found("format__exact=1") == [(c4, "2024-04-19")]
    assert found("report_date_range=older") == sorted(
        [(a4, "2024-04-20"), (a4, "2024-04-21"), (b4, "2024-04-21"), (c4, "2024-04-19")]
    )
    assert found("report_date_range=7") == []
    assert found("q=2024-04-21") == sorted([(a4, "2024-04-21"), (b4, "2024-04-21")])
    assert found(f"q={instance_hash('B')[:10].lower()}") == [(b4, "2024-04-21")]
    # The instance list links to its reports.
    assert f"{changelist}?instance={a.pk}" in client.get(url("instance_changelist")).text


def test_reports_cannot_be_added_changed_or_deleted_by_anyone(client, superuser, fleet):
    submission = Submission.objects.first()
    client.force_login(superuser)
    assert client.get(url("submission_add")).status_code == 403
    assert client.post(url("submission_change", submission.pk), {"no_of_users": 1}).status_code == 403
    assert client.post(url("submission_delete", submission.pk), {"post": "yes"}).status_code == 403
    assert Submission.objects.filter(pk=submission.pk, no_of_users=10).exists()


# --- Review queue ---------------------------------------------------------------------------------


def future_report_rejected(**kwargs):
    """Rejected on 2024-04-20 as dated later than tomorrow; valid by today's (2024-05-01) rules."""
    outcome = send(report(day="2024-04-25", **kwargs), now=PAST)
    assert outcome.status == "rejected"
    return outcome.review_item


def test_reprocess_through_the_admin_stores_what_is_now_valid(client, moderator, monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    item = future_report_rejected(runs=4)
    client.force_login(moderator)

    page = client.get(url("reviewitem_change", item.pk))
    assert "<li><code>report_date</code>: must not be later than tomorrow (UTC)</li>" in page.text
    assert url("reviewitem_reprocess", item.pk) in page.text

    response = client.post(
        url("reviewitem_changelist"), {"action": "reprocess", "_selected_action": [item.pk]}, follow=True
    )
    assert messages_of(response) == [f"{item} is now valid and stored as the report for 2024-04-25."]
    item.refresh_from_db()
    assert (item.status, item.resolved_by, item.resolved_at) == ("reprocessed", moderator, NOW)
    assert item.submission == Submission.objects.get(report_date="2024-04-25")
    assert runs_on("2024-04-25") == 4
    assert ModerationLog.objects.get().action == "reprocess"


def test_reprocess_of_a_report_whose_day_is_taken_says_so_and_keeps_it(client, moderator, monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    item = future_report_rejected(users=1)
    stored = send(report(day="2024-04-25", users=2)).submission
    client.force_login(moderator)

    # From the entry's own page: a confirmation, then the outcome.
    assert client.get(url("reviewitem_reprocess", item.pk)).status_code == 200
    response = client.post(url("reviewitem_reprocess", item.pk), {"confirm": "yes"}, follow=True)

    [message] = messages_of(response)
    assert "a different report for 2024-04-25" in message and "already stored" in message
    item.refresh_from_db()
    assert (item.status, item.reason, item.submission) == ("pending", "conflict", stored)
    assert Submission.objects.count() == 1


def test_dismiss_asks_for_confirmation_and_resolves_the_entries(client, moderator):
    first = future_report_rejected(instance="x")
    second = future_report_rejected(instance="y")
    client.force_login(moderator)
    selection = {"action": "dismiss", "_selected_action": [first.pk, second.pk]}

    page = client.post(url("reviewitem_changelist"), selection)
    assert page.status_code == 200 and ReviewItem.objects.filter(status="pending").count() == 2

    response = client.post(
        url("reviewitem_changelist"), {**selection, "confirm": "yes", "reason": "load test"}, follow=True
    )
    assert messages_of(response) == ["Dismissed 2 entries."]
    assert set(ReviewItem.objects.values_list("status", "resolved_by")) == {("dismissed", moderator.pk)}
    assert list(ModerationLog.objects.values_list("action", "reason")) == [("dismiss", "load test")] * 2
    assert not Submission.objects.exists()


def test_without_the_review_permission_entries_stay_as_they_are(client, viewer):
    item = future_report_rejected()
    client.force_login(viewer)
    page = client.get(url("reviewitem_changelist"))
    assert page.status_code == 200 and 'value="reprocess"' not in page.text
    client.post(url("reviewitem_changelist"), {"action": "reprocess", "_selected_action": [item.pk]})
    assert client.post(url("reviewitem_reprocess", item.pk), {"confirm": "yes"}).status_code == 403
    assert client.post(url("reviewitem_dismiss", item.pk), {"confirm": "yes"}).status_code == 403
    item.refresh_from_db()
    assert item.status == "pending" and not Submission.objects.exists()


def test_review_queue_filters(client, moderator):
    future_report_rejected(instance="x")
    dismissed = future_report_rejected(instance="y")
    moderation.dismiss(items=[dismissed], actor=moderator)
    send(report(instance="z", users=1))
    conflict = send(report(instance="z", users=2)).review_item
    client.force_login(moderator)

    def pks(query):
        return sorted(i.pk for i in shown(client.get(f"{url('reviewitem_changelist')}?{query}")))

    assert len(pks("")) == 3
    assert pks("status__exact=dismissed") == [dismissed.pk]
    assert pks("reason__exact=conflict") == [conflict.pk]
    assert pks(f"q={instance_hash('z')[:6].lower()}") == [conflict.pk]


# --- Moderation log -------------------------------------------------------------------------------


def test_the_moderation_log_is_readable_and_never_editable(client, superuser, moderator, fleet):
    moderation.exclude_instances(instances=[instance("A")], reason="demo", actor=moderator)
    log = ModerationLog.objects.get()

    for user in (superuser, moderator):
        client.force_login(user)
        listing = client.get(url("moderationlog_changelist") + "?action__exact=exclude&actor=mod")
        assert [r.pk for r in shown(listing)] == [log.pk]
        assert "delete_selected" not in listing.text
        page = client.get(url("moderationlog_change", log.pk))
        assert page.status_code == 200 and "demo" in page.text and 'name="_save"' not in page.text
        assert client.post(url("moderationlog_change", log.pk), {"reason": "edited"}).status_code == 403
        assert client.post(url("moderationlog_delete", log.pk), {"post": "yes"}).status_code == 403
        assert client.get(url("moderationlog_add")).status_code == 403
    log.refresh_from_db()
    assert log.reason == "demo" and ModerationLog.objects.count() == 1
    assert shown(client.get(url("moderationlog_changelist") + "?actor=someone-else")) == []


# --- Ingest health --------------------------------------------------------------------------------


def test_ingest_health_on_the_admin_index(client, moderator, staff):
    now = timezone.now()
    today = now.date()
    send(report(instance="a", day=today - dt.timedelta(days=1)), now=now)
    send(report(instance="b", day=today - dt.timedelta(days=1)), now=now - dt.timedelta(seconds=5))
    send(report(instance="c", day=today - dt.timedelta(days=4)), now=now - dt.timedelta(days=3))
    send(report(instance="d", day=today - dt.timedelta(days=11)), now=now - dt.timedelta(days=10))
    send(changed(report(instance="e", day=today), "instance.no_of_users", -1), now=now)
    send(changed(report(instance="f", day=today), "instance.no_of_users", -1), now=now)
    dismissed = send(changed(report(instance="g", day=today), "instance.no_of_users", -1), now=now)
    moderation.dismiss(items=[dismissed.review_item], actor=moderator)

    client.force_login(moderator)
    page = client.get(reverse("admin:index"))

    figures = dict(re.findall(r'data-figure="(\w+)">(?:<a [^>]+>)?([^<]+)<', page.text))
    assert figures["received_today"] == "2"
    assert figures["received_last_7_days"] == "3"
    assert figures["pending_review"] == "2"
    assert figures["last_received_at"].startswith(timezone.localtime(now).strftime("%Y-%m-%d %H:%M"))
    assert page.context["ingest_health"].last_received_at == now

    # Staff who may not see the reports do not see their figures either.
    client.force_login(staff)
    page = client.get(reverse("admin:index"))
    assert page.status_code == 200 and "Ingest health" not in page.text


# --- Speed on big tables --------------------------------------------------------------------------

LISTS = ["instance_changelist", "submission_changelist", "reviewitem_changelist", "moderationlog_changelist"]


def populate(keys, actor):
    for key in keys:
        send(report(instance=key, projects=2, workflows=3), country="KE")
        send(changed(report(instance=key), "instance.no_of_users", -1))
    moderation.exclude_instances(instances=[instance(k) for k in keys], reason="load", actor=actor)


def list_queries(client, name) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url(name))
    assert response.status_code == 200
    return [q["sql"] for q in ctx.captured_queries]


@pytest.mark.parametrize("name", LISTS)
def test_list_pages_cost_the_same_queries_for_3_or_30_rows(client, superuser, name):
    client.force_login(superuser)
    populate([f"k{n}" for n in range(3)], superuser)
    client.get(url(name))  # warm the session
    few = list_queries(client, name)
    populate([f"k{n}" for n in range(3, 30)], superuser)
    many = list_queries(client, name)
    assert len(shown(client.get(url(name)))) == 30
    assert len(few) == len(many)


@pytest.mark.parametrize("name", ["submission_changelist", "reviewitem_changelist"])
def test_list_pages_never_load_the_raw_json(client, superuser, name):
    client.force_login(superuser)
    populate(["k1", "k2"], superuser)
    queries = list_queries(client, name)
    table = "reports_submission" if name.startswith("submission") else "reports_reviewitem"
    assert any(table in sql for sql in queries)
    assert not [sql for sql in queries if "raw_body" in sql]


def test_unfiltered_big_lists_are_numbered_from_the_planner_estimate(client, superuser, monkeypatch):
    populate(["k1", "k2", "k3"], superuser)
    monkeypatch.setattr(reports_admin, "_estimated_rows", lambda model: 123_456)
    paginator = reports_admin.EstimatedCountPaginator
    assert paginator(Submission.objects.all(), 100).count == 123_456
    # A filtered list is counted: the estimate is of the whole table.
    assert paginator(Submission.objects.filter(format="3"), 100).count == 3

    client.force_login(superuser)
    with CaptureQueriesContext(connection) as ctx:
        page = client.get(url("submission_changelist"))
    assert page.context["cl"].result_count == 123_456
    assert not [q for q in ctx.captured_queries if "COUNT(" in q["sql"] and "reports_submission" in q["sql"]]

    # Small tables are counted exactly.
    monkeypatch.setattr(reports_admin, "_estimated_rows", lambda model: 500)
    assert paginator(Submission.objects.all(), 100).count == 3
    assert Paginator(Submission.objects.all(), 100).count == 3


def test_the_row_estimate_comes_from_postgresql_statistics(superuser):
    populate(["k1", "k2", "k3", "k4"], superuser)
    if connection.vendor != "postgresql":
        assert reports_admin._estimated_rows(Submission) == -1
        return
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE reports_submission")
    assert reports_admin._estimated_rows(Submission) == 4
