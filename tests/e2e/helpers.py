"""Small helpers for the end-to-end tests: manifests, kubectl apply, boto3 against the stand-in."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
from botocore.config import Config

from q_operator.sandbox import Sandbox

QPLUGINS = "qbusiness.q-operator.dev/v1alpha1/qplugins"
QLIBRARYITEMS = "qapps.q-operator.dev/v1alpha1/qlibraryitems"
APPFLOWCONNECTORS = "appflow.q-operator.dev/v1alpha1/appflowconnectors"

APPLICATION_ID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
OPENAPI = json.dumps(
    {
        "openapi": "3.0.0",
        "info": {"title": "Orders", "version": "1.0"},
        "paths": {
            "/orders": {"get": {"operationId": "listOrders", "responses": {"200": {"description": "ok"}}}}
        },
    }
)


def new_application_id() -> str:
    return str(uuid.uuid4())


def qplugin(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """A valid custom plugin with an inline OpenAPI schema and no auth; `spec` overrides fields."""
    body: dict[str, Any] = {
        "applicationId": APPLICATION_ID,
        "displayName": name,
        "type": "CUSTOM",
        "authConfiguration": {"noAuthConfiguration": {}},
        "customPluginConfiguration": {
            "description": "Orders API",
            "apiSchemaType": "OPEN_API_V3",
            "apiSchema": {"payload": OPENAPI},
        },
    }
    body.update(spec)
    return {
        "apiVersion": "qbusiness.q-operator.dev/v1alpha1",
        "kind": "QPlugin",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def apply(sandbox: Sandbox, obj: dict[str, Any], check: bool = True) -> str:
    """kubectl apply the object; returns kubectl's stdout (or stderr when check is False and it failed)."""
    result = sandbox.kubectl("apply", "-f", "-", input=json.dumps(obj), check=check)
    return result.stdout if result.returncode == 0 else result.stderr


def client(sandbox: Sandbox, service: str) -> Any:
    """A plain boto3 client against the AWS stand-in, as a user's script would make one."""
    return boto3.client(
        service,
        endpoint_url=sandbox.aws_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )


def calls(sandbox: Sandbox, operation: str | None = None) -> list[dict[str, Any]]:
    """The AWS calls the stand-in received, optionally only one operation's."""
    return [r for r in sandbox.aws_requests() if operation is None or r.get("operation") == operation]


def plugins_in(sandbox: Sandbox, application_id: str) -> list[dict[str, Any]]:
    qbusiness = client(sandbox, "qbusiness")
    found: list[dict[str, Any]] = []
    for page in qbusiness.get_paginator("list_plugins").paginate(applicationId=application_id):
        found.extend(page["plugins"])
    return found
