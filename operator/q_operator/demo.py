"""`make demo`: the main job on the embedded default, shown plainly.

Starts both stand-ins and the operator (see sandbox.py), applies every manifest in samples/ with
kubectl, and shows each resource reaching Ready with its AWS ID and ARN; an invalid sample shows the
message a user would get from a real cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from q_operator.apiserver import ApiServer, ApiServerError
from q_operator.kinds.base import KindInfo
from q_operator.registry import KINDS
from q_operator.sandbox import CRDS_DIR, REPO_ROOT, Sandbox, SandboxError, condition

SAMPLES = REPO_ROOT / "samples"
BY_KIND: dict[str, KindInfo[Any, Any]] = {kind.kind: kind for kind in KINDS}


def _say(text: str = "") -> None:
    print(text, flush=True)


def _resources(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return [d for d in docs if d.get("kind") in BY_KIND]


def run_demo(keep: bool, timeout: float, apiserver: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="q-operator-demo-"))
    _say("q-operator demo — everything runs on this machine, nothing reaches AWS or a real cluster.\n")
    with contextlib.ExitStack() as stack:
        kube: ApiServer | None = None
        if apiserver:
            # The real kube-apiserver and etcd (built by `make install`) instead of the stand-in.
            kube = stack.enter_context(ApiServer(workdir / "apiserver", crds_dir=CRDS_DIR))
        sandbox = stack.enter_context(Sandbox(workdir, aws_args=["--build-seconds", "2"], kube=kube))
        services = ", ".join(dict.fromkeys(kind.service for kind in KINDS))
        _say(f"  {f'AWS stand-in ({services})':<43}{sandbox.aws_url}")
        if kube is not None:
            label = f"kube-apiserver and etcd (ready in {kube.seconds_to_ready:.1f}s)"
            _say(f"  {label:<43}{sandbox.kube_url}")
        else:
            _say(f"  Kubernetes API stand-in                    {sandbox.kube_url}")
        _say(f"  kubeconfig                                 {sandbox.kubeconfig}")
        sandbox.start_operator()
        _say(
            "  operator                                   q-operator run --all-namespaces (pid "
            f"{sandbox.operator.pid if sandbox.operator else '?'})"
        )
        _say(f"  logs                                       {workdir}\n")

        applied: list[dict[str, Any]] = []
        _say("$ kubectl apply -f samples/")
        for path in sorted(SAMPLES.glob("*.yaml")):
            result = sandbox.kubectl("apply", "-f", str(path), check=False)
            rel = path.relative_to(REPO_ROOT)
            if result.returncode == 0:
                for line in result.stdout.strip().splitlines():
                    _say(f"  {line}    ({rel})")
                applied.extend(_resources(path))
            else:
                _say(f"  REFUSED {rel}:")
                for line in result.stderr.strip().splitlines():
                    _say(f"    {line}")
        _say("\nWaiting for each resource to reach Ready (plugin builds take a few seconds)...")
        start = time.monotonic()
        rows: list[tuple[str, ...]] = []
        failed = 0
        for obj in applied:
            ns = obj["metadata"].get("namespace", "default")
            name = obj["metadata"]["name"]
            kind = BY_KIND[obj["kind"]]
            api_path = kind.plural_path
            try:
                live = sandbox.wait_condition(api_path, ns, name, "Ready", timeout=timeout)
                took = time.monotonic() - start
                _say(f"  {obj['kind']}/{name} Ready after {took:.1f}s")
            except SandboxError:
                failed += 1
                live = sandbox.get(api_path, ns, name) or {}
                synced = condition(live, "Synced", "False") or condition(live, "Ready", "False") or {}
                why = f"{synced.get('reason', '?')}: {synced.get('message', '')}"
                _say(f"  {obj['kind']}/{name} NOT Ready: {why}")
            id_field, arn_field = kind.id_field, kind.arn_field
            status = live.get("status", {})
            ready = condition(live, "Ready", "True") is not None
            rows.append(
                (
                    obj["kind"],
                    f"{ns}/{name}",
                    "True" if ready else "False",
                    str(status.get(id_field, "-")),
                    str(status.get(arn_field, "-")) if arn_field else "(no ARN in the API)",
                )
            )
        _say("")
        _print_table(("KIND", "NAME", "READY", "ID", "ARN"), rows)
        _say("\n$ kubectl get q-operator")
        _say(sandbox.kubectl("get", "q-operator", "-A", check=False).stdout.rstrip())
        calls = sandbox.aws_requests()
        _say(f"\nAWS calls made by the operator: {len(calls)}")
        if keep:
            kubectl = f"KUBECONFIG={sandbox.kubeconfig} .tools/bin/kubectl"
            _say(f"\nStill running. Try: {kubectl} get q-operator -A -o yaml")
            _say("Press Ctrl-C to stop.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    return 1 if failed else 0


def _print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        _say("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="q-operator demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep everything running until Ctrl-C")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for each resource")
    parser.add_argument(
        "--apiserver",
        action="store_true",
        help="run on the real kube-apiserver and etcd (built by make install) instead of the stand-in",
    )
    args = parser.parse_args(argv)
    try:
        return run_demo(keep=args.keep, timeout=args.timeout, apiserver=args.apiserver)
    except ApiServerError as e:
        print(f"error: {e}", flush=True)
        return 1
