"""The Kubernetes API stand-in over HTTP: routing, content negotiation, watches, the request log, CLI.

`q-operator emulate kube --port P --crds DIR --kubeconfig FILE` serves on 127.0.0.1, writes a
kubeconfig, prints `READY http://127.0.0.1:<port>` and serves until SIGTERM/SIGINT. Tests use
`running_kube_emulator()`, which runs the same app on a background thread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from multidict import CIMultiDict

from q_operator.emulate.kube import discovery, openapi, protobuf, tables
from q_operator.emulate.kube.api import Api, WriteOptions, WriteResult
from q_operator.emulate.kube.errors import (
    ApiError,
    PageNotFound,
    bad_request,
    bad_resource_version,
    go_json_error,
    not_found,
    unknown_path,
    unrecognized,
    unsupported_media_type,
)
from q_operator.emulate.kube.faults import Faults
from q_operator.emulate.kube.protobuf import ProtobufError
from q_operator.emulate.kube.resources import BUILTIN_GROUPS, Registry, ResourceType
from q_operator.emulate.kube.selectors import field_selector, label_selector
from q_operator.emulate.kube.store import Store
from q_operator.emulate.kube.watch import WatchParams, stream_watch

JSON = dict[str, Any]

DEFAULT_TOKEN = "q-operator-emulator"
REQUEST_LOG_LIMIT = 200_000
_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


def load_crds(directory: str | Path | None) -> list[JSON]:
    """Every CustomResourceDefinition document in the YAML/JSON files of a directory (or one file)."""
    if directory is None:
        return []
    root = Path(directory)
    if not root.exists():
        raise FileNotFoundError(f"no such file or directory: {root}")
    candidates = [root] if root.is_file() else root.rglob("*")
    files = sorted(p for p in candidates if p.suffix in (".yaml", ".yml", ".json") and p.is_file())
    crds = []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                crds.append(doc)
    return crds


def kubeconfig_text(url: str, token: str = DEFAULT_TOKEN) -> str:
    """A kubeconfig that kubectl, the kubernetes client and kopf use unchanged."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "q-emulator", "cluster": {"server": url}}],
        "users": [{"name": "q-emulator", "user": {"token": token}}],
        "contexts": [
            {
                "name": "q-emulator",
                "context": {"cluster": "q-emulator", "user": "q-emulator", "namespace": "default"},
            }
        ],
        "current-context": "q-emulator",
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


@dataclass
class Target:
    """A routed resource request."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str


def _json(body: Any, status: int = 200, warnings: Sequence[str] = ()) -> web.Response:
    headers: CIMultiDict[str] = CIMultiDict()
    for warning in warnings:
        headers.add("Warning", f'299 - "{warning.replace(chr(34), chr(92) + chr(34))}"')
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _wants_table(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def _wants_partial(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "as=PartialObjectMetadata" in accept and "g=meta.k8s.io" in accept


def _table_version(request: web.Request) -> str:
    """meta.k8s.io/v1beta1 Tables are still served to the clients that ask for them."""
    accept = request.headers.get("Accept", "")
    first = next((part for part in accept.split(",") if "as=Table" in part or "as=Partial" in part), "")
    return "v1beta1" if "v=v1beta1" in first else "v1"


class _Pairs(dict[str, Any]):
    """A JSON object that remembers the keys it saw twice (the last value wins, as in Go)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        seen: set[str] = set()
        self.twice: list[str] = []
        for key, _ in pairs:
            if key in seen:
                self.twice.append(key)
            seen.add(key)


def _duplicates(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """The value as plain dicts, and the paths of fields a JSON body named twice."""
    found: list[str] = []
    if isinstance(value, dict):
        if isinstance(value, _Pairs):
            found.extend(f"{path}.{k}" if path else k for k in dict.fromkeys(value.twice))
        plain = {}
        for key, item in value.items():
            plain[key], below = _duplicates(item, f"{path}.{key}" if path else key)
            found.extend(below)
        return plain, found
    if isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            plain_item, below = _duplicates(item, f"{path}[{i}]")
            items.append(plain_item)
            found.extend(below)
        return items, found
    return value, found


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


class KubeServer:
    """One emulated API server: registry, store, the object life cycle and the request log."""

    def __init__(self, crds: list[JSON] | None = None, bookmark_seconds: float = 60.0, history: int = 10_000):
        self.registry = Registry.with_builtins()
        self.store = Store(history=history)
        self.api = Api(self.registry, self.store)
        self.api.bootstrap(crds or [])
        self.bookmark_seconds = bookmark_seconds
        self.requests: list[JSON] = []
        self.address = "127.0.0.1:0"
        self._entries: dict[int, JSON] = {}
        self.faults = Faults()

    # ---- app -------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        app.router.add_route("GET", "/_emulator/requests", self._get_requests)
        app.router.add_route("DELETE", "/_emulator/requests", self._reset_requests)
        app.router.add_route("GET", "/_emulator/config", self._get_config)
        app.router.add_route("POST", "/_emulator/config", self._set_config)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, app: web.Application) -> None:
        for watchers in list(self.store.watchers.values()):
            for watcher in list(watchers):
                watcher.queue.put_nowait(None)

    async def _get_requests(self, request: web.Request) -> web.Response:
        return _json(self.requests)

    async def _reset_requests(self, request: web.Request) -> web.Response:
        self.requests.clear()
        return _json({"cleared": True})

    async def _get_config(self, request: web.Request) -> web.Response:
        return _json(self.faults.describe())

    async def _set_config(self, request: web.Request) -> web.Response:
        return _json(self.faults.configure(await self._body(request)))

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        entry: JSON | None = None
        if not request.path.startswith("/_emulator/"):
            entry = self._classify(request)
            self.requests.append(entry)
            if len(self.requests) > REQUEST_LOG_LIMIT:
                del self.requests[: len(self.requests) - REQUEST_LOG_LIMIT]
            self._entries[id(request)] = entry
        try:
            if entry is not None and entry["resource"]:
                if self.faults.latency_ms:
                    await asyncio.sleep(self.faults.latency_ms / 1000)
                injected = self.faults.take(entry)
                if injected is not None:
                    raise injected
            response: web.StreamResponse = await handler(request)
        except PageNotFound:
            response = web.Response(text="404 page not found\n", status=404, content_type="text/plain")
        except ApiError as exc:
            response = _json(exc.status(), exc.code, exc.warnings)
            if exc.code == 429:
                response.headers["Retry-After"] = str((exc.details or {}).get("retryAfterSeconds", 1))
        except web.HTTPException:
            raise
        except Exception as exc:  # a bug here must still answer as an API server would, and be seen
            traceback.print_exc(file=sys.stderr)
            response = _json(
                ApiError(500, "InternalError", f"Internal error occurred: {exc!r}").status(), 500
            )
        finally:
            self._entries.pop(id(request), None)
        if entry is not None and entry.get("code") is None:
            entry["code"] = response.status
        return response

    def _classify(self, request: web.Request) -> JSON:
        """The request as RBAC sees it: verb, group, version, resource, subresource, namespace, name."""
        entry: JSON = {
            "verb": request.method.lower(),
            "group": "",
            "version": "",
            "resource": "",
            "subresource": "",
            "namespace": "",
            "name": "",
            "code": None,
            "time": time.time(),
            "method": request.method,
            "path": request.path,
            "nonResourceURL": "",
            # Tells the operator's calls (kopf, the kubernetes client) from the tests' kubectl.
            "user_agent": request.headers.get("User-Agent", ""),
        }
        parsed = self._parse_path(request.path)
        if parsed is None:
            entry["nonResourceURL"] = request.path  # discovery, /version, /openapi: RBAC nonResourceURLs
            return entry
        group, version, namespace, plural, name, sub = parsed
        entry.update(
            group=group,
            version=version,
            resource=plural,
            namespace=namespace or "",
            name=name or "",
            subresource=sub,
        )
        method = request.method
        if method == "GET":
            entry["verb"] = "get" if name else "watch" if _truthy(request.query.get("watch")) else "list"
        elif method == "DELETE":
            entry["verb"] = "delete" if name else "deletecollection"
        else:
            entry["verb"] = _WRITE_VERBS.get(method, method.lower())
        return entry

    @staticmethod
    def _parse_path(path: str) -> tuple[str, str, str | None, str, str | None, str] | None:
        segs = [s for s in path.split("/") if s]
        if not segs:
            return None
        if segs[0] == "api" and len(segs) >= 3:
            group, version, rest = "", segs[1], segs[2:]
        elif segs[0] == "apis" and len(segs) >= 4:
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            return None
        namespace = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (len(rest) == 3 and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = "/".join(rest[2:])
        return group, version, namespace, plural, name, sub

    # ---- dispatch --------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/version":
            return _json(discovery.VERSION)
        if path.startswith("/openapi/"):
            return self._openapi(request, path)
        if path in ("/api", "/apis") and discovery.wants_aggregated(request.headers.get("Accept", "")):
            aggregated = discovery.aggregated(self.registry, core=path == "/api")
            return web.Response(
                body=json.dumps(aggregated, separators=(",", ":")).encode(),
                headers={"Content-Type": discovery.AGGREGATED_V2, "Vary": "Accept"},
            )
        doc = self._discovery(path)
        if doc is not None:
            return _json(doc)
        parsed = self._parse_path(path)
        if parsed is None:
            raise self._not_served(path)
        group, version, namespace, plural, name, sub = parsed
        rt = self.registry.lookup(group, version, plural)
        if rt is None:
            raise self._not_served(path)
        if (namespace is not None and not rt.namespaced) or (rt.namespaced and namespace is None and name):
            raise self._not_served(path)
        if (
            sub
            and not (sub == "status" and rt.has_status)
            and not (sub == "finalize" and plural == "namespaces")
        ):
            if rt.is_custom and name:
                # apiextensions-apiserver routes any deeper path of an object to the object's storage.
                raise not_found(rt.group_resource, rt.group, rt.plural, name)
            raise unknown_path()
        target = Target(rt, namespace, name, sub)
        method = request.method
        if method == "GET":
            if name:
                return self._get(request, target)
            if _truthy(request.query.get("watch")):
                return await self._watch(request, target)
            return self._list(request, target)
        if method == "POST" and not name:
            return await self._create(request, target)
        if method == "PUT" and name:
            return await self._update(request, target)
        if method == "PATCH" and name:
            return await self._patch(request, target)
        if method == "DELETE":
            return await self._delete(request, target)
        raise ApiError(
            405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
        )

    def _discovery(self, path: str) -> JSON | None:
        segs = [s for s in path.split("/") if s]
        if segs == ["api"]:
            return discovery.api_versions(self.address)
        if segs == ["apis"]:
            return discovery.api_group_list(self.registry)
        if len(segs) == 2 and segs[0] == "api":
            return discovery.api_resource_list(self.registry, "", segs[1]) or self._raise_unknown()
        if len(segs) == 2 and segs[0] == "apis":
            doc = discovery.api_group(self.registry, segs[1])
            if doc is None:
                raise self._not_served(path)
            return doc
        if len(segs) == 3 and segs[0] == "apis":
            doc = discovery.api_resource_list(self.registry, segs[1], segs[2])
            if doc is None:
                raise self._not_served(path)
            return doc
        return None

    def _raise_unknown(self) -> JSON:
        raise unknown_path()

    @staticmethod
    def _not_served(path: str) -> ApiError:
        """What a real server answers for a path nothing serves: the core API and built-in groups
        answer a Status; everything else falls through to a plain-text 404 from the mux."""
        segs = [s for s in path.split("/") if s]
        if segs[:1] == ["api"] or (segs[:1] == ["apis"] and len(segs) > 1 and segs[1] in BUILTIN_GROUPS):
            return unknown_path()
        return PageNotFound()

    def _openapi(self, request: web.Request, path: str) -> web.Response:
        if path == "/openapi/v2":
            accept = request.headers.get("Accept", "")
            if "protobuf" in accept and "json" not in accept:
                raise ApiError(406, "NotAcceptable", "only application/json is served for /openapi/v2")
            return _json(openapi.v2_doc(self.registry))
        if path == "/openapi/v3":
            # A real server serves the index as text/plain.
            index = json.dumps(openapi.v3_root(self.registry), separators=(",", ":"))
            return web.Response(text=index, content_type="text/plain")
        segs = [s for s in path.split("/") if s][2:]
        doc = None
        if len(segs) == 2 and segs[0] == "api":
            doc = openapi.group_version_doc(self.registry, "", segs[1])
        elif len(segs) == 3 and segs[0] == "apis":
            doc = openapi.group_version_doc(self.registry, segs[1], segs[2])
        if doc is None:
            return web.Response(status=404)  # an unknown group/version: an empty 404, as there
        return _json(doc)

    # ---- reads -----------------------------------------------------------------------------------

    def _get(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        obj = self.api.get(target.rt, target.namespace or "", target.name)
        if _wants_table(request):
            include = request.query.get("includeObject", "Metadata")
            rv = obj["metadata"]["resourceVersion"]
            return _json(tables.table(target.rt, [obj], rv, include, version=_table_version(request)))
        if _wants_partial(request):
            return _json(tables.partial_metadata(obj, _table_version(request)))
        return _json(obj)

    def _matcher(self, request: web.Request, rt: ResourceType) -> Any:
        labels = label_selector(request.query.get("labelSelector"))
        fields = field_selector(request.query.get("fieldSelector"), rt.field_labels)
        return lambda obj: labels(obj) and fields(obj)

    def _list(self, request: web.Request, target: Target) -> web.Response:
        rt = target.rt
        query = request.query
        if query.get("resourceVersionMatch") and not query.get("resourceVersion"):
            raise ApiError(
                422,
                "Invalid",
                'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
                {
                    "group": "meta.k8s.io",
                    "kind": "ListOptions",
                    "causes": [
                        {
                            "reason": "FieldValueForbidden",
                            "message": "Forbidden: resourceVersionMatch is forbidden unless resourceVersion "
                            "is provided",
                            "field": "resourceVersionMatch",
                        }
                    ],
                },
            )
        list_rv = query.get("resourceVersion", "")
        if list_rv and not list_rv.isdigit():
            raise bad_request(f"invalid resource version: {bad_resource_version(list_rv)}")
        limit = int(query.get("limit") or 0)
        selective = bool(query.get("labelSelector") or query.get("fieldSelector"))
        items, rv, cont, remaining = self.api.list_objects(
            rt, target.namespace, self._matcher(request, rt), limit, query.get("continue", ""), selective
        )
        if _wants_table(request):
            include = query.get("includeObject", "Metadata")
            return _json(tables.table(rt, items, rv, include, cont, remaining, _table_version(request)))
        if _wants_partial(request):
            version = _table_version(request)
            return _json(
                {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": f"meta.k8s.io/{version}",
                    "metadata": {"resourceVersion": rv, **({"continue": cont} if cont else {})},
                    "items": [tables.partial_metadata(o, version) for o in items],
                }
            )
        meta: JSON = {"resourceVersion": rv}
        if cont or rt.is_custom:
            # Unstructured lists (custom resources) always carry continue, even when empty.
            meta["continue"] = cont
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        return _json(
            {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta, "items": items}
        )

    # ---- watch -----------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        params = WatchParams(
            namespace=target.namespace,
            match=self._matcher(request, target.rt),
            resource_version=query.get("resourceVersion", ""),
            timeout=float(query.get("timeoutSeconds") or 0) or None,
            bookmarks=_truthy(query.get("allowWatchBookmarks")),
            as_table=_wants_table(request),
            bookmark_seconds=self.bookmark_seconds,
        )
        entry = self._entries.get(id(request))
        if entry is not None:
            entry["code"] = 200
        return await stream_watch(request, self.api, target.rt, params)

    # ---- writes ----------------------------------------------------------------------------------

    @staticmethod
    def _options(request: web.Request) -> WriteOptions:
        validation = request.query.get("fieldValidation") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            kind = {"POST": "CreateOptions", "PUT": "UpdateOptions"}.get(request.method, "PatchOptions")
            detail = f'Unsupported value: "{validation}": supported values: "", "Ignore", "Strict", "Warn"'
            raise ApiError(
                422,
                "Invalid",
                f'{kind}.meta.k8s.io "" is invalid: fieldValidation: {detail}',
                {
                    "group": "meta.k8s.io",
                    "kind": kind,
                    "causes": [
                        {"reason": "FieldValueNotSupported", "message": detail, "field": "fieldValidation"}
                    ],
                },
            )
        return WriteOptions(
            dry_run=bool(request.query.getall("dryRun", [])),
            field_validation=validation,
            field_manager=request.query.get("fieldManager", ""),
            user_agent=request.headers.get("User-Agent", ""),
            force=_truthy(request.query.get("force")),
        )

    @staticmethod
    async def _body(request: web.Request) -> Any:
        """The body of an emulator admin call (always JSON)."""
        raw = await request.read()
        try:
            return json.loads(raw or b"null")
        except ValueError as exc:
            raise bad_request(f"the body is not JSON: {exc}") from None

    @staticmethod
    async def _object_body(request: web.Request, rt: ResourceType) -> tuple[Any, bytes]:
        """The object a create or update sends, and its raw bytes (decode errors quote them)."""
        raw = await request.read()
        if "protobuf" in request.content_type:
            try:
                return protobuf.decode(raw), raw
            except ProtobufError as exc:
                raise unsupported_media_type(
                    request.content_type, ["application/json", "application/yaml"]
                ) from exc
        if "cbor" in request.content_type:
            raise unsupported_media_type(request.content_type, ["application/json", "application/yaml"])
        try:
            if "yaml" in request.content_type:
                return yaml.safe_load(raw), raw
            return json.loads(raw or b"null", object_pairs_hook=_Pairs), raw
        except ValueError as exc:
            detail = f"couldn't get version/kind; json parse error: {go_json_error(exc, raw)}"
            raise unrecognized(rt.kind, detail, raw) from None
        except yaml.YAMLError as exc:
            raise unrecognized(rt.kind, f"couldn't get version/kind; yaml parse error: {exc}", raw) from None

    def _respond(self, result: WriteResult, rt: ResourceType, status: int) -> web.Response:
        return _json(self.api.present(rt, result.obj), status, result.warnings)

    async def _create(self, request: web.Request, target: Target) -> web.Response:
        body, raw = await self._object_body(request, target.rt)
        options = self._options(request)
        body, options.duplicates = _duplicates(body)
        result = self.api.create(target.rt, target.namespace, body, options, raw=raw)
        return self._respond(result, target.rt, 201)

    async def _update(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        body, raw = await self._object_body(request, target.rt)
        options = self._options(request)
        body, options.duplicates = _duplicates(body)
        sub = "" if target.subresource == "finalize" else target.subresource
        result = self.api.update(target.rt, target.namespace or "", target.name, body, sub, options, raw=raw)
        return self._respond(result, target.rt, 200)

    async def _patch(self, request: web.Request, target: Target) -> web.Response:
        assert target.name is not None
        raw = await request.read()
        result = self.api.patch(
            target.rt,
            target.namespace or "",
            target.name,
            request.content_type,
            raw,
            target.subresource,
            self._options(request),
        )
        return self._respond(result, target.rt, 201 if result.created else 200)

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        rt = target.rt
        raw = await request.read()
        try:
            # Protobuf DeleteOptions (helm, typed clients) are taken as defaults: nothing in them is honoured.
            delete_options = json.loads(raw) if raw.strip() and "protobuf" not in request.content_type else {}
        except ValueError:
            raise bad_request("the body of the DeleteOptions could not be decoded") from None
        options = self._options(request)
        if not isinstance(delete_options, dict):
            delete_options = {}
        if delete_options.get("dryRun"):
            options.dry_run = True
        if target.name is None:
            deleted = self.api.delete_collection(rt, target.namespace, self._matcher(request, rt), options)
            meta: JSON = {"resourceVersion": str(self.store.rv)}
            if rt.is_custom:
                meta["continue"] = ""
            return _json(
                {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta, "items": deleted}
            )
        result = self.api.delete(rt, target.namespace or "", target.name, delete_options, options)
        # The API server answers 202 only for a pending deletion with orphanDependents=false.
        code = 202 if not result.deleted and delete_options.get("orphanDependents") is False else 200
        if rt.returns_deleted_object or not result.deleted:
            return _json(self.api.present(rt, result.obj), code)
        meta = result.obj["metadata"]
        details: JSON = {"name": meta["name"], "kind": rt.plural, "uid": meta.get("uid", "")}
        if rt.group:
            details["group"] = rt.group
        return _json(
            {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details},
            code,
        )


# ---- running it ------------------------------------------------------------------------------------


async def start(server: KubeServer, port: int = 0) -> tuple[web.AppRunner, str]:
    """Start serving on 127.0.0.1 and return the runner and the URL."""
    runner = web.AppRunner(server.app(), handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    # aiohttp has no public getter for the bound port of a TCPSite on port 0.
    sockets = getattr(site._server, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    server.address = f"127.0.0.1:{bound}"
    return runner, f"http://127.0.0.1:{bound}"


@dataclass
class KubeEmulator:
    """A running in-process stand-in: its URL, kubeconfig path and the server object."""

    url: str
    kubeconfig: Path
    server: KubeServer
    loop: asyncio.AbstractEventLoop

    def call(self, fn: Any, *args: Any) -> Any:
        """Run a function on the server's loop (the store is not thread-safe) and return its result."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def requests(self) -> list[JSON]:
        return list(self.call(lambda: [dict(e) for e in self.server.requests]))

    def clear_requests(self) -> None:
        self.call(self.server.requests.clear)


@contextlib.contextmanager
def running_kube_emulator(
    crds: str | Path | None = None,
    kubeconfig: str | Path | None = None,
    bookmark_seconds: float = 60.0,
    history: int = 10_000,
    extra_crds: Sequence[JSON] = (),
) -> Iterator[KubeEmulator]:
    """Run the stand-in on a background thread for the duration of a `with` block."""
    ready = threading.Event()
    holder: dict[str, Any] = {}
    loop = asyncio.new_event_loop()

    async def serve() -> None:
        server = KubeServer(load_crds(crds) + list(extra_crds), bookmark_seconds, history)
        runner, url = await start(server)
        holder.update(server=server, runner=runner, url=url)
        stop = asyncio.Event()
        holder["stop"] = stop
        ready.set()
        await stop.wait()
        await runner.cleanup()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # surfaced to the caller below
            holder["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="kube-emulator", daemon=True)
    thread.start()
    ready.wait(30)
    if "error" in holder or "url" not in holder:
        raise RuntimeError(f"the kube stand-in did not start: {holder.get('error')}")
    path = Path(kubeconfig) if kubeconfig else None
    tmp = None
    if path is None:
        import tempfile

        tmp = tempfile.TemporaryDirectory(prefix="kube-emulator-")
        path = Path(tmp.name) / "kubeconfig"
    path.write_text(kubeconfig_text(holder["url"]))
    try:
        yield KubeEmulator(holder["url"], path, holder["server"], loop)
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(10)
        loop.close()
        if tmp is not None:
            tmp.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="q-operator emulate kube", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--crds", help="directory of CustomResourceDefinition YAML files to serve")
    parser.add_argument("--kubeconfig", help="write a kubeconfig pointing at the stand-in here")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="bearer token written into the kubeconfig")
    parser.add_argument("--bookmark-seconds", type=float, default=60.0, help="interval of watch bookmarks")
    parser.add_argument("--history", type=int, default=10_000, help="watch events kept for resuming")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay added to every resource call")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        crds = load_crds(args.crds)
    except (OSError, yaml.YAMLError) as exc:
        print(f"cannot read CRDs from {args.crds}: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(args, crds))
    except OSError as exc:
        print(f"cannot serve on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"cannot load the CRDs from {args.crds}: {exc.message}", file=sys.stderr)
        return 2


async def _serve(args: argparse.Namespace, crds: list[JSON]) -> int:
    server = KubeServer(crds, args.bookmark_seconds, args.history)
    server.faults.latency_ms = args.latency_ms
    runner, url = await start(server, args.port)
    if args.kubeconfig:
        Path(args.kubeconfig).write_text(kubeconfig_text(url, args.token))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {url}", flush=True)
    await stop.wait()
    await runner.cleanup()
    return 0
