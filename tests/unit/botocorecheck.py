"""Hold a kind's models to botocore's service models, so an AWS API change (a new plugin type, a
longer name, a changed pattern) makes a test fail instead of reaching users.

Reusable: `check(binding, service_model)` compares one model field with one botocore shape; each kind
lists its rows in tests/unit/test_<kind>_botocore.py. Paths: dotted property names in the model
(`authConfiguration.roleArn`), `""` for the model itself, `tags{key}` / `tags{value}` for a map's keys
and values, `categories[]` for a list's items. Shapes: `ShapeName` or `ShapeName.member.member`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import botocore.loaders
import botocore.model
import botocore.session
from pydantic import BaseModel

from q_operator.kinds.base import CommonSpec

JsonDict = dict[str, Any]

#: Spec fields every kind has that no AWS request carries (the operator's own: kinds/base.py CommonSpec).
COMMON_FIELDS = frozenset(CommonSpec.model_fields)


@dataclass(frozen=True)
class Binding:
    """One model field held against one botocore shape (or structure member)."""

    model: type[BaseModel]
    path: str
    service: str
    shape: str
    #: for structures: botocore members the model leaves out on purpose (with the reason in a comment).
    ignore_members: frozenset[str] = frozenset()
    #: for structures: model properties botocore does not have.
    extra_members: frozenset[str] = frozenset()
    #: for structures: members the model requires although botocore does not.
    extra_required: frozenset[str] = frozenset()
    #: list/map maximum the model keeps below botocore's for entries the operator reserves.
    reserved_entries: int = 0
    #: whether the leaf's requiredness in its parent must match botocore's.
    check_required: bool = True

    @property
    def id(self) -> str:
        return f"{self.model.__name__}.{self.path or '<root>'}={self.service}:{self.shape}"


def members(*names: str) -> frozenset[str]:
    """A set of member names, for the Binding fields that take one."""
    return frozenset(names)


def _inline(node: Any, defs: JsonDict) -> Any:
    """pydantic's JSON schema with $refs inlined and Optional[X] as X (keywords kept)."""
    if isinstance(node, list):
        return [_inline(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if "anyOf" in node:
        real = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(real) == 1:
            node = {**{k: v for k, v in node.items() if k != "anyOf"}, **real[0]}
            return _inline(node, defs)
    return {k: _inline(v, defs) for k, v in node.items()}


def model_node(model: type[BaseModel], path: str) -> tuple[JsonDict, JsonDict | None, str]:
    """(schema node at path, its parent object node, the leaf name)."""
    raw = model.model_json_schema(mode="validation")
    node: JsonDict = _inline(raw, raw.get("$defs", {}))
    parent: JsonDict | None = None
    leaf = ""
    if not path:
        return node, None, ""
    for part in path.split("."):
        if part.endswith("{key}"):
            parent, leaf = None, ""
            node = node["properties"][part[: -len("{key}")]]["propertyNames"]
        elif part.endswith("{value}"):
            parent, leaf = None, ""
            node = node["properties"][part[: -len("{value}")]]["additionalProperties"]
        elif part.endswith("[]"):
            parent, leaf = None, ""
            node = node["properties"][part[: -len("[]")]]["items"]
        else:
            parent, leaf = node, part
            node = node["properties"][part]
    return node, parent, leaf


def botocore_shape(service_model: botocore.model.ServiceModel, path: str) -> tuple[Any, Any, str]:
    """(shape at path, parent structure shape or None, member name)."""
    first, *members = path.split(".")
    shape = service_model.shape_for(first)
    parent, leaf = None, ""
    for member in members:
        parent, leaf = shape, member
        shape = shape.members[member]
    return shape, parent, leaf


def _anchored(pattern: str) -> set[str]:
    return {f"^{pattern}$", f"^(?:{pattern})$"}


def check(binding: Binding, service_model: botocore.model.ServiceModel) -> list[str]:
    """Every way the model field disagrees with the botocore shape (empty when they agree)."""
    node, parent, leaf = model_node(binding.model, binding.path)
    shape, bc_parent, bc_leaf = botocore_shape(service_model, binding.shape)
    meta = shape.metadata
    problems: list[str] = []

    def differ(what: str, ours: Any, theirs: Any) -> None:
        if ours != theirs:
            problems.append(f"{binding.id}: {what}: model has {ours!r}, botocore has {theirs!r}")

    if shape.type_name == "string":
        if "pattern" in meta:
            if node.get("pattern") not in _anchored(meta["pattern"]):
                differ("pattern (anchored)", node.get("pattern"), f"^{meta['pattern']}$")
        else:
            differ("pattern", node.get("pattern"), None)
        differ("min length", node.get("minLength", 0), meta.get("min", 0))
        differ("max length", node.get("maxLength"), meta.get("max"))
        if shape.enum:
            differ("enum", sorted(node.get("enum", [node.get("const")])), sorted(shape.enum))
    elif shape.type_name in ("integer", "long"):
        differ("minimum", node.get("minimum"), meta.get("min"))
        differ("maximum", node.get("maximum"), meta.get("max"))
    elif shape.type_name in ("list", "map"):
        is_map = node.get("type") == "object"
        low, high = ("minProperties", "maxProperties") if is_map else ("minItems", "maxItems")
        differ("min entries", node.get(low, 0), meta.get("min", 0))
        bc_max = meta.get("max")
        differ("max entries", node.get(high), None if bc_max is None else bc_max - binding.reserved_entries)
    elif shape.type_name == "structure":
        props = set(node.get("properties", {}))
        common = (
            COMMON_FIELDS if binding.path == "" and issubclass(binding.model, CommonSpec) else frozenset()
        )
        differ(
            "members",
            sorted(props - binding.extra_members - common),
            sorted(set(shape.members) - binding.ignore_members),
        )
        differ(
            "required members",
            sorted(set(node.get("required", [])) - binding.extra_required),
            sorted(set(shape.required_members) - binding.ignore_members),
        )
        if meta.get("union"):
            rules = " ".join(r["rule"] for r in node.get("x-kubernetes-validations", []))
            missing = [m for m in shape.members if f"has(self.{m})" not in rules]
            if missing:
                problems.append(f"{binding.id}: union without an exactly-one CEL rule over {missing}")
    if binding.check_required and parent is not None and bc_parent is not None:
        differ(
            "required",
            leaf in parent.get("required", []),
            bc_leaf in bc_parent.required_members,
        )
    return problems


def _leaf_paths(node: JsonDict, prefix: str) -> list[str]:
    paths = []
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        paths.append(path)
        paths += _leaf_paths(child, path)
    return paths


def unbound_fields(
    model: type[BaseModel], bindings: Iterable[Binding], ours: Iterable[str] = ()
) -> list[str]:
    """Spec fields no binding holds to botocore (and that are not the operator's own): a field added
    to a model without a row would escape the check."""
    bound = {b.path for b in bindings if b.model is model}
    allowed = bound | COMMON_FIELDS | set(ours)
    node, _, _ = model_node(model, "")
    return [path for path in _leaf_paths(node, "") if path not in allowed]


def service_model(service: str) -> botocore.model.ServiceModel:
    return botocore.session.get_session().get_service_model(service)


def changed_service_model(service: str, change: Callable[[JsonDict], None]) -> botocore.model.ServiceModel:
    """botocore's model of `service` with `change` applied to its shapes: an AWS API change, simulated."""
    raw = copy.deepcopy(botocore.loaders.Loader().load_service_model(service, "service-2"))
    change(raw["shapes"])
    return botocore.model.ServiceModel(raw, service_name=service)
