"""What kube-apiserver checks and fills in for the built-in kinds the operator and kubectl write.

Only the rules a client of these kinds meets in practice: ConfigMap and Secret keys, Secret data that
must be base64, an Event's namespace, and the fields core/v1 Events and Leases always carry.
"""

from __future__ import annotations

import re
import string
from typing import Any

from q_operator.emulate.kube.errors import FieldError, bad_request, invalid

JSON = dict[str, Any]

_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
_BASE64 = set(string.ascii_letters + string.digits + "+/")


def decode_errors(key: tuple[str, str], version: str, obj: JSON) -> None:
    """What fails while decoding a body into the typed object: a Secret's data must be base64."""
    if key != ("", "secrets"):
        return
    for value in (obj.get("data") or {}).values():
        at = _base64_error(value) if isinstance(value, str) else 0
        if at is not None:
            raise bad_request(
                f'Secret in version "{version}" cannot be handled as a Secret: illegal base64 data at '
                f"input byte {at}"
            )


def _base64_error(text: str) -> int | None:
    """Where Go's standard base64 decoder gives up, or None when the text decodes."""
    body = text.rstrip("=")
    for i, char in enumerate(body):
        if char not in _BASE64:
            return i
    if len(text) % 4:
        return len(text) - len(text) % 4  # an incomplete last quantum fails where it starts
    return None


def errors(key: tuple[str, str], obj: JSON) -> list[FieldError]:
    """ValidateConfigMap, ValidateSecret (keys) and ValidateEvent (namespace), as far as served here."""
    errs: list[FieldError] = []
    if key in (("", "configmaps"), ("", "secrets")):
        data = obj.get("data") or {}
        binary = obj.get("binaryData") or {}
        for field, values in (("data", data), ("binaryData", binary)):
            if not isinstance(values, dict):
                continue
            for name in values:
                if not _CONFIG_KEY.match(name) or name in (".", "..") or len(name) > 253:
                    errs.append(invalid(f"{field}[{name}]", name, _CONFIG_KEY_MSG))
                elif field == "binaryData" and name in data:
                    errs.append(invalid(f"data[{name}]", name, "duplicate of key present in binaryData"))
    if key == ("", "events"):
        involved = obj.get("involvedObject") or {}
        namespace = (obj.get("metadata") or {}).get("namespace", "")
        involved_ns = involved.get("namespace", "")
        # An event without the involved object's namespace belongs in "default" (older clients).
        allowed = (namespace,) if involved_ns else ("", "default")
        if (involved_ns or namespace) not in allowed:
            errs.append(invalid("involvedObject.namespace", involved_ns, "does not match event.namespace"))
    return errs


def set_defaults(key: tuple[str, str], obj: JSON) -> None:
    """Fields the typed objects always serialise, so a real server shows them even when unset."""
    if key == ("", "events"):
        obj.setdefault("source", {})
        for field in ("firstTimestamp", "lastTimestamp", "eventTime"):
            obj.setdefault(field, None)
        obj.setdefault("reportingComponent", "")
        obj.setdefault("reportingInstance", "")
    elif key == ("coordination.k8s.io", "leases"):
        obj.setdefault("spec", {})
