"""Customer.io webhooks over real HTTP, concurrently, with duplicates and races → each event once in Hull."""
import hashlib
import hmac
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sync.models import SyncLog, SyncState
from webhooks.models import CustomerIOWebhook, InboxStatus

from .conftest import wait_until

pytestmark = pytest.mark.integration

SIGNING_KEY = "cio-signing-key-for-tests"
USERS = 90


def signed(body, key=SIGNING_KEY):
    timestamp = str(int(time.time()))
    signature = hmac.new(key.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-CIO-Timestamp": timestamp, "X-CIO-Signature": signature}


def opened_event(n):
    user = n % USERS
    return {"event_id": f"01HXA1B2C3D4E5F6G7H{n:07d}", "object_type": "email", "metric": "opened",
            "timestamp": 1717004000 + n,
            "data": {"campaign_id": 7, "action_id": 42, "delivery_id": f"dlv-{n}", "customer_id": f"c{user}",
                     "identifiers": {"id": f"c{user}", "email": f"user{user}@example.com"},
                     "recipient": f"user{user}@example.com", "subject": "Welcome!"}}


def test_thousand_deliveries_with_duplicates_and_races_give_900_events(live_server, stack, live_connector):
    connector = live_connector(webhook_signing_key=SIGNING_KEY)
    SyncState.objects.bulk_create([SyncState(connector=connector, hull_user_id=f"hull-{i}", customerio_id=f"c{i}",
                                             email=f"user{i}@example.com") for i in range(USERS)])
    bodies = [json.dumps(opened_event(n)).encode() for n in range(900)]
    deliveries = [[b] for b in bodies]
    for n in range(50):                    # races: the same event twice, side by side
        deliveries[n].append(bodies[n])
    later_duplicates = [bodies[n] for n in range(100, 150)]
    random.Random(7).shuffle(deliveries)
    ordered = [body for group in deliveries for body in group] + later_duplicates
    assert len(ordered) == 1000

    url = f"{live_server.url}/customerio/webhook/{connector.webhook_token}"
    session = requests.Session()

    def post(body):
        return session.post(url, data=body, headers=signed(body), timeout=10).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(post, ordered))
    assert statuses == [200] * 1000

    assert CustomerIOWebhook.objects.exclude(status=InboxStatus.REJECTED).count() == 900
    wait_until(lambda: not CustomerIOWebhook.objects.exclude(status=InboxStatus.DONE).exists(), timeout=120,
               message="every webhook forwarded to Hull")
    hull = stack["hull"]
    events = hull.events()
    assert len(events) == 900
    assert len({e["event_id"] for e in events}) == 900
    assert hull.stats()["duplicate_events"] == 0
    for event in events:
        n = int(event["event_id"][-7:])
        assert event["user_key"] == f"hull-{n % USERS}"
        assert event["event"] == "Email Opened"
        assert event["created_at"].startswith("2024-05-29T")
    assert SyncLog.objects.filter(action="incoming.event.success").count() == 900
    assert hull.stats()["firehose_requests"] < 900 / 2
