"""Settings, all from the environment (see .env.example for each variable and its default).

The defaults are safe for production (DEBUG off, secure cookies when not in DEBUG); a first run on a
laptop sets DEBUG=true through `make run`.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set SECRET_KEY (a long random string), or DEBUG=true for local use.")
    SECRET_KEY = "insecure-local-development-key-never-use-in-production-0123456789"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "reports.security.ContentSecurityPolicyMiddleware",
    "reports.security.AdminLoginRateLimitMiddleware",
]

ROOT_URLCONF = "impact.urls"
WSGI_APPLICATION = "impact.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL in production, an SQLite file as the embedded default for a first run.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: shared by every process (throttle counters, figures). The database cache needs nothing
# more than the database; point CACHE_URL at Redis or Memcached when one machine is outgrown.
CACHES = {"default": env.cache("CACHE_URL", default="dbcache://impact_cache")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "reports.staticfinders.PlotlyFinder",
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# The admin lives here; a less obvious path keeps password guessers off it.
ADMIN_PATH = env.str("ADMIN_PATH", default="admin/").strip("/") + "/"

# --- Ingestion
# Bodies over this many bytes are answered 413 without being read whole.
REPORT_MAX_BYTES = env.int("REPORT_MAX_BYTES", default=8 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REPORT_MAX_BYTES
# Addresses (or networks) of reverse proxies whose X-Forwarded-For is believed.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# A MaxMind-format (mmdb) country database; the default ships with the project.
GEOIP_DATABASE = env.str("GEOIP_DATABASE", default="") or str(
    BASE_DIR / "reports" / "data" / "geo-whois-asn-country.mmdb"
)

# --- Transparency and retention (see /about/data and `manage.py apply_retention`)
# Who runs this server, and where operators and researchers write (shown on /privacy and in
# /.well-known/security.txt).
OPERATOR_NAME = env.str("OPERATOR_NAME", default="the operators of this Impact Tracker")
PRIVACY_CONTACT = env.str("PRIVACY_CONTACT", default="mailto:privacy@example.org")
SECURITY_CONTACT = env.str("SECURITY_CONTACT", default="mailto:security@example.org")
# Review-queue entries older than this many days are deleted by `apply_retention`.
REVIEW_RETENTION_DAYS = env.int("REVIEW_RETENTION_DAYS", default=90)
# The raw JSON of accepted reports older than this many days is dropped (their figures stay).
# Empty means keep it for ever.
RAW_REPORT_RETENTION_DAYS = env.int("RAW_REPORT_RETENTION_DAYS", default=None)

# --- Public figures
# A country, version or OS bucket with fewer instances than this is shown as "Other".
STATS_MIN_INSTANCES = env.int("STATS_MIN_INSTANCES", default=3)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "reports.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_RATES": {
        # Lightning sends a backfill of up to 10 reports at once, every minute until all are in.
        "reports": env.str("REPORTS_THROTTLE_RATE", default="120/minute"),
        "stats": env.str("STATS_THROTTLE_RATE", default="600/minute"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Impact Tracker API",
    "DESCRIPTION": "Receives anonymous usage reports from OpenFn Lightning instances and publishes "
    "aggregate figures.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Redoc is served from the drf-spectacular-sidecar package: no CDN.
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

# Failed admin sign-ins allowed per client and per username within the window (seconds).
LOGIN_FAILURES_PER_CLIENT = env.int("LOGIN_FAILURES_PER_CLIENT", default=5)
LOGIN_FAILURES_PER_USERNAME = env.int("LOGIN_FAILURES_PER_USERNAME", default=10)
LOGIN_FAILURE_WINDOW = env.int("LOGIN_FAILURE_WINDOW", default=15 * 60)

# --- Security: production values unless DEBUG. Behind a TLS-terminating proxy, set
# SECURE_PROXY_SSL_HEADER through TRUST_X_FORWARDED_PROTO.
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Lightning follows no redirects and checks HEAD / before re-sending: these stay on plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^api/metrics/?$", r"^$", r"^healthz$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Sending the preload flag only allows a submission to the browsers' preload lists; set false to opt out.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# No formatter here prints a request's address; the production server's access log has its own
# format without it (see docs/deploy.md).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
