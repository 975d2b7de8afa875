"""Retention: what is deleted, and when, after it has served its purpose.

Review-queue entries go after REVIEW_RETENTION_DAYS; the raw JSON of accepted reports may go after
RAW_REPORT_RETENTION_DAYS (by default it is kept). The public figures never change: they come from
the submissions' columns and the daily counts, which retention does not touch.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import transaction

from .models import ModerationLog, ReviewItem, Submission

SYSTEM_ACTOR = "retention"


@dataclass(frozen=True)
class RetentionResult:
    review_items_deleted: int
    raw_bodies_dropped: int


@transaction.atomic
def apply_retention(
    *, now: dt.datetime, review_days: int | None, raw_report_days: int | None, dry_run: bool = False
) -> RetentionResult:
    """Delete old review entries and drop old raw reports; safe to run again at any time."""
    old_reviews = ReviewItem.objects.none()
    if review_days is not None:
        old_reviews = ReviewItem.objects.filter(last_received_at__lt=now - dt.timedelta(days=review_days))
    old_raw = Submission.objects.none()
    if raw_report_days is not None:
        old_raw = Submission.objects.filter(
            received_at__lt=now - dt.timedelta(days=raw_report_days), raw_body__isnull=False
        )
    if dry_run:
        return RetentionResult(old_reviews.count(), old_raw.count())
    result = RetentionResult(old_reviews.delete()[0], old_raw.update(raw_body=None))
    if result.review_items_deleted or result.raw_bodies_dropped:
        ModerationLog.objects.create(
            actor=None,
            actor_name=SYSTEM_ACTOR,
            action=ModerationLog.Action.RETENTION,
            target="review queue and raw reports",
            reason=f"review entries older than {review_days} days, "
            f"raw reports older than {raw_report_days} days",
            detail={
                "review_items_deleted": result.review_items_deleted,
                "raw_bodies_dropped": result.raw_bodies_dropped,
            },
        )
    return result
