"""botocore's service models of the served services, and routing of a request to an operation.

The stand-in never describes an operation by hand: the URI templates, members and constraints all
come from the same `service-2.json` files boto3 uses, so a request boto3 can build is a request we
can route. rest-json services route by method + `requestUri` template; query services (STS) by the
`Action` their form names, at `POST /`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import botocore.session
from botocore.model import OperationModel, ServiceModel

from q_operator.emulate.aws import query


@dataclass(frozen=True)
class Route:
    """One operation's `http.method` + `http.requestUri`, compiled to a full-match regex."""

    service: str
    operation: OperationModel
    method: str
    pattern: re.Pattern[str]
    labels: tuple[str, ...]
    literal_chars: int
    segments: int
    """How many `/` the template has: a path with another count cannot match (unless greedy)."""
    greedy: bool
    """A `{label+}` may span segments."""


@dataclass(frozen=True)
class Match:
    """A routed request: the operation and its URI labels, percent-decoded."""

    service: str
    operation: OperationModel
    labels: dict[str, str]


@functools.cache
def service_model(service: str) -> ServiceModel:
    """Load (once per process) the installed botocore model of a service."""
    return botocore.session.get_session().get_service_model(service)


def _compile(service: str, op: OperationModel) -> Route:
    template = op.http["requestUri"].split("?", 1)[0]
    parts: list[str] = []
    labels: list[str] = []
    literal = 0
    pos = 0
    for found in re.finditer(r"\{([^}]+)\}", template):
        text = template[pos : found.start()]
        parts.append(re.escape(text))
        literal += len(text)
        name = found.group(1)
        greedy = name.endswith("+")
        labels.append(name.rstrip("+"))
        parts.append(f"(?P<l{len(labels) - 1}>.+)" if greedy else f"(?P<l{len(labels) - 1}>[^/]+)")
        pos = found.end()
    parts.append(re.escape(template[pos:]))
    literal += len(template) - pos
    return Route(
        service=service,
        operation=op,
        method=op.http["method"].upper(),
        pattern=re.compile("".join(parts)),
        labels=tuple(labels),
        literal_chars=literal,
        segments=template.count("/"),
        greedy=any(found.group(1).endswith("+") for found in re.finditer(r"\{([^}]+)\}", template)),
    )


class Router:
    """Finds the operation for a request; for rest-json the most literal matching template wins.

    Services are named by signing name (the credential scope's service), which is also botocore's
    service name for every service served.
    """

    def __init__(self, services: Iterable[str]) -> None:
        self._routes: dict[str, dict[str, list[Route]]] = {}
        self._by_shape: dict[tuple[str, str, int], list[Route]] = {}
        """(service, method, segments) -> the routes that may match, most literal first."""
        self._actions: dict[str, dict[str, OperationModel]] = {}
        for service in services:
            model = service_model(service)
            if model.protocol == "query":
                self._actions[service] = {n: model.operation_model(n) for n in model.operation_names}
                continue
            routes = [_compile(service, model.operation_model(name)) for name in model.operation_names]
            routes.sort(key=lambda r: -r.literal_chars)
            by_method: dict[str, list[Route]] = {}
            for route in routes:
                by_method.setdefault(route.method, []).append(route)
            self._routes[service] = by_method

    @property
    def services(self) -> tuple[str, ...]:
        return (*self._routes, *self._actions)

    def _candidates(self, service: str, method: str, segments: int) -> list[Route]:
        key = (service, method, segments)
        found = self._by_shape.get(key)
        if found is None:
            found = self._by_shape[key] = [
                r
                for r in self._routes[service].get(method, ())
                if r.segments == segments or (r.greedy and r.segments <= segments)
            ]
        return found

    def match(
        self,
        service: str | None,
        method: str,
        raw_path: str,
        query_args: Mapping[str, list[str]],
        body: bytes,
    ) -> Match | None:
        """Route a request; with no signing service (unsigned request) try every service in turn."""
        if service is None:
            candidates = self.services
        elif service in self._routes or service in self._actions:
            candidates = (service,)
        else:
            return None
        for svc in candidates:
            if svc in self._actions:
                if raw_path != "/" or method.upper() not in ("POST", "GET"):
                    continue
                op = self._actions[svc].get(query.action(query_args, body) or "")
                if op is not None:
                    return Match(service=svc, operation=op, labels={})
                continue
            for route in self._candidates(svc, method.upper(), raw_path.count("/")):
                found = route.pattern.fullmatch(raw_path)
                if found is None:
                    continue
                labels = {name: unquote(found.group(f"l{i}")) for i, name in enumerate(route.labels)}
                return Match(service=svc, operation=route.operation, labels=labels)
        return None
