"""What a user sees through kubectl and Argo CD, on real objects the operator reconciled.

kubectl is the one `make install` provides; the Argo CD health checks (argocd/*.lua) run under Lua 5.1
on the live objects, and the objects are recorded into tests/fixtures/status/ when
Q_OPERATOR_RECORD_FIXTURES=1 so the unit tests of the health checks run on real status too.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from q_operator.crdgen import SYNCED_COLUMN, printer_columns
from q_operator.sandbox import REPO_ROOT, Sandbox, condition, wait_for
from tests.argocd import user_fields_drift
from tests.kinds import QPLUGINS, TEST_KINDS, KindFacts, qplugin
from tests.unit.test_argocd_health import health

from .helpers import apply, new_namespace, record_status_fixture

#: Ready's and Synced's printer columns, shown by every kind (True once the sample is Ready).
CONDITION_COLUMNS = ('.status.conditions[?(@.type=="Ready")].status', SYNCED_COLUMN.json_path)


def _sample_docs(facts: KindFacts, namespace: str) -> list[dict[str, Any]]:
    """The kind's sample file (the registry names it) as applied here: every object in it (a
    ConfigMap it reads too) moved from the `default` namespace the file names to `namespace`."""
    docs = [d for d in yaml.safe_load_all((REPO_ROOT / "samples" / facts.info.sample).read_text()) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    return docs


def _sample(facts: KindFacts, namespace: str) -> dict[str, Any]:
    """The kind's sample object, as applied."""
    return next(d for d in _sample_docs(facts, namespace) if d.get("kind") == facts.kind)


@pytest.fixture(scope="module")
def samples_namespace(sandbox: Sandbox) -> str:
    """The samples' namespace: one of this module's own, not the shared server's `default`."""
    return new_namespace(sandbox, "samples")


@pytest.fixture(scope="module")
def samples_ready(sandbox: Sandbox, samples_namespace: str) -> dict[str, dict[str, Any]]:
    """Every kind's sample applied with kubectl and waited on with `kubectl wait`."""
    live = {}
    ns = samples_namespace
    for facts in TEST_KINDS:
        name = _sample(facts, ns)["metadata"]["name"]
        docs = _sample_docs(facts, ns)
        sandbox.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(d) for d in docs))
        wait = ("wait", "-n", ns, "--for=condition=Ready", f"{facts.short}/{name}", "--timeout=60s")
        sandbox.kubectl(*wait, timeout=90)
        live[facts.kind] = sandbox.get(facts.plural_path, ns, name) or {}
    return live


def test_kubectl_wait_for_ready_returns_once_ready(samples_ready: dict[str, dict[str, Any]]) -> None:
    for obj in samples_ready.values():
        assert condition(obj, "Ready", "True", current=True), obj.get("status")


def _column_value(obj: dict[str, Any], path: str) -> str | None:
    """What `kubectl get` shows for a printer column with a plain path (.status.x, .spec.y)."""
    if path in CONDITION_COLUMNS:
        return "True"
    section, _, field = path.lstrip(".").partition(".")
    if section not in ("spec", "status") or "." in field:
        return None
    return str(obj[section][field])


@pytest.mark.parametrize("facts", TEST_KINDS, ids=lambda f: f.kind)
def test_kubectl_get_shows_the_printer_columns_and_the_aws_id(
    sandbox: Sandbox, samples_ready: dict[str, Any], facts: KindFacts
) -> None:
    obj = samples_ready[facts.kind]
    name, ns = obj["metadata"]["name"], obj["metadata"]["namespace"]
    header, row = sandbox.kubectl("get", facts.short, name, "-n", ns).stdout.strip().splitlines()
    columns = [c for c in printer_columns(facts.info) if not c.priority]  # the kind's and the common ones
    assert header.split() == ["NAME", *(word for c in columns for word in c.name.upper().split())]
    shown = [_column_value(obj, c.json_path) for c in columns if c.type != "date"]
    assert row.split()[: 1 + len(shown)] == [name, *shown]
    assert obj["status"][facts.info.id_field] in row.split(), "the AWS ID is visible at a glance"


def test_the_q_operator_category_lists_every_kind(
    sandbox: Sandbox, samples_ready: dict[str, Any], samples_namespace: str
) -> None:
    out = sandbox.kubectl("get", "q-operator", "-n", samples_namespace, "-o", "name").stdout.split()
    for facts in TEST_KINDS:
        name = samples_ready[facts.kind]["metadata"]["name"]
        assert f"{facts.info.singular}.{facts.info.group}/{name}" in out


@pytest.mark.parametrize("facts", TEST_KINDS, ids=lambda f: f.kind)
def test_kubectl_describe_shows_the_created_event(
    sandbox: Sandbox, samples_ready: dict[str, Any], samples_namespace: str, facts: KindFacts
) -> None:
    name = samples_ready[facts.kind]["metadata"]["name"]

    def created_event() -> bool:
        out = sandbox.kubectl("describe", facts.short, name, "-n", samples_namespace).stdout
        return "Created" in out and "Events:" in out

    wait_for("the Created event in kubectl describe", created_event, timeout=30)


def test_argo_cd_sees_no_drift_the_operator_caused(
    sandbox: Sandbox, samples_ready: dict[str, Any], samples_namespace: str
) -> None:
    for facts in TEST_KINDS:
        manifest = _sample(facts, samples_namespace)
        live = sandbox.get(facts.plural_path, samples_namespace, manifest["metadata"]["name"]) or {}
        assert user_fields_drift(manifest, live) == [], facts.kind
        assert live["metadata"]["generation"] == 1, f"{facts.kind}: the operator must never write spec"


def test_argo_cd_health_checks_on_live_objects(
    sandbox: Sandbox, samples_ready: dict[str, Any], namespace: str
) -> None:
    for facts in TEST_KINDS:
        obj = samples_ready[facts.kind]
        assert health(facts.info.singular, obj)[0] == "Healthy", (facts.kind, obj.get("status"))
        record_status_fixture(f"{facts.info.singular}-healthy-recorded-ready", obj)

    # Progressing while the build runs: a plugin caught right after its create.
    sandbox.aws("POST", "/_emulator/config", {"build_seconds": 5})
    try:
        apply(sandbox, qplugin("slow", namespace))

        def building() -> dict[str, Any] | None:
            obj = sandbox.get(QPLUGINS, namespace, "slow") or {}
            return obj if obj.get("status", {}).get("buildStatus") == "CREATE_IN_PROGRESS" else None

        obj = wait_for("the plugin to be building", building, timeout=30, interval=0.05)
        assert health("qplugin", obj)[0] == "Progressing", obj.get("status")
        record_status_fixture("qplugin-progressing-recorded-building", obj)
    finally:
        sandbox.aws("POST", "/_emulator/config", {"build_seconds": 0.5})

    # Degraded when the build fails: the user must change something.
    sandbox.aws("POST", "/_emulator/config", {"fail_builds_matching": "^doomed$"})
    try:
        apply(sandbox, qplugin("doomed", namespace))

        def failed() -> dict[str, Any] | None:
            obj = sandbox.get(QPLUGINS, namespace, "doomed") or {}
            ready = condition(obj, "Ready", "False") or {}
            return obj if ready.get("reason") == "BuildFailed" else None

        obj = wait_for("the build to fail", failed, timeout=30)
        assert health("qplugin", obj)[0] == "Degraded", obj.get("status")
        record_status_fixture("qplugin-degraded-recorded-build-failed", obj)
    finally:
        sandbox.aws("POST", "/_emulator/config", {"fail_builds_matching": None})
