"""A small fleet worked out by hand, shared by the aggregate and stats tests.

A: format 2 on 04-01 and 04-02 (and a duplicate), silent until 04-12 (KE).
B: format 1 generated 04-03 (so dated 04-02, runs never counted), format 3 on 04-05 (UG).
C: excluded before it ever reports (TZ).
"""

import datetime as dt
import json

import pytest

from reports import ingest
from reports.models import Instance
from tests.factories import instance_hash, report

NOW = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def send(data, country=""):
    return ingest.receive(body=json.dumps(data).encode(), country=country, now=NOW).status


@pytest.fixture
def hand_fleet():
    # A: format 2 on 04-01 and 04-02, silent until 04-12.
    assert (
        send(report(instance="A", fmt="2", day="2024-04-01", users=5, runs=10, steps=11), "KE") == "created"
    )
    assert (
        send(report(instance="A", fmt="2", day="2024-04-02", users=6, runs=20, steps=21), "KE") == "created"
    )
    assert (
        send(report(instance="A", fmt="2", day="2024-04-02", users=6, runs=20, steps=21), "KE") == "duplicate"
    )
    assert send(report(instance="A", fmt="2", day="2024-04-12", users=7, runs=5, steps=6), "KE") == "created"
    # B: a format 1 report (all-time totals) generated on 04-03, so dated 04-02; then format 3 on 04-05.
    b1 = report(instance="B", fmt="1", day="2024-04-02", users=3, runs=1000, steps=5000, version="v2.0.1")
    assert send(b1, "UG") == "created"
    b3 = report(
        instance="B", fmt="3", day="2024-04-05", users=4, monthly=2, runs=7, steps=8, version="v2.4.0"
    )
    assert send(b3, "UG") == "created"
    # C is excluded before it reports: it never counts.
    Instance.objects.create(hashed_uuid=instance_hash("C"), excluded=True)
    assert send(report(instance="C", day="2024-04-03", users=1000, runs=99999), "TZ") == "created"
