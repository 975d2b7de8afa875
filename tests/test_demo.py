"""The demo fleet: deterministic, valid, realistic; and stored in bulk exactly as the API stores it."""

import datetime as dt
import json
import re
from collections import Counter, defaultdict

import pytest
from django.core.management import call_command

from reports import aggregates, demo, formats, ingest
from reports.management.commands.seed_demo import delete_all_reports
from reports.models import Instance, ModerationLog, Project, ReviewItem, Submission, Workflow

END = dt.date(2024, 6, 30)
TODAY = END + dt.timedelta(days=1)
VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


@pytest.fixture(scope="module")
def year():
    """A year of a mid-sized fleet, shared by the property tests (generating it takes a second)."""
    return list(demo.fleet(instances=60, days=400, seed=5, end=END))


# --- The generator ---------------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_reports_byte_for_byte():
    first = [(r.body(), r.country, r.is_test) for r in demo.fleet(instances=8, days=60, seed=3, end=END)]
    again = [(r.body(), r.country, r.is_test) for r in demo.fleet(instances=8, days=60, seed=3, end=END)]
    other = [(r.body(), r.country, r.is_test) for r in demo.fleet(instances=8, days=60, seed=4, end=END)]
    assert first == again
    assert len(first) > 100
    assert {b for b, _, _ in first}.isdisjoint({b for b, _, _ in other})


def test_every_report_validates_and_is_sent_once_per_instance_and_day(year):
    keys = Counter()
    for r in year:
        report = formats.validate(json.loads(r.body()), today=TODAY)
        assert (report.instance.hashed_uuid, report.report_date) == (r.instance_hash, r.report_date)
        assert report.generated_at.date() == r.sent_on  # generated the night it is sent
        keys[(r.instance_hash, r.report_date)] += 1
    assert max(keys.values()) == 1
    assert [r.sent_on for r in year] == sorted(r.sent_on for r in year)  # yielded in the order sent


def test_hashes_are_computed_from_uuids_as_lightning_does(year):
    shared = [r for r in year if r.data["instance"]["cleartext_uuid"]]
    assert 0 < len({r.instance_hash for r in shared}) < len({r.instance_hash for r in year})
    for r in shared[:50]:
        inst = r.data["instance"]
        assert inst["hashed_uuid"] == formats.hash_uuid(inst["cleartext_uuid"])
        assert re.fullmatch(r"[0-9A-F]{64}", inst["hashed_uuid"])
        for p in r.data["projects"]:
            assert p["hashed_uuid"] == formats.hash_uuid(p["cleartext_uuid"])


def test_counts_are_plausible(year):
    for r in year:
        inst = r.data["instance"]
        assert inst.get("no_of_active_users", 0) <= inst["no_of_users"]
        if "no_of_monthly_active_users" in inst:
            assert inst["no_of_monthly_active_users"] <= inst["no_of_active_users"]
        for p in r.data["projects"]:
            assert p["no_of_users"] <= inst["no_of_users"]
            assert p.get("no_of_monthly_active_users", 0) <= p.get("no_of_active_users", p["no_of_users"])
            assert p.get("no_of_active_users", 0) <= p["no_of_users"]
            for w in p["workflows"]:
                assert w["no_of_steps"] >= w["no_of_runs"]
                assert w.get("no_of_active_jobs", 0) <= w["no_of_jobs"]
                if "no_of_active_jobs" in w:
                    assert (w["no_of_active_jobs"] > 0) == (w["no_of_runs"] > 0)


def real(reports):
    return [r for r in reports if not r.is_test]


def test_fewer_runs_at_weekends(year):
    runs = defaultdict(list)
    for r in real(year):
        if r.data["version"] != "1":  # format 1 counts are all-time totals
            total = sum(w["no_of_runs"] for p in r.data["projects"] for w in p["workflows"])
            runs[r.report_date.weekday() >= 5].append(total)
    weekday, weekend = (sum(runs[k]) / len(runs[k]) for k in (False, True))
    assert 1.4 < weekday / weekend < 4


def test_the_fleet_grows_and_churns(year):
    active = defaultdict(set)
    last = {}
    for r in real(year):
        active[r.report_date.strftime("%Y-%m")].add(r.instance_hash)
        last[r.instance_hash] = max(last.get(r.instance_hash, r.report_date), r.report_date)
    months = sorted(active)
    assert len(active[months[-2]]) > 1.5 * len(active[months[1]])
    stopped = [h for h, day in last.items() if day < END - dt.timedelta(days=30)]
    assert 3 <= len(stopped) < len(last) / 2


def test_versions_climb_per_instance_through_real_lightning_strings(year):
    seen = defaultdict(list)
    kinds = Counter()
    for r in sorted(year, key=lambda r: r.report_date):
        version = r.data["instance"]["version"]
        if r.data["version"] == "1":
            assert re.fullmatch(r"2\.0\.\d", version)  # format 1 sent the plain mix version
        else:
            m = re.fullmatch(r"v2\.\d+\.\d+:(match|edge|other):([0-9a-f]{7}|sanitised)", version)
            assert m, version
            assert (m.group(1) == "other") == (m.group(2) == "sanitised")
            kinds[m.group(1)] += 1
        seen[r.instance_hash].append(tuple(map(int, VERSION.match(version).groups())))
    assert all(v == sorted(v) for v in seen.values())
    assert sum(len(set(v)) > 1 for v in seen.values()) > len(seen) / 2  # most instances upgrade
    assert kinds["match"] > kinds["edge"] > 0 and kinds["other"] > 0
    latest = {v[-1] for v in seen.values()}
    assert (2, 14) in {v[:2] for v in latest}


def test_format_1_only_at_the_start_then_2_then_3(year):
    dates = defaultdict(list)
    for r in year:
        dates[r.data["version"]].append(r.report_date)
    assert set(dates) == {"1", "2", "3"}
    assert len(dates["1"]) < 0.15 * len(year)
    assert max(dates["1"]) < max(dates["2"]) and min(dates["1"]) < min(dates["3"])
    assert min(dates["3"]) > END - dt.timedelta(days=200)
    assert all("report_date" not in r.data for r in year if r.data["version"] == "1")


def test_gaps_and_late_backfills(year):
    days = defaultdict(set)
    for r in year:
        days[r.instance_hash].add(r.report_date)
    with_gaps = [h for h, d in days.items() if (max(d) - min(d)).days + 1 > len(d)]
    assert len(with_gaps) > 5
    late = [r for r in year if r.late]
    assert 0 < len(late) < 0.05 * len(year)
    assert all(r.data["version"] != "1" for r in late)  # format 1 has no date: it cannot backfill
    # A backfill comes in the sequence after the on-time reports of its day, on the night its
    # instance is back, together with that night's report.
    for n, r in enumerate(year):
        if r.late:
            assert any(o.report_date == r.report_date and not o.late for o in year[:n])
            assert any(
                o.instance_hash == r.instance_hash and not o.late and o.sent_on == r.sent_on for o in year
            )


def test_mix_of_countries_and_operating_systems(year):
    countries = Counter(r.country for r in real(year))
    assert set(countries) <= {c for c, _ in demo.COUNTRIES}
    assert len(countries) > 10
    systems = Counter(r.data["instance"]["operating_system"] for r in year)
    assert systems.most_common(1)[0][0] == "linux" and systems["linux"] > 0.8 * len(year)
    assert len(systems) > 1


def test_test_instances_are_flagged_and_worth_excluding(year):
    tests = defaultdict(list)
    for r in year:
        if r.is_test:
            tests[r.instance_hash].append(r)
    assert len(tests) == 60 // 40
    for reports in tests.values():
        assert len(reports) <= 4  # a lifetime of a few days
        assert {r.country for r in reports} <= set(demo.TEST_COUNTRIES)
    runs = [
        w["no_of_runs"]
        for rs in tests.values()
        for r in rs
        for p in r.data["projects"]
        for w in p["workflows"]
    ]
    assert max(runs) > 10_000  # the load test


def test_projects_and_workflows_grow(year):
    by_instance = defaultdict(list)
    for r in sorted(real(year), key=lambda r: r.report_date):
        by_instance[r.instance_hash].append(sum(len(p["workflows"]) for p in r.data["projects"]))
    grown = [w for w in by_instance.values() if w[-1] > w[0]]
    assert len(grown) > len(by_instance) / 2
    assert all(w == sorted(w) for w in by_instance.values())  # nothing in the fleet deletes workflows


# --- Bulk storage equals the API -------------------------------------------------------------------


def comparison_stream():
    """A small fleet with formats 1-3, backfills and test instances, plus what else reaches a server:
    a repeat (duplicate), a changed report for a stored day (conflict), an invalid and a malformed body."""
    reports = list(demo.fleet(instances=6, days=40, seed=7, end=END, release_every=3))
    assert {r.data["version"] for r in reports} == {"1", "2", "3"}
    assert any(r.late for r in reports) and any(r.is_test for r in reports)
    items = [(r.body(), r.country) for r in reports]
    first = reports[10]
    changed = json.loads(first.body())
    changed["instance"]["no_of_users"] += 1
    invalid = json.loads(reports[20].body())
    invalid["instance"]["no_of_users"] = -1
    items[30:30] = [(first.body(), first.country), (demo.body(changed), first.country)]
    items[60:60] = [(demo.body(invalid), "KE"), (b"[1, 2]", "KE"), (b"{not json", "KE")]
    items.append((demo.body(changed), first.country))  # a conflict seen twice: counted on one entry
    return items


def snapshot():
    hash_of = dict(Instance.objects.values_list("id", "hashed_uuid"))
    submission_key = {
        s.id: (hash_of[s.instance_id], s.report_date)
        for s in Submission.objects.only("id", "instance_id", "report_date")
    }
    submission_fields = [
        f.attname for f in Submission._meta.concrete_fields if f.attname not in ("id", "received_at")
    ]

    def rows(model, exclude=(), keyed=()):
        names = [f.attname for f in model._meta.concrete_fields if f.attname not in ("id", *exclude)]
        out = []
        for values in model.objects.order_by("id").values_list(*names):
            row = dict(zip(names, values, strict=True))
            for name in keyed:
                if row[name] is not None:
                    row[name] = submission_key[row[name]]
            out.append(row)
        return out

    instance_fields = [
        f.attname for f in Instance._meta.concrete_fields if f.attname not in ("id", "created_at")
    ]
    return {
        "table": aggregates.table(),
        "instances": sorted(Instance.objects.values_list(*instance_fields)),
        "submissions": [
            (hash_of[row[0]], *row[1:])
            for row in Submission.objects.order_by("id").values_list(*submission_fields)
        ],
        "projects": sorted(
            (submission_key[s], h, str(c), u, a, m)
            for s, h, c, u, a, m in Project.objects.values_list(
                "submission_id",
                "hashed_uuid",
                "cleartext_uuid",
                "no_of_users",
                "no_of_active_users",
                "no_of_monthly_active_users",
            )
        ),
        "workflows": sorted(
            (submission_key[s], ph, h, str(c), j, r, st, a)
            for s, ph, h, c, j, r, st, a in Workflow.objects.values_list(
                "submission_id",
                "project__hashed_uuid",
                "hashed_uuid",
                "cleartext_uuid",
                "no_of_jobs",
                "no_of_runs",
                "no_of_steps",
                "no_of_active_jobs",
            )
        ),
        "review": rows(ReviewItem, exclude=("received_at", "last_received_at"), keyed=("submission_id",)),
    }


@pytest.mark.django_db
def test_bulk_storage_gives_exactly_what_the_api_gives(post_report, monkeypatch):
    items = comparison_stream()

    # Path A: every body through the HTTP API, the country the server would find for its sender.
    sender = {}
    monkeypatch.setattr("reports.api.geo.country_of", lambda meta: sender["country"])
    statuses = Counter()
    for body, country in items:
        sender["country"] = country
        response = post_report(body)
        statuses[response.json()["status"]] += 1
    via_api = snapshot()

    delete_all_reports()
    assert Submission.objects.count() == Instance.objects.count() == 0

    # Path B: the bulk path seed_demo uses; small chunks, so that repeats fall between chunks too.
    counts = ingest.store_many(items=items, chunk_size=7)
    in_bulk = snapshot()

    assert counts == statuses
    assert counts["created"] == len(via_api["submissions"]) > 100
    assert (counts["duplicate"], counts["conflict"], counts["rejected"], counts["malformed"]) == (1, 2, 1, 2)
    for part in via_api:
        assert in_bulk[part] == via_api[part], part
    assert any(row["times_received"] == 2 for row in in_bulk["review"])
    assert {k[0] for k in in_bulk["table"]} >= {"runs", "instances", "instances_by_version", "new_instances"}


@pytest.mark.django_db
def test_bulk_storage_after_reports_arrived_one_by_one_keeps_the_stored_ones():
    items = [(r.body(), r.country) for r in demo.fleet(instances=4, days=20, seed=2, end=END)]
    for body, country in items[:15]:
        ingest.receive(body=body, country=country)
    counts = ingest.store_many(items=items, chunk_size=10)
    assert counts == {"duplicate": 15, "created": len(items) - 15}
    incremental_and_rebuilt = aggregates.table()
    aggregates.rebuild()
    assert aggregates.table() == incremental_and_rebuilt
    dates = defaultdict(list)
    for body, _ in items:
        data = json.loads(body)
        dates[data["instance"]["hashed_uuid"]].append(dt.date.fromisoformat(data["report_date"]))
    for instance in Instance.objects.all():
        mine = dates[instance.hashed_uuid]
        assert instance.report_count == len(mine) == instance.submissions.count()
        assert (instance.first_report_date, instance.last_report_date) == (min(mine), max(mine))


# --- The command ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_stores_the_fleet_then_leaves_it_alone_unless_reset(capsys):
    args = {"instances": 5, "days": 30, "seed": 9, "end": END}
    call_command("seed_demo", **args)
    fleet = list(demo.fleet(**args))
    bodies = sorted(r.body().decode() for r in fleet)
    assert sorted(Submission.objects.values_list("raw_body", flat=True)) == bodies
    assert aggregates.table() and Instance.objects.count() == len({r.instance_hash for r in fleet})
    out = capsys.readouterr().out
    assert f"created {len(fleet)}" in out
    test_hashes = {r.instance_hash[:12] for r in fleet if r.is_test}
    assert test_hashes and all(h in out for h in test_hashes)
    # The test instances are excluded, as a moderator would, and the log says so.
    excluded = Instance.objects.filter(excluded=True)
    assert {i.hashed_uuid[:12] for i in excluded} == test_hashes
    assert ModerationLog.objects.filter(action="exclude", actor_name="system").count() == len(test_hashes)
    rebuilt_without_them = aggregates.table()
    aggregates.rebuild()
    assert aggregates.table() == rebuilt_without_them

    call_command("seed_demo", instances=2, days=3, end=END)
    assert "already seeded" in capsys.readouterr().out
    assert Submission.objects.count() == len(fleet)

    ingest.receive(body=b'{"version": "9"}', country="")  # a review entry, forgotten too by --reset
    call_command("seed_demo", instances=2, days=3, end=END, seed=1, reset=True)
    assert Submission.objects.count() == len(list(demo.fleet(instances=2, days=3, end=END, seed=1)))
    assert not ReviewItem.objects.exists()


@pytest.mark.django_db
def test_seed_demo_can_keep_the_test_instances_for_moderators_to_find(capsys):
    call_command("seed_demo", instances=5, days=30, seed=9, end=END, keep_test_instances=True)
    assert not Instance.objects.filter(excluded=True).exists()
    assert "Test instances worth excluding" in capsys.readouterr().out


@pytest.mark.django_db
def test_bulk_storage_takes_a_few_statements_per_chunk_not_per_report(django_assert_max_num_queries):
    items = [(r.body(), r.country) for r in demo.fleet(instances=10, days=30, seed=4, end=END)]
    assert len(items) > 150
    # Counted: the statements through Django's cursor (COPY goes around it), the rebuild's included.
    with django_assert_max_num_queries(25):
        counts = ingest.store_many(items=items)
    assert counts == {"created": len(items)}
    assert Submission.objects.count() == len(items)
