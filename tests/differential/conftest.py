"""Both servers for the differential tests: the real kube-apiserver and the stand-in, prepared alike.

One pair per pytest worker (session scope); every case runs in a namespace of its own, with the same
name on both, so the cases never see each other's objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from q_operator.apiserver import ApiServer
from q_operator.emulate.kube.server import KubeEmulator, running_kube_emulator
from tests.differential import cases, servers
from tests.differential.harness import Endpoint


@dataclass
class Pair:
    """The two servers a case runs on, and what runs them."""

    real: Endpoint
    standin: Endpoint
    apiserver: ApiServer
    emulator: KubeEmulator


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    crds = servers.crd_documents([cases.WIDGETS_CRDS, cases.OPERATOR_CRDS])
    workdir = tmp_path_factory.mktemp("difftest-apiserver")
    with ApiServer(workdir) as apiserver, running_kube_emulator() as emulator:
        real = Endpoint("real", apiserver.url, ssl_context=apiserver.ssl_context())
        standin = Endpoint("stand-in", emulator.url)
        for endpoint in (real, standin):
            servers.install_crds(endpoint, crds)
        yield Pair(real, standin, apiserver, emulator)
