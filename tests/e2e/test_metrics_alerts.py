"""The chart's alerts on what the real operator exports: record its /metrics in four states, then run
`promtool test rules` on the fresh recording, and hold the kept fixture to it.

The states, one after the other, on one sandbox with a 10 s drift interval (so a healthy operator
visibly keeps reconciling between two scrapes): every kind Ready (`healthy`), plus an object with a
spec only the model refuses (`invalid`, InvalidSpec), plus a connector whose registration AWS
denies (`denied`, AccessDenied), then AWS throttling every call (`throttled`). Each state is scraped
twice, the second time once the counters that define it have moved.

`Q_OPERATOR_RECORD_ALERTS=1` writes the recording to tests/fixtures/alerts/recording.json, where the
unit tests (tests/unit/test_alerts.py) run the same promtool cases without starting anything.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from q_operator.sandbox import Sandbox, wait_for
from tests import alerting
from tests.kinds import APPFLOWCONNECTORS, QLIBRARYITEMS, QPLUGINS, appflowconnector, qlibraryitem, qplugin

from .helpers import apply, new_application_id, wait_synced_false

pytestmark = pytest.mark.skipif(
    not (alerting.PROMTOOL.exists() and alerting.CHART.exists()), reason="needs promtool (make install)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


METRICS_PORT = free_port()
#: Object mode: the states are made of each object's own drift checks (a cycle and an observe per
#: object every 10 s); in list mode a Ready object's drift check calls nothing (docs/engine.md).
OPERATOR_ENV = {
    "Q_OPERATOR_METRICS_PORT": str(METRICS_PORT),
    "Q_OPERATOR_DRIFT_SECONDS": "10",
    "Q_OPERATOR_OBSERVE_MODE": "object",
}


def scrape() -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10) as response:
        text: str = response.read().decode()
        return text


def total(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    _, samples = alerting.parse_scrape(text)
    return sum(
        s.value
        for s in samples
        if s.name == name and all(dict(s.labels).get(k) == v for k, v in labels.items())
    )


def record_state(moved: Callable[[str, str], bool], what: str) -> list[dict[str, Any]]:
    """Two scrapes of the current state: now, and once `moved(first, later)` holds."""
    first_at, first = time.time(), scrape()

    def probe() -> str | None:
        later = scrape()
        return later if moved(first, later) else None

    second = wait_for(what, probe, timeout=90, interval=1.0)
    return [alerting.scrape_record(first, first_at), alerting.scrape_record(second, time.time())]


def reconciled_again(count: int) -> Callable[[str, str], bool]:
    """At least `count` more reconcile cycles (each object's drift check comes every 10 s)."""
    return lambda a, b: (
        total(b, "q_operator_reconciles_total") - total(a, "q_operator_reconciles_total") >= count
    )


def throttled_again(first: str, later: str) -> bool:
    """Each kind's observe call (what its drift checks make) was throttled again."""
    return all(
        total(later, "q_operator_aws_throttles_total", service=service, operation=operation)
        > total(first, "q_operator_aws_throttles_total", service=service, operation=operation)
        for service, operation in alerting.OBSERVE_CALLS
    )


def record(sandbox: Sandbox, namespace: str) -> dict[str, list[dict[str, Any]]]:
    recording: dict[str, list[dict[str, Any]]] = {}
    ready = [
        (QPLUGINS, qplugin("orders", namespace, applicationId=new_application_id())),
        (QPLUGINS, qplugin("billing", namespace, applicationId=new_application_id())),
        (QLIBRARYITEMS, qlibraryitem("report", namespace)),
        (APPFLOWCONNECTORS, appflowconnector("shop", namespace)),
    ]
    for _, manifest in ready:
        apply(sandbox, manifest)
    for plural, manifest in ready:
        sandbox.wait_condition(plural, namespace, manifest["metadata"]["name"], "Ready", timeout=60)
    recording["healthy"] = record_state(reconciled_again(2 * len(ready)), "every object reconciled again")

    # A tag key no CRD schema can refuse (map keys are unconstrained) but the model does.
    apply(sandbox, appflowconnector("badtags", namespace, tags={"bad key!": "x"}))
    wait_synced_false(sandbox, APPFLOWCONNECTORS, namespace, "badtags", "InvalidSpec")
    recording["invalid"] = record_state(reconciled_again(2 * len(ready)), "every object reconciled again")
    sandbox.kubectl("delete", "appflowconnector", "badtags", "-n", namespace, "--wait=true")

    sandbox.aws("POST", "/_emulator/config", {"access_denied": ["appflow:RegisterConnector"]})
    try:
        apply(sandbox, appflowconnector("denied", namespace))
        wait_synced_false(sandbox, APPFLOWCONNECTORS, namespace, "denied", "AccessDenied")
        recording["denied"] = record_state(
            lambda a, b: (
                total(b, "q_operator_aws_calls_total", code="AccessDeniedException")
                > total(a, "q_operator_aws_calls_total", code="AccessDeniedException")
            ),
            "RegisterConnector denied again",
        )
    finally:
        sandbox.aws("POST", "/_emulator/config", {"access_denied": []})
    sandbox.wait_condition(APPFLOWCONNECTORS, namespace, "denied", "Ready", timeout=60)

    sandbox.aws("POST", "/_emulator/config", {"throttle_percent": 100, "throttle_for_seconds": 120})
    try:
        wait_synced_false(sandbox, QPLUGINS, namespace, "orders", "Throttled")
        # A throttled call is counted when it is answered, its cycle only when it ends: wait for both,
        # or a loaded machine scrapes between the two and the recording shows no reconcile at all.
        recording["throttled"] = record_state(
            lambda a, b: throttled_again(a, b) and reconciled_again(1)(a, b),
            "every kind's observe call throttled again, and a cycle ended",
        )
    finally:
        sandbox.aws("POST", "/_emulator/config", {"throttle_percent": 0, "throttle_for_seconds": 0})
    return recording


def test_alerts_fire_as_they_should_on_what_the_operator_exports(
    sandbox: Sandbox, namespace: str, tmp_path: Path
) -> None:
    recording = record(sandbox, namespace)
    if os.environ.get("Q_OPERATOR_RECORD_ALERTS") == "1":
        alerting.RECORDING.parent.mkdir(parents=True, exist_ok=True)
        alerting.RECORDING.write_text(alerting.dump_recording(recording))
    alerting.check_promtool_cases(recording, tmp_path)
    alerting.check_same_shape(recording, alerting.load_recording())


def test_every_metric_a_rule_or_panel_uses_is_exported_live(sandbox: Sandbox, namespace: str) -> None:
    apply(sandbox, qplugin("named", namespace, applicationId=new_application_id()))
    sandbox.wait_condition(QPLUGINS, namespace, "named", "Ready", timeout=60)
    families, _ = alerting.parse_scrape(scrape())
    exported = alerting.exported_names(families) | alerting.SYNTHETIC
    used = {
        name
        for alert in alerting.alerts_of(alerting.rendered_rule())
        for name in alerting.metric_names(alert["expr"])
    }
    used |= {
        name
        for _, query in alerting.panel_queries(alerting.load_dashboard())
        for name in alerting.metric_names(query)
    }
    assert used - exported == set(), f"used but not exported: {sorted(used - exported)}"


def test_the_exported_metrics_pass_promtools_lint(sandbox: Sandbox) -> None:
    result = alerting.promtool("check", "metrics", stdin=scrape())
    assert result.returncode == 0, result.stdout + result.stderr
