"""Out-of-order updates of the same users through two worker processes: the newest version always wins."""
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from sync.models import SyncState
from tests.builders import BASE_TIME, hull_event, hull_message, notification
from webhooks.models import HullNotification, InboxStatus
from webhooks.services import inbox_sweep

from .conftest import WorkerPool, wait_until
from .test_outgoing_e2e import all_done, post_notification

pytestmark = pytest.mark.integration

USERS, VERSIONS, PER_NOTIFICATION = 1000, 5, 100


def versioned_messages():
    """Every user in every version; version v is indexed v minutes after the base time."""
    return [hull_message(user_id=f"o{user}", indexed_minutes=version, traits_version=version)
            for user in range(USERS) for version in range(1, VERSIONS + 1)]


class Beat:
    """Plays Celery beat while waiting: every few seconds, failed rows are made due and swept."""

    def __init__(self, every=5.0):
        self.every, self.last = every, time.monotonic()

    def finished(self):
        if time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            HullNotification.objects.filter(status=InboxStatus.FAILED).update(next_attempt_at=timezone.now())
            inbox_sweep()
        return HullNotification.objects.filter(status=InboxStatus.DONE).count() == USERS * VERSIONS // PER_NOTIFICATION


def test_shuffled_interleaved_versions_end_with_the_newest_everywhere(live_server, stack, live_connector,
                                                                      worker_env):
    connector = live_connector(synchronized_attributes=["traits_version"])
    messages = versioned_messages()
    random.Random(20261127).shuffle(messages)
    bodies = [notification(connector, messages[start:start + PER_NOTIFICATION])
              for start in range(0, len(messages), PER_NOTIFICATION)]
    second = WorkerPool(worker_env)
    second.start(1)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = list(pool.map(lambda body: requests.post(f"{live_server.url}/hull/smart-notifier", json=body,
                                                                 timeout=30).status_code, bodies))
        assert statuses == [200] * len(bodies)
        wait_until(Beat().finished, timeout=150, interval=0.5, message="every notification processed by two workers")
    finally:
        second.stop()

    assert not HullNotification.objects.exclude(status=InboxStatus.DONE).exists()
    people = stack["cio"].people()
    assert len(people) == USERS
    versions = {person["id"]: person["attributes"].get("version") for person in people}
    wrong = {pid: v for pid, v in versions.items() if v != VERSIONS}
    assert not wrong, f"{len(wrong)} people not at version {VERSIONS}, e.g. {sorted(wrong.items())[:5]}"
    newest = BASE_TIME + timedelta(minutes=VERSIONS)
    states = SyncState.objects.filter(connector=connector)
    assert states.count() == USERS
    assert not states.exclude(last_indexed_at=newest).exists()
    assert not states.exclude(last_payload__version=VERSIONS).exists()
    retried = dict(HullNotification.objects.filter(attempts__gt=1).values_list("pk", "reason"))
    assert not retried, f"{len(retried)} notification(s) needed the sweeper (e.g. a deadlock): {retried}"


def test_events_of_a_late_older_update_still_reach_customerio(client, stack, live_connector):
    """A notification retried after a newer one (e.g. after a Customer.io 5xx burst) is stale for the
    attributes, but its events are new facts that Hull will not send again."""
    connector = live_connector(synchronized_attributes=["traits_version"], events_filter=["Signed Up"])
    post_notification(client, connector, [hull_message(user_id="late", indexed_minutes=10, traits_version=2)])
    wait_until(all_done, message="the newer update")
    late_event = hull_event("Signed Up", "late", minutes=4)
    post_notification(client, connector, [hull_message(user_id="late", indexed_minutes=5, traits_version=1,
                                                       events=[late_event])])
    wait_until(all_done, message="the older update")

    assert stack["cio"].person(id="ext-late")["attributes"]["version"] == 2
    assert [event["name"] for event in stack["cio"].events(person_id="ext-late")] == ["Signed Up"]
