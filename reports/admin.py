"""Django admin for moderators: instances, reports, the review queue and the moderation log.

The admin only translates between HTTP and the services: every change goes through
`reports.moderation` (which writes the log), every figure shown comes from a selector. Data is never
edited here. Lists stay fast on large tables: the raw JSON is deferred, related rows are joined, and
the big tables are not counted in full on every page.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q, QuerySet, Sum
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from . import aggregates, health, moderation
from .models import Instance, ModerationLog, Project, ReviewItem, Submission, Workflow

admin.site.site_header = "Impact Tracker administration"
admin.site.site_title = "Impact Tracker admin"
admin.site.index_title = "Moderation"
# Four models need no sidebar; the lists need the width.
admin.site.enable_nav_sidebar = False

# Rows listed on a confirmation page and in a report's inlines; the rest is counted, not loaded.
SHOWN = 100
MAX_SHOWN_JSON = 500_000


# --- Shared pieces ---------------------------------------------------------------------------------


class EstimatedCountPaginator(Paginator):
    """Uses PostgreSQL's row estimate for an unfiltered list of a large table.

    COUNT(*) reads the whole table: a second or more for millions of rows, on every page. The planner's
    estimate (kept up to date by autovacuum) is close enough to number the pages. Filtered lists, small
    tables and other databases are counted exactly.
    """

    ESTIMATE_ABOVE = 10_000

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if isinstance(qs, QuerySet) and not qs.query.where:
            estimate = _estimated_rows(qs.model)
            if estimate > self.ESTIMATE_ABOVE:
                return estimate
        return super().count


def _estimated_rows(model) -> int:
    """PostgreSQL's estimate of the table's rows; -1 when there is none (never analysed, SQLite)."""
    if connection.vendor != "postgresql":
        return -1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(model._meta.db_table)],
        )
        row = cursor.fetchone()
    # -1 means the table has never been analysed.
    return int(row[0]) if row and row[0] is not None else -1


def _pretty_json(text: str | None, *, missing: str = "(not kept)") -> str:
    """The text as indented JSON in a <pre>, escaped; as it is when it is not JSON."""
    if text is None:
        return missing
    try:
        shown = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        shown = text
    note = ""
    if len(shown) > MAX_SHOWN_JSON:
        # A report with thousands of workflows runs to megabytes; the page shows its beginning.
        note = f"… {len(shown) - MAX_SHOWN_JSON:,} more characters not shown"
        shown = shown[:MAX_SHOWN_JSON]
    return format_html('<pre class="raw-json">{}</pre>{}', shown, note)


def _hash_search(term: str, *, field: str, uuid_field: str | None = None) -> Q | None:
    """A hash (or its start) or a cleartext UUID. Hashes are stored upper-case: a case-sensitive
    prefix match on the upper-cased term can use the column's index, where Django's istartswith
    could not."""
    term = term.strip().strip("\"'")
    if not term:
        return None
    q = Q(**{f"{field}__startswith": term.upper()})
    if uuid_field:
        with contextlib.suppress(ValueError):  # not a UUID: the hash prefix alone
            q |= Q(**{uuid_field: uuid.UUID(term)})
    return q


def _change_link(obj, text, title: str = "") -> str:
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}" title="{}">{}</a>', url, title, text)


def _day(value: dt.date | None) -> str:
    return value.isoformat() if value else "—"


def _moment(value: dt.datetime | None) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if value else "—"


def _short_hash(value: str) -> str:
    return format_html('<code title="{}">{}</code>', value, value[:12]) if value else "—"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Data is never added or edited through the admin: what instances sent stays as they sent it."""

    show_full_result_count = False
    # Facet counts run one COUNT per filter choice: fine on instances, not on millions of rows.
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ValuesFilter(admin.SimpleListFilter):
    """The distinct values of a column on a small table, grouped as the public figures group them."""

    field: str
    group: Callable[[str], str] = staticmethod(lambda value: value or aggregates.UNKNOWN)

    def lookups(self, request, model_admin):
        values = model_admin.model.objects.order_by().values_list(self.field, flat=True).distinct()
        self.groups = defaultdict(list)
        for value in values:
            self.groups[self.group(value)].append(value)
        return [(g, g) for g in sorted(self.groups)]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(**{f"{self.field}__in": self.groups.get(self.value(), [])})


class VersionFilter(ValuesFilter):
    title = "version (major.minor)"
    parameter_name = "version"
    field = "version"
    group = staticmethod(aggregates.version_group)


class OperatingSystemFilter(ValuesFilter):
    title = "operating system"
    parameter_name = "os"
    field = "operating_system"
    group = staticmethod(aggregates.os_group)


class CountryFilter(ValuesFilter):
    title = "country"
    parameter_name = "country"
    field = "country"


class ActorFilter(ValuesFilter):
    title = "actor"
    parameter_name = "actor"
    field = "actor_name"


class RecentDateFilter(admin.SimpleListFilter):
    """Ranges of a date column relative to today: no query to list them."""

    field: str
    RANGES = (("7", "Last 7 days"), ("30", "Last 30 days"), ("90", "Last 90 days"), ("older", "Older"))

    def lookups(self, request, model_admin):
        return self.RANGES

    def queryset(self, request, queryset):
        value = self.value()
        today = timezone.localdate()
        if value == "older":
            return queryset.filter(**{f"{self.field}__lt": today - dt.timedelta(days=90)})
        if value in {"7", "30", "90"}:
            return queryset.filter(**{f"{self.field}__gte": today - dt.timedelta(days=int(value))})
        return queryset


class LastSeenFilter(RecentDateFilter):
    title = "last seen"
    parameter_name = "last_seen"
    field = "last_report_date"


class ReportDateFilter(RecentDateFilter):
    title = "report date"
    parameter_name = "report_date_range"
    field = "report_date"


class InstanceFilter(admin.SimpleListFilter):
    """The reports of one instance, reached from the instance's page; never lists every instance."""

    title = "instance"
    parameter_name = "instance"

    def lookups(self, request, model_admin):
        value = self.value()
        if not value or not value.isdigit():
            return []
        instance = Instance.objects.filter(pk=value).only("hashed_uuid").first()
        return [(value, instance.short_hash if instance else f"#{value} (deleted)")]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(instance_id=int(value))


# --- Confirmation pages for moderation actions ----------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One moderation step as the confirmation page presents it."""

    title: str
    explanation: str
    button: str
    reason: str | None  # "required", "optional" or None for no reason field


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        max_length=2000,
        help_text="Kept in the moderation log.",
    )

    def __init__(self, *args, required: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = required


class ConfirmMixin:
    """Actions that need a moderator's confirmation (and a reason), like Django's delete confirmation.

    The same page serves a bulk action from the list (re-posting the selection and the action) and a
    single object's button on its page (posting back to the object's URL).
    """

    confirmation_template = "admin/reports/confirm_moderation.html"
    # The buttons on one object's page: {url name: (step, permission check, method applying it)}.
    object_steps: dict[str, tuple[Step, str, str]] = {}

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        steps = [
            path(
                f"<path:object_id>/{name}/",
                self.admin_site.admin_view(partial(self.object_step_view, name=name)),
                name=f"{prefix}_{name}",
            )
            for name in self.object_steps
        ]
        return [*steps, *super().get_urls()]

    def describe(self, obj) -> str:
        return str(obj)

    def confirm(self, request, queryset, *, step: Step, apply, action: str | None = None, cancel_url: str):
        """The confirmation page, or None once `apply(queryset, reason)` has run on its submission."""
        form = None
        if step.reason:
            data = request.POST if "confirm" in request.POST else None
            form = ReasonForm(data, required=step.reason == "required")
        if "confirm" in request.POST and (form is None or form.is_valid()):
            apply(queryset, form.cleaned_data["reason"] if form else "")
            return None
        objects = list(queryset[:SHOWN])
        total = queryset.count() if len(objects) == SHOWN else len(objects)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": step.title,
            "step": step,
            "form": form,
            "objects": [self.describe(obj) for obj in objects],
            "total": total,
            "more": total - len(objects),
            "action": action,
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across") == "1",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": cancel_url,
        }
        return TemplateResponse(request, self.confirmation_template, context)

    def object_step_view(self, request, object_id, *, name: str):
        """A single object's moderation step, from a button on its page."""
        step, permission, method = self.object_steps[name]
        if not getattr(self, permission)(request):
            raise PermissionDenied

        def apply(queryset, reason):
            return getattr(self, method)(request, queryset, reason)

        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with id {object_id}")
        change_url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk])
        queryset = self.get_queryset(request).filter(pk=obj.pk)
        response = self.confirm(request, queryset, step=step, apply=apply, cancel_url=change_url)
        return response or HttpResponseRedirect(change_url)

    def changelist_url(self, request) -> str:
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        query = request.GET.urlencode()
        return f"{url}?{query}" if query else url


# --- Instances -------------------------------------------------------------------------------------

EXCLUDE = Step(
    title="Exclude instances from the public figures",
    explanation="Their reports stay stored, but they stop counting in every public figure: the pages "
    "and the stats API change at once. They can be included again at any time.",
    button="Exclude from public figures",
    reason="required",
)
INCLUDE = Step(
    title="Include instances in the public figures again",
    explanation="All their stored reports count again in every public figure, from their first report.",
    button="Include in public figures",
    reason="optional",
)


@admin.register(Instance)
class InstanceAdmin(ConfirmMixin, ReadOnlyAdmin):
    object_steps = {
        "exclude": (EXCLUDE, "has_moderate_permission", "_exclude"),
        "include": (INCLUDE, "has_moderate_permission", "_include"),
    }
    list_display = (
        "instance",
        "country",
        "version",
        "operating_system",
        "first_report",
        "last_report",
        "reports",
        "excluded",
    )
    list_filter = ("excluded", LastSeenFilter, VersionFilter, OperatingSystemFilter, CountryFilter)
    search_fields = ("=cleartext_uuid", "^hashed_uuid")
    search_help_text = "The instance's hash (or its first characters) or its cleartext UUID."
    ordering = ("-last_report_date", "-id")
    show_facets = admin.ShowFacets.ALLOW  # a small table
    actions = ("exclude_selected", "include_selected")
    fieldsets = (
        (None, {"fields": ("hashed_uuid", "cleartext_uuid", "country", "version", "operating_system")}),
        ("Reports", {"fields": ("first_report_date", "last_report_date", "reports", "created_at")}),
        ("Public figures", {"fields": ("excluded", "excluded_reason", "moderation_history")}),
    )
    readonly_fields = (
        "hashed_uuid",
        "cleartext_uuid",
        "country",
        "version",
        "operating_system",
        "first_report_date",
        "last_report_date",
        "reports",
        "created_at",
        "excluded",
        "excluded_reason",
        "moderation_history",
    )

    def has_delete_permission(self, request, obj=None):
        # Deleting is the only change made here to the data itself: superusers only (see the migration).
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def has_moderate_permission(self, request) -> bool:
        return request.user.has_perm("reports.moderate_instance")

    def get_search_results(self, request, queryset, search_term):
        q = _hash_search(search_term, field="hashed_uuid", uuid_field="cleartext_uuid")
        return (queryset if q is None else queryset.filter(q)), False

    @admin.display(description="instance", ordering="hashed_uuid")
    def instance(self, obj):
        return _short_hash(obj.hashed_uuid)

    @admin.display(description="first report", ordering="first_report_date")
    def first_report(self, obj):
        return _day(obj.first_report_date)

    @admin.display(description="last report", ordering="last_report_date")
    def last_report(self, obj):
        return _day(obj.last_report_date)

    @admin.display(description="reports", ordering="report_count")
    def reports(self, obj):
        url = reverse("admin:reports_submission_changelist")
        return format_html('<a href="{}?instance={}">{}</a>', url, obj.pk, obj.report_count)

    @admin.display(description="moderation history")
    def moderation_history(self, obj):
        rows = ModerationLog.objects.filter(target=f"instance {obj.hashed_uuid}")[:20]
        if not rows:
            return "—"
        return format_html(
            '<ul class="plain">{}</ul>',
            format_html_join(
                "",
                "<li>{} · {} · {}{}</li>",
                (
                    (
                        _moment(r.created_at),
                        r.actor_name,
                        r.get_action_display(),
                        f": {r.reason}" if r.reason else "",
                    )
                    for r in rows
                ),
            ),
        )

    def describe(self, obj):
        return (
            f"{obj.short_hash} · {obj.country or 'unknown country'} · {obj.version or 'unknown version'} · "
            f"{obj.report_count} reports{' · excluded' if obj.excluded else ''}"
        )

    # Bulk actions from the list.

    @admin.action(description="Exclude selected instances from the public figures", permissions=["moderate"])
    def exclude_selected(self, request, queryset):
        return self.confirm(
            request,
            queryset,
            step=EXCLUDE,
            apply=lambda qs, reason: self._exclude(request, qs, reason),
            action="exclude_selected",
            cancel_url=self.changelist_url(request),
        )

    @admin.action(description="Include selected instances in the public figures", permissions=["moderate"])
    def include_selected(self, request, queryset):
        return self.confirm(
            request,
            queryset,
            step=INCLUDE,
            apply=lambda qs, reason: self._include(request, qs, reason),
            action="include_selected",
            cancel_url=self.changelist_url(request),
        )

    def _exclude(self, request, queryset, reason):
        instances = list(queryset)
        changed = moderation.exclude_instances(instances=instances, reason=reason, actor=request.user)
        unchanged = len(instances) - changed
        self.message_user(
            request,
            f"Excluded {changed} instance(s) from the public figures"
            + (f"; {unchanged} already excluded." if unchanged else "."),
            messages.SUCCESS if changed else messages.WARNING,
        )

    def _include(self, request, queryset, reason):
        instances = list(queryset)
        changed = moderation.include_instances(instances=instances, actor=request.user, reason=reason)
        unchanged = len(instances) - changed
        self.message_user(
            request,
            f"Included {changed} instance(s) in the public figures again"
            + (f"; {unchanged} were not excluded." if unchanged else "."),
            messages.SUCCESS if changed else messages.WARNING,
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_moderate": self.has_moderate_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)

    # Deletion, on an operator's request: one instance at a time, through the service.

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Irreversible: done from one instance's page, where its reports are counted and a reason asked.
        actions.pop("delete_selected", None)
        return actions

    def get_deleted_objects(self, objs, request):
        # Django would list every related row: millions of workflows for a long-lived instance.
        ids = [obj.pk for obj in objs]
        totals = Submission.objects.filter(instance_id__in=ids).aggregate(
            projects=Sum("no_of_projects"), workflows=Sum("no_of_workflows")
        )
        model_count = {
            Instance._meta.verbose_name_plural: len(objs),
            Submission._meta.verbose_name_plural: sum(obj.report_count for obj in objs),
            Project._meta.verbose_name_plural: totals["projects"] or 0,
            Workflow._meta.verbose_name_plural: totals["workflows"] or 0,
        }
        perms_needed = set() if self.has_delete_permission(request) else {Instance._meta.verbose_name}
        return [self.describe(obj) for obj in objs], model_count, perms_needed, []

    def delete_model(self, request, obj):
        moderation.delete_instance(instance=obj, actor=request.user, reason=request.POST.get("reason", ""))

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


# --- Submissions -----------------------------------------------------------------------------------


class CappedInlineFormSet(BaseInlineFormSet):
    """Only the first rows of a report: a report may hold thousands of workflows."""

    def get_queryset(self):
        if not hasattr(self, "_capped"):
            self._capped = super().get_queryset()[:SHOWN]
        return self._capped


class CappedInline(ReadOnlyInline):
    formset = CappedInlineFormSet
    total_field: str  # the submission's count of these rows

    def get_formset(self, request, obj=None, **kwargs):
        # Inline admins are created per request, so setting the heading here is safe.
        total = getattr(obj, self.total_field, 0) if obj else 0
        name = self.model._meta.verbose_name_plural
        self.verbose_name_plural = f"{name} (first {SHOWN} of {total})" if total > SHOWN else name
        return super().get_formset(request, obj, **kwargs)


class ProjectInline(CappedInline):
    model = Project
    total_field = "no_of_projects"
    fields = readonly_fields = (
        "hashed_uuid",
        "cleartext_uuid",
        "no_of_users",
        "no_of_active_users",
        "no_of_monthly_active_users",
    )


class WorkflowInline(CappedInline):
    model = Workflow
    fk_name = "submission"
    total_field = "no_of_workflows"
    fields = readonly_fields = (
        "project_hash",
        "hashed_uuid",
        "cleartext_uuid",
        "no_of_jobs",
        "no_of_active_jobs",
        "no_of_runs",
        "no_of_steps",
    )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("project").defer("project__cleartext_uuid")

    @admin.display(description="project")
    def project_hash(self, obj):
        return _short_hash(obj.project.hashed_uuid)


@admin.register(Submission)
class SubmissionAdmin(ReadOnlyAdmin):
    list_display = (
        "report",
        "instance_link",
        "format",
        "version",
        "operating_system",
        "country",
        "users",
        "workflows",
        "runs",
        "received",
    )
    list_display_links = ("report",)
    list_select_related = ("instance",)
    list_filter = (ReportDateFilter, "format", InstanceFilter)
    search_fields = ("^instance__hashed_uuid",)
    search_help_text = "An instance's hash (or its first characters), or a report date as YYYY-MM-DD."
    paginator = EstimatedCountPaginator
    inlines = (ProjectInline, WorkflowInline)
    fieldsets = (
        (None, {"fields": ("instance_link", "report_date", "format", "generated_at", "received_at")}),
        ("Instance on that day", {"fields": ("version", "operating_system", "country")}),
        (
            "Figures",
            {
                "fields": (
                    "no_of_users",
                    "no_of_active_users",
                    "no_of_monthly_active_users",
                    "no_of_projects",
                    "no_of_workflows",
                    "no_of_jobs",
                    "no_of_active_jobs",
                    "no_of_runs",
                    "no_of_steps",
                )
            },
        ),
        ("As received", {"fields": ("content_hash", "raw_json")}),
    )
    readonly_fields = (
        "instance_link",
        "report_date",
        "format",
        "generated_at",
        "received_at",
        "version",
        "operating_system",
        "country",
        "no_of_users",
        "no_of_active_users",
        "no_of_monthly_active_users",
        "no_of_projects",
        "no_of_workflows",
        "no_of_jobs",
        "no_of_active_jobs",
        "no_of_runs",
        "no_of_steps",
        "content_hash",
        "raw_json",
    )

    def get_queryset(self, request):
        # The raw JSON can be megabytes per row: only the report's own page loads it.
        return super().get_queryset(request).select_related("instance").defer("raw_body")

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        try:
            return queryset.filter(report_date=dt.date.fromisoformat(term)), False
        except ValueError:
            pass
        q = _hash_search(term, field="instance__hashed_uuid", uuid_field="instance__cleartext_uuid")
        return (queryset if q is None else queryset.filter(q)), False

    @admin.display(description="report date", ordering="report_date")
    def report(self, obj):
        return _day(obj.report_date)

    @admin.display(description="instance", ordering="instance__hashed_uuid")
    def instance_link(self, obj):
        return _change_link(obj.instance, obj.instance.short_hash, obj.instance.hashed_uuid)

    @admin.display(description="users", ordering="no_of_users")
    def users(self, obj):
        return obj.no_of_users

    @admin.display(description="workflows", ordering="no_of_workflows")
    def workflows(self, obj):
        return obj.no_of_workflows

    @admin.display(description="runs", ordering="no_of_runs")
    def runs(self, obj):
        return obj.no_of_runs

    @admin.display(description="received", ordering="received_at")
    def received(self, obj):
        return _moment(obj.received_at)

    @admin.display(description="raw JSON")
    def raw_json(self, obj):
        return _pretty_json(obj.raw_body, missing="(dropped by retention)")


# --- Review queue ----------------------------------------------------------------------------------

REPROCESS = Step(
    title="Re-process review entries",
    explanation="Each entry is validated again with today's rules. A valid one is stored as a normal "
    "report and linked; when a different report for that instance and day is already stored, the entry "
    "stays in the queue and says so.",
    button="Re-process",
    reason=None,
)
DISMISS = Step(
    title="Dismiss review entries",
    explanation="The entries leave the queue without being stored. Their bodies are kept.",
    button="Dismiss",
    reason="optional",
)


REPROCESS_MESSAGES = 10
REPROCESS_OUTCOMES = {
    moderation.STORED: "stored",
    moderation.ALREADY_STORED: "already stored",
    moderation.CONFLICT: "in conflict with a stored report",
    moderation.STILL_INVALID: "still invalid",
}


@admin.register(ReviewItem)
class ReviewItemAdmin(ConfirmMixin, ReadOnlyAdmin):
    object_steps = {
        "reprocess": (REPROCESS, "has_review_permission", "_reprocess"),
        "dismiss": (DISMISS, "has_review_permission", "_dismiss"),
    }
    list_display = (
        "received",
        "problem",
        "status",
        "instance",
        "report_day",
        "country",
        "times_received",
        "first_error",
    )
    list_filter = ("status", "reason")
    search_fields = ("^instance_hash",)
    search_help_text = "The instance's hash (or its first characters)."
    actions = ("reprocess", "dismiss")
    fieldsets = (
        (None, {"fields": ("reason", "status", "errors_by_field", "submission_link")}),
        (
            "Received",
            {"fields": ("received_at", "last_received_at", "times_received", "country", "instance_link")},
        ),
        ("Resolved", {"fields": ("resolved_at", "resolved_by")}),
        ("As received", {"fields": ("raw_json",)}),
    )
    readonly_fields = (
        "reason",
        "status",
        "errors_by_field",
        "submission_link",
        "received_at",
        "last_received_at",
        "times_received",
        "country",
        "instance_link",
        "resolved_at",
        "resolved_by",
        "raw_json",
    )

    def describe(self, obj):
        day = obj.report_date.isoformat() if obj.report_date else "no report date"
        instance = obj.instance_hash[:12] or "unknown instance"
        return f"{obj} · {instance} · {day} · {obj.get_status_display().lower()}"

    def has_review_permission(self, request) -> bool:
        return request.user.has_perm("reports.review_report")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("raw_body")

    def get_search_results(self, request, queryset, search_term):
        q = _hash_search(search_term, field="instance_hash")
        return (queryset if q is None else queryset.filter(q)), False

    @admin.display(description="received", ordering="received_at")
    def received(self, obj):
        return _moment(obj.received_at)

    @admin.display(description="reason", ordering="reason")
    def problem(self, obj):
        return obj.reason  # "invalid" or "conflict": the long labels are in the filter and the page

    @admin.display(description="instance", ordering="instance_hash")
    def instance(self, obj):
        return _short_hash(obj.instance_hash)

    @admin.display(description="report date", ordering="report_date")
    def report_day(self, obj):
        return _day(obj.report_date)

    @admin.display(description="problem")
    def first_error(self, obj):
        if not obj.errors:
            return "—"
        path, message = next(iter(obj.errors.items()))
        more = f" (+{len(obj.errors) - 1} more)" if len(obj.errors) > 1 else ""
        return Truncator(f"{path or 'body'}: {message}{more}").chars(90)

    @admin.display(description="errors by field")
    def errors_by_field(self, obj):
        if not obj.errors:
            return "—"
        return format_html(
            '<ul class="plain">{}</ul>',
            format_html_join(
                "", "<li><code>{}</code>: {}</li>", ((p or "(body)", m) for p, m in obj.errors.items())
            ),
        )

    @admin.display(description="report")
    def submission_link(self, obj):
        return _change_link(obj.submission, obj.submission) if obj.submission_id else "—"

    @admin.display(description="instance")
    def instance_link(self, obj):
        if not obj.instance_hash:
            return "—"
        instance = Instance.objects.filter(hashed_uuid=obj.instance_hash).only("pk").first()
        if instance is None:
            return format_html("{} (no stored report)", _short_hash(obj.instance_hash))
        return _change_link(instance, obj.instance_hash[:12], obj.instance_hash)

    @admin.display(description="raw body")
    def raw_json(self, obj):
        return _pretty_json(obj.raw_body)

    # Actions.

    @admin.action(description="Re-process selected entries with today's rules", permissions=["review"])
    def reprocess(self, request, queryset):
        self._reprocess(request, queryset)

    @admin.action(description="Dismiss selected entries", permissions=["review"])
    def dismiss(self, request, queryset):
        return self.confirm(
            request,
            queryset,
            step=DISMISS,
            apply=lambda qs, reason: self._dismiss(request, qs, reason),
            action="dismiss",
            cancel_url=self.changelist_url(request),
        )

    def _reprocess(self, request, queryset, reason=""):
        outcomes = defaultdict(int)
        for item in queryset.filter(status=ReviewItem.Status.PENDING).only("pk"):
            try:
                result = moderation.reprocess(item=item, actor=request.user)
            except moderation.ModerationError as exc:  # resolved meanwhile by someone else
                self.message_user(request, str(exc), messages.WARNING)
                continue
            outcomes[result.outcome] += 1
            # Each entry's own message, up to a point; the summary below counts them all.
            if outcomes[result.outcome] <= REPROCESS_MESSAGES:
                ok = result.outcome in {moderation.STORED, moderation.ALREADY_STORED}
                self.message_user(request, result.message, messages.SUCCESS if ok else messages.WARNING)
        if not outcomes:
            self.message_user(request, "No pending entry was selected.", messages.WARNING)
        elif sum(outcomes.values()) > 1:
            summary = ", ".join(f"{n} {REPROCESS_OUTCOMES[outcome]}" for outcome, n in outcomes.items())
            self.message_user(request, f"Re-processed {sum(outcomes.values())} entries: {summary}.")

    def _dismiss(self, request, queryset, reason):
        changed = moderation.dismiss(items=list(queryset.only("pk")), actor=request.user, reason=reason)
        self.message_user(
            request, f"Dismissed {changed} entr{'y' if changed == 1 else 'ies'}.", messages.SUCCESS
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_review": self.has_review_permission(request)}
        return super().change_view(request, object_id, form_url, extra_context)


# --- Moderation log --------------------------------------------------------------------------------


@admin.register(ModerationLog)
class ModerationLogAdmin(ReadOnlyAdmin):
    """Written by the services only; nobody, superusers included, may add, change or delete a row."""

    list_display = ("created", "actor_name", "action", "target", "short_reason")
    list_filter = ("action", ActorFilter)
    search_fields = ("target",)
    search_help_text = "Part of the target, e.g. an instance's hash or 'review entry 12'."
    fields = readonly_fields = ("created_at", "actor_name", "action", "target", "reason", "pretty_detail")

    @admin.display(description="when", ordering="created_at")
    def created(self, obj):
        return _moment(obj.created_at)

    @admin.display(description="reason")
    def short_reason(self, obj):
        return Truncator(obj.reason).chars(80)

    @admin.display(description="detail")
    def pretty_detail(self, obj):
        return _pretty_json(json.dumps(obj.detail))


# --- Ingest health on the admin index --------------------------------------------------------------

_index = admin.site.index


def _index_with_ingest_health(request, extra_context=None):
    """The admin index, with ingest health at the top for those who may see the reports."""
    context = dict(extra_context or {})
    if request.user.has_perm("reports.view_submission"):
        context["ingest_health"] = health.ingest_health()
    return _index(request, extra_context=context)


# The default site is used as is (settings untouched); only its index gains a context entry.
admin.site.index = _index_with_ingest_health
