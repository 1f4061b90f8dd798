"""End-to-end harness: the real `q-operator run` process against the real kube-apiserver over HTTPS.

One real API server (etcd + kube-apiserver, see q_operator.apiserver) per pytest worker, with our CRDs
and kopf's peering CRDs applied once, shared by the worker's modules. Per module: an AWS stand-in and
the operator; each test works in a namespace of its own. At module teardown the operator stops and
every custom object the module left is removed (finalizers stripped), so the next module's
cluster-wide operator never sees them: a bare API server has no garbage collector and namespaces
never finish deleting.

A module that still needs the Kubernetes stand-in (kube-side fault injection, its request log) sets
`KUBE_STANDIN = "<one-line reason>"` and gets a stand-in of its own, as every module did before.

Logs of every process are kept in the module's temporary directory; their tails are printed when a
test fails.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from q_operator.apiserver import ApiServer
from q_operator.sandbox import Sandbox

from .helpers import e2e_crds, new_namespace, shared_sandbox

_counter = itertools.count()


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """This worker's real API server: our CRDs and kopf's peering CRDs, an audit log for the
    permission proofs, AlwaysAllow (test_chart_rbac proves the chart's RBAC on a server of its own)."""
    root = tmp_path_factory.mktemp("apiserver")
    with ApiServer(root / "server", crds_dir=e2e_crds(root / "crds"), audit=True) as server:
        yield server


def standin_reason(module: Any) -> str | None:
    """Why a module runs on the Kubernetes stand-in instead of the real server (None: it does not)."""
    reason: str | None = getattr(module, "KUBE_STANDIN", None)
    return reason


@pytest.fixture(scope="module")
def kube_server(request: pytest.FixtureRequest) -> ApiServer | None:
    """The real API server for this module, or None when the module runs on the stand-in."""
    if standin_reason(request.module):
        return None
    server: ApiServer = request.getfixturevalue("apiserver")
    return server


@pytest.fixture(scope="module")
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, kube_server: ApiServer | None
) -> Iterator[Sandbox]:
    aws_args: list[str] = list(getattr(request.module, "AWS_ARGS", ["--build-seconds", "0.5"]))
    operator_env: dict[str, str] = dict(getattr(request.module, "OPERATOR_ENV", {}))
    workdir = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    with shared_sandbox(workdir, kube_server, aws_args=aws_args, operator_env=operator_env) as box:
        box.start_operator()
        yield box


@pytest.fixture(scope="module")
def fresh_sandbox(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, kube_server: ApiServer | None
) -> Iterator[Sandbox]:
    """Like `sandbox` but with no operator started: the module starts what it needs."""
    aws_args: list[str] = list(getattr(request.module, "AWS_ARGS", ["--build-seconds", "0.5"]))
    workdir = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    with shared_sandbox(workdir, kube_server, aws_args=aws_args) as box:
        yield box


#: Modules that take a minute or more, in the order they should start: pytest-xdist's loadfile hands
#: out modules in collection order, and one of these begun last keeps its worker busy while the
#: others have nothing left to do.
SLOW_FIRST = (  # longest first (a clean-clone run's --durations, 2026-12-07)
    "tests/e2e/test_drift_interval.py",
    "tests/e2e/test_identity.py",
    "tests/e2e/test_controls.py",
    "tests/e2e/test_list_observation.py",
    "tests/e2e/test_metrics_alerts.py",
    "tests/e2e/test_reliability_fast.py",
    "tests/e2e/test_chart_rbac.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slow modules first, and the permission proofs last, so they see the calls of the whole
    suite (of their worker)."""

    def rank(item: pytest.Item) -> tuple[bool, int]:
        module = item.nodeid.split("::", 1)[0]
        slow = SLOW_FIRST.index(module) if module in SLOW_FIRST else len(SLOW_FIRST)
        return item.get_closest_marker("after_suite") is not None, slow

    items.sort(key=rank)


@pytest.fixture
def namespace(sandbox: Sandbox) -> str:
    return new_namespace(sandbox, f"t{next(_counter)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        funcargs = getattr(item, "funcargs", {})
        boxes = [v for v in funcargs.values() if isinstance(v, Sandbox)]
        for box in boxes[:1]:
            for log in sorted(Path(box.workdir).glob("*.log")):
                lines = log.read_text(errors="replace").splitlines()[-40:]
                report.sections.append((f"{log.name} (last 40 lines)", "\n".join(lines)))
