"""Eventual consistency and lost answers (engine/consistency.py, errors.OutcomeUnknown), driven with a
fake cloud whose reads can trail its writes: no write is sent because a stale read looked like drift or
absence, no finalizer goes while a delete may not show yet, and an ambiguous write is resolved by reading."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoRegionError,
    ParamValidationError,
    ReadTimeoutError,
)

from q_operator.engine import conditions as c
from q_operator.engine.errors import OutcomeUnknown, RetryableError, TerminalError, classify, may_have_acted
from q_operator.engine.reconcile import Decision, Trigger
from q_operator.kinds.base import AlreadyExists, Created, Found, Observation, Phase
from tests.unit.engine_fakes import Thing, ThingSpec, World, world

T = TypeVar("T")

BOUND = 30.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def client_error(code: str, status: int) -> ClientError:
    response: dict[str, Any] = {
        "Error": {"Code": code, "Message": "x"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "CreateThing")  # type: ignore[arg-type]


def reset() -> ConnectionClosedError:
    return ConnectionClosedError(endpoint_url="http://aws")


def ready(w: World) -> bool:
    return bool(w.condition(c.READY)["status"] == "True")


class Lag:
    """Makes the fake cloud's reads trail its writes: until `until`, observe and find answer as the cloud
    was before (`hidden` things are absent, `stale` things show their old fields)."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.until = w.clock()
        self.hidden: set[str] = set()
        self.stale: dict[str, Thing] = {}
        cloud = w.cloud
        self._observe, self._find = cloud.observe, cloud.find
        cloud.override["observe"] = self.observe
        cloud.override["find"] = self.find

    def hide(self, thing_id: str, seconds: float) -> None:
        self.hidden.add(thing_id)
        self.until = self.w.clock() + timedelta(seconds=seconds)

    def freeze(self, thing_id: str, seconds: float) -> None:
        """Reads show `thing_id` as it is now for `seconds` (a write made next will not show)."""
        thing = self.w.cloud.things[thing_id]
        self.stale[thing_id] = Thing(**vars(thing))
        self.until = self.w.clock() + timedelta(seconds=seconds)

    def lagging(self) -> bool:
        return self.w.clock() < self.until

    def observe(self, spec: ThingSpec, ref: Any, owner: Any, resolved: Any) -> Observation:
        thing_id = ref["thingId"]
        if self.lagging() and thing_id in self.hidden:
            self.w.cloud.calls.append("observe")
            return Observation(Phase.ABSENT)
        if self.lagging() and thing_id in self.stale:
            now, old = self.w.cloud.things.get(thing_id), self.stale[thing_id]
            self.w.cloud.things[thing_id] = old
            try:
                return self._observe(spec, ref, owner, resolved)
            finally:
                if now is not None:
                    self.w.cloud.things[thing_id] = now
                else:
                    self.w.cloud.things.pop(thing_id, None)
        return self._observe(spec, ref, owner, resolved)

    def find(self, spec: ThingSpec, owner: Any) -> Found | None:
        found = self._find(spec, owner)
        if found is not None and self.lagging() and found.ref["thingId"] in self.hidden:
            return None
        return found


def acts_then_loses(w: World, verb: str, error: Callable[[], Exception] = reset) -> None:
    """The next call of `verb` acts in the cloud, then its answer is lost."""
    real = getattr(w.cloud, verb)

    def lost(*args: Any) -> Any:
        w.cloud.override.pop(verb, None)
        real(*args)
        raise error()

    w.cloud.override[verb] = lost


def created_hidden(w: World, seconds: float) -> Lag:
    """Intent, then create: the new thing does not show for `seconds`."""
    lag = Lag(w)
    run(w.cycle())  # intent
    run(w.cycle())  # create
    lag.hide(w.status["thingId"], seconds)
    return lag


# ----- classification


@pytest.mark.parametrize(
    ("error", "acted"),
    [
        pytest.param(reset(), True, id="connection-reset"),
        pytest.param(ReadTimeoutError(endpoint_url="http://aws"), True, id="read-timeout"),
        pytest.param(EndpointConnectionError(endpoint_url="http://aws"), True, id="endpoint-connection"),
        pytest.param(ConnectTimeoutError(endpoint_url="http://aws"), True, id="connect-timeout"),
        pytest.param(client_error("InternalServerException", 500), True, id="5xx-may-fail-after-acting"),
        pytest.param(client_error("SomethingNew", 503), True, id="unknown-5xx"),
        pytest.param(client_error("ThrottlingException", 429), False, id="throttle-rejected-unexecuted"),
        pytest.param(client_error("ValidationException", 400), False, id="refused-as-invalid"),
        pytest.param(client_error("SomethingNew", 400), False, id="unknown-4xx"),
        pytest.param(AlreadyExists("taken"), False, id="kind-error-from-an-answer"),
        pytest.param(ParamValidationError(report="bad"), False, id="never-sent"),
        pytest.param(NoRegionError(), False, id="no-region-never-sent"),
        pytest.param(KeyError("bug"), True, id="a-bug-after-the-call-may-have-acted"),
    ],
)
def test_a_write_may_have_acted_unless_aws_clearly_refused_it(error: BaseException, acted: bool) -> None:
    assert may_have_acted(error) is acted
    classified = classify(error, "create", 0, random.Random(1))
    assert isinstance(classified, OutcomeUnknown) is (acted and isinstance(classified, RetryableError))


def test_a_lost_answer_is_ambiguous_only_for_writes() -> None:
    """Reads are never ambiguous: a read that failed changed nothing."""
    rng = random.Random(1)
    for step in ("create", "update", "delete"):
        found = classify(reset(), step, 0, rng)
        assert isinstance(found, OutcomeUnknown) and found.reason == c.AWS_UNREACHABLE
        assert "may have reached AWS" in found.message
    for step in ("observe", "find", "adopt"):
        found = classify(reset(), step, 0, rng)
        assert isinstance(found, RetryableError) and not isinstance(found, OutcomeUnknown)
    assert isinstance(classify(ParamValidationError(report="bad"), "create", 0, rng), TerminalError)


# ----- the create


def test_not_found_right_after_our_create_is_waited_out_then_trusted() -> None:
    """A Get NotFound within the bound after our create is read lag; after the bound, a deletion."""
    w = world()
    created_hidden(w, seconds=BOUND * 10)
    del w.cloud.things["t-1"]  # deleted by hand at once: AWS never shows it
    for _ in range(5):
        out = run(w.cycle())
        assert out.decision is Decision.REQUEUE and w.status["thingId"] == "t-1"
    assert w.cloud.count("create") == 1 and c.EV_RECREATED not in w.reasons()
    w.clock.advance(BOUND)
    run(w.converge())
    assert c.EV_RECREATED in w.reasons() and w.cloud.count("create") == 2


def test_a_create_that_shows_late_is_not_created_again() -> None:
    w = world(build_polls=1)
    created_hidden(w, seconds=7)
    run(w.converge())
    assert ready(w) and w.cloud.count("create") == 1 and len(w.cloud.things) == 1


def test_lost_create_answer_without_a_token_is_found_when_it_shows() -> None:
    """The library item's case: the create acted, its answer was lost; the item shows 6 s later."""
    w = world(tags=False, find_before_create=True)
    lag = Lag(w)
    run(w.cycle())  # intent
    acts_then_loses(w, "create")
    out = run(w.cycle())
    assert out.decision is Decision.REQUEUE and w.condition(c.SYNCED)["reason"] == c.AWS_UNREACHABLE
    assert w.status["createPending"]["sent"]  # recorded: a restart keeps it
    lag.hide("t-1", seconds=6)
    run(w.converge())
    assert ready(w) and w.status["thingId"] == "t-1"
    assert w.cloud.count("create") == 1 and w.cloud.count("find") >= 3


def test_a_create_that_did_not_act_is_sent_again_only_after_the_bound_under_a_new_intent() -> None:
    w = world(tags=False, find_before_create=True)
    run(w.cycle())  # intent
    first_intent = w.status["createPending"]["since"]
    w.cloud.fail["create"] = [reset()]  # lost on the way: nothing was created
    run(w.cycle())
    sent = c.parse_rfc3339(w.status["createPending"]["sent"])
    assert sent is not None
    while "thingId" not in w.status:
        run(w.cycle())
    assert w.cloud.count("create") == 2 and len(w.cloud.things) == 1
    assert w.clock() >= sent + timedelta(seconds=BOUND)
    assert w.status.get("createPending") is None and first_intent  # a fresh intent came in between


def test_lost_create_answer_with_a_token_is_replayed_with_the_same_token() -> None:
    w = world()
    run(w.cycle())
    token = w.status["createPending"]["token"]
    seen: list[str] = []
    real = w.cloud.create

    def create(spec: ThingSpec, owner: Any, tok: Any, resolved: Any) -> Created:
        seen.append(tok)
        made = real(spec, owner, tok, resolved)
        if len(seen) == 1:
            raise reset()
        return made

    w.cloud.override["create"] = create
    run(w.converge())
    assert seen == [token, token] and len(w.cloud.things) == 1 and w.cloud.count("find") == 0


def test_a_replay_after_a_restart_is_marked_a_repeat_but_not_one_after_a_lost_answer() -> None:
    """After a restart the stopped process may have finished the create (AppFlow: tagged it too); after
    a lost answer this process saw, nothing after the failed call was sent."""
    owners: list[Any] = []
    w = world()
    real = w.cloud.create

    def create(spec: ThingSpec, owner: Any, token: Any, resolved: Any) -> Created:
        owners.append(owner)
        return real(spec, owner, token, resolved)

    w.cloud.override["create"] = create
    run(w.cycle())  # intent
    marker = dict(w.status)
    run(w.cycle())  # the create ...
    w.status = marker  # ... its ID never recorded: the operator stopped
    w.restart()
    run(w.cycle())
    assert [o.repeat for o in owners] == [False, True]
    w2 = world()
    run(w2.cycle())
    acts_then_loses(w2, "create")
    run(w2.cycle())
    seen: list[Any] = []
    real2 = w2.cloud.create
    w2.cloud.override["create"] = lambda spec, owner, token, resolved: (
        seen.append(owner) or real2(spec, owner, token, resolved)
    )
    run(w2.converge())
    assert [o.repeat for o in seen] == [False] and len(w2.cloud.things) == 1


def test_a_refused_create_keeps_the_intent_fresh() -> None:
    """A throttle is a clear refusal: nothing was created, so no waiting out the bound."""
    w = world(tags=False, find_before_create=True)
    run(w.cycle())
    w.cloud.fail["create"] = [client_error("ThrottlingException", 429)]
    run(w.cycle())
    assert "sent" not in w.status["createPending"]
    run(w.converge())
    assert w.cloud.count("create") == 2 and w.cloud.count("find") == 1 and ready(w)


def test_after_a_restart_an_intent_without_a_send_time_gets_one() -> None:
    """The stopped process may have sent the create at any moment before now: now is recorded."""
    w = world(tags=False, find_before_create=True)
    run(w.cycle())
    w.restart()
    run(w.cycle())
    assert w.status["createPending"]["sent"] == c.rfc3339(w.clock() - timedelta(seconds=w.outcomes[-1].delay))


def test_a_difference_the_create_did_not_set_is_acted_on_at_once() -> None:
    """A read that shows the resource shows what its create wrote: a member the create could not set
    (a library item's isVerified) is updated without waiting out the bound."""
    w = world()
    real = w.cloud.create

    def create(spec: ThingSpec, owner: Any, token: Any, resolved: Any) -> Created:
        made = real(spec, owner, token, resolved)
        w.cloud.things[made.ref["thingId"]].size = 9  # as if `size` could only be set by an update
        return made

    w.cloud.override["create"] = create
    run(w.converge())
    assert ready(w) and w.cloud.updates == [("size",)]
    assert w.clock() < datetime.fromisoformat("2026-01-01T12:00:00+00:00") + timedelta(seconds=BOUND)


def test_members_a_create_set_later_are_waited_for_not_set_again() -> None:
    """AppFlow's tags come by TagResource after RegisterConnector: a read without them is waited out."""
    w = world()
    real = w.cloud.create

    def create(spec: ThingSpec, owner: Any, token: Any, resolved: Any) -> Created:
        made = real(spec, owner, token, resolved)
        return Created(made.ref, made.outputs, set_later=("tags",))

    w.cloud.override["create"] = create
    lag = Lag(w)
    run(w.cycle())
    run(w.cycle())
    thing = w.cloud.things["t-1"]
    lag.freeze("t-1", seconds=5)
    lag.stale["t-1"].mark = None  # reads do not show the tags yet
    run(w.converge())
    assert ready(w) and w.cloud.updates == [] and thing.mark is not None


# ----- updates


def test_a_stale_read_after_our_update_is_not_drift() -> None:
    w = world()
    lag = Lag(w)
    run(w.converge())
    lag.freeze("t-1", seconds=8)  # reads show size 1 for 8 s after the update
    w.change_spec(size=4)
    run(w.converge())
    assert ready(w) and w.cloud.updates == [("size",)]
    assert w.condition(c.READY)["observedGeneration"] == 2


def test_a_lost_update_answer_is_resolved_by_reading() -> None:
    w = world()
    lag = Lag(w)
    run(w.converge())
    acts_then_loses(w, "update", lambda: ReadTimeoutError(endpoint_url="http://aws"))
    lag.freeze("t-1", seconds=4)
    w.change_spec(size=4)
    run(w.converge())
    assert ready(w) and w.cloud.updates == [("size",)] and w.status["lastWrite"]["operation"] == "update"


def test_an_update_that_never_shows_is_sent_again_once_the_bound_has_passed() -> None:
    w = world()
    run(w.converge())
    w.cloud.override["update"] = lambda *args: w.cloud.calls.append("update")  # accepted, never applied
    w.change_spec(size=4)
    run(w.cycle())
    first = w.clock()
    while w.cloud.count("update") < 2:
        run(w.cycle())
    assert w.clock() - first >= timedelta(seconds=BOUND)


def test_a_spec_change_within_the_bound_is_written_at_once() -> None:
    """A new generation calls for a write of its own, whatever the last write's reads show."""
    w = world()
    lag = Lag(w)
    run(w.converge())
    lag.freeze("t-1", seconds=20)
    w.change_spec(size=4)
    run(w.cycle())  # update to 4
    w.change_spec(size=5)
    run(w.cycle())
    assert w.cloud.updates == [("size",), ("size",)] and w.cloud.things["t-1"].size == 5


def test_ready_over_an_earlier_state_is_confirmed_after_the_bound() -> None:
    """A then B then A again, within the bound: a read showing A may predate the write of B."""
    w = world()
    lag = Lag(w)
    run(w.converge())
    lag.freeze("t-1", seconds=BOUND * 2)  # reads keep showing size 1
    w.change_spec(size=4)
    run(w.cycle())  # update to 4 (reads still say 1)
    w.change_spec(size=1)
    out = run(w.cycle())  # the read says 1, as wanted: maybe only because it predates the update
    assert out.decision is Decision.REQUEUE and ready(w)
    lag.until = w.clock()  # reads catch up: AWS has 4
    run(w.converge())
    assert w.cloud.things["t-1"].size == 1 and w.cloud.updates == [("size",), ("size",)]


def test_after_a_restart_reads_of_known_generations_are_doubted_for_the_bound() -> None:
    """An update the stopped process sent just before it died was never recorded."""
    w = world()
    lag = Lag(w)
    run(w.converge())
    w.cloud.things["t-1"].size = 4  # the stopped process's update, at generation 2 ...
    w.change_spec(size=4)
    lag.freeze("t-1", seconds=6)
    lag.stale["t-1"].size = 1  # ... which reads do not show yet
    w.restart()
    run(w.converge())
    assert w.cloud.updates == [] and ready(w)


def test_after_a_restart_a_new_generation_is_written_at_once() -> None:
    w = world()
    run(w.converge())
    w.restart()
    run(w.cycle(Trigger.DRIFT))  # the new process meets it
    w.change_spec(size=4)
    run(w.cycle())
    assert w.cloud.updates == [("size",)]


# ----- deletion


def deleting(w: World) -> World:
    w.deleting = True
    return w


def test_still_there_after_our_delete_is_waited_out_never_deleted_again() -> None:
    w = world()
    lag = Lag(w)
    run(w.converge())
    w.clock.advance(BOUND * 2)
    lag.freeze("t-1", seconds=10)  # the delete does not show for 10 s
    out = run(deleting(w).converge())
    assert out.decision is Decision.RELEASE and w.cloud.count("delete") == 1


def test_a_lost_delete_answer_is_not_followed_by_a_second_delete() -> None:
    w = world()
    lag = Lag(w)
    run(w.converge())
    w.clock.advance(BOUND * 2)
    acts_then_loses(w, "delete")
    lag.freeze("t-1", seconds=5)
    out = run(deleting(w).converge())
    assert out.decision is Decision.RELEASE and w.cloud.count("delete") == 1 and w.cloud.things == {}


def test_gone_right_after_our_create_does_not_release_the_finalizer_early() -> None:
    """Deleted seconds after its create: "not found" may only say it does not show yet. The delete is
    sent, and the finalizer waits until an absent read can be trusted."""
    w = world()
    created_hidden(w, seconds=10)
    deleting(w)
    outs = [run(w.cycle())]
    assert outs[0].decision is Decision.REQUEUE and w.cloud.count("delete") == 1 and w.cloud.things == {}
    while outs[-1].decision is Decision.REQUEUE:
        outs.append(run(w.cycle()))
    assert outs[-1].decision is Decision.RELEASE and w.cloud.count("delete") == 1
    created = c.parse_rfc3339(w.status["lastWrite"]["created"])
    assert created is not None and w.clock() >= created + timedelta(seconds=BOUND)


def test_deleting_an_intent_this_process_just_recorded_releases_at_once() -> None:
    w = world(tags=False, find_before_create=True)
    run(w.cycle())
    calls = len(w.cloud.calls)
    assert run(deleting(w).cycle()).decision is Decision.RELEASE and len(w.cloud.calls) == calls


def test_deleting_an_inherited_intent_looks_until_the_bound() -> None:
    """After a restart, a create may have reached AWS under the intent: it is looked for until the bound
    has passed, then the finalizer goes."""
    w = world(tags=False, find_before_create=True)
    run(w.cycle())
    w.restart()
    deleting(w)
    outs = [run(w.cycle())]
    while outs[-1].decision is Decision.REQUEUE:
        outs.append(run(w.cycle()))
    assert outs[-1].decision is Decision.RELEASE and len(outs) > 2 and w.cloud.count("create") == 0


def test_the_finalizer_goes_as_soon_as_an_absent_read_can_be_trusted_not_a_poll_later() -> None:
    """The deletion's looks are on the poll schedule, but the last one waits only until the bound has
    passed since the create: the finalizer goes then, not up to a poll interval (15 s) after."""
    w = world()
    created_hidden(w, seconds=10)
    deleting(w)
    released_at = None
    for _ in range(30):
        before = w.clock()
        if run(w.cycle()).decision is Decision.RELEASE:
            released_at = before
            break
    created = c.parse_rfc3339(w.status["lastWrite"]["created"])
    assert created is not None and released_at is not None
    trusted = created + timedelta(seconds=BOUND + 1)  # the bound and the engine's 1 s of slack
    assert trusted <= released_at <= trusted + timedelta(seconds=1), (released_at - created).total_seconds()


def test_a_failed_delete_is_reported_within_the_bound_but_not_sent_again() -> None:
    w = world()
    run(w.converge())
    w.clock.advance(BOUND * 2)
    w.cloud.delete_fails = True
    deleting(w)
    for _ in range(3):
        run(w.cycle())
    assert w.condition(c.SYNCED)["reason"] == c.DELETE_FAILED and w.cloud.count("delete") == 1
    w.clock.advance(BOUND)
    run(w.cycle())
    assert w.cloud.count("delete") == 2
