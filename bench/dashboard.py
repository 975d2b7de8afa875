"""Benchmark 2: server time of every page and stats endpoint, cache off and on, at two fleet sizes.

    scripts/pg.sh .venv/bin/python bench/dashboard.py [--sizes 100x365,1000x365] [--repeat 15]

For each size it creates a database on the PostgreSQL server named by DATABASE_URL and seeds the
demo fleet (manage.py seed_demo); then it times each URL in-process with Django's test client:
"cold" resets the figures' cache generation before every request (the cost with no cache), "warm"
repeats the request (the cost with the cache). The sizes are measured in alternating rounds
(--rounds, default 4) and each figure is the median of the rounds' medians, so that a machine whose
load drifts during the run does not pass for an effect of the data. The goal: 10x the data costs at
most 1.2x the cold time.
Results go to stdout as a Markdown table and to bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
URLS = [
    "/",
    "/?range=1y&granularity=week",
    "/?range=all&granularity=month",
    "/about/data",
    "/api/stats/headline",
    *(f"/api/stats/{chart}?range=90d" for chart in ("runs", "instances", "users", "projects", "versions")),
    "/api/stats/os",
    "/api/stats/countries",
    "/api/stats/runs?range=1y&granularity=week&format=csv",
]


def database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_database(base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(database_url(base, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def environment(url: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "testserver,127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "STATS_THROTTLE_RATE": "100000000/minute",
    }


def seed(url: str, instances: int, days: int) -> float:
    env = environment(url)
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True, cwd=ROOT)
    # Production settings serve hashed static names: they need collected files, as in production.
    subprocess.run([*manage, "collectstatic", "--noinput", "-v0"], env=env, check=True, cwd=ROOT)
    started = time.monotonic()
    subprocess.run(
        [*manage, "seed_demo", "--instances", str(instances), "--days", str(days), "--seed", "1"],
        env=env,
        check=True,
        cwd=ROOT,
    )
    return time.monotonic() - started


def measure(repeat: int) -> dict:
    """Runs inside a process whose settings point at one seeded database."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "impact.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()
    from django.db import connection
    from django.test import Client

    from reports import cache
    from reports.models import Submission, Workflow

    client = Client()
    out = {"submissions": Submission.objects.count(), "workflows": Workflow.objects.count(), "urls": {}}
    for url in URLS:
        client.get(url)  # warm up the process (imports, templates)
        cold, warm = [], []
        for _ in range(repeat):
            cache.figures_changed()
            started = time.perf_counter()
            response = client.get(url)
            cold.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
            started = time.perf_counter()
            client.get(url)
            warm.append((time.perf_counter() - started) * 1000)
        out["urls"][url] = {
            "cold_ms": round(statistics.median(cold), 2),
            "warm_ms": round(statistics.median(warm), 2),
            "cold_p90_ms": round(sorted(cold)[int(0.9 * (len(cold) - 1))], 2),
        }
    connection.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100x365,1000x365")
    parser.add_argument("--repeat", type=int, default=15, help="requests per URL per round")
    parser.add_argument("--rounds", type=int, default=4, help="alternating measurement rounds per size")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.repeat)))
        return

    base = os.environ["DATABASE_URL"]
    results, urls = {}, {}
    for size in args.sizes.split(","):
        instances, days = (int(x) for x in size.split("x"))
        name = f"bench_dashboard_{instances}x{days}"
        create_database(base, name)
        urls[size] = database_url(base, name)
        seconds = seed(urls[size], instances, days)
        print(f"seeded {size} in {seconds:.1f} s", file=sys.stderr)
        results[size] = {"seed_seconds": round(seconds, 1), "rounds": []}
    for _ in range(args.rounds):
        for size, url in urls.items():
            run = subprocess.run(
                [sys.executable, __file__, "--measure", "--repeat", str(args.repeat)],
                env=environment(url),
                check=True,
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            results[size]["rounds"].append(json.loads(run.stdout.strip().splitlines()[-1]))
    for result in results.values():
        rounds = result["rounds"]
        result.update(submissions=rounds[0]["submissions"], workflows=rounds[0]["workflows"])
        result["urls"] = {
            url: {
                key: round(statistics.median(r["urls"][url][key] for r in rounds), 2)
                for key in ("cold_ms", "warm_ms", "cold_p90_ms")
            }
            for url in URLS
        }

    sizes = list(results)
    print(
        f"| URL | {' | '.join(f'{s} cold ms' for s in sizes)} | {' | '.join(f'{s} warm ms' for s in sizes)} |"
        + (" ratio (cold) |" if len(sizes) == 2 else "")
    )
    print("|---" * (1 + 2 * len(sizes) + (1 if len(sizes) == 2 else 0)) + "|")
    for url in URLS:
        cold = [results[s]["urls"][url]["cold_ms"] for s in sizes]
        warm = [results[s]["urls"][url]["warm_ms"] for s in sizes]
        ratio = f" {cold[1] / cold[0]:.2f} |" if len(sizes) == 2 else ""
        print(f"| `{url}` | {' | '.join(map(str, cold))} | {' | '.join(map(str, warm))} |{ratio}")
    for s in sizes:
        print(
            f"\n{s}: {results[s]['submissions']:,} submissions, {results[s]['workflows']:,} workflow rows, "
            f"seeded in {results[s]['seed_seconds']} s"
        )
    out = ROOT / "bench" / "results" / "dashboard.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
