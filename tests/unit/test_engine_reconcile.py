"""The reconcile engine's lifecycle, driven with a fake adapter: each test is one behaviour."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from q_operator.engine import conditions as c
from q_operator.engine.identity import ADOPTION_ALLOWED, ADOPTION_ANNOTATION
from q_operator.engine.reconcile import ADOPT_ANNOTATION, Decision, Trigger, make_token
from q_operator.kinds.base import Found, InUse, Phase, Resolved
from tests.unit.engine_fakes import Thing, ThingSpec, World, world

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# ----- create and the crash window


def test_create_records_intent_before_calling_create() -> None:
    """The first cycle only persists createPending and requeues at once: no AWS create yet."""
    w = world()
    out = run(w.cycle())
    assert out.decision is Decision.REQUEUE and out.delay == 0
    assert w.cloud.count("create") == 0
    assert set(w.status["createPending"]) == {"token", "since"}
    run(w.cycle())
    assert w.cloud.count("create") == 1
    assert w.status["thingId"] == "t-1" and w.status["thingArn"] == "arn:thing/t-1"
    assert "createPending" not in w.status
    assert ("Normal", c.EV_CREATED, "created Thing t-1") in w.events


def test_create_converges_to_ready_and_synced() -> None:
    """After the build, Ready and Synced are True with observedGeneration set."""
    w = world()
    out = run(w.converge())
    assert out.decision is Decision.DONE
    assert w.condition(c.READY)["status"] == "True" and w.condition(c.READY)["reason"] == c.AVAILABLE
    assert w.condition(c.SYNCED)["status"] == "True"
    assert w.status["observedGeneration"] == 1
    assert w.cloud.count("create") == 1


def test_crash_after_create_replays_token_and_creates_nothing_new() -> None:
    """A create that reached AWS but whose ID was never written is found again, not duplicated."""
    w = world()
    run(w.cycle())  # marker
    marker = dict(w.status)
    run(w.cycle())  # create reaches AWS ...
    w.status = marker  # ... but the status write is lost (kill -9)
    run(w.converge())
    assert len(w.cloud.things) == 1
    assert w.status["thingId"] == "t-1"


def test_crash_after_create_finds_untagged_resource_without_token() -> None:
    """Kinds without a client token look by natural key; an untagged one made after the intent is ours."""
    w = world(tags=False, find_before_create=True)
    run(w.cycle())
    marker = dict(w.status)
    run(w.cycle())
    w.status = marker
    run(w.converge())
    assert w.cloud.count("create") == 1 and len(w.cloud.things) == 1
    assert w.status["thingId"] == "t-1"


def test_changed_spec_after_crash_looks_before_creating() -> None:
    """When the spec changed since the intent, the token differs: find first, adopt ours, then update."""
    w = world()
    run(w.cycle())
    marker = dict(w.status)
    run(w.cycle())
    w.status = marker
    w.change_spec(size=3)
    run(w.converge())
    assert len(w.cloud.things) == 1 and w.cloud.things["t-1"].size == 3
    assert w.cloud.count("find") >= 1


@pytest.mark.parametrize(
    ("mark", "age", "reason"),
    [
        pytest.param("other-ns.other.uid-9", 0, c.OWNED_BY_ANOTHER, id="marked-by-another-object"),
        pytest.param(None, -3600, c.ALREADY_EXISTS, id="unmarked-and-older-than-our-intent"),
    ],
)
def test_foreign_resource_is_refused_never_taken_over(mark: str | None, age: int, reason: str) -> None:
    """A resource with our natural key that is not ours stops the create, naming the conflict."""
    w = world(find_before_create=True)
    w.cloud.things["x-1"] = Thing("x-1", "alpha", 1, None, mark, w.clock() + timedelta(seconds=age))
    out = run(w.converge())
    assert out.decision is Decision.STOP
    assert w.condition(c.SYNCED)["reason"] == reason and "x-1" in w.condition(c.SYNCED)["message"]
    assert w.cloud.count("create") == 0 and "thingId" not in w.status
    assert ("Warning", reason) in [(t, r) for t, r, _ in w.events]


def test_already_exists_from_create_adopts_our_own() -> None:
    """AlreadyExists at create time (our earlier create) leads to find and adoption, not a failure."""
    w = world()
    run(w.cycle())
    token = w.status["createPending"]["token"]
    w.cloud.things["t-9"] = Thing("t-9", "alpha", 1, None, "ns.obj.uid-1", w.clock())
    w.cloud.tokens.pop(token, None)
    run(w.converge())
    assert w.status["thingId"] == "t-9" and len(w.cloud.things) == 1


def test_conflict_on_a_replayed_token_refuses_a_recent_untagged_resource() -> None:
    """A create sent with the intent's own token would have been answered with our resource: an
    untagged one in the way is somebody else's, even if made seconds before the intent."""
    w = world()
    w.cloud.things["x-1"] = Thing("x-1", "alpha", 1, None, None, w.clock() - timedelta(seconds=5))
    out = run(w.converge())
    assert out.decision is Decision.STOP
    synced = w.condition(c.SYNCED)
    assert synced["reason"] == c.ALREADY_EXISTS and "x-1" in synced["message"]
    assert w.condition(c.READY)["status"] == "False"
    assert "thingId" not in w.status and w.cloud.things["x-1"].mark is None


def test_token_is_deterministic() -> None:
    """Same object, spec and attempt give the same token; any of them changing gives another."""
    spec = ThingSpec(name="alpha")
    token = make_token("uid-1", "2026-01-01T00:00:00Z", spec, Resolved())
    assert token == make_token("uid-1", "2026-01-01T00:00:00Z", ThingSpec(name="alpha"), Resolved())
    assert token != make_token("uid-2", "2026-01-01T00:00:00Z", spec, Resolved())
    assert token != make_token("uid-1", "2026-01-01T00:00:01Z", spec, Resolved())
    assert token != make_token("uid-1", "2026-01-01T00:00:00Z", ThingSpec(name="beta"), Resolved())
    assert 1 <= len(token) <= 100 and token.isprintable()


# ----- builds


def test_build_in_progress_requeues_on_a_short_growing_interval() -> None:
    """While AWS builds, the engine polls at 1, 1, 1.5, 2.25 … s capped at 15, not kopf's 60 s (as after
    a restart, when the build's start is not remembered)."""
    w = world(build_polls=14)
    w.forgetful = True
    run(w.converge(limit=40))
    polls = [o.delay for o in w.outcomes if o.decision is Decision.REQUEUE and o.delay > 0][1:]
    assert polls == sorted(polls) and polls[0] == 1 and max(polls) == 15
    assert all(b <= a * 1.5 + 1e-9 for a, b in itertools.pairwise(polls))  # grows, never jumps
    assert w.condition(c.READY)["status"] == "True"


def test_polls_count_from_the_create_not_from_the_intent() -> None:
    """A create that waited long for the rate limiter still polls its fresh build after 1 s."""
    w = world(build_polls=3)
    run(w.cycle())  # intent: Ready Unknown
    w.clock.advance(40)  # the create waited in the limiter
    run(w.cycle())  # create: Ready False, the build clock starts
    assert run(w.cycle()).delay == 1


def test_build_failed_stops_until_the_generation_changes_then_replaces() -> None:
    """A failed build is reported once and not retried blindly; a spec change creates a new one."""
    w = world()
    run(w.converge())
    w.cloud.things["t-1"].phase, w.cloud.things["t-1"].message = Phase.FAILED, "CREATE_FAILED: bad schema"
    out = run(w.cycle())
    assert out.decision is Decision.STOP
    ready = w.condition(c.READY)
    assert ready["reason"] == c.BUILD_FAILED and "bad schema" in ready["message"]
    assert run(w.cycle()).decision is Decision.STOP  # resumed: still stopped, no second event
    assert w.reasons().count(c.BUILD_FAILED) == 1
    assert run(w.cycle(Trigger.DRIFT)).decision is Decision.STOP
    calls_before = len(w.cloud.calls)
    run(w.cycle(Trigger.DRIFT))
    assert len(w.cloud.calls) == calls_before  # the timer leaves a terminal failure alone
    w.change_spec(size=2)
    run(w.converge())
    assert w.status["thingId"] == "t-2" and "t-1" not in w.cloud.things
    assert c.EV_REPLACED in w.reasons()


# ----- update and drift


def test_update_sends_only_the_diff() -> None:
    """A spec change of one updatable field calls update with exactly that field."""
    w = world()
    run(w.converge())
    w.change_spec(size=4)
    run(w.converge())
    assert w.cloud.updates == [("size",)]
    assert c.EV_UPDATED in w.reasons() and c.EV_DRIFT_CORRECTED not in w.reasons()
    assert w.condition(c.READY)["observedGeneration"] == 2


def test_out_of_band_change_is_corrected_with_a_drift_event() -> None:
    """The timer finds an AWS-side change at an unchanged generation: DriftCorrected."""
    w = world()
    run(w.converge())
    w.cloud.things["t-1"].size = 9
    run(w.cycle(Trigger.DRIFT))
    run(w.converge())
    assert w.cloud.things["t-1"].size == 1
    assert c.EV_DRIFT_CORRECTED in w.reasons()


def test_steady_state_drift_check_writes_nothing() -> None:
    """A drift check that finds nothing produces no status patch and no event."""
    w = world()
    run(w.converge())
    events = len(w.events)
    out = run(w.cycle(Trigger.DRIFT))
    assert out.decision is Decision.DONE and out.status == {} and len(w.events) == events


def test_deleted_out_of_band_is_recreated() -> None:
    """A ref whose resource is gone: event Recreated, a new intent, a new resource."""
    w = world()
    run(w.converge())
    w.clock.advance(120)
    del w.cloud.things["t-1"]
    run(w.converge())
    assert w.status["thingId"] == "t-2" and c.EV_RECREATED in w.reasons()


def test_absent_right_after_create_is_not_recreated() -> None:
    """Read-after-create lag: a fresh ref reading absent is waited for, not created twice."""
    w = world()
    run(w.cycle())
    run(w.cycle())
    w.cloud.things.pop("t-1")
    out = run(w.cycle())
    assert out.decision is Decision.REQUEUE and w.status["thingId"] == "t-1"
    assert w.cloud.count("create") == 1


def test_replacement_keeps_the_old_until_the_new_is_ready() -> None:
    """A field AWS cannot change: the old resource is deleted only once the new one is READY."""
    w = world(build_polls=2)
    run(w.converge())
    w.change_spec(name="beta")
    seen_both = False
    for _ in range(20):
        out = run(w.cycle())
        new_id = w.status.get("thingId")
        if (
            new_id
            and new_id != "t-1"
            and w.cloud.things.get(new_id, Thing("", "", 0, None, None, w.clock())).building
        ):
            seen_both = seen_both or "t-1" in w.cloud.things
        if out.decision is not Decision.REQUEUE:
            break
    assert seen_both
    assert set(w.cloud.things) == {"t-2"} and w.status["thingId"] == "t-2"
    assert w.status.get("retiring") == []
    assert c.EV_REPLACING in w.reasons() and c.EV_REPLACED in w.reasons()


# ----- adoption


def test_adoption_takes_the_named_resource_and_creates_nothing() -> None:
    """adopt-id: the ref is written, the owner mark added by the next update, no create."""
    w = world()
    w.identities.update("ns", {ADOPTION_ANNOTATION: ADOPTION_ALLOWED})
    w.cloud.things["x-5"] = Thing("x-5", "alpha", 1, None, None, w.clock())
    w.annotations[ADOPT_ANNOTATION] = "x-5"
    run(w.converge())
    assert w.status["thingId"] == "x-5" and w.cloud.count("create") == 0
    assert w.cloud.things["x-5"].mark == "ns.obj.uid-1"
    assert c.EV_ADOPTED in w.reasons()


@pytest.mark.parametrize(
    ("present", "mark", "reason"),
    [
        pytest.param(False, None, c.ADOPT_TARGET_NOT_FOUND, id="no-such-resource"),
        pytest.param(True, "other.obj.uid-2", c.OWNED_BY_ANOTHER, id="managed-by-another-object"),
    ],
)
def test_adoption_refuses(present: bool, mark: str | None, reason: str) -> None:
    """Adoption never creates and never takes over another object's resource."""
    w = world()
    w.identities.update("ns", {ADOPTION_ANNOTATION: ADOPTION_ALLOWED})
    if present:
        w.cloud.things["x-5"] = Thing("x-5", "alpha", 1, None, mark, w.clock())
    w.annotations[ADOPT_ANNOTATION] = "x-5"
    out = run(w.converge())
    assert out.decision is Decision.STOP and w.condition(c.SYNCED)["reason"] == reason
    assert "thingId" not in w.status and w.cloud.count("create") == 0


def test_adoption_of_a_resource_mid_build_waits_to_read_its_owner_mark() -> None:
    """A resource whose mark the adapter did not read (mid-build) is adopted only once the build has
    ended and its mark is read: another object's is refused then, never taken."""
    w = world()
    w.cloud.unread_mid_build = True
    w.identities.update("ns", {ADOPTION_ANNOTATION: ADOPTION_ALLOWED})
    w.cloud.things["x-5"] = Thing("x-5", "alpha", 1, None, "other.obj.uid-2", w.clock(), building=2)
    w.annotations[ADOPT_ANNOTATION] = "x-5"
    first = run(w.cycle())
    assert first.decision is Decision.REQUEUE and "thingId" not in w.status
    out = run(w.converge())
    assert out.decision is Decision.STOP and w.condition(c.SYNCED)["reason"] == c.OWNED_BY_ANOTHER
    assert "thingId" not in w.status and w.cloud.count("create") == 0


# ----- validation and references


def test_invalid_spec_names_the_field_and_never_calls_aws() -> None:
    """A spec the model rejects: Synced=False InvalidSpec naming the path, stop, no AWS call."""
    w = world(size=99)
    out = run(w.cycle())
    assert out.decision is Decision.STOP
    synced = w.condition(c.SYNCED)
    assert synced["reason"] == c.INVALID_SPEC and "spec.size" in synced["message"]
    assert w.cloud.calls == []
    assert w.condition(c.READY)["status"] == "False"


def test_configmap_reference_resolves_into_the_create() -> None:
    """payloadFrom.configMapKeyRef is read from the object's namespace and handed to the adapter."""
    w = world(payloadFrom={"configMapKeyRef": {"name": "schema", "key": "openapi.yaml"}})
    w.configmaps[("ns", "schema")] = {"openapi.yaml": "openapi: 3.0.0"}
    run(w.converge())
    assert w.cloud.things["t-1"].payload == "openapi: 3.0.0"
    w.configmaps[("ns", "schema")] = {"openapi.yaml": "openapi: 3.1.0"}
    run(w.converge())
    assert w.cloud.things["t-1"].payload == "openapi: 3.1.0" and w.cloud.updates == [("payload",)]


@pytest.mark.parametrize(
    "data", [pytest.param(None, id="configmap-missing"), pytest.param({"other": "x"}, id="key-missing")]
)
def test_missing_configmap_reference_is_reported_and_retried(data: dict[str, str] | None) -> None:
    """ReferenceNotFound names the spec field; retried later; AWS untouched."""
    w = world(payloadFrom={"configMapKeyRef": {"name": "schema", "key": "openapi.yaml"}})
    if data is not None:
        w.configmaps[("ns", "schema")] = data
    out = run(w.cycle())
    assert out.decision is Decision.REQUEUE and out.delay >= 8
    synced = w.condition(c.SYNCED)
    assert synced["reason"] == c.REFERENCE_NOT_FOUND and "spec.payloadFrom" in synced["message"]
    assert w.cloud.calls == []


# ----- deletion


def deleting(w: World) -> World:
    w.deleting = True
    return w


def test_delete_retain_releases_without_deleting() -> None:
    """deletionPolicy Retain: release at once, the AWS resource stays, an event says so."""
    w = world(deletionPolicy="Retain")
    run(w.converge())
    out = run(deleting(w).cycle())
    assert out.decision is Decision.RELEASE and "t-1" in w.cloud.things
    assert c.EV_RETAINED in w.reasons() and w.cloud.count("delete") == 0


def test_delete_of_never_created_object_releases_at_once() -> None:
    """No ref, no intent recorded: nothing to delete."""
    w = deleting(world())
    assert run(w.cycle()).decision is Decision.RELEASE and w.cloud.calls == []


def test_delete_after_interrupted_create_finds_and_deletes_it() -> None:
    """createPending but no ref: find first, so a create that reached AWS is not orphaned."""
    w = world()
    run(w.cycle())
    marker = dict(w.status)
    run(w.cycle())
    w.status = marker
    run(deleting(w).converge())
    assert w.cloud.things == {} and c.EV_DELETED in w.reasons()


def test_delete_already_gone_releases_at_once() -> None:
    """The AWS resource is already gone: release, no delete call."""
    w = world()
    run(w.converge())
    w.clock.advance(w.timing.consistency + 1)  # older than the bound: "gone" cannot be read lag
    del w.cloud.things["t-1"]
    assert run(deleting(w).cycle()).decision is Decision.RELEASE
    assert w.cloud.count("delete") == 0


def test_delete_in_progress_is_awaited_with_growing_polls() -> None:
    """DELETE_IN_PROGRESS: requeue briefly until AWS says not found, then release. The looks grow on
    the poll schedule; one that would come after the delete can be seen settled (the consistency
    bound) comes then instead."""
    w = world()
    run(w.converge())
    w.cloud.delete_polls = 4
    out = run(deleting(w).converge())
    assert out.decision is Decision.RELEASE and w.cloud.things == {}
    waits = [o.delay for o in w.outcomes if o.decision is Decision.REQUEUE][-3:]
    assert all(1 <= d <= 15 for d in waits) and waits[:-1] == sorted(waits[:-1])
    assert w.cloud.count("delete") == 1


def mid_build_unread() -> World:
    """An object whose resource was just created and is building; the adapter skips its tags meanwhile."""
    w = world(build_polls=3)
    w.cloud.unread_mid_build = True
    run(w.cycle())  # intent
    run(w.cycle())  # create: building
    return w


def test_a_resource_whose_owner_mark_was_not_read_mid_build_is_deleted_once_the_build_ends() -> None:
    """The adapter skips the tag read while AWS builds: the deletion waits for the build to end, reads
    the mark, and deletes only its own resource."""
    w = mid_build_unread()
    out = run(deleting(w).cycle())
    assert out.decision is Decision.REQUEUE and w.cloud.count("delete") == 0, "not while unread"
    assert run(w.converge()).decision is Decision.RELEASE and w.cloud.things == {}
    assert w.cloud.count("delete") == 1

    other = mid_build_unread()
    other.cloud.things["t-1"].mark = "someone.else"  # marked as another object's, out of band
    for _ in range(6):
        run(deleting(other).cycle())
    assert other.cloud.count("delete") == 0 and "t-1" in other.cloud.things, "never another's"


def test_delete_failed_is_visible_and_backs_off() -> None:
    """DELETE_FAILED: Synced=False DeleteFailed, a Warning, back-off — never a silent hang."""
    w = world()
    run(w.converge())
    w.cloud.delete_fails = True
    deleting(w)
    outs = [run(w.cycle()) for _ in range(3)]
    assert all(o.decision is Decision.REQUEUE for o in outs)
    synced = w.condition(c.SYNCED)
    assert synced["reason"] == c.DELETE_FAILED and "still attached" in synced["message"]
    assert outs[-1].delay >= 4 and w.reasons().count(c.DELETE_FAILED) == 1


def test_delete_in_use_is_reported_and_retried_slowly() -> None:
    """InUse from delete: a condition saying so, a slow retry, the finalizer kept."""
    w = world()
    run(w.converge())
    w.cloud.fail["delete"] = [InUse("attached to app-1")]
    out = run(deleting(w).cycle())
    assert out.decision is Decision.REQUEUE and out.delay >= 60
    assert w.condition(c.SYNCED)["reason"] == c.IN_USE and "app-1" in w.condition(c.SYNCED)["message"]
    assert w.condition(c.READY)["status"] == "False" and w.condition(c.READY)["reason"] == c.DELETING


def test_delete_removes_retiring_resources_too() -> None:
    """Deleting mid-replacement deletes the new and the old resource."""
    w = world(build_polls=3)
    run(w.converge())
    w.change_spec(name="beta")
    for _ in range(3):
        run(w.cycle())
    assert w.status.get("retiring")
    run(deleting(w).converge())
    assert w.cloud.things == {}


# ----- conditions


def test_last_transition_time_moves_only_on_flips() -> None:
    """Polls rewrite reason and message, not lastTransitionTime; a flip moves it."""
    w = world(build_polls=4)
    run(w.cycle())
    first = w.condition(c.READY)["lastTransitionTime"]
    for _ in range(3):
        run(w.cycle())
    assert w.condition(c.READY)["lastTransitionTime"] == first
    run(w.converge())
    assert w.condition(c.READY)["status"] == "True"
    assert w.condition(c.READY)["lastTransitionTime"] != first


def test_set_condition_keeps_time_when_status_is_unchanged() -> None:
    """set_condition: same status → old time kept; different status → new time."""
    from datetime import UTC, datetime

    t0, t1 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    conds = c.set_condition([], c.reconcile_error(c.THROTTLED, "a", 1, t0))
    conds = c.set_condition(conds, c.reconcile_error(c.AWS_SERVER_ERROR, "b", 1, t1))
    assert conds[0]["lastTransitionTime"] == c.rfc3339(t0) and conds[0]["reason"] == c.AWS_SERVER_ERROR
    conds = c.set_condition(conds, c.condition(c.SYNCED, "True", c.RECONCILE_SUCCESS, "", 1, t1))
    assert conds[0]["lastTransitionTime"] == c.rfc3339(t1) and len(conds) == 1


def test_warning_events_only_on_transitions() -> None:
    """The same failure twice in a row posts one Warning, not one per retry."""
    w = world(size=99)
    run(w.cycle())
    run(w.cycle())
    run(w.cycle())
    assert w.reasons().count(c.INVALID_SPEC) == 1


def test_found_unmarked_within_grace_is_ours() -> None:
    """An untagged resource created just after the intent (clock skew within the grace) is ours."""
    w = world(tags=False, find_before_create=True)
    run(w.cycle())
    w.restart()  # a create may have followed the intent before the restart
    w.cloud.override["find"] = lambda spec, owner: Found({"thingId": "t-7"}, None, owner.create_pending_since)
    w.cloud.things["t-7"] = Thing("t-7", "alpha", 1, None, None, w.clock())
    run(w.converge())
    assert w.status["thingId"] == "t-7" and w.cloud.count("create") == 0


def test_outputs_are_written_under_their_api_names() -> None:
    """What AWS reports (IDs, ARN, timestamps) lands in status as is, datetimes as RFC 3339."""
    w = world()
    run(w.converge())
    assert w.status["thingArn"] == "arn:thing/t-1" and w.status["size"] == 1
    assert w.status["createdAt"] == "2026-01-01T12:00:00Z"


def test_no_event_per_poll() -> None:
    """A long build posts Created once and nothing for each poll."""
    w = world(build_polls=10)
    run(w.converge(limit=40))
    assert w.reasons() == [c.EV_CREATED]
    run(w.cycle(Trigger.DRIFT))
    assert w.reasons() == [c.EV_CREATED]


def test_adopt_annotation_waits_for_a_recorded_intent_to_settle() -> None:
    """An adopt request arriving after a create may have reached AWS never orphans that create."""
    w = world()
    run(w.cycle())
    marker = dict(w.status)
    run(w.cycle())  # the create reaches AWS ...
    w.status = marker  # ... its ID is lost
    w.cloud.things["x-5"] = Thing("x-5", "other", 1, None, None, w.clock())
    w.annotations[ADOPT_ANNOTATION] = "x-5"
    run(w.converge())
    assert w.status["thingId"] == "t-1" and len(w.cloud.things) == 2


def test_region_change_moves_the_resource_and_deletes_the_old_one() -> None:
    """A resource cannot change region: the engine makes one in the new region, then deletes the old."""
    w = world()
    run(w.converge())
    assert w.status["region"] == "us-east-1"
    w.change_spec(region="eu-west-1")
    run(w.converge())
    assert w.cloud.things == {}  # the old one, in us-east-1, is gone
    assert set(w.clouds["eu-west-1"].things) == {w.status["thingId"]}
    assert w.status["region"] == "eu-west-1" and w.status.get("retiring") == []
    assert c.EV_REPLACING in w.reasons() and c.EV_REPLACED in w.reasons()


def test_deletion_addresses_the_region_the_resource_lives_in() -> None:
    """Deleting mid-move deletes the new resource and the old one, each in its own region."""
    w = world(build_polls=3)
    run(w.converge())
    w.change_spec(region="eu-west-1")
    for _ in range(3):
        run(w.cycle())
    w.deleting = True
    run(w.converge())
    assert w.cloud.things == {} and w.clouds["eu-west-1"].things == {}


def test_objects_from_before_the_region_was_recorded_get_it_recorded() -> None:
    """No status.region yet: the region the resource was found in is written, nothing is replaced."""
    w = world()
    run(w.converge())
    del w.status["region"]
    run(w.cycle(Trigger.DRIFT))
    assert w.status["region"] == "us-east-1" and c.EV_REPLACING not in w.reasons()


def test_a_diff_that_never_clears_is_reported_and_slowed_not_hot_looped() -> None:
    """AWS normalises a value so the diff never clears: one event, then UpdateNotConverging and one
    update per slow retry instead of one per poll."""
    w = world()
    run(w.converge())
    w.change_spec(size=4)
    w.cloud.override["update"] = lambda spec, ref, observation, owner, resolved: w.cloud.calls.append(
        "update"
    )
    outcomes = [run(w.cycle()) for _ in range(40)]
    assert w.reasons().count(c.EV_UPDATED) == 1
    assert w.condition(c.SYNCED)["reason"] == c.NOT_CONVERGING
    young = [o for o in outcomes if o.delay < 300]
    assert len(young) <= 40  # polls while the update is young (the first five minutes)
    # about one update per consistency bound (30 s) while young, then one per slow retry; never per poll
    assert w.cloud.count("update") <= 16
    assert all(o.delay == 300 for o in outcomes[len(young) :])  # then one update per 5 minutes
