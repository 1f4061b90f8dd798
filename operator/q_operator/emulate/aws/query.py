"""The query wire format (STS), driven by the operation's shapes in both directions.

Input: `Action=...&Version=...` plus the members flattened into form keys the way botocore's
query serializer writes them (`Tags.member.1.Key`, `Attributes.entry.1.value`, empty lists as
`Name=`), from the form body or the querystring. Output: XML, `<OpResponse><OpResult>` around the
members, `ResponseMetadata/RequestId` after. Errors: `<ErrorResponse><Error>` with Type, Code and
Message. Query services name errors by their `error.code` (STS's MalformedPolicyDocument) and use
their own words for the errors every query API shares (AccessDenied, Throttling, ValidationError):
the stand-in's generic errors are translated here, so service code raises the same ApiError for
every protocol.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

from q_operator.emulate.aws.errors import ApiError
from q_operator.emulate.aws.wire import Params, Wire

COMMON_ERRORS: dict[str, tuple[str, int]] = {
    "AccessDeniedException": ("AccessDenied", 403),
    "ThrottlingException": ("Throttling", 400),
    "ValidationException": ("ValidationError", 400),
    "InternalServerException": ("InternalFailure", 500),
    "UnknownOperationException": ("InvalidAction", 400),
    "ExpiredTokenException": ("ExpiredToken", 403),
    "UnrecognizedClientException": ("InvalidClientTokenId", 403),
}
"""The stand-in's generic error names -> what a query API answers instead (code, status)."""


def form(query: Mapping[str, list[str]], body: bytes) -> dict[str, str]:
    """Every key of the querystring and the form body (the body wins), last value of each."""
    out = {key: values[-1] for key, values in query.items() if values}
    if body:
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        out.update({key: values[-1] for key, values in parsed.items()})
    return out


def action(query: Mapping[str, list[str]], body: bytes) -> str | None:
    """The operation a query request names, for routing."""
    return form(query, body).get("Action")


def _scalar(shape: Shape, text: str) -> Any:
    kind = shape.type_name
    try:
        if kind in ("integer", "long"):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
        if kind == "timestamp":
            return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        if kind == "blob":
            return base64.b64decode(text, validate=True)
    except ValueError:
        return text
    if kind == "boolean":
        return {"true": True, "false": False}.get(text.lower(), text)
    return text


def _present(values: Mapping[str, str], key: str) -> bool:
    dotted = key + "."
    return key in values or any(k.startswith(dotted) for k in values)


def _indexes(values: Mapping[str, str], prefix: str) -> list[int]:
    dotted = prefix + "."
    found = set()
    for key in values:
        if key.startswith(dotted):
            head = key[len(dotted) :].split(".", 1)[0]
            if head.isdigit():
                found.add(int(head))
    return sorted(found)


def _decode(shape: Shape, values: Mapping[str, str], key: str) -> Any:
    if isinstance(shape, StructureShape):
        out: Params = {}
        for name, member in shape.members.items():
            inner = f"{key}.{member.serialization.get('name', name)}" if key else name
            if _present(values, inner):
                out[name] = _decode(member, values, inner)
        return out
    if isinstance(shape, ListShape):
        if values.get(key) == "":
            return []
        base = (
            key
            if shape.serialization.get("flattened")
            else f"{key}.{shape.member.serialization.get('name', 'member')}"
        )
        return [_decode(shape.member, values, f"{base}.{i}") for i in _indexes(values, base)]
    if isinstance(shape, MapShape):
        base = key if shape.serialization.get("flattened") else f"{key}.entry"
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        return {
            values.get(f"{base}.{i}.{key_name}", ""): _decode(shape.value, values, f"{base}.{i}.{value_name}")
            for i in _indexes(values, base)
        }
    return _scalar(shape, values.get(key, ""))


def parse_input(
    op: OperationModel,
    labels: Mapping[str, str],
    query: Mapping[str, list[str]],
    headers: Mapping[str, str],
    body: bytes,
) -> Params:
    """An operation's input from its flattened form keys (Action and Version are not members)."""
    shape = op.input_shape
    if shape is None:
        return {}
    decoded: Params = _decode(shape, form(query, body), "")
    return decoded


def _timestamp(value: Any) -> str:
    if isinstance(value, dt.datetime):
        value = value.timestamp()
    moment = dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _xml(shape: Shape, value: Any) -> str:
    """The inner XML of one value (its element is written by the caller)."""
    if isinstance(shape, StructureShape):
        parts = []
        for name, member in shape.members.items():
            item = value.get(name)
            if item is not None:
                parts.append(_element(member.serialization.get("name", name), member, item))
        return "".join(parts)
    if isinstance(shape, ListShape):
        tag = shape.member.serialization.get("name", "member")
        return "".join(_element(tag, shape.member, item) for item in value)
    if isinstance(shape, MapShape):
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        return "".join(
            f"<entry>{_element(key_name, shape.key, k)}{_element(value_name, shape.value, v)}</entry>"
            for k, v in value.items()
        )
    if shape.type_name == "timestamp":
        return _timestamp(value)
    if shape.type_name == "boolean":
        return "true" if value else "false"
    if shape.type_name == "blob" and isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return escape(str(value))


def _element(tag: str, shape: Shape, value: Any) -> str:
    if isinstance(shape, ListShape) and shape.serialization.get("flattened"):
        return "".join(_element(tag, shape.member, item) for item in value)
    return f"<{tag}>{_xml(shape, value)}</{tag}>"


def _namespace(model: ServiceModel) -> str:
    return str(model.metadata.get("xmlNamespace", "https://amazonaws.com/doc/"))


def serialize_output(op: OperationModel, output: Params, request_id: str) -> Wire:
    """`<OpResponse><OpResult>members</OpResult><ResponseMetadata>...</OpResponse>`."""
    shape = op.output_shape
    inner = ""
    if shape is not None:
        wrapper = shape.serialization.get("resultWrapper", f"{op.name}Result")
        inner = f"<{wrapper}>{_xml(shape, output)}</{wrapper}>"
    body = (
        f'<{op.name}Response xmlns="{_namespace(op.service_model)}">{inner}'
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{op.name}Response>"
    )
    return 200, {"Content-Type": "text/xml"}, body.encode()


def error_code(model: ServiceModel, err: ApiError) -> tuple[str, int]:
    """The code and status a query API answers for this error."""
    if err.common and err.code in COMMON_ERRORS:
        return COMMON_ERRORS[err.code]
    if err.code in model.shape_names:
        shape = model.shape_for(err.code)
        error = shape.metadata.get("error") if shape.metadata.get("exception") else None
        if error:
            return str(error.get("code", err.code)), int(error.get("httpStatusCode", 400))
    return COMMON_ERRORS.get(err.code, (err.code, err.http_status or 400))


def serialize_error(model: ServiceModel, err: ApiError, request_id: str) -> Wire:
    """`<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`."""
    code, status = error_code(model, err)
    kind = "Receiver" if status >= 500 else "Sender"
    body = (
        f'<ErrorResponse xmlns="{_namespace(model)}"><Error><Type>{kind}</Type><Code>{escape(code)}</Code>'
        f"<Message>{escape(err.message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return status, {"Content-Type": "text/xml"}, body.encode()
