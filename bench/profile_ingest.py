"""Where the time of one ingestion request goes, in-process (no network, no gunicorn), on the database
and settings of the environment: run by bench/ingest.py, prints one JSON line.

    DJANGO_SETTINGS_MODULE=bench.settings DATABASE_URL=... python bench/profile_ingest.py TEMPLATE TAG

Each measurement is the median over distinct reports (a new instance and day each time, as in the
load test): the whole request through Django's test client, the no-op endpoint with the same body,
then the parts of ingestion one by one, the statements of one request, and a cProfile of many.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import io
import json
import pstats
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
django.setup()

from django.conf import settings
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reports import ingest
from reports.formats import validate

REPEATS = 40
# Functions whose cumulative time (under cProfile, which inflates Python-heavy parts) is reported.
PARTS = {
    "Django: the whole request": ("django/core/handlers/base.py", "get_response"),
    "api: MetricsView.post": ("reports/api.py", "post"),
    "ingest.receive": ("reports/ingest.py", "receive"),
    "formats.validate": ("reports/formats.py", "validate"),
    "ingest.store (transaction, cache bump on commit)": ("reports/ingest.py", "store"),
    "ingest._locked_instance (upsert, lock)": ("reports/ingest.py", "_locked_instance"),
    "ingest._store_details (projects, workflows)": ("reports/ingest.py", "_store_details"),
    "ingest._update_instance": ("reports/ingest.py", "_update_instance"),
    "aggregates.record_submission": ("reports/aggregates.py", "record_submission"),
    "COMMIT (both)": ("django/db/backends/base/base.py", "commit"),
    "cache.figures_changed (after commit)": ("reports/cache.py", "figures_changed"),
}


def bodies(template: str, tag: str):
    """Distinct reports: instance n % 64 on day n // 64, as bench/report.lua makes them."""
    base = dt.date(2022, 1, 1)
    n = 0
    while True:
        day = base + dt.timedelta(days=n // 64)
        text = (
            template.replace("@@HASH@@", f"{tag}FF{n % 64:08X}" + "0" * 52)
            .replace("@@DATE@@", day.isoformat())
            .replace("@@GENERATED@@", f"{day + dt.timedelta(days=1)}T01:30:00.000000Z")
        )
        yield text.encode()
        n += 1


def median_ms(fn, source, repeats=REPEATS) -> float:
    times = []
    for _ in range(repeats):
        body = next(source)
        t = time.perf_counter()
        fn(body)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    template, tag = Path(sys.argv[1]).read_text(), sys.argv[2]
    source = bodies(template, tag)
    client = Client(HTTP_HOST="127.0.0.1")

    def post(path):
        def send(body):
            response = client.generic("POST", path, body, content_type="application/json")
            assert response.status_code in (201, 202), response.content[:300]

        return send

    for _ in range(5):  # warm up: imports, the connection, prepared caches
        post("/api/metrics")(next(source))
        post("/bench/noop")(next(source))

    ms = {
        "whole request, /api/metrics": median_ms(post("/api/metrics"), source),
        "whole request, /bench/noop (same body)": median_ms(post("/bench/noop"), source),
    }
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "reports": "1000000000/second"}
    with override_settings(REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}):
        ms["whole request, /api/metrics with the throttle on"] = median_ms(post("/api/metrics"), source)
        with CaptureQueriesContext(connection) as throttled:
            post("/api/metrics")(next(source))
        # Read now: the next request through the test client empties the connection's query log.
        statements_with_throttle = len(throttled.captured_queries)

    ms["parse_body (json.loads)"] = median_ms(ingest.parse_body, source)
    ms["formats.validate"] = median_ms(lambda b: validate(json.loads(b)), source)

    def store(body):
        text, data = ingest.parse_body(body)
        report = validate(data)
        t = time.perf_counter()
        outcome = ingest.store(report=report, raw_body=text, data=data, country="KE", now=timezone.now())
        store.times.append(time.perf_counter() - t)
        assert outcome.status == ingest.CREATED

    store.times = []
    median_ms(store, source)
    ms["ingest.store (one transaction, on-commit cache bump included)"] = (
        statistics.median(store.times) * 1000
    )

    with CaptureQueriesContext(connection) as queries:
        post("/api/metrics")(next(source))
        kinds = [_kind(q["sql"]) for q in queries.captured_queries]

    # Wall time of each statement (driver, network, server), summed per request, by kind.
    spent: dict[str, float] = defaultdict(float)

    def timed(execute, sql, params, many, context):
        t = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent[_kind(sql)] += time.perf_counter() - t

    with connection.execute_wrapper(timed):
        ms["a round trip: SELECT 1"] = median_ms(lambda b: _select_1(), source)
        spent.clear()
        whole = median_ms(post("/api/metrics"), source)
    per_statement = {kind: round(total * 1000 / REPEATS, 2) for kind, total in spent.items()}
    ms["all statements through the cursor (BEGIN/COMMIT not included)"] = sum(per_statement.values())
    ms["whole request, /api/metrics (while timing statements)"] = whole

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(REPEATS):
        post("/api/metrics")(next(source))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    by_part = {}
    for (filename, _, name), (_, _, _, cumulative, _) in stats.stats.items():
        for label, (suffix, function) in PARTS.items():
            if filename.endswith(suffix) and name == function:
                by_part[label] = round(cumulative * 1000 / REPEATS, 2)
    by_part = {label: by_part[label] for label in PARTS if label in by_part}
    stats.sort_stats("tottime").print_stats(18)
    top = out.getvalue()
    top = top[top.index("   ncalls") :] if "   ncalls" in top else top
    print(
        json.dumps(
            {
                "repeats": REPEATS,
                "ms": {k: round(v, 2) for k, v in ms.items()},
                "statements": len(kinds),
                "statement_kinds": kinds,
                "statements_with_throttle": statements_with_throttle,
                "ms_by_statement": per_statement,
                "ms_by_part_under_cprofile": by_part,
                "top": top,
            }
        )
    )


def _select_1() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _kind(sql: str) -> str:
    """'SELECT ... FROM "reports_instance" ...' -> 'SELECT reports_instance'."""
    sql = sql.replace('"', "")
    verb = sql.split(None, 1)[0].upper() if sql.strip() else "?"
    m = re.search(r"\b(?:FROM|INTO|UPDATE)\s+([\w.]+)", sql, re.IGNORECASE)
    return f"{verb} {m.group(1)}" if m and verb != "BEGIN" else verb


if __name__ == "__main__":
    main()
