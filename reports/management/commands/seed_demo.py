"""`manage.py seed_demo`: fill the database with the deterministic demo fleet of reports/demo.py.

Stores exactly what sending the same reports to the API would (through `ingest.store_many`), so
that a first run shows full pages. Safe to run every time: when reports are already stored it says
so and does nothing, unless --reset asks to replace them.
"""

from __future__ import annotations

import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from tqdm import tqdm

from reports import cache, demo, ingest, moderation
from reports.models import DailyCount, Instance, Project, ReviewItem, Submission, Workflow


class Command(BaseCommand):
    help = (
        "Store a deterministic, realistic demo fleet of reports (as if sent to the API). Does nothing "
        "when reports are already stored, unless --reset."
    )

    def add_arguments(self, parser):
        parser.add_argument("--instances", type=int, default=40, help="instances in the fleet (default 40)")
        parser.add_argument("--days", type=int, default=400, help="days of reports (default 400)")
        parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        parser.add_argument(
            "--end",
            type=dt.date.fromisoformat,
            default=None,
            help="last report date, YYYY-MM-DD (default yesterday, UTC)",
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="delete every stored report, instance, review entry and daily figure first",
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=ingest.BULK_CHUNK,
            help=f"reports stored per transaction (default {ingest.BULK_CHUNK})",
        )
        parser.add_argument(
            "--keep-test-instances",
            action="store_true",
            help="leave the fleet's test instances in the public figures (to try moderating them)",
        )

    def handle(
        self, *args, instances, days, seed, end, reset, chunk_size, keep_test_instances, verbosity, **options
    ):
        if instances < 1 or days < 1:
            raise CommandError("--instances and --days must be at least 1")
        if reset:
            delete_all_reports()
        elif Submission.objects.exists():
            self.stdout.write(
                f"already seeded ({Submission.objects.count():,} reports stored); "
                "use --reset to replace them with a new demo fleet"
            )
            return
        started = time.monotonic()
        test_instances: set[str] = set()

        def items():
            for r in tqdm(
                demo.fleet(instances=instances, days=days, seed=seed, end=end),
                desc="reports",
                unit=" reports",
                disable=None if verbosity >= 1 else True,  # None: only on a terminal
                leave=False,
            ):
                if r.is_test:
                    test_instances.add(r.instance_hash)
                yield r.body(), r.country

        try:
            counts = ingest.store_many(items=items(), chunk_size=chunk_size)
        except ValueError as exc:  # the fleet's arguments
            raise CommandError(str(exc)) from exc
        elapsed = time.monotonic() - started
        summary = ", ".join(f"{status} {n:,}" for status, n in sorted(counts.items()))
        self.stdout.write(
            f"Seeded the demo fleet ({instances} instances x {days} days, seed {seed}) "
            f"in {elapsed:.1f} s: {summary or 'nothing'}."
        )
        if test_instances:
            shown = ", ".join(sorted(h[:12] for h in test_instances))
            if keep_test_instances:
                self.stdout.write(f"Test instances worth excluding: {shown}")
            else:
                # What a moderator would do first; the first page a newcomer sees is then true.
                moderation.exclude_instances(
                    instances=Instance.objects.filter(hashed_uuid__in=test_instances),
                    reason="a test instance of the demo fleet (seed_demo)",
                    actor=None,
                )
                self.stdout.write(f"Excluded the test instances from the public figures: {shown}")


@transaction.atomic
def delete_all_reports() -> None:
    """Forget every instance, report, review entry and daily figure (not the moderation log)."""
    models = (Workflow, Project, ReviewItem, Submission, DailyCount, Instance)
    tables = [connection.ops.quote_name(m._meta.db_table) for m in models]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Millions of workflow rows: TRUNCATE is instant where DELETE (let alone the ORM's
            # cascade, which loads every row) takes minutes.
            # Foreign-key checks deferred earlier in this transaction must run before a TRUNCATE.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"TRUNCATE {', '.join(tables)}")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        else:
            for table in tables:  # children first
                cursor.execute(f"DELETE FROM {table}")
    transaction.on_commit(cache.figures_changed)
