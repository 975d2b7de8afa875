"""Moderation: exclude and include instances, re-process and dismiss review entries, delete an instance.

Each function owns one transaction and writes a ModerationLog row for every thing it changed, so the
log and the figures can never disagree. Instance rows are locked first: ingestion locks the same row
before it stores a report, so a report arriving meanwhile is counted exactly once, either before the
change (and moved with the instance's contributions) or after it (and counted according to the new
state). Permissions are the caller's business (the admin checks them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from . import aggregates, cache, ingest
from .formats import InvalidReport, validate
from .models import Instance, ModerationLog, ReviewItem

# Outcomes of re-processing a review entry.
STORED = "stored"  # now valid and stored as a normal report
ALREADY_STORED = "already_stored"  # the very same report was stored meanwhile
CONFLICT = "conflict"  # valid, but a different report for that instance and day is stored
STILL_INVALID = "invalid"


class ModerationError(ValueError):
    """The request cannot be carried out as asked (e.g. no reason given, entry already resolved)."""


@dataclass(frozen=True)
class ReprocessResult:
    outcome: str
    message: str
    item: ReviewItem


def _actor_name(actor) -> str:
    return actor.get_username() if actor is not None else "system"


def _log(*, actor, action: str, target: str, reason: str = "", detail: dict | None = None) -> ModerationLog:
    return ModerationLog.objects.create(
        actor=actor,
        actor_name=_actor_name(actor),
        action=action,
        target=target[:200],
        reason=reason,
        detail=detail or {},
    )


def _instance_target(instance: Instance) -> str:
    return f"instance {instance.hashed_uuid}"


def _instance_detail(instance: Instance) -> dict:
    return {
        "instance_id": instance.pk,
        "hashed_uuid": instance.hashed_uuid,
        "report_count": instance.report_count,
        "first_report_date": instance.first_report_date and instance.first_report_date.isoformat(),
        "last_report_date": instance.last_report_date and instance.last_report_date.isoformat(),
    }


def _locked_instances(instances: Iterable[Instance]) -> list[Instance]:
    ids = [i.pk for i in instances]
    # Locked in hash order, as ingestion locks several instances, so that concurrent writers queue.
    return list(Instance.objects.select_for_update().filter(pk__in=ids).order_by("hashed_uuid"))


def exclude_instances(*, instances: Iterable[Instance], reason: str, actor) -> int:
    """Take the instances out of every public figure; returns how many were not excluded already."""
    reason = (reason or "").strip()
    if not reason:
        raise ModerationError("Say why the instances are excluded: the reason is kept in the log.")
    changed = 0
    with transaction.atomic():
        for instance in _locked_instances(instances):
            if instance.excluded:
                continue
            # Computed from the submissions while they still count, then the flag stops new ones.
            aggregates.remove_instance(instance)
            instance.excluded = True
            instance.excluded_reason = reason
            instance.save(update_fields=["excluded", "excluded_reason"])
            _log(
                actor=actor,
                action=ModerationLog.Action.EXCLUDE,
                target=_instance_target(instance),
                reason=reason,
                detail=_instance_detail(instance),
            )
            changed += 1
        if changed:
            transaction.on_commit(cache.figures_changed)
    return changed


def include_instances(*, instances: Iterable[Instance], actor, reason: str = "") -> int:
    """Count the instances in the public figures again; returns how many were excluded before."""
    reason = (reason or "").strip()
    changed = 0
    with transaction.atomic():
        for instance in _locked_instances(instances):
            if not instance.excluded:
                continue
            previous_reason = instance.excluded_reason
            instance.excluded = False
            instance.excluded_reason = ""
            instance.save(update_fields=["excluded", "excluded_reason"])
            aggregates.add_instance(instance)
            _log(
                actor=actor,
                action=ModerationLog.Action.INCLUDE,
                target=_instance_target(instance),
                reason=reason,
                detail={**_instance_detail(instance), "excluded_reason": previous_reason},
            )
            changed += 1
        if changed:
            transaction.on_commit(cache.figures_changed)
    return changed


def delete_instance(*, instance: Instance, actor, reason: str = "") -> dict:
    """Delete the instance with its reports, projects and workflows, and its review entries.

    Returns what was deleted, as recorded in the log.
    """
    with transaction.atomic():
        locked = _locked_instances([instance])
        if not locked:
            raise ModerationError(f"{instance} no longer exists.")
        instance = locked[0]
        detail = {**_instance_detail(instance), "excluded": instance.excluded}
        target = _instance_target(instance)
        if not instance.excluded:
            aggregates.remove_instance(instance)
            transaction.on_commit(cache.figures_changed)
        # Everything the instance sent goes, including what the review queue kept of it.
        review_entries, _ = ReviewItem.objects.filter(instance_hash=instance.hashed_uuid).delete()
        _, deleted = instance.delete()
        detail.update(
            reports_deleted=deleted.get("reports.Submission", 0),
            workflows_deleted=deleted.get("reports.Workflow", 0),
            review_entries_deleted=review_entries,
        )
        _log(
            actor=actor,
            action=ModerationLog.Action.DELETE,
            target=target,
            reason=(reason or "").strip(),
            detail=detail,
        )
    return detail


def _resolve(item: ReviewItem, *, status: str, actor, now: dt.datetime, fields: tuple[str, ...] = ()) -> None:
    item.status = status
    item.resolved_at = now
    item.resolved_by = actor
    item.save(update_fields=["status", "resolved_at", "resolved_by", *fields])


def reprocess(*, item: ReviewItem, actor, now: dt.datetime | None = None) -> ReprocessResult:
    """Validate a pending review entry again with today's rules, and store it when it is now valid.

    - valid and stored: the entry is marked re-processed and linked to its new report;
    - the identical report is already stored: marked re-processed and linked to it (nothing is lost);
    - a different report for that instance and day is stored: the entry stays pending as a conflict,
      linked to the stored report, for a moderator to dismiss or leave;
    - still invalid: the entry stays pending with today's errors.
    """
    now = now or timezone.now()
    with transaction.atomic():
        item = ReviewItem.objects.select_for_update().get(pk=item.pk)
        if item.status != ReviewItem.Status.PENDING:
            raise ModerationError(f"{item} is already {item.get_status_display().lower()}.")
        target = f"review entry {item.pk}"
        try:
            text, data = ingest.parse_body(item.raw_body.encode())
            report = validate(data, today=now.date())
        except (ingest.MalformedBody, InvalidReport) as exc:
            item.errors = exc.errors if isinstance(exc, InvalidReport) else {"": str(exc)}
            item.save(update_fields=["errors"])
            _log(
                actor=actor,
                action=ModerationLog.Action.REPROCESS,
                target=target,
                detail={"outcome": STILL_INVALID, "errors": item.errors},
            )
            count = len(item.errors)
            return ReprocessResult(
                STILL_INVALID,
                f"{item} is still not a valid report ({count} problem{'s' if count != 1 else ''}); "
                "it stays in the queue with today's errors.",
                item,
            )

        times_received, last_received_at = item.times_received, item.last_received_at
        # Stored as received: the submission keeps the time the body first arrived.
        outcome = ingest.store(
            report=report, raw_body=text, data=data, country=item.country, now=item.received_at
        )
        day = report.report_date.isoformat()
        if outcome.status == ingest.CONFLICT:
            # store() queues a conflicting body for review: that is this very entry (same body, pending),
            # which it counted as received once more. It was not: undo the count, keep the new facts.
            item.reason = ReviewItem.Reason.CONFLICT
            item.errors = {"report_date": f"a different report for {day} is already stored"}
            item.submission = outcome.submission
            item.times_received, item.last_received_at = times_received, last_received_at
            item.save(update_fields=["reason", "errors", "submission", "times_received", "last_received_at"])
            result = ReprocessResult(
                CONFLICT,
                f"{item}: a different report for {day} of instance {report.instance.hashed_uuid[:12]} "
                f"is already stored (report {outcome.submission.pk}); the entry stays in the queue: "
                "dismiss it if the stored report is right.",
                item,
            )
        else:
            item.submission = outcome.submission
            item.errors = {}
            _resolve(
                item,
                status=ReviewItem.Status.REPROCESSED,
                actor=actor,
                now=now,
                fields=("submission", "errors"),
            )
            if outcome.status == ingest.CREATED:
                result = ReprocessResult(
                    STORED, f"{item} is now valid and stored as the report for {day}.", item
                )
            else:
                result = ReprocessResult(
                    ALREADY_STORED,
                    f"{item}: the same report for {day} was already stored; the entry is linked to it.",
                    item,
                )
        _log(
            actor=actor,
            action=ModerationLog.Action.REPROCESS,
            target=target,
            detail={
                "outcome": result.outcome,
                "submission_id": outcome.submission.pk,
                "instance_hash": report.instance.hashed_uuid,
                "report_date": day,
            },
        )
    return result


def dismiss(*, items: Iterable[ReviewItem], actor, reason: str = "", now: dt.datetime | None = None) -> int:
    """Close pending review entries without storing them; returns how many were pending."""
    now = now or timezone.now()
    reason = (reason or "").strip()
    ids = [i.pk for i in items]
    changed = 0
    with transaction.atomic():
        pending = (
            ReviewItem.objects.select_for_update()
            .filter(pk__in=ids, status=ReviewItem.Status.PENDING)
            .defer("raw_body")
            .order_by("pk")
        )
        for item in pending:
            _resolve(item, status=ReviewItem.Status.DISMISSED, actor=actor, now=now)
            _log(
                actor=actor,
                action=ModerationLog.Action.DISMISS,
                target=f"review entry {item.pk}",
                reason=reason,
                detail={
                    "review_reason": item.reason,
                    "instance_hash": item.instance_hash,
                    "report_date": item.report_date and item.report_date.isoformat(),
                    "times_received": item.times_received,
                },
            )
            changed += 1
    return changed
