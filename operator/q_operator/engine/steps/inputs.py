"""Before AWS is called: the spec against the kind's model, and the ConfigMap values it refers to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from q_operator.engine import conditions as c
from q_operator.engine.cycle import Cycle
from q_operator.engine.errors import RetryableError, TerminalError, backoff_delay, classify
from q_operator.kinds.base import Resolved


def validate(cy: Cycle) -> BaseModel:
    """The spec as the kind's model: AWS never sees a spec that fails it."""
    try:
        spec: BaseModel = cy.kind.spec_model.model_validate(dict(cy.obj.spec))
    except ValidationError as error:
        problems = "; ".join(f"spec.{_loc(e['loc'])}: {e['msg']}" for e in error.errors())
        raise TerminalError(c.INVALID_SPEC, f"validation failed: {problems}") from None
    return spec


def validate_leniently(cy: Cycle) -> BaseModel:
    """For deletion: an invalid spec must not keep the finalizer (the ref addresses the resource)."""
    try:
        return validate(cy)
    except TerminalError:
        spec: BaseModel = cy.kind.spec_model.model_construct(**dict(cy.obj.spec))
        return spec


async def resolve(cy: Cycle) -> Resolved:
    """Read every `...From: {configMapKeyRef: {name, key}}` in the spec."""
    obj = cy.obj
    values: dict[str, str] = {}
    for path, name, key in _config_map_refs(obj.spec):
        try:
            data = await cy.deps.read_configmap(obj.namespace, name)
        except Exception as error:
            raise classify(error, "resolve", obj.retry, cy.deps.rng) from error
        if data is None or key not in data:
            what = f"ConfigMap {obj.namespace}/{name}" + ("" if data is None else f" has no key {key!r}")
            raise RetryableError(
                c.REFERENCE_NOT_FOUND,
                f"resolve failed: spec.{path}: {what}" + (" not found" if data is None else ""),
                backoff_delay(obj.retry + 4, cy.deps.rng),
            )
        values[path] = data[key]
    return Resolved(values)


def config_map_names(spec: Mapping[str, Any]) -> set[str]:
    """The ConfigMaps (in the object's namespace) a spec refers to: for the ConfigMap watch."""
    return {name for _, name, _ in _config_map_refs(spec) if name}


def _config_map_refs(spec: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted path of the `...From` key, ConfigMap name, key) for every ConfigMap reference."""
    found: list[tuple[str, str, str]] = []
    for key, value in spec.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            ref = value.get("configMapKeyRef")
            if str(key).endswith("From") and isinstance(ref, Mapping):
                found.append((path, str(ref.get("name", "")), str(ref.get("key", ""))))
            else:
                found.extend(_config_map_refs(value, path))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    found.extend(_config_map_refs(item, f"{path}[{index}]"))
    return found


def _loc(path: Sequence[int | str]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
