"""Benchmark 2, reliability: bigger versions of tests/test_load.py, tests/test_faults.py and
tests/test_fuzz.py, run outside the test suite; writes docs/reliability.md. Not a test:
`make bench-reliability` (about 10 minutes on 2 cores).

Every part runs against the production server (gunicorn with gunicorn.conf.py and impact.settings,
nothing but the environment) on a throw-away PostgreSQL cluster with durable commits, each part on
a database of its own:

1. load: 20,000 reports from 16 threads, 30% of them exact duplicates or conflicting variants;
2. throttle: 30 requests from one client at 10/minute across all worker processes;
3. bodies: cut-short bodies, then slow clients holding some, then all, of the workers;
4. schemathesis: the `schemathesis run` CLI against the live server's /api/schema/;
5. faults: 6,000 reports sent as Lightning does (re-sent until accepted) while the database is
   stopped twice, once cleanly (fast) and once as in a crash (immediate);
6. hypothesis: the property-based tests of tests/test_fuzz.py under several seeds.

Each part checks what it sent against what is stored (tests/servers.py `audit` and `problems`),
prints its figures, and all of them go to bench/results/reliability-*.json and docs/reliability.md.

    make bench-reliability
    .venv/bin/python bench/reliability.py --only load --requests 5000     # one part, smaller
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# (bench/* may import after code: E402 is off there, so that tests/ is importable first)
from tests.factories import instance_hash, report
from tests.servers import (
    VENV_BIN,
    Answer,
    Gunicorn,
    PostgresCluster,
    SlowClient,
    audit_via,
    django_run,
    make_workload,
    pg_bin,
    post,
    problems,
    production_env,
    read_until_closed,
    request_head,
    send_all,
)

PARTS = ("load", "throttle", "bodies", "schemathesis", "faults", "hypothesis")
CORES = os.cpu_count() or 1
WORKERS = 2 * CORES  # gunicorn.conf.py's default
COMMAND = ".venv/bin/python bench/reliability.py"


def say(*args) -> None:
    print(*args, flush=True)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latencies(answers: list[Answer]) -> dict[str, float]:
    seconds = [a.seconds for a in answers]
    return {
        "p50_ms": round(percentile(seconds, 50) * 1000, 1),
        "p99_ms": round(percentile(seconds, 99) * 1000, 1),
        "max_ms": round(max(seconds, default=0) * 1000, 1),
    }


def database(cluster: PostgresCluster, name: str, **overrides: str) -> dict[str, str]:
    """A fresh, migrated database in the cluster; the production environment for it."""
    cluster.createdb(name)
    env = production_env(cluster.url(name), **overrides)
    django_run(env, "migrate", "--noinput")
    return env


def stored_once(workload, facts: dict) -> dict:
    """What was lost or doubled, from an audit: the headline of every part that sends reports."""
    stored = Counter(tuple(s["key"]) for s in facts["submissions"])
    expected = workload.expected_keys
    return {
        "distinct_reports_sent": len(expected),
        "stored": len(facts["submissions"]),
        "lost": len(expected - set(stored)),
        "stored_twice": sum(1 for n in stored.values() if n > 1),
        "partial": sum(1 for s in facts["submissions"] if not s["whole"]),
        "conflicts_queued": sum(
            1 for r in facts["review"] if r["reason"] == "conflict" and r["status"] == "pending"
        ),
        "aggregates_equal_rebuild": facts["aggregates_equal_rebuild"],
        "problems": problems(workload, facts),
    }


# --- 1. Load -------------------------------------------------------------------------------------


def part_load(cluster: PostgresCluster, args) -> dict:
    n = args.requests
    workload = make_workload(distinct=n * 7 // 10, duplicates=n * 2 // 10, conflicts=n // 10, seed=args.seed)
    env = database(cluster, "load")
    with Gunicorn(env, workers=WORKERS) as server:
        t0 = time.monotonic()
        answers = send_all(server.url, workload.bodies, threads=16)
        seconds = time.monotonic() - t0
    facts = audit_via(env)
    words = Counter(a.word for a in answers)
    conflict_receipts = sum(r["times_received"] for r in facts["review"] if r["reason"] == "conflict")
    return {
        "workload": workload.summary(),
        "threads": 16,
        "workers": WORKERS,
        "seconds": round(seconds, 1),
        "requests_per_second": round(len(answers) / seconds, 1),
        "statuses": dict(Counter(str(a.status) for a in answers)),
        "answers": dict(words),
        "latency": latencies(answers),
        "conflict_answers_counted_in_queue": conflict_receipts,
        **stored_once(workload, facts),
    }


# --- 2. Throttle across processes ----------------------------------------------------------------


def part_throttle(cluster: PostgresCluster, args) -> dict:
    env = database(cluster, "throttle", REPORTS_THROTTLE_RATE="10/minute")
    statuses, retry_after = [], []
    with Gunicorn(env, workers=WORKERS, extra_args=["--access-logformat=PID %(p)s %(m)s %(s)s"]) as server:
        for n in range(30):
            with httpx.Client(timeout=10) as client:  # a new connection each time
                r = client.post(f"{server.url}/api/metrics", json=report(instance=f"throttled-{n}"))
            statuses.append(r.status_code)
            if r.status_code == 429:
                retry_after.append(int(r.headers["Retry-After"]))
        log = server.log()
    answered = re.findall(r"^PID <(\d+)> POST (\d{3})$", log, re.M)
    by_process: dict[str, Counter] = {}
    for pid, status in answered:
        by_process.setdefault(pid, Counter())[status] += 1
    facts = audit_via(env)
    return {
        "workers": WORKERS,
        "rate": "10/minute",
        "requests": len(statuses),
        "accepted": sum(1 for s in statuses if s == 201),
        "refused_429": sum(1 for s in statuses if s == 429),
        "other": sum(1 for s in statuses if s not in (201, 429)),
        "retry_after_seconds": [min(retry_after, default=0), max(retry_after, default=0)],
        "processes_answering": len(by_process),
        "answers_by_process": [dict(c) for c in by_process.values()],
        "stored": len(facts["submissions"]),
    }


# --- 3. Bodies: cut short, slow ------------------------------------------------------------------


def part_bodies(cluster: PostgresCluster, args) -> dict:
    timeout = 5
    env = database(cluster, "bodies")
    big = json.dumps(report(instance="cut", projects=10, workflows=3)).encode()
    results: dict = {"gunicorn_timeout_seconds": timeout, "workers": WORKERS}
    with Gunicorn(env, workers=WORKERS, timeout=timeout) as server:
        # Cut short: half closed mid-body at a random point, half a whole valid report declared longer.
        cut_answers = Counter()
        for i in range(args.cut_bodies):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                if i % 2:
                    sock.sendall(request_head(len(big)) + big[: 1 + (i * 997) % (len(big) - 1)])
                    cut_answers["(closed by the client at once)"] += 1
                else:
                    valid = json.dumps(report(instance=f"cut-{i}")).encode()
                    sock.sendall(request_head(len(valid) + 1 + i) + valid)
                    sock.shutdown(socket.SHUT_WR)
                    cut_answers[read_until_closed(sock).partition(b"\r\n")[0].decode()] += 1
        results["cut_short"] = {"sent": args.cut_bodies, "answers": dict(cut_answers)}

        body = json.dumps(report(instance="slow", projects=10, workflows=3)).encode()
        request = request_head(len(body)) + body
        head_length = len(request_head(len(body)))

        def hold(count: int) -> tuple[list[SlowClient], list[Answer]]:
            """`count` slow clients (stalled, trickled body, trickled headers in turn) and, meanwhile,
            normal reports one after another; both as they ended."""
            kinds = [
                {"first": head_length + 3000, "stall": True},
                {"first": head_length},
                {"first": 10},
            ]
            slow = [SlowClient(server.port, request, **kinds[i % 3]) for i in range(count)]
            for client in slow:
                client.start()
            time.sleep(0.5)
            served = []
            with httpx.Client(timeout=30) as http:
                n = 0
                while any(c.is_alive() for c in slow) and n < 200:
                    body = json.dumps(report(instance=f"meanwhile-{count}-{n}")).encode()
                    served.append(post(http, server.url, n, body))
                    n += 1
                    time.sleep(0.2)
            for client in slow:
                client.join(timeout=10)
            return slow, served

        for label, count in (("some_workers_held", WORKERS - 1), ("all_workers_held", WORKERS)):
            slow, served = hold(count)
            results[label] = {
                "slow_clients": count,
                "freed_after_seconds": sorted(round(c.closed_after or -1, 1) for c in slow),
                "slow_client_answers": dict(
                    Counter(c.answer.partition(b"\r\n")[0].decode() or "(closed, no answer)" for c in slow)
                ),
                "served_meanwhile": len(served),
                "served_statuses": dict(Counter(str(a.status) for a in served)),
                "served_latency": latencies(served),
            }
            time.sleep(2)  # the replacement workers boot
        after = httpx.post(f"{server.url}/api/metrics", json=report(instance="after"), timeout=10)
        results["after"] = after.status_code
        results["worker_timeouts_logged"] = server.log().count("WORKER TIMEOUT")
    facts = audit_via(env)
    never = {instance_hash("slow"), instance_hash("cut")} | {
        instance_hash(f"cut-{i}") for i in range(args.cut_bodies)
    }
    results["stored_from_cut_or_slow_bodies"] = sum(1 for s in facts["submissions"] if s["key"][0] in never)
    results["stored_total"] = len(facts["submissions"])
    return results


# --- 4. schemathesis against the live server -----------------------------------------------------


def part_schemathesis(cluster: PostgresCluster, args) -> dict:
    env = database(
        cluster, "schema", REPORTS_THROTTLE_RATE="1000000/minute", STATS_THROTTLE_RATE="1000000/minute"
    )
    with Gunicorn(env, workers=WORKERS) as server:
        cmd = [
            str(VENV_BIN / "schemathesis"),
            "run",
            f"{server.url}/api/schema/",
            "--checks",
            "all",
            # As in tests/test_fuzz.py: an invalid report is answered 202 and kept on purpose, and
            # some rules (date ranges) are beyond what OpenAPI can say.
            "--exclude-checks",
            "negative_data_rejection,positive_data_acceptance",
            "--max-examples",
            str(args.schemathesis_examples),
            "--seed",
            str(args.seed),
            "--workers",
            "2",
        ]
        t0 = time.monotonic()
        # From a scratch directory: schemathesis keeps a .schemathesis/ cache in its working directory.
        with tempfile.TemporaryDirectory() as scratch:
            done = subprocess.run(cmd, cwd=scratch, capture_output=True, text=True, timeout=1800, check=False)
        seconds = time.monotonic() - t0
        log = server.log()
    facts = audit_via(env)
    access = re.findall(r'" (\d{3}) ', log)
    return {
        "command": " ".join(["schemathesis", *cmd[1:2], "http://127.0.0.1:PORT/api/schema/", *cmd[3:]]),
        "exit_code": done.returncode,
        "seconds": round(seconds, 1),
        **schemathesis_outcome(done.stdout),
        "server_answers": dict(Counter(access)),
        "server_5xx": sum(1 for s in access if s.startswith("5")),
        "reports_stored": len(facts["submissions"]),
        "partial": sum(1 for s in facts["submissions"] if not s["whole"]),
        "aggregates_equal_rebuild": facts["aggregates_equal_rebuild"],
        "output": done.stdout,
    }


def schemathesis_outcome(out: str) -> dict:
    """Test cases, passes and each failure (its check, the answer, and a curl to reproduce it) from
    the CLI's output, e.g. "Test cases: 3342 generated, 1 found 1 unique failure"."""
    generated = re.search(r"(\d+) generated", out)
    passed = re.search(r"generated, (\d+) passed", out)
    failed = re.search(r"(\d+) unique failures?", out)
    failures = []
    for block in re.split(r"\n\d+\. Test Case ID: ", out)[1:]:
        check = re.search(r"^- (ST\d+ [^\n]+)", block, re.M)
        answer = re.search(r"^\[(\d{3})\][^\n]*", block, re.M)
        curl = re.search(r"^\s*(curl [^\n]+)", block, re.M)
        failures.append(
            {
                "check": check.group(1) if check else "",
                "answer": answer.group(0).rstrip(":") if answer else "",
                "reproduce": re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", curl.group(1)) if curl else "",
            }
        )
    return {
        "test_cases": int(generated.group(1)) if generated else 0,
        "passed": int(passed.group(1)) if passed else 0,
        "failed": int(failed.group(1)) if failed else len(failures),
        "failures": failures,
    }


# --- 5. The database stops mid-load --------------------------------------------------------------


class Faults:
    """Stops the database each time the number of accepted reports passes a threshold, keeps it down
    for `down` seconds, starts it again, and records what /healthz said and when it recovered."""

    def __init__(self, cluster: PostgresCluster, server: Gunicorn, plan: list[tuple[int, str]], down: float):
        self.cluster, self.server, self.plan, self.down = cluster, server, list(plan), down
        self.accepted = 0
        self.lock = threading.Lock()
        self.outages: list[dict] = []
        self.threads: list[threading.Thread] = []
        self.busy = False

    def on_answer(self, answer: Answer) -> None:
        with self.lock:
            self.accepted += answer.ok
            if self.plan and not self.busy and self.accepted >= self.plan[0][0]:
                _, mode = self.plan.pop(0)
                self.busy = True
                thread = threading.Thread(target=self.outage, args=(mode,), daemon=True)
                self.threads.append(thread)
                thread.start()

    def outage(self, mode: str) -> None:
        record = {"mode": mode, "after_accepted": self.accepted, "health_during": Counter()}
        record["stop_at"] = time.monotonic()
        self.cluster.stop(mode)
        record["stopped_at"] = time.monotonic()
        while time.monotonic() - record["stop_at"] < self.down:
            record["health_during"][str(self.server.health(timeout=10))] += 1
            time.sleep(0.25)
        record["start_at"] = time.monotonic()
        self.cluster.start()
        record["started_at"] = time.monotonic()
        while time.monotonic() - record["started_at"] < 60:
            if self.server.health() == 200:
                break
            time.sleep(0.05)
        record["healthy_at"] = time.monotonic()
        self.outages.append(record)
        with self.lock:
            self.busy = False

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=120)


def send_like_lightning(
    url: str, bodies: list[bytes], *, threads: int, pause: float, on_answer, deadline: float
) -> list[list[Answer]]:
    """Each body is posted until it is answered 2xx, waiting `pause` seconds after any other answer
    (Lightning waits Retry-After, a minute; scaled down here). Every attempt is recorded."""
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(bodies)):
        todo.put(i)
    attempts: list[list[Answer]] = [[] for _ in bodies]

    def work():
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < deadline:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                while time.monotonic() < deadline:
                    answer = post(client, url, i, bodies[i])
                    attempts[i].append(answer)
                    on_answer(answer)
                    if answer.ok:
                        break
                    time.sleep(pause)

    pool = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=max(0, deadline - time.monotonic()) + 60)
    return attempts


def part_faults(cluster: PostgresCluster, args) -> dict:
    n = args.fault_requests
    workload = make_workload(
        distinct=n * 7 // 10, duplicates=n * 2 // 10, conflicts=n // 10, seed=args.seed + 1
    )
    env = database(cluster, "faults")
    plan = [(len(workload.bodies) // 4, "fast"), (len(workload.bodies) * 6 // 10, "immediate")]
    with Gunicorn(env, workers=WORKERS) as server:
        faults = Faults(cluster, server, plan, down=args.outage_seconds)
        t0 = time.monotonic()
        attempts = send_like_lightning(
            server.url,
            workload.bodies,
            threads=16,
            pause=0.5,
            on_answer=faults.on_answer,
            deadline=t0 + 1800,
        )
        seconds = time.monotonic() - t0
        faults.join()
    facts = audit_via(env)
    everything = [a for per_body in attempts for a in per_body]
    outages = []
    for o in faults.outages:
        # What clients saw from the stop until the first report accepted after the restart.
        after_start = [a.at for a in everything if a.ok and a.at > o["started_at"]]
        recovered_at = min(after_start, default=o["healthy_at"])
        window = [a for a in everything if o["stop_at"] <= a.at <= recovered_at]
        outages.append(
            {
                "mode": o["mode"],
                "after_accepted": o["after_accepted"],
                "database_down_seconds": round(o["started_at"] - o["stop_at"], 2),
                "health_during": dict(o["health_during"]),
                "answers_during": dict(Counter(str(a.status) for a in window)),
                "slowest_answer_during_ms": round(max((a.seconds for a in window), default=0) * 1000, 1),
                "healthz_200_after_start_seconds": round(o["healthy_at"] - o["started_at"], 2),
                "first_report_accepted_after_start_seconds": round(recovered_at - o["started_at"], 2),
            }
        )
    retried = [per_body for per_body in attempts if len(per_body) > 1]
    return {
        "workload": workload.summary(),
        "threads": 16,
        "workers": WORKERS,
        "faults_injected": len(faults.outages),
        "outages": outages,
        "seconds": round(seconds, 1),
        "attempts": len(everything),
        "statuses": dict(Counter(str(a.status) for a in everything)),
        "503_with_retry_after": sum(1 for a in everything if a.status == 503 and a.retry_after),
        "transport_errors": dict(Counter(a.error for a in everything if a.status is None)),
        "reports_re_sent": len(retried),
        "most_attempts_for_one_report": max((len(p) for p in attempts), default=0),
        "never_accepted": sum(1 for p in attempts if not (p and p[-1].ok)),
        "latency": latencies(everything),
        **stored_once(workload, facts),
    }


# --- 6. hypothesis -------------------------------------------------------------------------------


def part_hypothesis(args) -> dict:
    """tests/test_fuzz.py's property-based tests (not the schemathesis one: part 4 runs that against a
    live server), once per seed: each seed draws different examples. On SQLite, as the suite's first
    pass does."""
    totals: Counter = Counter()
    per_test: Counter = Counter()
    failed_runs = 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.hypothesis_seeds + 1):
            env = {
                **{k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "CACHE_URL")},
                "DATABASE_URL": f"sqlite:///{tmp}/fuzz.sqlite3",
            }
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "tests/test_fuzz.py",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "-k",
                    "not test_api_schema",
                    "--hypothesis-show-statistics",
                    f"--hypothesis-seed={seed}",
                ],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
            failed_runs += done.returncode != 0
            for name, block in re.findall(
                r"^tests/test_fuzz\.py::(\w+):\n(.*?)(?=^\S|\Z)", done.stdout, re.M | re.S
            ):
                # One line per phase (reuse of saved examples, generate, shrink): all of them count.
                for counts in re.findall(r"(\d+) passing, (\d+) failing, and (\d+) invalid", block):
                    passing, failing, invalid = map(int, counts)
                    totals.update(passing=passing, failing=failing, invalid=invalid)
                    per_test[name] += passing + failing
    return {
        "seeds": args.hypothesis_seeds,
        "runs_failed": failed_runs,
        "seconds": round(time.monotonic() - t0, 1),
        "examples_run": totals["passing"] + totals["failing"],
        "failing": totals["failing"],
        "invalid_discarded": totals["invalid"],
        "examples_per_test": dict(per_test),
    }


# --- The report ----------------------------------------------------------------------------------


def machine() -> dict:
    pg = subprocess.run(
        [str(pg_bin() / "postgres"), "-V"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    gunicorn = subprocess.run(
        [str(VENV_BIN / "gunicorn"), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": CORES,
        "load_average_at_start": [round(x, 1) for x in os.getloadavg()],
        "python": platform.python_version(),
        "postgresql": pg,
        "gunicorn": gunicorn,
    }


TEMPLATE = Path(__file__).with_name("reliability.template.md")


class Fields:
    """A result dict read by attribute, for the template's {load.latency.p50_ms} style fields."""

    def __init__(self, data: dict):
        self._data = data

    def __getattr__(self, name: str):
        try:
            value = self._data[name]
        except KeyError:
            raise AttributeError(name) from None
        return Fields(value) if isinstance(value, dict) else value


def listing(counts: dict) -> str:
    """{"201": 5, "200": 2} -> "2 x 200, 5 x 201"."""
    return ", ".join(f"{count:,} x {key}" for key, count in sorted(counts.items())) or "none"


def render(r: dict) -> str:
    """docs/reliability.md from one run of every part: the template's fields, plus the sentences and
    table rows that are built from lists."""
    load, thr, bod, flt, hyp = (r[p] for p in ("load", "throttle", "bodies", "faults", "hypothesis"))
    some, every = bod["some_workers_held"], bod["all_workers_held"]
    outage_rows = [
        f"| {i} | `{o['mode']}` | {o['after_accepted']:,} accepted | {o['database_down_seconds']} s "
        f"| {listing(o['answers_during'])} | {listing(o['health_during'])} "
        f"| {o['slowest_answer_during_ms']:,} ms | {o['healthz_200_after_start_seconds']} s "
        f"| {o['first_report_accepted_after_start_seconds']} s |"
        for i, o in enumerate(flt["outages"], 1)
    ]
    derived = {
        "command": COMMAND,
        "results_file": r.get("results_file", "bench/results/"),
        "lost_total": load["lost"] + flt["lost"],
        "load_average": r["machine"]["load_average_at_start"][0],
        "slow_total": some["slow_clients"] + every["slow_clients"],
        "hyp_per_test": ", ".join(f"`{k}` {v:,}" for k, v in hyp["examples_per_test"].items()),
        "hyp_suite_examples": sum(hyp["examples_per_test"].values()) // max(1, hyp["seeds"]),
        "schema_answers": listing(r["schemathesis"]["server_answers"]),
        "schema_failures": "\n"
        + "".join(
            f"\n- `{f['check']}`: {f['answer']}, for\n\n  ```sh\n  {f['reproduce']}\n  ```\n"
            for f in r["schemathesis"]["failures"]
        )
        if r["schemathesis"]["failures"]
        else " none.",
        "load_statuses": listing(load["statuses"]),
        "load_words": ", ".join(f"{v:,} {k}" for k, v in sorted(load["answers"].items())),
        "load_problems": "; ".join(load["problems"]) or "none",
        "load_conflict_answers": load["answers"].get("conflict", 0),
        "thr_retry_after": "-".join(str(x) for x in thr["retry_after_seconds"]),
        "thr_by_process": "; ".join(listing(c) for c in thr["answers_by_process"]),
        "thr_refused_early": sum(
            1 for c in thr["answers_by_process"] if c.get("429") and c.get("201", 0) < 10
        ),
        "outage_rows": "\n".join(outage_rows),
        "faults_statuses": listing(flt["statuses"]),
        "faults_transport_errors": sum(flt["transport_errors"].values()),
        "faults_problems": "; ".join(flt["problems"]) or "none",
        "cut_answers": listing(bod["cut_short"]["answers"]),
        "some_freed": ", ".join(str(x) for x in some["freed_after_seconds"]),
        "some_answers": listing(some["slow_client_answers"]),
        "some_served": listing(some["served_statuses"]),
        "every_freed": ", ".join(str(x) for x in every["freed_after_seconds"]),
        "every_served": listing(every["served_statuses"]),
        "freed_range": "{}-{}".format(
            min(some["freed_after_seconds"] + every["freed_after_seconds"]),
            max(some["freed_after_seconds"] + every["freed_after_seconds"]),
        ),
    }
    fields = {
        "m": Fields(r["machine"]),
        "args": Fields(r["arguments"]),
        "load": Fields(load),
        "thr": Fields(thr),
        "bod": Fields(bod),
        "some": Fields(some),
        "every": Fields(every),
        "st": Fields(r["schemathesis"]),
        "flt": Fields(flt),
        "hyp": Fields(hyp),
        **derived,
    }
    return TEMPLATE.read_text().format_map(fields)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts of: {','.join(PARTS)}"
    )
    parser.add_argument("--requests", type=int, default=20000, help="load: reports sent (default 20000)")
    parser.add_argument("--fault-requests", type=int, default=6000, help="faults: reports sent (6000)")
    parser.add_argument("--outage-seconds", type=float, default=3.0, help="faults: database down (3)")
    parser.add_argument("--cut-bodies", type=int, default=100, help="bodies: cut-short requests (100)")
    parser.add_argument("--schemathesis-examples", type=int, default=300, help="per operation (300)")
    parser.add_argument("--hypothesis-seeds", type=int, default=10, help="runs of test_fuzz.py (10)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--doc", default=str(ROOT / "docs" / "reliability.md"), help="'' to skip")
    parser.add_argument(
        "--render",
        metavar="RESULTS_JSON",
        help="only write the doc again from a results file (after a template edit)",
    )
    args = parser.parse_args()
    if args.render:
        results = json.loads(Path(args.render).read_text())
        st = results["schemathesis"]
        if "failures" not in st:  # a results file from before failures were recorded one by one
            st.update(schemathesis_outcome(st.get("output") or st.get("tail", "")))
        results["results_file"] = str(Path(args.render).resolve().relative_to(ROOT))
        Path(args.doc).write_text(render(results))
        say(f"written: {args.doc}")
        return 0
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")

    results: dict = {"machine": machine(), "arguments": vars(args)}
    say(f"bench/reliability.py: {', '.join(parts)} on {CORES} cores, {WORKERS} gunicorn workers")
    server_parts = [p for p in parts if p != "hypothesis"]
    if server_parts:
        with PostgresCluster(durable=True) as cluster:
            for part in server_parts:
                say(f"\n== {part}")
                t0 = time.monotonic()
                results[part] = globals()[f"part_{part}"](cluster, args)
                say(json.dumps(results[part], indent=1, default=str))
                say(f"== {part}: {time.monotonic() - t0:.0f}s")
    if "hypothesis" in parts:
        say("\n== hypothesis")
        results["hypothesis"] = part_hypothesis(args)
        say(json.dumps(results["hypothesis"], indent=1))

    out = ROOT / "bench" / "results" / f"reliability-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    say(f"\nresults: {out.relative_to(ROOT)}")
    if args.doc and set(parts) == set(PARTS):
        results["results_file"] = str(out.relative_to(ROOT))
        Path(args.doc).write_text(render(results))
        say(f"written: {args.doc}")
    elif args.doc:
        say("(docs/reliability.md is written only by a run of every part)")
    broken = failures(results)
    for line in broken:
        say(f"FAILED: {line}")
    return 1 if broken else 0


def failures(r: dict) -> list[str]:
    """Every expectation a run did not meet (the exit status is 1 when there is any)."""
    out = []
    for part in ("load", "faults"):
        if part in r:
            p = r[part]
            if p["lost"] or p["stored_twice"] or p["partial"] or p["problems"]:
                out.append(f"{part}: {p['lost']} lost, {p['stored_twice']} stored twice, {p['problems']}")
    if "load" in r and set(r["load"]["statuses"]) - {"200", "201"}:
        out.append(f"load: answers other than 200/201: {r['load']['statuses']}")
    if "faults" in r:
        f = r["faults"]
        if set(f["statuses"]) - {"200", "201", "503"} or f["transport_errors"] or f["never_accepted"]:
            out.append(
                f"faults: {f['statuses']}, {f['transport_errors']}, {f['never_accepted']} never accepted"
            )
    if "throttle" in r and (r["throttle"]["accepted"] != 10 or r["throttle"]["other"]):
        out.append(f"throttle: {r['throttle']['accepted']} accepted, {r['throttle']['other']} other answers")
    if "bodies" in r and (r["bodies"]["stored_from_cut_or_slow_bodies"] or r["bodies"]["after"] != 201):
        out.append("bodies: a cut-short or slow body was stored, or the server did not serve afterwards")
    if "schemathesis" in r and (r["schemathesis"]["exit_code"] or r["schemathesis"]["server_5xx"]):
        out.append(
            f"schemathesis: exit {r['schemathesis']['exit_code']}, {r['schemathesis']['server_5xx']} 5xx"
        )
    if "hypothesis" in r and (r["hypothesis"]["failing"] or r["hypothesis"]["runs_failed"]):
        out.append(f"hypothesis: {r['hypothesis']['runs_failed']} runs failed")
    return out


if __name__ == "__main__":
    sys.exit(main())
