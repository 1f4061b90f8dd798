"""Generic input validation: one walk over botocore shapes, no per-field code.

Checks what the real services check and botocore does not (it checks only required, min and
unions client-side): required members, string/list/map/blob lengths, number ranges, anchored
patterns, enums, unions with exactly one member set, and JSON types, at any depth. Violations
are worded as AWS words them ("Value at 'x' failed to satisfy constraint: Member must ...") and
carry the member path: nested members joined by '.', list elements as `name.N.member` (1-based).
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from dataclasses import dataclass
from typing import Any

from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape


@dataclass(frozen=True)
class Violation:
    """One broken constraint: where, and the rule in AWS's wording."""

    path: str
    rule: str
    type_error: bool = False

    def text(self) -> str:
        return f"Value at '{self.path}' failed to satisfy constraint: {self.rule}"


def summarize(violations: list[Violation]) -> str:
    """The ValidationException message for a list of violations, as AWS formats it."""
    count = len(violations)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(v.text() for v in violations)


@functools.cache
def compiled_pattern(pattern: str) -> re.Pattern[str]:
    """A model's (Java) pattern as Python compiles it; the services match it against whole values."""
    # Java's \w, \s, \d are ASCII-only.
    return re.compile(_java_classes(pattern), re.ASCII)


_PROPERTY = re.compile(r"\\p\{(\w+)\}")


@functools.cache
def _category_ranges(category: str) -> str:
    """Java's `\\p{L}` (a Unicode general category, or its first letter) as character-class ranges."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code)).startswith(category):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges)


def _java_classes(pattern: str) -> str:
    """Java regex's `\\p{X}` properties, which Python's `re` lacks, as explicit ranges (STS's tags)."""
    if "\\p{" not in pattern:
        return pattern
    out: list[str] = []
    in_class = False
    index = 0
    while index < len(pattern):
        found = _PROPERTY.match(pattern, index)
        if found is not None:
            ranges = _category_ranges(found.group(1))
            out.append(ranges if in_class else f"[{ranges}]")
            index = found.end()
            continue
        char = pattern[index]
        if char == "\\":
            out.append(pattern[index : index + 2])
            index += 2
            continue
        if char == "[" and not in_class:
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        out.append(char)
        index += 1
    return "".join(out)


def validate(shape: StructureShape, params: dict[str, Any]) -> list[Violation]:
    """Every violation in an operation's input, in model member order."""
    out: list[Violation] = []
    _structure(shape, params, "", out)
    return out


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _structure(shape: StructureShape, value: Any, path: str, out: list[Violation]) -> None:
    if not isinstance(value, dict):
        out.append(Violation(path, "Member must be a structure", type_error=True))
        return
    required = set(shape.required_members)
    present = 0
    for name, member in shape.members.items():
        member_path = _join(path, name)
        if value.get(name) is None:
            if name in required:
                out.append(Violation(member_path, "Member must not be null"))
            continue
        present += 1
        _check(member, value[name], member_path, out)
    if shape.is_tagged_union and present != 1:
        names = ", ".join(shape.members)
        out.append(Violation(path, f"Member must have exactly one of the following members set: [{names}]"))


def _length_rules(shape: Shape, length: int, path: str, out: list[Violation]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and length < low:
        out.append(Violation(path, f"Member must have length greater than or equal to {low}"))
    if high is not None and length > high:
        out.append(Violation(path, f"Member must have length less than or equal to {high}"))


def _string_rules(shape: Shape, value: str, path: str, out: list[Violation]) -> None:
    _length_rules(shape, len(value), path, out)
    pattern = shape.metadata.get("pattern")
    if pattern is not None and compiled_pattern(pattern).fullmatch(value) is None:
        out.append(Violation(path, f"Member must satisfy regular expression pattern: {pattern}"))
    enum = shape.enum if isinstance(shape, StringShape) else []
    if enum and value not in enum:
        out.append(Violation(path, f"Member must satisfy enum value set: [{', '.join(enum)}]"))


def _check(shape: Shape, value: Any, path: str, out: list[Violation]) -> None:
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        if shape.is_document_type:
            return
        _structure(shape, value, path, out)
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            out.append(Violation(path, "Member must be a list", type_error=True))
            return
        _length_rules(shape, len(value), path, out)
        for index, item in enumerate(value, start=1):
            if item is None:  # the lists we serve are not sparse
                out.append(Violation(f"{path}.{index}.member", "Member must not be null"))
            else:
                _check(shape.member, item, f"{path}.{index}.member", out)
    elif isinstance(shape, MapShape):
        _map(shape, value, path, out)
    elif kind == "string":
        if not isinstance(value, str):
            out.append(Violation(path, "Member must be a string", type_error=True))
            return
        _string_rules(shape, value, path, out)
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            out.append(Violation(path, "Member must be an integer", type_error=True))
            return
        _value_rules(shape, value, path, out)
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.append(Violation(path, "Member must be a number", type_error=True))
            return
        _value_rules(shape, value, path, out)
    elif kind == "boolean":
        if not isinstance(value, bool):
            out.append(Violation(path, "Member must be a boolean", type_error=True))
    elif kind == "blob":
        if not isinstance(value, bytes | str):
            out.append(Violation(path, "Member must be a blob", type_error=True))
            return
        _length_rules(shape, len(value), path, out)
    # timestamps are converted while parsing; documents are free-form.


def _value_rules(shape: Shape, value: float, path: str, out: list[Violation]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and value < low:
        out.append(Violation(path, f"Member must have value greater than or equal to {low}"))
    if high is not None and value > high:
        out.append(Violation(path, f"Member must have value less than or equal to {high}"))


def _map(shape: MapShape, value: Any, path: str, out: list[Violation]) -> None:
    """Maps report key and scalar value rules in aggregate, as AWS does ("Map keys must ...")."""
    if not isinstance(value, dict):
        out.append(Violation(path, "Member must be a map", type_error=True))
        return
    _length_rules(shape, len(value), path, out)
    key_rules: list[Violation] = []
    value_rules: list[Violation] = []
    for key, item in value.items():
        _check(shape.key, key, path, key_rules)
        if item is None:
            value_rules.append(Violation(path, "Member must not be null"))
        elif isinstance(shape.value, StructureShape | ListShape | MapShape):
            _check(shape.value, item, f"{path}.{key}", out)
        else:
            _check(shape.value, item, path, value_rules)
    for label, rules in (("Map keys", key_rules), ("Map value", value_rules)):
        distinct = list(dict.fromkeys(v.rule for v in rules))
        if distinct:
            typed = any(v.type_error for v in rules)
            out.append(Violation(path, f"{label} must satisfy constraint: [{', '.join(distinct)}]", typed))
