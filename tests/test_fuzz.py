"""Property-based tests: any JSON at all, at any path, gets a specific answer and never a 500.

hypothesis generates bodies; schemathesis generates requests from our own OpenAPI schema.
"""

import json

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reports import formats, ingest
from reports.models import Instance, Project, ReviewItem, Submission, Workflow
from tests.factories import report

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=300)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)


def paths(data, prefix=()):
    """Every path to a value inside a JSON document."""
    yield prefix
    if isinstance(data, dict):
        for k, v in data.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from paths(v, (*prefix, i))


def replaced(data, path, value):
    if not path:
        return value
    out = json.loads(json.dumps(data))
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


VALID = report(fmt="3", projects=2, workflows=2, cleartext=True)
ALL_PATHS = [p for p in paths(VALID) if p]


@given(data=JSON)
@settings(max_examples=300, deadline=None)
def test_validation_of_any_json_value_either_accepts_or_names_the_fields(data):
    try:
        formats.validate(data)
    except formats.InvalidReport as exc:
        assert exc.errors and all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in exc.errors.items()
        )


@given(path=st.sampled_from(ALL_PATHS), value=JSON)
@settings(max_examples=500, deadline=None)
def test_a_wrong_value_at_any_path_is_named_at_that_path_or_accepted(path, value):
    data = replaced(VALID, path, value)
    try:
        result = formats.validate(data)
    except formats.InvalidReport as exc:
        names = [str(p) for p in path]
        # The error is about the changed value, or something at or under it ...
        assert any(
            key == "..."
            or key.replace("[", ".").replace("]", "").startswith(".".join(names[:2]).rstrip("."))
            or key.startswith(names[0])
            for key in exc.errors
        ), (path, exc.errors)
    else:
        # ... or the value was acceptable there, and the report says so.
        assert result.instance.hashed_uuid


@given(
    depth=st.integers(min_value=1, max_value=5000),
    text=st.text(min_size=0, max_size=5000),
    number=st.integers(min_value=2**63 - 5, max_value=2**80),
)
@settings(max_examples=60, deadline=None)
def test_deep_nesting_huge_numbers_and_long_unicode(depth, text, number):
    deep = "[" * depth + "]" * depth
    body = f'{{"version": "3", "instance": {deep}, "projects": [], "x": {json.dumps(text)}}}'
    data = json.loads(body) if depth < 900 else None
    if data is not None:
        with pytest.raises(formats.InvalidReport):
            formats.validate(data)
    changed = replaced(VALID, ("instance", "no_of_users"), number)
    if number > 2**63 - 1:
        with pytest.raises(formats.InvalidReport) as info:
            formats.validate(changed)
        assert info.value.errors == {"instance.no_of_users": f"must be at most {2**63 - 1}"}
    versioned = replaced(VALID, ("instance", "version"), text)
    try:
        assert formats.validate(versioned).instance.version == text.strip()
    except formats.InvalidReport as exc:
        assert list(exc.errors) == ["instance.version"]


@pytest.mark.django_db
@given(body=st.binary(max_size=400) | JSON.map(lambda v: json.dumps(v).encode()))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_endpoint_answers_anything_without_a_500_and_stores_all_or_nothing(post_report, body):
    before = (Submission.objects.count(), Project.objects.count(), Workflow.objects.count())
    response = post_report(body)
    assert response.status_code in (201, 200, 202, 400)
    assert response["Content-Type"] == "application/json"
    status = response.json()["status"]
    after = (Submission.objects.count(), Project.objects.count(), Workflow.objects.count())
    if status == "created":
        assert after[0] == before[0] + 1
    else:
        assert after == before  # nothing half-stored
    if status == "malformed":
        assert response.json()["message"]


@pytest.mark.django_db
def test_a_report_is_whole_or_absent_even_when_storage_fails_late(monkeypatch):
    data = report(projects=3, workflows=4)
    calls = {"n": 0}
    original = ingest._insert_rows

    def fail_on_workflows(model, *args, **kwargs):
        calls["n"] += 1
        if model is Workflow:
            raise RuntimeError("disk full")
        return original(model, *args, **kwargs)

    monkeypatch.setattr(ingest, "_insert_rows", fail_on_workflows)
    with pytest.raises(RuntimeError):
        ingest.receive(body=json.dumps(data).encode())
    assert calls["n"] == 2
    assert (Instance.objects.count(), Submission.objects.count(), Project.objects.count()) == (0, 0, 0)
    assert ReviewItem.objects.count() == 0


schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_schema(case, fresh_cache):
    """Every documented operation, with generated inputs: no 5xx, and answers as documented.

    An invalid report is answered 202 and kept for review on purpose (Lightning re-sends anything
    else for ever), so "invalid data must get a 4xx" does not apply; and some rules are beyond what
    OpenAPI can say (a custom range lies between 2020 and today, start before end), so a schema-valid
    request may still get a specific 400.
    """
    response = case.call()
    assert response.status_code < 500, response.text
    case.validate_response(
        response,
        excluded_checks=[
            schemathesis.checks.negative_data_rejection,
            schemathesis.checks.positive_data_acceptance,
        ],
    )
