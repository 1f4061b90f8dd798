"""How many requests per second the stand-in serves: `python -m q_operator.emulate.aws.bench`.

Starts `q-operator emulate aws` as its own process (so the client's CPU does not count against the
server), creates one plugin, then hammers GetPlugin from boto3 in a few threads for a few seconds,
and prints calls/second. On a shared machine those swing with its load, so it also prints the CPU
time one GetPlugin costs inside the stand-in (no HTTP, best of five), which does not. A benchmark to
report, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence

import boto3
from botocore.config import Config


def _client(url: str) -> object:
    return boto3.client(
        "qbusiness",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, max_pool_connections=32),
    )


async def _raw(url: str, path: str, concurrency: int, seconds: float) -> float:
    """Calls/second with a lean HTTP client, to see the server's limit rather than boto3's."""
    import aiohttp

    headers = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/qbusiness/aws4_request, "
        "SignedHeaders=host, Signature=0"
    }
    count = 0
    stop = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal count
        while time.monotonic() < stop:
            async with session.get(url + path, headers=headers) as answer:
                await answer.read()
                if answer.status == 200:
                    count += 1

    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return count / (time.monotonic() - started)


def run(threads: int, seconds: float) -> tuple[float, float]:
    """Serve from a fresh stand-in process; GetPlugin calls/second via boto3 and via raw HTTP."""
    process = subprocess.Popen(
        [sys.executable, "-m", "q_operator", "emulate", "aws", "--port", "0", "--build-seconds", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"stand-in did not start: {line!r}")
        url = line.split(" ", 1)[1]
        application = str(uuid.uuid4())
        setup = _client(url)
        plugin = setup.create_plugin(  # type: ignore[attr-defined]
            applicationId=application,
            displayName="bench",
            type="JIRA",
            authConfiguration={"noAuthConfiguration": {}},
            serverUrl="https://example.com",
        )["pluginId"]
        counts = [0] * threads
        stop = time.monotonic() + seconds

        def worker(index: int) -> None:
            client = _client(url)
            while time.monotonic() < stop:
                client.get_plugin(applicationId=application, pluginId=plugin)  # type: ignore[attr-defined]
                counts[index] += 1

        workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        started = time.monotonic()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        via_boto3 = sum(counts) / (time.monotonic() - started)
        path = f"/applications/{application}/plugins/{plugin}"
        via_http = asyncio.run(_raw(url, path, 16, seconds))
        return via_boto3, via_http
    finally:
        process.terminate()
        process.wait(timeout=10)


def cpu_per_call(plugins: int = 1, calls: int = 3000) -> float:
    """CPU seconds of one GetPlugin in `Emulator.handle`, with `plugins` plugins in 40 applications."""
    from q_operator.emulate.aws.core import Emulator

    emulator = Emulator()
    emulator.configure({"build_seconds": 0, "quotas": {"plugins_per_application": plugins}})
    auth = {"authorization": "AWS4-HMAC-SHA256 Credential=bench/20260101/us-east-1/qbusiness/aws4_request"}
    body = b'{"displayName": "p", "type": "JIRA", "authConfiguration": {"noAuthConfiguration": {}}}'
    paths = []
    for index in range(plugins):
        application = str(uuid.UUID(int=index % 40, version=4))
        answer = emulator.handle("POST", f"/applications/{application}/plugins", {}, auth, body)
        paths.append(f"/applications/{application}/plugins/{json.loads(answer.body)['pluginId']}")
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for index in range(calls):
            emulator.handle("GET", paths[index % plugins], {}, auth, b"")
        best = min(best, (time.process_time() - started) / calls)
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m q_operator.emulate.aws.bench")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    via_boto3, via_http = run(args.threads, args.seconds)
    print(f"AWS stand-in: {via_boto3:.0f} GetPlugin requests/second through boto3 ({args.threads} threads)")
    print(f"AWS stand-in: {via_http:.0f} GetPlugin requests/second through raw HTTP (16 concurrent)")
    for plugins in (1, 1000):
        micros = cpu_per_call(plugins) * 1e6
        print(f"AWS stand-in: {micros:.0f} µs CPU per GetPlugin in process, no HTTP ({plugins} plugins)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
