"""Storage: instances, their daily submissions with projects and workflows, the review queue, the
daily aggregate table the public figures are read from, and the moderation log.

Counts are bigint columns; a submission carries its own totals so that figures never re-scan the
project and workflow rows.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

HASH_LENGTH = 64


class Instance(models.Model):
    """A Lightning instance, known only by the hash of its UUID (and the UUID if it chose to send it)."""

    hashed_uuid = models.CharField(max_length=HASH_LENGTH, unique=True)
    cleartext_uuid = models.UUIDField(null=True, blank=True, unique=True)
    first_report_date = models.DateField(null=True, blank=True)
    last_report_date = models.DateField(null=True, blank=True, db_index=True)
    # As of the latest report by report date.
    version = models.CharField(max_length=200, blank=True)
    operating_system = models.CharField(max_length=200, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 alpha-2; blank when unknown")
    report_count = models.PositiveIntegerField(default=0)
    excluded = models.BooleanField(default=False, help_text="Left out of every public figure")
    excluded_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["excluded", "last_report_date"], name="instance_excluded_last")]
        permissions = [("moderate_instance", "Can exclude and include instances")]

    def __str__(self):
        return f"instance {self.short_hash}"

    @property
    def short_hash(self) -> str:
        return self.hashed_uuid[:12]


class Submission(models.Model):
    """One accepted report: at most one per instance and report date."""

    class Format(models.TextChoices):
        V1 = "1", "1 (all-time totals)"
        V2 = "2", "2"
        V3 = "3", "3"

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="submissions")
    report_date = models.DateField()
    format = models.CharField(max_length=1, choices=Format.choices)
    generated_at = models.DateTimeField()
    received_at = models.DateTimeField(db_index=True)
    version = models.CharField(max_length=200)
    operating_system = models.CharField(max_length=200)
    country = models.CharField(max_length=2, blank=True)
    no_of_users = models.PositiveBigIntegerField()
    no_of_active_users = models.PositiveBigIntegerField(null=True, blank=True)
    no_of_monthly_active_users = models.PositiveBigIntegerField(null=True, blank=True)
    # Totals over the report's projects and workflows.
    no_of_projects = models.PositiveBigIntegerField()
    no_of_workflows = models.PositiveBigIntegerField()
    no_of_jobs = models.PositiveBigIntegerField()
    no_of_active_jobs = models.PositiveBigIntegerField()
    no_of_runs = models.PositiveBigIntegerField()
    no_of_steps = models.PositiveBigIntegerField()
    content_hash = models.CharField(max_length=64)
    # Exactly the body received. NULL (not "") once retention has dropped it: an empty body is no report.
    raw_body = models.TextField(null=True, blank=True)  # noqa: DJ001

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "report_date"], name="one_submission_per_instance_day"
            )
        ]
        indexes = [models.Index(fields=["report_date"], name="submission_report_date")]
        ordering = ["-report_date", "-id"]

    def __str__(self):
        # The instance's hash only when it is already loaded: a title must not cost a query.
        instance = self._state.fields_cache.get("instance")
        return f"report of {self.report_date} from {instance.short_hash if instance else self.instance_id}"


class Project(models.Model):
    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="projects")
    hashed_uuid = models.CharField(max_length=HASH_LENGTH)
    cleartext_uuid = models.UUIDField(null=True, blank=True)
    no_of_users = models.PositiveBigIntegerField()
    no_of_active_users = models.PositiveBigIntegerField(null=True, blank=True)
    no_of_monthly_active_users = models.PositiveBigIntegerField(null=True, blank=True)

    def __str__(self):
        return f"project {self.hashed_uuid[:12]}"


class Workflow(models.Model):
    # The submission is repeated here so that a report's workflows are one index scan away.
    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="workflows")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="workflows")
    hashed_uuid = models.CharField(max_length=HASH_LENGTH)
    cleartext_uuid = models.UUIDField(null=True, blank=True)
    no_of_jobs = models.PositiveBigIntegerField()
    no_of_runs = models.PositiveBigIntegerField()
    no_of_steps = models.PositiveBigIntegerField()
    no_of_active_jobs = models.PositiveBigIntegerField(null=True, blank=True)

    def __str__(self):
        return f"workflow {self.hashed_uuid[:12]}"


class ReviewItem(models.Model):
    """A report the API kept but did not accept: invalid, or in conflict with a stored one."""

    class Reason(models.TextChoices):
        INVALID = "invalid", "Not a valid report"
        CONFLICT = "conflict", "Differs from the report already stored for that instance and day"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        REPROCESSED = "reprocessed", "Re-processed"
        DISMISSED = "dismissed", "Dismissed"

    reason = models.CharField(max_length=20, choices=Reason.choices)
    errors = models.JSONField(default=dict, blank=True, help_text="Problems by field path")
    raw_body = models.TextField()
    body_hash = models.CharField(max_length=64)
    # Read from the body when it has them, to find the entry; the country stands in for the address.
    instance_hash = models.CharField(max_length=HASH_LENGTH, blank=True, db_index=True)
    report_date = models.DateField(null=True, blank=True)
    country = models.CharField(max_length=2, blank=True)
    received_at = models.DateTimeField(db_index=True)
    last_received_at = models.DateTimeField()
    times_received = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    submission = models.ForeignKey(
        Submission,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="review_items",
        help_text="For a conflict, the stored report; after re-processing, the report it became",
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        constraints = [
            # The same body re-sent while pending is counted, not queued again.
            models.UniqueConstraint(
                fields=["body_hash"], condition=Q(status="pending"), name="one_pending_review_per_body"
            )
        ]
        indexes = [models.Index(fields=["status", "received_at"], name="review_status_received")]
        ordering = ["-received_at"]
        verbose_name = "review queue entry"
        verbose_name_plural = "review queue"
        permissions = [("review_report", "Can re-process and dismiss review entries")]

    def __str__(self):
        return f"{self.get_reason_display()} ({self.received_at:%Y-%m-%d %H:%M})"


class DailyCount(models.Model):
    """One figure for one day: the table every public page reads (see aggregates.py for the stats)."""

    stat = models.CharField(max_length=40)
    subgroup = models.CharField(max_length=200, blank=True, default="")
    day = models.DateField()
    value = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["stat", "subgroup", "day"], name="one_count_per_stat_subgroup_day"
            )
        ]
        indexes = [models.Index(fields=["stat", "day"], name="dailycount_stat_day")]

    def __str__(self):
        return f"{self.stat}[{self.subgroup}] {self.day}: {self.value}"


class ModerationLog(models.Model):
    """Who did what to which instance or review entry, when and why. Written once, never edited."""

    class Action(models.TextChoices):
        EXCLUDE = "exclude", "Excluded from public figures"
        INCLUDE = "include", "Included in public figures again"
        REPROCESS = "reprocess", "Re-processed a review entry"
        DISMISS = "dismiss", "Dismissed a review entry"
        DELETE = "delete", "Deleted an instance and its reports"
        REBUILD = "rebuild", "Rebuilt the aggregates"
        RETENTION = "retention", "Applied retention"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_name = models.CharField(max_length=150, help_text="Kept if the user is deleted")
    action = models.CharField(max_length=20, choices=Action.choices)
    target = models.CharField(max_length=200)
    reason = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.target}"
