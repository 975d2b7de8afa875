"""Benchmark 1, ingestion: the production server on PostgreSQL under concurrent clients, against the
ceiling of the stack measured on the same server in the same run. Not a test; `make bench-ingest`.

What it does, all throw-away:
1. a PostgreSQL cluster with default settings (durable commits, as in production) in a temporary
   directory, and the project's migrations;
2. gunicorn with 2 x cores sync workers serving the project with production settings (DEBUG off,
   database cache) through bench/settings.py, which adds the no-op endpoint /bench/noop and turns
   the throttle off;
3. for a typical report (5 projects x 4 workflows) and a large one (100 x 50): wrk against the no-op
   endpoint, then against /api/metrics, every request a distinct report (bench/report.lua);
4. one report of each size profiled in-process: statements, time per part, top functions;
5. a Markdown summary on stdout and everything as JSON in bench/results/.

    make bench-ingest                      # or: .venv/bin/python bench/ingest.py --duration 15
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SIZES = {"typical": (5, 4), "large": (100, 50)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path:
    for candidate in [Path("/usr/lib/postgresql/15/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"))]:
        if (candidate / "initdb").exists():
            return candidate
    sys.exit("bench: PostgreSQL server binaries not found (apt-get install postgresql)")


@contextlib.contextmanager
def postgres():
    """A throw-away cluster with PostgreSQL's default settings; yields (DATABASE_URL, data directory)."""
    binaries = pg_bin()
    root = Path(tempfile.mkdtemp(prefix="impact-bench-pg."))
    data, port = root / "data", free_port()
    # PostgreSQL refuses to run as root: run its tools as the postgres user then (as scripts/pg.sh).
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(root, "postgres")

    def run(*cmd):
        return subprocess.run([*as_pg, *map(str, cmd)], check=True, cwd=root, capture_output=True)

    run(
        binaries / "initdb",
        "-D",
        data,
        "-A",
        "trust",
        "-U",
        "postgres",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
    )
    options = f"-k {root} -p {port} -c listen_addresses=127.0.0.1 -c max_connections=100"
    run(binaries / "pg_ctl", "-w", "-D", data, "-l", root / "log", "-o", options, "start")
    try:
        run(binaries / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "impact")
        yield f"postgres://postgres@127.0.0.1:{port}/impact", data
    finally:
        run(binaries / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def server_env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-" + uuid.uuid4().hex * 2,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "CACHE_URL": "dbcache://impact_cache",
        "REPORTS_THROTTLE_RATE": "1000000000/second",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }


@contextlib.contextmanager
def gunicorn(env: dict[str, str], workers: int, log: Path):
    """The production server: gunicorn reads the project's gunicorn.conf.py (sync workers, access log)
    from the working directory; only the address and the number of workers are set here."""
    port = free_port()
    cmd = [
        str(VENV_BIN / "gunicorn"),
        "impact.wsgi:application",
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        # Recycling a worker mid-run would lose its CPU time from the accounting (and cost a fork).
        "--max-requests=0",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                if healthy(url):
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError(f"gunicorn did not answer /healthz (see {log})")
            yield url, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def sample(template_text: str) -> str:
    """One real body from a template, as report.lua fills it in."""
    return (
        template_text.replace("@@HASH@@", "A" * 64)
        .replace("@@DATE@@", "2021-01-01")
        .replace("@@GENERATED@@", "2021-01-02T01:30:00.000000Z")
    )


def template(projects: int, workflows: int) -> str:
    """A format 3 report as Lightning sends it, with placeholders for what each request varies."""
    sys.path.insert(0, str(ROOT))
    from reports.formats import hash_uuid

    def h(n: int) -> str:
        return hash_uuid(uuid.UUID(int=n, version=4))

    data = {
        "generated_at": "@@GENERATED@@",
        "instance": {
            "cleartext_uuid": None,
            "hashed_uuid": "@@HASH@@",
            "no_of_active_users": 40,
            "no_of_monthly_active_users": 25,
            "no_of_users": 60,
            "operating_system": "linux",
            "version": "v2.14.1:match:0f3c2aa",
        },
        "projects": [
            {
                "cleartext_uuid": None,
                "hashed_uuid": h(p + 1),
                "no_of_active_users": 6,
                "no_of_monthly_active_users": 4,
                "no_of_users": 9,
                "workflows": [
                    {
                        "cleartext_uuid": None,
                        "hashed_uuid": h(1_000_000 + p * 1000 + w),
                        "no_of_active_jobs": 3,
                        "no_of_jobs": 4,
                        "no_of_runs": 17 + w,
                        "no_of_steps": 61 + w,
                    }
                    for w in range(workflows)
                ],
            }
            for p in range(projects)
        ],
        "report_date": "@@DATE@@",
        "version": "3",
    }
    text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    # sort_keys puts generated_at before the instance hash and report_date last: reorder the marks
    # to the order report.lua expects (HASH, DATE, GENERATED) by construction instead.
    return text.replace('"generated_at":"@@GENERATED@@",', "", 1).replace(
        '"report_date":"@@DATE@@"', '"report_date":"@@DATE@@","generated_at":"@@GENERATED@@"', 1
    )


def wrk(url: str, path: str, template_file: Path, tag: str, *, duration: int, threads: int, connections: int):
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout=30s",
        "-s",
        str(ROOT / "bench" / "report.lua"),
        url,
        "--",
        path,
        str(template_file),
        tag,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("BENCH "))
    result = json.loads(line.removeprefix("BENCH "))
    result["rps"] = result["requests"] / result["seconds"]
    return result


@contextlib.contextmanager
def wait_sampler(database_url: str, every: float = 0.05):
    """Sample what the database's active backends are doing (CPU, or waiting on a lock, I/O...)
    while a run goes on; yields a Counter filled in as it samples."""
    import psycopg

    counts: Counter = Counter()
    stop = threading.Event()
    query = (
        "SELECT coalesce(wait_event_type || ':' || wait_event, 'running') FROM pg_stat_activity "
        "WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()"
    )

    def sample():
        with psycopg.connect(database_url, autocommit=True) as conn:
            while not stop.wait(every):
                for (what,) in conn.execute(query):
                    counts[what] += 1
                counts["(samples)"] += 1

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield counts
    finally:
        stop.set()
        thread.join()


def _tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of a process and its children, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total, parents = 0.0, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            own = int(fields[11]) + int(fields[12])  # utime, stime
            reaped = int(fields[13]) + int(fields[14])  # cutime, cstime: children that have exited
            parents[pid] = (int(fields[1]), own / tick, reaped / tick)
    for pid, (ppid, own, reaped) in parents.items():
        if pid == root:
            # The children that exited (backends of closed connections) are counted here.
            total += own + reaped
        elif ppid == root:
            total += own
    return total


def cpu_seconds(gunicorn_pid: int, postmaster_pid: int) -> dict[str, float]:
    """CPU used so far by the server (gunicorn master and workers), PostgreSQL (every backend and
    helper process) and the load generator (wrk, a finished child of this process)."""
    return {
        "gunicorn": _tree_cpu(gunicorn_pid),
        "postgres": _tree_cpu(postmaster_pid),
        "wrk": sum(
            getattr(resource.getrusage(resource.RUSAGE_CHILDREN), f) for f in ("ru_utime", "ru_stime")
        ),
    }


def count_submissions(env: dict[str, str]) -> int:
    code = "from reports.models import Submission; print(Submission.objects.count())"
    out = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-c", code],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def profile(env: dict[str, str], template_file: Path, tag: str) -> dict:
    """Run bench/profile_ingest.py in a fresh process with the server's settings."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "profile_ingest.py"), str(template_file), tag],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout
    return json.loads(out.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run (default 15)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1), help="gunicorn workers")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each pair of runs (default 1)")
    parser.add_argument("--sizes", default="typical,large", help="which reports (default typical,large)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk not found (apt-get install wrk)")

    started = dt.datetime.now(dt.UTC)
    work = Path(tempfile.mkdtemp(prefix="impact-bench."))
    results: dict = {
        "started": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "wrk": f"-t{args.threads} -c{args.connections} -d{args.duration}s",
        "gunicorn_workers": args.workers,
        "runs": [],
        "profiles": {},
    }
    with postgres() as (database_url, pg_data):
        env = server_env(database_url)
        subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"],
            env=env,
            check=True,
            cwd=ROOT,
        )
        with gunicorn(env, args.workers, work / "gunicorn.log") as (url, gunicorn_pid):
            postmaster = int((pg_data / "postmaster.pid").read_text().split()[0])
            tags = iter(f"{n:02X}" for n in range(16, 256))
            for size in args.sizes.split(","):
                template_file = work / f"{size}.json"
                template_file.write_text(template(*SIZES[size]))
                results.setdefault("bytes", {})[size] = len(sample(template_file.read_text()))
                for round_number in range(args.rounds):
                    # A short warm-up of each endpoint first (imports, connections, caches).
                    for path in ("/bench/noop", "/api/metrics"):
                        wrk(url, path, template_file, next(tags), duration=2, threads=1, connections=2)
                    pair = {}
                    for kind, path in (("noop", "/bench/noop"), ("ingest", "/api/metrics")):
                        before = count_submissions(env) if kind == "ingest" else 0
                        cpu_before = cpu_seconds(gunicorn_pid, postmaster)
                        with wait_sampler(database_url) as waits:
                            run = wrk(
                                url,
                                path,
                                template_file,
                                next(tags),
                                duration=args.duration,
                                threads=args.threads,
                                connections=args.connections,
                            )
                        cpu = {k: v - cpu_before[k] for k, v in cpu_seconds(gunicorn_pid, postmaster).items()}
                        run["cpu_ms_per_request"] = {
                            k: round(v * 1000 / run["requests"], 2) for k, v in cpu.items()
                        }
                        samples = waits.pop("(samples)", 0) or 1
                        # Average number of database backends in each state during the run.
                        run["db_backends"] = {k: round(v / samples, 2) for k, v in waits.most_common()}
                        if kind == "ingest":
                            run["stored"] = count_submissions(env) - before
                        # Other work on the machine skews everything: the load is kept with the figures.
                        run.update(
                            size=size, kind=kind, round=round_number + 1, load_after=os.getloadavg()[0]
                        )
                        pair[kind] = run
                        results["runs"].append(run)
                        print(
                            f"{size:8} {kind:6} {run['rps']:8.1f} req/s  p50 {run['p50_ms']:.1f} ms  "
                            f"p99 {run['p99_ms']:.1f} ms  statuses {run['statuses']}",
                            flush=True,
                        )
                    pair["ingest"]["ratio_to_noop"] = pair["ingest"]["rps"] / pair["noop"]["rps"]
        for size in args.sizes.split(","):
            results["profiles"][size] = profile(env, work / f"{size}.json", next(tags))
    shutil.rmtree(work, ignore_errors=True)

    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    out_file = out_dir / f"ingest-{started:%Y%m%dT%H%M%SZ}.json"
    out_file.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(markdown(results))
    print(f"\n(all figures: {out_file.relative_to(ROOT)})")


def markdown(results: dict) -> str:
    lines = [
        f"wrk {results['wrk']}, gunicorn {results['gunicorn_workers']} sync workers, "
        f"{results['machine']['cpus']} CPUs, {results['started']}; 1-minute load average after each run: "
        + ", ".join(f"{r['load_after']:.1f}" for r in results["runs"]),
        "",
        "| report | endpoint | round | req/s | p50 ms | p99 ms | ratio to no-op | answers "
        "| CPU ms per request: gunicorn / postgres / wrk | database backends busy (mean), by state |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        ratio = f"{run['ratio_to_noop']:.0%}" if "ratio_to_noop" in run else ""
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(run["statuses"].items()))
        backends = ", ".join(f"{k} {v}" for k, v in run.get("db_backends", {}).items())
        cpu = " / ".join(f"{v:.1f}" for v in run["cpu_ms_per_request"].values())
        if run["socket_errors"]:
            answers += f", socket errors: {run['socket_errors']}"
        kb = results["bytes"][run["size"]] / 1024
        lines.append(
            f"| {run['size']} ({kb:,.1f} KB) | {run['kind']} | {run['round']} | {run['rps']:,.1f} "
            f"| {run['p50_ms']:.1f} | {run['p99_ms']:.1f} | {ratio} | {answers} | {cpu} | {backends} |"
        )
    for size, p in results["profiles"].items():
        lines += [
            "",
            f"Profile of one {size} report (in-process, medians over {p['repeats']} distinct reports):",
            "",
        ]
        lines += [f"- {name}: {ms:.2f} ms" for name, ms in p["ms"].items()]
        lines.append(
            f"- statements per report: {p['statements']} "
            f"({p['statements_with_throttle']} with the throttle on): " + ", ".join(p["statement_kinds"])
        )
        lines.append("- ms by statement: " + ", ".join(f"{k} {v}" for k, v in p["ms_by_statement"].items()))
        lines.append(
            "- ms by part, under cProfile: "
            + ", ".join(f"{k} {v}" for k, v in p["ms_by_part_under_cprofile"].items())
        )
        lines += ["", "```", p["top"].rstrip(), "```"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
