"""Hull notifications → real worker on Redis → fake Customer.io and fake Hull hold the right state."""
import pytest

from sync.models import SyncLog, SyncState
from tests.builders import hull_event, hull_message, notification
from webhooks.models import HullNotification, InboxStatus

from .conftest import wait_until

pytestmark = pytest.mark.integration


def post_notification(client, connector, messages, **kwargs):
    response = client.post("/hull/smart-notifier", notification(connector, messages, **kwargs),
                           content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["flow_control"]["type"] == "next"
    return response


def all_done():
    return not HullNotification.objects.exclude(status=InboxStatus.DONE).exists()


def test_worker_syncs_people_events_and_writes_traits_back(client, stack, live_connector):
    connector = live_connector(events_filter=["page", "Signed Up"], synchronized_attributes=["traits_plan"])
    messages = [hull_message(user_id=f"u{i}", traits_plan="pro", events=[hull_event("Signed Up", f"u{i}")])
                for i in range(20)]
    post_notification(client, connector, messages)

    wait_until(all_done, message="notification processed by the worker")
    cio = stack["cio"]
    assert len(cio.people()) == 20
    person = cio.person(id="ext-u3")
    assert person["email"] == "u3@example.com"
    assert person["attributes"]["plan"] == "pro"
    assert person["attributes"]["hull_segments"] == ["Hull Users"]
    assert len(cio.events(person_id="ext-u3")) == 1
    assert SyncLog.objects.filter(action="outgoing.user.success").count() == 20

    hull = stack["hull"]
    wait_until(lambda: len(hull.users()) == 20, message="write-back traits in fake Hull")
    traits = hull.traits("u3")
    assert traits["customerio/id"] == "ext-u3"
    assert traits["customerio/hash"] and traits.get("customerio/deleted_at") is None
    assert not SyncState.objects.filter(writeback_pending=True).exists()


def test_redelivered_notification_is_processed_once(client, stack, live_connector):
    connector = live_connector(events_filter=["page"])
    body_messages = [hull_message(user_id="dup", events=[hull_event("page", "dup")])]
    post_notification(client, connector, body_messages, notification_id="same-id")
    post_notification(client, connector, body_messages, notification_id="same-id")

    wait_until(all_done, message="notification processed")
    assert HullNotification.objects.count() == 1
    assert len(stack["cio"].events()) == 1
    assert stack["cio"].stats()["requests"] == 1
