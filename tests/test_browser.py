"""The dashboard in a real browser: Debian's chromium driven by Playwright against a live server."""

import datetime as dt
import json
import os
import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

from reports import ingest, stats
from tests.factories import report

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Chromium's own background traffic would try to leave this machine; these flags keep it home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture
def seeded(fresh_cache):
    today = dt.datetime.now(dt.UTC).date()
    countries = ["KE", "KE", "KE", "UG", "UG", "UG", "US"]
    for n, country in enumerate(countries):
        for back in range(120, -1, -3 if n % 2 else -1):
            day = today - dt.timedelta(days=back)
            data = report(
                instance=f"b{n}",
                day=day,
                users=10 + n,
                runs=back % 7 + n,
                steps=20,
                projects=1 + n % 2,
                version=f"v2.{4 + (120 - back) // 40}.0:match:abc1234",
                os="linux" if n < 5 else "darwin",
            )
            ingest.receive(body=json.dumps(data).encode(), country=country)


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API keeps an event loop running in this thread, which Django takes for async
    # code; the tests' own database calls are plain synchronous ones.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield b
            b.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.problems = []
    page.hosts = set()
    page.on(
        "console", lambda m: m.type in ("error", "warning") and page.problems.append(f"{m.type}: {m.text}")
    )
    page.on("pageerror", lambda e: page.problems.append(f"pageerror: {e}"))
    page.on("request", lambda r: page.hosts.add(urlsplit(r.url).netloc))
    yield page
    context.close()


def wait_for_charts(page):
    # A function, not an expression: Playwright evals expressions in the page, which the CSP forbids.
    page.wait_for_function(
        f"() => document.querySelectorAll('figure.chart.drawn').length === {len(stats.CHARTS)}"
    )
    for name in stats.CHARTS:
        assert page.locator(f"#chart-{name} .js-plotly-plot svg.main-svg").count() >= 1, name


def test_dashboard_draws_every_chart_with_the_right_numbers(page, live_server, seeded):
    page.goto(live_server.url + "/")
    wait_for_charts(page)
    for key, _, value in stats.headline().rows:
        assert page.locator(f'dd[data-figure="{key}"]').inner_text().replace(",", "") == str(value), key
    # The map draws countries once plotly.js has fetched the locally served geometry.
    page.wait_for_selector("#chart-countries path.choroplethlocation")
    assert page.locator("#chart-countries path.choroplethlocation").count() == 2  # KE, UG; US is "Other"
    assert page.problems == []
    assert page.hosts == {urlsplit(live_server.url).netloc}


def test_changing_range_and_granularity_redraws(page, live_server, seeded):
    page.goto(live_server.url + "/")
    wait_for_charts(page)
    page.get_by_label("30 days").check()
    page.wait_for_url(re.compile(r"range=30d"))
    wait_for_charts(page)
    assert "Showing" in page.locator(".range-shown").inner_text()
    bars_by_day = page.locator("#chart-runs .point").count()
    page.get_by_label("Week").check()
    page.wait_for_url(re.compile(r"granularity=week"))
    wait_for_charts(page)
    assert page.locator("#chart-runs .point").count() < bars_by_day
    rows = page.locator("#chart-runs tbody tr").count()
    assert rows == len(stats.periods(stats.parse_query({"range": "30d", "granularity": "week"})))
    assert page.problems == []
    assert page.hosts == {urlsplit(live_server.url).netloc}


def test_custom_range_from_the_form(page, live_server, seeded):
    page.goto(live_server.url + "/")
    wait_for_charts(page)
    page.get_by_label("Custom").check()
    start = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=10)).isoformat()
    page.fill("input[name=start]", start)
    page.fill("input[name=end]", dt.datetime.now(dt.UTC).date().isoformat())
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r"range=custom"))
    wait_for_charts(page)
    assert page.locator("#chart-runs tbody tr").count() == 11
    assert page.problems == []


def test_phone_width_has_no_horizontal_scroll(browser, live_server, seeded):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    page = context.new_page()
    page.goto(live_server.url + "/")
    wait_for_charts(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()


def test_api_docs_and_about_page_load_from_this_server_only(page, live_server, fresh_cache):
    page.goto(live_server.url + "/api/docs/")
    page.wait_for_selector("#swagger-ui .opblock-summary-path")
    assert "/api/metrics" in page.locator("#swagger-ui").inner_text()
    page.goto(live_server.url + "/about/data")
    assert page.locator('table.fields tr[data-field="no_of_runs"]').count() == 1
    assert page.problems == []  # a Content-Security-Policy violation would be a console error
    assert page.hosts == {urlsplit(live_server.url).netloc}
