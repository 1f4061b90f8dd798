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


def allow_adoption(sandbox: Sandbox, namespace: str) -> None:
    """What a cluster admin does so that q-operator.dev/adopt-id works in a namespace."""
    sandbox.kube(
        "PATCH",
        f"/api/v1/namespaces/{namespace}",
        {"metadata": {"annotations": {"q-operator.dev/adoption": "allowed"}}},
        content_type="application/merge-patch+json",
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


INSTANCE_ID = "0f9a3c2e-1b4d-4c6e-8a7f-2d3e4f5a6b7c"
ACCOUNT_ID = "123456789012"


def new_instance_id() -> str:
    """A fresh Q Business instance per test: library items and categories are scoped by instance."""
    return str(uuid.uuid4())


def lambda_arn(function: str) -> str:
    return f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{function}"


def qlibraryitem(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    """A valid library item publishing version 1 of a fresh app; `spec` overrides fields."""
    body: dict[str, Any] = {"instanceId": INSTANCE_ID, "appId": str(uuid.uuid4()), "appVersion": 1}
    body.update(spec)
    return {
        "apiVersion": "qapps.q-operator.dev/v1alpha1",
        "kind": "QLibraryItem",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def appflowconnector(name: str, namespace: str, function: str | None = None, **spec: Any) -> dict[str, Any]:
    """A valid Lambda connector registered under its name (no connectorLabel); `spec` overrides fields."""
    body: dict[str, Any] = {
        "description": f"{name} records",
        "connectorProvisioningType": "LAMBDA",
        "connectorProvisioningConfig": {"lambda": {"lambdaArn": lambda_arn(function or name)}},
    }
    body.update(spec)
    return {
        "apiVersion": "appflow.q-operator.dev/v1alpha1",
        "kind": "AppFlowConnector",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


def library_items_in(sandbox: Sandbox, instance_id: str) -> list[dict[str, Any]]:
    """Every library item of an instance, as a user listing the library with boto3 sees them."""
    qapps = client(sandbox, "qapps")
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"instanceId": instance_id, "limit": 100}
    while True:
        page = qapps.list_library_items(**kwargs)
        found.extend(page["libraryItems"])
        if not page.get("nextToken"):
            return found
        kwargs["nextToken"] = page["nextToken"]


def connector_labels(sandbox: Sandbox) -> list[str]:
    """The labels of every registered custom connector, as ListConnectors shows them."""
    appflow = client(sandbox, "appflow")
    labels: list[str] = []
    kwargs: dict[str, Any] = {"maxResults": 100}
    while True:
        page = appflow.list_connectors(**kwargs)
        labels.extend(c["connectorLabel"] for c in page["connectors"])
        if not page.get("nextToken"):
            return labels
        kwargs["nextToken"] = page["nextToken"]


def events_of(sandbox: Sandbox, namespace: str, name: str) -> list[dict[str, Any]]:
    """The Kubernetes events posted about an object, oldest first."""
    listed = sandbox.kube("GET", f"/api/v1/namespaces/{namespace}/events")
    return [e for e in listed.get("items", []) if e.get("involvedObject", {}).get("name") == name]
