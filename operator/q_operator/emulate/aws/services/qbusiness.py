"""qbusiness plugins: asynchronous builds, tags as a list of {key, value}, ARNs per application."""

from __future__ import annotations

import dataclasses
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from q_operator.emulate.aws.call import Call, Params, Service
from q_operator.emulate.aws.config import (
    Flag,
    Knobs,
    known_flag,
    names_or_any,
    number,
    optional_text,
    sequence,
)
from q_operator.emulate.aws.errors import conflict, not_found, quota_exceeded
from q_operator.emulate.aws.model import service_model
from q_operator.emulate.aws.services.paging import page
from q_operator.emulate.aws.state import Table

IN_PROGRESS = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS")
BUILD_KINDS = ("CREATE", "UPDATE", "DELETE")
CONFIG_MEMBERS = ("displayName", "type", "serverUrl", "authConfiguration", "customPluginConfiguration")


def _build_kinds(value: Any) -> list[str]:
    kinds = [str(k).upper() for k in sequence(value)]
    if any(k not in BUILD_KINDS for k in kinds):
        raise ValueError(f"kinds must be among {BUILD_KINDS}")
    return kinds


@dataclass
class QBusinessKnobs(Knobs):
    """qbusiness's settings: how builds go, which applications exist, the plugin quota."""

    build_seconds: float = 2.0
    fail_builds_matching: str | None = None
    """Plugin builds whose displayName matches this regex (search) end *_FAILED."""
    fail_next_builds: int = 0
    fail_build_kinds: list[str] = field(default_factory=lambda: list(BUILD_KINDS))
    known_applications: set[str] | None = None
    plugins_per_application: int = 25
    """AWS's published default quota (Amazon Q Business: 25 plugins per application)."""

    PARSE = {
        "build_seconds": number,
        "fail_builds_matching": optional_text,
        "fail_next_builds": int,
        "fail_build_kinds": _build_kinds,
        "known_applications": names_or_any,
    }
    QUOTAS = ("plugins_per_application",)
    FLAGS = (
        Flag("--build-seconds", "build_seconds", "how long a plugin build takes", type=float),
        Flag("--fail-builds-matching", "fail_builds_matching", "regex: matching plugin builds fail"),
        known_flag("applications"),
        Flag(
            "--plugins-per-application",
            "quotas.plugins_per_application",
            "plugin quota (default 25)",
            type=int,
            metavar="N",
        ),
    )


@dataclass
class Build:
    """A plugin build in flight: CREATE, UPDATE or DELETE, when it ends and whether it fails."""

    kind: str
    done_at: float
    fails: bool


@dataclass
class Plugin:
    application_id: str
    plugin_id: str
    arn: str
    params: dict[str, Any]
    """The plugin's current configuration as API members (displayName, type, serverUrl, ...)."""
    build_status: str
    state: str
    created_at: float
    updated_at: float
    """Moved by CreatePlugin and UpdatePlugin only (not by builds ending, tags or DeletePlugin)."""
    tags: dict[str, str] = field(default_factory=dict)
    build: Build | None = None


def settle(plugin: Plugin, now: float) -> bool:
    """Finish the plugin's build if its time has come (READY, *_FAILED); False once deleted."""
    build = plugin.build
    if build is None or now < build.done_at:
        return True
    plugin.build = None
    if build.fails:
        plugin.build_status = f"{build.kind}_FAILED"
        return True
    if build.kind == "DELETE":
        return False
    plugin.build_status = "READY"
    return True


@dataclass
class Backend:
    """The plugins of one account in one region, by pluginId (unique across applications)."""

    plugins: Table[Plugin] = field(
        default_factory=lambda: Table(settle=settle, group=lambda p: p.application_id)
    )


QCall = Call[Backend, QBusinessKnobs]


def _start_build(call: QCall, plugin: Plugin, kind: str) -> None:
    plugin.build = Build(kind, call.now + call.knobs.build_seconds, _build_fails(call.knobs, plugin, kind))
    plugin.build_status = f"{kind}_IN_PROGRESS"


def _build_fails(knobs: QBusinessKnobs, plugin: Plugin, kind: str) -> bool:
    if kind not in knobs.fail_build_kinds:
        return False
    if knobs.fail_next_builds > 0:
        knobs.fail_next_builds -= 1
        return True
    pattern = knobs.fail_builds_matching
    return pattern is not None and re.search(pattern, str(plugin.params.get("displayName", ""))) is not None


def _check_application(call: QCall, application_id: str) -> None:
    known = call.knobs.known_applications
    if known is not None and application_id not in known:
        raise not_found(application_id, "Application", f"Application {application_id} not found")


def _missing(plugin_id: str) -> Exception:
    return not_found(plugin_id, "Plugin", f"Plugin {plugin_id} not found")


def _read(call: QCall, params: Params) -> Plugin:
    """The plugin as a read sees it (read lag applies)."""
    _check_application(call, params["applicationId"])
    plugin = call.backend.plugins.read(params["pluginId"], call.view)
    if plugin is None or plugin.application_id != params["applicationId"]:
        raise _missing(params["pluginId"])
    return plugin


def _primary(call: QCall, params: Params) -> Plugin:
    """The plugin as a write acts on it (the primary copy, never lagging)."""
    _check_application(call, params["applicationId"])
    plugin = call.backend.plugins.get(params["pluginId"], call.now)
    if plugin is None or plugin.application_id != params["applicationId"]:
        raise _missing(params["pluginId"])
    return plugin


def create_plugin(call: QCall, params: Params) -> Params:
    application_id = params["applicationId"]
    _check_application(call, application_id)
    count = call.backend.plugins.count(call.now, application_id)
    if count >= call.knobs.plugins_per_application:
        raise quota_exceeded(
            application_id, "Plugin", f"Plugin quota of {count} reached for application {application_id}"
        )
    plugin_id = str(uuid.uuid4())
    arn = f"arn:aws:qbusiness:{call.region}:{call.account}:application/{application_id}/plugin/{plugin_id}"
    plugin = Plugin(
        application_id=application_id,
        plugin_id=plugin_id,
        arn=arn,
        params={k: params[k] for k in CONFIG_MEMBERS if params.get(k) is not None},
        build_status="CREATE_IN_PROGRESS",
        state="ENABLED",
        created_at=call.now,
        updated_at=call.now,
        tags={t["key"]: t["value"] for t in params.get("tags") or []},
    )
    _start_build(call, plugin, "CREATE")
    call.backend.plugins.create(plugin_id, plugin, call.view)
    return {"pluginId": plugin_id, "pluginArn": arn, "buildStatus": plugin.build_status}


def get_plugin(call: QCall, params: Params) -> Params:
    plugin = _read(call, params)
    return {
        **plugin.params,
        "applicationId": plugin.application_id,
        "pluginId": plugin.plugin_id,
        "pluginArn": plugin.arn,
        "buildStatus": plugin.build_status,
        "state": plugin.state,
        "createdAt": plugin.created_at,
        "updatedAt": plugin.updated_at,
    }


def update_plugin(call: QCall, params: Params) -> Params:
    plugin = _primary(call, params)
    if plugin.build_status in IN_PROGRESS:
        raise conflict(
            plugin.plugin_id,
            "Plugin",
            f"Plugin {plugin.plugin_id} cannot be updated while its build is {plugin.build_status}",
        )
    plugin = call.backend.plugins.edit(plugin.plugin_id, call.view)
    for key in CONFIG_MEMBERS:
        if params.get(key) is not None:
            plugin.params[key] = params[key]
    if params.get("state") is not None:
        plugin.state = params["state"]
    plugin.updated_at = call.now
    _start_build(call, plugin, "UPDATE")
    return {}


def delete_plugin(call: QCall, params: Params) -> Params:
    plugin = _primary(call, params)
    if plugin.build_status == "DELETE_IN_PROGRESS":
        return {}
    if plugin.build_status in IN_PROGRESS:
        raise conflict(
            plugin.plugin_id,
            "Plugin",
            f"Plugin {plugin.plugin_id} cannot be deleted while its build is {plugin.build_status}",
        )
    _start_build(call, call.backend.plugins.edit(plugin.plugin_id, call.view), "DELETE")
    return {}


def _summary(plugin: Plugin) -> Params:
    """The model's `Plugin` list member: no ARN, no auth configuration, no tags."""
    return {
        "pluginId": plugin.plugin_id,
        "displayName": plugin.params.get("displayName"),
        "type": plugin.params.get("type"),
        "serverUrl": plugin.params.get("serverUrl"),
        "state": plugin.state,
        "buildStatus": plugin.build_status,
        "createdAt": plugin.created_at,
        "updatedAt": plugin.updated_at,
    }


def list_plugins(call: QCall, params: Params) -> Params:
    application_id = params["applicationId"]
    _check_application(call, application_id)
    entries = call.backend.plugins.read_all(call.view, application_id)
    chosen, following = page(entries, params.get("nextToken"), params.get("maxResults") or 50)
    return {"plugins": [_summary(p) for p in chosen], "nextToken": following}


def _plugin_id_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _tagged(call: QCall, arn: str, *, read: bool) -> Plugin:
    call.own_arn(arn)
    table = call.backend.plugins
    key = _plugin_id_of(arn)
    plugin = table.read(key, call.view) if read else table.get(key, call.now)
    if plugin is None or plugin.arn != arn:
        raise not_found(arn, "Plugin", f"Resource {arn} not found")
    return plugin


def tag_resource(call: QCall, params: Params) -> Params:
    plugin = call.backend.plugins.edit(_tagged(call, params["resourceARN"], read=False).plugin_id, call.view)
    plugin.tags.update({t["key"]: t["value"] for t in params["tags"]})
    return {}


def untag_resource(call: QCall, params: Params) -> Params:
    plugin = call.backend.plugins.edit(_tagged(call, params["resourceARN"], read=False).plugin_id, call.view)
    for key in params["tagKeys"]:
        plugin.tags.pop(key, None)
    return {}


def list_tags_for_resource(call: QCall, params: Params) -> Params:
    plugin = _tagged(call, params["resourceARN"], read=True)
    return {"tags": [{"key": k, "value": v} for k, v in plugin.tags.items()]}


PLUGIN_TYPE_CATEGORIES = {
    "SALESFORCE": "Customer relationship management (CRM)",
    "SALESFORCE_CRM": "Customer relationship management (CRM)",
    "JIRA": "Project management",
    "JIRA_CLOUD": "Project management",
    "ASANA": "Project management",
    "SMARTSHEET": "Project management",
    "MICROSOFT_TEAMS": "Communication",
    "MICROSOFT_EXCHANGE": "Communication",
    "SERVICE_NOW": "Ticketing and incident management",
    "SERVICENOW_NOW_PLATFORM": "Ticketing and incident management",
    "ZENDESK": "Ticketing and incident management",
    "ZENDESK_SUITE": "Ticketing and incident management",
    "PAGERDUTY_ADVANCE": "Ticketing and incident management",
}
"""Plugin type -> its category; types not named here (CUSTOM, QUICKSIGHT, ...) are Productivity."""


def list_plugin_type_metadata(call: QCall, params: Params) -> Params:
    """Every PluginType of the model, so new types show up here with no code change."""
    types = service_model("qbusiness").shape_for("PluginType").enum
    items = [
        {
            "type": t,
            "category": PLUGIN_TYPE_CATEGORIES.get(t, "Productivity"),
            "description": f"{t.replace('_', ' ').title()} plugin (emulated metadata)",
        }
        for t in types
    ]
    chosen, following = page(
        list(enumerate(items, 1)), params.get("nextToken"), params.get("maxResults") or 50
    )
    return {"items": chosen, "nextToken": following}


def dump(backend: Backend, now: float) -> dict[str, Any]:
    return {"plugins": [dataclasses.asdict(p) for p in backend.plugins.values(now, every=True)]}


SERVICE = Service[Backend, QBusinessKnobs](
    name="qbusiness",
    backend=Backend,
    knobs=QBusinessKnobs,
    dump=dump,
    handlers={
        "CreatePlugin": create_plugin,
        "GetPlugin": get_plugin,
        "UpdatePlugin": update_plugin,
        "DeletePlugin": delete_plugin,
        "ListPlugins": list_plugins,
        "TagResource": tag_resource,
        "UntagResource": untag_resource,
        "ListTagsForResource": list_tags_for_resource,
        "ListPluginTypeMetadata": list_plugin_type_metadata,
    },
)
