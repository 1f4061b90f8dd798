"""The contract between the reconcile engine and a kind.

A kind module holds the pydantic models of one custom resource and an adapter that translates the
verbs of `Adapter` (observe, find, create, update, delete, ref_for_id for adoption, and list_page
for list mode's sweeps) into one AWS API. It knows nothing of kopf, Kubernetes, retries or
conditions: the engine decides what to call and when, and turns whatever an adapter raises into a
condition and a requeue decision.

Adapters are synchronous (boto3 is); the engine runs them in worker threads behind its rate limiter.
Every verb returns at once: nothing here waits for an asynchronous build.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, NewType, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

#: The identity of one AWS resource, as the status fields that address it (e.g. applicationId and
#: pluginId). The engine persists it in status and hands it back on every later call.
ExternalRef = Mapping[str, str]

#: Tag keys under this prefix belong to the operator; users may not set them in spec.tags.
RESERVED_TAG_PREFIX = "q-operator.dev/"
#: The tag key that marks which custom resource owns an AWS resource (where the service has tags).
OWNER_TAG = RESERVED_TAG_PREFIX + "owner"

ClientToken = NewType("ClientToken", str)


class Phase(enum.Enum):
    """Where the AWS resource is in its life, as far as the engine cares."""

    ABSENT = "Absent"  # no such resource (never created, or deleted)
    IN_PROGRESS = "InProgress"  # AWS is building, updating or deleting it; poll again soon
    READY = "Ready"  # exists and usable
    FAILED = "Failed"  # AWS reports a failed build; do not retry until the spec changes


@dataclass(frozen=True)
class Observation:
    """What `observe` saw. Read-only: producing it never changes the AWS resource."""

    phase: Phase
    #: status fields under their API names (pluginArn, buildStatus, ...), written into status as is.
    outputs: Mapping[str, Any] = field(default_factory=dict)
    #: spec paths (camelCase, dotted) that differ from AWS and can be changed in place by `update`.
    diff: tuple[str, ...] = ()
    #: spec paths that differ and that AWS cannot change in place: the engine replaces the resource.
    replace: tuple[str, ...] = ()
    #: AWS's own words, when it gave any (a failed build's reason, say).
    message: str = ""
    #: the owner tag the resource carries (None: none, or the service has no tags). The engine refuses
    #: to manage a resource marked as another object's.
    owner_mark: str | None = None
    #: False when the adapter did not read the owner tag at all (a plugin mid-build: nothing is
    #: compared or decided on its tags until the build ends, so each poll saves a tag read). The
    #: engine then neither adopts nor deletes it until a later look reads the mark.
    owner_mark_read: bool = True

    @property
    def exists(self) -> bool:
        return self.phase is not Phase.ABSENT

    @property
    def up_to_date(self) -> bool:
        return not self.diff and not self.replace


@dataclass(frozen=True)
class Owner:
    """The custom resource on whose behalf the adapter acts."""

    uid: str
    namespace: str
    name: str
    #: when the engine recorded its intent to create (None when no create was ever attempted).
    create_pending_since: datetime | None = None
    #: the operator only reads the resource (spec.managementPolicy Observe): its own tags (the owner
    #: mark, bookkeeping) are no part of the desired state, only the user's are compared, and what
    #: AWS does not let be compared is not reported as a difference.
    observe_only: bool = False
    #: `create` may repeat one that acted before the operator stopped (a token replay): calls that
    #: create makes after the one that made the resource may have been made already, so the adapter
    #: leaves them to the engine (it reports them in `Created.set_later`) instead of repeating them.
    repeat: bool = False

    @property
    def mark(self) -> str:
        """The owner tag value: stable for the life of the object, unique across the cluster."""
        return f"{self.namespace}.{self.name}.{self.uid}"


@dataclass(frozen=True)
class Found:
    """A resource located by its natural key (see `Adapter.find`)."""

    ref: ExternalRef
    #: the owner tag it carries, or None when it carries none (or the service has no tags).
    owner_mark: str | None
    #: when AWS says it was created, to tell our own interrupted create from somebody else's resource.
    created_at: datetime | None


@dataclass(frozen=True)
class Created:
    """What `create` returns: the new resource's ref and whatever else AWS said (IDs, ARN, status)."""

    ref: ExternalRef
    outputs: Mapping[str, Any] = field(default_factory=dict)
    #: spec paths the create set with a later call than the one that made the resource (AppFlow's
    #: tags, by TagResource after RegisterConnector): a read may show the resource without them for a
    #: while, so the engine does not take their absence for a difference to correct at once.
    set_later: tuple[str, ...] = ()


@dataclass(frozen=True)
class Summary:
    """One resource as a List call shows it (see `Adapter.list_page`)."""

    ref: ExternalRef
    #: the status fields the summary shows, written exactly as `observe` writes them into status
    #: (updatedAt, buildStatus, ...): the engine compares them with what the object's status holds, so
    #: only members that move when the resource changes belong here (not a user count).
    seen: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    """One page of a List call: its summaries and the token of the next page (None: the last)."""

    summaries: tuple[Summary, ...]
    next_token: str | None = None


@dataclass(frozen=True)
class Resolved:
    """Inputs the engine resolved from Kubernetes for this call (ConfigMap values by spec path)."""

    values: Mapping[str, str] = field(default_factory=dict)


# Errors an adapter raises for outcomes the engine must tell apart from a generic API error.
# Everything else (botocore ClientError and friends) propagates unchanged and is classified by the
# engine's table.


class KindError(Exception):
    """Base of the errors an adapter raises on purpose."""


class AlreadyExists(KindError):
    """The natural key is taken (e.g. an AppFlow connector label). The engine calls `find` to tell
    our own earlier create from somebody else's resource."""


class InUse(KindError):
    """AWS refused to delete because something still uses the resource."""


class ExternalFailure(KindError):
    """A dependency the user controls failed (e.g. their Lambda answered with an error): report it
    with AWS's words and retry with back-off, since the user may fix it."""


class NotFoundError(KindError):
    """Something the spec refers to does not exist on the AWS side (application, instance, category).
    Not the managed resource itself: `observe` reports that as Phase.ABSENT."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


SpecT = TypeVar("SpecT", bound=BaseModel)
SpecT_contra = TypeVar("SpecT_contra", bound=BaseModel, contravariant=True)


class Adapter(Protocol[SpecT_contra]):
    """The verbs of one kind, each a thin typed translation of one or two AWS calls."""

    def observe(self, spec: SpecT_contra, ref: ExternalRef, owner: Owner, resolved: Resolved) -> Observation:
        """Read the resource at `ref` and compare it with `spec`. Phase.ABSENT when it is gone."""
        ...

    def find(self, spec: SpecT_contra, owner: Owner) -> Found | None:
        """Look the resource up by its natural key (no ref known): adoption and crash recovery."""
        ...

    def create(self, spec: SpecT_contra, owner: Owner, token: ClientToken, resolved: Resolved) -> Created:
        """Create it. `token` is deterministic: the same attempt always sends the same token."""
        ...

    def update(
        self, spec: SpecT_contra, ref: ExternalRef, observation: Observation, owner: Owner, resolved: Resolved
    ) -> None:
        """Change in place exactly the members listed in `observation.diff` (tags included)."""
        ...

    def delete(self, spec: SpecT_contra, ref: ExternalRef) -> None:
        """Start deleting. Idempotent: a resource already gone is not an error."""
        ...

    def ref_for_id(self, spec: SpecT_contra, external_id: str) -> ExternalRef:
        """The ref of an existing resource named by the user for adoption (annotation)."""
        ...

    def list_page(self, parent: Mapping[str, str], token: str | None) -> Page:
        """One page of the resources under `parent` (the ref fields `KindInfo.list_parent` names),
        from `token` on (None: the first page). Read-only. Raises NotFoundError when the parent
        itself is gone (every resource under it is then gone too)."""
        ...


class CommonSpec(BaseModel):
    """Spec fields every kind has."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    region: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d$",
        description="AWS region of the resource. Defaults to the operator's region (AWS_REGION).",
    )
    deletionPolicy: Literal["Delete", "Retain"] = Field(
        default="Delete",
        description="Delete: the AWS resource is deleted with this object. Retain: it is left in AWS.",
    )
    managementPolicy: Literal["Manage", "Observe"] = Field(
        default="Manage",
        description="Manage: the operator creates, updates and deletes the AWS resource. Observe: it only "
        "reads the resource named by the annotation q-operator.dev/adopt-id, fills status and reports "
        "where AWS differs from the spec; it never creates, updates, tags or deletes, and deleting this "
        "object leaves AWS untouched. Changing Observe to Manage adopts the resource.",
    )


class Condition(BaseModel):
    """A metav1.Condition."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="Ready or Synced.")
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(description="CamelCase reason, one of the constants in docs/troubleshooting.md.")
    message: str = ""
    lastTransitionTime: str = Field(description="When status last changed (RFC 3339).")
    observedGeneration: int | None = None


class CreatePending(BaseModel):
    """The engine's record that it is about to create (the crash window marker)."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(description="The clientToken the create was (or is about to be) sent with.")
    since: str = Field(description="RFC 3339 time the intent was recorded.")
    sent: str | None = Field(
        default=None,
        description="RFC 3339 time by which a create under this intent may have reached AWS without an "
        "answer (the answer was lost, or the operator restarted): it may still show in reads until the "
        "consistency bound has passed.",
    )


class LastWrite(BaseModel):
    """The engine's record of its last write to the current AWS resource: reads within the consistency
    bound after it may not show it yet."""

    model_config = ConfigDict(extra="forbid")

    operation: Literal["create", "update", "delete"] = Field(description="What the write was.")
    at: str = Field(description="RFC 3339 time its answer came (or was lost).")
    generation: int = Field(description="The generation it was sent for.")
    created: str | None = Field(
        default=None, description="RFC 3339 time the operator created (or found) the current resource."
    )
    settling: list[str] = Field(
        default_factory=list,
        description="Spec paths a read may not show yet within the bound ('*': any).",
    )


class CommonStatus(BaseModel):
    """Status fields every kind has. Kind status models subclass this and add AWS's outputs."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    observedGeneration: int | None = Field(default=None, description="The generation last reconciled.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready and Synced.")
    createPending: CreatePending | None = Field(
        default=None, description="Set while a create may have reached AWS without its ID being recorded."
    )
    retiring: list[dict[str, str]] = Field(
        default_factory=list, description="Refs of replaced AWS resources still to be deleted."
    )
    region: str | None = Field(
        default=None, description="The AWS region the resource lives in, as the operator recorded it."
    )
    accountId: str | None = Field(
        default=None,
        description="The AWS account the resource lives in: that of the role its namespace is bound to, "
        "or the operator's own.",
    )
    lastWrite: LastWrite | None = Field(
        default=None, description="The operator's last write to the AWS resource (eventual consistency)."
    )
    observeOnly: bool | None = Field(
        default=None,
        description="The recorded AWS resource was only observed (managementPolicy Observe), never "
        "adopted: it becomes this object's only through adoption, when the policy changes to Manage.",
    )
    lastHandledReconcileAt: str | None = Field(
        default=None,
        description="The value of the annotation q-operator.dev/reconcile-requested-at that the last "
        "reconcile acted on: equal to the annotation once the requested reconcile is done.",
    )


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: Literal["string", "integer", "date", "boolean"] = "string"
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class PassRole:
    """iam:PassRole, which AWS checks on the caller when one of `actions` hands a role (a roleArn
    in the request) to `service`: no request of its own shows it."""

    #: the service principal the role is passed to (iam:PassedToService), e.g. qbusiness.amazonaws.com.
    service: str
    #: the IAM actions (as in `KindInfo.iam_actions`) whose requests carry such a role.
    actions: tuple[str, ...]


StatusT = TypeVar("StatusT", bound=CommonStatus)


@dataclass(frozen=True)
class KindInfo(Generic[SpecT, StatusT]):
    """Everything known about one kind, named once: the engine, the generators (CRDs, RBAC rules, IAM
    policies, Argo CD checks), the demo and the tests all read it from here."""

    kind: str
    group: str
    version: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec_model: type[SpecT]
    status_model: type[StatusT]
    #: the boto3 service name whose client the adapter needs.
    service: str
    adapter_factory: Callable[[Any], Adapter[SpecT]]
    #: status fields that together address the AWS resource (the ExternalRef); the last one is the ID
    #: the adopt annotation names (`Adapter.ref_for_id`).
    ref_fields: tuple[str, ...]
    #: look up by natural key before every first create (kinds whose create API has no client token).
    find_before_create: bool = False
    #: the ref fields one List call covers (ListPlugins: the application's), so the engine can watch
    #: every Ready resource under one parent with one sweep of pages (`Adapter.list_page`); () when
    #: one List call covers the region; None when the kind has no List call: its Ready objects are
    #: then observed one by one.
    list_parent: tuple[str, ...] | None = None
    printer_columns: tuple[PrinterColumn, ...] = ()
    #: a status field worth showing beside a health verdict (the Argo CD health check's message).
    health_detail: str = ""
    categories: tuple[str, ...] = ("q-operator", "aws")
    #: CEL rules at the root of the CRD schema (x-kubernetes-validations: rule, message, fieldPath),
    #: for rules that need metadata.name or span spec; rules within the spec live in the models'
    #: json_schema_extra.
    root_validations: tuple[dict[str, str], ...] = ()
    description: str = ""
    # What the generated permissions, the demo and the tests read (tests/unit/test_registry.py holds
    # every registered kind to having them).
    #: the status field that names the AWS resource to a user: shown beside the object, and the value
    #: the adopt annotation (q-operator.dev/adopt-id) takes.
    id_field: str = ""
    #: the status field holding the resource's ARN ("" when the API gives none).
    arn_field: str = ""
    #: every IAM action the adapter's calls need, spelled as IAM spells them (service:Action): the IAM
    #: policies in docs/ are generated from these, and the end-to-end suite proves them both ways.
    iam_actions: tuple[str, ...] = ()
    #: iam:PassRole the kind's requests need, if any.
    pass_role: PassRole | None = None
    #: the file under samples/ that shows the kind first (the docs and the tests apply it).
    sample: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def plural_path(self) -> str:
        """group/version/plural: how the sandbox and the tests address the kind's objects."""
        return f"{self.group}/{self.version}/{self.plural}"
