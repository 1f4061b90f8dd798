"""Label selectors (=, ==, !=, in, notin, exists, !exists) and field selectors (=, ==, !=)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from q_operator.emulate.kube.errors import bad_request

JSON = dict[str, Any]
Matcher = Callable[[JSON], bool]

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(in|notin)\s*\(([^)]*)\))?\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    terms, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def _label_check(key: str, op: str, values: set[str]) -> Callable[[dict[str, str]], bool]:
    def check(labels: dict[str, str]) -> bool:
        if op == "exists":
            return key in labels
        if op == "!exists":
            return key not in labels
        return (labels.get(key) in values) == (op == "=")

    return check


def _field_check(key: str, value: str, equal: bool) -> Matcher:
    return lambda obj: (_field_value(obj, key) == value) == equal


def label_selector(text: str | None) -> Matcher:
    """A predicate on an object's labels; raises ApiError 400 on a malformed selector."""
    if not text:
        return lambda obj: True
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_terms(text):
        if "!=" in term:
            key, value = (p.strip() for p in term.split("!=", 1))
            checks.append(_label_check(key, "!=", {value}))
            continue
        if "==" in term or ("=" in term and " in " not in term and "notin" not in term):
            key, value = (p.strip() for p in term.replace("==", "=").split("=", 1))
            checks.append(_label_check(key, "=", {value}))
            continue
        m = _SET_RE.match(term)
        if not m:
            # The lexer reads the key, then stops at the next word it cannot take as an operator.
            words = term.split()
            found = words[1] if len(words) > 1 else ""
            raise bad_request(
                f"unable to parse requirement: found '{found}', expected: in, notin, =, ==, !=, gt, lt"
            )
        negate, key, op, values_text = m.groups()
        if op:
            values = {v.strip() for v in values_text.split(",") if v.strip()}
            checks.append(_label_check(key, "=" if op == "in" else "!=", values))
        else:
            checks.append(_label_check(key, "!exists" if negate else "exists", set()))

    def match(obj: JSON) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(check(labels) for check in checks)

    return match


def _field_value(obj: JSON, path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        return ""
    if isinstance(node, dict):
        return str(node.get("component", ""))  # events' `source` selects on source.component
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def field_selector(text: str | None, supported: tuple[str, ...]) -> Matcher:
    """A predicate on the fields the resource supports, plus metadata.name and metadata.namespace."""
    if not text:
        return lambda obj: True
    allowed = {"metadata.name", "metadata.namespace", *supported}
    checks: list[Callable[[JSON], bool]] = []
    for term in _split_terms(text):
        if "!=" in term:
            key, value = (p.strip() for p in term.split("!=", 1))
            equal = False
        elif "=" in term:
            key, value = (p.strip() for p in term.replace("==", "=").split("=", 1))
            equal = True
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        if key not in allowed:
            raise bad_request(f"field label not supported: {key}")
        checks.append(_field_check(key, value, equal))
    return lambda obj: all(check(obj) for check in checks)
