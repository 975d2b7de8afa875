"""`manage.py send_reports --url URL`: send the demo fleet's reports to a server over HTTP, as Lightning.

Thin: the reports come from reports/demo.py, the sending from reports/client.py. Useful to demo a
server, to test a deployment end to end and to load-test it.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.core.management.base import BaseCommand, CommandError

from reports import client, demo


class Command(BaseCommand):
    help = (
        "Send the demo fleet's reports to URL/api/metrics exactly as Lightning does (JSON POST, no "
        "redirects followed, HEAD / checked before re-sending failures) and print a summary by status."
    )

    def add_arguments(self, parser):
        parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8000")
        parser.add_argument("--instances", type=int, default=10, help="instances in the fleet (default 10)")
        parser.add_argument("--days", type=int, default=30, help="days of reports (default 30)")
        parser.add_argument("--seed", type=int, default=1, help="random seed of the fleet (default 1)")
        parser.add_argument(
            "--end",
            type=dt.date.fromisoformat,
            default=None,
            help="last report date, YYYY-MM-DD (default yesterday, UTC)",
        )
        parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
        parser.add_argument(
            "--retries",
            type=int,
            default=5,
            help="rounds of re-sending what failed (default 5; Lightning never gives up)",
        )
        parser.add_argument(
            "--retry-wait",
            type=float,
            default=2.0,
            help=f"seconds between rounds (default 2; Lightning waits {client.LIGHTNING_RETRY_WAIT})",
        )
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")

    def handle(
        self, *args, url, instances, days, seed, end, concurrency, retries, retry_wait, timeout, **options
    ):
        if not url.startswith(("http://", "https://")):
            raise CommandError("--url must start with http:// or https://")
        # httpx logs every request at INFO: thousands of lines under the progress bar otherwise.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        try:
            fleet = demo.fleet(instances=instances, days=days, seed=seed, end=end)
            summary = client.send_reports(
                url=url,
                bodies=(r.body() for r in fleet),
                concurrency=concurrency,
                retries=retries,
                retry_wait=retry_wait,
                timeout=timeout,
                progress=options["verbosity"] >= 1,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for line in summary.lines():
            self.stdout.write(line)
        if summary.undelivered:
            raise CommandError(f"{summary.undelivered:,} reports could not be delivered")
