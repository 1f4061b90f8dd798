"""Preparing both servers alike: the same CRDs, served, and a namespace per case."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

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


def install_crds(endpoint: Endpoint, crds: Sequence[JSON], timeout: float = 60.0) -> None:
    """Create the CRDs and wait until each is Established and its resource answers a list."""
    for crd in crds:
        reply = endpoint.request("POST", CRD_PATH, crd)
        if reply.status not in (201, 409):
            raise RuntimeError(f"{endpoint.name}: creating {crd['metadata']['name']}: {reply.body}")
    deadline = time.monotonic() + timeout
    for crd in crds:
        while True:
            got = endpoint.request("GET", f"{CRD_PATH}/{crd['metadata']['name']}").body
            conditions = {c["type"]: c["status"] for c in (got.get("status") or {}).get("conditions") or []}
            if (
                conditions.get("Established") == "True"
                and endpoint.request("GET", _served_path(crd)).status == 200
            ):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{endpoint.name}: {crd['metadata']['name']} not served within {timeout}s")
            time.sleep(0.1)


def create_namespace(endpoint: Endpoint, name: str) -> None:
    reply = endpoint.request(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    )
    if reply.status not in (201, 409):
        raise RuntimeError(f"{endpoint.name}: creating namespace {name}: {reply.body}")
