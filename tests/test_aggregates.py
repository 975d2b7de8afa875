"""The daily table: figures worked out by hand, and incremental upkeep equal to a full rebuild."""

import datetime as dt
import random

import pytest

from reports import aggregates
from reports.models import DailyCount, Instance
from tests.factories import instance_hash, report
from tests.fleet import send

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def series(stat, subgroup=""):
    """{day as 'MM-DD': value} of one stat, non-zero rows only."""
    rows = DailyCount.objects.filter(stat=stat, subgroup=subgroup).exclude(value=0).order_by("day")
    return {f"{r.day:%m-%d}": r.value for r in rows}


def days(first, last, value):
    start, end = dt.date.fromisoformat(f"2024-{first}"), dt.date.fromisoformat(f"2024-{last}")
    return {f"{start + dt.timedelta(n):%m-%d}": value for n in range((end - start).days + 1)}


def test_flows_add_reports_of_formats_2_and_3_on_their_day(hand_fleet):
    assert series("runs") == {"04-01": 10, "04-02": 20, "04-05": 7, "04-12": 5}
    assert series("steps") == {"04-01": 11, "04-02": 21, "04-05": 8, "04-12": 6}


def test_stocks_follow_the_seven_day_rule(hand_fleet):
    assert series("instances") == {
        **days("04-01", "04-01", 1),
        **days("04-02", "04-09", 2),  # A (04-02 covers to 04-09) and B
        **days("04-10", "04-11", 1),  # A is more than 7 days silent; B's 04-05 report covers to 04-12
        **days("04-12", "04-12", 2),
        **days("04-13", "04-19", 1),
    }
    assert series("users") == {
        "04-01": 5,
        **days("04-02", "04-04", 6 + 3),
        **days("04-05", "04-09", 6 + 4),
        **days("04-10", "04-11", 4),
        "04-12": 7 + 4,
        **days("04-13", "04-19", 7),
    }
    assert series("monthly_active_users") == days("04-05", "04-12", 2)


def test_breakdowns_and_events(hand_fleet):
    assert series("instances_by_version", "2.0") == days("04-02", "04-04", 1)
    assert series("instances_by_version", "2.4") == {
        **days("04-01", "04-09", 1),
        **days("04-05", "04-09", 2),
        **days("04-10", "04-11", 1),
        "04-12": 2,
        **days("04-13", "04-19", 1),
    }
    assert series("instances_by_country", "UG") == days("04-02", "04-12", 1)
    assert series("instances_by_country", "TZ") == {}
    assert series("new_instances") == {"04-01": 1, "04-02": 1}
    assert series("reports") == {"04-01": 1, "04-02": 2, "04-05": 1, "04-12": 1}


def test_a_late_backfill_moves_first_seen_and_fills_the_gap(hand_fleet):
    assert send(report(instance="A", fmt="2", day="2024-03-30", users=4, runs=3, steps=3), "KE") == "created"
    assert send(report(instance="A", fmt="2", day="2024-04-10", users=9, runs=1, steps=1), "KE") == "created"
    assert series("new_instances") == {"03-30": 1, "04-02": 1}
    assert series("runs")["03-30"] == 3 and series("runs")["04-10"] == 1
    assert series("users")["04-10"] == 9 + 4 and series("users")["04-11"] == 9 + 4
    assert series("instances")["04-11"] == 2


def test_removing_and_adding_an_instance_is_exact(hand_fleet):
    before = aggregates.table()
    a = Instance.objects.get(hashed_uuid=instance_hash("A"))
    aggregates.remove_instance(a)
    assert series("runs") == {"04-05": 7}
    assert series("new_instances") == {"04-02": 1}
    aggregates.add_instance(a)
    assert aggregates.table() == before


def test_rebuild_gives_the_same_table(hand_fleet):
    incremental = aggregates.table()
    aggregates.rebuild()
    assert aggregates.table() == incremental


def random_fleet(rng: random.Random, instances: int, span: int):
    """Reports of a random fleet, in a random order: gaps, backfills, duplicates and conflicts."""
    start = dt.date(2024, 3, 1)
    bodies = []
    for n in range(instances):
        days_reported = sorted(rng.sample(range(span), rng.randint(1, span // 2)))
        fmt_switch = rng.choice([0, 3, span])
        for d in days_reported:
            fmt = "1" if d < fmt_switch and rng.random() < 0.3 else rng.choice(["2", "3"])
            data = report(
                instance=f"r{n}",
                fmt=fmt,
                day=start + dt.timedelta(days=d),
                users=rng.randint(0, 50),
                active=rng.randint(0, 20),
                monthly=rng.randint(0, 10),
                projects=rng.randint(0, 3),
                workflows=rng.randint(0, 3),
                runs=rng.randint(0, 100),
                steps=rng.randint(0, 300),
                version=rng.choice(["v2.4.2:match:f1bd9ae", "v2.5.0:edge:abc", "v1.9.9", "weird"]),
                os=rng.choice(["linux", "Linux", "darwin"]),
            )
            bodies.append((data, rng.choice(["KE", "UG", "", "US"])))
            if rng.random() < 0.1:
                bodies.append((data, ""))  # duplicate
            if rng.random() < 0.05:
                bodies.append((dict(data, projects=[]), ""))  # conflict
    rng.shuffle(bodies)
    return bodies


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_incremental_upkeep_equals_a_full_rebuild_on_random_fleets(seed):
    rng = random.Random(seed)
    for data, country in random_fleet(rng, instances=6, span=40):
        assert send(data, country) in {"created", "duplicate", "conflict"}
        if rng.random() < 0.03:  # moderation in the middle of arrivals
            instance = rng.choice(list(Instance.objects.all()))
            if instance.excluded:
                instance.excluded = False
                instance.save()
                aggregates.add_instance(instance)
            else:
                aggregates.remove_instance(instance)
                instance.excluded = True
                instance.save()
    incremental = aggregates.table()
    assert incremental  # the fleet produced figures
    aggregates.rebuild()
    assert aggregates.table() == incremental


def test_rebuild_command_restores_a_damaged_table(hand_fleet):
    from io import StringIO

    from django.core.management import call_command

    good = aggregates.table()
    DailyCount.objects.filter(stat="runs").update(value=0)
    DailyCount.objects.create(stat="users", subgroup="", day="2030-01-01", value=5)
    out = StringIO()
    call_command("rebuild_aggregates", stdout=out)
    assert aggregates.table() == good
    assert out.getvalue().startswith(f"Rebuilt {len(good)} daily figures")
