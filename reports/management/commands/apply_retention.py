"""Apply the retention settings; safe to run from cron (e.g. daily), prints what it removed."""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils import timezone

from reports.retention import apply_retention


class Command(BaseCommand):
    help = "Delete review-queue entries and raw reports older than the retention settings allow."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be removed.")

    def handle(self, *args, dry_run=False, **options):
        review_days, raw_days = settings.REVIEW_RETENTION_DAYS, settings.RAW_REPORT_RETENTION_DAYS
        result = apply_retention(
            now=timezone.now(), review_days=review_days, raw_report_days=raw_days, dry_run=dry_run
        )
        verb = "would remove" if dry_run else "removed"
        kept = "kept for ever" if raw_days is None else f"older than {raw_days} days"
        self.stdout.write(
            f"Retention {verb} {result.review_items_deleted} review-queue entries "
            f"(older than {review_days} days) and the raw JSON of {result.raw_bodies_dropped} reports "
            f"(raw reports: {kept})."
        )
