"""The ingestion endpoint (POST /api/metrics) and the API's error handling, kept thin.

Lightning re-sends, every minute and forever, anything not answered 2xx; so what is well-formed JSON
is always answered 2xx (created, duplicate, conflict, rejected) and kept, and every other answer is
JSON with a status word and a message: never an HTML page, never a 500.
"""

from __future__ import annotations

import csv
import io
import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.http import Http404, JsonResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, renderers, status
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from . import geo, ingest, stats
from .serializers import MetricsResponseSerializer, ProblemSerializer, ReportSerializer, TableSerializer

logger = logging.getLogger(__name__)

RETRY_AFTER_UNAVAILABLE = 60


class BodyTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self):
        super().__init__(f"the body is larger than the limit of {settings.REPORT_MAX_BYTES} bytes")


class RawJSONParser(BaseParser):
    """Hands the view the body's bytes, so that it is stored exactly as received."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.REPORT_MAX_BYTES
        request = parser_context["request"] if parser_context else None
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0) if request else 0
        except ValueError:
            declared = 0
        if declared > limit:
            raise BodyTooLarge()
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise BodyTooLarge()
        if len(body) < declared:
            # The connection ended before the body did (the server reads what came): even when the
            # part that arrived parses, it is not the report that was sent, so none of it is kept.
            raise exceptions.ParseError(f"the body ended after {len(body)} of the {declared} bytes declared")
        return body


class ClientThrottle(SimpleRateThrottle):
    """Rate per client, keyed by an HMAC of the address: counters live in the shared cache."""

    def get_rate(self):
        # Read at request time (not import time) so that a settings change takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": geo.client_token(request.META)}


class ReportThrottle(ClientThrottle):
    scope = "reports"


_WORDS = {
    400: "malformed",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    429: "throttled",
    503: "unavailable",
}


def problem(status_code: int, message: str, **extra) -> dict:
    return {"status": _WORDS.get(status_code, "error"), "message": message, **extra}


def exception_handler(exc, context):
    """Every error the API raises becomes JSON with a status word; the database going away is a 503."""
    headers = {}
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(f"nothing at {context['request'].get_full_path()}")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        code = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(int(exc.wait) + 1)
        if isinstance(exc, exceptions.MethodNotAllowed):
            view = context.get("view")
            if view is not None:
                headers["Allow"] = ", ".join(view.allowed_methods)
        return Response(problem(code, str(detail)), status=code, headers=headers)
    if isinstance(exc, DatabaseError):
        logger.warning("database unavailable: %s", type(exc).__name__)
        message = "the database is unavailable; nothing was stored, please retry later"
    else:
        logger.exception("unexpected error in the API")
        message = "a temporary problem stopped this request; nothing was stored, please retry later"
    return Response(problem(503, message), status=503, headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)})


_MESSAGES = {
    ingest.CREATED: "the report was stored",
    ingest.DUPLICATE: "this report was already stored; nothing changed",
    ingest.CONFLICT: "a different report for this instance and date is already stored; "
    "this one was kept for review",
    ingest.REJECTED: "the report is not valid; it was kept for review",
}
_CODES = {ingest.CREATED: 201, ingest.DUPLICATE: 200, ingest.CONFLICT: 200, ingest.REJECTED: 202}


class MetricsView(APIView):
    """Receive one usage report from a Lightning instance."""

    authentication_classes = ()
    permission_classes = ()
    parser_classes = (RawJSONParser,)
    throttle_classes = (ReportThrottle,)

    @extend_schema(
        operation_id="submit_report",
        request=ReportSerializer,
        responses={
            201: OpenApiResponse(MetricsResponseSerializer, description="Stored."),
            200: OpenApiResponse(
                MetricsResponseSerializer, description="Duplicate, or conflict (kept for review)."
            ),
            202: OpenApiResponse(
                MetricsResponseSerializer, description="Not a valid report; kept for review."
            ),
            400: OpenApiResponse(ProblemSerializer, description="Not a JSON object."),
            413: OpenApiResponse(ProblemSerializer, description="Body over the size limit."),
            415: OpenApiResponse(ProblemSerializer, description="Not application/json."),
            429: OpenApiResponse(ProblemSerializer, description="Too many requests; see Retry-After."),
            503: OpenApiResponse(ProblemSerializer, description="Temporarily unavailable; retry."),
        },
        auth=[],
    )
    def post(self, request):
        body = request.data if isinstance(request.data, bytes) else b""
        try:
            outcome = ingest.receive(body=body, country=geo.country_of(request.META))
        except ingest.MalformedBody as exc:
            return Response(problem(400, str(exc)), status=400)
        payload = {"status": outcome.status, "message": _MESSAGES[outcome.status]}
        if outcome.submission is not None:
            payload["report_date"] = outcome.submission.report_date.isoformat()
        if outcome.errors:
            payload["errors"] = outcome.errors
        return Response(payload, status=_CODES[outcome.status])


def json_not_found(request, exception=None):
    return JsonResponse(problem(404, f"nothing at {request.path}"), status=404)


def json_server_error(request):
    return JsonResponse(
        problem(503, "a temporary problem stopped this request; please retry later"), status=503
    )


# --- The public stats API: the same tables the dashboard draws, as JSON or CSV.


class StatsThrottle(ClientThrottle):
    scope = "stats"


class CSVRenderer(renderers.BaseRenderer):
    """A chart's table as CSV. Cells that a spreadsheet would run as a formula are quoted as text."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if isinstance(data, dict) and "columns" in data:
            writer.writerow(data["columns"])
            writer.writerows([[_csv_cell(v) for v in row] for row in data["rows"]])
        else:  # an error: status and message
            writer.writerows([[_csv_cell(k), _csv_cell(v)] for k, v in (data or {}).items()])
        return out.getvalue().encode()


def _csv_cell(value):
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


_QUERY_PARAMETERS = [
    OpenApiParameter("range", str, enum=list(stats.RANGE_CHOICES), description="Default 90d."),
    OpenApiParameter("granularity", str, enum=list(stats.GRANULARITIES), description="Default day."),
    OpenApiParameter("start", OpenApiTypes.DATE, description="First day of a custom range."),
    OpenApiParameter("end", OpenApiTypes.DATE, description="Last day of a custom range."),
    OpenApiParameter("format", str, enum=["json", "csv"], description="Default json."),
]


_STATS_PROBLEMS = {
    404: OpenApiResponse(ProblemSerializer, description="No such chart, or a format other than json or csv."),
    406: OpenApiResponse(ProblemSerializer, description="The Accept header asks for neither JSON nor CSV."),
    429: OpenApiResponse(ProblemSerializer, description="Too many requests; see Retry-After."),
    503: OpenApiResponse(ProblemSerializer, description="Temporarily unavailable; retry."),
}


class StatsView(APIView):
    """One chart's figures: the exact table the dashboard draws."""

    authentication_classes = ()
    permission_classes = ()
    renderer_classes = (renderers.JSONRenderer, CSVRenderer)
    throttle_classes = (StatsThrottle,)

    @extend_schema(
        operation_id="chart_figures",
        parameters=[
            OpenApiParameter("chart", str, OpenApiParameter.PATH, enum=list(stats.CHARTS)),
            *_QUERY_PARAMETERS,
        ],
        responses={200: TableSerializer, **_STATS_PROBLEMS, 400: ProblemSerializer},
        auth=[],
    )
    def get(self, request, chart):
        if chart not in stats.CHARTS:
            return Response(problem(404, f"no chart named {chart!r}; see /api/stats/"), status=404)
        try:
            query = stats.parse_query(request.query_params)
        except stats.InvalidQuery as exc:
            return Response(problem(400, str(exc), errors=exc.errors), status=400)
        table = stats.chart(chart, query)
        return Response(table.as_dict(query), headers=_download_headers(request, f"{chart}-{query.key}"))


class HeadlineView(APIView):
    """The headline figures shown at the top of the dashboard."""

    authentication_classes = ()
    permission_classes = ()
    renderer_classes = (renderers.JSONRenderer, CSVRenderer)
    throttle_classes = (StatsThrottle,)

    @extend_schema(
        operation_id="headline_figures",
        responses={200: TableSerializer, **_STATS_PROBLEMS},
        auth=[],
        parameters=[_QUERY_PARAMETERS[-1]],
    )
    def get(self, request):
        return Response(stats.cached_headline().as_dict(), headers=_download_headers(request, "headline"))


class StatsIndexView(APIView):
    """What the stats API offers."""

    authentication_classes = ()
    permission_classes = ()
    throttle_classes = (StatsThrottle,)

    @extend_schema(
        operation_id="stats_index", responses={200: OpenApiTypes.OBJECT, **_STATS_PROBLEMS}, auth=[]
    )
    def get(self, request):
        return Response(
            {
                "headline": request.build_absolute_uri("/api/stats/headline"),
                "charts": {name: request.build_absolute_uri(f"/api/stats/{name}") for name in stats.CHARTS},
                "parameters": {
                    "range": list(stats.RANGE_CHOICES),
                    "granularity": list(stats.GRANULARITIES),
                    "start, end": "YYYY-MM-DD, for range=custom",
                    "format": ["json", "csv"],
                },
                "definitions": {k: v.format(k=stats.min_instances()) for k, v in stats.DEFINITIONS.items()},
            }
        )


def _download_headers(request, name: str) -> dict:
    if request.accepted_renderer.format == "csv":
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        return {"Content-Disposition": f'attachment; filename="impact-{safe}.csv"'}
    return {}
