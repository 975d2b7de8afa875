"""Serializers describing the API's inputs and outputs for the OpenAPI schema.

The report's shape is generated from the field tables in formats.py (validation itself is done
there, so that the error messages name the exact field path and nothing is half-checked).
"""

from rest_framework import serializers

from . import formats

_STATUSES = ["created", "duplicate", "conflict", "rejected"]


def _field_for(f: formats.Field, nested: serializers.Serializer | None = None):
    options = {"required": f.required("3"), "help_text": f.meaning}
    if f.kind == "count":
        return serializers.IntegerField(min_value=0, max_value=formats.MAX_COUNT, **options)
    if f.kind == "hash":
        return serializers.RegexField(r"^[0-9A-Fa-f]{64}$", min_length=64, max_length=64, **options)
    if f.kind == "uuid":
        return serializers.UUIDField(allow_null=True, **options)
    if f.kind == "text":
        return serializers.CharField(max_length=formats.MAX_TEXT, **options)
    if f.kind == "date":
        return serializers.DateField(**options)
    if f.kind == "datetime":
        return serializers.DateTimeField(**options)
    if f.kind == "format":
        return serializers.ChoiceField(choices=list(formats.FORMATS), **options)
    if f.kind == "object":
        return nested
    if f.kind == "list":
        return serializers.ListField(child=nested, **options)
    raise ValueError(f"no serializer field for kind {f.kind!r}")


def _serializer(name: str, fields, nested=None):
    attrs = {f.name: _field_for(f, nested) for f in fields}
    return type(name, (serializers.Serializer,), attrs)


WorkflowSerializer = _serializer("Workflow", formats.WORKFLOW_FIELDS)
ProjectSerializer = _serializer("Project", formats.PROJECT_FIELDS, WorkflowSerializer())
InstanceSerializer = _serializer("Instance", formats.INSTANCE_FIELDS)


class ReportSerializer(serializers.Serializer):
    """A usage report, format "1", "2" or "3" (format 3 shown: see /about/data for each format)."""

    version = _field_for(formats.REPORT_FIELDS[0])
    generated_at = _field_for(formats.REPORT_FIELDS[1])
    report_date = serializers.DateField(required=False, help_text=formats.REPORT_FIELDS[2].meaning)
    instance = InstanceSerializer()
    projects = serializers.ListField(child=ProjectSerializer())


class MetricsResponseSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=_STATUSES)
    message = serializers.CharField()
    report_date = serializers.DateField(required=False)
    errors = serializers.DictField(
        child=serializers.CharField(), required=False, help_text="A message for each field path at fault"
    )


class ProblemSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="A word for the problem, e.g. malformed, too_large, throttled")
    message = serializers.CharField()


class TableSerializer(serializers.Serializer):
    chart = serializers.CharField(help_text="The chart's name")
    title = serializers.CharField()
    columns = serializers.ListField(child=serializers.CharField(), help_text="Names of the row values")
    rows = serializers.ListField(
        child=serializers.ListField(child=serializers.JSONField()), help_text="One row per period or bucket"
    )
    notes = serializers.ListField(child=serializers.CharField(), required=False)
    query = serializers.DictField(required=False, help_text="The range and granularity the rows cover")
