"""appflow custom connector registrations: unique labels, Lambda checks, tags as a map.

A registration has no updatedAt: registeredAt never moves; UpdateConnectorRegistration moves
connectorVersion (AppFlow: it moves the connector to the Lambda's latest version).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from q_operator.emulate.aws.call import Call, Params, Service
from q_operator.emulate.aws.config import Knobs, known_flag, mapping, names, names_or_any
from q_operator.emulate.aws.errors import ApiError, conflict, not_found, quota_exceeded
from q_operator.emulate.aws.services.paging import page
from q_operator.emulate.aws.state import Table

LAMBDA_FAILURES = {
    "authentication": "ConnectorAuthenticationException",
    "server": "ConnectorServerException",
}
"""How a broken Lambda fails (`broken_lambdas`' values) -> the error AppFlow answers."""


def _broken_lambdas(value: Any) -> dict[str, str]:
    broken = {str(k): str(v) for k, v in mapping(value).items()}
    if any(v not in LAMBDA_FAILURES for v in broken.values()):
        raise ValueError(f"values must be among {sorted(LAMBDA_FAILURES)}")
    return broken


@dataclass
class AppFlowKnobs(Knobs):
    """appflow's settings: which Lambda functions exist or fail, connectors in use, the quota."""

    known_lambdas: set[str] | None = None
    connectors_in_use: set[str] = field(default_factory=set)
    """Labels whose unregister without forceDelete is a ConflictException."""
    broken_lambdas: dict[str, str] = field(default_factory=dict)
    """lambdaArn -> `authentication` | `server`: register/update with it fails like a broken Lambda."""
    connectors_per_region: int = 100

    PARSE = {"known_lambdas": names_or_any, "connectors_in_use": names, "broken_lambdas": _broken_lambdas}
    QUOTAS = ("connectors_per_region",)
    FLAGS = (known_flag("lambdas"),)


@dataclass
class Connector:
    label: str
    arn: str
    description: str | None
    lambda_arn: str | None
    provisioning_type: str
    version: int
    registered_at: float
    registered_by: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class Backend:
    """Custom connector registrations of one account in one region, by connectorLabel."""

    connectors: Table[Connector] = field(default_factory=Table)


ACall = Call[Backend, AppFlowKnobs]


def _missing(member: str) -> ApiError:
    return ApiError(
        "ValidationException",
        f"1 validation error detected: Value at '{member}' failed to satisfy constraint: "
        "Member must not be null",
    )


def _check_lambda(call: ACall, lambda_arn: str) -> None:
    """Known and working? A broken Lambda fails the way AppFlow reports it when it invokes it."""
    known = call.knobs.known_lambdas
    if known is not None and lambda_arn not in known:
        raise not_found(lambda_arn, "Lambda", f"Lambda function {lambda_arn} does not exist")
    failure = call.knobs.broken_lambdas.get(lambda_arn)
    if failure is not None:
        raise ApiError(
            LAMBDA_FAILURES[failure],
            f"Connector Lambda {lambda_arn} failed while AppFlow read its metadata ({failure})",
        )


def _lambda_arn(params: Params) -> str | None:
    config = params.get("connectorProvisioningConfig") or {}
    lambda_config = config.get("lambda") or {}
    arn = lambda_config.get("lambdaArn")
    return str(arn) if arn is not None else None


def _absent(label: str) -> ApiError:
    return not_found(label, "Connector", f"No custom connector registered with label {label}")


def _primary(call: ACall, label: str) -> Connector:
    """The registration as writes see it (never lagging)."""
    found = call.backend.connectors.get(label, call.now)
    if found is None:
        raise _absent(label)
    return found


def register_connector(call: ACall, params: Params) -> Params:
    label = params.get("connectorLabel")
    if label is None:
        raise _missing("connectorLabel")
    lambda_arn = _lambda_arn(params)
    if lambda_arn is None:
        raise _missing("connectorProvisioningConfig")
    connectors = call.backend.connectors
    if connectors.get(label, call.now) is not None:
        raise conflict(label, "Connector", f"A connector with the given name already exists: {label}")
    if connectors.count(call.now) >= call.knobs.connectors_per_region:
        raise quota_exceeded(label, "Connector", "Custom connector quota reached for this region")
    _check_lambda(call, lambda_arn)
    connector = Connector(
        label=label,
        arn=f"arn:aws:appflow:{call.region}:{call.account}:connector/{label}",
        description=params.get("description"),
        lambda_arn=lambda_arn,
        provisioning_type=params.get("connectorProvisioningType") or "LAMBDA",
        version=1,
        registered_at=call.now,
        registered_by=call.caller_arn,
    )
    connectors.create(label, connector, call.view)
    return {"connectorArn": connector.arn}


def _registration(connector: Connector) -> Params:
    """The model's ConnectorDetail (ListConnectors' member): no ARN, no Lambda. applicationType is
    left out: AppFlow does not say what it holds for a custom connector."""
    return {
        "connectorType": "CustomConnector",
        "connectorLabel": connector.label,
        "connectorDescription": connector.description,
        "connectorName": connector.label,
        "connectorOwner": connector.registered_by,
        "connectorVersion": f"{connector.version}.0",
        "connectorProvisioningType": connector.provisioning_type,
        "registeredAt": connector.registered_at,
        "registeredBy": connector.registered_by,
        "connectorModes": ["SOURCE", "DESTINATION"],
        "supportedDataTransferTypes": ["RECORD"],
    }


def describe_connector(call: ACall, params: Params) -> Params:
    connector_type = params["connectorType"]
    if connector_type != "CustomConnector":
        return {"connectorConfiguration": {"connectorType": connector_type, "canUseAsSource": True}}
    label = params.get("connectorLabel")
    if label is None:
        raise _missing("connectorLabel")
    connector = call.backend.connectors.read(label, call.view)
    if connector is None:
        raise _absent(label)
    configuration: dict[str, Any] = {
        **_registration(connector),
        "connectorArn": connector.arn,
        "connectorProvisioningConfig": {"lambda": {"lambdaArn": connector.lambda_arn}},
        "canUseAsSource": True,
        "canUseAsDestination": True,
        "supportedSchedulingFrequencies": ["ONCE"],
        "supportedTriggerTypes": ["OnDemand"],
    }
    return {"connectorConfiguration": configuration}


def update_connector_registration(call: ACall, params: Params) -> Params:
    connector = _primary(call, params["connectorLabel"])
    lambda_arn = _lambda_arn(params) or connector.lambda_arn
    if lambda_arn is not None:
        _check_lambda(call, lambda_arn)
    connector = call.backend.connectors.edit(connector.label, call.view)
    connector.lambda_arn = lambda_arn
    if params.get("description") is not None:
        connector.description = params["description"]
    connector.version += 1
    return {"connectorArn": connector.arn}


def unregister_connector(call: ACall, params: Params) -> Params:
    connector = _primary(call, params["connectorLabel"])
    if connector.label in call.knobs.connectors_in_use and not params.get("forceDelete"):
        raise conflict(
            connector.label,
            "Connector",
            f"Connector {connector.label} is in use by one or more connector profiles; "
            "set forceDelete to unregister it anyway",
        )
    call.backend.connectors.delete(connector.label, call.view)
    return {}


def list_connectors(call: ACall, params: Params) -> Params:
    entries = call.backend.connectors.read_all(call.view)
    chosen, following = page(entries, params.get("nextToken"), params.get("maxResults") or 20)
    return {"connectors": [_registration(c) for c in chosen], "nextToken": following}


def _tagged(call: ACall, arn: str, *, read: bool) -> Connector:
    call.own_arn(arn)
    table = call.backend.connectors
    label = arn.partition(":connector/")[2]
    connector = table.read(label, call.view) if read else table.get(label, call.now)
    if connector is None or connector.arn != arn:
        raise not_found(arn, "Connector", f"Resource {arn} not found")
    return connector


MAX_TAGS = 50
"""AppFlow's tags-per-resource limit (the TagMap shape allows 50 per request too)."""


def tag_resource(call: ACall, params: Params) -> Params:
    connector = _tagged(call, params["resourceArn"], read=False)
    merged = {**connector.tags, **params["tags"]}
    if len(merged) > MAX_TAGS:
        raise ApiError(
            "ValidationException",
            f"1 validation error detected: Value at 'tags' failed to satisfy constraint: "
            f"a resource can have at most {MAX_TAGS} tags, this request would leave {len(merged)}",
        )
    call.backend.connectors.edit(connector.label, call.view).tags = merged
    return {}


def untag_resource(call: ACall, params: Params) -> Params:
    connector = _tagged(call, params["resourceArn"], read=False)
    connector = call.backend.connectors.edit(connector.label, call.view)
    for key in params["tagKeys"]:
        connector.tags.pop(key, None)
    return {}


def list_tags_for_resource(call: ACall, params: Params) -> Params:
    return {"tags": dict(_tagged(call, params["resourceArn"], read=True).tags)}


def dump(backend: Backend, now: float) -> dict[str, Any]:
    return {"connectors": [dataclasses.asdict(c) for c in backend.connectors.values(now, every=True)]}


SERVICE = Service[Backend, AppFlowKnobs](
    name="appflow",
    backend=Backend,
    knobs=AppFlowKnobs,
    dump=dump,
    handlers={
        "RegisterConnector": register_connector,
        "DescribeConnector": describe_connector,
        "UpdateConnectorRegistration": update_connector_registration,
        "UnregisterConnector": unregister_connector,
        "ListConnectors": list_connectors,
        "TagResource": tag_resource,
        "UntagResource": untag_resource,
        "ListTagsForResource": list_tags_for_resource,
    },
)
