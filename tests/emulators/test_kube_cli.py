"""`q-operator emulate kube` as a process: ready line, kubeconfig, admin API, clean stop; the benchmark."""

from __future__ import annotations

import asyncio
import json
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml
from kubernetes import client, config

from q_operator.emulate.kube import bench
from q_operator.emulate.kube.server import running_kube_emulator

FIXTURES = Path(__file__).parent / "fixtures"


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    assert sel.select(timeout), "no output from the stand-in in time"
    return proc.stdout.readline().strip()


def test_cli_prints_ready_writes_a_kubeconfig_and_stops_on_sigterm(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "q_operator",
            "emulate",
            "kube",
            "--port",
            "0",
            "--crds",
            str(FIXTURES),
            "--kubeconfig",
            str(kubeconfig),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = read_line(proc, 20)
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split(" ", 1)[1]
        doc = yaml.safe_load(kubeconfig.read_text())
        assert doc["clusters"][0]["cluster"]["server"] == url
        assert (
            doc["current-context"] == "q-emulator" and doc["contexts"][0]["context"]["namespace"] == "default"
        )
        api = config.new_client_from_config(config_file=str(kubeconfig))
        widgets = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "test.example.com", "v1", "default", "widgets"
        )
        api.close()
        assert widgets["items"] == []
        with urllib.request.urlopen(f"{url}/_emulator/requests", timeout=5) as resp:
            log = json.loads(resp.read())
        assert log[-1]["verb"] == "list" and log[-1]["resource"] == "widgets" and log[-1]["code"] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_benchmark_reports_write_and_watch_rates() -> None:
    with running_kube_emulator() as emu:
        started = time.monotonic()
        result = asyncio.run(bench.run(emu.url, objects=100, concurrency=4))
    assert result["watch_events"] == 200 and result["writes_per_second"] > 0
    assert time.monotonic() - started < 30
