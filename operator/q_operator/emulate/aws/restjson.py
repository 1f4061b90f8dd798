"""The rest-json wire format, driven by the operation's shapes in both directions.

Input: URI labels, querystring (repeated keys for lists), headers and the JSON body are gathered
into one params dict keyed by member name, as botocore's serializer laid them out. Output and
errors: the output or error shape decides which member goes to a header, the status code or the
JSON body, and how timestamps are written (epoch seconds unless the model says `iso8601`).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from q_operator.emulate.aws.errors import ApiError
from q_operator.emulate.aws.wire import Params, Wire


def _parse_timestamp(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return value
    return value


def _from_text(shape: Shape, text: str) -> Any:
    """A scalar sent as text (URI label, query value, header), typed by its shape when it parses."""
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            return text
    if kind in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    if kind == "timestamp":
        return _parse_timestamp(text)
    return text


def _from_json(shape: Shape, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(shape, StructureShape) and not shape.is_document_type and isinstance(value, dict):
        out: Params = {}
        for name, member in shape.members.items():
            wire = member.serialization.get("name", name)
            if wire in value:
                out[name] = _from_json(member, value[wire])
        return out
    if isinstance(shape, ListShape) and isinstance(value, list):
        return [_from_json(shape.member, item) for item in value]
    if isinstance(shape, MapShape) and isinstance(value, dict):
        return {key: _from_json(shape.value, item) for key, item in value.items()}
    if shape.type_name == "timestamp":
        return _parse_timestamp(value)
    if shape.type_name == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return value
    return value


def cannot_parse(message: str) -> ApiError:
    """The error for a body that is not JSON: ValidationException (reason CANNOT_PARSE where modelled)."""
    return ApiError("ValidationException", message, reason="CANNOT_PARSE", fields=[])


def parse_input(
    op: OperationModel,
    labels: Mapping[str, str],
    query: Mapping[str, list[str]],
    headers: Mapping[str, str],
    body: bytes,
) -> Params:
    """Gather an operation's input from every location the model binds its members to.

    `headers` must have lower-case names. Values that do not parse as their type are kept as text so
    the validator reports them by member name.
    """
    shape = op.input_shape
    if shape is None:
        return {}
    params: Params = {}
    payload_name = shape.serialization.get("payload")
    body_members: dict[str, Shape] = {}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri":
            if wire in labels:
                params[name] = _from_text(member, labels[wire])
        elif location == "querystring":
            if isinstance(member, MapShape):
                params[name] = {key: values[-1] for key, values in query.items()}
            elif isinstance(member, ListShape):
                if wire in query:
                    params[name] = [_from_text(member.member, v) for v in query[wire]]
            elif wire in query:
                params[name] = _from_text(member, query[wire][0])
        elif location == "header":
            text = headers.get(wire.lower())
            if text is not None:
                params[name] = _from_text(member, text)
        elif location == "headers":
            prefix = wire.lower()
            found = {k[len(prefix) :]: v for k, v in headers.items() if k.startswith(prefix)}
            if found:
                params[name] = found
        elif name == payload_name:
            if isinstance(member, StructureShape):
                params[name] = _from_json(member, _load_json(body)) if body else None
            else:
                params[name] = body if member.type_name == "blob" else body.decode("utf-8", "replace")
        else:
            body_members[name] = member
    if body_members and body:
        document = _load_json(body)
        if not isinstance(document, dict):
            raise cannot_parse("Request body must be a JSON object")
        for name, member in body_members.items():
            wire = member.serialization.get("name", name)
            if wire in document:
                params[name] = _from_json(member, document[wire])
    return params


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise cannot_parse(f"Could not parse request body into json: {exc}") from None


def _format_timestamp(value: Any, fmt: str) -> Any:
    if isinstance(value, dt.datetime):
        value = value.timestamp()
    if fmt == "iso8601":
        moment = dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if fmt == "rfc822":
        moment = dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
        return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")
    return round(float(value), 3)


def _to_json(shape: Shape, value: Any) -> Any:
    if isinstance(shape, StructureShape) and not shape.is_document_type:
        out: Params = {}
        for name, member in shape.members.items():
            item = value.get(name)
            if item is not None:
                out[member.serialization.get("name", name)] = _to_json(member, item)
        return out
    if isinstance(shape, ListShape):
        return [_to_json(shape.member, item) for item in value]
    if isinstance(shape, MapShape):
        return {key: _to_json(shape.value, item) for key, item in value.items()}
    if shape.type_name == "timestamp":
        return _format_timestamp(value, shape.serialization.get("timestampFormat", "unixTimestamp"))
    if shape.type_name == "blob" and isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _header_text(shape: Shape, value: Any) -> str:
    if shape.type_name == "timestamp":
        return str(_format_timestamp(value, shape.serialization.get("timestampFormat", "rfc822")))
    if shape.type_name == "boolean":
        return "true" if value else "false"
    return str(value)


def _split(shape: StructureShape | None, values: Params, status: int) -> Wire:
    headers = {"Content-Type": "application/json"}
    if shape is None:
        return status, headers, b"{}"
    body: Params = {}
    for name, member in shape.members.items():
        item = values.get(name)
        if item is None:
            continue
        location = member.serialization.get("location")
        if location == "header":
            headers[member.serialization.get("name", name)] = _header_text(member, item)
        elif location == "headers":
            prefix = member.serialization.get("name", "")
            headers.update({f"{prefix}{k}": str(v) for k, v in item.items()})
        elif location == "statusCode":
            status = int(item)
        else:
            body[member.serialization.get("name", name)] = _to_json(member, item)
    payload = shape.serialization.get("payload")
    if payload is not None:
        inner = body.get(payload)
        return status, headers, json.dumps(inner if inner is not None else {}).encode()
    return status, headers, json.dumps(body).encode()


def serialize_output(op: OperationModel, output: Params, request_id: str) -> Wire:
    """The success answer for an operation, shaped by its output shape (unknown keys dropped)."""
    return _split(op.output_shape, output, int(op.http.get("responseCode", 200)))


def _placeholder(name: str, shape: Shape, service: str) -> Any:
    """A value for a required error member the raiser did not give (a throttle's quotaCode, say)."""
    enum = shape.metadata.get("enum")
    if enum:
        return enum[0]
    if shape.type_name in ("integer", "long"):
        return 0
    if shape.type_name == "list":
        return []
    if name == "serviceCode":
        return service
    return "unknown"


def serialize_error(model: ServiceModel, err: ApiError, request_id: str) -> Wire:
    """A rest-json error: `x-amzn-ErrorType`, status from the error shape, modelled members.

    Errors the service does not model (the front door's ExpiredTokenException, ...) carry their
    status in `err.http_status` and answer `{"message": ...}`."""
    shape: StructureShape | None = None
    if err.code in model.shape_names:
        candidate = model.shape_for(err.code)
        if isinstance(candidate, StructureShape) and candidate.metadata.get("exception"):
            shape = candidate
    status = err.http_status or 400
    values: Params = {"message": err.message}
    if shape is not None:
        status = err.http_status or int(shape.metadata.get("error", {}).get("httpStatusCode", 400))
        for name, value in err.fields.items():
            if name in shape.members:
                values[name] = value
        for name in shape.required_members:
            if values.get(name) is None:
                values[name] = _placeholder(name, shape.members[name], model.service_name)
    status, headers, body = _split(shape, values, status) if shape else (status, {}, b"")
    if shape is None:
        headers = {"Content-Type": "application/json"}
        body = json.dumps(values).encode()
    headers["x-amzn-ErrorType"] = err.code
    return status, headers, body
