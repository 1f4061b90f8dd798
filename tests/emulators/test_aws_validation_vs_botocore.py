"""The stand-in's validator agrees with botocore's own on the rules botocore checks client-side.

botocore checks required members, minimum lengths and values, unions and types before sending; the
stand-in checks those and more. For random inputs drawn from each operation's input shape, every
problem botocore finds must be one the stand-in names at the same member.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, Shape, StructureShape
from botocore.validate import ParamValidator
from hypothesis import given, settings
from hypothesis import strategies as st

from q_operator.emulate.aws.validate import validate
from tests.emulators.aws_support import OPERATIONS

CHECKED = {"missing required field", "invalid length", "invalid range", "invalid type", "empty input",
           "more than one input"}  # fmt: skip
keys = st.text(alphabet="abcxyz", max_size=3)


@functools.cache
def model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def values(shape: Shape, depth: int = 0) -> st.SearchStrategy[Any]:
    """Inputs near the edges of a shape's rules: absent members, empty strings and lists, wrong types."""
    if isinstance(shape, StructureShape):
        members = {name: values(member, depth + 1) for name, member in shape.members.items()}
        return st.fixed_dictionaries({}, optional=members)
    if isinstance(shape, ListShape):
        return st.lists(values(shape.member, depth + 1), max_size=2)
    if isinstance(shape, MapShape):
        return st.dictionaries(keys, values(shape.value, depth + 1), max_size=2)
    if shape.type_name == "string":
        return st.text(alphabet="ab1-", max_size=3) | st.integers(0, 3)
    if shape.type_name in ("integer", "long"):
        return st.integers(-2, 120) | st.just("7")
    if shape.type_name == "boolean":
        return st.booleans() | st.just("true")
    return st.nothing()


OPS = [(service, operation) for service, operations in OPERATIONS.items() for operation in operations]


@st.composite
def inputs(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    service, operation = draw(st.sampled_from(OPS))
    shape = model(service).operation_model(operation).input_shape
    return service, operation, draw(values(shape))


def our_path(botocore_name: str, shape: StructureShape) -> str:
    """botocore's `a.b[0].c` / `m (key: k)` / `m.k` as the stand-in names it: `a.b.1.member.c` / `m`."""
    parts = re.findall(r"\.([^.\[ ]+)|\[(\d+)\]", re.sub(r" \(key: .*\)$", "", botocore_name))
    out: list[str] = []
    current: Shape = shape
    for member, index in parts:
        if isinstance(current, MapShape):
            break  # scalar map values are reported at the map
        if index:
            assert isinstance(current, ListShape)
            out.append(f"{int(index) + 1}.member")
            current = current.member
        else:
            assert isinstance(current, StructureShape)
            out.append(member)
            current = current.members[member]
    return ".".join(out)


@settings(max_examples=400, deadline=None)
@given(drawn=inputs())
def test_every_problem_botocore_finds_is_named_by_the_stand_in(
    drawn: tuple[str, str, dict[str, Any]],
) -> None:
    service, operation, params = drawn
    shape = model(service).operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    ours = {v.path for v in validate(shape, params)}
    for reason, name, extra in report._errors:
        if reason not in CHECKED:
            continue
        if reason == "missing required field":
            name = f"{name}.{extra['required_name']}"
        path = our_path(name, shape)
        assert path in ours, (operation, reason, name, path, ours)
