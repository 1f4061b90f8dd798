"""Per-namespace AWS identity (engine/identity.py): the Namespace annotations read, the session name
rules, the role credentials' cache and renewal, the operator's policy, and what reconcile does with
an identity (fake adapters: no AWS)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import pytest

from q_operator.engine import conditions as c
from q_operator.engine.identity import (
    ADOPTION_ALLOWED,
    ADOPTION_ANNOTATION,
    EXTERNAL_ID_ANNOTATION,
    REGION_ANNOTATION,
    ROLE_ARN_ANNOTATION,
    SESSION_NAME,
    AssumeRoleFailed,
    Identities,
    Issued,
    Policy,
    Role,
    RoleCredentials,
    binding_of,
    session_name,
)
from q_operator.engine.reconcile import ADOPT_ANNOTATION, Decision
from tests.unit.engine_fakes import DEFAULT_REGION, OWN_ACCOUNT, Thing, world

T = TypeVar("T")

ROLE_A = "arn:aws:iam::111111111111:role/q-operator-tenant-a"
ROLE_B = "arn:aws:iam::222222222222:role/teams/q-operator-tenant-b"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


# ----- the Namespace's annotations


@pytest.mark.parametrize(
    ("annotations", "role", "region", "adoption", "problem"),
    [
        pytest.param({}, None, None, False, None, id="unbound"),
        pytest.param({ROLE_ARN_ANNOTATION: ROLE_A}, Role(ROLE_A), None, False, None, id="role"),
        pytest.param(
            {ROLE_ARN_ANNOTATION: ROLE_B, EXTERNAL_ID_ANNOTATION: "ext-1:x"},
            Role(ROLE_B, "ext-1:x"),
            None,
            False,
            None,
            id="role-with-path-and-external-id",
        ),
        pytest.param({REGION_ANNOTATION: "eu-west-1"}, None, "eu-west-1", False, None, id="region-only"),
        pytest.param({ADOPTION_ANNOTATION: "allowed"}, None, None, True, None, id="adoption"),
        pytest.param({ADOPTION_ANNOTATION: "yes"}, None, None, False, None, id="adoption-other-value-is-no"),
        pytest.param({ROLE_ARN_ANNOTATION: " "}, None, None, False, None, id="empty-is-absent"),
        pytest.param({ROLE_ARN_ANNOTATION: "team-a"}, None, None, False, "not an IAM role ARN", id="bad-arn"),
        pytest.param(
            {ROLE_ARN_ANNOTATION: "arn:aws:iam::111111111111:user/bob"},
            None,
            None,
            False,
            "not an IAM role ARN",
            id="user-not-role",
        ),
        pytest.param(
            {EXTERNAL_ID_ANNOTATION: "ext-1"},
            None,
            None,
            False,
            "without q-operator.dev/role-arn",
            id="lone-ext",
        ),
        pytest.param(
            {ROLE_ARN_ANNOTATION: ROLE_A, EXTERNAL_ID_ANNOTATION: "x"},
            Role(ROLE_A, "x"),
            None,
            False,
            "2 to 1224",
            id="short-external-id",
        ),
        pytest.param({REGION_ANNOTATION: "Europe"}, None, None, False, "not an AWS region", id="bad-region"),
    ],
)
def test_binding_read_from_namespace_annotations(
    annotations: Mapping[str, str], role: Role | None, region: str | None, adoption: bool, problem: str | None
) -> None:
    """Each annotation read as documented; a malformed one is named (and fails closed, below)."""
    binding = binding_of(annotations)
    if problem is None:
        assert (binding.role, binding.region, binding.adoption, binding.problem) == (
            role,
            region,
            adoption,
            None,
        )
    else:
        assert binding.problem is not None and problem in binding.problem


def test_role_account_is_the_arns() -> None:
    assert Role(ROLE_B).account == "222222222222"


# ----- RoleSessionName


@pytest.mark.parametrize(
    ("namespaces", "expected"),
    [
        pytest.param(["team-a"], "q-operator-team-a", id="names-the-namespace"),
        pytest.param(["team-b", "team-a", "team-c"], "q-operator-team-a+2", id="shared-role-first-and-count"),
        pytest.param([], "q-operator", id="none-bound"),
    ],
)
def test_session_name_names_the_namespace(namespaces: list[str], expected: str) -> None:
    assert session_name(namespaces) == expected


def test_session_name_stays_within_sts_rules_for_the_longest_namespaces() -> None:
    """A 63-character namespace (the longest DNS label) gives at most 64 characters of STS's
    alphabet; two long names that share their start stay apart."""
    first, second = "a" * 62 + "1", "a" * 62 + "2"
    names = [session_name([first]), session_name([second]), session_name([first, second])]
    for name in names:
        assert SESSION_NAME.fullmatch(name), name
        assert len(name) <= 64
    assert len(set(names)) == 3
    assert names[0].startswith("q-operator-aaaa")


def test_session_name_replaces_characters_sts_refuses() -> None:
    assert re.fullmatch(r"[\w+=,.@-]+", session_name(["team a/b"]))


def test_identities_name_a_roles_session_after_the_namespaces_bound_to_it() -> None:
    ids = Identities()
    ids.update("team-b", {ROLE_ARN_ANNOTATION: ROLE_A})
    ids.update("team-a", {ROLE_ARN_ANNOTATION: ROLE_A})
    ids.update("other", {ROLE_ARN_ANNOTATION: ROLE_B})
    assert ids.session_name(Role(ROLE_A)) == "q-operator-team-a+1"
    assert ids.session_name(Role(ROLE_B)) == "q-operator-other"


# ----- role credentials: cache and renewal


class FakeSts:
    """AssumeRole on a fake clock: each call issues credentials living `lifetime` seconds."""

    def __init__(self, lifetime: float = 3600.0) -> None:
        self.now = 1_000_000.0
        self.lifetime = lifetime
        self.calls = 0
        self.refuse: str | None = None

    def clock(self) -> float:
        return self.now

    def assume(self, role: Role) -> Issued:
        self.calls += 1
        if self.refuse is not None:
            raise AssumeRoleFailed(role, self.refuse)
        return Issued(
            f"ASIA{self.calls}", "secret", f"token-{self.calls}", self.now, self.now + self.lifetime
        )


def credentials(sts: FakeSts) -> RoleCredentials:
    return RoleCredentials(Role(ROLE_A), sts.assume, clock=sts.clock, failure_ttl=60.0)


def test_credentials_are_assumed_on_first_use_and_reused_until_due() -> None:
    sts = FakeSts(lifetime=3600)
    creds = credentials(sts)
    first = creds.get_frozen_credentials()
    sts.now += 2699  # 45 minutes minus a second: still before the renewal point
    assert creds.get_frozen_credentials() == first
    assert sts.calls == 1
    assert first.access_key == "ASIA1" and first.token == "token-1"
    assert first.account_id == "111111111111"


@pytest.mark.parametrize(
    ("lifetime", "renew_after"),
    [
        pytest.param(3600.0, 2700.0, id="hour-renewed-15-minutes-before"),
        pytest.param(900.0, 600.0, id="15-minutes-renewed-a-third-before"),
        pytest.param(20.0, 20.0 * 2 / 3, id="20-seconds-renewed-after-13"),
    ],
)
def test_credentials_are_renewed_before_they_expire(lifetime: float, renew_after: float) -> None:
    """A third of their lifetime before expiry, at most 15 minutes before: never used expired."""
    sts = FakeSts(lifetime=lifetime)
    creds = credentials(sts)
    creds.get_frozen_credentials()
    sts.now += renew_after - 0.01
    assert creds.get_frozen_credentials().token == "token-1"
    sts.now += 0.02
    assert creds.get_frozen_credentials().token == "token-2"
    assert sts.calls == 2
    assert creds.expires == sts.now + lifetime


def test_expired_token_from_aws_renews_at_once() -> None:
    """AWS said ExpiredToken (its clock ahead of ours): the next use assumes the role again."""
    sts = FakeSts()
    creds = credentials(sts)
    creds.get_frozen_credentials()
    creds.expire()
    assert creds.get_frozen_credentials().token == "token-2"


def test_a_refused_assume_role_is_remembered_for_a_while_then_asked_again() -> None:
    """Thirty objects of a namespace whose role cannot be assumed cost one STS call per minute."""
    sts = FakeSts()
    sts.refuse = "AccessDenied: not authorized to perform: sts:AssumeRole"
    creds = credentials(sts)
    for _ in range(30):
        with pytest.raises(AssumeRoleFailed) as failed:
            creds.get_frozen_credentials()
    assert sts.calls == 1
    assert failed.value.reason == c.ASSUME_ROLE_FAILED and ROLE_A in failed.value.message
    assert "not authorized" in failed.value.message and failed.value.delay == 300.0
    sts.now += 61
    sts.refuse = None
    assert creds.get_frozen_credentials().token == "token-2"
    assert sts.calls == 2


def test_a_failed_renewal_keeps_using_credentials_still_valid() -> None:
    sts = FakeSts(lifetime=3600)
    creds = credentials(sts)
    creds.get_frozen_credentials()
    sts.now += 3000  # past the renewal point, 10 minutes before expiry
    sts.refuse = "ServiceUnavailable"
    assert creds.get_frozen_credentials().token == "token-1"
    sts.now += 597  # 3 s before expiry: too close to keep using them
    with pytest.raises(AssumeRoleFailed):
        creds.get_frozen_credentials()


# ----- the identity of a namespace, under the operator's policy


def test_an_unbound_namespace_uses_the_operators_own_identity() -> None:
    identity = Identities().of("team-a")
    assert (identity.role, identity.refusal, identity.adoption) == (None, None, False)


def test_require_namespace_role_refuses_an_unbound_namespace() -> None:
    ids = Identities(Policy(require_role=True))
    ids.update("regional", {REGION_ANNOTATION: "eu-west-1"})
    for namespace in ("never-seen", "regional"):
        refused = ids.of(namespace).refused("create")
        assert refused is not None and refused.reason == c.NO_AWS_IDENTITY
        assert "--require-namespace-role" in refused.message and namespace in refused.message


def test_a_malformed_binding_never_falls_back_to_the_operators_identity() -> None:
    ids = Identities()
    ids.update("team-a", {ROLE_ARN_ANNOTATION: "team-a-role"})
    refused = ids.of("team-a").refused("observe")
    assert refused is not None and refused.reason == c.NO_AWS_IDENTITY and "malformed" in refused.message


def test_adoption_everywhere_flag_and_namespace_annotation() -> None:
    assert Identities(Policy(adoption_everywhere=True)).of("x").adoption
    ids = Identities()
    ids.update("x", {ADOPTION_ANNOTATION: ADOPTION_ALLOWED})
    assert ids.of("x").adoption and not ids.of("y").adoption


def test_update_reports_a_change_only_of_a_binding_already_known() -> None:
    ids = Identities()
    assert ids.update("a", {ROLE_ARN_ANNOTATION: ROLE_A}) is False  # first sight
    assert ids.update("a", {ROLE_ARN_ANNOTATION: ROLE_A, "unrelated": "x"}) is False
    assert ids.update("a", {ROLE_ARN_ANNOTATION: ROLE_B}) is True


def test_a_namespace_not_seen_yet_is_read_before_its_objects_are_reconciled() -> None:
    reads: list[str] = []

    async def read(name: str) -> Mapping[str, str] | None:
        reads.append(name)
        return {ROLE_ARN_ANNOTATION: ROLE_A}

    ids = Identities(read_namespace=read)

    async def twice() -> None:
        await asyncio.gather(ids.ensure("team-a"), ids.ensure("team-a"))
        await ids.ensure("team-a")

    run(twice())
    assert reads == ["team-a"] and ids.of("team-a").role == Role(ROLE_A)


def test_a_namespace_that_cannot_be_read_is_refused_then_read_again() -> None:
    answers: list[Exception | None] = [RuntimeError("403 Forbidden"), None]

    async def read(name: str) -> Mapping[str, str] | None:
        answer = answers.pop(0)
        if answer is not None:
            raise answer
        return {}

    ids = Identities(read_namespace=read)
    run(ids.ensure("team-a"))
    refused = ids.of("team-a").refused("create")
    assert refused is not None and "403 Forbidden" in refused.message and refused.delay == 30.0
    run(ids.ensure("team-a"))
    assert ids.of("team-a").refused("create") is None


# ----- reconcile with an identity (fake cloud per account)


def test_a_bound_namespace_acts_as_its_role_in_its_account_and_region() -> None:
    """Every call is made as the role; status names the account and the namespace's region."""
    w = world()
    w.identities.update("ns", {ROLE_ARN_ANNOTATION: ROLE_A, REGION_ANNOTATION: "eu-west-1"})
    out = run(w.converge())
    assert out.decision is Decision.DONE
    assert w.status["accountId"] == "111111111111" and w.status["region"] == "eu-west-1"
    assert {role for _, role in w.aws.calls} == {ROLE_A}
    assert w.clouds["111111111111/eu-west-1"].things and not w.cloud.things


def test_spec_region_wins_over_the_namespaces() -> None:
    w = world(region="ap-south-1")
    w.identities.update("ns", {REGION_ANNOTATION: "eu-west-1"})
    run(w.converge())
    assert w.status["region"] == "ap-south-1" and w.status["accountId"] == OWN_ACCOUNT


def test_no_identity_means_no_aws_call_and_no_intent() -> None:
    w = world()
    w.identities = Identities(Policy(require_role=True))
    out = run(w.cycle())
    assert out.decision is Decision.REQUEUE and out.delay == 300.0
    assert w.condition(c.SYNCED)["reason"] == c.NO_AWS_IDENTITY
    assert w.aws.calls == [] and "createPending" not in w.status


def test_a_resource_recorded_in_another_account_is_never_touched() -> None:
    """The binding moved to another account: the object's resource is out of reach, so nothing is
    observed, created or deleted (a recreate there would duplicate it); deletion waits too."""
    w = world()
    w.identities.update("ns", {ROLE_ARN_ANNOTATION: ROLE_A})
    run(w.converge())
    thing_id = w.status["thingId"]
    w.identities.update("ns", {ROLE_ARN_ANNOTATION: ROLE_B})
    before = len(w.aws.calls)
    out = run(w.cycle())
    assert w.condition(c.SYNCED)["reason"] == c.ACCOUNT_MISMATCH
    assert "111111111111" in out.message and "222222222222" in out.message
    w.deleting = True
    out = run(w.cycle())
    assert out.decision is Decision.REQUEUE and w.condition(c.SYNCED)["reason"] == c.ACCOUNT_MISMATCH
    assert len(w.aws.calls) == before and thing_id in w.clouds[f"111111111111/{DEFAULT_REGION}"].things


def test_an_intent_keeps_the_account_it_was_recorded_in_when_the_binding_moves() -> None:
    """An intent recorded in one account, the operator restarted and the namespace rebound to another:
    a create may have reached the first account, so nothing is looked for or created in the second —
    at the first cycle and at every later one (the mismatch never rewrites the recorded account)."""
    w = world(find_before_create=True)  # no token to replay: a restarted cycle looks before creating
    w.identities.update("ns", {ROLE_ARN_ANNOTATION: ROLE_A})
    run(w.cycle())
    assert "createPending" in w.status and w.status["accountId"] == "111111111111"
    w.restart()
    w.identities.update("ns", {ROLE_ARN_ANNOTATION: ROLE_B})
    before = len(w.aws.calls)
    for _ in range(2):
        run(w.cycle())
        assert w.condition(c.SYNCED)["reason"] == c.ACCOUNT_MISMATCH
        assert w.status["accountId"] == "111111111111" and "createPending" in w.status
    assert len(w.aws.calls) == before


def test_a_region_move_records_its_intent_in_the_account_the_operator_acts_in() -> None:
    """The intent that replaces a resource in another region is recorded before any AWS call of its
    cycle: it still names the account its create will act in (the operator's own here)."""
    w = world()
    run(w.converge())
    w.change_spec(region="eu-west-1")
    run(w.cycle())
    assert "createPending" in w.status and w.status["retiring"]
    assert w.status["accountId"] == OWN_ACCOUNT


def test_objects_from_before_accounts_were_recorded_belong_to_the_operators_own() -> None:
    """A ref without accountId was made by the operator itself: under a role in another account it
    is refused; under the operator's own identity its account is recorded."""
    w = world()
    w.cloud.things["t-9"] = Thing("t-9", "alpha", 1, None, "ns.obj.uid-1", w.clock())
    w.status = {"thingId": "t-9", "region": DEFAULT_REGION}
    w.identities.update("ns", {ROLE_ARN_ANNOTATION: ROLE_A})
    run(w.cycle())
    assert w.condition(c.SYNCED)["reason"] == c.ACCOUNT_MISMATCH
    w.identities.update("ns", {})
    out = run(w.converge())
    assert out.decision is Decision.DONE and w.status["accountId"] == OWN_ACCOUNT


def test_an_account_check_that_cannot_be_made_fails_closed() -> None:
    """The operator's own account is unknown (STS GetCallerIdentity fails) and the namespace's binding
    was removed: its resource, recorded in a role's account, may not be in the account the operator
    now acts in. Nothing is called, nothing created again, until the account is known."""
    w = world()
    w.identities.update("ns", {ROLE_ARN_ANNOTATION: ROLE_A})
    run(w.converge())
    thing_id = w.status["thingId"]
    w.identities.update("ns", {})
    w.aws.own_account = None
    before = len(w.aws.calls)
    out = run(w.cycle())
    synced = w.condition(c.SYNCED)
    assert synced["reason"] == c.AWS_UNREACHABLE and "111111111111" in synced["message"]
    assert out.decision is Decision.REQUEUE and out.delay == 60.0
    assert len(w.aws.calls) == before and w.cloud.count("create") == 0
    w.aws.own_account = OWN_ACCOUNT
    run(w.cycle())
    assert w.condition(c.SYNCED)["reason"] == c.ACCOUNT_MISMATCH
    assert thing_id in w.clouds[f"111111111111/{DEFAULT_REGION}"].things


def test_a_resource_made_by_the_operator_itself_needs_its_account_only_under_a_role() -> None:
    """Made as the operator itself (no accountId recorded): acting as itself it is the same account
    whether or not STS answers; under a role, the check waits for the operator's own account."""
    w = world()
    w.aws.own_account = None
    w.cloud.things["t-9"] = Thing("t-9", "alpha", 1, None, "ns.obj.uid-1", w.clock())
    w.status = {"thingId": "t-9", "region": DEFAULT_REGION}
    out = run(w.converge())
    assert out.decision is Decision.DONE and w.status["thingId"] == "t-9"
    w.identities.update("ns", {ROLE_ARN_ANNOTATION: ROLE_A})
    w.status.pop("accountId", None)
    before = len(w.aws.calls)
    run(w.cycle())
    synced = w.condition(c.SYNCED)
    assert synced["reason"] == c.AWS_UNREACHABLE and "the operator's own account" in synced["message"]
    assert len(w.aws.calls) == before


@pytest.mark.parametrize(
    ("namespace_annotations", "adopt_id", "reason"),
    [
        pytest.param({}, "x-5", c.ADOPTION_NOT_ALLOWED, id="not-allowed-here"),
        pytest.param(
            {ADOPTION_ANNOTATION: ADOPTION_ALLOWED, ROLE_ARN_ANNOTATION: ROLE_A},
            "arn:aws:things:us-east-1:222222222222:thing/x-5",
            c.ADOPTION_NOT_ALLOWED,
            id="an-arn-of-another-account",
        ),
    ],
)
def test_adoption_is_refused_with_no_aws_call(
    namespace_annotations: dict[str, str], adopt_id: str, reason: str
) -> None:
    w = world()
    w.identities.update("ns", namespace_annotations)
    w.annotations[ADOPT_ANNOTATION] = adopt_id
    out = run(w.cycle())
    assert w.condition(c.SYNCED)["reason"] == reason and out.delay == 300.0
    assert [step for step, _ in w.aws.calls if step != "adopt"] == []
    assert "thingId" not in w.status and w.cloud.count("create") == 0


def test_adoption_refuses_a_resource_aws_shows_in_another_account() -> None:
    """What AWS returns names another account (a shared resource): never taken over."""
    w = world()
    w.identities.update("ns", {ADOPTION_ANNOTATION: ADOPTION_ALLOWED})
    w.cloud.things["x-5"] = Thing("x-5", "alpha", 1, None, None, w.clock())
    w.cloud.override["observe"] = lambda *a: _observed_in("999999999999")
    w.annotations[ADOPT_ANNOTATION] = "x-5"
    run(w.cycle())
    synced = w.condition(c.SYNCED)
    assert synced["reason"] == c.ADOPTION_NOT_ALLOWED and "never crosses accounts" in synced["message"]
    assert "thingId" not in w.status and w.cloud.count("update") == 0


def _observed_in(account: str) -> Any:
    from q_operator.kinds.base import Observation, Phase

    return Observation(Phase.READY, {"thingArn": f"arn:aws:things:us-east-1:{account}:thing/x-5"})


def test_sts_unreachable_while_admitting_is_a_classified_retry_not_a_bug() -> None:
    """A network failure while the identity is admitted (STS unreachable) is AwsUnreachable with a
    back-off, and no intent is recorded."""
    from botocore.exceptions import EndpointConnectionError

    w = world()
    w.identities.update("ns", {ROLE_ARN_ANNOTATION: ROLE_A})

    async def unreachable(role: Role | None) -> str | None:
        raise EndpointConnectionError(endpoint_url="https://sts.us-east-1.amazonaws.com")

    w.aws.account = unreachable  # type: ignore[method-assign]
    out = run(w.cycle())
    assert w.condition(c.SYNCED)["reason"] == c.AWS_UNREACHABLE and out.decision is Decision.REQUEUE
    assert "createPending" not in w.status and w.aws.calls == []


def test_a_throttled_assume_role_is_remembered_briefly_and_retried_soon() -> None:
    """STS throttling is no refusal: reason Throttled, one STS call per few seconds for every waiting
    object, and a retry in seconds (a refusal waits minutes)."""
    sts = FakeSts()
    calls = 0

    def throttled(role: Role) -> Issued:
        nonlocal calls
        calls += 1
        raise AssumeRoleFailed(role, "Throttling: Rate exceeded", throttled=True)

    creds = RoleCredentials(Role(ROLE_A), throttled, clock=sts.clock, failure_ttl=60.0)
    for _ in range(3):
        with pytest.raises(AssumeRoleFailed) as caught:
            creds.get_frozen_credentials()
    assert calls == 1  # remembered: three callers, one STS call
    assert caught.value.reason == c.THROTTLED and caught.value.delay < 60
    sts.now += 6  # past the short memory of a throttle (a refusal is remembered a minute)
    with pytest.raises(AssumeRoleFailed):
        creds.get_frozen_credentials()
    assert calls == 2
    refused = AssumeRoleFailed(Role(ROLE_A), "AccessDenied: no")
    assert refused.reason == c.ASSUME_ROLE_FAILED and refused.delay >= 300
