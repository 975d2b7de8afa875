"""Headers, the admin login limit, and no client address in any log line."""

import importlib.util
import logging
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from tests.factories import report

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


def test_pages_carry_a_strict_content_security_policy(client):
    response = client.get("/")
    policy = dict(p.strip().split(" ", 1) for p in response["Content-Security-Policy"].split(";"))
    assert policy["script-src"] == "'self'"
    assert policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-eval" not in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


@override_settings(SECURE_HSTS_SECONDS=31536000, SECURE_HSTS_PRELOAD=True)
def test_hsts_on_https(client):
    assert client.get("/", secure=True)["Strict-Transport-Security"] == (
        "max-age=31536000; includeSubDomains; preload"
    )


@override_settings(SECURE_SSL_REDIRECT=True)
def test_https_redirect_spares_the_paths_lightning_uses(client, post_report):
    assert client.get("/about/data").status_code == 301
    assert client.head("/").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert post_report(report()).status_code == 201


def test_no_page_needs_another_host(client):
    for path in ["/", "/about/data", "/privacy", "/api/docs/"]:
        page = client.get(path).content.decode()
        for attribute in ("src=", "href="):
            for value in page.split(attribute)[1:]:
                url = value[1:].split(value[0], 1)[0]
                assert not url.startswith(("http:", "https:", "//")) or "example.org" in url, (path, url)


@pytest.fixture
def admin_user():
    return User.objects.create_superuser("boss", "boss@example.org", "right-password-123")


def login(client, password, username="boss", address="198.51.100.7"):
    return client.post(
        "/admin/login/", {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=address
    )


@override_settings(LOGIN_FAILURES_PER_CLIENT=3, LOGIN_FAILURES_PER_USERNAME=100)
def test_admin_login_is_rate_limited_per_client(client, admin_user):
    for _ in range(3):
        assert login(client, "wrong").status_code == 200  # the form again, with an error
    blocked = login(client, "right-password-123")
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    assert b"Too many failed sign-in attempts" in blocked.content
    # another client is not held up
    assert login(client, "right-password-123", address="203.0.113.9").status_code == 302


@override_settings(LOGIN_FAILURES_PER_CLIENT=100, LOGIN_FAILURES_PER_USERNAME=4)
def test_admin_login_is_rate_limited_per_username(client, admin_user):
    for n in range(4):
        login(client, "wrong", address=f"203.0.113.{n}")
    assert login(client, "right-password-123", address="203.0.113.99").status_code == 429
    assert login(client, "x", username="someone-else", address="203.0.113.99").status_code == 200


def test_no_client_address_in_any_log_line(client, post_report, caplog):
    address = "198.51.100.23"
    with caplog.at_level(logging.DEBUG):
        post_report(report(), REMOTE_ADDR=address)
        post_report(b"{bad json", REMOTE_ADDR=address)
        post_report(dict(report(), version="7"), REMOTE_ADDR=address)
        client.get("/no-such-page", REMOTE_ADDR=address)
        client.get("/api/nothing", REMOTE_ADDR=address)
    assert caplog.records  # requests were logged (e.g. the 404s) ...
    for record in caplog.records:  # ... and no record carries the address, in its text or its args
        assert address not in record.getMessage()
        assert address not in str(record.__dict__.get("args"))


def test_production_access_log_has_no_client_address():
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "gunicorn.conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    assert "%(h)s" not in conf.access_log_format and "{x-forwarded-for}" not in conf.access_log_format.lower()
    assert conf.worker_class == "sync" and conf.timeout <= 60


def test_reported_html_shows_as_text_in_charts_and_admin(client, admin_user, settings):
    from reports import charts, stats
    from tests.fleet import send

    settings.STATS_MIN_INSTANCES = 1
    evil = "<img src=x onerror=alert(1)>"
    assert send(report(instance="evil", day="2024-05-30", os=evil, version=evil), "KE") == "created"
    table = stats.operating_systems(
        stats.parse_query({"range": "custom", "start": "2024-05-30", "end": "2024-05-30"})
    )
    labels = charts.figure(table)["data"][0]["y"]
    assert evil.lower() not in labels and "&lt;img src=x onerror=alert(1)&gt;" in labels
    client.force_login(admin_user)
    for path in ["/admin/reports/instance/", "/admin/reports/submission/"]:
        page = client.get(path).content.decode()
        assert evil not in page and "&lt;img src=x onerror=alert(1)&gt;" in page, path


def test_the_admin_path_is_configurable():
    import os
    import subprocess
    import sys

    code = "from django.urls import reverse; print(reverse('admin:index'), reverse('admin:login'))"
    env = {**os.environ, "ADMIN_PATH": "/backstage/", "DJANGO_SETTINGS_MODULE": "tests.settings"}
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip().splitlines()[-1].split() == ["/backstage/", "/backstage/login/"]
