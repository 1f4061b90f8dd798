"""Whatever JSON arrives, the stand-in answers like AWS would: never with its own failure (500)."""

from __future__ import annotations

import functools
import json
import urllib.error
import urllib.request
from typing import Any

import botocore.session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from q_operator.emulate.aws.testing import AwsHandle

APP = "0f8fad5b-d9cb-469f-a165-70867728950e"
ARN = f"arn:aws:qbusiness:us-east-1:123456789012:application/{APP}/plugin/{APP}"
TARGETS = [
    ("qbusiness", "CreatePlugin", "POST", f"/applications/{APP}/plugins"),
    ("qbusiness", "UpdatePlugin", "PUT", f"/applications/{APP}/plugins/{APP}"),
    ("qbusiness", "TagResource", "POST", "/v1/tags/" + urllib.request.quote(ARN, safe="")),
    ("qapps", "CreateLibraryItem", "POST", "/catalog.createItem"),
    ("qapps", "UpdateLibraryItem", "POST", "/catalog.updateItem"),
    ("qapps", "BatchCreateCategory", "POST", "/catalog.createCategories"),
    ("appflow", "RegisterConnector", "POST", "/register-connector"),
    ("appflow", "UpdateConnectorRegistration", "POST", "/update-connector-registration"),
    ("appflow", "ListConnectors", "POST", "/list-connectors"),
]

scalars = (
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=8) | st.sampled_from(["JIRA", "LAMBDA"])
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@functools.cache
def member_names(service: str, operation: str) -> list[str]:
    shape = botocore.session.get_session().get_service_model(service).operation_model(operation).input_shape
    return [n for n, m in shape.members.items() if "location" not in m.serialization]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, str, bytes]:
    service, operation, method, path = draw(st.sampled_from(TARGETS))
    names = member_names(service, operation)
    body: dict[str, Any] = draw(st.dictionaries(st.sampled_from(names), values, max_size=len(names)))
    return service, method, path, json.dumps(body).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests())
def test_random_json_never_breaks_the_stand_in(
    aws_server: AwsHandle, request: tuple[str, str, str, bytes]
) -> None:
    service, method, path, body = request
    sent = urllib.request.Request(aws_server.url + path, data=body, method=method)
    sent.add_header(
        "Authorization", f"AWS4-HMAC-SHA256 Credential=k/20260101/us-east-1/{service}/aws4_request"
    )
    sent.add_header("instance-id", "fuzz")
    try:
        with urllib.request.urlopen(sent, timeout=10) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        payload = json.loads(exc.read())
        assert "emulator bug" not in payload.get("message", ""), payload
    assert status < 500
