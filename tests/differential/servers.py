"""Preparing both servers alike: the same CRDs, served, and a namespace per case."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path

import yaml

from q_operator.sandbox import wait_for
from tests.differential.harness import JSON, Endpoint

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def crd_documents(paths: Iterable[Path]) -> list[JSON]:
    docs: list[JSON] = []
    for path in paths:
        files = sorted(path.glob("*.yaml")) if path.is_dir() else [path]
        for file in files:
            for doc in yaml.safe_load_all(file.read_text()):
                if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                    docs.append(doc)
    return docs


def _served_path(crd: JSON) -> str:
    spec = crd["spec"]
    version = next(v["name"] for v in spec["versions"] if v.get("served", True))
    return f"/apis/{spec['group']}/{version}/{spec['names']['plural']}"


def _served(endpoint: Endpoint, crd: JSON) -> bool:
    """The CRD is Established and its resource answers a list."""
    got = endpoint.request("GET", f"{CRD_PATH}/{crd['metadata']['name']}").body
    conditions = {c["type"]: c["status"] for c in (got.get("status") or {}).get("conditions") or []}
    if conditions.get("Established") != "True":
        return False
    return endpoint.request("GET", _served_path(crd)).status == 200


def install_crds(endpoint: Endpoint, crds: Sequence[JSON], timeout: float = 60.0) -> None:
    """Create the CRDs and wait until each is Established and its resource answers a list (each within
    `timeout` seconds)."""
    for crd in crds:
        reply = endpoint.request("POST", CRD_PATH, crd)
        if reply.status not in (201, 409):
            raise RuntimeError(f"{endpoint.name}: creating {crd['metadata']['name']}: {reply.body}")
    for crd in crds:
        wait_for(
            f"{endpoint.name}: {crd['metadata']['name']} served",
            partial(_served, endpoint, crd),
            timeout=timeout,
            error=RuntimeError,
        )


def create_namespace(endpoint: Endpoint, name: str) -> None:
    reply = endpoint.request(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    if reply.status not in (201, 409):
        raise RuntimeError(f"{endpoint.name}: creating namespace {name}: {reply.body}")
