"""Test the chart's alert rules and Grafana dashboard against what the real operator exports.

The end-to-end suite records the operator's /metrics in a few states (all Ready, an invalid spec,
AWS access denied, AWS throttling), two scrapes per state (tests/e2e/test_metrics_alerts.py); the
recording is kept in tests/fixtures/alerts/recording.json. Here a recorded state becomes the input
series of a `promtool test rules` case:

- a counter grows from its second scrape's value at the rate it grew between the two scrapes;
- a gauge keeps its second scrape's value;
- a Unix timestamp (`*_timestamp_seconds`, `process_start_time_seconds`) keeps its age: promtool's
  clock starts at 0, so the value becomes minus the age it had at the scrape;
- every series gets the target labels a Prometheus scrape adds (job, namespace, instance), and an
  `up` series is added, as Prometheus does for each target.

Also here: the rules as the chart renders them, the dashboard, and the metric names a PromQL
expression uses (parsed with promql-parser, a real PromQL parser).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.rbac import CHART, ROOT, load_manifests, render_chart

PROMTOOL = ROOT / ".tools" / "bin" / "promtool"
RECORDING = ROOT / "tests" / "fixtures" / "alerts" / "recording.json"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"
TROUBLESHOOTING = ROOT / "docs" / "troubleshooting.md"

#: What a Prometheus scrape of the chart's metrics Service (through the ServiceMonitor) adds to every
#: series; the rules' default selector is job="<fullname>-metrics",namespace="<release namespace>".
TARGET = {"job": "q-operator-metrics", "namespace": "q-system", "instance": "10.0.0.7:8080"}

#: Series Prometheus makes itself for each target; a rule may use them though the operator does not
#: export them.
SYNTHETIC = frozenset({"up"})

#: Families kept in the recording's samples (their names are all kept): what rules may use.
KEPT = re.compile(r"^(q_operator_\w+|process_start_time_seconds)$")


# --- the recording ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float
    #: "counter" (only grows), "gauge", or "timestamp" (a Unix time).
    shape: str


def parse_scrape(text: str) -> tuple[dict[str, str], list[Sample]]:
    """The families (name -> type) and the kept samples of one /metrics answer. Histograms and
    `_created` samples are left out: no rule uses them, and they would make the fixture large."""
    families: dict[str, str] = {}
    samples: list[Sample] = []
    for family in text_string_to_metric_families(text):
        families[family.name] = family.type
        if not KEPT.match(family.name) or family.type in ("histogram", "summary"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            samples.append(
                Sample(
                    sample.name,
                    tuple(sorted(sample.labels.items())),
                    sample.value,
                    _shape(family.type, sample.name),
                )
            )
    return families, samples


def _shape(family_type: str, name: str) -> str:
    if name.endswith("_timestamp_seconds") or name == "process_start_time_seconds":
        return "timestamp"
    if family_type in ("counter", "histogram", "summary"):
        return "counter"
    return "gauge"


def scrape_record(text: str, at: float) -> dict[str, Any]:
    """One scrape as the fixture keeps it: when, every family's type, and the kept samples."""
    families, samples = parse_scrape(text)
    return {
        "time": round(at, 3),
        "families": dict(sorted(families.items())),
        "samples": [[s.name, dict(s.labels), s.value, s.shape] for s in samples],
    }


def dump_recording(recording: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The recording as JSON with one sample a line, so a new recording reads well in a diff."""
    lines = ["{"]
    for p, (phase, scrapes) in enumerate(recording.items()):
        lines.append(f" {json.dumps(phase)}: [")
        for i, scrape in enumerate(scrapes):
            lines.append(f'  {{"time": {json.dumps(scrape["time"])},')
            lines.append(f'   "families": {json.dumps(scrape["families"], sort_keys=True)},')
            lines.append('   "samples": [')
            rows = [f"    {json.dumps(row, sort_keys=True)}" for row in scrape["samples"]]
            lines.append(",\n".join(rows))
            lines.append("   ]}" + ("," if i < len(scrapes) - 1 else ""))
        lines.append(" ]" + ("," if p < len(recording) - 1 else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def load_recording(path: Path = RECORDING) -> dict[str, list[dict[str, Any]]]:
    recording: dict[str, list[dict[str, Any]]] = json.loads(path.read_text())
    return recording


def samples_of(scrape: Mapping[str, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Sample]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], Sample] = {}
    for name, labels, value, shape in scrape["samples"]:
        key = (str(name), tuple(sorted(dict(labels).items())))
        found[key] = Sample(key[0], key[1], float(value), str(shape))
    return found


def exported_families(recording: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, str]:
    """Every metric family the operator exported in the recording, with its type."""
    families: dict[str, str] = {}
    for scrapes in recording.values():
        for scrape in scrapes:
            families.update(scrape["families"])
    return families


def exported_names(families: Mapping[str, str]) -> set[str]:
    """The sample names those families produce: a counter `x` is `x_total`, a histogram `x` has
    `x_bucket`, `x_count` and `x_sum`."""
    names: set[str] = set()
    for name, kind in families.items():
        if kind == "counter":
            names |= {name + "_total", name + "_created"}
        elif kind in ("histogram", "summary"):
            names |= {name + "_bucket", name + "_count", name + "_sum", name + "_created"}
        else:
            names.add(name)
    return names


# --- promtool input series ----------------------------------------------------------------------


def input_series(
    phase: Sequence[Mapping[str, Any]],
    minutes: int,
    *,
    frozen: bool = False,
    restarting: bool = False,
    target: Mapping[str, str] = TARGET,
) -> list[dict[str, str]]:
    """promtool input_series that continue a recorded state for `minutes` (one sample a minute).

    `frozen`: counters stop growing (the operator serves metrics but reconciles nothing).
    `restarting`: the process starts anew every minute (process_start_time_seconds moves)."""
    first, second = samples_of(phase[0]), samples_of(phase[1])
    seconds = float(phase[1]["time"]) - float(phase[0]["time"])
    assert seconds > 0, "the two scrapes of a state must be apart in time"
    series: list[dict[str, str]] = []
    for key, sample in sorted(second.items()):
        if sample.shape == "counter":
            before = first[key].value if key in first else 0.0
            step = 0.0 if frozen else (sample.value - before) / seconds * 60
            values = f"{_num(sample.value)}+{_num(step)}x{minutes}"
        elif sample.shape == "timestamp":
            age = float(phase[1]["time"]) - sample.value
            start = -age
            values = (
                f"{_num(start)}+60x{minutes}"
                if restarting and sample.name == "process_start_time_seconds"
                else f"{_num(start)}+0x{minutes}"
            )
        else:
            values = f"{_num(sample.value)}+0x{minutes}"
        series.append({"series": selector(sample.name, {**dict(sample.labels), **target}), "values": values})
    series.append({"series": selector("up", target), "values": f"1+0x{minutes}"})
    return series


def down_series(
    minutes: int, *, absent: bool = False, target: Mapping[str, str] = TARGET
) -> list[dict[str, str]]:
    """The operator's target scraped and failing (up == 0), or gone altogether (no series at all)."""
    return [] if absent else [{"series": selector("up", target), "values": f"0+0x{minutes}"}]


def selector(name: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f"{key}={json.dumps(value)}" for key, value in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def _num(value: float) -> str:
    """A number as promtool's series notation reads it: fixed point, no exponent."""
    if math.isclose(value, round(value), abs_tol=1e-9):
        return str(round(value))
    return f"{value:.9f}".rstrip("0").rstrip(".")


# --- the chart's rules --------------------------------------------------------------------------


def rendered_rule(*helm_args: str) -> dict[str, Any]:
    """The chart's PrometheusRule with prometheusRule.enabled and `helm_args`."""
    docs = load_manifests(render_chart("--set", "prometheusRule.enabled=true", *helm_args))
    rules = [doc for doc in docs if doc.get("kind") == "PrometheusRule"]
    assert len(rules) == 1, f"expected one PrometheusRule, found {len(rules)}"
    return rules[0]


def alerts_of(rule: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


def rules_file(rule: Mapping[str, Any], path: Path, *, templated_annotations: bool = True) -> Path:
    """Write the PrometheusRule's groups as a Prometheus rules file. Without `templated_annotations`
    the annotations that hold Prometheus templates (summary, description) are left out, so a test can
    expect the rest (runbook_url) exactly."""
    groups = json.loads(json.dumps(rule["spec"]["groups"]))
    if not templated_annotations:
        for group in groups:
            for item in group["rules"]:
                item["annotations"] = {k: v for k, v in item.get("annotations", {}).items() if "{{" not in v}
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def promtool(
    *args: str, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMTOOL), *args], capture_output=True, text=True, cwd=cwd, input=stdin, timeout=120
    )


# --- PromQL -------------------------------------------------------------------------------------

#: Grafana's variables, replaced by something PromQL parses before a panel's query is parsed.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects (Grafana variables allowed)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    expr = re.sub(r"\$\{?(\w+)\}?", ".*", expr)  # $job, ${kind}: label values in =~ matchers
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(str(node.name))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def output_labels(expr: str) -> dict[str, set[str]] | set[str]:
    """The labels the alerts of an expression carry: a set when an aggregation (`sum by`) or
    `absent()` fixes them, else {metric name: its matchers' labels} for the series selected, whose
    own labels all carry through (a rate, a comparison with a number)."""
    return _labels_of(promql_parser.parse(expr))


def _labels_of(node: Any) -> dict[str, set[str]] | set[str]:
    if isinstance(node, promql_parser.ParenExpr):
        return _labels_of(node.expr)
    if isinstance(node, promql_parser.AggregateExpr):
        modifier = node.modifier
        if modifier is not None and str(modifier).startswith("by"):
            return {str(label) for label in modifier.labels}
        return _labels_of(node.expr)
    if isinstance(node, promql_parser.BinaryExpr):
        # One-to-one, group_left and set operators (and, unless) keep the left side's labels; a
        # scalar on the left (time() - x) leaves the right side's.
        if isinstance(node.lhs, promql_parser.NumberLiteral) or (
            isinstance(node.lhs, promql_parser.Call) and str(node.lhs.func.name) == "time"
        ):
            return _labels_of(node.rhs)
        return _labels_of(node.lhs)
    if isinstance(node, promql_parser.Call):
        if str(node.func.name) == "absent":
            selectors: list[Any] = []
            promql_parser.walk(
                node,
                lambda n: selectors.append(n) if isinstance(n, promql_parser.VectorSelector) else None,
            )
            return {
                str(m.name) for m in selectors[0].matchers.matchers if str(m.op) in ("=", "MatchOp.Equal")
            }
        return _labels_of(node.args[0])
    if isinstance(node, promql_parser.MatrixSelector):
        return _labels_of(node.vector_selector)
    if isinstance(node, promql_parser.VectorSelector):
        return {str(node.name): {str(m.name) for m in node.matchers.matchers}}
    raise AssertionError(f"cannot tell the labels of {node}")


# --- the dashboard ------------------------------------------------------------------------------


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


def panels(dashboard: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query target of every panel, plus the variables' queries."""
    found = [
        (str(panel.get("title")), str(target["expr"]))
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query") if isinstance(query, Mapping) else query
        match = re.fullmatch(r"label_values\((.+),\s*\w+\)", str(text or ""))
        if variable.get("type") == "query" and match:
            found.append((f"variable {variable['name']}", match.group(1)))
    return found


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings (lower case, punctuation dropped)."""
    anchors: set[str] = set()
    for line in markdown.splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


# --- the promtool cases -------------------------------------------------------------------------

#: The observe call of each kind: what every drift check makes, so what AWS throttling hits first.
OBSERVE_CALLS = (("qbusiness", "GetPlugin"), ("qapps", "GetLibraryItem"), ("appflow", "DescribeConnector"))

ALERTS = (
    "QOperatorDown",
    "QOperatorNotReconciling",
    "QOperatorRestarting",
    "QOperatorResourcesNotReady",
    "QOperatorResourceNeedsAttention",
    "QOperatorAwsAccessFailing",
    "QOperatorAwsThrottling",
    "QOperatorAwsErrors",
)

#: (labels of one expected alert, beyond alertname and severity)
Expected = Mapping[str, str]


def _scope(**labels: str) -> dict[str, str]:
    return {"job": TARGET["job"], "namespace": TARGET["namespace"], **labels}


def expectations() -> dict[str, list[tuple[str, dict[str, list[Expected]]]]]:
    """For each case: (eval time, {alert: the alerts that must be firing then}); an alert a case
    names with [] must not be firing. Every alert of ALERTS is named at every eval time."""

    def only(**firing: list[Expected]) -> dict[str, list[Expected]]:
        return {name: list(firing.get(name, [])) for name in ALERTS}

    invalid = [_scope(kind="AppFlowConnector", reason="InvalidSpec")]
    return {
        "healthy": [("5m", only()), ("60m", only())],
        "invalid": [
            ("5m", only()),  # pending: a person is paged only if it lasts
            ("20m", only(QOperatorResourceNeedsAttention=invalid)),
            (
                "45m",
                only(
                    QOperatorResourceNeedsAttention=invalid,
                    QOperatorResourcesNotReady=[_scope(kind="AppFlowConnector")],
                ),
            ),
        ],
        "denied": [
            (
                "20m",
                only(
                    QOperatorAwsAccessFailing=[_scope(kind="AppFlowConnector", reason="AccessDenied")],
                    QOperatorAwsErrors=[
                        _scope(service="appflow", operation="RegisterConnector", code="AccessDeniedException")
                    ],
                ),
            ),
        ],
        "throttled": [
            ("5m", only()),
            (
                "20m",
                only(
                    QOperatorAwsThrottling=[_scope(service=s, operation=o) for s, o in OBSERVE_CALLS],
                ),
            ),
        ],
        "frozen": [("5m", only()), ("30m", only(QOperatorNotReconciling=[_scope()]))],
        "restarting": [("30m", only(QOperatorRestarting=[_scope(instance=TARGET["instance"])]))],
        "down": [("5m", only()), ("15m", only(QOperatorDown=[_scope()]))],
        "gone": [("15m", only(QOperatorDown=[_scope()]))],
    }


def case_series(
    recording: Mapping[str, Sequence[Mapping[str, Any]]], case: str, minutes: int
) -> list[dict[str, str]]:
    """The input series of a case: a recorded state, or one derived from the healthy state."""
    if case in recording:
        return input_series(recording[case], minutes)
    if case == "frozen":
        return input_series(recording["healthy"], minutes, frozen=True)
    if case == "restarting":
        return input_series(recording["healthy"], minutes, restarting=True)
    return down_series(minutes, absent=(case == "gone"))


def promtool_tests(
    recording: Mapping[str, Sequence[Mapping[str, Any]]], rule: Mapping[str, Any]
) -> dict[str, Any]:
    """A promtool test file: every case of `expectations()`, expecting each firing alert's labels
    and its (static) runbook_url."""
    by_name = {alert["alert"]: alert for alert in alerts_of(rule)}
    tests = []
    for case, checks in expectations().items():
        minutes = max(_minutes(at) for at, _ in checks) + 5
        alert_tests = []
        for at, firing in checks:
            for name, alerts in firing.items():
                static = {k: v for k, v in by_name[name].get("annotations", {}).items() if "{{" not in v}
                alert_tests.append(
                    {
                        "eval_time": at,
                        "alertname": name,
                        "exp_alerts": [
                            {"exp_labels": {**by_name[name]["labels"], **labels}, "exp_annotations": static}
                            for labels in alerts
                        ],
                    }
                )
        tests.append(
            {
                "name": case,
                "interval": "1m",
                "input_series": case_series(recording, case, minutes),
                "alert_rule_test": alert_tests,
            }
        )
    return {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}


def _minutes(duration: str) -> int:
    assert duration.endswith("m"), duration
    return int(duration[:-1])


def check_promtool_cases(recording: Mapping[str, Sequence[Mapping[str, Any]]], tmp: Path) -> None:
    """Run every case through `promtool test rules` on the chart's rules; fail with promtool's words."""
    rule = rendered_rule()
    rules_file(rule, tmp / "rules.yaml", templated_annotations=False)
    (tmp / "tests.yaml").write_text(yaml.safe_dump(promtool_tests(recording, rule), sort_keys=False))
    result = promtool("test", "rules", "tests.yaml", cwd=tmp)
    assert result.returncode == 0, result.stdout + result.stderr


def check_same_shape(
    fresh: Mapping[str, Sequence[Mapping[str, Any]]], kept: Mapping[str, Sequence[Mapping[str, Any]]]
) -> None:
    """The kept recording still matches what the operator exports: the same states, the same metric
    families of the same types, and the same label names on each kept series. (Values and timing
    differ from run to run; that each state still makes its alerts fire is promtool's part.)"""
    hint = "re-record with Q_OPERATOR_RECORD_ALERTS=1 (see tests/e2e/test_metrics_alerts.py)"
    assert list(fresh) == list(kept), f"the recorded states changed: {hint}"
    assert exported_families(fresh) == exported_families(kept), f"the exported families changed: {hint}"
    assert _label_names(fresh) == _label_names(kept), f"the exported labels changed: {hint}"


def _label_names(recording: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, set[tuple[str, ...]]]:
    names: dict[str, set[tuple[str, ...]]] = {}
    for scrapes in recording.values():
        for scrape in scrapes:
            for (name, labels), _ in samples_of(scrape).items():
                names.setdefault(name, set()).add(tuple(key for key, _ in labels))
    return names
