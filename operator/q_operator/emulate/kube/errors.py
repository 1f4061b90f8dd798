"""Failures as the real API server reports them: a `Status` object with reason, code and causes.

Field errors keep the wording of k8s.io/apimachinery's `field.Error` so kubectl prints to the user
exactly what a real cluster would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]


def go_quote(value: object) -> str:
    """Render a value as Go's %q / %v would in field error messages."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def type_name(value: object) -> str:
    """The JSON type name the API server prints for a complex or mistyped value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@dataclass(frozen=True)
class FieldError:
    """One `field.Error`: where, which kind of failure, and the detail."""

    field: str
    reason: str
    message: str

    def render(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def cause(self) -> JSON:
        return {"reason": self.reason, "message": self.message, "field": self.field}


def required(path: str, detail: str = "") -> FieldError:
    return FieldError(path, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))


def invalid(path: str, value: object, detail: str) -> FieldError:
    if value is None:
        return FieldError(path, "FieldValueInvalid", f"Invalid value: null: {detail}")
    shown = value if isinstance(value, str | int | float | bool) else type_name(value)
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {go_quote(shown)}: {detail}")


def not_supported(path: str, value: object, allowed: list[Any]) -> FieldError:
    # apiextensions passes non-string enum values as their JSON text, which field.NotSupported quotes.
    values = ", ".join(json.dumps(v if isinstance(v, str) else json.dumps(v)) for v in allowed)
    return FieldError(
        path, "FieldValueNotSupported", f"Unsupported value: {go_quote(value)}: supported values: {values}"
    )


def too_long(path: str, limit: int) -> FieldError:
    unit = "byte" if limit == 1 else "bytes"
    return FieldError(path, "FieldValueTooLong", f"Too long: may not be more than {limit} {unit}")


def too_many(path: str, actual: int, limit: int) -> FieldError:
    return FieldError(path, "FieldValueTooMany", f"Too many: {actual}: must have at most {limit} items")


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError(path, "FieldValueForbidden", f"Forbidden: {detail}")


def duplicate(path: str, value: object) -> FieldError:
    return FieldError(path, "FieldValueDuplicate", f"Duplicate value: {go_quote(value)}")


class ApiError(Exception):
    """Raised by handlers; the server turns it into the Status response."""

    def __init__(self, code: int, reason: str, message: str, details: JSON | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        # Warnings raised before the failure (unknown fields) still reach the client.
        self.warnings: list[str] = []

    def status(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if not self.reason:
            del body["reason"]
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(name: str, group: str, kind: str) -> JSON:
    """StatusDetails: every field is omitted when empty, as Go's omitempty does."""
    details: JSON = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    return details


def not_found(group_resource: str, group: str, plural: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{group_resource} "{name}" not found', _details(name, group, plural))


def already_exists(group_resource: str, group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409, "AlreadyExists", f'{group_resource} "{name}" already exists', _details(name, group, plural)
    )


def conflict(group_resource: str, group: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {group_resource} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        _details(name, group, plural),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unknown_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


class PageNotFound(ApiError):
    """A path no handler serves: the real server's mux answers a plain-text 404, not a Status."""

    def __init__(self) -> None:
        super().__init__(404, "NotFound", "404 page not found")


def unsupported_media_type(content_type: str, accepted: list[str]) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted),
    )


def invalid_object(group_kind: str, group: str, kind: str, name: str, errors: list[FieldError]) -> ApiError:
    """422 Invalid with one cause per field error, worded as `field.ErrorList.ToAggregate()`."""
    rendered = list(dict.fromkeys(e.render() for e in errors))  # ToAggregate drops repeats from the text
    body = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details = _details(name, group, kind)
    details["causes"] = [e.cause() for e in errors]
    return ApiError(422, "Invalid", f'{group_kind} "{name}" is invalid: {body}', details)


def forbidden_request(message: str, group: str = "", plural: str = "", name: str = "") -> ApiError:
    return ApiError(403, "Forbidden", message, _details(name, group, plural) if plural else None)


def summarize(raw: bytes, limit: int = 30) -> str:
    """The start of a request body as the API server quotes it in decode errors."""
    if not raw:
        return "<empty>"
    if raw[:1] == b"{":
        text = raw[:limit].decode(errors="replace")
        return text + " ..." if len(raw) > limit else text
    return raw[:limit].hex() + (" ..." if len(raw) > limit else "")


def go_json_error(exc: ValueError, raw: bytes) -> str:
    """Python's JSON decode error in the words of Go's encoding/json, which the API server prints."""
    message = str(getattr(exc, "msg", exc))
    pos = int(getattr(exc, "pos", 0) or 0)
    if pos >= len(raw.rstrip()) and message != "Extra data":
        return "unexpected end of JSON input"
    char = raw[pos : pos + 1].decode("latin-1")
    where = {
        "Expecting property name enclosed in double quotes": "looking for beginning of object key string",
        "Expecting value": "looking for beginning of value",
        "Expecting ',' delimiter": "after object key:value pair",
        "Expecting ':' delimiter": "after object key",
        "Extra data": "after top-level value",
    }.get(message)
    if where is None:
        return message
    shown = char if char.isprintable() and char != "'" else f"\\u{ord(char):04x}"
    return f"invalid character '{shown}' {where}"


def unrecognized(kind: str, detail: str, raw: bytes) -> ApiError:
    """A body the decoder could not make into the resource's kind."""
    return bad_request(
        f"the object provided is unrecognized (must be of type {kind}): {detail} ({summarize(raw)})"
    )


def bad_resource_version(value: str) -> str:
    return f'resourceVersion: Invalid value: "{value}": strconv.ParseUint: parsing "{value}": invalid syntax'


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
