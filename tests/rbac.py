"""Prove the chart's RBAC against what the operator really asked the Kubernetes API for.

Two sources of "what the operator asked": the real kube-apiserver's audit log (`audit_requests`, what
the end-to-end suite runs on) and the Kubernetes stand-in's request log (`GET /_emulator/requests`:
verb, group, resource, subresource, namespace, name, code). Both feed the same check:

    rules = rules_from_chart(render_chart())
    report = check_rbac(requests, rules)
    assert not report.missing, report.missing      # every call the operator made is granted
    assert not report.unused, report.unused        # every grant was used (or is justified)

Only Roles and ClusterRoles count, less the chart's roles for people (`<release>-edit` and
`<release>-view`, labelled `USER_ROLES`; tests/e2e/test_tenant_rbac.py proves those); bindings are
assumed to bind the rest to the operator's account. That the bindings do bind them, and that the
real authorizer agrees, is proven by running the operator with only its ServiceAccount's token on a
server with RBAC on (tests/e2e/test_chart_rbac.py).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "q-operator"
HELM = ROOT / ".tools" / "bin" / "helm"

#: One grant or one request, as (API group, resource, subresource, verb); "" for none.
Rule = tuple[str, str, str, str]

#: The label of the chart's ClusterRoles for people (templates/user-roles.yaml): the operator is bound
#: to neither, so they are no grant of its.
USER_ROLES = ("app.kubernetes.io/component", "user-rbac")

#: HTTP methods, should a request log carry them instead of Kubernetes verbs.
_METHOD_VERBS = {"post": "create", "put": "update", "patch": "patch", "delete": "delete"}


def render_chart(*helm_args: str, namespace: str = "q-system", include_crds: bool = False) -> str:
    """`helm template` the chart with extra arguments such as ("--set", "replicas=2")."""
    command = [str(HELM), "template", "q-operator", str(CHART), "--namespace", namespace, *helm_args]
    if include_crds:
        command.append("--include-crds")
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def load_manifests(rendered: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a rendered chart."""
    return [doc for doc in yaml.safe_load_all(rendered) if isinstance(doc, dict)]


def is_user_role(doc: Mapping[str, Any]) -> bool:
    """Whether a rendered object is one of the chart's ClusterRoles for people."""
    labels = (doc.get("metadata") or {}).get("labels") or {}
    return bool(doc.get("kind") == "ClusterRole" and labels.get(USER_ROLES[0]) == USER_ROLES[1])


def rules_from_chart(rendered: str | Iterable[Mapping[str, Any]]) -> set[Rule]:
    """Every (group, resource, subresource, verb) the chart's Roles and ClusterRoles grant the
    operator (its roles for people left out)."""
    docs = load_manifests(rendered) if isinstance(rendered, str) else list(rendered)
    rules: set[Rule] = set()
    for doc in docs:
        if doc.get("kind") not in ("Role", "ClusterRole") or is_user_role(doc):
            continue
        for rule in doc.get("rules") or ():
            for group in rule.get("apiGroups") or ():
                for resource in rule.get("resources") or ():
                    name, _, sub = resource.partition("/")
                    for verb in rule.get("verbs") or ():
                        rules.add((group, name, sub, verb))
    return rules


def request_rule(request: Mapping[str, Any]) -> Rule | None:
    """The rule one logged request needs; None for non-resource URLs (discovery, /version, ...).

    Discovery is granted to every authenticated user by the built-in system:discovery role.
    """
    resource = str(request.get("resource") or "")
    if not resource:
        return None
    verb = str(request.get("verb") or "").lower()
    if verb == "get" and not request.get("name"):
        verb = "watch" if request.get("watch") else "list"
    verb = _METHOD_VERBS.get(verb, verb)
    return (str(request.get("group") or ""), resource, str(request.get("subresource") or ""), verb)


def _grants(rule: Rule, needed: Rule) -> bool:
    return all(have in ("*", want) for have, want in zip(rule, needed, strict=True))


@dataclass(frozen=True)
class RbacReport:
    """What the request log says about the chart's rules."""

    #: requests (as rules) that no granted rule covers: the operator would get 403 on a real cluster.
    missing: frozenset[Rule]
    #: granted rules that no request used: candidates for removal unless their comment justifies them.
    unused: frozenset[Rule]
    #: what the operator did use, for reports.
    used: frozenset[Rule]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unused


def check_rbac(
    requests: Iterable[Mapping[str, Any]],
    rules: Iterable[Rule],
    *,
    agent: str | Sequence[str] | None = None,
) -> RbacReport:
    """Compare a request log with granted rules, both ways.

    `agent`: when the log records a `user_agent` (or `userAgent`), keep only requests whose agent
    contains this string (or one of these strings), so that the test harness's own kubectl calls do
    not count. kopf sends `kopf/<version>`; the `kubernetes` client sends `OpenAPI-Generator/...`.
    """
    granted = set(rules)
    agents = (agent,) if isinstance(agent, str) else agent
    needed: set[Rule] = set()
    for request in requests:
        if agents is not None:
            seen = str(request.get("user_agent") or request.get("userAgent") or "")
            if not any(a in seen for a in agents):
                continue
        rule = request_rule(request)
        if rule is not None:
            needed.add(rule)
    missing = {want for want in needed if not any(_grants(have, want) for have in granted)}
    unused = {have for have in granted if not any(_grants(have, want) for want in needed)}
    return RbacReport(missing=frozenset(missing), unused=frozenset(unused), used=frozenset(needed))


def audit_requests(audit_log: Path, *, user: str | None = None) -> list[dict[str, Any]]:
    """The resource requests in a kube-apiserver audit log (JSON lines), in the request-log shape that
    `check_rbac` reads, with the user and response code; only `user`'s when given."""
    found: list[dict[str, Any]] = []
    if not audit_log.exists():
        return found
    with audit_log.open() as lines:
        for line in lines:
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            username = str((event.get("user") or {}).get("username") or "")
            if user is not None and username != user:
                continue
            found.append(
                {
                    "verb": event.get("verb", ""),
                    "group": ref.get("apiGroup") or "",
                    "resource": ref.get("resource") or "",
                    "subresource": ref.get("subresource") or "",
                    "namespace": ref.get("namespace") or "",
                    "name": ref.get("name") or "",
                    "code": (event.get("responseStatus") or {}).get("code"),
                    "user_agent": event.get("userAgent") or "",
                    "user": username,
                    "uri": event.get("requestURI", ""),
                }
            )
    return found
