"""Benchmark: how fast the stand-in takes writes while a watch is open, and how fast the watch keeps up.

Run `python -m q_operator.emulate.kube.bench [--objects N] [--concurrency C]`. It starts the stand-in
as a subprocess (so client and server do not share a GIL), installs a CRD with a schema and a CEL
rule, opens a cluster-wide watch, creates N objects then patches each once, and prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

GROUP, VERSION, PLURAL = "bench.example.com", "v1", "things"

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "thing", "kind": "Thing"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["displayName"],
                                "x-kubernetes-validations": [
                                    {"rule": "self.size <= 1000", "message": "too big"}
                                ],
                                "properties": {
                                    "displayName": {
                                        "type": "string",
                                        "pattern": "^[a-z0-9-]+$",
                                        "maxLength": 63,
                                    },
                                    "size": {"type": "integer", "minimum": 0, "default": 1},
                                    "tags": {"type": "object", "additionalProperties": {"type": "string"}},
                                },
                            },
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                        },
                    }
                },
            }
        ],
    },
}


async def _watch(
    session: aiohttp.ClientSession, url: str, rv: str, expected: int, done: asyncio.Event
) -> list[float]:
    """Count events of a cluster-wide watch; return the arrival time of each."""
    arrivals: list[float] = []
    params = {"watch": "true", "resourceVersion": rv}
    async with session.get(f"{url}/apis/{GROUP}/{VERSION}/{PLURAL}", params=params) as resp:
        async for line in resp.content:
            if not line.strip():
                continue
            if json.loads(line)["type"] in ("ADDED", "MODIFIED"):
                arrivals.append(time.perf_counter())
                if len(arrivals) >= expected:
                    done.set()
                    return arrivals
    return arrivals


async def run(url: str, objects: int, concurrency: int) -> dict[str, float]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        async with session.post(
            f"{url}/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=CRD
        ) as resp:
            assert resp.status == 201, await resp.text()
        async with session.get(f"{url}/apis/{GROUP}/{VERSION}/{PLURAL}") as resp:
            rv = (await resp.json())["metadata"]["resourceVersion"]
        done = asyncio.Event()
        watcher = asyncio.create_task(_watch(session, url, rv, 2 * objects, done))
        base = f"{url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(objects):
            queue.put_nowait(i)

        async def create_worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                body = {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Thing",
                    "metadata": {"name": f"thing-{i}", "labels": {"bench": "yes"}},
                    "spec": {"displayName": f"thing-{i}", "size": i % 1000, "tags": {"a": "b"}},
                }
                async with session.post(base, json=body) as resp:
                    assert resp.status == 201, await resp.text()

        async def patch_worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                headers = {"Content-Type": "application/merge-patch+json"}
                data = json.dumps({"spec": {"size": (i + 1) % 1000}})
                async with session.patch(f"{base}/thing-{i}", data=data, headers=headers) as resp:
                    assert resp.status == 200, await resp.text()

        started = time.perf_counter()
        await asyncio.gather(*(create_worker() for _ in range(concurrency)))
        created = time.perf_counter()
        for i in range(objects):
            queue.put_nowait(i)
        await asyncio.gather(*(patch_worker() for _ in range(concurrency)))
        written = time.perf_counter()
        await asyncio.wait_for(done.wait(), 60)
        arrivals = await watcher
        last_event = arrivals[-1]
    writes = 2 * objects
    return {
        "objects": objects,
        "creates_per_second": objects / (created - started),
        "patches_per_second": objects / (written - created),
        "writes_per_second": writes / (written - started),
        "watch_events": len(arrivals),
        "watch_events_per_second": len(arrivals) / (last_event - started),
        "watch_lag_after_last_write_ms": max(0.0, (last_event - written) * 1000),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m q_operator.emulate.kube.bench", description=__doc__)
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(list(argv) if argv is not None else None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "q_operator", "emulate", "kube", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.startswith("READY "):
            print(f"the stand-in did not start: {line!r}", file=sys.stderr)
            return 1
        result = asyncio.run(run(line.split(" ", 1)[1], args.objects, args.concurrency))
    finally:
        proc.terminate()
        proc.wait(10)
    for key, value in result.items():
        print(f"{key}: {value:.0f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
