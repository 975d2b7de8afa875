from django.conf import settings
from django.contrib import admin
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from reports import api, views

urlpatterns = [
    # Browsers ask for /favicon.ico whatever the page says.
    path("favicon.ico", views.favicon),
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("about/data", views.about_data, name="about-data"),
    path("privacy", views.privacy, name="privacy"),
    path(".well-known/security.txt", views.security_txt, name="security-txt"),
    # Lightning posts to /api/metrics and follows no redirects: both spellings are served directly.
    path("api/metrics", api.MetricsView.as_view(), name="metrics"),
    path("api/metrics/", api.MetricsView.as_view(schema=None)),
    path("api/stats/", api.StatsIndexView.as_view(), name="stats-index"),
    path("api/stats/headline", api.HeadlineView.as_view(), name="stats-headline"),
    path("api/stats/<str:chart>", api.StatsView.as_view(), name="stats-chart"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", template_name="reports/api_docs.html"),
        name="api-docs",
    ),
    # Anything else under /api/ is a JSON 404, never an HTML page.
    re_path(r"^api/", views.not_found),
    path(settings.ADMIN_PATH, admin.site.urls),
]

handler404 = "reports.views.not_found"
handler500 = "reports.views.server_error"
