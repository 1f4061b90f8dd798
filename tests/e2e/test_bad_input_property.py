"""Bad input, property-based: specs of every kind, valid and invalid in every field, applied with
kubectl against the sandbox running the real operator.

The strategies are built from the kinds' pydantic models, through the same structural schema the CRDs
are generated from (`q_operator.crdgen.model_schema`): each input is a known-good spec with zero to
two mutations at any field path the schema names — a valid value drawn from the field's constraints,
or one that breaks them (too long, too short, a pattern miss, a wrong enum, out of range, the wrong
type, a missing required member, an extra field, two members of an exactly-one union, a bad map key).

The property, for every input:
- it is refused at apply time with a kubectl error naming the field, or
- it is accepted, and then, judged by the pydantic model on what the API server stored, it converges
  Ready (valid) or is flagged Synced=False/InvalidSpec naming the field (invalid); an AWS validation
  reason naming the field would also do, but the stand-in (botocore's model) must never have answered
  ValidationException: the operator never calls AWS with input the model forbids;
- and the operator never crashes (process alive, no traceback in its log) and keeps serving: a control
  object of every kind converges after each batch.

Specs are applied in batches (one hypothesis example = one batch) to keep `make test` near a minute;
Q_OPERATOR_BAD_INPUT_BATCHES raises the number of batches (`make reliability` does).
"""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from q_operator.crdgen import model_schema
from q_operator.sandbox import Sandbox, SandboxError, condition, wait_for
from tests.kinds import TEST_KINDS, facts_of, manifest

pytestmark = pytest.mark.e2e

AWS_ARGS = ["--build-seconds", "0.5"]
BATCHES = int(os.environ.get("Q_OPERATOR_BAD_INPUT_BATCHES", "5"))
BATCH_SIZE = 8
VERDICT_SECONDS = 45.0

MODELS: dict[str, type[BaseModel]] = {facts.kind: facts.info.spec_model for facts in TEST_KINDS}
SCHEMAS = {kind: model_schema(model) for kind, model in MODELS.items()}
ASCII = st.characters(codec="ascii", categories=["L", "N", "P", "S", "Zs"])
Path = tuple[str, ...]
#: (what, path, value): "valid", "invalid", "delete", "extra" or "second-member" at a spec path.
Mutation = tuple[str, Path, Any]

# ---------------------------------------------------------------------------------------------------
# Strategies from the schema


def valid_value(schema: Mapping[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """A value the field's own constraints accept (cross-field rules may still refuse it)."""
    if "enum" in schema:
        return st.sampled_from(list(schema["enum"]))
    kind = schema.get("type")
    if kind == "string":
        low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 40))
        if "pattern" in schema:
            pattern = schema["pattern"]
            return (
                st.from_regex(pattern, fullmatch=True, alphabet=ASCII)
                .filter(lambda s: low <= len(s) <= high)
                .map(lambda s: s[:high])
            )
        return st.text(ASCII, min_size=max(low, 1), max_size=min(high, 30))
    if kind == "integer":
        return st.integers(int(schema.get("minimum", 0)), int(schema.get("maximum", 1000)))
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        items = valid_value(schema.get("items", {"type": "string"}), depth + 1)
        unique = schema.get("x-kubernetes-list-type") == "set"
        return st.lists(items, max_size=min(int(schema.get("maxItems", 3)), 3), unique=unique)
    if kind == "object" and "additionalProperties" in schema:
        keys = st.text(string.ascii_letters + "-_.", min_size=1, max_size=12)
        return st.dictionaries(keys, valid_value(schema["additionalProperties"], depth + 1), max_size=3)
    if kind == "object":
        props: Mapping[str, Any] = schema.get("properties", {})
        if not props:
            return st.just({})
        if _exactly_one(schema):
            return st.sampled_from(sorted(props)).flatmap(
                lambda m: valid_value(props[m], depth + 1).map(lambda v, m=m: {m: v})
            )
        required = {k: valid_value(props[k], depth + 1) for k in schema.get("required", [])}
        optional = {k: valid_value(v, depth + 1) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(required, optional=optional if depth < 3 else {})
    return st.just("x")


def _exactly_one(schema: Mapping[str, Any]) -> bool:
    return any("== 1" in str(r.get("rule", "")) for r in schema.get("x-kubernetes-validations", []))


BAD_STRINGS = ("", " ", "!bad value!", "-leading-dash", "UPPER lower", "a" * 3, "x/y\\z", "é")


def invalid_values(schema: Mapping[str, Any]) -> list[Any]:
    """Values that break one of the field's constraints (or its type)."""
    kind = schema.get("type")
    found: list[Any] = []
    if kind == "string":
        if "maxLength" in schema:
            found.append("a" * (int(schema["maxLength"]) + 1))
        if int(schema.get("minLength", 0)) > 0:
            found.append("")
        if "pattern" in schema:
            found += [s for s in BAD_STRINGS if not re.search(schema["pattern"], s)][:2]
        if "enum" in schema:
            found.append("NOT_A_VALUE")
        found.append(12345)
    elif kind == "integer":
        if "maximum" in schema:
            found.append(int(schema["maximum"]) + 1)
        if "minimum" in schema:
            found.append(int(schema["minimum"]) - 1)
        found += ["7", 1.5]
    elif kind == "boolean":
        found += ["yes", 1]
    elif kind == "array":
        found.append("not-a-list")
        if "maxItems" in schema:
            found.append([f"{i:08x}-0000-4000-8000-000000000000" for i in range(int(schema["maxItems"]) + 1)])
        if schema.get("x-kubernetes-list-type") == "set":
            found.append(["a1b2c3d4-0000-4000-8000-000000000000"] * 2)
        found.append([None])
    elif kind == "object" and "additionalProperties" in schema:
        found += [{"": "v"}, {"aws:reserved": "v"}, {"q-operator.dev/mine": "v"}, {"k" * 129: "v"}]
        found += [{"key": "v" * 257}, {"bad key!": "v"}, "not-a-map"]
        if "maxProperties" in schema:
            found.append({f"k{i}": "v" for i in range(int(schema["maxProperties"]) + 1)})
    elif kind == "object":
        found += ["not-an-object", {"bogusField": "x"}]
        if _exactly_one(schema):
            found.append({})
    return found


def field_paths(schema: Mapping[str, Any], prefix: Path = ()) -> list[tuple[Path, Mapping[str, Any]]]:
    """Every property path the schema names, with its schema (objects and their members)."""
    found: list[tuple[Path, Mapping[str, Any]]] = []
    for name, sub in (schema.get("properties") or {}).items():
        path = (*prefix, name)
        found.append((path, sub))
        if sub.get("type") == "object" and "properties" in sub:
            found += field_paths(sub, path)
    return found


def _set(spec: dict[str, Any], path: Path, value: Any) -> None:
    node = spec
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def _delete(spec: dict[str, Any], path: Path) -> None:
    node: Any = spec
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


@st.composite
def mutation(draw: st.DrawFn, kind: str) -> Mutation:
    """(what, path, value): a valid value, an invalid one, a deletion, an extra field or a second
    member of an exactly-one union, at a path of the kind's schema."""
    schema = SCHEMAS[kind]
    path, sub = draw(st.sampled_from(field_paths(schema)))
    choices = ["valid", "invalid", "delete", "extra"]
    parent = _schema_at(schema, path[:-1])
    if _exactly_one(parent):
        choices.append("second-member")
    what = draw(st.sampled_from(choices))
    if what == "valid":
        return what, path, draw(valid_value(sub))
    if what == "invalid":
        bad = invalid_values(sub)
        return (what, path, draw(st.sampled_from(bad))) if bad else ("delete", path, None)
    if what == "extra":
        return what, (*path[:-1], "bogusField"), "x"
    if what == "second-member":
        others = sorted(set(parent.get("properties", {})) - {path[-1]})
        other = draw(st.sampled_from(others))
        return what, (*path[:-1], other), draw(valid_value(parent["properties"][other]))
    return what, path, None


def _schema_at(schema: Mapping[str, Any], path: Path) -> Mapping[str, Any]:
    node = schema
    for key in path:
        node = (node.get("properties") or {}).get(key, {})
    return node


@st.composite
def spec_input(draw: st.DrawFn) -> tuple[str, list[Mutation]]:
    """(kind, mutations): zero to two mutations of a known-good spec of a kind."""
    kind = draw(st.sampled_from(sorted(MODELS)))
    return kind, draw(st.lists(mutation(kind), max_size=2))


def build(kind: str, name: str, namespace: str, mutations: list[Mutation]) -> dict[str, Any]:
    """The object: a known-good spec (unique per object: no name clash between inputs), mutated."""
    obj = manifest(kind, name, namespace)
    spec = obj["spec"]
    field = facts_of(kind).name_field
    if field is not None:
        spec.pop(field, None)  # the object's unique name is the resource's
    for what, path, value in mutations:
        if what == "delete":
            _delete(spec, path)
        else:
            _set(spec, path, json.loads(json.dumps(value)))
    value = spec.get(field) if field is not None else None
    if field is not None and isinstance(value, str):
        rule = _schema_at(SCHEMAS[kind], (field,))
        unique = f"{name}-{value}"
        if re.fullmatch(rule.get("pattern", ".*"), value) and len(unique) <= rule.get(
            "maxLength", len(unique)
        ):
            spec[field] = unique  # still valid, and unique across inputs
    return obj


# ---------------------------------------------------------------------------------------------------
# Judging one input


def model_errors(kind: str, spec: Mapping[str, Any]) -> list[str]:
    """The field paths the model refuses, as the engine names them (spec.a.b)."""
    try:
        MODELS[kind].model_validate(dict(spec))
    except ValidationError as error:
        return ["spec." + ".".join(str(p) for p in e["loc"]) if e["loc"] else "spec" for e in error.errors()]
    return []


def names_a_field(text: str, paths: list[str], mutations: list[Mutation]) -> bool:
    """Does the message name one of the fields involved (a refused path, or a mutated one)?"""
    names = {p.split(".")[-1] for p in paths if p != "spec"}
    names |= {part for _, path, _ in mutations for part in path}
    names |= {p.rsplit(".", 1)[0].split(".")[-1] for p in paths if "." in p}
    return any(n and n in text for n in names) or ("spec" in text and not names)


class Tally:
    """What the inputs did, over the whole module (printed at the end, recorded in the docs)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {
            "tried": 0,
            "refused at apply": 0,
            "accepted, Ready": 0,
            "accepted, InvalidSpec": 0,
            "accepted, AWS validation": 0,
            "accepted, reference missing": 0,
            "accepted, name taken": 0,
            "accepted, nothing to observe": 0,
        }

    def add(self, key: str) -> None:
        self.counts[key] += 1


TALLY = Tally()


@pytest.fixture(scope="module", autouse=True)
def report_tally() -> Iterator[None]:
    yield
    line = ", ".join(f"{k}: {v}" for k, v in TALLY.counts.items())
    print(f"\nbad input: {line}")
    with open(os.environ.get("Q_OPERATOR_BAD_INPUT_REPORT", os.devnull), "a") as out:
        out.write(line + "\n")


_batch = iter(range(1_000_000))


#: One batch always tried first: each kind's examples (tests/kinds.py), among them inputs the CRD
#: schema cannot refuse but the model does (tag keys are map keys, which a structural schema cannot
#: constrain), so the InvalidSpec path is always exercised.
MODEL_ONLY_REFUSALS: list[tuple[str, list[Mutation]]] = [
    (facts.kind, mutations) for facts in TEST_KINDS for mutations in facts.bad_input_examples
]


@settings(
    max_examples=BATCHES,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@example(batch=MODEL_ONLY_REFUSALS)
@given(batch=st.lists(spec_input(), min_size=BATCH_SIZE, max_size=BATCH_SIZE))
def test_every_input_is_refused_flagged_or_converges_and_the_operator_keeps_serving(
    sandbox: Sandbox, batch: list[tuple[str, list[Mutation]]]
) -> None:
    n = next(_batch)
    namespace = f"bad-{n}"
    sandbox.kube(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
    )
    accepted: list[tuple[str, str, list[Mutation]]] = []
    for i, (kind, mutations) in enumerate(batch):
        TALLY.add("tried")
        obj = build(kind, f"in{n}x{i}", namespace, mutations)
        result = sandbox.kubectl("apply", "-f", "-", input=json.dumps(obj), check=False)
        if result.returncode != 0:
            TALLY.add("refused at apply")
            refused = model_errors(kind, obj["spec"])
            assert refused, f"the API server refused what the model accepts: {obj['spec']}: {result.stderr}"
            assert names_a_field(result.stderr, refused, mutations), (kind, obj["spec"], result.stderr)
            continue
        accepted.append((kind, obj["metadata"]["name"], mutations))
    controls = [manifest(kind, "control", namespace) for kind in MODELS]
    for obj in controls:
        sandbox.kubectl("apply", "-f", "-", input=json.dumps(obj))
    everyone = [*accepted, *((str(o["kind"]), "control", []) for o in controls)]
    verdicts: dict[tuple[str, str], str] = {}

    def all_judged() -> bool:
        for kind, name, mutations in everyone:
            if (kind, name) in verdicts:
                continue
            live = sandbox.get(facts_of(kind).plural_path, namespace, name)
            assert live is not None, f"{kind} {name} vanished"
            verdict = judge(kind, live, mutations)
            if verdict is None:
                return False
            verdicts[(kind, name)] = verdict
        return True

    try:
        wait_for("a verdict on every input", all_judged, timeout=VERDICT_SECONDS, interval=0.3)
    except SandboxError:
        raise AssertionError(f"no verdict in {VERDICT_SECONDS:.0f}s: {pending(sandbox, namespace)}") from None
    for (kind, name), verdict in verdicts.items():
        if name == "control":  # the operator keeps serving the others
            assert verdict == "accepted, Ready", (kind, verdict)
        else:
            TALLY.add(verdict)
    # Never crashes, never calls AWS with input the model forbids.
    assert sandbox.operator is not None and sandbox.operator.poll() is None, "the operator died"
    log = "\n".join(p.read_text(errors="replace") for p in sandbox.workdir.glob("operator-*.log"))
    assert "Traceback" not in log, log[log.index("Traceback") :][:2000]
    refused_by_aws = [r for r in sandbox.aws_requests() if r.get("error") == "ValidationException"]
    assert not refused_by_aws, refused_by_aws[:3]


def judge(kind: str, live: Mapping[str, Any], mutations: list[Mutation]) -> str | None:
    """The verdict on an accepted object, or None while it has none yet. Fails the property when the
    verdict is wrong: Ready for what the model refuses, or a flag that names no field."""
    stored = live.get("spec") or {}
    errors = model_errors(kind, stored)
    synced_false = condition(live, "Synced", "False", current=True)
    if errors:
        if synced_false is None:
            assert not condition(live, "Ready", "True"), f"{kind} Ready although the model refuses {errors}"
            return None
        assert synced_false.get("reason") == "InvalidSpec", (kind, stored, synced_false)
        assert any(e in synced_false.get("message", "") for e in errors), (synced_false, errors)
        return "accepted, InvalidSpec"
    if synced_false is not None:
        reason = synced_false.get("reason")
        if reason == "AwsValidationError":
            assert names_a_field(str(synced_false.get("message")), [], mutations), synced_false
            return "accepted, AWS validation"
        if reason == "InvalidSpec":
            raise AssertionError(
                f"{kind} flagged InvalidSpec though the model accepts {stored}: {synced_false}"
            )
        if reason == "ReferenceNotFound":  # a payloadFrom naming a ConfigMap that does not exist
            assert "spec." in str(synced_false.get("message")), synced_false
            return "accepted, reference missing"
        if reason in ("AlreadyExists", "OwnedByAnother"):  # two inputs drew the same natural key
            return "accepted, name taken"
        if reason == "AdoptIdRequired":  # managementPolicy Observe, and no adopt-id names what to observe
            assert "spec.managementPolicy" in str(synced_false.get("message")), synced_false
            return "accepted, nothing to observe"
        return None  # a transient reason (throttled, in progress): look again
    if condition(live, "Ready", "True", current=True):
        return "accepted, Ready"
    return None


def pending(sandbox: Sandbox, namespace: str) -> list[str]:
    found = []
    for facts in TEST_KINDS:
        kind, info = facts.kind, facts.info
        for item in sandbox.kube("GET", f"/apis/{info.api_version}/namespaces/{namespace}/{info.plural}")[
            "items"
        ]:
            conds = [
                (c["type"], c["status"], c.get("reason"))
                for c in (item.get("status") or {}).get("conditions", [])
            ]
            found.append(f"{kind} {item['metadata']['name']} {item['spec']} {conds}")
    return found
