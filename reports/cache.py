"""The figures' cache, versioned by a generation: changing the figures is one call, or one report.

Every cached page and stats response is stored under a key that includes the current generation, so
`figures_changed()` makes all of them stale at once in every process that shares the cache. The
generation also holds the newest submission's id: a stored report changes the figures without any
cache write in the ingestion request (which would be a second transaction per report), at the cost
of one index lookup per page view. Moderation, rebuilds and bulk loads call `figures_changed()`.
"""

import hashlib
import uuid
from collections.abc import Callable
from functools import cache as once
from pathlib import Path
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max

from .models import Submission

TIMEOUT = 60 * 60 * 24

T = TypeVar("T")


@once
def _build() -> str:
    """A fingerprint of the code and templates: a deployment never serves pages cached by the last one."""
    digest = hashlib.sha256()
    roots = [Path(__file__).parent, Path(settings.BASE_DIR) / "templates"]
    for path in sorted(p for root in roots for p in root.rglob("*") if p.suffix in (".py", ".html")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _generation_key() -> str:
    return f"figures:{_build()}:generation"


def generation() -> str:
    key = _generation_key()
    value = cache.get(key)
    if value is None:
        value = uuid.uuid4().hex
        cache.add(key, value, timeout=None)
        value = cache.get(key, value)
    return f"{value}:{_newest_submission()}"


def _newest_submission() -> int:
    return Submission.objects.aggregate(newest=Max("id"))["newest"] or 0


def figures_changed() -> None:
    cache.set(_generation_key(), uuid.uuid4().hex, timeout=None)


def cached(key: str, compute: Callable[[], T]) -> T:
    """The value for `key` in the current generation, computed once per generation."""
    full_key = f"figures:{_build()}:{generation()}:{key}"
    value = cache.get(full_key)
    if value is None:
        value = compute()
        cache.set(full_key, value, TIMEOUT)
    return value
