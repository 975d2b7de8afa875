"""Faults under a live production server: the database stopping mid-load, and bodies that arrive
slowly or are cut short.

- The database: a PostgreSQL cluster of the test's own (tests/servers.py) is stopped as if it crashed
  while 4 clients send reports. The API must answer 503 with Retry-After (never a 500, never a hang),
  /healthz 503; after the database is back, re-sending whatever was not answered 2xx (as Lightning
  does) must leave every distinct report stored exactly once, whole, and the daily table true.
- Bodies: gunicorn's sync workers read the body themselves. A body cut short must store nothing; a
  stalled or trickling client holds one worker for at most GUNICORN_TIMEOUT while the others serve.
  In production a buffering proxy sits in front (docs/deploy.md); these tests document what gunicorn
  alone does.

bench/reliability.py runs bigger versions of these (docs/reliability.md).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter

import httpx
import pytest
from django.core.cache import cache
from django.db import connection

from reports.models import ReviewItem, Submission
from tests.factories import instance_hash, report
from tests.servers import (
    Gunicorn,
    PostgresCluster,
    SlowClient,
    audit_via,
    database_url,
    django_run,
    make_workload,
    post,
    problems,
    production_env,
    read_until_closed,
    request_head,
    send_all,
)

pytestmark = [pytest.mark.postgres]

# Longest an answer may take, outage or not: Lightning's HTTP client gives up long before a worker's
# 30 s timeout, and a hang would hold a worker.
MAX_ANSWER_SECONDS = 10


class Outage:
    """Stops the database once `after` answers have come, checks the server meanwhile, restarts it.

    Runs in its own thread, started by the first answer past `after` (see `on_answer`).
    """

    def __init__(self, cluster: PostgresCluster, server: Gunicorn, *, after: int, mode: str, probe: bytes):
        self.cluster, self.server, self.after, self.mode, self.probe = cluster, server, after, mode, probe
        self.answers = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.health_during: int | None = None
        self.probe_during = None
        self.recovered_after: float | None = None
        self.error: BaseException | None = None

    def on_answer(self, answer) -> None:
        with self.lock:
            self.answers += 1
            if self.answers == self.after:
                self.thread.start()

    def run(self) -> None:
        try:
            self.cluster.stop(self.mode)
            self.health_during = self.server.health(timeout=MAX_ANSWER_SECONDS)
            with httpx.Client(timeout=MAX_ANSWER_SECONDS) as client:
                self.probe_during = post(client, self.server.url, -1, self.probe)
            # Let the senders meet the outage for a while before the database comes back.
            time.sleep(1.5)
            self.cluster.start()
            started = time.monotonic()
            while time.monotonic() - started < 30:
                if self.server.health() == 200:
                    self.recovered_after = time.monotonic() - started
                    break
                time.sleep(0.1)
        except BaseException as exc:  # reported by the test, not lost in this thread
            self.error = exc

    def join(self) -> None:
        self.thread.join(timeout=60)


def test_the_database_stopping_mid_load_answers_503_and_loses_nothing():
    workload = make_workload(distinct=400, duplicates=150, conflicts=50, seed=11)
    probe = json.dumps(report(instance="probe", day="2024-12-31")).encode()
    with PostgresCluster() as cluster:
        cluster.createdb()
        env = production_env(cluster.url())
        django_run(env, "migrate", "--noinput")
        with Gunicorn(env, workers=3) as server:
            # An immediate stop: PostgreSQL's backends die mid-transaction, as in a crash.
            outage = Outage(cluster, server, after=150, mode="immediate", probe=probe)
            answers = send_all(
                server.url,
                workload.bodies,
                threads=4,
                timeout=MAX_ANSWER_SECONDS,
                on_answer=outage.on_answer,
            )
            outage.join()
            assert outage.error is None, outage.error
            first_round = Counter(a.status for a in answers)
            # Re-send what was not accepted, as Lightning does (it waits a minute; bounded here).
            everything = list(answers)
            pending = [a.index for a in answers if not a.ok]
            for _ in range(20):
                if not pending:
                    break
                retried = send_all(server.url, workload.bodies, indices=pending, threads=4)
                everything += retried
                pending = [a.index for a in retried if not a.ok]
                time.sleep(0.5)
            log = server.log()
        facts = audit_via(env)

    # The outage was met mid-load: some answers before it, many 503s during it.
    assert first_round[201] >= 100 and first_round[503] > 0, first_round
    assert outage.health_during == 503
    assert outage.probe_during.status == 503 and outage.probe_during.word == "unavailable"
    assert int(outage.probe_during.retry_after) > 0
    assert outage.recovered_after is not None and outage.recovered_after < 15
    # Never a 500, never a dropped connection or a hang; every 503 says when to come back.
    assert {a.status for a in everything} <= {200, 201, 503}, Counter(a.status for a in everything)
    assert all(a.retry_after and int(a.retry_after) > 0 for a in everything if a.status == 503)
    assert max(a.seconds for a in everything) < MAX_ANSWER_SECONDS
    # The 503s are the API's exception handler at work (the first query, the throttle's read of the
    # database cache, fails), not Django's last-resort error page.
    assert "database unavailable: OperationalError" in log
    assert "unexpected error in the API" not in log and "Internal Server Error" not in log
    assert pending == []
    # Everything re-sent is stored: once each, whole, conflicts queued, and the daily table true.
    assert problems(workload, facts) == []
    assert len(facts["submissions"]) == workload.summary()["distinct_reports"] == 400
    assert all(s["whole"] for s in facts["submissions"])


# --- Bodies: slow, stalled, cut short --------------------------------------------------------------


@pytest.fixture
def test_database_env(transactional_db):
    """The production environment on pytest-django's test database (the servers stop before it is
    flushed: they are stopped inside the tests, which this fixture outlives)."""
    assert connection.vendor == "postgresql", "run these with DATABASE_URL pointing at PostgreSQL"
    yield production_env(database_url(connection.settings_dict))
    cache.clear()


def test_a_body_cut_short_is_never_stored_and_the_server_carries_on(test_database_env):
    big = json.dumps(report(instance="cut", projects=10, workflows=3)).encode()
    assert len(big) > 5000
    valid = json.dumps(report(instance="cut-valid")).encode()
    with Gunicorn(test_database_env, workers=3, timeout=5) as server:
        # Content-Length 5000, 2,000 bytes of it, then the client goes away.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(request_head(5000) + big[:2000])
        # A whole valid report, but declared longer than what came before the client stopped sending:
        # what arrived is not what was sent, so it must not be stored either.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(request_head(len(valid) + 3000) + valid)
            sock.shutdown(socket.SHUT_WR)
            answer = read_until_closed(sock)
        t0 = time.monotonic()
        whole = httpx.post(f"{server.url}/api/metrics", json=report(instance="whole"), timeout=10)
        took = time.monotonic() - t0
        health = server.health()

    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 400 Bad Request", answer
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert body["status"] == "malformed" and "declared" in body["message"]
    assert whole.status_code == 201 and took < 3
    assert health == 200
    stored = Submission.objects.values_list("instance__hashed_uuid", flat=True)
    assert list(stored) == [instance_hash("whole")]
    assert not ReviewItem.objects.exists()


def test_slow_clients_hold_a_worker_until_the_timeout_while_the_others_serve(test_database_env):
    timeout = 5
    body = json.dumps(report(instance="slow", projects=10, workflows=3)).encode()
    request = request_head(len(body)) + body
    with Gunicorn(test_database_env, workers=4, timeout=timeout) as server:
        slow = {
            # Headers, half the body, then nothing.
            "stalled body": SlowClient(
                server.port, request, first=len(request_head(len(body))) + 3000, stall=True
            ),
            # Headers, then the body a byte every half second: it would take an hour.
            "trickled body": SlowClient(server.port, request, first=len(request_head(len(body)))),
            # The request line and headers themselves a byte every half second (slowloris).
            "trickled headers": SlowClient(server.port, request, first=10),
        }
        for client in slow.values():
            client.start()
        time.sleep(0.5)  # the three are each accepted by a worker of their own
        meanwhile = []
        with httpx.Client(timeout=MAX_ANSWER_SECONDS) as http:
            n = 0
            while any(c.is_alive() for c in slow.values()) and n < 100:
                meanwhile.append(post(http, server.url, n, json.dumps(report(instance=f"m{n}")).encode()))
                n += 1
                time.sleep(0.2)
            after = post(http, server.url, n, json.dumps(report(instance="after")).encode())
        for client in slow.values():
            client.join(timeout=5)
        log = server.log()

    # The fourth worker served everyone else, promptly, while three were held.
    assert len(meanwhile) >= 5
    slowest = max(meanwhile, key=lambda a: a.seconds)
    assert all(a.status == 201 for a in meanwhile) and slowest.seconds < 3, slowest
    # Each held worker was freed by the timeout: not before, and not long after (the arbiter checks
    # once a second).
    for name, client in slow.items():
        assert client.closed_after is not None, name
        assert timeout - 0.5 <= client.closed_after <= timeout + 4, (name, client.closed_after)
    assert log.count("WORKER TIMEOUT") == 3
    # The interrupted requests get the API's own answer: JSON 503 with Retry-After, never a bare 500.
    for name in ("stalled body", "trickled body"):
        answer = slow[name].answer
        assert answer.startswith(b"HTTP/1.1 503 "), (name, answer[:200])
        assert b"\r\nRetry-After: " in answer and b'"status":"unavailable"' in answer
    # Before its headers are complete there is no request to answer: the connection is just closed.
    assert slow["trickled headers"].answer == b""
    # After the timeout the replacement workers serve again, and nothing slow was stored.
    assert after.status == 201
    assert Submission.objects.count() == len(meanwhile) + 1
    assert not Submission.objects.filter(instance__hashed_uuid=instance_hash("slow")).exists()
