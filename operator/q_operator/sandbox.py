"""The AWS stand-in, a Kubernetes API server and the operator as real processes on loopback.

The Kubernetes side is either the stand-in (`q-operator emulate kube`, started here: the embedded
default of `make demo` and the place for kube-side fault injection) or a server the caller runs, such
as the real kube-apiserver (`q_operator.apiserver.ApiServer`, what the end-to-end tests use). `make
demo` and the end-to-end tests share this module, so the demo a user watches is exactly what the tests
prove. Every piece is a separate process that finds the others through the standard variables
(KUBECONFIG, AWS_ENDPOINT_URL), as it would in a cluster; nothing here imports the engine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]
CRDS_DIR = REPO_ROOT / "crds"
KUBECTL = REPO_ROOT / ".tools" / "bin" / "kubectl"

T = TypeVar("T")


class SandboxError(RuntimeError):
    """A stand-in or the operator did not start, or a wait ran out of time."""


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.1,
    error: type[Exception] = SandboxError,
) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `timeout` seconds
    (with `error`: a caller of its own, such as the API server, raises its own kind)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise error(f"timed out after {timeout:.0f}s waiting for {what} (last seen: {last!r})")


def _start_ready_process(
    name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, timeout: float = 30.0
) -> tuple[subprocess.Popen[bytes], str]:
    """Start a stand-in and wait for its `READY <url>` line; everything else goes to its log file."""
    log = log_path.open("wb")
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=log, env=dict(env), start_new_session=True
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        log.write(line)
        log.flush()
        text = line.decode(errors="replace").strip()
        if text.startswith("READY "):
            # Keep draining stdout into the log so the child never blocks on a full pipe.
            _drain_in_background(proc, log)
            return proc, text.split(" ", 1)[1]
    proc.kill()
    raise SandboxError(f"{name} did not print READY within {timeout:.0f}s; see {log_path}")


def _drain_in_background(proc: subprocess.Popen[bytes], log: Any) -> None:
    import threading

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()

    threading.Thread(target=drain, daemon=True).start()


def _stop(proc: subprocess.Popen[bytes] | None, kill: bool = False, timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


class KubeServer(Protocol):
    """A Kubernetes API server the sandbox uses but does not run (e.g. `apiserver.ApiServer`)."""

    url: str
    kubeconfig: Path

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the server and presents a client certificate that may do anything."""
        ...


class Sandbox:
    """The AWS stand-in, a Kubernetes API server (the stand-in unless `kube` is given) plus, on demand,
    the operator. Use as a context manager; it stops only what it started."""

    def __init__(
        self,
        workdir: Path,
        *,
        aws_args: Sequence[str] = (),
        operator_env: Mapping[str, str] | None = None,
        crds_dir: Path = CRDS_DIR,
        kube: KubeServer | None = None,
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.external_kube = kube
        self.kubeconfig = kube.kubeconfig if kube else workdir / "kubeconfig"
        self.aws_args = list(aws_args)
        self.operator_env = dict(operator_env or {})
        self.crds_dir = crds_dir
        self.aws_url = ""
        self.kube_url = kube.url if kube else ""
        self._aws: subprocess.Popen[bytes] | None = None
        self._kube: subprocess.Popen[bytes] | None = None
        self.operator: subprocess.Popen[bytes] | None = None
        self._spawned: list[subprocess.Popen[bytes]] = []
        self._operator_starts = 0
        self._operator_logs: dict[int, Path] = {}

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Sandbox:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        cli = [sys.executable, "-m", "q_operator"]
        self._aws, self.aws_url = _start_ready_process(
            "AWS stand-in",
            [*cli, "emulate", "aws", "--port", "0", *self.aws_args],
            os.environ,
            self.workdir / "aws.log",
        )
        if self.external_kube is not None:
            return
        self._kube, self.kube_url = _start_ready_process(
            "Kubernetes stand-in",
            [
                *cli,
                "emulate",
                "kube",
                "--port",
                "0",
                "--crds",
                str(self.crds_dir),
                "--kubeconfig",
                str(self.kubeconfig),
            ],
            os.environ,
            self.workdir / "kube.log",
        )

    def close(self) -> None:
        for proc in self._spawned:
            _stop(proc)
        _stop(self._kube)
        _stop(self._aws)

    def env(self) -> dict[str, str]:
        """The environment a client of this sandbox needs: the standard variables, nothing else."""
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            AWS_ENDPOINT_URL=self.aws_url,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_REGION="us-east-1",
            AWS_DEFAULT_REGION="us-east-1",
            AWS_EC2_METADATA_DISABLED="true",
        )
        env.pop("AWS_PROFILE", None)
        return env

    def start_operator(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        """Start `q-operator run` (cluster-wide, standalone) and wait until its liveness probe answers."""
        self.stop_operator()
        self.operator = self.spawn_operator("--all-namespaces", "--standalone", *args, env=env)

    def spawn_operator(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start one more `q-operator run` with exactly these options (plus a liveness endpoint);
        the caller stops it (or `close` does). Waits until its liveness probe answers."""
        self._operator_starts += 1
        port = free_port()
        op_env = self.env()
        op_env.update({"Q_OPERATOR_METRICS_PORT": "0", "Q_OPERATOR_DRIFT_SECONDS": "300"})
        # The AWS stand-in answers every read consistently unless it is given a read lag: a short
        # consistency bound is the truth about it. A sandbox with read lag sets a bound above the lag.
        op_env["Q_OPERATOR_CONSISTENCY_SECONDS"] = "1"
        op_env.update(self.operator_env)
        op_env.update(env or {})
        log = (self.workdir / f"operator-{self._operator_starts}.log").open("wb")
        argv = [
            sys.executable,
            "-m",
            "q_operator",
            "run",
            f"--liveness=http://127.0.0.1:{port}/healthz",
            *args,
        ]
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=op_env, start_new_session=True
        )
        self._spawned.append(proc)
        self._operator_logs[proc.pid] = Path(log.name)

        def alive() -> bool:
            if proc.poll() is not None:
                raise SandboxError(f"operator exited with {proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    return bool(r.status == 200)
            except (urllib.error.URLError, OSError):
                return False

        wait_for("the operator's liveness endpoint", alive, timeout=60)
        return proc

    def operator_log(self, proc: subprocess.Popen[bytes]) -> Path:
        """The log file of an operator this sandbox started."""
        return self._operator_logs[proc.pid]

    def stop_operator(self, kill: bool = False) -> None:
        """Stop the operator; `kill=True` is kill -9, the crash the tests inflict."""
        _stop(self.operator, kill=kill)
        self.operator = None

    def stop_operators(self) -> None:
        """Stop every operator this sandbox started (`start_operator` and `spawn_operator` alike)."""
        self.stop_operator()
        for proc in self._spawned:
            _stop(proc)

    # -- clients ---------------------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        kubectl = str(KUBECTL) if KUBECTL.exists() else (shutil.which("kubectl") or "kubectl")
        result = subprocess.run(
            [kubectl, f"--kubeconfig={self.kubeconfig}", "--request-timeout=30s", *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise SandboxError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    @property
    def on_standin(self) -> bool:
        """True when the Kubernetes side is our stand-in (its /_emulator/ API exists), not a real server."""
        return self.external_kube is None

    def kube(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        """A raw call to the Kubernetes API (the stand-in needs no auth on loopback; a real server gets
        the admin client certificate); returns the decoded JSON."""
        context = self.external_kube.ssl_context() if self.external_kube else None
        return _http_json(self.kube_url + path, method, body, content_type, context=context)

    def purge_custom_objects(self) -> int:
        """Delete every object of every CRD on the server, finalizers stripped first; the count.

        Tests that share one API server call it between modules with the operator stopped, so the next
        module's cluster-wide operator never sees a previous module's objects. There is no garbage
        collector or namespace controller to do it (and namespaces never finish deleting).
        """
        removed = 0
        crds = self.kube("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
        for crd in crds:
            spec = crd["spec"]
            version = next(v["name"] for v in spec["versions"] if v.get("served", True))
            base = f"/apis/{spec['group']}/{version}"
            for obj in self.kube("GET", f"{base}/{spec['names']['plural']}")["items"]:
                meta = obj["metadata"]
                where = f"/namespaces/{meta['namespace']}" if meta.get("namespace") else ""
                path = f"{base}{where}/{spec['names']['plural']}/{meta['name']}"
                try:
                    if meta.get("finalizers"):
                        self.kube(
                            "PATCH",
                            path,
                            {"metadata": {"finalizers": None}},
                            content_type="application/merge-patch+json",
                        )
                    self.kube("DELETE", path)
                except urllib.error.HTTPError as e:
                    if e.code != 404:
                        raise
                removed += 1
        return removed

    def aws(self, method: str, path: str, body: Any = None) -> Any:
        """A call to the AWS stand-in's admin API under /_emulator/."""
        return _http_json(self.aws_url + path, method, body)

    def aws_requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.aws("GET", "/_emulator/requests")
        return result

    def get(self, plural_path: str, namespace: str, name: str) -> dict[str, Any] | None:
        """GET a custom resource, e.g. get('qbusiness.q-operator.dev/v1alpha1/qplugins', 'default', 'x')."""
        try:
            result: dict[str, Any] = self.kube("GET", f"/apis/{_split(plural_path, namespace)}/{name}")
            return result
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def wait_condition(
        self,
        plural_path: str,
        namespace: str,
        name: str,
        type_: str,
        status: str = "True",
        timeout: float = 60,
    ) -> dict[str, Any]:
        """Wait until the object's condition `type_` has `status` for the current generation."""

        def probe() -> dict[str, Any] | None:
            obj = self.get(plural_path, namespace, name)
            if obj and condition(obj, type_, status, current=True):
                return obj
            return None

        return wait_for(f"{name} {type_}={status}", probe, timeout=timeout)


def condition(
    obj: Mapping[str, Any], type_: str, status: str, current: bool = False
) -> dict[str, Any] | None:
    """The condition of `type_` when its status is `status` (and, if asked, it is for this generation)."""
    for cond in obj.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == type_ and cond.get("status") == status:
            generation = obj.get("metadata", {}).get("generation")
            if current and cond.get("observedGeneration") not in (None, generation):
                return None
            return dict(cond)
    return None


def _split(plural_path: str, namespace: str) -> str:
    group_version, plural = plural_path.rsplit("/", 1)
    return f"{group_version}/namespaces/{namespace}/{plural}"


def _http_json(
    url: str,
    method: str,
    body: Any = None,
    content_type: str = "application/json",
    context: ssl.SSLContext | None = None,
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
