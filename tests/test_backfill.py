"""Backfill: POST /hull/batch with a 5,000-line extract from the fake Hull, synced to the fake Customer.io."""
import pytest
from django.urls import reverse

from connector.models import Connector
from sync.models import SyncLog, SyncState
from tests.fakes.hull import synthetic_users
from webhooks.actions import notifications_retry
from webhooks.models import HullNotification, InboxStatus

SITE, KEY = "site-backfill", "key-backfill"
HULL_SECRET = "hull-secret-backfill-0123456789abcdef"
USERS = 5000


@pytest.fixture
def hull(hull):
    hull.set_segments([{"id": "seg-1", "name": "Hull Users"}])
    return hull


@pytest.fixture
def connector(connector_factory, hull, cio):
    connector = connector_factory(hull_organization=hull.url, hull_secret=HULL_SECRET, site_id=SITE, api_key=KEY,
                                  synchronized_segments=["seg-1"], rate_limit_per_second=1000)
    hull.add_connector(connector.hull_id, HULL_SECRET)
    return connector


def post_batch(client, connector, url, capture):
    query = f"?ship={connector.hull_id}&organization={connector.hull_organization}&secret={HULL_SECRET}"
    with capture(execute=True):
        return client.post(reverse("hull_batch") + query,
                           {"url": url, "format": "json", "object_type": "user_report"},
                           content_type="application/json")


def test_backfill_of_a_5000_line_extract(client, admin_client, connector, hull, cio,
                                         django_capture_on_commit_callbacks):
    url = hull.serve_extract("users", synthetic_users(USERS, ["seg-1"]))

    response = post_batch(client, connector, url, django_capture_on_commit_callbacks)

    assert response.status_code == 200, response.content
    row = HullNotification.objects.get(kind=HullNotification.Kind.BATCH)
    assert (row.status, row.progress_done, row.message_count) == (InboxStatus.DONE, USERS, USERS)
    assert len(cio.people()) == USERS
    person = cio.person(id="ext-4999")
    assert person["email"] == "user4999@example.com"
    assert person["attributes"]["hull_segments"] == ["Hull Users"]
    assert cio.stats()["batch_operations"] == USERS
    assert SyncState.objects.filter(connector=connector, last_outcome="insert").count() == USERS
    assert SyncLog.objects.filter(action="outgoing.user.success").count() == USERS
    assert not SyncState.objects.filter(writeback_pending=True).exists()
    assert hull.traits(f"{4999:024x}")["customerio/id"] == "ext-4999"
    page = admin_client.get(reverse("admin:connector_connector_change", args=[connector.pk])).content.decode()
    assert "<td>5,000 / 5,000</td>" in page


def test_backfill_resumes_after_the_lines_already_done(client, connector, hull, cio,
                                                       django_capture_on_commit_callbacks):
    url = hull.serve_extract("resume", synthetic_users(300, ["seg-1"]))
    cio.set_credentials(SITE, "temporarily-wrong")

    post_batch(client, connector, url, django_capture_on_commit_callbacks)

    row = HullNotification.objects.get(kind=HullNotification.Kind.BATCH)
    assert row.status == InboxStatus.FAILED and row.progress_done == 0
    # As if the first 100 lines had gone through before the failure.
    HullNotification.objects.filter(pk=row.pk).update(progress_done=100)
    cio.set_credentials(SITE, KEY)
    Connector.objects.filter(pk=connector.pk).update(credentials_rejected_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        notifications_retry(HullNotification.objects.filter(pk=row.pk))

    row.refresh_from_db()
    assert (row.status, row.progress_done) == (InboxStatus.DONE, 300)
    assert len(cio.people()) == 200
