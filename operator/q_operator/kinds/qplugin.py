"""QPlugin: an Amazon Q Business plugin (qbusiness CreatePlugin/GetPlugin/UpdatePlugin/DeletePlugin).

The models carry every constraint of botocore's qbusiness model (anchored patterns, lengths, enums,
unions of exactly one member) so that the generated CRD refuses bad input at apply time; the rules
that span fields are written twice, as pydantic validators and as CEL `x-kubernetes-validations`,
and tests/unit/test_qplugin_cross_field_rules.py judges the same cases by both.
The adapter is a thin translation of the plugin API; the engine decides when to call it.

The OpenAPI payload is sensitive: it is held as a `SecretStr`, never logged, never put in status,
events or messages. AWS may not echo it back, so the adapter records its SHA-256 in a tag it owns
(`PAYLOAD_HASH_TAG`) to notice when the desired payload (inline or from a ConfigMap) changed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

from botocore.exceptions import ClientError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from q_operator.kinds.base import (
    OWNER_TAG,
    ClientToken,
    CommonSpec,
    CommonStatus,
    Created,
    ExternalRef,
    Found,
    KindInfo,
    NotFoundError,
    Observation,
    Owner,
    Page,
    PassRole,
    Phase,
    PrinterColumn,
    Resolved,
    Summary,
)
from q_operator.kinds.common import (
    MAX_TAG_VALUE,
    absent_if_not_found,
    aws_time,
    is_not_found,
    not_found_as,
    owner_tag_value,
    refuse_reserved_tag_keys,
    reserved_tag_key_rule,
    seen_owner_mark,
    tag_changes,
    tag_key_length_rule,
    user_tags,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------------
# Constraints, as botocore's qbusiness model has them (patterns anchored: AWS matches whole values).

APPLICATION_ID_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9-]{35}$"
PLUGIN_NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$"
URL_PATTERN = r"^(https?|ftp|file)://([^\s]*)$"
ARN_PATTERN = r"^arn:[a-z0-9-\.]{1,63}:[a-z0-9-\.]{0,63}:[a-z0-9-\.]{0,63}:[a-z0-9-\.]{0,63}:[^/].{0,1023}$"
IDC_APPLICATION_ARN_PATTERN = (
    r"^arn:[a-z0-9-\.]{1,63}:sso::\d{12}:application/(sso)?ins-[a-zA-Z0-9-.]{16}/apl-[a-zA-Z0-9]{16}$"
)
S3_BUCKET_PATTERN = r"^[a-z0-9][\.\-a-z0-9]{1,61}[a-z0-9]$"
# Kubernetes names: a ConfigMap name is a DNS subdomain, a key is [-._a-zA-Z0-9]+.
CONFIGMAP_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
CONFIGMAP_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"

PluginType = Literal[
    "SERVICE_NOW",
    "SALESFORCE",
    "JIRA",
    "ZENDESK",
    "CUSTOM",
    "QUICKSIGHT",
    "SERVICENOW_NOW_PLATFORM",
    "JIRA_CLOUD",
    "SALESFORCE_CRM",
    "ZENDESK_SUITE",
    "ATLASSIAN_CONFLUENCE",
    "GOOGLE_CALENDAR",
    "MICROSOFT_TEAMS",
    "MICROSOFT_EXCHANGE",
    "PAGERDUTY_ADVANCE",
    "SMARTSHEET",
    "ASANA",
]
PluginState = Literal["ENABLED", "DISABLED"]

#: Built-in plugins that act on one tenant of a SaaS product: AWS must be told which tenant, so
#: `serverUrl` (the tenant's URL, e.g. https://example.atlassian.net) is required. The other built-in
#: types (QUICKSIGHT, GOOGLE_CALENDAR, MICROSOFT_TEAMS, MICROSOFT_EXCHANGE, PAGERDUTY_ADVANCE,
#: SMARTSHEET, ASANA) talk to a fixed or AWS-side endpoint; AWS decides whether they need one.
SERVER_URL_TYPES: tuple[str, ...] = (
    "SERVICE_NOW",
    "SALESFORCE",
    "JIRA",
    "ZENDESK",
    "SERVICENOW_NOW_PLATFORM",
    "JIRA_CLOUD",
    "SALESFORCE_CRM",
    "ZENDESK_SUITE",
    "ATLASSIAN_CONFLUENCE",
)

#: The SHA-256 of the OpenAPI payload last sent to AWS (AWS need not echo a sensitive payload back).
PAYLOAD_HASH_TAG = "q-operator.dev/payload-sha256"
#: AWS allows 200 tags; the operator keeps two of its own (owner and payload hash).
MAX_USER_TAGS = 198

#: The spec path whose ConfigMap value the engine resolves into `Resolved.values`.
PAYLOAD_FROM_PATH = "customPluginConfiguration.apiSchema.payloadFrom"

Arn = Annotated[str, StringConstraints(min_length=0, max_length=1284, pattern=ARN_PATTERN)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=URL_PATTERN)]
TAG_KEY_MAX = 128
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=TAG_KEY_MAX)]
#: CEL rules on spec.tags (map keys cannot carry constraints in a structural schema); the model checks
#: the same through TagKey and `refuse_reserved_tag_keys`.
TAG_RULES: tuple[dict[str, str], ...] = (tag_key_length_rule(TAG_KEY_MAX), reserved_tag_key_rule())
TagValue = Annotated[str, StringConstraints(min_length=0, max_length=MAX_TAG_VALUE)]


def _cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One x-kubernetes-validations entry."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def _exactly_one_rule(members: tuple[str, ...]) -> str:
    return " + ".join(f"(has(self.{m}) ? 1 : 0)" for m in members) + " == 1"


def _count_set(model: BaseModel, members: tuple[str, ...]) -> int:
    return sum(1 for m in members if getattr(model, m) is not None)


class _Strict(BaseModel):
    # hide_input_in_errors: a validation error must not quote the input (it may hold the payload).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, hide_input_in_errors=True)


# ---------------------------------------------------------------------------------------------------
# Spec


class BasicAuthConfiguration(_Strict):
    """Basic authentication: the user name and password live in a Secrets Manager secret."""

    secretArn: Arn = Field(
        description="ARN of the Secrets Manager secret that holds the basic authentication credentials."
    )
    roleArn: Arn = Field(
        description="ARN of the IAM role Amazon Q Business assumes to read the secret (secretArn)."
    )


class OAuth2ClientCredentialConfiguration(_Strict):
    """OAuth 2.0: the client credentials live in a Secrets Manager secret."""

    secretArn: Arn = Field(
        description="ARN of the Secrets Manager secret that holds the OAuth 2.0 credentials."
    )
    roleArn: Arn = Field(
        description="ARN of the IAM role Amazon Q Business assumes to read the secret (secretArn)."
    )
    authorizationUrl: Url | None = Field(
        default=None,
        description="OAuth 2.0 authorization URL Amazon Q Business sends a plugin user to "
        "(third-party authentication server).",
    )
    tokenUrl: Url | None = Field(
        default=None,
        description="OAuth 2.0 token URL where an authorization code is exchanged for an access token.",
    )


class NoAuthConfiguration(_Strict):
    """No authentication: only for CUSTOM plugins whose API needs none. Written as `{}`."""


class IdcAuthConfiguration(_Strict):
    """Authentication through an IAM Identity Center application."""

    idcApplicationArn: str = Field(
        min_length=10,
        max_length=1224,
        pattern=IDC_APPLICATION_ARN_PATTERN,
        description="ARN of the IAM Identity Center application used for authentication.",
    )
    roleArn: Arn = Field(description="ARN of the IAM role Amazon Q Business assumes on your behalf.")


AUTH_MEMBERS = (
    "basicAuthConfiguration",
    "oAuth2ClientCredentialConfiguration",
    "noAuthConfiguration",
    "idcAuthConfiguration",
)


class PluginAuthConfiguration(_Strict):
    """How Amazon Q Business authenticates to the plugin's API. Exactly one member must be set."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        hide_input_in_errors=True,
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    _exactly_one_rule(AUTH_MEMBERS),
                    "spec.authConfiguration must set exactly one of basicAuthConfiguration, "
                    "oAuth2ClientCredentialConfiguration, noAuthConfiguration, idcAuthConfiguration",
                )
            ]
        },
    )

    basicAuthConfiguration: BasicAuthConfiguration | None = Field(
        default=None, description="Basic authentication with credentials in Secrets Manager."
    )
    oAuth2ClientCredentialConfiguration: OAuth2ClientCredentialConfiguration | None = Field(
        default=None, description="OAuth 2.0 client credentials in Secrets Manager."
    )
    noAuthConfiguration: NoAuthConfiguration | None = Field(
        default=None, description="No authentication (CUSTOM plugins only). Write `{}`."
    )
    idcAuthConfiguration: IdcAuthConfiguration | None = Field(
        default=None, description="IAM Identity Center application authentication."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> PluginAuthConfiguration:
        if _count_set(self, AUTH_MEMBERS) != 1:
            raise ValueError(
                "spec.authConfiguration must set exactly one of basicAuthConfiguration, "
                "oAuth2ClientCredentialConfiguration, noAuthConfiguration, idcAuthConfiguration"
            )
        return self

    def to_api(self) -> dict[str, Any]:
        """The PluginAuthConfiguration union as the API takes it (`noAuthConfiguration: {}`)."""
        return self.model_dump(exclude_none=True)


class ConfigMapKeySelector(_Strict):
    """A key of a ConfigMap in the object's namespace."""

    name: str = Field(
        min_length=1, max_length=253, pattern=CONFIGMAP_NAME_PATTERN, description="Name of the ConfigMap."
    )
    key: str = Field(
        min_length=1, max_length=253, pattern=CONFIGMAP_KEY_PATTERN, description="Key within the ConfigMap."
    )


class PayloadSource(_Strict):
    """Where to read the OpenAPI document from, instead of writing it inline."""

    configMapKeyRef: ConfigMapKeySelector = Field(
        description="The ConfigMap key (same namespace) that holds the OpenAPI document. A change to it "
        "is sent to AWS."
    )


class S3Location(_Strict):
    """An object in Amazon S3."""

    bucket: str = Field(
        min_length=1, max_length=63, pattern=S3_BUCKET_PATTERN, description="Name of the S3 bucket."
    )
    key: str = Field(min_length=1, max_length=1024, description="Key of the S3 object (the file name).")


API_SCHEMA_MEMBERS = ("payload", "payloadFrom", "s3")


class APISchema(_Strict):
    """The OpenAPI document of a custom plugin. Exactly one of payload, payloadFrom, s3."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        hide_input_in_errors=True,
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    _exactly_one_rule(API_SCHEMA_MEMBERS),
                    "spec.customPluginConfiguration.apiSchema must set exactly one of payload, "
                    "payloadFrom, s3",
                )
            ]
        },
    )

    payload: SecretStr | None = Field(
        default=None,
        description="The OpenAPI document (JSON or YAML), inline. Sensitive: never logged, never in status.",
    )
    payloadFrom: PayloadSource | None = Field(
        default=None, description="Read the OpenAPI document from a ConfigMap key in the same namespace."
    )
    s3: S3Location | None = Field(
        default=None,
        description="The S3 object that holds the OpenAPI document. Changes to the object's content are "
        "not noticed; change the key to roll out a new document.",
    )

    @field_serializer("payload", when_used="json")
    def _payload_digest(self, payload: SecretStr | None) -> str | None:
        """In JSON dumps the payload is its digest: nothing leaks, yet a changed document changes the
        dump (the engine derives the create's idempotency token from it)."""
        return None if payload is None else f"sha256:{payload_hash(payload.get_secret_value())}"

    @model_validator(mode="after")
    def _exactly_one(self) -> APISchema:
        if _count_set(self, API_SCHEMA_MEMBERS) != 1:
            raise ValueError(
                "spec.customPluginConfiguration.apiSchema must set exactly one of payload, payloadFrom, s3"
            )
        return self


class CustomPluginConfiguration(_Strict):
    """The configuration of a CUSTOM plugin: a description and an OpenAPI v3 document."""

    description: str = Field(
        min_length=1, max_length=200, description="What the plugin does; Amazon Q uses it to pick the plugin."
    )
    apiSchemaType: Literal["OPEN_API_V3"] = Field(description="Type of the API schema: OPEN_API_V3.")
    apiSchema: APISchema = Field(
        description="The OpenAPI document: inline (payload), from a ConfigMap (payloadFrom) or in S3 (s3)."
    )


_TYPES_CEL = "[" + ", ".join(f"'{t}'" for t in SERVER_URL_TYPES) + "]"


class QPluginSpec(CommonSpec):
    """The desired Amazon Q Business plugin."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        hide_input_in_errors=True,
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.type != 'CUSTOM' || has(self.customPluginConfiguration)",
                    "spec.customPluginConfiguration is required when spec.type is CUSTOM",
                    ".customPluginConfiguration",
                ),
                _cel(
                    "self.type == 'CUSTOM' || !has(self.customPluginConfiguration)",
                    "spec.customPluginConfiguration is allowed only when spec.type is CUSTOM",
                    ".customPluginConfiguration",
                ),
                _cel(
                    f"!(self.type in {_TYPES_CEL}) || has(self.serverUrl)",
                    "spec.serverUrl is required for this spec.type (the URL of your SaaS tenant)",
                    ".serverUrl",
                ),
                _cel(
                    "self.type == 'CUSTOM' || !has(self.authConfiguration.noAuthConfiguration)",
                    "spec.authConfiguration.noAuthConfiguration is allowed only when spec.type is CUSTOM",
                    ".authConfiguration",
                ),
            ]
        },
    )

    applicationId: str = Field(
        min_length=36,
        max_length=36,
        pattern=APPLICATION_ID_PATTERN,
        description="ID of the Amazon Q Business application that holds the plugin. Changing it replaces "
        "the plugin (a new one is created in the new application, then the old one is deleted).",
    )
    displayName: str = Field(
        min_length=1,
        max_length=100,
        pattern=PLUGIN_NAME_PATTERN,
        description="Name of the plugin: letters, digits, '_' and '-', starting with a letter or digit "
        "(no spaces or dots).",
    )
    type: PluginType = Field(
        description="Plugin type: CUSTOM (your OpenAPI), or a built-in one. Changing it replaces the plugin."
    )
    authConfiguration: PluginAuthConfiguration = Field(
        description="How Amazon Q Business authenticates to the plugin's API: exactly one of "
        "basicAuthConfiguration, oAuth2ClientCredentialConfiguration, noAuthConfiguration, "
        "idcAuthConfiguration."
    )
    serverUrl: Url | None = Field(
        default=None,
        description="URL of the service the plugin acts on (e.g. https://example.atlassian.net). "
        "Required for SERVICE_NOW, SALESFORCE, JIRA, ZENDESK, SERVICENOW_NOW_PLATFORM, JIRA_CLOUD, "
        "SALESFORCE_CRM, ZENDESK_SUITE, ATLASSIAN_CONFLUENCE. Removing it leaves AWS's value as is.",
    )
    customPluginConfiguration: CustomPluginConfiguration | None = Field(
        default=None,
        description="Required when type is CUSTOM, and only then: description and OpenAPI schema.",
    )
    state: PluginState | None = Field(
        default=None,
        description="ENABLED or DISABLED. Applied with UpdatePlugin once the plugin is built; unset: "
        "left as AWS has it.",
    )
    tags: dict[TagKey, TagValue] = Field(
        default_factory=dict,
        max_length=MAX_USER_TAGS,
        description="Tags on the plugin (key 1-128, value 0-256 characters; at most 198: the operator keeps "
        "two of its own under q-operator.dev/). Tags set on the plugin outside this map are removed.",
        json_schema_extra={"x-kubernetes-validations": [dict(rule) for rule in TAG_RULES]},
    )

    @field_validator("tags")
    @classmethod
    def _no_reserved_tag_keys(cls, tags: dict[str, str]) -> dict[str, str]:
        return refuse_reserved_tag_keys(tags)

    @model_validator(mode="after")
    def _cross_field(self) -> QPluginSpec:
        if self.type == "CUSTOM" and self.customPluginConfiguration is None:
            raise ValueError("spec.customPluginConfiguration is required when spec.type is CUSTOM")
        if self.type != "CUSTOM" and self.customPluginConfiguration is not None:
            raise ValueError("spec.customPluginConfiguration is allowed only when spec.type is CUSTOM")
        if self.type in SERVER_URL_TYPES and self.serverUrl is None:
            raise ValueError("spec.serverUrl is required for this spec.type (the URL of your SaaS tenant)")
        if self.type != "CUSTOM" and self.authConfiguration.noAuthConfiguration is not None:
            raise ValueError(
                "spec.authConfiguration.noAuthConfiguration is allowed only when spec.type is CUSTOM"
            )
        return self


# ---------------------------------------------------------------------------------------------------
# Status


class QPluginStatus(CommonStatus):
    """What AWS reports about the plugin, plus the operator's conditions."""

    applicationId: str | None = Field(default=None, description="ID of the application holding the plugin.")
    pluginId: str | None = Field(
        default=None, description="ID of the plugin, written as soon as AWS returns it."
    )
    pluginArn: str | None = Field(default=None, description="ARN of the plugin.")
    buildStatus: str | None = Field(
        default=None,
        description="AWS's build status: READY, CREATE_IN_PROGRESS, CREATE_FAILED, UPDATE_IN_PROGRESS, "
        "UPDATE_FAILED, DELETE_IN_PROGRESS or DELETE_FAILED.",
    )
    state: str | None = Field(default=None, description="ENABLED or DISABLED, as AWS reports it.")
    createdAt: str | None = Field(default=None, description="When AWS created the plugin (RFC 3339).")
    updatedAt: str | None = Field(default=None, description="When AWS last updated the plugin (RFC 3339).")


# ---------------------------------------------------------------------------------------------------
# Pure helpers (the adapter's logic, testable without a client)

#: Every PluginBuildStatus botocore knows, and its phase (a test holds the keys to botocore's enum).
BUILD_PHASES: dict[str, Phase] = {
    "READY": Phase.READY,
    "CREATE_IN_PROGRESS": Phase.IN_PROGRESS,
    "UPDATE_IN_PROGRESS": Phase.IN_PROGRESS,
    "DELETE_IN_PROGRESS": Phase.IN_PROGRESS,
    "CREATE_FAILED": Phase.FAILED,
    "UPDATE_FAILED": Phase.FAILED,
    "DELETE_FAILED": Phase.FAILED,
}


def phase_of(build_status: str | None) -> tuple[Phase, str]:
    """Map a buildStatus to a phase and, for failures, a message (GetPlugin gives no reason)."""
    phase = BUILD_PHASES.get(build_status or "", Phase.IN_PROGRESS)
    if phase is Phase.FAILED:
        return phase, f"Amazon Q Business reports buildStatus {build_status}"
    return phase, ""


def desired_payload(spec: QPluginSpec, resolved: Resolved) -> str | None:
    """The OpenAPI payload to send: inline, or the ConfigMap value the engine resolved."""
    custom = spec.customPluginConfiguration
    if custom is None:
        return None
    schema = custom.apiSchema
    if schema.payload is not None:
        return schema.payload.get_secret_value()
    if schema.payloadFrom is not None:
        value = resolved.values.get(PAYLOAD_FROM_PATH)
        if value is None:
            ref = schema.payloadFrom.configMapKeyRef
            raise NotFoundError(
                field=f"spec.{PAYLOAD_FROM_PATH}",
                message=f"ConfigMap {ref.name} key {ref.key} could not be read",
            )
        return value
    return None


def payload_hash(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()


def custom_config_to_api(spec: QPluginSpec, resolved: Resolved) -> dict[str, Any] | None:
    """CustomPluginConfiguration as the API takes it (payloadFrom replaced by the payload)."""
    custom = spec.customPluginConfiguration
    if custom is None:
        return None
    api_schema: dict[str, Any]
    if custom.apiSchema.s3 is not None:
        api_schema = {"s3": custom.apiSchema.s3.model_dump()}
    else:
        api_schema = {"payload": desired_payload(spec, resolved)}
    return {"description": custom.description, "apiSchemaType": custom.apiSchemaType, "apiSchema": api_schema}


def desired_tags(spec: QPluginSpec, owner: Owner, resolved: Resolved) -> dict[str, str]:
    """spec.tags plus the operator's own: the owner mark and, for payloads, the payload hash."""
    tags = dict(spec.tags)
    tags[OWNER_TAG] = owner_tag_value(owner)
    payload = desired_payload(spec, resolved) if payload_resolvable(spec, resolved) else None
    if payload is not None:
        tags[PAYLOAD_HASH_TAG] = payload_hash(payload)
    return tags


def tags_to_api(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


def tags_from_api(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in tags or []}


def _custom_config_differs(
    desired: dict[str, Any] | None,
    actual: Mapping[str, Any] | None,
    current_tags: Mapping[str, str],
    observe_only: bool = False,
) -> bool:
    if desired is None:
        # Not CUSTOM: nothing to manage (UpdatePlugin cannot remove a custom configuration).
        return False
    if not actual:
        return True
    if desired["description"] != actual.get("description") or desired["apiSchemaType"] != actual.get(
        "apiSchemaType"
    ):
        return True
    want = desired["apiSchema"]
    have = actual.get("apiSchema") or {}
    if "s3" in want:
        return bool(want["s3"] != have.get("s3"))
    if have.get("payload") is not None:
        return bool(want["payload"] != have["payload"])
    # AWS did not echo the sensitive payload: compare with the hash recorded when we last sent it.
    # Unknown (no hash tag, e.g. an adopted plugin) counts as different, so the payload is sent once;
    # an observe-only object sends nothing, and does not report what it cannot compare.
    recorded = current_tags.get(PAYLOAD_HASH_TAG)
    if recorded is None:
        return not observe_only
    return recorded != payload_hash(want["payload"])


def compute_diff(
    spec: QPluginSpec,
    ref: ExternalRef,
    plugin: Mapping[str, Any],
    current_tags: Mapping[str, str] | None,
    owner: Owner,
    resolved: Resolved,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(members to update in place, members that force a replacement), from GetPlugin's answer."""
    replace: list[str] = []
    if spec.applicationId != plugin.get("applicationId", ref.get("applicationId")):
        replace.append("applicationId")
    if plugin.get("type") is not None and spec.type != plugin["type"]:
        replace.append("type")

    diff: list[str] = []
    if spec.displayName != plugin.get("displayName"):
        diff.append("displayName")
    # An unset optional member is not managed: UpdatePlugin cannot clear it.
    if spec.serverUrl is not None and spec.serverUrl != plugin.get("serverUrl"):
        diff.append("serverUrl")
    actual_auth = plugin.get("authConfiguration")
    if actual_auth is not None and spec.authConfiguration.to_api() != actual_auth:
        diff.append("authConfiguration")
    tags = current_tags or {}
    # The engine resolves nothing while deleting, and a ConfigMap may go before the plugin does:
    # then the payload cannot be compared, but everything else still can (and deletion never waits).
    payload_known = payload_resolvable(spec, resolved)
    if payload_known and _custom_config_differs(
        custom_config_to_api(spec, resolved),
        plugin.get("customPluginConfiguration"),
        tags,
        owner.observe_only,
    ):
        diff.append("customPluginConfiguration")
    if spec.state is not None and spec.state != plugin.get("state"):
        diff.append("state")
    if current_tags is not None and owner.observe_only:
        if user_tags(current_tags) != dict(spec.tags):
            diff.append("tags")
    elif current_tags is not None:
        if payload_known:
            wanted = desired_tags(spec, owner, resolved)
        else:
            wanted = {**desired_tags(spec, owner, Resolved()), **_only(current_tags, PAYLOAD_HASH_TAG)}
        if dict(current_tags) != wanted:
            diff.append("tags")
    return tuple(diff), tuple(replace)


def payload_resolvable(spec: QPluginSpec, resolved: Resolved) -> bool:
    """Whether the payload is known: inline, in S3, absent, or its ConfigMap value was resolved."""
    custom = spec.customPluginConfiguration
    if custom is None or custom.apiSchema.payloadFrom is None:
        return True
    return PAYLOAD_FROM_PATH in resolved.values


def _only(tags: Mapping[str, str], key: str) -> dict[str, str]:
    return {key: tags[key]} if key in tags else {}


def outputs_of(plugin: Mapping[str, Any], ref: ExternalRef) -> dict[str, str]:
    """Status fields from GetPlugin's answer, all JSON-serializable strings."""
    raw = {
        "applicationId": plugin.get("applicationId", ref.get("applicationId")),
        "pluginId": plugin.get("pluginId", ref.get("pluginId")),
        "pluginArn": plugin.get("pluginArn"),
        "buildStatus": plugin.get("buildStatus"),
        "state": plugin.get("state"),
        "createdAt": aws_time(plugin.get("createdAt")),
        "updatedAt": aws_time(plugin.get("updatedAt")),
    }
    return {k: str(v) for k, v in raw.items() if v is not None}


#: What a ListPlugins summary shows that moves when the plugin changes (UpdatePlugin moves updatedAt;
#: a build moves buildStatus). Tags and the auth configuration are not in it.
SUMMARY_FIELDS = ("buildStatus", "state", "updatedAt")
#: ListPlugins' largest page (botocore's maxResults range is 1-50).
LIST_PAGE_SIZE = 50


def summary_of(application_id: str, plugin: Mapping[str, Any]) -> Summary:
    """A ListPlugins member as the engine compares it with status (the same strings observe writes)."""
    ref = {"applicationId": application_id, "pluginId": str(plugin["pluginId"])}
    outputs = outputs_of(plugin, ref)
    return Summary(ref=ref, seen={key: outputs[key] for key in SUMMARY_FIELDS if key in outputs})


def _names_application(err: ClientError, application_id: str) -> bool:
    """Whether a ResourceNotFoundException is about the application (not the plugin)."""
    fields = {**err.response.get("Error", {}), **err.response}
    resource_type = str(fields.get("resourceType") or fields.get("ResourceType") or "")
    resource_id = str(fields.get("resourceId") or fields.get("ResourceId") or "")
    return "application" in resource_type.lower() or resource_id == application_id


# ---------------------------------------------------------------------------------------------------
# Adapter


class QBusinessClient(Protocol):
    """The part of boto3's qbusiness client the adapter uses."""

    def create_plugin(self, **kwargs: Any) -> dict[str, Any]: ...
    def get_plugin(self, **kwargs: Any) -> dict[str, Any]: ...
    def update_plugin(self, **kwargs: Any) -> dict[str, Any]: ...
    def delete_plugin(self, **kwargs: Any) -> dict[str, Any]: ...
    def list_plugins(self, **kwargs: Any) -> dict[str, Any]: ...
    def tag_resource(self, **kwargs: Any) -> dict[str, Any]: ...
    def untag_resource(self, **kwargs: Any) -> dict[str, Any]: ...
    def list_tags_for_resource(self, **kwargs: Any) -> dict[str, Any]: ...


class QPluginAdapter:
    """observe/find/create/update/delete of one plugin through the qbusiness API."""

    def __init__(self, client: QBusinessClient) -> None:
        self._client = client

    # -- reads ----------------------------------------------------------------------------------------

    def _get(self, ref: ExternalRef) -> dict[str, Any] | None:
        log.debug("GetPlugin %s/%s", ref["applicationId"], ref["pluginId"])
        return absent_if_not_found(
            self._client.get_plugin, applicationId=ref["applicationId"], pluginId=ref["pluginId"]
        )

    def _tags(self, plugin_arn: str) -> dict[str, str]:
        log.debug("ListTagsForResource %s", plugin_arn)
        answer = self._client.list_tags_for_resource(resourceARN=plugin_arn)
        return tags_from_api(answer.get("tags"))

    def observe(self, spec: QPluginSpec, ref: ExternalRef, owner: Owner, resolved: Resolved) -> Observation:
        plugin = self._get(ref)
        if plugin is None:
            return Observation(phase=Phase.ABSENT)
        phase, message = phase_of(plugin.get("buildStatus"))
        arn = plugin.get("pluginArn")
        current_tags: dict[str, str] | None = None
        # Mid-build the engine only waits (no compare, no write), and a bulk apply polls every build
        # about five times: its ListTagsForResource is read once the build has ended.
        building = phase is Phase.IN_PROGRESS
        if arn and not building:
            current_tags = absent_if_not_found(self._tags, arn)
            if current_tags is None:
                # Deleted between the two calls: absent as far as anyone can tell.
                return Observation(phase=Phase.ABSENT)
        diff, replace = compute_diff(spec, ref, plugin, current_tags, owner, resolved)
        return Observation(
            phase=phase,
            outputs=outputs_of(plugin, ref),
            diff=diff,
            replace=replace,
            message=message,
            owner_mark=seen_owner_mark((current_tags or {}).get(OWNER_TAG), owner),
            owner_mark_read=not (arn and building),
        )

    def find(self, spec: QPluginSpec, owner: Owner) -> Found | None:
        since = owner.create_pending_since - timedelta(minutes=5) if owner.create_pending_since else None
        log.debug("ListPlugins %s", spec.applicationId)
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"applicationId": spec.applicationId, "maxResults": 50}
            if token:
                kwargs["nextToken"] = token
            with not_found_as("applicationId", f"application {spec.applicationId} does not exist"):
                page = self._client.list_plugins(**kwargs)
            for summary in page.get("plugins", []):
                found = self._match(spec, summary, owner, since)
                if found is not None:
                    return found
            token = page.get("nextToken")
            if not token:
                return None

    def _match(
        self, spec: QPluginSpec, summary: Mapping[str, Any], owner: Owner, since: datetime | None
    ) -> Found | None:
        # Only a plugin of the wanted type can be this create's: while a type change replaces a
        # plugin, the old one carries the same owner mark and must not be mistaken for the new one.
        if summary.get("type") not in (None, spec.type):
            return None
        created = summary.get("createdAt")
        if since is not None and isinstance(created, datetime):
            aware = created if created.tzinfo else created.replace(tzinfo=UTC)
            since_aware = since if since.tzinfo else since.replace(tzinfo=UTC)
            if aware < since_aware:
                return None
        ref = {"applicationId": spec.applicationId, "pluginId": str(summary["pluginId"])}
        plugin = self._get(ref)
        if plugin is None or not plugin.get("pluginArn"):
            return None
        tags = absent_if_not_found(self._tags, plugin["pluginArn"])
        if tags is None or seen_owner_mark(tags.get(OWNER_TAG), owner) != owner.mark:
            return None
        return Found(
            ref=ref, owner_mark=owner.mark, created_at=created if isinstance(created, datetime) else None
        )

    # -- writes ---------------------------------------------------------------------------------------

    def create(self, spec: QPluginSpec, owner: Owner, token: ClientToken, resolved: Resolved) -> Created:
        request: dict[str, Any] = {
            "applicationId": spec.applicationId,
            "displayName": spec.displayName,
            "type": spec.type,
            "authConfiguration": spec.authConfiguration.to_api(),
            "tags": tags_to_api(desired_tags(spec, owner, resolved)),
            "clientToken": token,
        }
        if spec.serverUrl is not None:
            request["serverUrl"] = spec.serverUrl
        custom = custom_config_to_api(spec, resolved)
        if custom is not None:
            request["customPluginConfiguration"] = custom
        log.debug("CreatePlugin %s %s (%s)", spec.applicationId, spec.displayName, spec.type)
        try:
            answer = self._client.create_plugin(**request)
        except ClientError as err:
            if is_not_found(err) and _names_application(err, spec.applicationId):
                raise NotFoundError(
                    field="applicationId", message=f"application {spec.applicationId} does not exist"
                ) from err
            raise
        plugin_id = str(answer["pluginId"])
        outputs = {
            "applicationId": spec.applicationId,
            "pluginId": plugin_id,
            "pluginArn": answer.get("pluginArn"),
            "buildStatus": answer.get("buildStatus"),
        }
        return Created(
            ref={"applicationId": spec.applicationId, "pluginId": plugin_id},
            outputs={k: str(v) for k, v in outputs.items() if v is not None},
        )

    def update(
        self, spec: QPluginSpec, ref: ExternalRef, observation: Observation, owner: Owner, resolved: Resolved
    ) -> None:
        members: dict[str, Any] = {}
        for name in observation.diff:
            if name == "displayName":
                members["displayName"] = spec.displayName
            elif name == "serverUrl" and spec.serverUrl is not None:
                members["serverUrl"] = spec.serverUrl
            elif name == "authConfiguration":
                members["authConfiguration"] = spec.authConfiguration.to_api()
            elif name == "customPluginConfiguration":
                members["customPluginConfiguration"] = custom_config_to_api(spec, resolved)
            elif name == "state" and spec.state is not None:
                members["state"] = spec.state
        if members:
            log.debug("UpdatePlugin %s/%s members %s", ref["applicationId"], ref["pluginId"], sorted(members))
            self._client.update_plugin(
                applicationId=ref["applicationId"], pluginId=ref["pluginId"], **members
            )
        if "tags" in observation.diff:
            self._update_tags(spec, ref, observation, owner, resolved)

    def _update_tags(
        self, spec: QPluginSpec, ref: ExternalRef, observation: Observation, owner: Owner, resolved: Resolved
    ) -> None:
        arn = observation.outputs.get("pluginArn")
        if not arn:
            plugin = self._get(ref)
            arn = plugin.get("pluginArn") if plugin else None
        if not arn:
            return
        to_set, to_remove = tag_changes(self._tags(str(arn)), desired_tags(spec, owner, resolved))
        if to_set:
            log.debug("TagResource %s keys %s", arn, sorted(to_set))
            self._client.tag_resource(resourceARN=arn, tags=tags_to_api(to_set))
        if to_remove:
            log.debug("UntagResource %s keys %s", arn, to_remove)
            self._client.untag_resource(resourceARN=arn, tagKeys=to_remove)

    def delete(self, spec: QPluginSpec, ref: ExternalRef) -> None:
        log.debug("DeletePlugin %s/%s", ref["applicationId"], ref["pluginId"])
        # Not found: already deleted, nothing left to do.
        absent_if_not_found(
            self._client.delete_plugin, applicationId=ref["applicationId"], pluginId=ref["pluginId"]
        )

    def ref_for_id(self, spec: QPluginSpec, external_id: str) -> ExternalRef:
        return {"applicationId": spec.applicationId, "pluginId": external_id}

    def list_page(self, parent: Mapping[str, str], token: str | None) -> Page:
        application_id = parent["applicationId"]
        kwargs: dict[str, Any] = {"applicationId": application_id, "maxResults": LIST_PAGE_SIZE}
        if token:
            kwargs["nextToken"] = token
        log.debug("ListPlugins %s", application_id)
        with not_found_as("applicationId", f"application {application_id} does not exist"):
            page = self._client.list_plugins(**kwargs)
        summaries = tuple(summary_of(application_id, plugin) for plugin in page.get("plugins", []))
        return Page(summaries, page.get("nextToken") or None)


KIND: KindInfo[QPluginSpec, QPluginStatus] = KindInfo(
    kind="QPlugin",
    group="qbusiness.q-operator.dev",
    version="v1alpha1",
    plural="qplugins",
    singular="qplugin",
    short_names=("qp",),
    spec_model=QPluginSpec,
    status_model=QPluginStatus,
    service="qbusiness",
    adapter_factory=QPluginAdapter,
    ref_fields=("applicationId", "pluginId"),
    list_parent=("applicationId",),
    id_field="pluginId",
    arn_field="pluginArn",
    iam_actions=(
        "qbusiness:CreatePlugin",
        "qbusiness:GetPlugin",
        "qbusiness:UpdatePlugin",
        "qbusiness:DeletePlugin",
        "qbusiness:ListPlugins",
        "qbusiness:TagResource",
        "qbusiness:UntagResource",
        "qbusiness:ListTagsForResource",
    ),
    # authConfiguration names a roleArn that Amazon Q Business assumes to read the plugin's secret.
    pass_role=PassRole("qbusiness.amazonaws.com", ("qbusiness:CreatePlugin", "qbusiness:UpdatePlugin")),
    sample="qplugin-custom.yaml",
    health_detail="buildStatus",
    printer_columns=(
        PrinterColumn(
            "Ready", '.status.conditions[?(@.type=="Ready")].status', description="Ready condition."
        ),
        PrinterColumn("Build", ".status.buildStatus", description="AWS build status of the plugin."),
        PrinterColumn("Plugin ID", ".status.pluginId", description="ID of the plugin in Amazon Q Business."),
        PrinterColumn("Type", ".spec.type", description="Plugin type.", priority=1),
        PrinterColumn("State", ".status.state", description="ENABLED or DISABLED.", priority=1),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date", description="Age of the object."),
    ),
    description="An Amazon Q Business plugin (qbusiness CreatePlugin), managed by q-operator.",
)
