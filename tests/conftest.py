import json

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.fleet import hand_fleet  # noqa: F401 -- a fixture shared by several test modules


@pytest.fixture
def fresh_cache(transactional_db):
    """Transactional tests commit, so they clear the shared cache (throttle counters, figures)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def post_report(api):
    """POST a report (a dict, or raw bytes/str) to /api/metrics as Lightning does."""

    def post(data, *, path="/api/metrics", content_type="application/json", **extra):
        body = data if isinstance(data, (bytes, str)) else json.dumps(data)
        return api.generic("POST", path, body, content_type=content_type, **extra)

    return post
