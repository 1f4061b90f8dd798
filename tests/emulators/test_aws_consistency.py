"""Eventual consistency and ambiguous failures, seeded: reads that lag writes by up to `read_lag`
seconds, and writes that act but lose their answer (connection reset, or held past the read timeout).

Each lag test writes several resources at once and holds the stand-in to three things: some read
right after the write still sees the old state (or no resource), every read sees the new state
within the lag, and no read goes back to the old state once it saw the new one. The request log
marks every read answered from an older state (`lagged`) and every lost answer (`lost`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from q_operator.emulate.aws.config import Settings
from q_operator.emulate.aws.server import parse_args
from q_operator.emulate.aws.testing import AwsHandle
from q_operator.sandbox import wait_for
from tests.emulators.aws_support import LAMBDA_ARN, error_code

LAG = 1.5
SLACK = 3.0
"""Scheduling slack on a loaded machine: a bound, not a speed assertion."""
COUNT = 4
INSTANCE = "instance-1"
APP = str(uuid.uuid4())


def absent_is_none(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise


@dataclass(frozen=True)
class Kind:
    """How to drive one resource type through boto3."""

    service: str
    create: Callable[[Any, int], str]
    get: Callable[[Any, str], Any]
    """The resource's view through its Get (AppFlow: DescribeConnector), or None when not found."""
    listed: Callable[[Any], dict[str, Any]]
    """Every resource the List shows, by key: its summary, which carries the field `update` sets."""
    list_op: str
    update: Callable[[Any, str], None]
    is_new: Callable[[Any], bool]
    """Whether a view (from the Get or the List) shows the update."""
    delete: Callable[[Any, str], None]


def _create_plugin(qb: Any, i: int) -> str:
    return str(
        qb.create_plugin(
            applicationId=APP, displayName=f"p{i}", type="JIRA", authConfiguration={"noAuthConfiguration": {}}
        )["pluginId"]
    )


def _register(af: Any, i: int) -> str:
    label = f"c{i}"
    af.register_connector(
        connectorLabel=label, connectorProvisioningConfig={"lambda": {"lambdaArn": LAMBDA_ARN}}
    )
    return label


KINDS = {
    "plugin": Kind(
        "qbusiness",
        _create_plugin,
        lambda qb, key: absent_is_none(lambda: qb.get_plugin(applicationId=APP, pluginId=key)),
        lambda qb: {p["pluginId"]: p for p in qb.list_plugins(applicationId=APP)["plugins"]},
        "ListPlugins",
        lambda qb, key: qb.update_plugin(applicationId=APP, pluginId=key, displayName="renamed"),
        lambda view: view["displayName"] == "renamed",
        lambda qb, key: qb.delete_plugin(applicationId=APP, pluginId=key),
    ),
    "library item": Kind(
        "qapps",
        lambda qa, i: str(
            qa.create_library_item(instanceId=INSTANCE, appId=str(uuid.uuid4()), appVersion=1, categories=[])[
                "libraryItemId"
            ]
        ),
        lambda qa, key: absent_is_none(lambda: qa.get_library_item(instanceId=INSTANCE, libraryItemId=key)),
        lambda qa: {
            i["libraryItemId"]: i for i in qa.list_library_items(instanceId=INSTANCE)["libraryItems"]
        },
        "ListLibraryItems",
        lambda qa, key: qa.update_library_item(instanceId=INSTANCE, libraryItemId=key, status="DISABLED"),
        lambda view: view["status"] == "DISABLED",
        lambda qa, key: qa.delete_library_item(instanceId=INSTANCE, libraryItemId=key),
    ),
    "connector": Kind(
        "appflow",
        _register,
        lambda af, key: absent_is_none(
            lambda: af.describe_connector(connectorType="CustomConnector", connectorLabel=key)[
                "connectorConfiguration"
            ]
        ),
        lambda af: {c["connectorLabel"]: c for c in af.list_connectors()["connectors"]},
        "ListConnectors",
        lambda af, key: af.update_connector_registration(connectorLabel=key, description="moved"),
        lambda view: view.get("connectorDescription") == "moved",
        lambda af, key: af.unregister_connector(connectorLabel=key),
    ),
}


def watch(settled: Callable[[str], bool], keys: list[str], since: float) -> dict[str, float]:
    """Poll until every key is settled; return when each settled (seconds after `since`). Fails if one
    unsettles again (a read went back in time) or any takes longer than the lag allows."""
    settled_at: dict[str, float] = {}

    def all_settled() -> bool:
        for key in keys:
            now = settled(key)
            if key in settled_at:
                assert now, f"{key}: a read went back to the old state"
            elif now:
                settled_at[key] = time.monotonic() - since
        return len(settled_at) == len(keys)

    wait_for("every resource settled", all_settled, timeout=LAG + SLACK)
    return settled_at


@pytest.fixture()
def lagging(aws: AwsHandle) -> AwsHandle:
    aws.configure(read_lag=LAG, seed=3)
    return aws


@pytest.mark.parametrize("name", list(KINDS))
def test_a_new_resource_stays_invisible_for_up_to_the_lag(lagging: AwsHandle, name: str) -> None:
    kind = KINDS[name]
    client = lagging.client(kind.service)
    since = time.monotonic()
    keys = [kind.create(client, i) for i in range(COUNT)]
    hidden_from_get = [k for k in keys if kind.get(client, k) is None]
    hidden_from_list = set(keys) - set(kind.listed(client))
    assert hidden_from_get and hidden_from_list, "no read lagged behind a create"
    watch(lambda k: kind.get(client, k) is not None and k in kind.listed(client), keys, since)
    log = lagging.requests()
    creates = [r for r in log if r["status"] == 200 and r.get("visibleAfter") is not None]
    assert len(creates) == COUNT and all(0 <= r["visibleAfter"] <= LAG for r in creates)
    lagged_gets = [r for r in log if r["status"] == 404 and r.get("lagged")]
    assert len(lagged_gets) >= len(hidden_from_get)


@pytest.mark.parametrize("name", list(KINDS))
def test_an_update_shows_in_reads_after_up_to_the_lag(aws: AwsHandle, name: str) -> None:
    """Through the Get (AppFlow: DescribeConnector) and the List alike: both show the old state
    right after the update, the new one within the lag, and never the old one again after that."""
    kind = KINDS[name]
    client = aws.client(kind.service, parameter_validation=False)
    keys = [kind.create(client, i) for i in range(COUNT)]
    if kind.service == "qbusiness":
        wait_for("builds READY", lambda: all(kind.get(client, k)["buildStatus"] == "READY" for k in keys))
    aws.configure(read_lag=LAG, seed=3)
    since = time.monotonic()
    for key in keys:
        kind.update(client, key)
    old_reads = [k for k in keys if not kind.is_new(kind.get(client, k))]
    listed = kind.listed(client)
    old_listed = [k for k in keys if not kind.is_new(listed[k])]
    assert old_reads, f"no {kind.service} Get or Describe lagged behind an update"
    assert old_listed, f"no {kind.list_op} lagged behind an update"

    def shows_update(key: str) -> bool:
        """Both ways of reading agree on the new state (and `watch` fails if either goes back)."""
        return kind.is_new(kind.get(client, key)) and kind.is_new(kind.listed(client)[key])

    watch(shows_update, keys, since)
    lagged = {r["operation"] for r in aws.requests() if r.get("lagged") and r["status"] == 200}
    assert kind.list_op in lagged and lagged - {kind.list_op}, lagged


@pytest.mark.parametrize("name", list(KINDS))
def test_a_deletion_shows_in_reads_after_up_to_the_lag(aws: AwsHandle, name: str) -> None:
    kind = KINDS[name]
    client = aws.client(kind.service)
    keys = [kind.create(client, i) for i in range(COUNT)]
    if kind.service == "qbusiness":
        aws.configure(build_seconds=0)
        wait_for("builds READY", lambda: all(kind.get(client, k)["buildStatus"] == "READY" for k in keys))
    aws.configure(read_lag=LAG, seed=3)
    since = time.monotonic()
    for key in keys:
        kind.delete(client, key)
    still_there = [k for k in keys if kind.get(client, k) is not None]
    assert still_there, "no read lagged behind a deletion"
    if kind.service == "qbusiness":  # reads show the old state, not DELETE_IN_PROGRESS
        assert all(kind.get(client, k)["buildStatus"] in ("READY", "DELETE_IN_PROGRESS") for k in still_there)
    watch(lambda k: kind.get(client, k) is None and k not in kind.listed(client), keys, since)


def test_writes_act_on_the_latest_state_even_while_reads_lag(lagging: AwsHandle) -> None:
    """AWS's primary: a second register of a label not yet visible is still a conflict."""
    af = lagging.client("appflow")
    _register(af, 1)
    with pytest.raises(ClientError) as raised:
        _register(af, 1)
    assert error_code(raised.value) == "ConflictException"


def test_the_lag_draws_are_repeatable_with_a_seed(aws: AwsHandle) -> None:
    def draws() -> list[float]:
        aws.reset()
        aws.configure(read_lag=LAG, seed=11)
        af = aws.client("appflow")
        for i in range(6):
            _register(af, i)
        return [r["visibleAfter"] for r in aws.requests()]

    first = draws()
    assert len(first) == 6 and len(set(first)) == 6
    assert draws() == first


def test_no_lag_by_default(aws: AwsHandle) -> None:
    af = aws.client("appflow")
    label = _register(af, 1)
    assert af.describe_connector(connectorType="CustomConnector", connectorLabel=label)
    assert not any("lagged" in r or "visibleAfter" in r for r in aws.requests())


def test_a_lost_answer_by_reset_is_a_connection_error_and_the_write_happened(aws: AwsHandle) -> None:
    aws.configure(lost_answer_rate=1.0, lost_answer_kinds=["reset"])
    af = aws.client("appflow")
    with pytest.raises(ConnectionClosedError):
        _register(af, 1)
    assert [c["connectorLabel"] for c in af.list_connectors()["connectors"]] == ["c1"]  # reads are not lost
    write = aws.requests()[0]
    assert (write["operation"], write["status"], write["lost"]) == ("RegisterConnector", 200, "reset")


def test_a_lost_answer_by_timeout_is_a_read_timeout_and_the_write_happened(aws: AwsHandle) -> None:
    aws.configure(lost_answer_rate=1.0, lost_answer_kinds=["timeout"])
    qa = aws.client("qapps", read_timeout=0.5)
    with pytest.raises(ReadTimeoutError):
        qa.create_library_item(instanceId=INSTANCE, appId=str(uuid.uuid4()), appVersion=1, categories=[])
    assert len(qa.list_library_items(instanceId=INSTANCE)["libraryItems"]) == 1
    assert [r.get("lost") for r in aws.requests()] == ["timeout", None]


def test_a_write_that_failed_never_loses_its_answer(aws: AwsHandle) -> None:
    af = aws.client("appflow")
    _register(af, 1)
    aws.configure(lost_answer_rate=1.0)
    with pytest.raises(ClientError) as raised:
        _register(af, 1)
    assert error_code(raised.value) == "ConflictException"


def _answer(qb: Any, i: int) -> str:
    """How the i-th CreatePlugin's answer came back: answered, or lost by a reset or a timeout."""
    try:
        _create_plugin(qb, i)
    except ConnectionClosedError:
        return "reset"
    except ReadTimeoutError:
        return "timeout"
    return "answered"


def test_lost_answers_are_seeded_mix_both_kinds_and_always_act(aws: AwsHandle) -> None:
    def outcomes() -> list[str]:
        aws.reset()
        aws.configure(lost_answer_rate=0.5, seed=3)
        qb = aws.client("qbusiness", read_timeout=0.3)
        seen = [_answer(qb, i) for i in range(12)]
        assert len(qb.list_plugins(applicationId=APP)["plugins"]) == 12
        logged = [r.get("lost") or "answered" for r in aws.requests() if r["operation"] == "CreatePlugin"]
        assert logged == seen
        return seen

    first = outcomes()
    assert {"answered", "reset", "timeout"} <= set(first)
    assert outcomes() == first


def test_a_lose_answers_rule_loses_the_next_writes_of_its_operation_its_way(aws: AwsHandle) -> None:
    """Certainty where `lost_answer_rate` leaves it to chance: the next `count` writes of the named
    operation act and lose their answer the way the rule says (first matching rule first), other
    writes are answered, and a used-up rule is gone."""
    aws.configure(
        lose_answers=[
            {"operation": "qbusiness:CreatePlugin", "kind": "timeout", "count": 1},
            {"operation": "CreatePlugin", "kind": "reset", "count": 2},
        ]
    )
    qb = aws.client("qbusiness", read_timeout=0.3)
    seen = [_answer(qb, i) for i in range(4)]
    _register(aws.client("appflow"), 1)
    assert seen == ["timeout", "reset", "reset", "answered"]
    assert len(qb.list_plugins(applicationId=APP)["plugins"]) == 4
    assert [r.get("lost") for r in aws.requests() if r["service"] != "qbusiness"] == [None]
    assert aws.configure()["lose_answers"] == []


def test_a_lose_answers_rule_names_a_way_of_losing_and_a_positive_count() -> None:
    with pytest.raises(ValueError, match="lose_answers"):
        Settings().apply({"lose_answers": [{"operation": "CreatePlugin", "kind": "dropped"}]}, 0.0)
    with pytest.raises(ValueError, match="lose_answers"):
        Settings().apply({"lose_answers": [{"operation": "CreatePlugin", "count": 0}]}, 0.0)


def test_cli_flags_for_lag_and_lost_answers() -> None:
    settings, _ = parse_args(
        ["--seed", "7", "--read-lag", "5", "--lost-answer-rate", "0.2", "--lost-answer-kinds", "reset",
         "--lost-answer-hold", "3"]
    )  # fmt: skip
    assert (settings.seed, settings.read_lag, settings.lost_answer_rate) == (7, 5.0, 0.2)
    assert (settings.lost_answer_kinds, settings.lost_answer_hold) == (["reset"], 3.0)
    with pytest.raises(SystemExit):
        parse_args(["--lost-answer-rate", "1.5"])


def test_a_later_write_never_shows_before_an_earlier_one() -> None:
    """The table alone, on a fake clock: writes at t=0 (lag 5) and t=1 (lag 0) both show at t=5."""
    from q_operator.emulate.aws.state import Table, View

    table: Table[dict[str, int]] = Table()
    table.create("k", {"v": 0}, View(0.0))
    table.edit("k", View(0.0, lambda: 5.0))["v"] = 1
    table.edit("k", View(1.0, lambda: 0.0))["v"] = 2
    assert table.read("k", View(4.9)) == {"v": 0}
    assert table.read("k", View(5.0)) == {"v": 2}
    table.delete("k", View(6.0, lambda: 1.0))
    assert [v for _, v in table.read_all(View(6.5))] == [{"v": 2}]
    assert table.read_all(View(7.0)) == [] and table.read("k", View(7.0)) is None
    assert table.pending() == 0
