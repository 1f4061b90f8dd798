"""Which wire format a service speaks, from its model's `protocol`: one interface over all of them.

Core code parses and answers through `protocol_for(model)` and never branches on a service or a
protocol itself. rest-json and query (STS) are served; a service model with another protocol fails
at start, not on its first call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from botocore.model import OperationModel, ServiceModel

from q_operator.emulate.aws import query, restjson
from q_operator.emulate.aws.errors import ApiError
from q_operator.emulate.aws.wire import Params, Wire

__all__ = ["Params", "Wire", "WireFormat", "protocol_for"]


@dataclass(frozen=True)
class WireFormat:
    """How one protocol reads a request and writes an answer."""

    name: str
    parse_input: Callable[
        [OperationModel, Mapping[str, str], Mapping[str, list[str]], Mapping[str, str], bytes], Params
    ]
    """(operation, URI labels, querystring, lower-case headers, body) -> input params."""
    serialize_output: Callable[[OperationModel, Params, str], Wire]
    """(operation, output, request id) -> answer."""
    serialize_error: Callable[[ServiceModel, ApiError, str], Wire]
    """(service model, error, request id) -> answer."""
    error_code: Callable[[ServiceModel, ApiError], str]
    """The code a client sees for an error (what the request log records)."""


REST_JSON = WireFormat(
    "rest-json",
    restjson.parse_input,
    restjson.serialize_output,
    restjson.serialize_error,
    lambda _model, err: err.code,
)
QUERY = WireFormat(
    "query",
    query.parse_input,
    query.serialize_output,
    query.serialize_error,
    lambda model, err: query.error_code(model, err)[0],
)
FORMATS = {f.name: f for f in (REST_JSON, QUERY)}


def protocol_for(model: ServiceModel) -> WireFormat:
    """The wire format of a service model; ValueError for a protocol the stand-in does not speak."""
    name = str(model.metadata.get("protocol"))
    found = FORMATS.get(name)
    if found is None:
        raise ValueError(f"{model.service_name}: protocol {name!r} is not served (only {sorted(FORMATS)})")
    return found
