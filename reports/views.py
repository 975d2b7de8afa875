"""The public pages and the health check, thin: they read through stats, draw through charts."""

import datetime as dt
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_safe

from . import api, cache, charts, formats, stats

SECTIONS = (
    ("Trends", ("runs", "instances", "users", "projects")),
    ("Breakdowns", ("versions", "os", "countries")),
)
DESCRIPTIONS = {
    "runs": "Runs and steps finished per period (bars) and runs added up since the first report (line).",
    "instances": "Instances counted by the 7-day rule at the end of each period, and instances seen for "
    "the first time in it.",
    "users": "Users, active users (90 days) and monthly active users (30 days), at the end of each period.",
    "projects": "Projects, workflows and jobs, at the end of each period.",
    "versions": "Instances by Lightning version (major.minor) at the end of each period, stacked.",
    "os": "Instances by operating system on the last day of the range.",
    "countries": "Instances by country on the last day of the range.",
}


@gzip_page  # the page embeds every chart's data: ~140 KB of JSON that compresses 8-fold
@require_safe
def home(request):
    """The dashboard. HEAD (Lightning's reachability check) answers at once, without a query."""
    if request.method == "HEAD":
        return HttpResponse(content_type="text/html; charset=utf-8")
    try:
        query, errors = stats.parse_query(request.GET), {}
    except stats.InvalidQuery as exc:
        query, errors = stats.parse_query({}), exc.errors
    if errors:
        return HttpResponse(_render_dashboard(request, query, errors), status=400)
    page = cache.cached(
        f"page:dashboard:{query.key}:{stats.today()}", lambda: _render_dashboard(request, query)
    )
    return HttpResponse(page)


def _render_dashboard(request, query: stats.Query, errors: dict | None = None) -> str:
    context = {
        "query": query,
        "errors": errors or {},
        "headline": _headline(stats.cached_headline()),
        "sections": [(title, [_chart(name, query) for name in names]) for title, names in SECTIONS],
        "definitions": {k: v.format(k=stats.min_instances()) for k, v in stats.DEFINITIONS.items()},
        "ranges": [
            ("30d", "30 days"),
            ("90d", "90 days"),
            ("1y", "1 year"),
            ("all", "All"),
            ("custom", "Custom"),
        ],
        "granularities": [("day", "Day"), ("week", "Week"), ("month", "Month")],
    }
    return render_to_string("reports/dashboard.html", context, request=None)


def _headline(table: stats.Table) -> dict:
    return {key: {"label": label, "value": value} for key, label, value in table.rows} | {
        "notes": table.notes
    }


def _chart(name: str, query: stats.Query) -> dict:
    table = stats.chart(name, query)
    link = reverse("stats-chart", args=[name])
    return {
        "name": name,
        "script_id": f"figure-{name}",
        "title": table.title,
        "description": DESCRIPTIONS[name],
        "table": table,
        "figure": charts.figure(table),
        "summary": _summary(table),
        "csv": f"{link}?{urlencode({**query.params(), 'format': 'csv'})}",
        "json": f"{link}?{urlencode(query.params())}",
    }


def _summary(table: stats.Table) -> str:
    """One sentence saying what the chart shows, for readers who cannot see it."""
    if not table.rows:
        return "No data in this range."
    if table.columns[0] == "period":
        first, last = table.rows[0][0], table.rows[-1][0]
        values = [c for c in table.columns if c not in ("period", "incomplete")]
        parts = []
        for column in values[:3]:
            series = table.column(column)
            parts.append(
                f"{column.replace('_', ' ')} from {series[0]:,} to {series[-1]:,} (peak {max(series):,})"
            )
        return f"From {first} to {last}: " + "; ".join(parts) + "."
    top = ", ".join(
        f"{row[2] if table.name == 'countries' else row[0]} {row[-1]:,}" for row in table.rows[:5]
    )
    return f"{len(table.rows)} groups; largest: {top}."


@require_safe
def favicon(request):
    # Resolved per request: the hashed static name exists only once collectstatic has run.
    return HttpResponsePermanentRedirect(static("favicon.svg"))


@never_cache
@require_safe
def healthz(request):
    """200 when the app can reach its database, 503 when it cannot (load balancers and operators)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "unavailable", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return api.json_not_found(request)
    return render(request, "404.html", status=404)


def server_error(request):
    if request.path.startswith("/api/"):
        return api.json_server_error(request)
    return render(request, "500.html", status=500)


EXAMPLE_REPORT = Path(__file__).parent / "data" / "example_report.json"


@require_safe
def about_data(request):
    """Every field of every report format, what the server keeps of it, and what it never keeps."""
    sections = [
        {
            "name": name,
            "path": path,
            "fields": [
                {"field": f, "presence": [f.presence(fmt) for fmt in formats.FORMATS]} for f in fields
            ],
        }
        for name, path, fields in formats.SECTIONS
    ]
    context = {
        "sections": sections,
        "formats": formats.FORMATS,
        "example": EXAMPLE_REPORT.read_text(),
        "definitions": {k: v.format(k=stats.min_instances()) for k, v in stats.DEFINITIONS.items()},
        "max_bytes": settings.REPORT_MAX_BYTES,
        "review_days": settings.REVIEW_RETENTION_DAYS,
        "raw_days": settings.RAW_REPORT_RETENTION_DAYS,
        "privacy_contact": settings.PRIVACY_CONTACT,
    }
    return render(request, "reports/about_data.html", context)


@require_safe
def privacy(request):
    context = {
        "operator": settings.OPERATOR_NAME,
        "privacy_contact": settings.PRIVACY_CONTACT,
        "review_days": settings.REVIEW_RETENTION_DAYS,
        "raw_days": settings.RAW_REPORT_RETENTION_DAYS,
        "k": stats.min_instances(),
    }
    return render(request, "reports/privacy.html", context)


@require_safe
def security_txt(request):
    """RFC 9116: where to report a vulnerability. Expires a year from now, as the RFC asks."""
    expires = (timezone.now() + dt.timedelta(days=365)).replace(microsecond=0).isoformat()
    lines = [
        f"Contact: {settings.SECURITY_CONTACT}",
        f"Expires: {expires}",
        "Preferred-Languages: en",
        f"Canonical: {request.build_absolute_uri('/.well-known/security.txt')}",
        f"Policy: {request.build_absolute_uri(reverse('privacy'))}",
    ]
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; charset=utf-8")
