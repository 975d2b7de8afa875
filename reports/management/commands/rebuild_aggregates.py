"""Recompute every public figure from the stored reports (safe at any time; never needed normally)."""

import time

from django.core.management.base import BaseCommand

from reports import aggregates, cache


class Command(BaseCommand):
    help = "Rebuild the daily aggregate table from the stored submissions, in one transaction."

    def handle(self, *args, **options):
        started = time.monotonic()
        rows = aggregates.rebuild()
        cache.figures_changed()
        self.stdout.write(f"Rebuilt {rows} daily figures in {time.monotonic() - started:.1f} s.")
