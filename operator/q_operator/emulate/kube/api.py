"""What the API server does with a request once it is routed: the object life cycle.

Creates, updates, patches and deletes go through one pipeline each, in the API server's order:
prune unknown fields (fieldValidation), reset what the endpoint may not change (status vs. spec),
carry over server-owned metadata, default, validate (schema, CEL, metadata), bump generation, skip
no-op writes, then store with the next resourceVersion. The HTTP layer (server.py) only decodes,
routes and encodes.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from q_operator.emulate.kube import builtins, cel, managed, names, schema
from q_operator.emulate.kube.errors import (
    ApiError,
    FieldError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    forbidden_request,
    go_json_error,
    invalid,
    invalid_object,
    not_found,
    required,
    unrecognized,
    unsupported_media_type,
)
from q_operator.emulate.kube.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_PATCH,
    PatchError,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from q_operator.emulate.kube.resources import CRD_GROUP, Registry, ResourceType
from q_operator.emulate.kube.selectors import Matcher
from q_operator.emulate.kube.store import Store

JSON = dict[str, Any]

# Errors after which the API server does not run CEL rules (their cost estimates assumed a valid object).
_BLOCKING = (
    "FieldValueRequired",
    "FieldValueNotSupported",
    "FieldValueTooLong",
    "FieldValueTooMany",
    "FieldValueTypeInvalid",
)
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_SERVER_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation")
_NAMESPACE_FINALIZER = "kubernetes"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class WriteOptions:
    """Query parameters every write honours."""

    dry_run: bool = False
    field_validation: str = "Warn"
    field_manager: str = ""
    force: bool = False
    user_agent: str = ""
    duplicates: list[str] = field(default_factory=list)  # fields the JSON body named twice

    @property
    def manager(self) -> str:
        """Who a write is recorded for: fieldManager, else the client's User-Agent up to its `/`."""
        return self.field_manager or managed.manager_from_user_agent(self.user_agent)


class StrictDecodingError(ApiError):
    """fieldValidation=Strict refused unknown or duplicate fields; a patch reports it differently."""

    def __init__(self, rt: ResourceType, problems: list[str]) -> None:
        self.detail = "strict decoding error: " + ", ".join(problems)
        super().__init__(
            400,
            "BadRequest",
            f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: {self.detail}',
        )


@dataclass
class WriteResult:
    obj: JSON
    warnings: list[str] = field(default_factory=list)
    created: bool = False
    deleted: bool = False


def _meta(obj: JSON) -> JSON:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta


def _spec_part(rt: ResourceType, obj: JSON) -> JSON:
    skip = {"metadata", "apiVersion", "kind"} | ({"status"} if rt.has_status else set())
    return {k: v for k, v in obj.items() if k not in skip}


def _continue_key(obj: JSON) -> str:
    """Where an object sorts in a paged list: its storage key below the resource's prefix."""
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"/{namespace}/{meta['name']}" if namespace else f"/{meta['name']}"


def _decode_continue(token: str) -> str:
    """The start key of a continue token, or the API server's 400 for a token it cannot read."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, binascii.Error):
        bad = next((i for i, c in enumerate(token) if not (c.isalnum() or c in "-_")), len(token))
        raise bad_request(
            f"invalid continue token: continue key is not valid: illegal base64 data at input byte {bad}"
        ) from None
    try:
        decoded = json.loads(raw.decode("latin-1"))
        start = str(decoded["start"])
    except ValueError as exc:
        detail = go_json_error(exc, raw)
        raise bad_request(f"invalid continue token: continue key is not valid: {detail}") from None
    except (KeyError, TypeError):
        raise bad_request("invalid continue token: continue key is not valid: no start key") from None
    return start.rstrip("\x00")


def _set_by_strategy(rt: ResourceType) -> tuple[str, ...]:
    """Top-level fields a kind's strategy sets after the field manager ran (so nobody owns them)."""
    return ("spec", "status") if rt.key == ("", "namespaces") else ()


def go_value(value: Any) -> str:
    """A decoded JSON value as Go's %+v prints it (maps with sorted keys)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_value(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_value(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _comparable(obj: JSON) -> JSON:
    out = dict(obj)
    out.pop("apiVersion", None)
    meta = dict(out.get("metadata") or {})
    meta.pop("resourceVersion", None)
    out["metadata"] = meta
    return out


class Api:
    """The life cycle of objects of every served resource, on one store."""

    def __init__(self, registry: Registry, store: Store) -> None:
        self.registry = registry
        self.store = store

    # ---- reading ---------------------------------------------------------------------------------

    def present(self, rt: ResourceType, obj: JSON) -> JSON:
        """The object as the requested version shows it (conversion strategy None)."""
        if obj.get("apiVersion") == rt.api_version and obj.get("kind") == rt.kind:
            return obj
        if rt.is_custom and rt.schema is not None:
            # Read through another version: that version's defaults apply, as when decoding from etcd.
            out = copy.deepcopy(obj)
            schema.default_root(rt.schema, out)
        else:
            out = dict(obj)
        out["apiVersion"] = rt.api_version
        out["kind"] = rt.kind
        return out

    def get(self, rt: ResourceType, namespace: str, name: str) -> JSON:
        obj = self.store.get(rt.key, namespace, name)
        if obj is None:
            raise not_found(rt.group_resource, rt.group, rt.plural, name)
        return self.present(rt, obj)

    def list_objects(
        self,
        rt: ResourceType,
        namespace: str | None,
        match: Matcher,
        limit: int = 0,
        cont: str = "",
        selective: bool = False,
    ) -> tuple[list[JSON], str, str, int | None]:
        """Matching objects, the list's resourceVersion, a continue token when limited, and how many
        items remain after this page (None when a selector makes that unknowable, as on a real server)."""
        items = self.store.items(rt.key, namespace)
        rv = str(self.store.rv)
        if cont:
            start = _decode_continue(cont)
            items = [o for o in items if _continue_key(o) > start]
        matched = [o for o in items if match(o)]
        next_token = ""
        remaining: int | None = None
        if limit and len(matched) > limit:
            remaining = None if selective else len(matched) - limit
            matched = matched[:limit]
            token = {"v": "meta.k8s.io/v1", "rv": int(rv), "start": _continue_key(matched[-1]) + "\u0000"}
            raw = json.dumps(token, separators=(",", ":")).encode()
            next_token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        return [self.present(rt, o) for o in matched], rv, next_token, remaining

    # ---- shared checks ---------------------------------------------------------------------------

    def _check_namespace(self, rt: ResourceType, namespace: str, name: str) -> None:
        """The NamespaceLifecycle admission check of a create."""
        if not rt.namespaced:
            return
        ns = self.store.get(("", "namespaces"), "", namespace)
        if ns is None:
            raise not_found("namespaces", "", "namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            detail = f"unable to create new content in namespace {namespace} because it is being terminated"
            error = forbidden_request(
                f'{rt.group_resource} "{name}" is forbidden: {detail}', rt.group, rt.plural, name
            )
            assert error.details is not None
            error.details["causes"] = [
                {"reason": "NamespaceTerminating", "message": detail, "field": "metadata.namespace"}
            ]
            raise error

    def _decode_check(self, rt: ResourceType, body: Any, raw: bytes | None = None) -> JSON:
        shown = raw if raw is not None else json.dumps(body, separators=(",", ":")).encode()
        if not isinstance(body, dict):
            raise unrecognized(rt.kind, "couldn't get version/kind; json parse error: not an object", shown)
        if rt.is_custom:
            # Custom resources are decoded as unstructured objects, which must name their kind.
            for key, label in (("kind", "Kind"), ("apiVersion", "apiVersion")):
                if not body.get(key):
                    detail = f"Object '{label}' is missing in '{shown.decode(errors='replace')}'"
                    raise unrecognized(rt.kind, detail, shown)
        api_version = body.get("apiVersion") or rt.api_version
        kind = body.get("kind") or rt.kind
        if api_version != rt.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})"
            )
        if kind != rt.kind:
            if rt.is_custom:
                # The unstructured decoder takes any kind; ValidateTypeMeta refuses it, naming the body's.
                name = str((body.get("metadata") or {}).get("name") or "")
                error = invalid("kind", kind, f"must be {rt.kind}")
                raise invalid_object(f"{kind}.{rt.group}", rt.group, str(kind), name, [error])
            internal = rt.group.split(".")[0] if rt.group else "core"
            raise bad_request(
                f'{kind} in version "{rt.version}" cannot be handled as a {rt.kind}: converting '
                f"({rt.version}.{kind}) to ({internal}.{rt.kind}): unknown conversion"
            )
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = api_version, kind
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        return obj

    def _prune(self, rt: ResourceType, obj: JSON, options: WriteOptions) -> list[str]:
        """Drop unknown fields; Strict refuses them (and duplicate fields), Warn reports them, Ignore
        drops them silently."""
        unknown = schema.prune_root(rt.schema if rt.is_custom else None, obj)
        if rt.is_custom and rt.schema is not None:
            schema.drop_nulls(rt.schema, obj)
        if rt.top_fields is not None:
            for key in [k for k in obj if k not in (*rt.top_fields, "apiVersion", "kind", "metadata")]:
                unknown.append(key)
                del obj[key]
        if rt.is_custom:
            unknown.sort()
        problems = [f'duplicate field "{d}"' for d in options.duplicates] + [
            f'unknown field "{u}"' for u in unknown
        ]
        if not problems or options.field_validation == "Ignore":
            return []
        if options.field_validation == "Strict":
            raise StrictDecodingError(rt, problems)
        return problems

    def _validate(
        self,
        rt: ResourceType,
        obj: JSON,
        old: JSON | None,
        subresource: str = "",
        warnings: list[str] | None = None,
    ) -> None:
        meta = obj["metadata"]
        name = str(meta.get("name") or "")
        errs: list[FieldError] = list(self._metadata_errors(rt, meta))
        if rt.is_custom:
            if subresource == "status":
                value_errs = schema.validate_status(rt.schema, obj)
            else:
                value_errs = schema.validate_root(rt.schema, obj)
            if old is not None:
                # Validation ratcheting (on by default since 1.30): a value the update leaves as it was
                # is not held against the object, so tightening a schema does not strand old objects.
                value_errs = [e for e in value_errs if not schema.unchanged_at(e, obj, old)]
            errs.extend(value_errs)
            if any(e.reason in _BLOCKING for e in errs):
                errs.append(
                    FieldError(
                        "<nil>",
                        "FieldValueInvalid",
                        "Invalid value: null: some validation rules were not checked because the object "
                        "was invalid; correct the existing errors to complete validation",
                    )
                )
            else:
                errs.extend(cel.check_object(rt.schema, obj, old))
        elif rt.key == (CRD_GROUP, "customresourcedefinitions"):
            errs.extend(self._crd_errors(obj))
        else:
            errs.extend(builtins.errors(rt.key, obj))
        if errs:
            error = invalid_object(rt.group_kind, rt.group, rt.kind, name, errs)
            error.warnings = list(warnings or [])
            raise error

    def _metadata_errors(self, rt: ResourceType, meta: JSON) -> list[FieldError]:
        name = meta.get("name")
        if not name:
            return [required("metadata.name", "name or generateName is required")]
        return names.metadata_errors(meta, name_is_label=rt.key == ("", "namespaces"))

    def _crd_errors(self, crd: JSON) -> list[FieldError]:
        spec = crd.get("spec") or {}
        crd_names = spec.get("names") or {}
        errs: list[FieldError] = []
        for key in ("group", "names", "scope", "versions"):
            if not spec.get(key):
                errs.append(required(f"spec.{key}"))
        for key in ("plural", "kind"):
            if crd_names and not crd_names.get(key):
                errs.append(required(f"spec.names.{key}"))
        versions = spec.get("versions") or []
        schemas = [(v.get("schema") or {}).get("openAPIV3Schema") for v in versions]
        # The internal CRD hoists a schema all versions share to spec.validation, and errors name it so.
        shared = len(schemas) > 0 and all(s == schemas[0] for s in schemas)
        for i, openapi in enumerate(schemas[:1] if shared else schemas):
            where = (
                "spec.validation.openAPIV3Schema" if shared else f"spec.versions[{i}].schema.openAPIV3Schema"
            )
            if isinstance(openapi, dict):
                errs.extend(schema.structural_errors(openapi, where))
                errs.extend(schema.crd_schema_errors(openapi, where))
            else:
                errs.append(required(where, "schemas are required"))
        expected = f"{crd_names.get('plural', '')}.{spec.get('group', '')}"
        name = crd["metadata"].get("name")
        if not errs and name != expected:
            errs.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
        if spec.get("versions") and sum(1 for v in spec["versions"] if v.get("storage")) != 1:
            errs.append(
                invalid("spec.versions", "array", "must have exactly one version marked as storage version")
            )
            if not any(v.get("storage") for v in spec["versions"]):
                errs.append(invalid("status.storedVersions", None, "must have at least one stored version"))
        return errs

    def _set_defaults(self, rt: ResourceType, obj: JSON) -> None:
        builtins.set_defaults(rt.key, obj)
        if rt.is_custom:
            schema.default_root(rt.schema, obj)
        elif rt.key == ("", "secrets"):
            string_data = obj.pop("stringData", None)
            if isinstance(string_data, dict):
                data = obj.setdefault("data", {})
                for key, value in string_data.items():
                    data[key] = base64.b64encode(str(value).encode()).decode()
            if not obj.get("type"):
                obj["type"] = "Opaque"
        elif rt.key == ("", "namespaces"):
            obj.setdefault("spec", {}).setdefault("finalizers", [_NAMESPACE_FINALIZER])
            obj.setdefault("status", {}).setdefault("phase", "Active")
            labels = _meta(obj).setdefault("labels", {})
            labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
        elif rt.key == (CRD_GROUP, "customresourcedefinitions"):
            spec = obj.get("spec") or {}
            names: JSON = spec["names"] if isinstance(spec.get("names"), dict) else {}
            names.setdefault("singular", str(names.get("kind", "")).lower())
            names.setdefault("listKind", f"{names.get('kind', '')}List")
            spec.setdefault("conversion", {"strategy": "None"})
            storage = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]
            # Created without conditions; the CRD controllers accept the names a moment later.
            obj["status"] = {
                "conditions": None,
                "acceptedNames": {"plural": "", "kind": ""},
                "storedVersions": storage,
            }

    def _establish(self, rt: ResourceType, crd: JSON) -> None:
        """What the naming and establishing controllers write right after a CRD is created."""
        established = copy.deepcopy(crd)
        established["status"] = {
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": now(), "reason": r, "message": m}
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
            "acceptedNames": copy.deepcopy((crd.get("spec") or {}).get("names") or {}),
            "storedVersions": crd["status"]["storedVersions"],
        }
        established["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rt.key, established, crd)

    # ---- create ----------------------------------------------------------------------------------

    def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        body: Any,
        options: WriteOptions,
        raw: bytes | None = None,
        owners: list[managed.Entry] | None = None,
    ) -> WriteResult:
        obj = self._decode_check(rt, body, raw)
        builtins.decode_errors(rt.key, rt.version, obj)
        meta = obj["metadata"]
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            namespace = str(body_ns or namespace or "")
            if not namespace:
                raise bad_request("the server could not find the requested resource")
            meta["namespace"] = namespace
            self._check_namespace(rt, namespace, str(meta.get("name") or ""))
        else:
            meta.pop("namespace", None)
            namespace = ""
        warnings = self._prune(rt, obj, options)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(rt, namespace, str(meta["generateName"]))
        if rt.has_status and rt.is_custom:
            obj.pop("status", None)
        sent_owners = managed.entries(obj)
        for key in (*_SERVER_META, "resourceVersion", "managedFields", "selfLink"):
            meta.pop(key, None)
        self._set_defaults(rt, obj)
        self._validate(rt, obj, None, warnings=warnings)
        if rt.is_custom:
            warnings.extend(names.finalizer_warnings(meta.get("finalizers"), None))
        if owners is None:
            owners = managed.update(
                {},
                obj,
                managed.root_schema(rt.schema if rt.is_custom else None),
                sent_owners,
                options.manager,
                rt.api_version,
                "",
                managed.ignore_for("", rt.has_status, _set_by_strategy(rt)),
            )
        if owners:
            meta["managedFields"] = managed.encoded(owners)
        name = str(meta["name"])
        if self.store.get(rt.key, namespace, name) is not None:
            raise already_exists(rt.group_resource, rt.group, rt.plural, name)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if rt.tracks_generation:
            meta["generation"] = 1
        if options.dry_run:
            return WriteResult(obj, warnings, created=True)
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rt.key, obj, None)
        if rt.key == (CRD_GROUP, "customresourcedefinitions"):
            self.registry.add_crd(obj)
            self._establish(rt, obj)
        return WriteResult(obj, warnings, created=True)

    def _generate_name(self, rt: ResourceType, namespace: str, prefix: str) -> str:
        for _ in range(100):
            name = prefix + "".join(random.choice(_GENERATE_ALPHABET) for _ in range(5))
            if self.store.get(rt.key, namespace, name) is None:
                return name
        raise already_exists(rt.group_resource, rt.group, rt.plural, prefix)

    # ---- update (PUT, and every patch after it is applied) ---------------------------------------

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        subresource: str,
        options: WriteOptions,
        from_patch: bool = False,
        raw: bytes | None = None,
        owners: list[managed.Entry] | None = None,
    ) -> WriteResult:
        current = self.store.get(rt.key, namespace, name)
        if current is None:
            raise not_found(rt.group_resource, rt.group, rt.plural, name)
        new = self._decode_check(rt, body, raw)
        builtins.decode_errors(rt.key, rt.version, new)
        meta = new["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        sent_rv = meta.get("resourceVersion")
        old_meta = current["metadata"]
        # managedFields left out of a write keep their value; [{}] clears them; others replace them.
        sent_fields = meta.get("managedFields")
        if sent_fields is None or subresource == "status":
            base_owners = managed.entries(current)
        elif sent_fields == [{}]:
            base_owners = []
        else:
            base_owners = managed.entries(new)
        sent_uid = meta.get("uid")
        if sent_uid and sent_uid != old_meta.get("uid"):
            # A uid in the body is a precondition of the storage layer, which words it its own way.
            where = f"/registry/{rt.group + '/' if rt.is_custom else ''}{rt.plural}/"
            where += f"{namespace}/{name}" if namespace else name
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {rt.group_resource} "{name}": '
                f"StorageError: invalid object, Code: 4, Key: {where}, ResourceVersion: 0, "
                f"AdditionalErrorMsg: Precondition failed: UID in precondition: {sent_uid}, "
                f"UID in object meta: {old_meta.get('uid')}",
                {"name": name, "kind": rt.plural, **({"group": rt.group} if rt.group else {})},
            )
        if sent_rv:
            if str(sent_rv) != old_meta["resourceVersion"]:
                raise conflict(rt.group_resource, rt.group, rt.plural, name)
        elif not from_patch and not rt.unconditional_update:
            # Raised by the storage layer, which names the resource rather than the kind.
            raise invalid_object(
                rt.group_resource,
                rt.group,
                rt.plural,
                name,
                [invalid("metadata.resourceVersion", 0, "must be specified for an update")],
            )
        warnings = self._prune(rt, new, options)
        # The old object as this version reads it (with its defaults), as the API server compares.
        before = self.present(rt, current)
        if subresource == "status":
            status = new.get("status")
            new = copy.deepcopy(before)
            new["apiVersion"] = rt.api_version
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            meta = new["metadata"]
        else:
            if rt.has_status:
                if "status" in current:
                    new["status"] = copy.deepcopy(current["status"])
                else:
                    new.pop("status", None)
            if rt.key == ("", "namespaces"):
                new["spec"] = copy.deepcopy(current.get("spec", {}))
            for key in (*_SERVER_META, "name", "namespace"):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            if old_meta.get("deletionTimestamp"):
                added = [
                    f for f in meta.get("finalizers") or [] if f not in (old_meta.get("finalizers") or [])
                ]
                if added:
                    error = forbidden(
                        "metadata.finalizers",
                        "no new finalizers can be added if the object is being deleted, found new "
                        f"finalizers []string{{{', '.join(json.dumps(f) for f in added)}}}",
                    )
                    # Custom resources meet this check twice (object meta, then the strategy's own).
                    errors = [error, error] if rt.is_custom else [error]
                    raise invalid_object(rt.group_kind, rt.group, rt.kind, name, errors)
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        self._set_defaults(rt, new)
        if rt.key == (CRD_GROUP, "customresourcedefinitions"):
            new["status"] = current.get("status", new.get("status"))
        self._validate(rt, new, before, subresource, warnings=warnings)
        if rt.is_custom and subresource != "status":
            warnings.extend(names.finalizer_warnings(meta.get("finalizers"), old_meta.get("finalizers")))
        if owners is None:
            owners = managed.update(
                before,
                new,
                managed.root_schema(rt.schema if rt.is_custom else None),
                base_owners,
                options.manager,
                rt.api_version,
                subresource,
                managed.ignore_for(subresource, rt.has_status, _set_by_strategy(rt)),
            )
        meta["managedFields"] = managed.encoded(owners)
        if not meta["managedFields"]:
            del meta["managedFields"]
        if rt.tracks_generation and _spec_part(rt, new) != _spec_part(rt, before):
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if _comparable(new) == _comparable(before):
            return WriteResult(before, warnings)
        if options.dry_run:
            return WriteResult(new, warnings)
        meta["resourceVersion"] = str(self.store.next_rv())
        if (
            old_meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not self._ns_finalizers(rt, new)
        ):
            # The object leaves storage as it was stored: the DELETED event still shows the finalizers
            # this update removed, at the update's resourceVersion.
            gone = copy.deepcopy(current)
            gone["metadata"]["resourceVersion"] = meta["resourceVersion"]
            self.store.remove(rt.key, gone, current)
            self._after_removal(rt, gone)
            return WriteResult(new, warnings, deleted=True)
        self.store.put(rt.key, new, current)
        if rt.key == (CRD_GROUP, "customresourcedefinitions"):
            self._crd_changed(new)
        return WriteResult(new, warnings)

    def _ns_finalizers(self, rt: ResourceType, obj: JSON) -> list[str]:
        if rt.key != ("", "namespaces"):
            return []
        return list((obj.get("spec") or {}).get("finalizers") or [])

    # ---- patch -----------------------------------------------------------------------------------

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        subresource: str,
        options: WriteOptions,
    ) -> WriteResult:
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH] + ([STRATEGIC_PATCH] if rt.builtin else [])
        if content_type not in accepted:
            raise unsupported_media_type(content_type, accepted)
        if content_type == APPLY_PATCH and not options.field_manager:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                "is required for apply patch",
                {
                    "group": "meta.k8s.io",
                    "kind": "PatchOptions",
                    "causes": [
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value: is required for apply patch",
                            "field": "fieldManager",
                        }
                    ],
                },
            )
        try:
            patch = yaml.safe_load(raw) if content_type == APPLY_PATCH else json.loads(raw or b"null")
        except (ValueError, yaml.YAMLError) as exc:
            if content_type == APPLY_PATCH:
                raise bad_request(f"error decoding patch: {exc}") from None
            raise bad_request("invalid JSON patch") from None
        if content_type == JSON_PATCH and not isinstance(patch, list):
            kind = "object" if isinstance(patch, dict) else "value"
            raise bad_request(
                f"error decoding patch: json: cannot unmarshal {kind} into Go value of type "
                "[]handlers.jsonPatchOp"
            )
        if content_type in (MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH) and not isinstance(patch, dict):
            kind = "array" if isinstance(patch, list) else "string" if isinstance(patch, str) else "number"
            go_error = f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
            if content_type == APPLY_PATCH:
                go_error = f"error unmarshaling JSON: while decoding JSON: {go_error}"
            raise bad_request(f"error decoding patch: {go_error}")
        manager = options.field_manager
        schema_root = managed.root_schema(rt.schema if rt.is_custom else None)
        ignored = managed.ignore_for(subresource, rt.has_status, _set_by_strategy(rt))
        current = self.store.get(rt.key, namespace, name)
        if current is None:
            if content_type == APPLY_PATCH:
                applied = managed.owned(managed.field_set(patch, schema_root), ignored)
                entry = managed.Entry(manager, "Apply", rt.api_version, subresource, applied, managed.now())
                return self.create(rt, namespace or None, patch, options, owners=[entry])
            raise not_found(rt.group_resource, rt.group, rt.plural, name)
        shown = self.present(rt, current)
        owners: list[managed.Entry] | None = None
        try:
            if content_type == JSON_PATCH:
                patched = json_patch(shown, patch)
            elif content_type == STRATEGIC_PATCH:
                patched = strategic_merge_patch(shown, patch)
            elif content_type == APPLY_PATCH:
                patched, owners = managed.apply(
                    shown,
                    patch,
                    schema_root,
                    managed.entries(current),
                    manager,
                    rt.api_version,
                    subresource,
                    ignored,
                    options.force,
                )
                patched["metadata"]["managedFields"] = managed.encoded(owners)
            else:
                patched = merge_patch(shown, patch)
        except PatchError:
            # The JSON patch library's failures reach the client without their detail.
            raise ApiError(
                422, "Invalid", "the server rejected our request due to an error in our request", {}
            ) from None
        try:
            return self.update(
                rt, namespace, name, patched, subresource, options, from_patch=True, owners=owners
            )
        except StrictDecodingError as exc:
            if content_type == APPLY_PATCH:
                raise
            # The patch handler names the patched object (JSON and merge patches) or the patch itself
            # (strategic merge patch, printed as a Go map) as the invalid value.
            if content_type == STRATEGIC_PATCH:
                shown_value = go_value(patch)
            else:
                shown_value = json.dumps(patched, sort_keys=True, separators=(",", ":"))
            detail = f"Invalid value: {json.dumps(shown_value)}: {exc.detail}"
            raise ApiError(
                422,
                "Invalid",
                f' "" is invalid: patch: {detail}',
                {"causes": [{"reason": "FieldValueInvalid", "message": detail, "field": "patch"}]},
            ) from None

    # ---- delete ----------------------------------------------------------------------------------

    def delete(
        self, rt: ResourceType, namespace: str, name: str, delete_options: JSON, options: WriteOptions
    ) -> WriteResult:
        current = self.store.get(rt.key, namespace, name)
        if current is None:
            raise not_found(rt.group_resource, rt.group, rt.plural, name)
        preconditions = delete_options.get("preconditions") or {}
        meta = current["metadata"]
        details = {"name": name, "kind": rt.kind, **({"group": rt.group} if rt.group else {})}
        prefix = f'Operation cannot be fulfilled on {rt.group_kind} "{name}"'
        if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
            raise ApiError(
                409,
                "Conflict",
                f"{prefix}: the UID in the precondition ({preconditions['uid']}) does not match the UID in "
                f"record ({meta.get('uid')}). The object might have been deleted and then recreated",
                details,
            )
        wanted_rv = preconditions.get("resourceVersion")
        if wanted_rv and wanted_rv != meta["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f"{prefix}: the ResourceVersion in the precondition ({wanted_rv}) does not match the "
                f"ResourceVersion in record ({meta['resourceVersion']}). The object might have been modified",
                details,
            )
        policy = delete_options.get("propagationPolicy")
        cascade = (
            "foregroundDeletion"
            if policy == "Foreground"
            else "orphan"
            if policy == "Orphan" or delete_options.get("orphanDependents") is True
            else None
        )
        if meta.get("finalizers") or self._ns_finalizers(rt, current) or cascade:
            if meta.get("deletionTimestamp"):
                return WriteResult(self.present(rt, current))
            new = copy.deepcopy(current)
            new_meta = new["metadata"]
            new_meta["deletionTimestamp"] = now()
            new_meta["deletionGracePeriodSeconds"] = 0
            if cascade and cascade not in (new_meta.get("finalizers") or []):
                new_meta["finalizers"] = [*(new_meta.get("finalizers") or []), cascade]
            if new_meta.get("generation"):
                # Graceful deletion is a change of the desired state: generation moves, as a real server does.
                new_meta["generation"] = int(new_meta["generation"]) + 1
            if rt.key == ("", "namespaces"):
                new["status"] = {"phase": "Terminating"}
            if options.dry_run:
                return WriteResult(self.present(rt, new))
            new_meta["resourceVersion"] = str(self.store.next_rv())
            self.store.put(rt.key, new, current)
            if rt.key == ("", "namespaces"):
                self._empty_namespace(name)
                return WriteResult(self.present(rt, self.store.get(rt.key, "", name) or new))
            if cascade:
                self._collect_garbage(rt, new)
            return WriteResult(self.present(rt, new))
        if options.dry_run:
            return WriteResult(self.present(rt, current), deleted=True)
        return WriteResult(self.present(rt, self._remove(rt, current)), deleted=True)

    def _collect_garbage(self, rt: ResourceType, obj: JSON) -> None:
        """The garbage collector's part for an object with no dependents (ownerReferences do not
        cascade here): its orphan or foregroundDeletion finalizer goes at once, after the answer."""
        meta = obj["metadata"]
        rest = [f for f in meta.get("finalizers") or [] if f not in ("orphan", "foregroundDeletion")]
        final = copy.deepcopy(obj)
        final["metadata"]["resourceVersion"] = str(self.store.next_rv())
        if rest:
            final["metadata"]["finalizers"] = rest
            self.store.put(rt.key, final, obj)
        else:
            final["metadata"].pop("finalizers", None)
            self.store.remove(rt.key, final, obj)
            self._after_removal(rt, final)

    def _remove(self, rt: ResourceType, current: JSON) -> JSON:
        gone = copy.deepcopy(current)
        gone["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.remove(rt.key, gone, current)
        self._after_removal(rt, gone)
        return gone

    def delete_collection(
        self, rt: ResourceType, namespace: str | None, match: Matcher, options: WriteOptions
    ) -> list[JSON]:
        deleted = []
        for obj in self.store.items(rt.key, namespace):
            if match(obj):
                meta = obj["metadata"]
                self.delete(rt, meta.get("namespace", ""), meta["name"], {}, options)
                # The answer lists the objects as they were listed, before the deletion marked them.
                deleted.append(self.present(rt, obj))
        return deleted

    # ---- cascades: namespaces and CRDs -----------------------------------------------------------

    def _after_removal(self, rt: ResourceType, obj: JSON) -> None:
        if rt.key == (CRD_GROUP, "customresourcedefinitions"):
            self._crd_removed(obj)
        namespace = obj["metadata"].get("namespace")
        if namespace:
            ns = self.store.get(("", "namespaces"), "", namespace)
            if ns is not None and ns["metadata"].get("deletionTimestamp"):
                self._finish_namespace(ns)

    def _namespaced_contents(self, namespace: str) -> list[tuple[ResourceType, JSON]]:
        out: list[tuple[ResourceType, JSON]] = []
        for key in self.store.namespaced_keys():
            rt = self._type_for_key(key)
            if rt is None or not rt.namespaced:
                continue
            out.extend((rt, obj) for obj in self.store.items(key, namespace))
        return out

    def _type_for_key(self, key: tuple[str, str]) -> ResourceType | None:
        return self.registry.storage_type(key)

    def _empty_namespace(self, namespace: str) -> None:
        """The namespace controller: delete everything inside (finalizers honoured), then the namespace."""
        for rt, obj in self._namespaced_contents(namespace):
            if self.store.get(rt.key, namespace, obj["metadata"]["name"]) is not None:
                self.delete(rt, namespace, obj["metadata"]["name"], {}, WriteOptions())
        ns = self.store.get(("", "namespaces"), "", namespace)
        if ns is not None:
            self._finish_namespace(ns)

    def _finish_namespace(self, ns: JSON) -> None:
        name = ns["metadata"]["name"]
        if self._namespaced_contents(name):
            return
        rt = self.registry.lookup("", "v1", "namespaces")
        assert rt is not None
        final = copy.deepcopy(ns)
        final["spec"] = {"finalizers": []}
        if ns["metadata"].get("finalizers"):
            final["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.put(rt.key, final, ns)
            return
        self._remove(rt, final)

    def _crd_changed(self, crd: JSON) -> None:
        """Serve the new versions and re-default stored objects (the API server defaults on read)."""
        types = self.registry.add_crd(crd)
        if not types:
            return
        storage = self.registry.storage_type(types[0].key)
        bucket = self.store.objects.get(types[0].key, {})
        if storage is None or storage.schema is None:
            return
        for key, obj in list(bucket.items()):
            defaulted = copy.deepcopy(obj)
            schema.default_root(storage.schema, defaulted)
            bucket[key] = defaulted

    def _crd_removed(self, crd: JSON) -> None:
        """Deleting a CRD deletes its objects at once (finalizers are not waited for) and stops serving it."""
        name = crd["metadata"]["name"]
        types = self.registry.crd_types.get(name, [])
        if types:
            key = types[0].key
            for obj in self.store.items(key):
                gone = copy.deepcopy(obj)
                gone["metadata"]["resourceVersion"] = str(self.store.next_rv())
                self.store.remove(key, gone, obj)
            self.store.close_watchers(key)
            self.store.drop_resource(key)
        self.registry.remove_crd(name)

    # ---- bootstrap -------------------------------------------------------------------------------

    def bootstrap(self, crds: list[JSON]) -> None:
        """Create the default namespaces and the CRDs given on the command line."""
        ns_type = self.registry.lookup("", "v1", "namespaces")
        crd_type = self.registry.lookup(CRD_GROUP, "v1", "customresourcedefinitions")
        assert ns_type is not None and crd_type is not None
        for name in ("default", "kube-system"):
            self.create(ns_type, None, {"metadata": {"name": name}}, WriteOptions())
        for crd in crds:
            self.create(crd_type, None, crd, WriteOptions())
