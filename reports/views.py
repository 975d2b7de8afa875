"""The public pages and the health check, thin: they read through stats and render templates."""

from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import api


@require_safe
def home(request):
    return render(request, "reports/home.html")


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
