"""End-to-end harness: the real `q-operator run` process against both stand-ins over HTTP.

One sandbox (AWS stand-in, Kubernetes stand-in, operator) per test module; each test works in a
namespace of its own so tests never see each other's objects. Logs of every process are kept in the
module's temporary directory and their tails are printed when a test fails.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from q_operator.sandbox import Sandbox

from . import calllog

_counter = itertools.count()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    aws_args: list[str] = list(getattr(request.module, "AWS_ARGS", ["--build-seconds", "0.5"]))
    operator_env: dict[str, str] = dict(getattr(request.module, "OPERATOR_ENV", {}))
    workdir = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    with Sandbox(workdir, aws_args=aws_args, operator_env=operator_env) as box:
        box.start_operator()
        yield box
        collect_calls(box)


def collect_calls(box: Sandbox) -> None:
    """Keep what the sandbox's stand-ins were asked, for the permission proofs."""
    calllog.KUBE.extend(box.kube("GET", "/_emulator/requests"))
    calllog.AWS.extend(box.aws_requests())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the permission proofs last, so they see the calls of the whole suite."""
    items.sort(key=lambda item: item.get_closest_marker("after_suite") is not None)


@pytest.fixture
def namespace(sandbox: Sandbox) -> str:
    name = f"t{next(_counter)}-{uuid.uuid4().hex[:6]}"
    sandbox.kube(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    return name


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        box = item.funcargs.get("sandbox") if hasattr(item, "funcargs") else None
        if isinstance(box, Sandbox):
            for log in sorted(Path(box.workdir).glob("*.log")):
                lines = log.read_text(errors="replace").splitlines()[-40:]
                report.sections.append((f"{log.name} (last 40 lines)", "\n".join(lines)))
