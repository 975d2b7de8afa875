"""Real servers and real clients for the load and fault tests (and bench/reliability.py).

- `Gunicorn`: the production command (`gunicorn impact.wsgi:application -c gunicorn.conf.py`, run
  from the repository root with impact.settings and nothing but the environment) as a subprocess.
- `PostgresCluster`: a throw-away PostgreSQL cluster in a temporary directory that can be stopped
  and started again, the way scripts/pg.sh makes one (as the postgres user when run as root).
- `Workload`: many distinct reports built with tests/factories.py, plus exact duplicates and
  conflicting variants, shuffled, with everything needed to say afterwards what must be stored.
- `send_all`: threads of httpx clients posting bodies, every answer recorded; `SlowClient` and
  `request_head` for raw sockets that send slowly, stall or stop short.
- `audit`: what the database holds, read by Django (in this process, or in a subprocess pointed at
  another database: `python -m tests.servers audit` prints it as JSON).

Everything listens on and talks to 127.0.0.1 only, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import os
import queue
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
# Variables the child processes may inherit; everything else (DJANGO_SETTINGS_MODULE=tests.settings,
# a developer's DATABASE_URL, ...) must not leak into a server that is meant to run as in production.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for Django's connection settings (e.g. the test database pytest-django made)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or "5432"
    return f"postgres://{auth}{host}:{port}/{quote(settings_dict['NAME'], safe='')}"


def production_env(database: str, **overrides: str) -> dict[str, str]:
    """The environment of a production server on `database` (a DATABASE_URL), plain HTTP on 127.0.0.1."""
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="impact.settings",
        DATABASE_URL=database,
        CACHE_URL="dbcache://impact_cache",
        DEBUG="false",
        # A key of its own: the throttle's cache keys are derived from it, so no two servers (or the
        # test process) ever share a counter by accident.
        SECRET_KEY="reliability-" + uuid.uuid4().hex * 2,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        REPORTS_THROTTLE_RATE="1000000/minute",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def django_run(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run a manage.py command with this environment; its stdout."""
    done = subprocess.run(  # our own manage.py, fixed arguments
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Gunicorn:
    """The production server as a subprocess; `with Gunicorn(env) as server:` waits for /healthz."""

    def __init__(self, env: dict[str, str], *, workers: int = 3, timeout: int = 30, extra_args=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **env,
            "BIND": f"127.0.0.1:{self.port}",
            "WEB_CONCURRENCY": str(workers),
            "GUNICORN_TIMEOUT": str(timeout),
        }
        self.extra_args = list(extra_args)
        fd, path = tempfile.mkstemp(prefix="impact-gunicorn.", suffix=".log")
        os.close(fd)
        self.log_path = Path(path)
        self.process: subprocess.Popen | None = None

    def start(self, wait: float = 60) -> None:
        cmd = [
            str(VENV_BIN / "gunicorn"),
            "impact.wsgi:application",
            "-c",
            "gunicorn.conf.py",
            # Every gunicorn on this machine would share $HOME/.gunicorn/gunicorn.ctl (tests, benchmarks
            # and other people's runs start many at once); none of them needs the control socket.
            "--no-control-socket",
            *self.extra_args,
        ]
        with self.log_path.open("w") as log:
            # cwd is the repository root: gunicorn reads gunicorn.conf.py from there, as in production.
            self.process = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            if self.health() == 200:
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer /healthz within {wait}s:\n{self.log()}")

    def health(self, timeout: float = 5) -> int | None:
        """/healthz's status, or None when the server does not answer."""
        try:
            return httpx.get(f"{self.url}/healthz", timeout=timeout).status_code
        except httpx.HTTPError:
            return None

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # SIGTERM: gunicorn's graceful shutdown, so workers close their database connections.
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=35)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def __enter__(self) -> Gunicorn:
        try:
            self.start()
        except BaseException:
            self.log_path.unlink(missing_ok=True)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self.log_path.unlink(missing_ok=True)


def pg_bin() -> Path:
    for candidate in [Path("/usr/lib/postgresql/15/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"))]:
        if (candidate / "initdb").exists():
            return candidate
    raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")


class PostgresCluster:
    """A PostgreSQL cluster of our own, to stop and start under a running server.

    Commits are durable as in production (synchronous_commit stays on: a report answered 201 must
    survive an immediate stop); only fsync is off, since the machine itself does not crash here.
    """

    def __init__(self, *, durable: bool = False):
        self.bin = pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix="impact-pg."))
        self.data = self.root / "data"
        self.port = free_port()
        self.durable = durable
        # PostgreSQL refuses to run as root: then its tools run as the postgres user (as scripts/pg.sh).
        self._as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.running = False
        try:
            if self._as_pg:
                shutil.chown(self.root, "postgres")
            self._run(
                "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--encoding=UTF8", "--locale=C"
            )
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    def _run(self, tool: str, *args, timeout: float = 60) -> None:
        done = subprocess.run(  # PostgreSQL's own tools, our arguments
            [*self._as_pg, str(self.bin / tool), *map(str, args)],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode:
            log = self.root / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr}\n{tail}")

    def url(self, name: str = "impact") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        options = f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1"
        if not self.durable:
            options += " -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-w", "-D", self.data, "-l", self.root / "log", "-o", options, "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """fast: clients are disconnected, then a clean shutdown; immediate: as if the server crashed."""
        self._run("pg_ctl", "-w", "-D", self.data, "-m", mode, "stop")
        self.running = False

    def createdb(self, name: str = "impact") -> None:
        self._run("createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", name)

    def close(self) -> None:
        if self.running:
            with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- The workload ----------------------------------------------------------------------------------

Key = tuple[str, str]  # (instance hash, report date)


@dataclasses.dataclass
class Workload:
    """Bodies to send, in order, and what each one is: its (instance, day) key and content hash."""

    bodies: list[bytes]
    keys: list[Key]
    hashes: list[str]

    @property
    def expected_keys(self) -> set[Key]:
        return set(self.keys)

    def variants(self) -> dict[Key, set[str]]:
        """The content hashes sent for each key: one unless conflicting variants were sent."""
        out: dict[Key, set[str]] = {}
        for key, content in zip(self.keys, self.hashes, strict=True):
            out.setdefault(key, set()).add(content)
        return out

    def summary(self) -> dict[str, int]:
        variants = self.variants()
        return {
            "requests": len(self.bodies),
            "distinct_reports": len(variants),
            "exact_duplicates": len(self.bodies) - len(set(self.bodies)),
            "conflicting_variants": sum(len(v) - 1 for v in variants.values()),
        }


def make_workload(*, distinct: int, duplicates: int, conflicts: int, seed: int = 1) -> Workload:
    """`distinct` reports (instance, day), `duplicates` exact re-sends of random ones, and `conflicts`
    different reports for an already-used (instance, day), which themselves are re-sent now and then."""
    from reports.formats import validate
    from tests.factories import report

    rng = random.Random(seed)
    instances = max(1, distinct // 20)
    first_day = dt.date(2024, 1, 1)
    today = dt.date(2030, 1, 1)  # any "today" after the dates used: validation only checks the future

    def build(instance: int, day: dt.date) -> bytes:
        data = report(
            instance=f"load-{seed}-{instance}",
            day=day,
            projects=rng.randint(1, 3),
            workflows=rng.randint(1, 3),
            users=rng.randint(0, 500),
            active=rng.randint(0, 50),
            monthly=rng.randint(0, 50),
            runs=rng.randint(0, 1000),
            steps=rng.randint(0, 5000),
            os=rng.choice(["linux", "darwin", "windows"]),
            version=rng.choice(["v2.4.2", "v2.9.0", "v2.10.1"]),
        )
        return json.dumps(data).encode()

    bodies, keys, hashes = [], [], []

    def add(instance: int, day: dt.date, body: bytes) -> None:
        bodies.append(body)
        keys.append((_hash_of(body), day.isoformat()))
        hashes.append(validate(json.loads(body), today=today).content_hash)

    slots = [(k % instances, first_day + dt.timedelta(days=k // instances)) for k in range(distinct)]
    for instance, day in slots:
        add(instance, day, build(instance, day))

    def repeat(i: int) -> None:
        bodies.append(bodies[i])
        keys.append(keys[i])
        hashes.append(hashes[i])

    originals = list(range(len(bodies)))
    for _ in range(duplicates):
        repeat(rng.choice(originals))
    variants = []
    for _ in range(conflicts):
        # A conflicting variant is sometimes re-sent itself, as Lightning re-sends anything not stored.
        if variants and rng.random() < 0.3:
            repeat(rng.choice(variants))
            continue
        instance, day = rng.choice(slots)
        add(instance, day, build(instance, day))
        variants.append(len(bodies) - 1)
    order = list(range(len(bodies)))
    rng.shuffle(order)
    return Workload([bodies[i] for i in order], [keys[i] for i in order], [hashes[i] for i in order])


def _hash_of(body: bytes) -> str:
    return json.loads(body)["instance"]["hashed_uuid"]


def body_hash(body: bytes) -> str:
    """The review queue's key for a body (reports.ingest.keep_for_review)."""
    return hashlib.sha256(body).hexdigest()


# --- Clients --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Answer:
    index: int
    status: int | None  # None: no HTTP answer at all (connection refused, reset, timed out)
    word: str = ""  # the JSON answer's "status"
    retry_after: str | None = None
    seconds: float = 0.0
    error: str = ""
    at: float = 0.0  # time.monotonic() when the answer came

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(client: httpx.Client, url: str, index: int, body: bytes) -> Answer:
    t0 = time.monotonic()
    try:
        r = client.post(f"{url}/api/metrics", content=body, headers={"Content-Type": "application/json"})
    except httpx.HTTPError as exc:
        now = time.monotonic()
        return Answer(index, None, error=type(exc).__name__, seconds=now - t0, at=now)
    now = time.monotonic()
    try:
        word = r.json().get("status", "")
    except ValueError:
        word = ""
    return Answer(index, r.status_code, word, r.headers.get("Retry-After"), now - t0, at=now)


def send_all(
    url: str,
    bodies: list[bytes],
    *,
    indices: list[int] | None = None,
    threads: int = 16,
    timeout: float = 10.0,
    on_answer=None,
) -> list[Answer]:
    """POST each body once, `threads` at a time; one Answer per body, in the order of `indices`.

    `on_answer(answer)` is called from the sending threads as answers come (to inject faults).
    """
    indices = list(range(len(bodies))) if indices is None else indices
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in indices:
        todo.put(i)
    answers: dict[int, Answer] = {}
    lock = threading.Lock()

    def work():
        with httpx.Client(timeout=timeout) as client:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                answer = post(client, url, i, bodies[i])
                with lock:
                    answers[i] = answer
                if on_answer is not None:
                    on_answer(answer)

    pool = [threading.Thread(target=work, daemon=True) for _ in range(min(threads, len(indices)) or 1)]
    for t in pool:
        t.start()
    for t in pool:
        # Bounded: every request is bounded by `timeout`, so this is too.
        t.join(timeout=timeout * (len(indices) + 1))
    return [answers[i] for i in indices]


def request_head(length: int, path: str = "/api/metrics") -> bytes:
    """The head of a JSON POST declaring `length` bytes of body, for raw sockets."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def read_until_closed(sock: socket.socket, limit: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (each read bounded by `limit`)."""
    sock.settimeout(limit)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


class SlowClient(threading.Thread):
    """A raw-socket client that sends `data[:first]` at once, then one more byte every `interval`
    seconds (none at all if `stall`), until the server closes the connection or `give_up` seconds
    pass. Records after how long the server let go (`closed_after`) and what it answered."""

    def __init__(
        self, port: int, data: bytes, *, first: int, interval: float = 0.5, stall=False, give_up=30.0
    ):
        super().__init__(daemon=True)
        self.port, self.data, self.first, self.interval, self.stall = port, data, first, interval, stall
        self.give_up = give_up
        self.closed_after: float | None = None
        self.answer = b""

    def run(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            t0 = time.monotonic()
            sock.sendall(self.data[: self.first])
            sent = self.first
            while time.monotonic() - t0 < self.give_up:
                readable, _, _ = select.select([sock], [], [], self.interval)
                if readable:
                    self.answer = read_until_closed(sock)
                    self.closed_after = time.monotonic() - t0
                    return
                if not self.stall and sent < len(self.data):
                    try:
                        sock.sendall(self.data[sent : sent + 1])
                    except OSError:  # closed by the server between two bytes
                        self.answer = read_until_closed(sock)
                        self.closed_after = time.monotonic() - t0
                        return
                    sent += 1


# --- What the database holds ----------------------------------------------------------------------


def audit() -> dict:
    """The stored reports, the review queue, and whether the daily table equals a full rebuild.

    Runs `aggregates.rebuild()`: the table afterwards is the rebuilt one.
    """
    from django.db.models import Count

    from reports import aggregates
    from reports.models import Project, ReviewItem, Submission, Workflow

    submissions = list(
        Submission.objects.annotate(
            workflow_rows=Count("workflows", distinct=True), project_rows=Count("projects", distinct=True)
        ).values_list(
            "instance__hashed_uuid",
            "report_date",
            "content_hash",
            "no_of_workflows",
            "workflow_rows",
            "no_of_projects",
            "project_rows",
        )
    )
    incremental = aggregates.table()
    aggregates.rebuild()
    rebuilt = aggregates.table()
    return {
        "submissions": [
            {"key": [h, d.isoformat()], "content_hash": c, "whole": w == wr and p == pr}
            for h, d, c, w, wr, p, pr in submissions
        ],
        "projects": Project.objects.count(),
        "workflows": Workflow.objects.count(),
        "projects_claimed": sum(s[5] for s in submissions),
        "workflows_claimed": sum(s[3] for s in submissions),
        "review": [
            {"reason": r, "body_hash": b, "status": s, "times_received": t}
            for r, b, s, t in ReviewItem.objects.values_list(
                "reason", "body_hash", "status", "times_received"
            )
        ],
        "aggregates_rows": len(rebuilt),
        "aggregates_equal_rebuild": incremental == rebuilt,
        "reports_counted": sum(v for (stat, _, _), v in incremental.items() if stat == "reports"),
    }


def audit_via(env: dict[str, str]) -> dict:
    """`audit()` in a Django process of its own, on the database of `env`."""
    done = subprocess.run(  # this module, fixed arguments
        [sys.executable, "-m", "tests.servers", "audit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"audit failed:\n{done.stderr}")
    return json.loads(done.stdout)


def problems(workload: Workload, facts: dict) -> list[str]:
    """Everything wrong with what is stored, given what was sent and answered 2xx; [] when all is well:
    every distinct (instance, day) stored exactly once with one of the contents sent for it, each
    report whole, every other variant in the review queue as a conflict, the daily table true."""
    found = []
    stored = Counter(tuple(s["key"]) for s in facts["submissions"])
    expected = workload.expected_keys
    if set(stored) != expected:
        found.append(
            f"stored keys differ: {len(expected - set(stored))} missing, {len(set(stored) - expected)} extra"
        )
    if any(n > 1 for n in stored.values()):
        found.append(f"{sum(n > 1 for n in stored.values())} keys stored more than once")
    variants = workload.variants()
    winners = {}
    for s in facts["submissions"]:
        key = tuple(s["key"])
        winners[key] = s["content_hash"]
        if key in variants and s["content_hash"] not in variants[key]:
            found.append(f"{key} stored with content never sent")
        if not s["whole"]:
            found.append(f"{key} is partial: its project or workflow rows differ from its counts")
    if (facts["projects"], facts["workflows"]) != (facts["projects_claimed"], facts["workflows_claimed"]):
        found.append(
            f"rows without a whole report: {facts['projects']} projects, {facts['workflows']} workflows "
            f"stored; the reports count {facts['projects_claimed']} and {facts['workflows_claimed']}"
        )
    losers = {
        body_hash(body)
        for body, key, content in zip(workload.bodies, workload.keys, workload.hashes, strict=True)
        if winners.get(key) not in (None, content)
    }
    queued = {
        r["body_hash"] for r in facts["review"] if r["reason"] == "conflict" and r["status"] == "pending"
    }
    if queued != losers:
        found.append(f"review queue: {len(losers - queued)} conflicts missing, {len(queued - losers)} extra")
    if not facts["aggregates_equal_rebuild"]:
        found.append("the daily table differs from a full rebuild")
    if facts["reports_counted"] != len(facts["submissions"]):
        found.append(f"the daily table counts {facts['reports_counted']} reports for {len(stored)} stored")
    return found


if __name__ == "__main__" and sys.argv[1:] == ["audit"]:
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    print(json.dumps(audit()))
