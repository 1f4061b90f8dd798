"""The AppFlowConnector kind: an Amazon AppFlow custom connector registration, through the boto3
`appflow` client.

The connector label is the registration's identity in the account: every call after
RegisterConnector addresses the connector by it, so it cannot change (a CEL rule at the CRD root
refuses the change at apply time). When the spec leaves it out it is the object's metadata.name;
the spec model cannot see metadata, so the adapter takes the name from `base.Owner`.

RegisterConnector has a client token (AppFlow keeps it 8 hours) but no tags member: tags,
including the owner tag, are applied with TagResource right after registering. A crash between
the two leaves an untagged connector, which the engine recognises as its own through the pending
marker and the registration time (`Found.created_at`).

AppFlow answers several different errors with HTTP 400 (ValidationException,
ConnectorServerException), so everything here branches on the error code, never on the status.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from q_operator.kinds import base
from q_operator.kinds.base import RESERVED_TAG_PREFIX
from q_operator.kinds.common import (
    MAX_TAG_VALUE,
    NOT_FOUND,
    absent_if_not_found,
    aws_time,
    cel_string,
    error_code,
    error_message,
    is_not_found,
    owner_tag_value,
    refuse_reserved_tag_keys,
    reserved_tag_key_rule,
    seen_owner_mark,
    tag_changes,
    tag_key_length_rule,
    user_tags,
)

log = logging.getLogger(__name__)

#: botocore's appflow shapes, anchored (the service applies each pattern to the whole value).
LABEL_PATTERN = r"^[a-zA-Z0-9][\w!@#.-]+$"
LABEL_MAX = 256
DESCRIPTION_PATTERN = r"^[\s\w/!@#+=.-]*$"
DESCRIPTION_MAX = 1024
ARN_PATTERN = r"^arn:aws:.*:.*:[0-9]+:.*$"
ARN_MAX = 512
#: botocore's TagKey pattern, as is: the model's validator checks keys with it (Python's re has
#: lookahead). TAG_KEY_PATTERN is the rest of it, without the lookahead RE2 (CEL's engine) lacks; no
#: CEL rule uses it (see TAG_RULES), the botocore test holds it to botocore's.
#: Note `+-=` is a range (+ , - . / 0-9 : ; < =): digits are allowed.
TAG_KEY_AWS_PATTERN = r"^(?!aws:)[a-zA-Z+-=._:/]+$"
TAG_KEY_PATTERN = r"^[a-zA-Z+-=._:/]+$"
TAG_KEY_MAX = 128
TAG_VALUE_PATTERN = r"^[\s\w+-=\.:/@]*$"
TAG_VALUE_MAX = MAX_TAG_VALUE
#: AppFlow's TagMap holds at most 50 tags; the operator's owner tag takes one of them.
TAGS_MAX = 49
CONNECTOR_TYPE = "CustomConnector"
#: The spec path of the Lambda function, as diffs and errors name it.
LAMBDA_FIELD = "connectorProvisioningConfig.lambda.lambdaArn"

TagValue = Annotated[str, StringConstraints(max_length=TAG_VALUE_MAX, pattern=TAG_VALUE_PATTERN)]


#: CEL rules on spec.tags (map keys cannot carry constraints in a structural schema). Only O(1)-cost
#: checks: the API server estimates a rule's cost before accepting the CRD, and map keys have no
#: maxLength to bound it, so `k.matches(...)` over up to 49 keys of unbounded estimated length would
#: exceed the per-rule budget and the CRD would be refused. The key's characters (TAG_KEY_AWS_PATTERN)
#: are checked by the model instead: the operator flags them as InvalidSpec naming spec.tags.
TAG_RULES: tuple[dict[str, str], ...] = (
    tag_key_length_rule(TAG_KEY_MAX),
    {
        "rule": "self.all(k, !k.startsWith('aws:'))",
        "message": "spec.tags keys must not start with aws: (reserved by AWS)",
    },
    reserved_tag_key_rule(),
)

#: CEL rules at the CRD root: they need metadata.name, which the spec model cannot see.
_EFFECTIVE_LABEL = "(has(self.spec.connectorLabel) ? self.spec.connectorLabel : self.metadata.name)"
ROOT_RULES: tuple[dict[str, str], ...] = (
    {
        "rule": f"!has(self.spec) || has(self.spec.connectorLabel) || "
        f"self.metadata.name.matches({cel_string(LABEL_PATTERN)})",
        "message": f"connectorLabel is required: metadata.name does not fit the AppFlow label pattern "
        f"{LABEL_PATTERN} (at least 2 characters), so it cannot be the default label",
        "fieldPath": ".spec.connectorLabel",
    },
    {
        "rule": f"!has(self.spec) || !has(oldSelf.spec) || {_EFFECTIVE_LABEL} == "
        f"{_EFFECTIVE_LABEL.replace('self.', 'oldSelf.')}",
        "message": "connectorLabel is immutable: it is the connector's identity in AppFlow (explicit, or "
        "metadata.name when unset); create a new AppFlowConnector to register under another label",
        "fieldPath": ".spec.connectorLabel",
    },
)


class LambdaProvisioning(BaseModel):
    """The Lambda function that implements the connector."""

    model_config = ConfigDict(extra="forbid")

    lambdaArn: str = Field(
        max_length=ARN_MAX,
        pattern=ARN_PATTERN,
        description="ARN of the connector's Lambda function (partition aws only, as AppFlow requires). "
        "Changing it calls UpdateConnectorRegistration.",
    )


class ConnectorProvisioningConfig(BaseModel):
    """How the connector is provisioned: AppFlow knows only Lambda connectors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    lambda_: LambdaProvisioning = Field(alias="lambda", description="The connector's Lambda function.")


class AppFlowConnectorSpec(base.CommonSpec):
    """The desired connector registration."""

    connectorLabel: str | None = Field(
        default=None,
        max_length=LABEL_MAX,
        pattern=LABEL_PATTERN,
        description="The connector's label, unique in the account: its identity in AppFlow, so it "
        "cannot change. Defaults to metadata.name (which must then fit the label pattern).",
    )
    description: str | None = Field(
        default=None,
        max_length=DESCRIPTION_MAX,
        pattern=DESCRIPTION_PATTERN,
        description="A description of the connector, sent with RegisterConnector and "
        "UpdateConnectorRegistration.",
    )
    connectorProvisioningType: Literal["LAMBDA"] = Field(
        default="LAMBDA", description="How the connector is provisioned: LAMBDA, the only type AppFlow has."
    )
    connectorProvisioningConfig: ConnectorProvisioningConfig = Field(
        description="The provisioning of the connector: lambda.lambdaArn."
    )
    tags: dict[str, TagValue] = Field(
        default_factory=dict,
        max_length=TAGS_MAX,
        description=f"Tags applied with TagResource after registering (RegisterConnector takes none). Up "
        f"to {TAGS_MAX}: the operator adds its own {base.OWNER_TAG} tag. Keys must not start with aws: "
        f"or {RESERVED_TAG_PREFIX}.",
        json_schema_extra={"x-kubernetes-validations": [dict(rule) for rule in TAG_RULES]},
    )
    forceDelete: bool = Field(
        default=False,
        strict=True,
        description="Unregister even while connector profiles use the connector (UnregisterConnector's "
        "forceDelete). When false, deletion waits until the connector is no longer in use.",
    )

    @field_validator("tags")
    @classmethod
    def _tag_keys_fit_appflow(cls, tags: dict[str, str]) -> dict[str, str]:
        """Map keys cannot carry constraints in a CRD schema, so they are checked here (and, as far as
        CEL's cost budget allows, by TAG_RULES in the CRD) rather than in the type."""
        for key in tags:
            if not 1 <= len(key) <= TAG_KEY_MAX:
                raise ValueError(f"tag key {key!r} must be 1 to {TAG_KEY_MAX} characters long")
            if not re.fullmatch(TAG_KEY_AWS_PATTERN, key):
                raise ValueError(f"tag key {key!r} must match {TAG_KEY_AWS_PATTERN}")
        return refuse_reserved_tag_keys(tags)

    @property
    def lambda_arn(self) -> str:
        return self.connectorProvisioningConfig.lambda_.lambdaArn


class AppFlowConnectorStatus(base.CommonStatus):
    """What AWS reports about the registration, under the API's names."""

    connectorArn: str | None = Field(default=None, description="The connector's ARN.")
    connectorLabel: str | None = Field(
        default=None, description="The label the connector is registered under."
    )
    lambdaArn: str | None = Field(default=None, description="The Lambda function ARN, as AWS reports it.")
    description: str | None = Field(default=None, description="The description, as AWS reports it.")
    registeredAt: str | None = Field(
        default=None, description="When the connector was registered (RFC 3339)."
    )
    registeredBy: str | None = Field(default=None, description="Who registered the connector.")
    connectorVersion: str | None = Field(default=None, description="The connector version AppFlow reports.")


def effective_label(spec: AppFlowConnectorSpec, owner: base.Owner) -> str:
    """The label to register under: the explicit one, else the object's name."""
    return spec.connectorLabel if spec.connectorLabel is not None else owner.name


def desired_tags(spec: AppFlowConnectorSpec, owner: base.Owner) -> dict[str, str]:
    return {**spec.tags, base.OWNER_TAG: owner_tag_value(owner)}


def update_token(label: str, current: Mapping[str, Any], spec: AppFlowConnectorSpec) -> base.ClientToken:
    """A deterministic UpdateConnectorRegistration token for moving the registration from its current
    state to the spec's. AppFlow replays a known token for 8 hours instead of applying it again, so
    the token covers both ends: a retry of the same change reuses it, while changing back and forth
    (A to B to A) sends a new token each time. And the registration itself (its registeredAt): the
    same change to a connector unregistered and registered again under the same label is a new
    change, which a replayed token would silently skip."""
    parts = (
        label,
        str(current.get("registeredAt", "")),
        str(current.get("lambdaArn", "")),
        str(current.get("description", "")),
        spec.lambda_arn,
        spec.description or "",
    )
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return base.ClientToken(f"q-operator-update-{digest[:48]}")


def diff_registration(
    spec: AppFlowConnectorSpec, configuration: Mapping[str, Any], tags: Mapping[str, str], owner: base.Owner
) -> tuple[str, ...]:
    """Spec paths UpdateConnectorRegistration or Tag/UntagResource must change.

    The description is compared with DescribeConnector's connectorDescription only when AWS reports
    one and the spec sets one: the API does not promise that it echoes the registered description.
    """
    diff: list[str] = []
    aws_description = configuration.get("connectorDescription")
    if spec.description is not None and aws_description is not None and spec.description != aws_description:
        diff.append("description")
    aws_lambda = configuration.get("connectorProvisioningConfig", {}).get("lambda", {}).get("lambdaArn")
    if spec.lambda_arn != aws_lambda:
        diff.append(LAMBDA_FIELD)
    if owner.observe_only:
        if user_tags(tags) != dict(spec.tags):
            diff.append("tags")
    elif tag_changes(tags, desired_tags(spec, owner)) != ({}, []):
        diff.append("tags")
    return tuple(diff)


#: Errors that come from the user's Lambda function, not from AppFlow or the spec.
LAMBDA_ERRORS = frozenset({"ConnectorAuthenticationException", "ConnectorServerException"})


def _lambda_failure(
    error: ClientError, spec: AppFlowConnectorSpec, registered: bool
) -> base.KindError | None:
    """The kind error for a failure of the user's Lambda function, or None when it is not one. The
    engine leads the message with the step (create/update).

    AppFlow's errors carry only a message. On RegisterConnector a ResourceNotFoundException can only
    be about the Lambda; once registered it may also be the connector itself, so it counts as the
    Lambda's only when AWS's message names the function.
    """
    code = error_code(error)
    said = error_message(error)
    if code in LAMBDA_ERRORS:
        return base.ExternalFailure(f"the connector's Lambda function answered {code}: {said}")
    if code == NOT_FOUND and (not registered or spec.lambda_arn in said or "lambda" in said.casefold()):
        return base.NotFoundError(LAMBDA_FIELD, f"Lambda function {spec.lambda_arn} was not found: {said}")
    return None


def _outputs(configuration: Mapping[str, Any]) -> dict[str, Any]:
    outputs = {
        "connectorArn": configuration.get("connectorArn"),
        "connectorLabel": configuration.get("connectorLabel"),
        "lambdaArn": configuration.get("connectorProvisioningConfig", {}).get("lambda", {}).get("lambdaArn"),
        "description": configuration.get("connectorDescription"),
        "registeredAt": aws_time(configuration.get("registeredAt")),
        "registeredBy": configuration.get("registeredBy"),
        "connectorVersion": configuration.get("connectorVersion"),
    }
    return {key: value for key, value in outputs.items() if value is not None}


#: What a ListConnectors member shows that moves when the registration changes: an update moves the
#: connector version (and the description); a re-registration moves registeredAt. No tags, no Lambda.
SUMMARY_FIELDS = ("connectorVersion", "description", "registeredAt")
#: ListConnectors' largest page (botocore's maxResults range is 1-100).
LIST_PAGE_SIZE = 100


def summary_of(detail: Mapping[str, Any]) -> base.Summary:
    """A ListConnectors member as the engine compares it with status (as observe writes it)."""
    outputs = _outputs(detail)
    return base.Summary(
        ref={"connectorLabel": str(detail["connectorLabel"])},
        seen={key: outputs[key] for key in SUMMARY_FIELDS if key in outputs},
    )


class AppFlowConnectorAdapter:
    """The verbs of `base.Adapter` over a boto3 `appflow` client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def _describe(self, label: str) -> Mapping[str, Any] | None:
        response = absent_if_not_found(
            self._client.describe_connector, connectorType=CONNECTOR_TYPE, connectorLabel=label
        )
        if response is None:
            return None
        configuration: Mapping[str, Any] = response.get("connectorConfiguration", {})
        return configuration

    def _tags(self, arn: str) -> dict[str, str] | None:
        """The connector's tags; None when it was unregistered since it was described."""
        response = absent_if_not_found(self._client.list_tags_for_resource, resourceArn=arn)
        if response is None:
            return None
        return dict(response.get("tags") or {})

    def observe(
        self, spec: AppFlowConnectorSpec, ref: base.ExternalRef, owner: base.Owner, resolved: base.Resolved
    ) -> base.Observation:
        label = ref["connectorLabel"]
        configuration = self._describe(label)
        if configuration is None:
            return base.Observation(phase=base.Phase.ABSENT)
        tags = self._tags(str(configuration["connectorArn"]))
        if tags is None:
            return base.Observation(phase=base.Phase.ABSENT)
        outputs = _outputs(configuration)
        outputs.setdefault("connectorLabel", label)
        # The CEL rule keeps the label from changing; should a ref still disagree (adoption by an
        # id that is not the spec's label), only a new registration can fix it.
        replace = ("connectorLabel",) if effective_label(spec, owner) != label else ()
        return base.Observation(
            phase=base.Phase.READY,
            outputs=outputs,
            diff=diff_registration(spec, configuration, tags, owner),
            replace=replace,
            owner_mark=seen_owner_mark(tags.get(base.OWNER_TAG), owner),
        )

    def find(self, spec: AppFlowConnectorSpec, owner: base.Owner) -> base.Found | None:
        label = effective_label(spec, owner)
        configuration = self._describe(label)
        if configuration is None:
            return None
        tags = self._tags(str(configuration["connectorArn"]))
        if tags is None:
            return None
        return base.Found(
            ref={"connectorLabel": label},
            owner_mark=seen_owner_mark(tags.get(base.OWNER_TAG), owner),
            created_at=configuration.get("registeredAt"),
        )

    def create(
        self, spec: AppFlowConnectorSpec, owner: base.Owner, token: base.ClientToken, resolved: base.Resolved
    ) -> base.Created:
        label = effective_label(spec, owner)
        request: dict[str, Any] = {
            "connectorLabel": label,
            "connectorProvisioningType": spec.connectorProvisioningType,
            "connectorProvisioningConfig": {"lambda": {"lambdaArn": spec.lambda_arn}},
            "clientToken": token,
        }
        if spec.description is not None:
            request["description"] = spec.description
        try:
            arn = str(self._client.register_connector(**request)["connectorArn"])
        except ClientError as error:
            if error_code(error) == "ConflictException":
                raise base.AlreadyExists(
                    f"a connector labelled {label} already exists: {error_message(error)}"
                ) from error
            failure = _lambda_failure(error, spec, registered=False)
            if failure is not None:
                raise failure from error
            raise
        # RegisterConnector takes no tags. A crash right here leaves the connector untagged; the
        # engine's pending marker and the registration time tell it the connector is ours.
        created = base.Created(
            ref={"connectorLabel": label},
            outputs={"connectorArn": arn, "connectorLabel": label, "lambdaArn": spec.lambda_arn},
            set_later=("tags",),
        )
        if owner.repeat:
            return created  # a replay: the first create may have tagged it already (the engine checks)
        try:
            self._client.tag_resource(resourceArn=arn, tags=desired_tags(spec, owner))
        except (ClientError, BotoCoreError) as error:  # the connector exists: tag it later
            # Failing the create here would make the engine resend RegisterConnector (a replay, by its
            # token) and then TagResource again, although this one may have acted with its answer
            # lost. The engine sees the tags missing once the consistency bound has passed, and
            # sets them by an update.
            log.warning("tagging connector %s failed, left to the next update: %s", label, error)
        return created

    def update(
        self,
        spec: AppFlowConnectorSpec,
        ref: base.ExternalRef,
        observation: base.Observation,
        owner: base.Owner,
        resolved: base.Resolved,
    ) -> None:
        label = ref["connectorLabel"]
        if {"description", LAMBDA_FIELD} & set(observation.diff):
            request: dict[str, Any] = {
                "connectorLabel": label,
                "connectorProvisioningConfig": {"lambda": {"lambdaArn": spec.lambda_arn}},
                "clientToken": update_token(label, observation.outputs, spec),
            }
            if spec.description is not None:
                request["description"] = spec.description
            try:
                self._client.update_connector_registration(**request)
            except ClientError as error:
                failure = _lambda_failure(error, spec, registered=True)
                if failure is not None:
                    raise failure from error
                raise
        if "tags" in observation.diff:
            arn = str(observation.outputs["connectorArn"])
            to_set, to_remove = tag_changes(self._tags(arn) or {}, desired_tags(spec, owner))
            if to_set:
                self._client.tag_resource(resourceArn=arn, tags=to_set)
            if to_remove:
                self._client.untag_resource(resourceArn=arn, tagKeys=to_remove)

    def delete(self, spec: AppFlowConnectorSpec, ref: base.ExternalRef) -> None:
        try:
            self._client.unregister_connector(
                connectorLabel=ref["connectorLabel"], forceDelete=spec.forceDelete
            )
        except ClientError as error:
            if is_not_found(error):
                return  # already unregistered: nothing left to do
            if error_code(error) == "ConflictException":
                raise base.InUse(
                    f"connector {ref['connectorLabel']} is in use by connector profiles "
                    f"(set forceDelete to unregister anyway): {error_message(error)}"
                ) from error
            raise

    def ref_for_id(self, spec: AppFlowConnectorSpec, external_id: str) -> base.ExternalRef:
        return {"connectorLabel": external_id}

    def list_page(self, parent: Mapping[str, str], token: str | None) -> base.Page:
        # Connectors are listed per account and region: there is no parent to name.
        kwargs: dict[str, Any] = {"maxResults": LIST_PAGE_SIZE}
        if token:
            kwargs["nextToken"] = token
        page = self._client.list_connectors(**kwargs)
        summaries = tuple(
            summary_of(detail)
            for detail in page.get("connectors", [])
            if detail.get("connectorLabel") and detail.get("connectorType", CONNECTOR_TYPE) == CONNECTOR_TYPE
        )
        return base.Page(summaries, page.get("nextToken") or None)


KIND: base.KindInfo[AppFlowConnectorSpec, AppFlowConnectorStatus] = base.KindInfo(
    kind="AppFlowConnector",
    group="appflow.q-operator.dev",
    version="v1alpha1",
    plural="appflowconnectors",
    singular="appflowconnector",
    short_names=("afc",),
    spec_model=AppFlowConnectorSpec,
    status_model=AppFlowConnectorStatus,
    service="appflow",
    adapter_factory=AppFlowConnectorAdapter,
    ref_fields=("connectorLabel",),
    list_parent=(),
    id_field="connectorLabel",
    arn_field="connectorArn",
    # IAM spells the unregister action UnRegisterConnector (IAM action names are case-insensitive).
    iam_actions=(
        "appflow:RegisterConnector",
        "appflow:DescribeConnector",
        "appflow:UpdateConnectorRegistration",
        "appflow:UnRegisterConnector",
        "appflow:ListConnectors",
        "appflow:TagResource",
        "appflow:UntagResource",
        "appflow:ListTagsForResource",
    ),
    sample="appflowconnector-lambda.yaml",
    health_detail="connectorVersion",
    printer_columns=(
        base.PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
        base.PrinterColumn("Label", ".status.connectorLabel"),
        base.PrinterColumn("Version", ".status.connectorVersion"),
        base.PrinterColumn("ARN", ".status.connectorArn", priority=1),
        base.PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
    root_validations=ROOT_RULES,
    description="An Amazon AppFlow custom connector registration: a Lambda-backed connector registered "
    "under a label that is unique in the account.",
)
