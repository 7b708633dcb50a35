"""POST /customerio/webhook/<token>: verification, storage, de-duplication and forwarding to Hull."""
import hashlib
import hmac
import json
import time
from pathlib import Path

import pytest

from sync.models import SyncLog, SyncState
from tests.builders import fail_inserts_into
from tests.fakes.hull import FakeHull
from webhooks.models import CustomerIOWebhook, InboxStatus

FIXTURES = Path(__file__).parent / "fixtures" / "customerio"
SIGNING_KEY = "signing-key-0123456789"


def fixture(name):
    return (FIXTURES / f"{name}.json").read_bytes()


def sign(body, key=SIGNING_KEY, timestamp=None):
    timestamp = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(key.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {"HTTP_X_CIO_TIMESTAMP": timestamp, "HTTP_X_CIO_SIGNATURE": digest}


@pytest.fixture
def hull(monkeypatch):
    with FakeHull() as fake:
        monkeypatch.setenv("HULL_FIREHOSE_URL", fake.url)
        yield fake


@pytest.fixture
def signed_connector(connector_factory, hull):
    connector = connector_factory(webhook_signing_key=SIGNING_KEY, user_id_mapping="external_id")
    hull.add_connector(connector.hull_id, connector.hull_secret)
    return connector


def post(client, connector, body, content_type="application/json", token=None, **headers):
    return client.post(f"/customerio/webhook/{token or connector.webhook_token}", body,
                       content_type=content_type, **headers)


@pytest.mark.django_db(transaction=True)
def test_signed_delivery_is_stored_forwarded_and_logged(client, signed_connector, hull):
    body = fixture("email_opened")
    response = post(client, signed_connector, body, **sign(body))

    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    row = CustomerIOWebhook.objects.get()
    assert (row.status, row.signature_valid, row.event_name) == (InboxStatus.DONE, True, "Email Opened")
    event = hull.events()[0]
    payload = json.loads(body)
    assert event["event_id"] == payload["event_id"]
    assert event["event"] == "Email Opened"
    assert SyncLog.objects.filter(action="incoming.event.success", event_id=payload["event_id"]).count() == 1


@pytest.mark.django_db(transaction=True)
def test_known_customer_goes_to_the_synced_hull_user_and_cio_id_is_learnt(client, signed_connector, hull):
    payload = json.loads(fixture("email_opened"))
    customer_id = payload["data"]["identifiers"]["id"]
    SyncState.objects.create(connector=signed_connector, hull_user_id="hull-42", customerio_id=customer_id)
    body = json.dumps(payload).encode()
    assert post(client, signed_connector, body, **sign(body)).status_code == 200

    assert hull.events()[0]["user_key"] == "hull-42"
    state = SyncState.objects.get(hull_user_id="hull-42")
    assert state.cio_id == payload["data"]["identifiers"].get("cio_id", "")
    assert CustomerIOWebhook.objects.get().hull_user_id == "hull-42"


@pytest.mark.django_db(transaction=True)
def test_redelivery_is_acknowledged_and_not_processed_again(client, signed_connector, hull):
    body = fixture("sms_delivered")
    first = post(client, signed_connector, body, **sign(body))
    second = post(client, signed_connector, body, **sign(body))

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["status"] == "duplicate"
    assert CustomerIOWebhook.objects.count() == 1
    assert len(hull.events()) == 1


@pytest.mark.django_db(transaction=True)
def test_unsubscribe_updates_hull_traits(client, signed_connector, hull):
    body = fixture("customer_unsubscribed")
    assert post(client, signed_connector, body, **sign(body)).status_code == 200
    users = hull.users()
    assert any(u["traits"].get("customerio/unsubscribed") is True for u in users.values())


@pytest.mark.django_db(transaction=True)
def test_trait_updates_can_be_turned_off(client, connector_factory, hull):
    connector = connector_factory(update_hull_traits=False)
    hull.add_connector(connector.hull_id, connector.hull_secret)
    assert post(client, connector, fixture("customer_unsubscribed")).status_code == 200
    assert all(not u["traits"] for u in hull.users().values())


@pytest.mark.django_db(transaction=True)
def test_no_identifier_is_recorded_as_failed_and_not_lost(client, signed_connector, hull):
    payload = json.loads(fixture("email_opened"))
    payload["data"]["identifiers"] = {"id": None, "email": None}
    payload["data"].pop("customer_id", None)
    payload["data"].pop("recipient", None)
    body = json.dumps(payload).encode()
    assert post(client, signed_connector, body, **sign(body)).status_code == 200

    row = CustomerIOWebhook.objects.get()
    assert row.status == InboxStatus.FAILED
    assert "identifier" in row.reason
    assert SyncLog.objects.filter(action="incoming.event.error").count() == 1
    assert hull.events() == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ["unknown_event_type", "send_test_empty_data"])
def test_unknown_types_and_send_test_are_accepted_and_ignored(client, signed_connector, hull, name):
    body = fixture(name)
    response = post(client, signed_connector, body, **sign(body))
    assert response.status_code == 200
    row = CustomerIOWebhook.objects.get()
    assert row.status == InboxStatus.IGNORED and row.reason
    assert hull.events() == []


@pytest.mark.django_db(transaction=True)
def test_firehose_down_leaves_rows_failed_for_a_later_retry(client, signed_connector, hull, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    hull.set_down(True)
    body = fixture("email_clicked")
    assert post(client, signed_connector, body, **sign(body)).status_code == 200
    row = CustomerIOWebhook.objects.get()
    assert row.status == InboxStatus.FAILED and row.next_attempt_at is not None
    assert "firehose" in row.reason.lower()


# Security: each case is a clear 4xx and nothing is processed.

def _rejects(response, status):
    assert response.status_code == status, response.content
    assert response.json()["error"]


@pytest.mark.django_db
@pytest.mark.parametrize("headers", [
    {},
    {"HTTP_X_CIO_TIMESTAMP": "1717004000", "HTTP_X_CIO_SIGNATURE": "00" * 32},
    "wrong-key",
])
def test_missing_or_wrong_signature_is_401_and_kept_as_rejected(client, signed_connector, headers):
    body = fixture("email_opened")
    if headers == "wrong-key":
        headers = sign(body, key="another-key")
    _rejects(post(client, signed_connector, body, **headers), 401)
    row = CustomerIOWebhook.objects.get()
    assert (row.status, row.signature_valid) == (InboxStatus.REJECTED, False)


@pytest.mark.django_db
def test_stale_timestamp_is_rejected_when_a_tolerance_is_set(client, signed_connector):
    signed_connector.webhook_timestamp_tolerance = 300
    signed_connector.save()
    body = fixture("email_opened")
    _rejects(post(client, signed_connector, body, **sign(body, timestamp=int(time.time()) - 3600)), 401)
    assert post(client, signed_connector, body, **sign(body)).status_code == 200


@pytest.mark.django_db
def test_signature_over_a_tampered_body_fails(client, signed_connector):
    body = fixture("email_opened")
    headers = sign(body)
    _rejects(post(client, signed_connector, body.replace(b"opened", b"clicked"), **headers), 401)


@pytest.mark.django_db
def test_wrong_token_is_404(client, signed_connector):
    _rejects(post(client, signed_connector, fixture("email_opened"), token="not-a-token"), 404)
    assert not CustomerIOWebhook.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("body,status", [
    (b"not json", 400),
    (b"[1, 2]", 400),
    (b'{"object_type": "email"}', 400),
    (b"\xff\xfe{}", 400),
    (b"[" * 100000 + b"]" * 100000, 400),
])
def test_malformed_payloads_are_400(client, connector_factory, body, status):
    connector = connector_factory()
    _rejects(post(client, connector, body), status)
    assert not CustomerIOWebhook.objects.exists()


@pytest.mark.django_db
def test_oversize_body_is_413(client, connector_factory):
    connector = connector_factory()
    body = b'{"event_id": "x", "pad": "' + b"a" * (3 * 1024 * 1024) + b'"}'
    _rejects(post(client, connector, body), 413)
    assert not CustomerIOWebhook.objects.exists()


@pytest.mark.django_db
def test_wrong_content_type_is_415(client, connector_factory):
    connector = connector_factory()
    _rejects(post(client, connector, fixture("email_opened"), content_type="text/plain"), 415)
    assert not CustomerIOWebhook.objects.exists()


@pytest.mark.django_db
def test_database_down_is_503(client, connector_factory, monkeypatch):
    connector = connector_factory()
    fail_inserts_into(monkeypatch, CustomerIOWebhook)
    response = post(client, connector, fixture("email_opened"))
    assert response.status_code == 503
