"""Every constrained input member of every operation we use, broken once: the stand-in says which.

The cases are generated from botocore's model, not written by hand: for each member with a
constraint (required, length, value range, pattern, enum, union, list or map size) one request
breaks exactly that constraint, sent by boto3 with client-side validation off, as a careless
caller's request reaches AWS. The answer must be the service's ValidationException (400; STS, a
query API: ValidationError) naming the member path and the rule.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import botocore.session
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape

from q_operator.emulate.aws.testing import AwsHandle
from q_operator.emulate.aws.validate import compiled_pattern
from tests.emulators.aws_support import OPERATIONS, make_client, valid, validation_code

BAD_STRINGS = ("*", " ", "\u00e9")
REMOVE = object()


@functools.cache
def model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


@dataclass
class Case:
    service: str
    operation: str
    keys: list[Any]
    value: Any
    path: str
    rule: str

    @property
    def id(self) -> str:
        short = re.sub(r"[^A-Za-z0-9 =]", "", self.rule)[:40].strip().replace(" ", "-")
        return f"{self.service}.{self.operation}.{self.path}.{short}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _string_cases(
    shape: Shape, keys: list[Any], path: str, location: str | None
) -> Iterator[tuple[Any, str]]:
    meta = shape.metadata
    low, high = meta.get("min"), meta.get("max")
    if low and not (location == "uri" and low == 1):
        yield "a" * (low - 1), f"Member must have length greater than or equal to {low}"
    if high is not None:
        yield "a" * (high + 1), f"Member must have length less than or equal to {high}"
    pattern = meta.get("pattern")
    if pattern is not None:
        for bad in BAD_STRINGS:
            text = bad * max(low or 1, 1)
            if compiled_pattern(pattern).fullmatch(text) is None:
                yield text, f"Member must satisfy regular expression pattern: {pattern}"
                break
    if isinstance(shape, StringShape) and shape.enum:
        yield "NOT_A_MODELLED_VALUE", "Member must satisfy enum value set: ["


def cases_for(
    shape: Shape, keys: list[Any], path: str, location: str | None
) -> Iterator[tuple[list[Any], Any, str, str]]:
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        required = set(shape.required_members)
        for name, member in shape.members.items():
            member_location = member.serialization.get("location")
            if name in required and member_location != "uri":
                yield [*keys, name], REMOVE, _join(path, name), "Member must not be null"
            yield from cases_for(member, [*keys, name], _join(path, name), member_location)
        if shape.is_tagged_union and keys:
            rule = "Member must have exactly one of the following members set"
            yield keys, {}, path, rule
            two = dict(list(valid_all(shape).items())[:2])
            yield keys, two, path, rule
    elif isinstance(shape, ListShape):
        if meta.get("min"):
            yield keys, [], path, f"Member must have length greater than or equal to {meta['min']}"
        if meta.get("max") is not None:
            yield (
                keys,
                [valid(shape.member)] * (meta["max"] + 1),
                path,
                (f"Member must have length less than or equal to {meta['max']}"),
            )
        yield from cases_for(shape.member, [*keys, 0], f"{path}.1.member", None)
    elif isinstance(shape, MapShape):
        if meta.get("max") is not None:
            many = {f"{valid(shape.key)}{i}": valid(shape.value) for i in range(meta["max"] + 1)}
            yield keys, many, path, f"Member must have length less than or equal to {meta['max']}"
        for bad_key, rule in _string_cases(shape.key, keys, path, None):
            yield keys, {bad_key: valid(shape.value)}, path, f"Map keys must satisfy constraint: [{rule}"
        for bad_value, rule in _string_cases(shape.value, keys, path, None):
            yield keys, {valid(shape.key): bad_value}, path, f"Map value must satisfy constraint: [{rule}"
    elif shape.type_name == "string":
        for value, rule in _string_cases(shape, keys, path, location):
            yield keys, value, path, rule
    elif shape.type_name in ("integer", "long"):
        if "min" in meta:
            yield (
                keys,
                meta["min"] - 1,
                path,
                f"Member must have value greater than or equal to {meta['min']}",
            )
        if "max" in meta:
            yield keys, meta["max"] + 1, path, f"Member must have value less than or equal to {meta['max']}"


def valid_all(shape: StructureShape) -> dict[str, Any]:
    """Every member of a union set at once (only to break the union rule)."""
    return {name: valid(member) for name, member in shape.members.items()}


def put(doc: dict[str, Any], shape: Shape, keys: list[Any], value: Any) -> None:
    """Set `value` at `keys` in a request, creating optional parents and switching union members."""
    key = keys[0]
    if isinstance(shape, StructureShape):
        if shape.is_tagged_union:
            for other in [k for k in doc if k != key]:
                del doc[other]
        member = shape.members[key]
        if len(keys) == 1:
            if value is REMOVE:
                doc.pop(key, None)
            else:
                doc[key] = value
            return
        if key not in doc:
            doc[key] = valid(member)
        put(doc[key], member, keys[1:], value)
    elif isinstance(shape, ListShape):
        if len(keys) == 1:
            doc[key] = value
        else:
            put(doc[key], shape.member, keys[1:], value)
    else:
        raise AssertionError(f"cannot descend into {shape.type_name}")


def all_cases() -> list[Case]:
    out: list[Case] = []
    for service, operations in OPERATIONS.items():
        for operation in operations:
            shape = model(service).operation_model(operation).input_shape
            for keys, value, path, rule in cases_for(shape, [], "", None):
                out.append(Case(service, operation, keys, value, path, rule))
    return out


CASES = all_cases()


def request_for(case: Case) -> dict[str, Any]:
    shape = model(case.service).operation_model(case.operation).input_shape
    doc: dict[str, Any] = copy.deepcopy(valid(shape))
    put(doc, shape, case.keys, case.value)
    return doc


@pytest.fixture(scope="module")
def raw_clients(aws_server: AwsHandle) -> dict[str, Any]:
    return {svc: make_client(aws_server.url, svc, validate=False) for svc in OPERATIONS}


def test_the_generator_covers_every_operation_and_kind_of_rule() -> None:
    operations = {(c.service, c.operation) for c in CASES}
    constrained = {
        (s, o)
        for s, ops in OPERATIONS.items()
        for o in ops
        if model(s).operation_model(o).input_shape.members
    }
    assert operations >= constrained
    rules = " ".join(c.rule for c in CASES)
    for kind in ("not be null", "length greater", "length less", "value greater", "value less",
                 "regular expression", "enum value set", "exactly one", "Map keys", "Map value"):  # fmt: skip
        assert kind in rules


@pytest.mark.parametrize("service,operations", OPERATIONS.items())
def test_a_fully_valid_request_passes_validation(
    aws: AwsHandle, raw_clients: dict[str, Any], service: str, operations: list[str]
) -> None:
    for operation in operations:
        shape = model(service).operation_model(operation).input_shape
        call = getattr(raw_clients[service], xform_name(operation))
        request = valid(shape)
        request.pop("nextToken", None)  # tokens are opaque: only the server's own are valid
        try:
            call(**request)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] != validation_code(service), (operation, exc.response)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_broken_constraint_answers_validation_exception_naming_member_and_rule(
    raw_clients: dict[str, Any], case: Case
) -> None:
    call = getattr(raw_clients[case.service], xform_name(case.operation))
    with pytest.raises(ClientError) as raised:
        call(**request_for(case))
    response = raised.value.response
    assert response["Error"]["Code"] == validation_code(case.service)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    message = response["Error"]["Message"]
    assert f"Value at '{case.path}' failed to satisfy constraint: {case.rule}" in message, message
    if case.service == "qbusiness":
        assert response["reason"] == "FIELD_VALIDATION_FAILED"
        assert any(f["name"] == case.path for f in response["fields"])
