"""The connector adapter's part in eventual consistency (engine/consistency.py): RegisterConnector takes no
tags, so a create tags with a second call, TagResource. That call's outcome (lost, failed, or made
by a process that then stopped) must never make the engine send RegisterConnector and TagResource
again: the adapter reports the tags as set later (`Created.set_later`), and the engine sets them by
an update only if they still do not show once the consistency bound has passed."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from q_operator.kinds import base
from q_operator.kinds.appflowconnector import KIND, AppFlowConnectorAdapter


def test_connector_create_leaves_a_failed_tagging_to_a_later_update() -> None:
    """RegisterConnector acted: failing the create would resend it and tag again. The tags are reported
    as set later; the engine waits for them, and sets them by an update after the bound."""
    client = boto3.client(
        "appflow", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    arn = "arn:aws:appflow:us-east-1:123456789012:connector/label-1"
    stubber.add_response("register_connector", {"connectorArn": arn})
    stubber.add_client_error("tag_resource", "InternalServerException", http_status_code=500)
    spec = KIND.spec_model.model_validate(
        {
            "connectorLabel": "label-1",
            "connectorProvisioningConfig": {
                "lambda": {"lambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:f"}
            },
        }
    )
    owner = base.Owner("uid-1", "ns", "obj")
    with stubber:
        token = base.ClientToken("t" * 40)
        made = AppFlowConnectorAdapter(client).create(spec, owner, token, base.Resolved())
    assert made.ref == {"connectorLabel": "label-1"} and made.set_later == ("tags",)


def test_a_repeated_connector_create_leaves_the_tags_to_the_engine() -> None:
    """A replay after a restart: the first create may have tagged it; tagging again is not called for."""
    client = boto3.client(
        "appflow", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stubber = Stubber(client)
    stubber.add_response("register_connector", {"connectorArn": "arn:aws:appflow:us-east-1:1:connector/lab"})
    spec = KIND.spec_model.model_validate(
        {
            "connectorLabel": "lab",
            "connectorProvisioningConfig": {
                "lambda": {"lambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:f"}
            },
        }
    )
    owner = base.Owner("uid-1", "ns", "obj", repeat=True)
    with stubber:  # no tag_resource stubbed: a call would fail the test
        token = base.ClientToken("t" * 40)
        made = AppFlowConnectorAdapter(client).create(spec, owner, token, base.Resolved())
    stubber.assert_no_pending_responses()
    assert made.set_later == ("tags",)
