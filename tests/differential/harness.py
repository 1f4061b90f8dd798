"""The differential harness: the same requests to two API servers, the answers normalised and compared.

A case is a function of a `Steps` recorder. It runs once against the real kube-apiserver and once
against the stand-in, in a namespace of the same name on each, and records every answer it wants
compared. Values a server generates (uids, resourceVersions, timestamps, ages, continue tokens) are
replaced by placeholders, so what is left is what a client can rely on: status codes, reasons,
causes, messages and bodies. The two recordings are then compared field by field.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import http.client
import json
import re
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

KUBECTL = Path(__file__).resolve().parents[2] / ".tools" / "bin" / "kubectl"

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_AGE = re.compile(r"^(<invalid>|<unknown>|(\d+[smhdy])+)$")
_RV_KEYS = frozenset({"resourceVersion"})
# Built-in tables print ages in string columns.
_AGE_COLUMNS = frozenset({"Age", "Last Seen", "First Seen"})
_HASH = re.compile(r"\?hash=[0-9A-F]+")


@dataclass
class Reply:
    """What one request got: status code, the headers a client reads, and the decoded body."""

    status: int
    content_type: str
    warnings: list[str]
    body: Any


class Endpoint:
    """One API server reached over HTTP(S) with whatever credentials it takes."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        token: str | None = None,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        parsed = urllib.parse.urlsplit(self.url)
        self.https = parsed.scheme == "https"
        self.host = parsed.hostname or "127.0.0.1"
        self.port = parsed.port or (443 if self.https else 80)
        self.ssl_context = ssl_context
        self.token = token

    def connect(self, timeout: float = 30.0) -> http.client.HTTPConnection:
        if self.https:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self.ssl_context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"User-Agent": "q-operator-differential"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        accept: str = "application/json",
        query: Mapping[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        """Send one request and return its answer, whatever its status."""
        if query:
            path = path + ("&" if "?" in path else "?") + urllib.parse.urlencode(query)
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = content_type
        conn = self.connect()
        try:
            conn.request(method, path, body=data, headers=self.headers(headers))
            resp = conn.getresponse()
            payload = resp.read()
            warnings = [_warning_text(w) for w in resp.headers.get_all("Warning") or []]
            return Reply(resp.status, resp.headers.get("Content-Type", ""), warnings, _decode(payload))
        finally:
            conn.close()

    def watch(
        self,
        path: str,
        query: Mapping[str, str],
        count: int,
        timeout: float = 20.0,
        accept: str = "application/json",
    ) -> list[JSON]:
        """The first `count` events of a watch (fewer if it ends or `timeout` passes), then close it."""
        query = {"watch": "true", **query}
        full = path + "?" + urllib.parse.urlencode(query)
        conn = self.connect(timeout=timeout)
        events: list[JSON] = []
        deadline = time.monotonic() + timeout
        try:
            conn.request("GET", full, headers=self.headers({"Accept": accept}))
            resp = conn.getresponse()
            if resp.status != 200:
                return [{"type": "HTTP", "object": _decode(resp.read()), "status": resp.status}]
            while len(events) < count and time.monotonic() < deadline:
                line = resp.readline()
                if not line:
                    break
                if line.strip():
                    events.append(json.loads(line))
        except TimeoutError:
            pass
        finally:
            conn.close()
        return events


def _warning_text(header: str) -> str:
    """`299 - "text"` -> text (the part a client shows)."""
    m = re.match(r'^\d{3} \S+ "(.*)"', header)
    return m.group(1).replace('\\"', '"') if m else header


def _decode(payload: bytes) -> Any:
    if not payload:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")


# ---- normalising ---------------------------------------------------------------------------------


class Normaliser:
    """Replaces generated values by placeholders.

    uids are numbered in the order a case first sees them (keys sorted, so both servers number
    alike); the same uid elsewhere (in a message, a precondition) gets the same placeholder.
    Failure causes are sorted, and so is the list they are joined into in the message: a real
    server reports them in Go's random map order.
    """

    def __init__(self) -> None:
        self.uids: dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        self._collect_uids(value)
        return self._replace(_sorted_causes(value))

    def _collect_uids(self, value: Any) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                item = value[key]
                if key == "uid" and isinstance(item, str) and item:
                    self.uids.setdefault(item, f"<uid{len(self.uids) + 1}>")
                else:
                    self._collect_uids(item)
        elif isinstance(value, list):
            for item in value:
                self._collect_uids(item)

    def _replace(self, value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k in _RV_KEYS and isinstance(v, str) and v:
                    out[k] = "<rv>"
                elif k == "continue" and isinstance(v, str) and v:
                    out[k] = "<continue>"
                else:
                    out[k] = self._replace(v)
            return out
        if isinstance(value, list):
            return [self._replace(v) for v in value]
        if isinstance(value, str):
            if value in self.uids:
                return self.uids[value]
            value = _UUID.sub(lambda m: self.uids.get(m.group(0), m.group(0)), value)
            value = _HASH.sub("?hash=<hash>", value)
            value = _RV_IN_TEXT.sub(lambda m: m.group(1) + "<rv>", value)
            return _TIME.sub("<time>", value)
        return value


_RV_IN_TEXT = re.compile(
    r"(ResourceVersion in record \(|too old resource version: |ResourceVersion: "
    r'|\\"resourceVersion\\":\\")\d+'
)


def _sorted_causes(value: Any) -> Any:
    """A Status with its causes (and the message listing them) in a stable order."""
    if not isinstance(value, dict):
        return value
    if isinstance(value.get("body"), dict):
        return {**value, "body": _sorted_causes(value["body"])}
    details = value.get("details")
    if value.get("kind") != "Status" or not isinstance(details, dict) or not details.get("causes"):
        return value
    causes = sorted(
        details["causes"], key=lambda c: (c.get("field", ""), c.get("reason", ""), c.get("message", ""))
    )
    out = {**value, "details": {**details, "causes": causes}}
    message = str(value.get("message", ""))
    rendered = [f"{c['field']}: {c['message']}" if c.get("field") else c.get("message", "") for c in causes]
    head, sep, listed = message.partition(" is invalid: [")
    if sep and listed.endswith("]"):
        inner = listed[:-1]
        if len(inner) == len(", ".join(rendered)) and all(r in inner for r in rendered):
            out["message"] = f"{head}{sep}{', '.join(sorted(rendered))}]"
    return out


_AGE_IN_TEXT = re.compile(r"(?<=\s)(?:\d+[smhdy])+(?=\s|$)", re.MULTILINE)
_HTTP_DATE = re.compile(r"\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}")
_RV_LINE = re.compile(r"(Resource Version:\s+)\d+")


def _sorted_bullets(text: str) -> str:
    """Runs of `* cause` lines sorted: a real server lists causes in Go's random map order."""
    out: list[str] = []
    run: list[str] = []
    for line in text.split("\n"):
        if line.startswith("* "):
            run.append(line)
            continue
        out.extend(sorted(run))
        run = []
        out.append(line)
    out.extend(sorted(run))
    return "\n".join(out)


def normalise_text(text: str, namespace: str = "") -> str:
    """kubectl's output without what depends on time or on generated values."""
    text = _sorted_bullets(text)
    text = _HTTP_DATE.sub("<time>", text)
    text = _TIME.sub("<time>", text)
    text = _UUID.sub("<uid>", text)
    text = _RV_LINE.sub(lambda m: m.group(1) + "<rv>", text)
    return _AGE_IN_TEXT.sub("<age>", text)


def normalise_table(body: Any) -> Any:
    """Date columns of a Table show ages, which depend on when the request ran."""
    if not isinstance(body, dict) or body.get("kind") != "Table":
        return body
    out = copy.deepcopy(body)
    dates = [
        i
        for i, c in enumerate(out.get("columnDefinitions") or [])
        if c.get("type") == "date" or c.get("name") in _AGE_COLUMNS
    ]
    for row in out.get("rows") or []:
        cells = row.get("cells") or []
        for i in dates:
            if i < len(cells) and isinstance(cells[i], str) and _AGE.match(cells[i]):
                cells[i] = "<age>"
    return out


# ---- recording -------------------------------------------------------------------------------------


@dataclass
class Record:
    """One recorded answer (or fact) of a case, under a label unique within the case."""

    label: str
    value: Any


class Steps:
    """What a case uses: requests against one endpoint, each answer recorded for comparison."""

    def __init__(self, endpoint: Endpoint, namespace: str) -> None:
        self.endpoint = endpoint
        self.ns = namespace
        self.records: list[Record] = []
        self._normalise = Normaliser()
        self._proxy: RecordingProxy | None = None
        self._tmp: Any = None
        self._kubeconfig: Any = None

    # The server a case runs on: only for waits that a real server needs (CRDs becoming Established).
    @property
    def server(self) -> str:
        return self.endpoint.name

    def record(self, label: str, value: Any) -> Any:
        if any(r.label == label for r in self.records):
            raise ValueError(f"label {label!r} recorded twice")
        if isinstance(value, dict) and "body" in value:
            value = {**value, "body": normalise_table(value["body"])}
        self.records.append(Record(label, self._normalise(normalise_table(value))))
        return value

    def note(self, label: str, fact: Any) -> None:
        """Record a fact a case computed (e.g. whether a resourceVersion changed), not a body."""
        self.record(label, fact)

    def call(
        self,
        label: str | None,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        accept: str = "application/json",
        query: Mapping[str, str] | None = None,
        raw: bytes | None = None,
        keep: Callable[[Any], Any] | None = None,
    ) -> Reply:
        """Send a request; record its status, content type, warnings and (part of) its body."""
        reply = self.endpoint.request(
            method, path, body, content_type=content_type, accept=accept, query=query, raw=raw
        )
        if label is not None:
            shown = keep(reply.body) if keep is not None else reply.body
            self.record(
                label,
                {
                    "status": reply.status,
                    "contentType": reply.content_type.split(";")[0],
                    "warnings": reply.warnings,
                    "body": shown,
                },
            )
        return reply

    def kubectl(
        self,
        label: str | None,
        *args: str,
        stdin: str | None = None,
        keep: Callable[[str], Any] | None = None,
    ) -> str:
        """Run kubectl against this endpoint (through the recording proxy); record exit code and output."""
        import subprocess
        import tempfile
        from pathlib import Path

        if self._proxy is None:
            self._proxy = RecordingProxy(self.endpoint)
            self._tmp = tempfile.TemporaryDirectory(prefix="difftest-kubectl-")
            self._kubeconfig = self._proxy.kubeconfig(Path(self._tmp.name) / "kubeconfig", self.ns)
        cache = Path(self._tmp.name) / "cache"
        assert self._proxy is not None
        before = len(self._proxy.exchanges)
        done = subprocess.run(
            [str(KUBECTL), f"--kubeconfig={self._kubeconfig}", f"--cache-dir={cache}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if label is not None:
            out = keep(done.stdout) if keep is not None else normalise_text(done.stdout, self.ns)
            sent = [_sent(ex) for ex in self._proxy.exchanges[before:] if not _is_discovery(ex.path)]
            self.record(
                label,
                {
                    "exit": done.returncode,
                    "stdout": out,
                    "stderr": normalise_text(done.stderr, self.ns),
                    "sent": sent,
                },
            )
        return done.stdout

    def close(self) -> None:
        if self._proxy is not None:
            self._proxy.close()
            self._tmp.cleanup()

    def watch(
        self,
        label: str,
        path: str,
        query: Mapping[str, str],
        count: int,
        timeout: float = 10.0,
        keep: Callable[[JSON], Any] | None = None,
    ) -> list[JSON]:
        events = self.endpoint.watch(path, query, count, timeout)
        shown = [keep(e) if keep is not None else e for e in events]
        self.record(label, shown)
        return events


Case = Callable[[Steps], None]


# ---- comparing -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """One place where the two servers' answers differ: `label/path`, with both values."""

    path: str
    real: Any
    standin: Any

    def __str__(self) -> str:
        return f"{self.path}: real={_short(self.real)} stand-in={_short(self.standin)}"


_ABSENT = "<absent>"


def _short(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "..."


def differences(real: Any, standin: Any, path: str = "") -> Iterator[Difference]:
    """Every leaf where `real` and `standin` differ; a missing key or list item shows as <absent>."""
    if isinstance(real, dict) and isinstance(standin, dict):
        for key in list(real) + [k for k in standin if k not in real]:
            sub = f"{path}/{key}" if path else str(key)
            yield from differences(real.get(key, _ABSENT), standin.get(key, _ABSENT), sub)
        return
    if isinstance(real, list) and isinstance(standin, list):
        for i in range(max(len(real), len(standin))):
            yield from differences(
                real[i] if i < len(real) else _ABSENT,
                standin[i] if i < len(standin) else _ABSENT,
                f"{path}/{i}",
            )
        return
    if real != standin:
        yield Difference(path, real, standin)


def compare(real: Sequence[Record], standin: Sequence[Record]) -> list[Difference]:
    """Differences of two recordings of one case, label by label."""
    out: list[Difference] = []
    real_by = {r.label: r.value for r in real}
    standin_by = {r.label: r.value for r in standin}
    for label in list(real_by) + [k for k in standin_by if k not in real_by]:
        out.extend(differences(real_by.get(label, _ABSENT), standin_by.get(label, _ABSENT), label))
    return out


@dataclass(frozen=True)
class Known:
    """A difference we accept: case and path are shell patterns, `why` says why it does not matter."""

    case: str
    path: str
    why: str

    def covers(self, case: str, diff: Difference) -> bool:
        return fnmatch.fnmatchcase(case, self.case) and fnmatch.fnmatchcase(diff.path, self.path)


@dataclass
class Verdict:
    """A case's differences, split into the accepted ones and the new ones."""

    accepted: list[tuple[Difference, Known]] = field(default_factory=list)
    new: list[Difference] = field(default_factory=list)


def judge(case: str, diffs: Sequence[Difference], known: Sequence[Known]) -> Verdict:
    verdict = Verdict()
    for diff in diffs:
        entry = next((k for k in known if k.covers(case, diff)), None)
        if entry is None:
            verdict.new.append(diff)
        else:
            verdict.accepted.append((diff, entry))
    return verdict


# ---- kubectl through a recording proxy -------------------------------------------------------------------


@dataclass
class Exchange:
    """One request kubectl sent and the status it got."""

    method: str
    path: str
    accept: str
    content_type: str
    body: bytes
    status: int


_DISCOVERY = re.compile(r"^/(api|apis)(/[^/?]+){0,2}(\?|$)|^/openapi/|^/version")
_VOLATILE_QUERY = re.compile(r"(timeoutSeconds=)\d+|(resourceVersion=)\d+")


def _is_discovery(path: str) -> bool:
    """Discovery and OpenAPI requests: when kubectl sends them depends on its cache, not on us."""
    return bool(_DISCOVERY.match(path))


def _sent(ex: Exchange) -> JSON:
    """What one request of kubectl's was, without the values that vary (timeouts, versions)."""
    body: Any = ex.body.decode(errors="replace")
    with contextlib.suppress(ValueError):
        body = json.loads(body) if body else ""
    path = _VOLATILE_QUERY.sub(lambda m: (m.group(1) or m.group(2)) + "<n>", ex.path)
    # kubectl builds some selectors from Go maps: their terms come in random order.
    path = re.sub(
        r"(fieldSelector=)([^&]*)", lambda m: m.group(1) + "%2C".join(sorted(m.group(2).split("%2C"))), path
    )
    return {
        "request": f"{ex.method} {path}",
        "accept": ex.accept,
        "contentType": ex.content_type,
        "body": body,
        "status": ex.status,
    }


class RecordingProxy:
    """Plain HTTP on loopback in front of an endpoint: kubectl talks to it with no credentials, it
    forwards with the endpoint's, streams the answer back (watches too) and records the exchange."""

    def __init__(self, endpoint: Endpoint) -> None:
        import http.server
        import threading

        self.endpoint = endpoint
        self.exchanges: list[Exchange] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                wanted = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() in ("accept", "content-type", "user-agent")
                }
                conn = proxy.endpoint.connect(timeout=60)
                try:
                    conn.request(
                        self.command, self.path, body=body or None, headers=proxy.endpoint.headers(wanted)
                    )
                    resp = conn.getresponse()
                    proxy.exchanges.append(
                        Exchange(
                            self.command,
                            self.path,
                            self.headers.get("Accept", ""),
                            self.headers.get("Content-Type", ""),
                            body,
                            resp.status,
                        )
                    )
                    self.send_response(resp.status)
                    for key, value in resp.getheaders():
                        if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(key, value)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    while True:
                        chunk = resp.read1(65536)
                        if not chunk:
                            break
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    conn.close()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kubeconfig(self, path: Any, namespace: str) -> Any:
        import yaml

        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "c", "cluster": {"server": self.url}}],
                    "users": [{"name": "u", "user": {}}],
                    "contexts": [
                        {"name": "x", "context": {"cluster": "c", "user": "u", "namespace": namespace}}
                    ],
                    "current-context": "x",
                }
            )
        )
        return path
