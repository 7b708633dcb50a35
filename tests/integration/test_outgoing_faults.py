"""Outgoing sync on the real stack under rate limits, throttling storms and per-user failures."""
import pytest

from sync.models import SyncLog, SyncState
from tests.builders import hull_event, hull_message
from webhooks.models import HullNotification, InboxStatus

from .conftest import WorkerPool, wait_until
from .test_outgoing_e2e import all_done, post_notification

pytestmark = pytest.mark.integration


def test_rate_limit_is_never_exceeded_with_two_workers(client, stack, live_connector, worker_env):
    rate = 5
    stack["cio"].set_rate_limit(rate)
    connector = live_connector(rate_limit_per_second=rate)
    extra = WorkerPool(worker_env)
    extra.start(1)
    try:
        for n in range(20):
            post_notification(client, connector, [hull_message(user_id=f"r{n}-{i}") for i in range(3)])
        wait_until(all_done, timeout=90, message="20 notifications through two workers")
    finally:
        extra.stop()
    cio = stack["cio"]
    assert len(cio.people()) == 60
    assert cio.stats()["throttled"] == 0
    assert cio.max_requests_in_window(1.0) <= rate + 1


def test_throttling_storm_then_recovery_loses_nothing(client, stack, live_connector):
    connector = live_connector(events_filter=["page"])
    stack["cio"].fail(status=429, count=9, retry_after=0)
    for n in range(5):
        post_notification(client, connector, [hull_message(user_id=f"s{n}-{i}", events=[hull_event("page", f"s{n}")])
                                              for i in range(10)])
    wait_until(all_done, timeout=90, message="notifications delivered after the 429 storm")
    cio = stack["cio"]
    assert len(cio.people()) == 50
    assert len(cio.events()) == 50
    assert SyncState.objects.filter(customerio_id__startswith="ext-s").count() == 50


def test_oversize_operation_and_207_rejection_fail_alone(client, stack, live_connector):
    connector = live_connector(max_identifier_value_length=400,
                               synchronized_attributes=[f"traits_blob_{i}" for i in range(40)])
    blobs = {f"traits_blob_{i}": "x" * 900 for i in range(40)}
    messages = [
        hull_message(user_id="big", **blobs),
        hull_message(user_id="long-id", external_id="i" * 200),
        *[hull_message(user_id=f"ok{i}") for i in range(5)],
    ]
    post_notification(client, connector, messages)
    wait_until(all_done, message="notification processed")

    cio = stack["cio"]
    assert {p["id"] for p in cio.people()} == {f"ext-ok{i}" for i in range(5)}
    errors = {log.hull_user_id: log.reason for log in SyncLog.objects.filter(action="outgoing.user.error")}
    assert set(errors) == {"big", "long-id"}
    assert "bytes (max 32768)" in errors["big"]
    assert SyncState.objects.get(hull_user_id="long-id").last_outcome == "error"


def test_stale_message_and_identifier_change(client, stack, live_connector):
    connector = live_connector(synchronized_attributes=["traits_plan"])
    post_notification(client, connector, [hull_message(user_id="v", indexed_minutes=10, traits_plan="new")])
    wait_until(all_done, message="newer update")
    post_notification(client, connector, [hull_message(user_id="v", indexed_minutes=5, traits_plan="old")])
    wait_until(all_done, message="older update")
    assert stack["cio"].person(id="ext-v")["attributes"]["plan"] == "new"
    assert "stale" in SyncState.objects.get(hull_user_id="v").last_reason

    post_notification(client, connector, [hull_message(user_id="v", external_id="ext-v2", indexed_minutes=20,
                                                       traits_plan="new")])
    wait_until(all_done, message="identifier change")
    people = stack["cio"].people()
    assert [p["id"] for p in people] == ["ext-v2"]
    assert HullNotification.objects.filter(status=InboxStatus.DONE).count() == 3
