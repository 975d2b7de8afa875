"""Benchmark 3: what the dashboard costs a visitor in Chromium: bytes transferred and time until
every chart has drawn, cold (empty browser cache) and warm (a second visit).

    scripts/pg.sh .venv/bin/python bench/browser.py [--size 100x365] [--repeat 5]

It seeds a database on the PostgreSQL server named by DATABASE_URL, serves it with the production
command's server (gunicorn + whitenoise, DEBUG off) on 127.0.0.1, and drives Debian's chromium
through Playwright. Results go to stdout and bench/results/browser.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard import ROOT, create_database, database_url, environment, seed

CHARTS = 7
PAGES = ["/", "/?range=1y&granularity=week"]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]

# Runs in the page: bytes over the wire for the document and everything it loaded.
TRANSFERRED = """() => performance.getEntriesByType('navigation')
    .concat(performance.getEntriesByType('resource'))
    .reduce((sum, e) => sum + (e.transferSize || 0), 0)"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**environment(url), "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "ACCESS_LOG": "/dev/null"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "impact.wsgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return server, base
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("gunicorn did not start")


def visit(page, url: str) -> tuple[float, int]:
    page.goto(url)
    # A function, not an expression: Playwright evals expressions in the page, which the CSP forbids.
    page.wait_for_function(f"() => document.querySelectorAll('figure.chart.drawn').length === {CHARTS}")
    page.wait_for_selector("#chart-countries path.choroplethlocation")
    drawn_ms = page.evaluate("() => performance.now()")
    return drawn_ms, page.evaluate(TRANSFERRED)


def measure(base: str, repeat: int) -> dict:
    from playwright.sync_api import sync_playwright

    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"), args=CHROMIUM_ARGS
        )
        for path in PAGES:
            cold, warm = [], []
            for _ in range(repeat):
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                cold.append(visit(page, base + path))
                warm.append(visit(page, base + path))
                context.close()
            results[path] = {
                "cold_ms": round(statistics.median(t for t, _ in cold)),
                "cold_bytes": int(statistics.median(b for _, b in cold)),
                "warm_ms": round(statistics.median(t for t, _ in warm)),
                "warm_bytes": int(statistics.median(b for _, b in warm)),
            }
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="100x365")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    instances, days = (int(x) for x in args.size.split("x"))
    name = f"bench_browser_{instances}x{days}"
    create_database(os.environ["DATABASE_URL"], name)
    url = database_url(os.environ["DATABASE_URL"], name)
    seed(url, instances, days)
    server, base = serve(url)
    try:
        results = measure(base, args.repeat)
    finally:
        server.terminate()
        server.wait(10)
    print("| page | cold: time to all charts drawn | cold: bytes | warm: time | warm: bytes |")
    print("|---|---|---|---|---|")
    for path, r in results.items():
        print(
            f"| `{path}` | {r['cold_ms']} ms | {r['cold_bytes'] / 1024:,.0f} KiB | {r['warm_ms']} ms | "
            f"{r['warm_bytes'] / 1024:,.0f} KiB |"
        )
    out = ROOT / "bench" / "results" / "browser.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"size": args.size, "pages": results}, indent=2))


if __name__ == "__main__":
    main()
