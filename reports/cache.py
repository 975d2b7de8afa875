"""The figures' cache, versioned by one generation key: changing the figures is one call.

Every cached page and stats response is stored under a key that includes the current generation, so
`figures_changed()` makes all of them stale at once in every process that shares the cache.
"""

import uuid
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

GENERATION_KEY = "figures:generation"
TIMEOUT = 60 * 60 * 24

T = TypeVar("T")


def generation() -> str:
    value = cache.get(GENERATION_KEY)
    if value is None:
        value = uuid.uuid4().hex
        cache.add(GENERATION_KEY, value, timeout=None)
        value = cache.get(GENERATION_KEY, value)
    return value


def figures_changed() -> None:
    cache.set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)


def cached(key: str, compute: Callable[[], T]) -> T:
    """The value for `key` in the current generation, computed once per generation."""
    full_key = f"figures:{generation()}:{key}"
    value = cache.get(full_key)
    if value is None:
        value = compute()
        cache.set(full_key, value, TIMEOUT)
    return value
