"""The chart's alerts and Grafana dashboard: they fire as they should on series the real operator
exported (the kept recording, run through `promtool test rules`), use only metrics it exports, point
at runbooks that exist, and render valid manifests. tests/e2e/test_metrics_alerts.py records afresh
and holds the kept recording to what the operator exports today."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from q_operator.engine import conditions
from tests import alerting
from tests.rbac import CHART, HELM, load_manifests, render_chart

pytestmark = pytest.mark.skipif(
    not (HELM.exists() and alerting.PROMTOOL.exists()), reason="needs helm and promtool (make install)"
)

ON = ("--set", "prometheusRule.enabled=true", "--set", "grafanaDashboard.enabled=true")

#: Synced reasons no alert names on purpose: success, and the transient ones the operator retries on
#: its own, which the AWS throttling and AWS errors alerts cover when they last.
TRANSIENT_REASONS = {
    conditions.RECONCILE_SUCCESS,
    conditions.THROTTLED,
    conditions.AWS_SERVER_ERROR,
    conditions.AWS_UNREACHABLE,
    conditions.CONFLICT,
}

#: The parts of the Prometheus Operator's PrometheusRule CRD (monitoring.coreos.com/v1) the chart
#: uses, as its openAPIV3Schema states them; kubernetes-validate knows no CRDs.
PROMETHEUS_RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {
                "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 253},
                "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": r"^(0|(([0-9]+)(y|w|d|h|m|s|ms))+)$"},
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": {
                                            "type": "string",
                                            "pattern": r"^(0|(([0-9]+)(y|w|d|h|m|s|ms))+)$",
                                        },
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}


def rendered(*helm_args: str) -> list[dict[str, Any]]:
    return load_manifests(render_chart(*helm_args))


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


# --- the rules fire as they should -----------------------------------------------------------


def test_alerts_fire_and_stay_quiet_as_they_should_on_the_recorded_series(tmp_path: Path) -> None:
    """Every case of tests/alerting.py's expectations(): healthy, invalid spec, access denied,
    throttled (recorded), plus frozen counters, restarts, a failing and a vanished target (derived)."""
    alerting.check_promtool_cases(alerting.load_recording(), tmp_path)


def test_a_wrong_expectation_fails_promtool(tmp_path: Path) -> None:
    """The harness can fail: expecting the invalid spec's alert in the healthy state is refused."""
    rule = alerting.rendered_rule()
    alerting.rules_file(rule, tmp_path / "rules.yaml", templated_annotations=False)
    tests = alerting.promtool_tests(alerting.load_recording(), rule)
    healthy = next(t for t in tests["tests"] if t["name"] == "healthy")
    check = next(c for c in healthy["alert_rule_test"] if c["alertname"] == "QOperatorResourceNeedsAttention")
    check["exp_alerts"] = [
        {"exp_labels": {"severity": "warning", "kind": "QPlugin", "reason": "InvalidSpec"}}
    ]
    tests["tests"] = [healthy]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = alerting.promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode != 0 and "QOperatorResourceNeedsAttention" in result.stdout + result.stderr


def test_descriptions_render_with_the_labels_and_values_of_the_alert(tmp_path: Path) -> None:
    """The templated annotations, expected word for word where the value is known."""
    rule = alerting.rendered_rule()
    alerting.rules_file(rule, tmp_path / "rules.yaml")
    recording = alerting.load_recording()
    runbook = values()["prometheusRule"]["runbookUrl"]
    cases = [
        (
            "gone",
            "15m",
            "QOperatorDown",
            {"job": "q-operator-metrics", "namespace": "q-system"},
            {
                "summary": "q-operator is down or not scraped",
                "description": "No q-operator target (q-operator-metrics in namespace q-system) has been "
                "scraped successfully for 10m. Nothing is reconciled, and deleted objects wait on their "
                "finalizer.",
            },
        ),
        (
            "invalid",
            "20m",
            "QOperatorResourceNeedsAttention",
            {
                "job": "q-operator-metrics",
                "namespace": "q-system",
                "kind": "AppFlowConnector",
                "reason": "InvalidSpec",
            },
            {
                "summary": "AppFlowConnector objects are stuck on InvalidSpec",
                "description": "1 AppFlowConnector object(s) have Synced=False with reason InvalidSpec, "
                "which the operator cannot fix by retrying: the spec, a ConfigMap or something in AWS needs "
                "a person. kubectl get AppFlowConnector -A shows which; the reason's section in "
                "docs/troubleshooting.md says what to do.",
            },
        ),
        (
            "denied",
            "20m",
            "QOperatorAwsAccessFailing",
            {
                "job": "q-operator-metrics",
                "namespace": "q-system",
                "kind": "AppFlowConnector",
                "reason": "AccessDenied",
            },
            {
                "summary": "q-operator's AWS identity fails: AccessDenied",
                "description": "1 AppFlowConnector object(s) have Synced=False with reason AccessDenied: the "
                "operator's AWS permissions, credentials or region are wrong. The condition's message names "
                "the AWS call.",
            },
        ),
    ]
    tests = []
    for case, at, name, labels, texts in cases:
        severity = next(a for a in alerting.alerts_of(rule) if a["alert"] == name)["labels"]["severity"]
        anchor = f"{runbook}#{name.lower()}"
        tests.append(
            {
                "name": case,
                "interval": "1m",
                "input_series": alerting.case_series(recording, case, 30),
                "alert_rule_test": [
                    {
                        "eval_time": at,
                        "alertname": name,
                        "exp_alerts": [
                            {
                                "exp_labels": {**labels, "severity": severity},
                                "exp_annotations": {**texts, "runbook_url": anchor},
                            }
                        ],
                    }
                ],
            }
        )
    body = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    result = alerting.promtool("test", "rules", "tests.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# --- the rules, statically ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "helm_args",
    [
        (),
        (
            "--set",
            'prometheusRule.selector=job="q-operator"',
            "--set",
            "prometheusRule.additionalAlertLabels.team=platform",
            "--set",
            "operator.driftSeconds=900",
            "--set",
            "prometheusRule.alerts.QOperatorResourcesNotReady.after=2h",
        ),
    ],
    ids=["defaults", "customised"],
)
def test_rendered_rules_pass_promtool_check(helm_args: tuple[str, ...], tmp_path: Path) -> None:
    rule = alerting.rendered_rule(*helm_args)
    result = alerting.promtool("check", "rules", str(alerting.rules_file(rule, tmp_path / "rules.yaml")))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerting.ALERTS)} rules found" in result.stdout


def test_every_alert_is_rendered_with_a_severity_summary_description_and_runbook() -> None:
    alerts = alerting.alerts_of(alerting.rendered_rule())
    assert [a["alert"] for a in alerts] == list(alerting.ALERTS)
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        assert {"summary", "description", "runbook_url"} <= set(alert["annotations"]), alert["alert"]


def test_every_runbook_url_points_at_a_section_of_troubleshooting_md() -> None:
    anchors = alerting.heading_anchors(alerting.TROUBLESHOOTING.read_text())
    base = values()["prometheusRule"]["runbookUrl"]
    assert base.endswith("/docs/troubleshooting.md")
    for alert in alerting.alerts_of(alerting.rendered_rule()):
        url, _, anchor = alert["annotations"]["runbook_url"].partition("#")
        assert url == base
        assert anchor == alert["alert"].lower() and anchor in anchors, f"no section #{anchor}"


def test_annotations_name_only_labels_the_alert_carries() -> None:
    recording = alerting.load_recording()
    recorded_labels: dict[str, set[str]] = {}
    for scrapes in recording.values():
        for scrape in scrapes:
            for (name, labels), _ in alerting.samples_of(scrape).items():
                recorded_labels.setdefault(name, set()).update(key for key, _ in labels)
    for alert in alerting.alerts_of(alerting.rendered_rule()):
        carried = alerting.output_labels(alert["expr"])
        if isinstance(carried, dict):  # a selection keeps its series' own labels and the target's
            carried = {label for name in carried for label in recorded_labels.get(name, set())}
            carried |= set(alerting.TARGET)
        used = set(re.findall(r"\$labels\.(\w+)", " ".join(alert["annotations"].values())))
        assert used <= carried, f"{alert['alert']} names {sorted(used - carried)}, which it does not carry"


def test_every_synced_reason_is_either_paged_on_or_transient() -> None:
    """A new reason in the engine needs a decision: which alert (if any) pages on it."""
    alerts = values()["prometheusRule"]["alerts"]
    attention = set(alerts["QOperatorResourceNeedsAttention"]["reasons"])
    access = set(alerts["QOperatorAwsAccessFailing"]["reasons"])
    assert not attention & access and not (attention | access) & TRANSIENT_REASONS
    # Paused and ObserveOnly are the user's choice, not a failure: nothing pages on them.
    assert not (attention | access) & conditions.CONTROL_REASONS
    assert attention | access | TRANSIENT_REASONS | conditions.CONTROL_REASONS == set(
        conditions.SYNCED_REASONS
    )
    assert {conditions.INVALID_SPEC, conditions.OWNED_BY_ANOTHER, conditions.BUILD_FAILED} <= attention
    assert conditions.ACCESS_DENIED in access


def test_settings_reach_the_rules() -> None:
    rule = alerting.rendered_rule(
        "--set",
        'prometheusRule.selector=job="q-operator"',
        "--set",
        "prometheusRule.additionalAlertLabels.team=platform",
        "--set",
        "prometheusRule.labels.release=kube-prometheus-stack",
        "--set",
        "operator.driftSeconds=900",
        "--set",
        "prometheusRule.alerts.QOperatorAwsErrors.enabled=false",
        "--set",
        "prometheusRule.alerts.QOperatorDown.severity=warning",
    )
    alerts = {a["alert"]: a for a in alerting.alerts_of(rule)}
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert "QOperatorAwsErrors" not in alerts
    assert alerts["QOperatorDown"]["labels"] == {"severity": "warning", "team": "platform"}
    assert all(a["labels"]["team"] == "platform" for a in alerts.values())
    assert all(
        'job="q-operator"' in a["expr"] and "q-operator-metrics" not in a["expr"] for a in alerts.values()
    )
    # three drift intervals of 900 s, not the 15 minutes of the default 300 s interval
    assert "[45m]" in alerts["QOperatorNotReconciling"]["expr"]
    default = {a["alert"]: a for a in alerting.alerts_of(alerting.rendered_rule())}
    assert "[15m]" in default["QOperatorNotReconciling"]["expr"]


def test_alerts_without_the_metrics_service_need_a_selector() -> None:
    """Else QOperatorDown would fire for ever on a job nothing scrapes."""
    base = [str(HELM), "template", "q", str(CHART), "--set", "prometheusRule.enabled=true"]
    off = ["--set", "metrics.service.enabled=false"]
    refused = subprocess.run([*base, *off], capture_output=True, text=True)
    assert refused.returncode != 0 and "prometheusRule.selector" in refused.stderr
    chosen = ["--set", 'prometheusRule.selector=job="pods"']
    assert subprocess.run([*base, *off, *chosen], capture_output=True, text=True).returncode == 0


def test_a_threshold_that_is_not_a_duration_is_refused() -> None:
    result = subprocess.run(
        [
            str(HELM),
            "template",
            "q",
            str(CHART),
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "prometheusRule.alerts.QOperatorResourcesNotReady.after=half an hour",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "is not a duration" in result.stderr


# --- what the rules and the dashboard use is what the operator exports ------------------------


def test_every_metric_a_rule_or_panel_uses_is_in_the_recording() -> None:
    """Against the kept recording; tests/e2e/test_metrics_alerts.py checks a live scrape."""
    exported = alerting.exported_names(alerting.exported_families(alerting.load_recording()))
    exported |= alerting.SYNTHETIC
    for alert in alerting.alerts_of(alerting.rendered_rule()):
        missing = alerting.metric_names(alert["expr"]) - exported
        assert not missing, f"{alert['alert']} uses {sorted(missing)}"
    for title, query in alerting.panel_queries(alerting.load_dashboard()):
        missing = alerting.metric_names(query) - exported
        assert not missing, f"panel {title!r} uses {sorted(missing)}"


def test_metric_names_reads_promql_and_refuses_a_nameless_selector() -> None:
    assert alerting.metric_names(
        'sum by (kind) (rate(a_total{job=~"$job"}[$__rate_interval])) / on (kind) group_left b > bool 0'
    ) == {"a_total", "b"}
    with pytest.raises(AssertionError, match="without a metric name"):
        alerting.metric_names('{__name__="a"}')


# --- the dashboard ----------------------------------------------------------------------------


def test_dashboard_panels_are_laid_out_and_query_the_chosen_data_source_and_job() -> None:
    dashboard = alerting.load_dashboard()
    panels = list(alerting.panels(dashboard))
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel.get("description"), f"panel {panel['title']!r} says what it shows"
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert 'job=~"$job"' in target["expr"], f"panel {panel['title']!r} ignores the job variable"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "job", "kind"}


def test_dashboard_counts_the_reasons_the_alerts_page_on() -> None:
    alerts = values()["prometheusRule"]["alerts"]
    paged = set(alerts["QOperatorResourceNeedsAttention"]["reasons"]) | set(
        alerts["QOperatorAwsAccessFailing"]["reasons"]
    )
    queries = dict(alerting.panel_queries(alerting.load_dashboard()))
    found = re.search(r'reason=~"([^"]+)"', queries["Need a person"])
    assert found and set(found.group(1).split("|")) == paged


# --- the manifests ----------------------------------------------------------------------------


def test_alerts_and_dashboard_are_off_by_default() -> None:
    kinds = {doc["kind"] for doc in rendered()}
    assert "PrometheusRule" not in kinds and "ConfigMap" not in kinds


def test_switched_on_they_render_valid_manifests() -> None:
    docs = rendered(*ON)
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    jsonschema.validate(rule, PROMETHEUS_RULE_SCHEMA)
    configmap = next(d for d in docs if d["kind"] == "ConfigMap")
    kubernetes_validate.validate(configmap, "1.32.0", strict=True)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "q-system"
    assert json.loads(configmap["data"]["q-operator.json"]) == alerting.load_dashboard()


def test_the_schema_refuses_a_malformed_rule() -> None:
    rule = alerting.rendered_rule()
    rule["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(rule, PROMETHEUS_RULE_SCHEMA)


def test_dashboard_configmap_goes_where_the_sidecar_looks() -> None:
    docs = rendered(
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "grafanaDashboard.namespace=monitoring",
        "--set",
        "grafanaDashboard.labels.grafana_dashboard=null",
        "--set-string",
        "grafanaDashboard.labels.dashboards=q",
        "--set",
        "grafanaDashboard.annotations.grafana_folder=Operators",
    )
    configmap = next(d for d in docs if d["kind"] == "ConfigMap")
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["labels"]["dashboards"] == "q"
    assert "grafana_dashboard" not in configmap["metadata"]["labels"]
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Operators"}


@pytest.mark.parametrize("doc", ["troubleshooting.md", "observability.md", "install.md"])
def test_links_to_sections_of_the_docs_resolve(doc: str) -> None:
    """The alerts' runbooks link to reasons' sections, and the docs to the runbooks."""
    docs = alerting.TROUBLESHOOTING.parent
    text = (docs / doc).read_text()
    links = re.findall(r"\]\(([\w.-]*)#([\w-]+)\)", text)
    assert links
    for target, anchor in links:
        assert anchor in alerting.heading_anchors((docs / (target or doc)).read_text()), f"{target}#{anchor}"


def test_helm_lint_passes_with_both_switched_on() -> None:
    result = subprocess.run([str(HELM), "lint", "--strict", str(CHART), *ON], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
