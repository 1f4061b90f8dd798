"""Decoding the protobuf bodies kubectl's typed clients send for built-in kinds (`kubectl create ns`).

Only the kinds served here and the fields kubectl's generators set are known: Namespace, ConfigMap,
Secret and ServiceAccount with their ObjectMeta. Responses are always JSON, which those clients accept.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

JSON = dict[str, Any]
MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """A body this decoder cannot read."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs; varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
    return out


def _text(value: int | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(value: int | bytes) -> tuple[str, bytes]:
    key, val = "", b""
    for number, item in _fields(value if isinstance(value, bytes) else b""):
        if number == 1:
            key = _text(item)
        elif number == 2 and isinstance(item, bytes):
            val = item
    return key, val


def _meta(data: bytes) -> JSON:
    meta: JSON = {}
    names = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    for number, value in _fields(data):
        if number in names:
            meta[names[number]] = _text(value)
        elif number in (11, 12):
            key, val = _entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = val.decode()
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def _namespace(fields: list[tuple[int, int | bytes]], obj: JSON) -> None:
    for number, value in fields:
        if number == 2 and isinstance(value, bytes):
            obj["spec"] = {"finalizers": [_text(v) for n, v in _fields(value) if n == 1]}


def _configmap(fields: list[tuple[int, int | bytes]], obj: JSON) -> None:
    for number, value in fields:
        if number == 2:
            key, val = _entry(value)
            obj.setdefault("data", {})[key] = val.decode()
        elif number == 3:
            key, val = _entry(value)
            obj.setdefault("binaryData", {})[key] = base64.b64encode(val).decode()
        elif number == 4:
            obj["immutable"] = bool(value)


def _secret(fields: list[tuple[int, int | bytes]], obj: JSON) -> None:
    for number, value in fields:
        if number == 2:
            key, val = _entry(value)
            obj.setdefault("data", {})[key] = base64.b64encode(val).decode()
        elif number == 3:
            obj["type"] = _text(value)
        elif number == 4:
            key, val = _entry(value)
            obj.setdefault("stringData", {})[key] = val.decode()
        elif number == 5:
            obj["immutable"] = bool(value)


def _serviceaccount(fields: list[tuple[int, int | bytes]], obj: JSON) -> None:
    for number, value in fields:
        if number == 4:
            obj["automountServiceAccountToken"] = bool(value)


_KINDS: dict[str, Callable[[list[tuple[int, int | bytes]], JSON], None]] = {
    "Namespace": _namespace,
    "ConfigMap": _configmap,
    "Secret": _secret,
    "ServiceAccount": _serviceaccount,
}


def decode(body: bytes) -> JSON:
    """A `k8s\\0`-framed runtime.Unknown holding one of the known kinds, as a JSON object."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic number")
    api_version = kind = ""
    raw = b""
    for number, value in _fields(body[len(MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            for n, v in _fields(value):
                if n == 1:
                    api_version = _text(v)
                elif n == 2:
                    kind = _text(v)
        elif number == 2 and isinstance(value, bytes):
            raw = value
    if kind not in _KINDS:
        raise ProtobufError(f"protobuf bodies of kind {kind or '<unknown>'} are not supported; send JSON")
    fields = _fields(raw)
    obj: JSON = {"apiVersion": api_version, "kind": kind, "metadata": {}}
    for number, value in fields:
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _meta(value)
    _KINDS[kind](fields, obj)
    return obj
