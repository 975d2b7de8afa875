"""Build reports as a Lightning instance would: hashes computed from UUIDs, counts in range."""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from pathlib import Path

from reports.formats import hash_uuid

SEED_REPORT = Path(__file__).parent / "data" / "seed_report.json"


def seed_report() -> dict:
    return json.loads(SEED_REPORT.read_text())


def uuid_for(*parts) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, "/".join(str(p) for p in parts))


def workflow(*, key="w", runs=5, steps=10, jobs=2, active_jobs=1, fmt="3", cleartext=False) -> dict:
    u = uuid_for("workflow", key)
    w = {
        "hashed_uuid": hash_uuid(u),
        "no_of_jobs": jobs,
        "no_of_runs": runs,
        "no_of_steps": steps,
    }
    if fmt != "1":
        w["no_of_active_jobs"] = active_jobs
    if cleartext:
        w["cleartext_uuid"] = str(u)
    return w


def project(*, key="p", workflows=1, users=3, active=2, monthly=1, fmt="3", runs=5, steps=10) -> dict:
    u = uuid_for("project", key)
    p = {
        "hashed_uuid": hash_uuid(u),
        "cleartext_uuid": None,
        "no_of_users": users,
        "workflows": [workflow(key=f"{key}/{i}", fmt=fmt, runs=runs, steps=steps) for i in range(workflows)],
    }
    if fmt != "1":
        p["no_of_active_users"] = active
    if fmt == "3":
        p["no_of_monthly_active_users"] = monthly
    return p


def report(
    *,
    instance="i1",
    day: dt.date | str = "2024-04-25",
    fmt="3",
    projects=1,
    workflows=1,
    users=10,
    active=7,
    monthly=5,
    version="v2.4.2:match:f1bd9ae",
    os="linux",
    runs=5,
    steps=10,
    cleartext=False,
) -> dict:
    """A valid report; `instance` is a key from which the instance's UUID is derived."""
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    u = uuid_for("instance", instance)
    inst = {
        "hashed_uuid": hash_uuid(u),
        "version": version,
        "operating_system": os,
        "no_of_users": users,
    }
    if fmt != "1":
        inst["no_of_active_users"] = active
    if fmt == "3":
        inst["no_of_monthly_active_users"] = monthly
    if cleartext:
        inst["cleartext_uuid"] = str(u)
    data = {
        "version": fmt,
        "instance": inst,
        "projects": [
            project(key=f"{instance}/{i}", workflows=workflows, fmt=fmt, runs=runs, steps=steps)
            for i in range(projects)
        ],
        "generated_at": f"{day + dt.timedelta(days=1)}T01:30:00.876776Z",
    }
    if fmt != "1":
        data["report_date"] = day.isoformat()
    return data


def instance_hash(instance="i1") -> str:
    return hash_uuid(uuid_for("instance", instance))


def changed(data: dict, path: str, value) -> dict:
    """A copy of `data` with the value at a dotted path (list indices as numbers) replaced;
    value=DELETE removes it."""
    out = copy.deepcopy(data)
    *parents, last = path.split(".")
    node = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key = int(last) if isinstance(node, list) else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return out


DELETE = object()
