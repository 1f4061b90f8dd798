"""Object metadata checks with k8s.io/apimachinery's validation wording: names, labels, annotations.

These are where operators break on a real cluster without noticing on a lax stand-in: a label value
with a space, an annotation key with two slashes, a name with capitals.
"""

from __future__ import annotations

import json
import re
from typing import Any

from q_operator.emulate.kube.errors import FieldError, invalid

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
_QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex "
    "used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
_ANNOTATIONS_LIMIT = 256 * 1024


def is_dns_label(name: str) -> bool:
    return len(name) <= 63 and bool(_DNS1123_LABEL.match(name))


def is_dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and bool(_DNS1123_SUBDOMAIN.match(name))


def qualified_name_errors(path: str, key: str, lowercase: bool = False) -> list[FieldError]:
    """`[prefix/]name` with a DNS-subdomain prefix and a 63-character name part."""
    parts = (key.lower() if lowercase else key).split("/")
    if len(parts) > 2:
        return [
            invalid(
                path,
                key,
                "a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start "
                "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS "
                "subdomain prefix and '/' (e.g. 'example.com/MyName')",
            )
        ]
    errs: list[FieldError] = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append(invalid(path, key, "prefix part must be non-empty"))
        elif not is_dns_subdomain(prefix):
            errs.append(invalid(path, key, "prefix part " + SUBDOMAIN_MSG))
    if not name:
        errs.append(invalid(path, key, "name part must be non-empty"))
    elif len(name) > 63:
        errs.append(invalid(path, key, "name part must be no more than 63 characters"))
    elif not _QUALIFIED_NAME.match(name):
        errs.append(invalid(path, key, _QUALIFIED_MSG))
    return errs


def metadata_errors(meta: dict[str, Any], name_is_label: bool) -> list[FieldError]:
    """Name, labels, annotations and finalizers of an object, as ValidateObjectMeta checks them."""
    errs: list[FieldError] = []
    name = str(meta.get("name") or "")
    if name_is_label and not is_dns_label(name):
        errs.append(invalid("metadata.name", name, LABEL_MSG))
    elif not name_is_label and not is_dns_subdomain(name):
        errs.append(invalid("metadata.name", name, SUBDOMAIN_MSG))
    labels = meta.get("labels")
    if labels is not None:
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            errs.append(invalid("metadata.labels", labels, "must be a map of string to string"))
        else:
            for key, value in labels.items():
                errs.extend(qualified_name_errors("metadata.labels", key))
                if len(value) > 63:
                    errs.append(invalid("metadata.labels", value, "must be no more than 63 characters"))
                elif not _LABEL_VALUE.match(value):
                    errs.append(invalid("metadata.labels", value, _VALUE_MSG))
    annotations = meta.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict) or not all(isinstance(v, str) for v in annotations.values()):
            errs.append(invalid("metadata.annotations", annotations, "must be a map of string to string"))
        else:
            for key in annotations:
                errs.extend(qualified_name_errors("metadata.annotations", key, lowercase=True))
            size = sum(len(k) + len(v) for k, v in annotations.items())
            if size > _ANNOTATIONS_LIMIT:
                errs.append(
                    FieldError(
                        "metadata.annotations",
                        "FieldValueTooLong",
                        f"Too long: must have at most {_ANNOTATIONS_LIMIT} bytes",
                    )
                )
    finalizers = meta.get("finalizers")
    if finalizers is not None:
        if not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers):
            errs.append(invalid("metadata.finalizers", json.dumps(finalizers), "must be a list of strings"))
        else:
            for finalizer in finalizers:
                errs.extend(qualified_name_errors("metadata.finalizers", finalizer))
    return errs


_STANDARD_FINALIZERS = frozenset({"orphan", "foregroundDeletion", "kubernetes"})


def finalizer_warnings(finalizers: Any, old: Any) -> list[str]:
    """What a real server warns about the finalizers a custom resource write adds (sorted)."""
    added = sorted(set(finalizers or []) - set(old or [])) if isinstance(finalizers, list) else []
    warnings: list[str] = []
    for finalizer in added:
        if not isinstance(finalizer, str):
            continue
        where = f"metadata.finalizers: {json.dumps(finalizer)}"
        for err in qualified_name_errors("metadata.finalizers", finalizer):
            detail = err.message.split(": ", 2)[-1]
            warnings.append(f"{where}: {detail}")
        if "/" not in finalizer and finalizer not in _STANDARD_FINALIZERS:
            path = " including a path (/)" if "." in finalizer else ""
            hint = f"prefer a domain-qualified finalizer name{path} to avoid accidental conflicts"
            warnings.append(f"{where}: {hint} with other finalizer writers")
    return warnings
