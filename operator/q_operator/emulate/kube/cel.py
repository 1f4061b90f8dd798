"""`x-kubernetes-validations` rules, evaluated with cel-python the way the API server evaluates them.

A rule runs where its schema node has a value. Transition rules (those naming `oldSelf`) run only on
update and only where the old object has a value at the same place (correlated through properties,
map keys and list-map keys); on create they are skipped, unless `optionalOldSelf` is set.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from functools import lru_cache
from typing import Any

import celpy
from celpy import celtypes
from celpy.adapter import json_to_cel

from q_operator.emulate.kube.errors import FieldError, go_quote, type_name

JSON = dict[str, Any]

_OLD_SELF = re.compile(r"\boldSelf\b")
_RESULTS: dict[str, FieldError | None] = {}
_RESULTS_LIMIT = 20_000
_ENV = celpy.Environment()


def _str_fn(fn: Any) -> Any:
    return lambda s, *a: celtypes.StringType(fn(str(s), *[str(x) for x in a]))


def _is_sorted(items: Any) -> celtypes.BoolType:
    values = list(items)
    return celtypes.BoolType(all(a <= b for a, b in itertools.pairwise(values)))


_VERB = re.compile(r"%(?:\.(\d+))?([sdfexXobt%])")


def _format_one(verb: str, precision: str | None, arg: Any) -> str:
    if verb == "s":
        if isinstance(arg, celtypes.BoolType):
            return "true" if arg else "false"
        if isinstance(arg, list | tuple):
            return "[" + ", ".join(_format_one("s", None, a) for a in arg) + "]"
        return str(arg)
    if verb == "d":
        return str(int(arg))
    if verb in "fe":
        digits = 6 if precision is None else int(precision)
        return f"{float(arg):.{digits}{verb}}"
    if verb in "xX":
        text = format(int(arg), "x") if not isinstance(arg, str) else bytes(arg, "utf-8").hex()
        return text.upper() if verb == "X" else text
    if verb == "o":
        return format(int(arg), "o")
    return format(int(arg), "b")


def _format(template: Any, args: Any) -> celtypes.StringType:
    """The strings library's `format`: %s, %d, %f, %e, %x, %X, %o, %b, with %% for a percent sign."""
    values = list(args)

    def substitute(m: re.Match[str]) -> str:
        if m.group(2) == "%":
            return "%"
        if not values:
            raise ValueError("index out of range")
        return _format_one(m.group(2), m.group(1), values.pop(0))

    return celtypes.StringType(_VERB.sub(substitute, str(template)))


_FUNCTIONS: dict[str, Any] = {
    # Kubernetes' CEL libraries (strings, lists) beyond standard CEL, as far as rules commonly use them.
    "lowerAscii": _str_fn(lambda s: s.lower()),
    "upperAscii": _str_fn(lambda s: s.upper()),
    "trim": _str_fn(lambda s: s.strip()),
    "replace": _str_fn(lambda s, a, b: s.replace(a, b)),
    "indexOf": lambda s, sub: celtypes.IntType(str(s).find(str(sub))),
    "lastIndexOf": lambda s, sub: celtypes.IntType(str(s).rfind(str(sub))),
    "split": lambda s, sep: celtypes.ListType([celtypes.StringType(x) for x in str(s).split(str(sep))]),
    "join": lambda items, sep="": celtypes.StringType(str(sep).join(str(x) for x in items)),
    "format": _format,
    "isSorted": _is_sorted,
    "sum": lambda items: sum(items),
    "min": lambda items: min(items),
    "max": lambda items: max(items),
    "isURL": lambda s: celtypes.BoolType(bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", str(s)))),
}


@lru_cache(maxsize=512)
def _program(expression: str) -> celpy.Runner:
    return _ENV.program(_ENV.compile(expression), functions=_FUNCTIONS)


def compile_error(expression: str) -> str | None:
    """Why a rule does not compile (in cel-python's words), or None."""
    try:
        _program(expression)
    except Exception as exc:  # cel-python raises its own error types for syntax and type errors
        return f"ERROR: <input>: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    return None


def _evaluate(expression: str, activation: dict[str, Any]) -> Any:
    return _program(expression).evaluate(activation)


def check_object(schema: JSON | None, obj: JSON, old: JSON | None) -> list[FieldError]:
    """Every CEL rule of the schema against the object (and the old object on update)."""
    if schema is None:
        return []
    root = {k: v for k, v in obj.items()}
    meta = obj.get("metadata") or {}
    root["metadata"] = {k: meta[k] for k in ("name", "generateName") if k in meta}
    old_root: JSON | None = None
    if old is not None:
        old_root = dict(old)
        old_meta = old.get("metadata") or {}
        old_root["metadata"] = {k: old_meta[k] for k in ("name", "generateName") if k in old_meta}
    errs: list[FieldError] = []
    _walk(schema, root, old_root, old_root is not None, "", errs, is_root=True)
    return errs


def _walk(
    schema: JSON,
    value: Any,
    old: Any,
    has_old: bool,
    path: str,
    errs: list[FieldError],
    is_root: bool = False,
) -> None:
    if value is None:
        return
    for rule in schema.get("x-kubernetes-validations") or []:
        err = _check_rule(rule, value, old, has_old, path)
        if err is not None:
            errs.append(err)
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if is_root and key == "metadata":
                continue
            sub = props.get(key) if key in props else additional if isinstance(additional, dict) else None
            if sub is None:
                continue
            old_has = has_old and isinstance(old, dict) and key in old
            _walk(
                sub, item, old.get(key) if old_has else None, old_has, f"{path}.{key}" if path else key, errs
            )
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        items = schema["items"]
        keys = (
            schema.get("x-kubernetes-list-map-keys")
            if schema.get("x-kubernetes-list-type") == "map"
            else None
        )
        olds: dict[tuple[Any, ...], Any] = {}
        if keys and has_old and isinstance(old, list):
            olds = {tuple(str(o.get(k)) for k in keys): o for o in old if isinstance(o, dict)}
        for i, item in enumerate(value):
            ident = tuple(str(item.get(k)) for k in keys) if keys and isinstance(item, dict) else None
            old_has = ident is not None and ident in olds
            _walk(items, item, olds.get(ident) if ident is not None else None, old_has, f"{path}[{i}]", errs)


def _check_rule(rule: JSON, value: Any, old: Any, has_old: bool, path: str) -> FieldError | None:
    expression = str(rule.get("rule", ""))
    transition = bool(_OLD_SELF.search(expression))
    if transition and not has_old and not rule.get("optionalOldSelf"):
        return None
    if not transition and has_old and value == old:
        return None  # ratcheting: an unchanged value is not re-judged by a non-transition rule
    # cel-python takes about half a millisecond per rule; operators rewrite the same spec over and
    # over (status and annotation patches), so results are remembered by rule and input.
    key = json.dumps([rule, path, value, old if transition else None, has_old], sort_keys=True, default=str)
    if key in _RESULTS:
        return _RESULTS[key]
    result = _run_rule(rule, expression, transition, value, old, has_old, path)
    if len(_RESULTS) >= _RESULTS_LIMIT:
        _RESULTS.pop(next(iter(_RESULTS)))
    _RESULTS[key] = result
    return result


def _run_rule(
    rule: JSON, expression: str, transition: bool, value: Any, old: Any, has_old: bool, path: str
) -> FieldError | None:
    activation: dict[str, Any] = {"self": json_to_cel(value)}
    if transition:
        activation["oldSelf"] = json_to_cel(old) if has_old else celtypes.MapType()
    field_path = path + str(rule.get("fieldPath") or "")
    field_path = field_path.lstrip(".")
    try:
        result = _evaluate(expression, activation)
    except Exception as exc:  # cel-python raises several kinds; any is an evaluation error.
        detail = exc.args[0] if exc.args else str(exc)
        return _error(rule, field_path, value, f"{detail} evaluating rule: {expression}", typed=True)
    if isinstance(result, Exception):
        detail = result.args[0] if result.args else str(result)
        return _error(rule, field_path, value, f"{detail} evaluating rule: {expression}", typed=True)
    if bool(result) is True:
        return None
    message = str(rule.get("message") or f"failed rule: {expression}")
    if rule.get("messageExpression"):
        # A broken messageExpression falls back to the message, as the server does.
        with contextlib.suppress(Exception):
            message = str(_evaluate(str(rule["messageExpression"]), activation))
    return _error(rule, field_path, value, message)


def _shown(value: Any) -> str:
    """How a failed rule's field error shows the value: scalars as Go prints them, objects and lists
    not at all (the API server passes field.OmitValueType for them)."""
    if isinstance(value, dict | list):
        return ""
    return go_quote(value) + ": "


def _error(rule: JSON, path: str, value: Any, message: str, typed: bool = False) -> FieldError:
    path = path or "<nil>"  # a root-level rule: the API server prints the empty field path as <nil>
    reason = str(rule.get("reason") or "FieldValueInvalid")
    if typed:  # evaluation errors carry the schema type as the value
        return FieldError(path, "FieldValueInvalid", f'Invalid value: "{type_name(value)}": {message}')
    if reason == "FieldValueForbidden":
        return FieldError(path, reason, f"Forbidden: {message}")
    if reason == "FieldValueRequired":
        return FieldError(path, reason, f"Required value: {message}")
    if reason == "FieldValueDuplicate":
        shown = _shown(value)
        return FieldError(path, reason, f"Duplicate value: {shown[:-2]}" if shown else "Duplicate value")
    return FieldError(path, "FieldValueInvalid", f"Invalid value: {_shown(value)}{message}")
