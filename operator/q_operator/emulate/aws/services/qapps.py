"""qapps library items and categories, all scoped by the `instance-id` header.

Category rule: an instance's categories come from BatchCreateCategory. Once an instance has any,
a library item may only name existing ones (else ResourceNotFoundException naming the category);
an instance with none accepts any well-formed category id and shows it with a made-up title, so an
operator can be tested without first creating categories.

updatedAt/updatedBy move on CreateLibraryItem, UpdateLibraryItem (every call, even one that changes
nothing) and UpdateLibraryItemMetadata with isVerified; not on reviews, and not when deleting a
category takes it off an item (AWS does not say; see docs/aws-standin.md).
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any

from q_operator.emulate.aws.call import Call, Params, Service
from q_operator.emulate.aws.config import Knobs, known_flag, names_or_any
from q_operator.emulate.aws.errors import ApiError, conflict, not_found, quota_exceeded
from q_operator.emulate.aws.services.paging import page
from q_operator.emulate.aws.state import Table


@dataclass
class QAppsKnobs(Knobs):
    """qapps's settings: which instances and Q Apps exist, the library item quota."""

    known_instances: set[str] | None = None
    known_apps: set[str] | None = None
    library_items_per_instance: int = 1000

    PARSE = {"known_instances": names_or_any, "known_apps": names_or_any}
    QUOTAS = ("library_items_per_instance",)
    FLAGS = (known_flag("instances"), known_flag("apps"))


@dataclass
class Category:
    id: str
    title: str
    color: str | None = None


@dataclass
class LibraryItem:
    instance_id: str
    library_item_id: str
    app_id: str
    app_version: int
    categories: list[str]
    status: str
    created_at: float
    created_by: str
    updated_at: float
    updated_by: str
    is_verified: bool = False
    raters: list[str] = field(default_factory=list)
    """Callers who rated the item: ratingCount and isRatedByUser come from it."""


@dataclass
class Backend:
    """Library items (by libraryItemId, grouped by instance) and categories of one account and region."""

    items: Table[LibraryItem] = field(default_factory=lambda: Table(group=lambda i: i.instance_id))
    categories: dict[str, dict[str, Category]] = field(default_factory=dict)
    """instanceId -> id -> category."""


QCall = Call[Backend, QAppsKnobs]

MAX_CATEGORIES = 10
"""ListCategories returns at most 10: the instance's limit."""


def _instance(call: QCall, params: Params) -> str:
    instance_id: str = params["instanceId"]
    known = call.knobs.known_instances
    if known is not None and instance_id not in known:
        raise not_found(instance_id, "Instance", f"Instance {instance_id} not found")
    return instance_id


def _check_categories(call: QCall, instance_id: str, ids: list[str]) -> None:
    defined = call.backend.categories.get(instance_id)
    if not defined:
        return
    for category_id in ids:
        if category_id not in defined:
            raise not_found(
                category_id, "Category", f"Category {category_id} not found in instance {instance_id}"
            )


def _missing(item_id: str) -> ApiError:
    return not_found(item_id, "LibraryItem", f"Library item {item_id} not found")


def _read(call: QCall, params: Params) -> LibraryItem:
    """The item as a read sees it (read lag applies)."""
    instance_id = _instance(call, params)
    item = call.backend.items.read(params["libraryItemId"], call.view)
    if item is None or item.instance_id != instance_id:
        raise _missing(params["libraryItemId"])
    return item


def _primary(call: QCall, params: Params) -> LibraryItem:
    """The item as writes see it (the primary copy, never lagging)."""
    instance_id = _instance(call, params)
    item = call.backend.items.get(params["libraryItemId"], call.now)
    if item is None or item.instance_id != instance_id:
        raise _missing(params["libraryItemId"])
    return item


def _edit(call: QCall, params: Params) -> LibraryItem:
    """The primary item, to change in place (its old state stays visible for up to the lag)."""
    return call.backend.items.edit(_primary(call, params).library_item_id, call.view)


def _app_count(call: QCall, instance_id: str, category_id: str) -> int:
    return sum(1 for i in call.backend.items.values(call.now, instance_id) if category_id in i.categories)


def _category_view(call: QCall, instance_id: str, category_id: str) -> dict[str, Any]:
    found = call.backend.categories.get(instance_id, {}).get(category_id)
    title = found.title if found else f"Category_{category_id[:8]}"
    view: dict[str, Any] = {"id": category_id, "title": title}
    if found and found.color:
        view["color"] = found.color
    view["appCount"] = _app_count(call, instance_id, category_id)
    return view


def _view(call: QCall, item: LibraryItem) -> Params:
    """The LibraryItem shape; isRatedByUser is from the caller's point of view."""
    return {
        "libraryItemId": item.library_item_id,
        "appId": item.app_id,
        "appVersion": item.app_version,
        "categories": [_category_view(call, item.instance_id, c) for c in item.categories],
        "status": item.status,
        "createdAt": item.created_at,
        "createdBy": item.created_by,
        "updatedAt": item.updated_at,
        "updatedBy": item.updated_by,
        "ratingCount": len(item.raters),
        "isRatedByUser": call.caller in item.raters,
        "userCount": 0,
        "isVerified": item.is_verified,
    }


def create_library_item(call: QCall, params: Params) -> Params:
    instance_id = _instance(call, params)
    known = call.knobs.known_apps
    if known is not None and params["appId"] not in known:
        raise not_found(params["appId"], "QApp", f"Q App {params['appId']} not found")
    _check_categories(call, instance_id, params["categories"])
    count = call.backend.items.count(call.now, instance_id)
    if count >= call.knobs.library_items_per_instance:
        raise quota_exceeded(instance_id, "LibraryItem", f"Library item quota of {count} reached")
    item = LibraryItem(
        instance_id=instance_id,
        library_item_id=str(uuid.uuid4()),
        app_id=params["appId"],
        app_version=params["appVersion"],
        categories=list(dict.fromkeys(params["categories"])),
        status="PUBLISHED",
        created_at=call.now,
        created_by=call.caller,
        updated_at=call.now,
        updated_by=call.caller,
    )
    call.backend.items.create(item.library_item_id, item, call.view)
    view = _view(call, item)
    return {
        k: view[k]
        for k in (
            "libraryItemId",
            "status",
            "createdAt",
            "createdBy",
            "updatedAt",
            "updatedBy",
            "ratingCount",
            "isVerified",
        )
    }


def get_library_item(call: QCall, params: Params) -> Params:
    item = _read(call, params)
    app_id = params.get("appId")
    if app_id is not None and app_id != item.app_id:
        raise not_found(item.library_item_id, "LibraryItem", f"Library item not found for app {app_id}")
    return _view(call, item)


def update_library_item(call: QCall, params: Params) -> Params:
    item = _primary(call, params)
    if params.get("categories") is not None:
        _check_categories(call, item.instance_id, params["categories"])
    item = call.backend.items.edit(item.library_item_id, call.view)
    if params.get("categories") is not None:
        item.categories = list(dict.fromkeys(params["categories"]))
    if params.get("status") is not None:
        item.status = params["status"]
    item.updated_at = call.now
    item.updated_by = call.caller
    return _view(call, item)


def update_library_item_metadata(call: QCall, params: Params) -> Params:
    item = _edit(call, params)
    if params.get("isVerified") is not None:
        item.is_verified = params["isVerified"]
        item.updated_at = call.now
        item.updated_by = call.caller
    return {}


def delete_library_item(call: QCall, params: Params) -> Params:
    call.backend.items.delete(_primary(call, params).library_item_id, call.view)
    return {}


def list_library_items(call: QCall, params: Params) -> Params:
    instance_id = _instance(call, params)
    category_id = params.get("categoryId")
    entries = [
        (position, item)
        for position, item in call.backend.items.read_all(call.view, instance_id)
        if category_id is None or category_id in item.categories
    ]
    chosen, following = page(entries, params.get("nextToken"), params.get("limit") or 20)
    return {"libraryItems": [_view(call, i) for i in chosen], "nextToken": following}


def list_categories(call: QCall, params: Params) -> Params:
    instance_id = _instance(call, params)
    defined = call.backend.categories.get(instance_id, {})
    return {"categories": [_category_view(call, instance_id, c) for c in defined]}


def batch_create_category(call: QCall, params: Params) -> Params:
    instance_id = _instance(call, params)
    defined = call.backend.categories.setdefault(instance_id, {})
    fresh: list[Category] = []
    for entry in params["categories"]:
        category_id = entry.get("id") or str(uuid.uuid4())
        if category_id in defined or any(c.id == category_id for c in fresh):
            raise conflict(category_id, "Category", f"Category {category_id} already exists")
        fresh.append(Category(category_id, entry["title"], entry.get("color")))
    if len(defined) + len(fresh) > MAX_CATEGORIES:
        raise conflict(instance_id, "Category", f"An instance holds at most {MAX_CATEGORIES} categories")
    defined.update({c.id: c for c in fresh})
    return {}


def batch_update_category(call: QCall, params: Params) -> Params:
    instance_id = _instance(call, params)
    defined = call.backend.categories.get(instance_id, {})
    for entry in params["categories"]:
        if entry["id"] not in defined:
            raise not_found(
                entry["id"], "Category", f"Category {entry['id']} not found in instance {instance_id}"
            )
    for entry in params["categories"]:
        defined[entry["id"]] = Category(entry["id"], entry["title"], entry.get("color"))
    return {}


def batch_delete_category(call: QCall, params: Params) -> Params:
    """Deleting a category also takes it off every library item that had it."""
    instance_id = _instance(call, params)
    defined = call.backend.categories.get(instance_id, {})
    for category_id in params["categories"]:
        if category_id not in defined:
            raise not_found(
                category_id, "Category", f"Category {category_id} not found in instance {instance_id}"
            )
    items = call.backend.items
    for category_id in params["categories"]:
        del defined[category_id]
        for item in items.values(call.now, instance_id):
            if category_id in item.categories:
                items.edit(item.library_item_id, call.view).categories.remove(category_id)
    return {}


def associate_library_item_review(call: QCall, params: Params) -> Params:
    item = _edit(call, params)
    if call.caller not in item.raters:
        item.raters.append(call.caller)
    return {}


def disassociate_library_item_review(call: QCall, params: Params) -> Params:
    item = _edit(call, params)
    if call.caller in item.raters:
        item.raters.remove(call.caller)
    return {}


def dump(backend: Backend, now: float) -> dict[str, Any]:
    return {
        "libraryItems": [dataclasses.asdict(i) for i in backend.items.values(now, every=True)],
        "categories": {
            instance: [dataclasses.asdict(c) for c in categories.values()]
            for instance, categories in backend.categories.items()
        },
    }


SERVICE = Service[Backend, QAppsKnobs](
    name="qapps",
    backend=Backend,
    knobs=QAppsKnobs,
    dump=dump,
    handlers={
        "CreateLibraryItem": create_library_item,
        "GetLibraryItem": get_library_item,
        "UpdateLibraryItem": update_library_item,
        "UpdateLibraryItemMetadata": update_library_item_metadata,
        "DeleteLibraryItem": delete_library_item,
        "ListLibraryItems": list_library_items,
        "ListCategories": list_categories,
        "BatchCreateCategory": batch_create_category,
        "BatchUpdateCategory": batch_update_category,
        "BatchDeleteCategory": batch_delete_category,
        "AssociateLibraryItemReview": associate_library_item_review,
        "DisassociateLibraryItemReview": disassociate_library_item_review,
    },
)
