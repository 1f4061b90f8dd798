"""The QLibraryItem kind: an Amazon Q Apps library item, through the boto3 `qapps` client.

A library item publishes one version of a Q App to the library of a Q Business instance. The qapps
API gives it no client token and no tags, so this module cannot mark an item as ours: the engine
records its intent to create before calling `create` (KIND.find_before_create) and, after a crash,
`find` looks the item up by appId and appVersion instead. An item cannot change its app, version
or instance in place: `observe` reports those as `replace`, and the engine creates the new item
before it deletes the old one.

Every qapps call carries the instance in the `instance-id` header (boto3's `instanceId`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from botocore.exceptions import ClientError
from pydantic import Field, field_validator

from q_operator.kinds import base
from q_operator.kinds.common import absent_if_not_found, aws_time, is_not_found, not_found_as

#: botocore's qapps UUID shape, anchored: the service applies it to the whole value.
UUID_PATTERN = r"^[\da-f]{8}-[\da-f]{4}-[45][\da-f]{3}-[89ABab][\da-f]{3}-[\da-f]{12}$"
APP_VERSION_MAX = 2147483647
CATEGORIES_MAX = 3
#: ListLibraryItems' page limit maximum (PageLimit 1-100): the fewest calls per lookup.
LIST_PAGE_LIMIT = 100

CategoryId = Annotated[str, Field(pattern=UUID_PATTERN)]


class QLibraryItemSpec(base.CommonSpec):
    """The desired library item. No tags: the qapps API cannot tag a library item."""

    instanceId: str = Field(
        min_length=1,
        description="The Amazon Q Business application environment instance whose library holds the "
        "item (sent as the instance-id header). Changing it publishes a new item in the new instance "
        "and deletes the old one.",
    )
    appId: str = Field(
        pattern=UUID_PATTERN,
        description="The ID (UUID) of the Q App to publish. Changing it replaces the library item.",
    )
    appVersion: int = Field(
        strict=True,
        ge=0,
        le=APP_VERSION_MAX,
        description="The version of the Q App to publish. Bumping it publishes the new version as a new "
        "library item, then deletes the item of the old version.",
    )
    categories: list[CategoryId] = Field(
        default_factory=list,
        max_length=CATEGORIES_MAX,
        description="Up to 3 category IDs (UUIDs) of the instance's library, without duplicates. The "
        "categories must already exist in the instance.",
        # A set: the API server refuses a repeated ID ("Duplicate value") without a CEL rule.
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    itemStatus: Literal["PUBLISHED", "DISABLED"] | None = Field(
        default=None,
        description="PUBLISHED or DISABLED, applied with UpdateLibraryItem after the item is created. "
        "Unset: whatever AWS gives a new item, left alone.",
    )
    isVerified: bool | None = Field(
        default=None,
        strict=True,
        description="Whether the item is marked verified, applied with UpdateLibraryItemMetadata. "
        "Unset: left alone.",
    )

    @field_validator("categories")
    @classmethod
    def _categories_are_distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("categories must not repeat an ID")
        return value


class QLibraryItemStatus(base.CommonStatus):
    """What AWS reports about the library item, under the API's names."""

    instanceId: str | None = Field(default=None, description="The instance the item lives in.")
    libraryItemId: str | None = Field(default=None, description="The library item's ID.")
    appId: str | None = Field(default=None, description="The published Q App's ID.")
    appVersion: int | None = Field(default=None, description="The published Q App version.")
    itemStatus: str | None = Field(
        default=None, description="AWS's own status string for the item (e.g. Published, Disabled)."
    )
    isVerified: bool | None = Field(default=None, description="Whether the item is verified.")
    ratingCount: int | None = Field(default=None, description="How many users rated the item.")
    userCount: int | None = Field(default=None, description="How many users use the app.")
    createdAt: str | None = Field(default=None, description="When the item was created (RFC 3339).")
    createdBy: str | None = Field(default=None, description="Who created the item.")
    updatedAt: str | None = Field(default=None, description="When the item was last updated (RFC 3339).")
    updatedBy: str | None = Field(default=None, description="Who last updated the item.")
    categories: list[str] | None = Field(default=None, description="The IDs of the item's categories.")


def _item_outputs(instance_id: str, item: Mapping[str, Any]) -> dict[str, Any]:
    """Status fields from a LibraryItem view (GetLibraryItem, UpdateLibraryItem, ListLibraryItems) or
    from CreateLibraryItem's shorter output; members AWS left out are left out."""
    outputs: dict[str, Any] = {
        "instanceId": instance_id,
        "libraryItemId": item.get("libraryItemId"),
        "appId": item.get("appId"),
        "appVersion": item.get("appVersion"),
        "itemStatus": item.get("status"),
        "isVerified": item.get("isVerified"),
        "ratingCount": item.get("ratingCount"),
        "userCount": item.get("userCount"),
        "createdAt": aws_time(item.get("createdAt")),
        "createdBy": item.get("createdBy"),
        "updatedAt": aws_time(item.get("updatedAt")),
        "updatedBy": item.get("updatedBy"),
    }
    if "categories" in item:
        outputs["categories"] = [category["id"] for category in item["categories"]]
    return {key: value for key, value in outputs.items() if value is not None}


#: What a ListLibraryItems member shows that moves when the item changes (UpdateLibraryItem moves
#: updatedAt, UpdateLibraryItemMetadata the verification). Not the rating or user counts: they move
#: with use, not with a change, and ListLibraryItems may count users differently from GetLibraryItem.
SUMMARY_FIELDS = ("updatedAt", "itemStatus", "isVerified", "categories", "appId", "appVersion")


def summary_of(instance_id: str, item: Mapping[str, Any]) -> base.Summary:
    """A ListLibraryItems member as the engine compares it with status (as observe writes it)."""
    outputs = _item_outputs(instance_id, item)
    return base.Summary(
        ref={"instanceId": instance_id, "libraryItemId": str(item["libraryItemId"])},
        seen={key: outputs[key] for key in SUMMARY_FIELDS if key in outputs},
    )


def diff_item(spec: QLibraryItemSpec, item: Mapping[str, Any]) -> tuple[str, ...]:
    """The spec paths UpdateLibraryItem / UpdateLibraryItemMetadata must change.

    Categories compare as sets (AWS keeps no order). AWS reports the status as a free string
    ("Published") while the request takes an enum (PUBLISHED), so they compare case-insensitively.
    Unset itemStatus / isVerified mean "leave alone" and never differ.
    """
    diff: list[str] = []
    aws_categories = {category["id"] for category in item.get("categories", [])}
    if set(spec.categories) != aws_categories:
        diff.append("categories")
    if spec.itemStatus is not None and spec.itemStatus.casefold() != str(item.get("status", "")).casefold():
        diff.append("itemStatus")
    if spec.isVerified is not None and spec.isVerified != bool(item.get("isVerified", False)):
        diff.append("isVerified")
    return tuple(diff)


def replacements(spec: QLibraryItemSpec, ref: base.ExternalRef, item: Mapping[str, Any]) -> tuple[str, ...]:
    """The spec paths no qapps call can change in place: the item must be replaced."""
    replace: list[str] = []
    if ref.get("instanceId") != spec.instanceId:
        replace.append("instanceId")
    if item.get("appId") != spec.appId:
        replace.append("appId")
    if item.get("appVersion") != spec.appVersion:
        replace.append("appVersion")
    return tuple(replace)


def _not_found(error: ClientError, spec: QLibraryItemSpec) -> base.NotFoundError | None:
    """Name the spec field a ResourceNotFoundException from create/update/list is about, or None when
    it is not one (the item itself, say). The engine leads the message with the step.

    qapps' ResourceNotFoundException carries resourceId and resourceType (botocore puts them at
    the top level of the response): a category the instance does not have, the app, or the instance.
    """
    if not is_not_found(error):
        return None
    resource_id = str(error.response.get("resourceId", ""))
    resource_type = str(error.response.get("resourceType", "")).casefold()
    aws_message = str(error.response.get("Error", {}).get("Message", ""))
    if resource_id in spec.categories or "categor" in resource_type:
        missing = resource_id if resource_id in spec.categories else ", ".join(spec.categories)
        return base.NotFoundError(
            "categories",
            f"category {missing} does not exist in instance {spec.instanceId} (AWS: {aws_message})",
        )
    if resource_id == spec.appId or resource_type in ("app", "qapp", "application"):
        return base.NotFoundError(
            "appId",
            f"Q App {spec.appId} does not exist in instance {spec.instanceId} (AWS: {aws_message})",
        )
    if resource_id == spec.instanceId or "instance" in resource_type:
        return base.NotFoundError(
            "instanceId", f"instance {spec.instanceId} does not exist (AWS: {aws_message})"
        )
    return None


def _match(spec: QLibraryItemSpec, library: Sequence[Mapping[str, Any]]) -> base.Found | None:
    """The item of the library publishing spec.appId at spec.appVersion. Should several match, the
    newest is returned: after a crash mid-create, ours is the newest."""
    matches = [
        item
        for item in library
        if item.get("appId") == spec.appId and item.get("appVersion") == spec.appVersion
    ]
    if not matches:
        return None
    epoch = datetime.min.replace(tzinfo=UTC)
    newest = max(matches, key=lambda item: item.get("createdAt") or epoch)
    return base.Found(
        ref={"instanceId": spec.instanceId, "libraryItemId": str(newest["libraryItemId"])},
        owner_mark=None,
        created_at=newest.get("createdAt"),
    )


def _translated(error: Exception, spec: QLibraryItemSpec) -> Exception:
    """A failed listing as this spec's answer: a NotFoundError names the spec's own instance."""
    cause = error.__cause__
    if isinstance(error, base.NotFoundError) and isinstance(cause, ClientError):
        return _not_found(cause, spec) or error
    return error


class QLibraryItemAdapter:
    """The verbs of `base.Adapter` over a boto3 `qapps` client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def observe(
        self, spec: QLibraryItemSpec, ref: base.ExternalRef, owner: base.Owner, resolved: base.Resolved
    ) -> base.Observation:
        instance_id = ref["instanceId"]
        item = absent_if_not_found(
            self._client.get_library_item, instanceId=instance_id, libraryItemId=ref["libraryItemId"]
        )
        if item is None:
            return base.Observation(phase=base.Phase.ABSENT)
        # A library item has no asynchronous build: once it exists it is usable.
        return base.Observation(
            phase=base.Phase.READY,
            outputs=_item_outputs(instance_id, item),
            diff=diff_item(spec, item),
            replace=replacements(spec, ref, item),
        )

    def _list_items(self, spec: QLibraryItemSpec) -> Iterator[Mapping[str, Any]]:
        kwargs: dict[str, Any] = {"instanceId": spec.instanceId, "limit": LIST_PAGE_LIMIT}
        while True:
            try:
                page = self._client.list_library_items(**kwargs)
            except ClientError as error:
                translated = _not_found(error, spec)
                if translated is not None:
                    raise translated from error
                raise
            yield from page.get("libraryItems", [])
            next_token = page.get("nextToken")
            if not next_token:
                return
            kwargs["nextToken"] = next_token

    def find(self, spec: QLibraryItemSpec, owner: base.Owner) -> base.Found | None:
        """The item publishing spec.appId at spec.appVersion in spec.instanceId, if any.

        ListLibraryItems has no appId filter, so this pages through the whole library."""
        return _match(spec, list(self._list_items(spec)))

    def find_many(
        self, specs: Sequence[QLibraryItemSpec], owners: Sequence[base.Owner]
    ) -> list[base.Found | Exception | None]:
        """`find` for each spec, listing each instance's library once for all of them (the engine
        asks for the looks of many creates at once: engine/looks.py). A failed listing is the answer
        of the specs in its instance only."""
        libraries: dict[str, list[Mapping[str, Any]] | Exception] = {}
        answers: list[base.Found | Exception | None] = []
        for spec in specs:
            if spec.instanceId not in libraries:
                try:
                    libraries[spec.instanceId] = list(self._list_items(spec))
                except Exception as error:
                    libraries[spec.instanceId] = error
            library = libraries[spec.instanceId]
            if isinstance(library, Exception):
                answers.append(_translated(library, spec))
            else:
                answers.append(_match(spec, library))
        return answers

    def create(
        self, spec: QLibraryItemSpec, owner: base.Owner, token: base.ClientToken, resolved: base.Resolved
    ) -> base.Created:
        # CreateLibraryItem takes no client token: `token` is unused. The engine's pending marker and
        # `find` (find_before_create) keep a crash between this call and the status write from
        # ever creating a second item.
        try:
            created = self._client.create_library_item(
                instanceId=spec.instanceId,
                appId=spec.appId,
                appVersion=spec.appVersion,
                categories=list(spec.categories),
            )
        except ClientError as error:
            translated = _not_found(error, spec)
            if translated is not None:
                raise translated from error
            raise
        outputs = _item_outputs(spec.instanceId, created)
        # CreateLibraryItem's output has no appId, appVersion or categories: they are what was sent.
        outputs.update(appId=spec.appId, appVersion=spec.appVersion, categories=list(spec.categories))
        return base.Created(
            ref={"instanceId": spec.instanceId, "libraryItemId": str(created["libraryItemId"])},
            outputs=outputs,
        )

    def update(
        self,
        spec: QLibraryItemSpec,
        ref: base.ExternalRef,
        observation: base.Observation,
        owner: base.Owner,
        resolved: base.Resolved,
    ) -> None:
        item_ref = {"instanceId": ref["instanceId"], "libraryItemId": ref["libraryItemId"]}
        try:
            changes: dict[str, Any] = {}
            if "categories" in observation.diff:
                changes["categories"] = list(spec.categories)
            if "itemStatus" in observation.diff and spec.itemStatus is not None:
                changes["status"] = spec.itemStatus
            if changes:
                self._client.update_library_item(**item_ref, **changes)
            if "isVerified" in observation.diff and spec.isVerified is not None:
                self._client.update_library_item_metadata(**item_ref, isVerified=spec.isVerified)
        except ClientError as error:
            translated = _not_found(error, spec)
            if translated is not None:
                raise translated from error
            raise

    def delete(self, spec: QLibraryItemSpec, ref: base.ExternalRef) -> None:
        # Not found: already gone (or its whole instance is), nothing left to delete.
        absent_if_not_found(
            self._client.delete_library_item, instanceId=ref["instanceId"], libraryItemId=ref["libraryItemId"]
        )

    def ref_for_id(self, spec: QLibraryItemSpec, external_id: str) -> base.ExternalRef:
        return {"instanceId": spec.instanceId, "libraryItemId": external_id}

    def list_page(self, parent: Mapping[str, str], token: str | None) -> base.Page:
        instance_id = parent["instanceId"]
        kwargs: dict[str, Any] = {"instanceId": instance_id, "limit": LIST_PAGE_LIMIT}
        if token:
            kwargs["nextToken"] = token
        with not_found_as("instanceId", f"instance {instance_id} does not exist"):
            page = self._client.list_library_items(**kwargs)
        summaries = tuple(summary_of(instance_id, item) for item in page.get("libraryItems", []))
        return base.Page(summaries, page.get("nextToken") or None)


KIND: base.KindInfo[QLibraryItemSpec, QLibraryItemStatus] = base.KindInfo(
    kind="QLibraryItem",
    group="qapps.q-operator.dev",
    version="v1alpha1",
    plural="qlibraryitems",
    singular="qlibraryitem",
    short_names=("qli",),
    spec_model=QLibraryItemSpec,
    status_model=QLibraryItemStatus,
    service="qapps",
    adapter_factory=QLibraryItemAdapter,
    ref_fields=("instanceId", "libraryItemId"),
    list_parent=("instanceId",),
    id_field="libraryItemId",
    iam_actions=(
        "qapps:CreateLibraryItem",
        "qapps:GetLibraryItem",
        "qapps:UpdateLibraryItem",
        "qapps:UpdateLibraryItemMetadata",
        "qapps:DeleteLibraryItem",
        "qapps:ListLibraryItems",
    ),
    sample="qlibraryitem-published.yaml",
    find_before_create=True,
    health_detail="itemStatus",
    printer_columns=(
        base.PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
        base.PrinterColumn("Status", ".status.itemStatus", description="AWS's status of the item."),
        base.PrinterColumn("Item ID", ".status.libraryItemId"),
        base.PrinterColumn("App Version", ".spec.appVersion", type="integer"),
        base.PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
    description="An Amazon Q Apps library item: one version of a Q App published to the library of an "
    "Amazon Q Business instance. Library items cannot carry tags.",
)
