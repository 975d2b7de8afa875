"""Defences of a public server: the Content-Security-Policy header and the admin login rate limit.

The policy allows nothing but this origin: plotly.js, the map geometry and the API docs are all
served from here, and no page has an inline script. plotly.js writes inline styles, hence
'unsafe-inline' for styles only. Failed admin logins are counted per client (a keyed hash of the
address, never the address) and per username in the shared cache, so the limit holds across every
app process and host.
"""

from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from django.shortcuts import render

from . import geo

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


def _keys(request, username: str) -> list[str]:
    return [
        f"login-failures:client:{geo.client_token(request.META)}",
        f"login-failures:user:{username.lower()}",
    ]


def _limits() -> list[int]:
    return [settings.LOGIN_FAILURES_PER_CLIENT, settings.LOGIN_FAILURES_PER_USERNAME]


def login_blocked(request, username: str) -> bool:
    counts = cache.get_many(_keys(request, username))
    return any(
        counts.get(key, 0) >= limit for key, limit in zip(_keys(request, username), _limits(), strict=True)
    )


@receiver(user_login_failed)
def count_failed_login(sender, credentials, request=None, **kwargs):
    if request is None:
        return
    for key in _keys(request, str(credentials.get("username", ""))):
        cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW)


class AdminLoginRateLimitMiddleware:
    """Refuses admin login attempts (429) from a client or for a username with too many recent failures."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        is_login = request.method == "POST" and request.path == f"/{settings.ADMIN_PATH}login/"
        if is_login and login_blocked(request, request.POST.get("username", "")):
            minutes = settings.LOGIN_FAILURE_WINDOW // 60
            response = render(request, "429_login.html", {"minutes": minutes}, status=429)
            response["Retry-After"] = str(settings.LOGIN_FAILURE_WINDOW)
            return response
        return self.get_response(request)
