"""An HTTP client that sends reports to an Impact Tracker server the way OpenFn Lightning does.

Used by `manage.py send_reports` to demo a server, test a deployment end to end and load-test it.
What Lightning does, and so what this does:
- POST {url}/api/metrics with the report as a JSON body and `Content-Type: application/json`; no
  Accept header, no credentials, no cookies; redirects are not followed (a 3xx is a failure);
- anything not answered 2xx (or not answered at all) is sent again later; before sending again it
  checks that the server is up with `HEAD {url}/`, which must answer 2xx.
Lightning retries every minute, forever; here the pause between rounds (`retry_wait`) and the
number of rounds (`retries`) are bounded and configurable, so that a run ends.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sized
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import httpx
from tqdm import tqdm

METRICS_PATH = "/api/metrics"
LIGHTNING_RETRY_WAIT = 60  # seconds: Lightning tries again at its next minute
CONNECTION_ERROR = "connection error"


@dataclass
class Summary:
    """What happened to each report (the answer to its last attempt), and how it went."""

    reports: int = 0
    outcomes: Counter = field(default_factory=Counter)  # "created", "duplicate", ..., "HTTP 503", ...
    answers: Counter = field(default_factory=Counter)  # every attempt's answer, by the same labels
    undelivered: int = 0  # reports whose last attempt failed
    attempts: int = 0
    rounds: int = 0  # rounds that sent something
    unreachable_checks: int = 0  # HEAD / checks that did not answer 2xx
    seconds: float = 0.0

    def lines(self) -> list[str]:
        """The summary as printed by send_reports."""
        rate = self.attempts / self.seconds if self.seconds else 0
        out = [
            f"{self.reports:,} reports, {self.attempts:,} requests in {self.rounds} round(s), "
            f"{self.seconds:.1f} s ({rate:,.1f} requests/s)",
        ]
        out += [f"  {label:<22} {n:>8,}" for label, n in sorted(self.outcomes.items(), key=_order)]
        if self.answers != self.outcomes:
            retried = ", ".join(f"{label} {n:,}" for label, n in sorted(self.answers.items(), key=_order))
            out.append(f"  every attempt: {retried}")
        if self.unreachable_checks:
            out.append(f"  HEAD / checks that failed: {self.unreachable_checks}")
        out.append(f"  undelivered: {self.undelivered:,}")
        return out


def _order(item) -> tuple:
    label = item[0]
    known = ("created", "duplicate", "conflict", "rejected")
    return (known.index(label), label) if label in known else (len(known), label)


def new_client(
    url: str, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """A client that sends what Lightning sends: no Accept, no compression, no cookies kept."""
    client = httpx.Client(
        base_url=url.rstrip("/"), follow_redirects=False, timeout=timeout, transport=transport
    )
    for name in ("Accept", "Accept-Encoding", "User-Agent"):
        client.headers.pop(name, None)
    return client


def label_of(response: httpx.Response) -> tuple[bool, str]:
    """(delivered, label): a 2xx is delivered and labelled by the status word of its JSON answer."""
    if not response.is_success:
        return False, f"HTTP {response.status_code}"
    try:
        word = response.json().get("status")
    except (ValueError, AttributeError):
        word = None
    return True, word if isinstance(word, str) else f"HTTP {response.status_code}"


def post_report(client: httpx.Client, body: bytes) -> tuple[bool, str]:
    try:
        response = client.post(METRICS_PATH, content=body, headers={"Content-Type": "application/json"})
    except httpx.TransportError:
        return False, CONNECTION_ERROR
    return label_of(response)


def reachable(client: httpx.Client) -> bool:
    """Lightning's check before re-sending: HEAD / answered 2xx."""
    try:
        return client.head("/").is_success
    except httpx.TransportError:
        return False


def send_reports(
    *,
    url: str,
    bodies: Iterable[bytes],
    total: int | None = None,
    concurrency: int = 4,
    retries: int = 5,
    retry_wait: float = 2.0,
    timeout: float = 30.0,
    progress: bool = False,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Summary:
    """Send every body, `concurrency` at a time; re-send the failed ones up to `retries` more rounds.

    `bodies` is read as it goes (a whole fleet need not be in memory; only failed bodies are kept
    for the next round); `total`, when known, sizes the progress bar. Before each later round it waits
    `retry_wait` seconds and checks `HEAD /`; a round whose check fails sends nothing (and counts as
    one of the `retries`).
    """
    if concurrency < 1 or retries < 0:
        raise ValueError("concurrency must be >= 1 and retries >= 0")
    if total is None and isinstance(bodies, Sized):
        total = len(bodies)
    summary = Summary()
    started = time.monotonic()
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def thread_client() -> httpx.Client:
        # One client (one connection pool) per thread: httpx clients are not shared across threads here.
        if not hasattr(local, "client"):
            local.client = new_client(url, timeout=timeout, transport=transport)
            with lock:
                clients.append(local.client)
        return local.client

    def send(body: bytes) -> tuple[bytes, bool, str]:
        return (body, *post_report(thread_client(), body))

    def one_round(pool: ThreadPoolExecutor, items: Iterable[bytes]) -> list[tuple[bytes, str]]:
        """Send every item, a bounded number in flight; returns (body, label) of each failure."""
        failed: list[tuple[bytes, str]] = []
        in_flight: set[Future] = set()

        def collect(done) -> None:
            for future in done:
                body, delivered, label = future.result()
                summary.attempts += 1
                summary.answers[label] += 1
                if delivered:
                    summary.outcomes[label] += 1
                    bar.update(1)
                else:
                    failed.append((body, label))

        for body in items:
            if len(in_flight) >= 4 * concurrency:
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                collect(done)
            in_flight.add(pool.submit(send, body))
        collect(wait(in_flight).done)
        return failed

    def first(items):
        for body in items:
            summary.reports += 1
            yield body

    checker = new_client(url, timeout=timeout, transport=transport)
    bar = tqdm(total=total, unit=" reports", disable=None if progress else True)  # None: on a terminal
    failed: list[tuple[bytes, str]] = []
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            failed = one_round(pool, first(bodies))
            summary.rounds = 1
            for _ in range(retries):
                bar.set_postfix(failed=len(failed))
                if not failed:
                    break
                sleep(retry_wait)
                if not reachable(checker):
                    summary.unreachable_checks += 1
                    continue
                summary.rounds += 1
                failed = one_round(pool, [body for body, _ in failed])
    finally:
        bar.close()
        checker.close()
        for client in clients:
            client.close()
    summary.outcomes.update(label for _, label in failed)
    summary.undelivered = len(failed)
    summary.seconds = time.monotonic() - started
    return summary
