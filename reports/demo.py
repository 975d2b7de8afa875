"""A deterministic, realistic demo fleet: the reports a fleet of Lightning instances would send.

Pure Python, no database and no Django: `fleet()` simulates instances day by day and yields each
report, JSON-ready and exactly as Lightning would POST it, in the order the reports would arrive,
with the country the server would find for the instance's address. `seed_demo` stores them in bulk,
`send_reports` sends them over HTTP, and the tests compare the two.

What makes it look like a real fleet, so that the pages and benchmarks see realistic data:
- growth and churn: about a third of the instances exist when the window opens, the rest join over it
  (more of them later); some stop for good, some are short trials;
- rhythm: runs follow a weekly pattern (human-triggered workflows run far less at weekends, cron ones
  do not care), a yearly season with a year-end lull, and a ramp-up after an instance is installed;
- versions: releases every `release_every` days up to v2.14.x at the window's end; each instance
  upgrades at its own pace, never down. Most run tagged images (`vX.Y.Z:match:<sha>`), some track main
  (`:edge:<sha>`), some run their own builds (`:other:sanitised`). v2.0.x sends format 1 (all-time
  run totals, no report date, a plain version), v2.1 to v2.9 format 2, v2.10 and later format 3;
- an OS mix (Lightning runs in Docker, so nearly all "linux"), home countries weighted toward where
  OpenFn is used, a few operators who send their UUIDs in clear;
- projects, workflows, users and jobs that grow; plausible counts (active <= users, monthly active <=
  active, active jobs <= jobs, steps >= runs);
- gaps: missed nights, and outages; when only the network was down, the missed days' reports come
  later as a backfill (yielded later in the sequence, generated on the day they are sent);
- a few test instances worth excluding (absurd run counts, lifetimes of a few days), flagged `is_test`.

Hashes are computed from UUIDs as Lightning does (`formats.hash_uuid`); every UUID and count comes from
one `random.Random(seed)`, so the same arguments always give the same reports, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from .formats import EARLIEST_REPORT_DATE, hash_uuid

ONE_DAY = dt.timedelta(days=1)
LATEST_MINOR = 14  # the window ends with v2.14.x
# Where OpenFn is used: weights are relative.
COUNTRIES = (
    ("KE", 14), ("UG", 8), ("TZ", 6), ("NG", 7), ("ZA", 5), ("ET", 4), ("MZ", 4), ("MW", 3), ("ZM", 3),
    ("GH", 3), ("SN", 2), ("CM", 2), ("RW", 3), ("IN", 5), ("BD", 3), ("NP", 3), ("PH", 2), ("ID", 2),
    ("US", 8), ("GB", 4), ("DE", 3), ("FR", 2), ("CH", 3), ("BR", 2), ("CO", 2), ("GT", 2), ("HT", 2),
)  # fmt: skip
TEST_COUNTRIES = ("US", "DE")
# :os.type() on the machine running Lightning: Docker images are Linux; developers run macOS.
OPERATING_SYSTEMS = (("linux", 93), ("darwin", 6), ("nt", 1))
CHANNELS = (("match", 82), ("edge", 10), ("other", 8))
CLEARTEXT_SHARE = 0.12


@dataclass(frozen=True)
class DemoReport:
    """One report as sent: `data` is the JSON object, `country` what the server would see."""

    data: dict
    country: str
    instance_hash: str
    report_date: dt.date
    sent_on: dt.date  # the day after report_date, or later for a backfill
    is_test: bool  # from a test instance: worth excluding from the public figures

    @property
    def late(self) -> bool:
        return self.sent_on > self.report_date + ONE_DAY

    def body(self) -> bytes:
        return body(self.data)


def body(data: dict) -> bytes:
    """The request body Lightning sends: compact JSON; its small maps come out with sorted keys."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - ONE_DAY


# --- Releases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    major: int
    minor: int
    patch: int
    day: dt.date

    @property
    def number(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    @property
    def sha(self) -> str:
        # A release's commit is the same for every instance running it.
        return hashlib.sha1(f"lightning {self.number}".encode(), usedforsecurity=False).hexdigest()[:7]

    @property
    def format(self) -> str:
        if self.minor == 0:
            return "1"
        return "2" if self.minor < 10 else "3"


def releases(end: dt.date, release_every: int = 28) -> list[Release]:
    """v2.0.0 .. v2.14.x, a minor every `release_every` days (patches in between), ending near `end`."""
    out = []
    patch_every = max(1, release_every // 4)
    for minor in range(LATEST_MINOR + 1):
        start = end - dt.timedelta(
            days=(LATEST_MINOR - minor) * release_every + max(3, release_every * 2 // 3)
        )
        for patch in range(4 if release_every >= 4 else 1):
            day = start + dt.timedelta(days=patch * patch_every)
            if day > end or (patch and day >= start + dt.timedelta(days=release_every)):
                break
            out.append(Release(2, minor, patch, day))
    return out


def _latest(schedule: list[Release], day: dt.date) -> Release:
    """The newest release out on `day` (v2.0.0 before the schedule begins)."""
    best = schedule[0]
    for r in schedule:
        if r.day > day:
            break
        best = r
    return best


def version_string(release: Release, channel: str, day: dt.date) -> str:
    if release.format == "1":
        return release.number  # format 1 sent the plain mix version
    if channel == "edge":
        # Edge images are built from main: the commit changes day by day.
        sha = hashlib.sha1(f"main {day}".encode(), usedforsecurity=False).hexdigest()[:7]
        return f"v{release.number}:edge:{sha}"
    if channel == "other":
        return f"v{release.number}:other:sanitised"
    return f"v{release.number}:match:{release.sha}"


# --- The simulation ------------------------------------------------------------------------------


def _pick(rng: random.Random, weighted) -> str:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights=weights)[0]


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def season(day: dt.date) -> float:
    """Busier mid-year, a lull around the year's end."""
    doy = day.timetuple().tm_yday
    factor = 1 + 0.2 * math.sin(2 * math.pi * (doy - 80) / 365)
    if (day.month == 12 and day.day >= 20) or (day.month == 1 and day.day <= 5):
        factor *= 0.55
    return factor


@dataclass
class _Workflow:
    uuid: uuid.UUID
    hashed: str
    jobs: int
    rate: float  # mean runs a busy weekday
    weekend: float  # factor at weekends: 1 for cron-triggered, low for human-triggered
    steps_per_run: float  # between 1 and jobs
    all_jobs_run: bool
    total_runs: int = 0  # all time, for format 1
    total_steps: int = 0


@dataclass
class _Project:
    uuid: uuid.UUID
    hashed: str
    user_share: float
    activity: float
    workflow_target: int
    workflows: list[_Workflow] = field(default_factory=list)


@dataclass
class _Instance:
    rng: random.Random
    uuid: uuid.UUID
    hashed: str
    country: str
    operating_system: str
    channel: str
    cleartext: bool
    joined: dt.date
    stops: dt.date | None  # last day it reports, if it stops within the window
    upgrade_every: int
    next_upgrade: dt.date
    release: Release
    users_start: float
    users_target: float
    activity: float
    monthly_share: float
    project_target: int
    busyness: float
    report_minute: int  # when its nightly job runs, minutes after midnight UTC
    is_test: bool = False
    absurd: bool = False
    skip_rate: float = 0.01
    outage_until: dt.date | None = None
    network_outage: bool = False
    held: list = field(default_factory=list)  # reports built during a network outage
    users: int = 0
    projects: list[_Project] = field(default_factory=list)


class _Fleet:
    def __init__(self, *, instances: int, days: int, seed: int, end: dt.date, release_every: int):
        if instances < 0 or days < 1:
            raise ValueError("instances must be >= 0 and days >= 1")
        self.end = end
        self.start = end - dt.timedelta(days=days - 1)
        if self.start < EARLIEST_REPORT_DATE:
            raise ValueError(f"the window must not start before {EARLIEST_REPORT_DATE}")
        self.days = days
        self.rng = random.Random(seed)
        self.schedule = releases(end, release_every)
        n_test = max(1, instances // 40) if instances >= 2 else 0
        self.instances = [self._new_instance(k) for k in range(instances - n_test)]
        self.instances += [self._new_test_instance(k) for k in range(n_test)]

    # -- creation

    def _new_instance(self, k: int) -> _Instance:
        rng = random.Random(self.rng.getrandbits(64))
        u = _uuid(rng)
        if rng.random() < 0.35:
            joined, veteran = self.start, True
        else:
            # sqrt skews joins late in the window: the fleet grows faster over time.
            joined, veteran = self.start + dt.timedelta(days=int(self.days * math.sqrt(rng.random()))), False
        stops = None
        r = rng.random()
        if r < 0.08:
            stops = joined + dt.timedelta(days=rng.randint(3, 30))  # a trial
        elif r < 0.25:
            stops = joined + dt.timedelta(days=rng.randint(30, max(31, self.days)))
        upgrade_every = max(3, min(365, round(rng.lognormvariate(math.log(45), 0.8))))
        channel = _pick(rng, CHANNELS)
        if channel == "edge":
            upgrade_every = rng.randint(1, 7)
        # Veterans installed their version some time ago.
        installed = joined - dt.timedelta(days=rng.randint(0, upgrade_every) if veteran else 0)
        users_target = min(2000.0, rng.lognormvariate(math.log(12), 1.0) + 1)
        return _Instance(
            rng=rng,
            uuid=u,
            hashed=hash_uuid(u),
            country=_pick(rng, COUNTRIES),
            operating_system=_pick(rng, OPERATING_SYSTEMS),
            channel=channel,
            cleartext=rng.random() < CLEARTEXT_SHARE,
            joined=joined,
            stops=stops,
            upgrade_every=upgrade_every,
            next_upgrade=joined + dt.timedelta(days=rng.randint(1, upgrade_every)),
            release=_latest(self.schedule, installed),
            users_start=users_target * (rng.uniform(0.5, 0.9) if veteran else rng.uniform(0.1, 0.4)),
            users_target=users_target,
            activity=rng.uniform(0.3, 0.95),
            monthly_share=rng.uniform(0.5, 0.95),
            project_target=max(1, min(80, round(rng.lognormvariate(math.log(5), 0.8)))),
            busyness=rng.lognormvariate(0, 0.6),
            report_minute=rng.randint(0, 179),
            skip_rate=rng.choice((0.0, 0.005, 0.01, 0.03)),
        )

    def _new_test_instance(self, k: int) -> _Instance:
        rng = random.Random(self.rng.getrandbits(64))
        u = _uuid(rng)
        joined = self.start + dt.timedelta(days=rng.randint(0, max(0, self.days - 5)))
        absurd = k % 2 == 0  # a load test; otherwise someone trying Lightning on a laptop
        return _Instance(
            rng=rng,
            uuid=u,
            hashed=hash_uuid(u),
            country=rng.choice(TEST_COUNTRIES),
            operating_system="linux" if absurd else "darwin",
            channel="edge",
            cleartext=False,
            joined=joined,
            stops=joined + dt.timedelta(days=rng.randint(1, 3)),
            upgrade_every=1,
            next_upgrade=joined + ONE_DAY,
            release=_latest(self.schedule, joined),
            users_start=1,
            users_target=2,
            activity=1.0,
            monthly_share=1.0,
            project_target=1,
            busyness=1.0,
            report_minute=rng.randint(0, 179),
            is_test=True,
            absurd=absurd,
            skip_rate=0.0,
        )

    def _new_project(self, inst: _Instance, *, mature: bool) -> _Project:
        rng = inst.rng
        u = _uuid(rng)
        target = max(1, min(40, round(rng.lognormvariate(math.log(4), 0.7))))
        if inst.absurd:
            target = rng.randint(50, 150)
        project = _Project(
            uuid=u,
            hashed=hash_uuid(u),
            user_share=rng.uniform(0.05, 0.6),
            activity=rng.uniform(0.5, 1.0),
            workflow_target=target,
        )
        for _ in range(max(1, round(target * rng.uniform(0.5, 1.0))) if mature or inst.absurd else 1):
            project.workflows.append(self._new_workflow(inst))
        return project

    def _new_workflow(self, inst: _Instance) -> _Workflow:
        rng = inst.rng
        u = _uuid(rng)
        jobs = rng.choices((1, 2, 3, 4, 5, 6, 7, 8), weights=(20, 25, 20, 15, 8, 6, 4, 2))[0]
        if inst.absurd:
            rate = rng.uniform(50_000, 2_000_000)
        elif rng.random() < 0.3:
            rate = rng.choice((0.0, 0.02, 0.1))  # dormant: built once, rarely run
        else:
            rate = min(3000.0, rng.lognormvariate(math.log(4), 1.5)) * inst.busyness
        return _Workflow(
            uuid=u,
            hashed=hash_uuid(u),
            jobs=jobs,
            rate=rate,
            weekend=1.0 if rng.random() < 0.35 else rng.uniform(0.1, 0.35),
            steps_per_run=rng.uniform(max(1.0, jobs * 0.6), jobs),
            all_jobs_run=rng.random() < 0.8,
        )

    # -- one day

    def _grow(self, inst: _Instance, day: dt.date) -> None:
        rng = inst.rng
        age = (day - inst.joined).days
        grown = inst.users_start + (inst.users_target - inst.users_start) * (1 - math.exp(-age / 150))
        inst.users = max(inst.users, round(grown), 1)
        if not inst.projects:
            mature = inst.joined == self.start and not inst.is_test
            count = max(1, round(inst.project_target * rng.uniform(0.5, 0.9))) if mature else 1
            inst.projects = [self._new_project(inst, mature=mature) for _ in range(count)]
        elif len(inst.projects) < inst.project_target and rng.random() < 0.02:
            inst.projects.append(self._new_project(inst, mature=False))
        for project in inst.projects:
            if len(project.workflows) < project.workflow_target and rng.random() < 0.02:
                project.workflows.append(self._new_workflow(inst))
            if rng.random() < 0.002:
                w = rng.choice(project.workflows)
                w.jobs += 1  # someone added a step to a workflow
        if day >= inst.next_upgrade:
            latest = _latest(self.schedule, day)
            if (latest.minor, latest.patch) > (inst.release.minor, inst.release.patch):
                inst.release = latest
            inst.next_upgrade = day + dt.timedelta(
                days=max(1, round(inst.upgrade_every * rng.uniform(0.7, 1.3)))
            )

    def _report(self, inst: _Instance, day: dt.date, sent_on: dt.date) -> DemoReport:
        rng = inst.rng
        fmt = inst.release.format
        age = (day - inst.joined).days
        weekend = day.weekday() >= 5
        # Busy days and quiet days of the whole instance, on top of each workflow's own rhythm.
        base = season(day) * min(1.0, 0.25 + age / 60) * rng.lognormvariate(0, 0.15)
        users = inst.users
        active = min(users, max(0, round(users * inst.activity * rng.uniform(0.9, 1.1))))
        monthly = min(active, round(active * inst.monthly_share))
        cleartext = inst.cleartext
        projects = []
        for project in inst.projects:
            p_users = max(1, min(users, round(users * project.user_share)))
            p_active = min(p_users, round(p_users * inst.activity * project.activity))
            workflows = []
            for w in project.workflows:
                lam = w.rate * base * (w.weekend if weekend else 1.0)
                runs = _poisson(rng, lam)
                steps = runs + round(runs * (w.steps_per_run - 1))
                w.total_runs += runs
                w.total_steps += steps
                wf = {
                    "cleartext_uuid": str(w.uuid) if cleartext else None,
                    "hashed_uuid": w.hashed,
                    "no_of_jobs": w.jobs,
                }
                if fmt == "1":
                    wf["no_of_runs"], wf["no_of_steps"] = w.total_runs, w.total_steps
                else:
                    wf["no_of_runs"], wf["no_of_steps"] = runs, steps
                    wf["no_of_active_jobs"] = (
                        (w.jobs if w.all_jobs_run else max(1, w.jobs - 1)) if runs else 0
                    )
                workflows.append(wf)
            p = {
                "cleartext_uuid": str(project.uuid) if cleartext else None,
                "hashed_uuid": project.hashed,
                "no_of_users": p_users,
                "workflows": workflows,
            }
            if fmt != "1":
                p["no_of_active_users"] = p_active
            if fmt == "3":
                p["no_of_monthly_active_users"] = min(p_active, round(p_active * inst.monthly_share))
            projects.append(p)
        instance = {
            "cleartext_uuid": str(inst.uuid) if cleartext else None,
            "hashed_uuid": inst.hashed,
            "no_of_users": users,
            "operating_system": inst.operating_system,
            "version": version_string(inst.release, inst.channel, day),
        }
        if fmt != "1":
            instance["no_of_active_users"] = active
        if fmt == "3":
            instance["no_of_monthly_active_users"] = monthly
        data = {
            "generated_at": _generated_at(inst, sent_on),
            "instance": instance,
            "projects": projects,
            "version": fmt,
        }
        if fmt != "1":
            data["report_date"] = day.isoformat()
        return DemoReport(data, inst.country, inst.hashed, day, sent_on, inst.is_test)

    def _day(self, inst: _Instance, day: dt.date) -> list[DemoReport]:
        """What the instance sends the night after `day`: that day's report and any backfill."""
        if day < inst.joined or (inst.stops is not None and day > inst.stops):
            return []
        rng = inst.rng
        sent_on = day + ONE_DAY
        if inst.outage_until is None and not inst.is_test and rng.random() < 1 / 150:
            inst.outage_until = day + dt.timedelta(days=min(20, int(rng.expovariate(1 / 4))))
            inst.network_outage = rng.random() < 0.6
        if inst.outage_until is not None and day > inst.outage_until:
            inst.outage_until = None
        if inst.outage_until is not None and not inst.network_outage:
            return []  # the instance is down: nothing happens, nothing is reported, ever
        self._grow(inst, day)
        if inst.outage_until is not None:
            if inst.release.format != "1":  # format 1 has no report date: it cannot be sent late
                inst.held.append(self._report(inst, day, sent_on))
            return []
        if rng.random() < inst.skip_rate:
            return []  # a missed night (a restart at the wrong moment)
        out = [self._report(inst, day, sent_on)]
        if inst.held:
            # Back online: the missed days' reports are generated and sent now.
            for r in inst.held:
                r.data["generated_at"] = _generated_at(inst, sent_on)
            out += [
                DemoReport(r.data, r.country, r.instance_hash, r.report_date, sent_on, r.is_test)
                for r in inst.held
            ]
            inst.held = []
        return out

    def __iter__(self) -> Iterator[DemoReport]:
        day = self.start
        while day <= self.end:
            sent = [r for inst in self.instances for r in self._day(inst, day)]
            # Within one night, reports arrive in no particular order.
            self.rng.shuffle(sent)
            yield from sent
            day += ONE_DAY


def _generated_at(inst: _Instance, sent_on: dt.date) -> str:
    minute = inst.report_minute
    seconds, micros = inst.rng.randint(0, 59), inst.rng.randint(0, 999_999)
    return f"{sent_on.isoformat()}T{minute // 60:02d}:{minute % 60:02d}:{seconds:02d}.{micros:06d}Z"


def fleet(
    *,
    instances: int = 40,
    days: int = 400,
    seed: int = 1,
    end: dt.date | None = None,
    release_every: int = 28,
) -> Iterator[DemoReport]:
    """The reports of `instances` instances over the `days` days ending `end` (default yesterday, UTC),
    in the order they are sent. About one instance in 40 (at least one) is a test instance.
    `release_every` is the number of days between Lightning minor releases."""
    return iter(
        _Fleet(instances=instances, days=days, seed=seed, end=end or yesterday(), release_every=release_every)
    )
