"""The real Kubernetes API server for the end-to-end tests: etcd and kube-apiserver on loopback.

`make install` builds both from Kubernetes' and etcd's own Go modules (testenv/ pins them) into
.tools/bin. `ApiServer` runs them the way controller-runtime's envtest does: a fresh CA, a serving
certificate for 127.0.0.1, an admin client certificate in `system:masters`, service-account signing
keys so the TokenRequest API works, and nothing else of a cluster (no kubelet, scheduler or
controller-manager: pods never run, namespaces never finish deleting, nothing is garbage-collected).

`q-operator apiserver --kubeconfig FILE [--crds DIR] [--rbac]` is the command line of the same thing.
Nothing here imports the engine: the operator finds the server through its kubeconfig only.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import functools
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from q_operator.sandbox import free_port, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
BINARIES = REPO_ROOT / ".tools" / "bin"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
FIELD_MANAGER = "q-operator-apiserver"
# Every request at Metadata level: who did what to which object, and the answer's status code; enough
# to prove that a run saw no 403 without logging any object's content.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata"}],
}

T = TypeVar("T")


class ApiServerError(RuntimeError):
    """etcd or kube-apiserver did not start, or did not answer in time."""


class ApiServer:
    """etcd and kube-apiserver on 127.0.0.1, run the way controller-runtime's envtest runs them.

    Use as a context manager, or `start()` and `stop()`. Logs, certificates and the kubeconfig live in
    `workdir`; `stop()` removes etcd's data (the logs stay for a failed test to show).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        crds_dir: Path | None = None,
        rbac: bool = False,
        audit: bool = False,
        watch_cache: bool = True,
        binaries: Path = BINARIES,
    ) -> None:
        self.workdir = Path(workdir)
        self.crds_dir = crds_dir
        self.rbac = rbac
        self.watch_cache = watch_cache
        self.binaries = Path(binaries)
        self.url = ""
        self.etcd_url = ""
        pki = self.workdir / "pki"
        self.ca_file = pki / "ca.crt"
        self.admin_cert = pki / "admin.crt"
        self.admin_key = pki / "admin.key"
        self._serving_cert = pki / "apiserver.crt"
        self._serving_key = pki / "apiserver.key"
        self._sa_key = pki / "service-account.key"
        self._sa_pub = pki / "service-account.pub"
        self.kubeconfig = self.workdir / "kubeconfig"
        self.audit_log: Path | None = self.workdir / "audit.log" if audit else None
        self._etcd_data = self.workdir / "etcd-data"
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._apiserver_starts = 0
        self._context: ssl.SSLContext | None = None
        self.seconds_to_ready = 0.0

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> ApiServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start etcd, then kube-apiserver; apply the CRDs; write the kubeconfig once all is ready."""
        began = time.monotonic()
        for binary in ("etcd", "kube-apiserver"):
            if not (self.binaries / binary).exists():
                raise ApiServerError(f"{self.binaries / binary} is missing: run `make install`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.unlink(missing_ok=True)
        self._port = free_port()
        self.url = f"https://127.0.0.1:{self._port}"
        _write_pki(self)
        self._start_etcd()
        self._start_apiserver()
        if self.crds_dir is not None:
            self.apply_crds(self.crds_dir)
        write_private(self.kubeconfig, self.kubeconfig_text())
        self.seconds_to_ready = time.monotonic() - began

    def stop(self) -> None:
        """Stop kube-apiserver, then etcd, and remove etcd's data."""
        _stop(self._apiserver)
        self._apiserver = None
        _stop(self._etcd)
        self._etcd = None
        shutil.rmtree(self._etcd_data, ignore_errors=True)

    def restart_apiserver(self) -> None:
        """Stop kube-apiserver only and start it again on the same port; etcd keeps the data."""
        self.stop_apiserver()
        self.start_apiserver()

    def stop_apiserver(self) -> None:
        """Stop kube-apiserver only (an outage of the control plane); etcd keeps running and the data."""
        _stop(self._apiserver)
        self._apiserver = None

    def start_apiserver(self) -> None:
        """Start kube-apiserver again on the same port (after `stop_apiserver`) and wait until it serves
        every CRD again: after /readyz, the first request of each custom resource still answers 429
        ("storage is (re)initializing") while that resource's watch cache fills."""
        self._start_apiserver()
        crds = self.request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
        for crd in crds:
            spec = crd["spec"]
            for version in spec["versions"]:
                if version.get("served", True):
                    path = f"/apis/{spec['group']}/{version['name']}/{spec['names']['plural']}?limit=1"
                    wait_for(
                        f"{path} served",
                        functools.partial(self._answers, path),
                        timeout=60,
                        error=ApiServerError,
                    )

    def apiserver_running(self) -> bool:
        return self._apiserver is not None and self._apiserver.poll() is None

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        peer_url = f"http://127.0.0.1:{peer}"
        argv = [
            str(self.binaries / "etcd"),
            "--name=q-operator-test",
            f"--data-dir={self._etcd_data}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=q-operator-test={peer_url}",
            # A test cluster's data is thrown away: durability buys nothing and fsync costs seconds.
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
        self._etcd = _spawn(argv, self.workdir / "etcd.log")

        def healthy() -> bool:
            _check_alive(self._etcd, "etcd", self.workdir / "etcd.log")
            try:
                with urllib.request.urlopen(self.etcd_url + "/health", timeout=1) as response:
                    return bool(json.loads(response.read()).get("health") == "true")
            except (OSError, ValueError):
                return False

        wait_for("etcd /health", healthy, timeout=30, error=ApiServerError)

    def _start_apiserver(self) -> None:
        self._apiserver_starts += 1
        log = self.workdir / "kube-apiserver.log"
        argv = [
            str(self.binaries / "kube-apiserver"),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self._port}",
            f"--cert-dir={self.workdir / 'pki'}",
            f"--tls-cert-file={self._serving_cert}",
            f"--tls-private-key-file={self._serving_key}",
            f"--client-ca-file={self.ca_file}",
            f"--service-account-key-file={self._sa_pub}",
            f"--service-account-signing-key-file={self._sa_key}",
            f"--service-account-issuer={self.url}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--authorization-mode={'RBAC' if self.rbac else 'AlwaysAllow'}",
            # No Pods, so nothing reaches the server through the `kubernetes` Service's endpoints; and
            # a loopback address is refused there.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
        ]
        if not self.watch_cache:
            # Lists and watches go to etcd: one resumed from a compacted revision gets 410 Gone, as
            # on a cluster whose watch cache no longer holds that revision.
            argv.append("--watch-cache=false")
        if self.audit_log is not None:
            policy = self.workdir / "audit-policy.yaml"
            policy.write_text(yaml.safe_dump(AUDIT_POLICY))
            argv += [
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                "--audit-log-format=json",
                # Written as requests finish, not batched, so a test reads what just happened.
                "--audit-log-mode=blocking",
            ]
        with log.open("ab") as f:
            f.write(f"--- start {self._apiserver_starts}\n".encode())
        self._apiserver = _spawn(argv, log)

        def ready() -> bool:
            _check_alive(self._apiserver, "kube-apiserver", log)
            try:
                return bool(self.request("GET", "/readyz", raw=True) == b"ok")
            except (OSError, ApiServerError):
                return False

        wait_for("kube-apiserver /readyz", ready, timeout=90, interval=0.2, error=ApiServerError)

    # -- clients ---------------------------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the server by our CA and presents the admin client certificate."""
        if self._context is None:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            context.load_cert_chain(str(self.admin_cert), str(self.admin_key))
            self._context = context
        return self._context

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        raw: bool = False,
        token: str | None = None,
    ) -> Any:
        """One call as the admin (or with a bearer `token`); the decoded JSON, or bytes with `raw`.

        HTTP errors raise urllib.error.HTTPError, whose body is the API's Status object.
        """
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", content_type)
        context = self.ssl_context()
        if token is not None:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            content: bytes = response.read()
        if raw:
            return content
        return json.loads(content) if content else None

    def kubeconfig_text(self, token: str | None = None, namespace: str | None = None) -> str:
        """A kubeconfig that kubectl, helm, the kubernetes client and kopf use unchanged: the admin's
        client certificate, or only `token` (as a ServiceAccount's pod would hold it)."""
        user: dict[str, str]
        if token is None:
            user = {
                "client-certificate-data": _b64(self.admin_cert.read_bytes()),
                "client-key-data": _b64(self.admin_key.read_bytes()),
            }
        else:
            user = {"token": token}
        context: dict[str, str] = {"cluster": "q-operator-test", "user": "q-operator-test"}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "q-operator-test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": _b64(self.ca_file.read_bytes()),
                    },
                }
            ],
            "users": [{"name": "q-operator-test", "user": user}],
            "contexts": [{"name": "q-operator-test", "context": context}],
            "current-context": "q-operator-test",
        }
        return yaml.safe_dump(config, sort_keys=False)

    def service_account_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        """A token for the ServiceAccount by the TokenRequest API, as the kubelet gets one for a pod."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        }
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
        token: str = self.request("POST", path, body)["status"]["token"]
        return token

    def apply(self, obj: dict[str, Any]) -> Any:
        """Server-side apply of one object as the admin (create or update, idempotent)."""
        path = object_path(obj, named=True)
        query = urllib.parse.urlencode({"fieldManager": FIELD_MANAGER, "force": "true"})
        return self.request(
            "PATCH", f"{path}?{query}", json.dumps(obj).encode(), content_type="application/apply-patch+yaml"
        )

    def apply_crds(self, crds_dir: Path, timeout: float = 60) -> list[str]:
        """Apply every CRD in `crds_dir` and wait until each is Established and its resource is served."""
        crds = [doc for doc in _yaml_documents(sorted(crds_dir.glob("*.yaml"))) if doc]
        for crd in crds:
            self.apply(crd)
        for crd in crds:
            name = crd["metadata"]["name"]
            path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"

            def established(path: str = path) -> bool:
                conditions = self.request("GET", path).get("status", {}).get("conditions", [])
                return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

            wait_for(f"CRD {name} Established", established, timeout=timeout, error=ApiServerError)
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                list_path = f"/apis/{spec['group']}/{version['name']}/{spec['names']['plural']}?limit=1"
                wait_for(
                    f"{list_path} served",
                    functools.partial(self._answers, list_path),
                    timeout,
                    error=ApiServerError,
                )
        return [crd["metadata"]["name"] for crd in crds]

    def _answers(self, path: str) -> bool:
        try:
            self.request("GET", path)
            return True
        except urllib.error.HTTPError:
            return False

    def compact_etcd(self) -> int:
        """Compact etcd at its current revision (through etcd's v3 HTTP/JSON gateway); the revision.

        With `watch_cache=False` a watch that resumes from an older resourceVersion afterwards gets
        410 Gone. With the watch cache on (the default, as on a cluster) kube-apiserver still serves
        recent history from memory, so such a watch may well succeed.
        """
        # Any range answers with the store's current revision in its header.
        header = self._etcd_call("/v3/kv/range", {"key": _b64(b"/"), "count_only": True})["header"]
        revision = int(header["revision"])
        self._etcd_call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def _etcd_call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(self.etcd_url + path, data=json.dumps(body).encode(), method="POST")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            result: dict[str, Any] = json.loads(response.read())
        return result


def object_path(obj: dict[str, Any], named: bool = True) -> str:
    """The REST path of an object from its apiVersion, kind and metadata (no discovery round trip).

    The plural is lower-case kind + "s" (the rule our CRDs and kopf's peering CRDs follow) unless
    `_PLURALS` names it; the kinds in `_CLUSTER_SCOPED` take no namespace.
    """
    api_version: str = obj["apiVersion"]
    kind: str = obj["kind"]
    plural = _PLURALS.get(kind, kind.lower() + "s")
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    metadata = obj.get("metadata", {})
    if kind not in _CLUSTER_SCOPED and metadata.get("namespace"):
        base += f"/namespaces/{metadata['namespace']}"
    path = f"{base}/{plural}"
    return f"{path}/{metadata['name']}" if named else path


# The plurals of the built-in kinds the tests and the CLI apply where lower-case kind + "s" is wrong.
_PLURALS = {
    "CustomResourceDefinition": "customresourcedefinitions",
    "ClusterRole": "clusterroles",
    "ClusterRoleBinding": "clusterrolebindings",
    "Role": "roles",
    "RoleBinding": "rolebindings",
    "ServiceAccount": "serviceaccounts",
    "ConfigMap": "configmaps",
    "Namespace": "namespaces",
    "NetworkPolicy": "networkpolicies",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "Ingress": "ingresses",
    "PriorityClass": "priorityclasses",
    "Endpoints": "endpoints",
}
_CLUSTER_SCOPED = {
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Namespace",
    "PriorityClass",
    "ClusterKopfPeering",
}


# -- certificates --------------------------------------------------------------------------------


def _write_pki(server: ApiServer) -> None:
    """A fresh CA; a serving certificate for 127.0.0.1 and localhost; an admin client certificate in
    system:masters; a service-account signing key pair. EC P-256 throughout: generated in
    milliseconds, accepted by kube-apiserver for TLS, client certificates and token signing."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    server.ca_file.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=7)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(common: str, org: str | None = None) -> x509.Name:
        parts = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
        if org:
            parts.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(parts)

    def write_key(path: Path, private: ec.EllipticCurvePrivateKey) -> None:
        path.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)

    ca_key = key()
    ca_name = name("q-operator-test-ca")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    server.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(
        subject: x509.Name, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        private = key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), private

    import ipaddress

    serving, serving_key = leaf(
        name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("localhost"),
            # The in-cluster name and address of the `kubernetes` Service, as a real cluster has.
            x509.IPAddress(ipaddress.ip_address("10.0.0.1")),
            x509.DNSName("kubernetes.default.svc"),
        ],
    )
    server._serving_cert.write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    write_key(server._serving_key, serving_key)

    admin, admin_key = leaf(name("admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH, [])
    server.admin_cert.write_bytes(admin.public_bytes(serialization.Encoding.PEM))
    write_key(server.admin_key, admin_key)

    sa_key = key()
    write_key(server._sa_key, sa_key)
    server._sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


# -- processes -----------------------------------------------------------------------------------


def _spawn(argv: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start a server in its own process group, its output appended to `log_path`; on Linux it also
    dies with its parent, so a killed test run leaves no etcd or kube-apiserver behind."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )


def _die_with_parent() -> None:
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


def _check_alive(proc: subprocess.Popen[bytes] | None, name: str, log: Path) -> None:
    if proc is None or proc.poll() is not None:
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        code = None if proc is None else proc.returncode
        raise ApiServerError(f"{name} exited ({code}); last lines of {log}:\n" + "\n".join(tail))


def write_private(path: Path, text: str) -> None:
    """Write `path` readable by its owner only (0600: a kubeconfig holds the admin's key), atomically:
    a reader sees no file or the whole file, never a part of it."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _yaml_documents(paths: Sequence[Path]) -> Iterator[Any]:
    for path in paths:
        yield from yaml.safe_load_all(path.read_text())


# -- command line --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """`q-operator apiserver`: start, write the kubeconfig, print READY <url>, serve until SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="q-operator apiserver",
        description="Run the real etcd and kube-apiserver (built by `make install`) on 127.0.0.1.",
    )
    parser.add_argument(
        "--kubeconfig",
        required=True,
        help="write the admin kubeconfig here (mode 0600) once /readyz answers; an old file is removed first",
    )
    parser.add_argument("--crds", help="apply the CRDs in this directory and wait until Established")
    parser.add_argument("--rbac", action="store_true", help="authorize by RBAC (default: AlwaysAllow)")
    parser.add_argument("--audit", action="store_true", help="write an audit log (Metadata level)")
    parser.add_argument(
        "--no-watch-cache",
        action="store_true",
        help="serve lists and watches from etcd (a watch from a compacted revision then gets 410 Gone)",
    )
    parser.add_argument("--workdir", help="keep certificates and logs here (default: a temporary dir)")
    parser.add_argument("--binaries", default=str(BINARIES), help="where etcd and kube-apiserver are")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))

    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    kubeconfig = Path(args.kubeconfig)
    # One left by an earlier run names a server that is gone: whoever waits for the file must not
    # take it for this server's, which is written only once /readyz answers.
    kubeconfig.unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:
        workdir = (
            Path(args.workdir)
            if args.workdir
            else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="q-apiserver-")))
        )
        server = ApiServer(
            workdir,
            crds_dir=Path(args.crds) if args.crds else None,
            rbac=args.rbac,
            audit=args.audit,
            watch_cache=not args.no_watch_cache,
            binaries=Path(args.binaries),
        )
        stack.callback(server.stop)
        try:
            server.start()
        except ApiServerError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        write_private(kubeconfig, server.kubeconfig.read_text())
        print(f"ready in {server.seconds_to_ready:.1f}s; logs in {workdir}", file=sys.stderr)
        print(f"READY {server.url}", flush=True)
        while not stopping:
            if not server.apiserver_running():
                print("error: kube-apiserver exited; see its log", file=sys.stderr)
                return 1
            time.sleep(0.2)
    return 0
