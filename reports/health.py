"""Ingest health for the admin index: is data arriving, and is anything waiting for a moderator?

Every figure is one query on an indexed column (submissions by received_at, the review queue by
status), so the admin index stays fast however many reports are stored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Max
from django.utils import timezone

from .models import ReviewItem, Submission


@dataclass(frozen=True)
class IngestHealth:
    received_today: int
    received_last_7_days: int
    pending_review: int
    last_received_at: dt.datetime | None


def ingest_health(*, now: dt.datetime | None = None) -> IngestHealth:
    """Reports received since midnight (in the site's time zone) and in the last 7 days, entries
    pending review, and when the last report arrived."""
    now = now or timezone.now()
    midnight = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    received = Submission.objects.filter(received_at__lte=now)
    return IngestHealth(
        received_today=received.filter(received_at__gte=midnight).count(),
        received_last_7_days=received.filter(received_at__gt=now - dt.timedelta(days=7)).count(),
        pending_review=ReviewItem.objects.filter(status=ReviewItem.Status.PENDING).count(),
        last_received_at=Submission.objects.aggregate(last=Max("received_at"))["last"],
    )
