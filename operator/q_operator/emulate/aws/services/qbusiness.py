"""qbusiness plugins: asynchronous builds, tags as a list of {key, value}, ARNs per application."""

from __future__ import annotations

import re
import uuid
from typing import Any

from q_operator.emulate.aws.call import Call, Handler, Params
from q_operator.emulate.aws.config import Settings
from q_operator.emulate.aws.errors import conflict, not_found, quota_exceeded
from q_operator.emulate.aws.model import service_model
from q_operator.emulate.aws.services.paging import page
from q_operator.emulate.aws.state import Build, Plugin, Scope

IN_PROGRESS = ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "DELETE_IN_PROGRESS")
CONFIG_MEMBERS = ("displayName", "type", "serverUrl", "authConfiguration", "customPluginConfiguration")


def settle(scope: Scope, now: float) -> None:
    """Finish every build whose time has come: READY, *_FAILED, or gone after a delete."""
    for plugin_id, plugin in list(scope.plugins.items()):
        build = plugin.build
        if build is None or now < build.done_at:
            continue
        plugin.build = None
        if build.fails:
            plugin.build_status = f"{build.kind}_FAILED"
        elif build.kind == "DELETE":
            del scope.plugins[plugin_id]
        else:
            plugin.build_status = "READY"


def _start_build(call: Call, plugin: Plugin, kind: str) -> None:
    plugin.build = Build(
        kind, call.now + call.settings.build_seconds, _build_fails(call.settings, plugin, kind)
    )
    plugin.build_status = f"{kind}_IN_PROGRESS"


def _build_fails(settings: Settings, plugin: Plugin, kind: str) -> bool:
    if kind not in settings.fail_build_kinds:
        return False
    if settings.fail_next_builds > 0:
        settings.fail_next_builds -= 1
        return True
    pattern = settings.fail_builds_matching
    return pattern is not None and re.search(pattern, str(plugin.params.get("displayName", ""))) is not None


def _check_application(call: Call, application_id: str) -> None:
    known = call.settings.known_applications
    if known is not None and application_id not in known:
        raise not_found(application_id, "Application", f"Application {application_id} not found")


def _plugin(call: Call, params: Params) -> Plugin:
    application_id = params["applicationId"]
    _check_application(call, application_id)
    settle(call.scope, call.now)
    plugin = call.scope.plugins.get(params["pluginId"])
    if plugin is None or plugin.application_id != application_id:
        raise not_found(params["pluginId"], "Plugin", f"Plugin {params['pluginId']} not found")
    return plugin


def create_plugin(call: Call, params: Params) -> Params:
    application_id = params["applicationId"]
    _check_application(call, application_id)
    settle(call.scope, call.now)
    count = sum(1 for p in call.scope.plugins.values() if p.application_id == application_id)
    if count >= call.settings.quotas.plugins_per_application:
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
    call.scope.plugins[plugin_id] = plugin
    return {"pluginId": plugin_id, "pluginArn": arn, "buildStatus": plugin.build_status}


def get_plugin(call: Call, params: Params) -> Params:
    plugin = _plugin(call, params)
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


def update_plugin(call: Call, params: Params) -> Params:
    plugin = _plugin(call, params)
    if plugin.build_status in IN_PROGRESS:
        raise conflict(
            plugin.plugin_id,
            "Plugin",
            f"Plugin {plugin.plugin_id} cannot be updated while its build is {plugin.build_status}",
        )
    for key in CONFIG_MEMBERS:
        if params.get(key) is not None:
            plugin.params[key] = params[key]
    if params.get("state") is not None:
        plugin.state = params["state"]
    plugin.updated_at = call.now
    _start_build(call, plugin, "UPDATE")
    return {}


def delete_plugin(call: Call, params: Params) -> Params:
    plugin = _plugin(call, params)
    if plugin.build_status == "DELETE_IN_PROGRESS":
        return {}
    if plugin.build_status in IN_PROGRESS:
        raise conflict(
            plugin.plugin_id,
            "Plugin",
            f"Plugin {plugin.plugin_id} cannot be deleted while its build is {plugin.build_status}",
        )
    _start_build(call, plugin, "DELETE")
    return {}


def list_plugins(call: Call, params: Params) -> Params:
    application_id = params["applicationId"]
    _check_application(call, application_id)
    settle(call.scope, call.now)
    plugins = sorted(
        (p for p in call.scope.plugins.values() if p.application_id == application_id),
        key=lambda p: (p.created_at, p.plugin_id),
    )
    chosen, following = page(plugins, params.get("nextToken"), params.get("maxResults") or 50)
    summaries: list[dict[str, Any]] = [
        {
            "pluginId": p.plugin_id,
            "displayName": p.params.get("displayName"),
            "type": p.params.get("type"),
            "serverUrl": p.params.get("serverUrl"),
            "state": p.state,
            "buildStatus": p.build_status,
            "createdAt": p.created_at,
            "updatedAt": p.updated_at,
        }
        for p in chosen
    ]
    return {"plugins": summaries, "nextToken": following}


def _tagged(call: Call, arn: str) -> Plugin:
    settle(call.scope, call.now)
    for plugin in call.scope.plugins.values():
        if plugin.arn == arn:
            return plugin
    raise not_found(arn, "Plugin", f"Resource {arn} not found")


def tag_resource(call: Call, params: Params) -> Params:
    plugin = _tagged(call, params["resourceARN"])
    plugin.tags.update({t["key"]: t["value"] for t in params["tags"]})
    return {}


def untag_resource(call: Call, params: Params) -> Params:
    plugin = _tagged(call, params["resourceARN"])
    for key in params["tagKeys"]:
        plugin.tags.pop(key, None)
    return {}


def list_tags_for_resource(call: Call, params: Params) -> Params:
    plugin = _tagged(call, params["resourceARN"])
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


def list_plugin_type_metadata(call: Call, params: Params) -> Params:
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
    chosen, following = page(items, params.get("nextToken"), params.get("maxResults") or 50)
    return {"items": chosen, "nextToken": following}


HANDLERS: dict[str, Handler] = {
    "CreatePlugin": create_plugin,
    "GetPlugin": get_plugin,
    "UpdatePlugin": update_plugin,
    "DeletePlugin": delete_plugin,
    "ListPlugins": list_plugins,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListTagsForResource": list_tags_for_resource,
    "ListPluginTypeMetadata": list_plugin_type_metadata,
}
