"""POST /hull/smart-notifier end to end: verify, persist, enqueue on commit, answer; then the task's work
against FakeCustomerIO and FakeHull running in this process (tasks run eagerly)."""
import json
import logging
import os
import time
import uuid
from unittest import mock

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from sync.models import SyncLog, SyncState
from tests.builders import fail_inserts_into, hull_event, hull_message, notification
from webhooks.models import HullNotification, InboxStatus

URL = "/hull/smart-notifier"
SITE, KEY = "site-notifier", "key-notifier-SECRET"
HULL_SECRET = "hull-secret-for-notifier-tests-0123456789"
NEXT = {"flow_control": {"type": "next", "size": 100, "in": 1000}, "metrics": [], "errors": []}
SIGNATURE_HEADER = "x-hull-smart-notifier-signature"


@pytest.fixture
def connector(connector_factory, cio, hull, monkeypatch):
    monkeypatch.setenv("CUSTOMERIO_TRACK_URL", cio.url)
    monkeypatch.setenv("HULL_FIREHOSE_URL", hull.url)
    monkeypatch.delenv("HULL_SMART_NOTIFIER_PUBLIC_KEY", raising=False)
    made = connector_factory(hull_organization=hull.url, hull_secret=HULL_SECRET, site_id=SITE, api_key=KEY,
                             events_filter=["Signed Up"], rate_limit_per_second=1000)
    hull.add_connector(made.hull_id, HULL_SECRET)
    return made


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    """POST a body (dict, or raw bytes/str) and run what was enqueued on commit."""

    def send(body, headers=None, content_type="application/json"):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(URL, data=data, content_type=content_type, headers=headers or {})

    return send


def error_reason(response):
    return " ".join(error["reason"] for error in response.json()["errors"])


def users(*ids, **kwargs):
    return [hull_message(user_id=user_id, **kwargs) for user_id in ids]


# --- accepted ------------------------------------------------------------------------------

def test_accepts_stores_processes_and_writes_back(post, connector, cio, hull):
    messages = users("u1", "u2")
    messages[0]["events"] = [hull_event("Signed Up", "u1", event_id="ev-1"), hull_event("page", "u1")]
    body = notification(connector, messages, notification_id="n-1")

    response = post(body)

    assert response.status_code == 200
    assert response.json() == NEXT
    row = HullNotification.objects.get()
    assert (row.notification_id, row.channel, row.kind, row.message_count) == ("n-1", "user:update",
                                                                              "notification", 2)
    stored = json.loads(row.body)
    assert stored["messages"] == body["messages"]
    assert stored["configuration"]["secret"] == "[redacted]"
    assert connector.hull_secret not in row.body
    assert row.status == InboxStatus.DONE and row.attempts == 1 and row.processed_at

    source = f"notification:{row.pk}"
    assert sorted((log.action, log.hull_user_id) for log in SyncLog.objects.all()) == [
        ("outgoing.event.skip", "u1"), ("outgoing.event.success", "u1"),
        ("outgoing.user.success", "u1"), ("outgoing.user.success", "u2")]
    assert set(SyncLog.objects.values_list("source", flat=True)) == {source}
    assert SyncLog.objects.get(action="outgoing.event.success").event_id == "ev-1"

    assert {p["id"] for p in cio.people()} == {"ext-u1", "ext-u2"}
    assert cio.person(id="ext-u1")["email"] == "u1@example.com"
    assert [e["name"] for e in cio.events(person_id="ext-u1")] == ["Signed Up"]

    assert hull.traits("u1")["customerio/id"] == "ext-u1"
    assert hull.traits("u2")["customerio/id"] == "ext-u2"
    assert not SyncState.objects.filter(writeback_pending=True).exists()


@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                    reason="row locks are PostgreSQL's; SQLite ignores SELECT ... FOR UPDATE")
def test_processing_locks_the_notification_row_and_not_its_connector(post, connector, cio):
    """Locking the joined connector row too serialized every worker and blocked the web's inserts."""
    with CaptureQueriesContext(connection) as queries:
        post(notification(connector, users("u1"), notification_id="n-lock"))

    locking = [query["sql"] for query in queries.captured_queries if "FOR UPDATE" in query["sql"]
               and "webhooks_hullnotification" in query["sql"]]
    assert locking and all(sql.endswith('FOR UPDATE OF "webhooks_hullnotification"') for sql in locking), locking


def test_users_outside_segments_are_skipped_with_a_log(post, connector, cio):
    response = post(notification(connector, users("u1", segments=(("other", "Other"),))))
    assert response.status_code == 200
    assert [log.action for log in SyncLog.objects.all()] == ["outgoing.user.skip"]
    assert cio.stats()["requests"] == 0


def test_empty_messages_are_accepted(post, connector, cio):
    response = post(notification(connector, []))
    assert response.status_code == 200 and response.json() == NEXT
    assert HullNotification.objects.get().message_count == 0
    assert cio.stats()["requests"] == 0


def test_unsupported_channel_is_ignored(post, connector, cio):
    response = post(notification(connector, users("u1"), channel="ship:update"))
    assert response.status_code == 200 and response.json() == NEXT
    assert not HullNotification.objects.exists()
    assert cio.stats()["requests"] == 0


def test_duplicate_notification_is_stored_and_processed_once(post, connector, cio):
    body = notification(connector, users("u1"), notification_id="same-id")

    first, second = post(body), post(body)

    assert first.status_code == second.status_code == 200
    assert second.json() == NEXT
    assert HullNotification.objects.count() == 1
    assert cio.stats()["requests"] == 1
    assert SyncLog.objects.filter(action="outgoing.user.success").count() == 1


def test_same_notification_id_for_two_connectors_is_two_rows(post, connector, connector_factory, hull):
    other = connector_factory(hull_organization=hull.url, hull_secret=HULL_SECRET, site_id=SITE, api_key=KEY)
    post(notification(connector, [], notification_id="shared"))
    post(notification(other, [], notification_id="shared"))
    assert HullNotification.objects.count() == 2


# --- refused: nothing stored ---------------------------------------------------------------

def assert_refused(response, status, text=""):
    assert response.status_code == status, response.content
    assert text in error_reason(response)
    assert not HullNotification.objects.exists()
    assert not SyncLog.objects.exists()


def test_unknown_connector_is_401(post, connector, cio):
    body = notification(connector, users("u1"))
    body["configuration"]["id"] = "5a9d5c3e2f8e4b00ffffffff"
    assert_refused(post(body), 401)
    assert cio.stats()["requests"] == 0


def test_wrong_secret_is_401(post, connector):
    response = post(notification(connector, users("u1"), secret="not-the-secret"))
    assert_refused(response, 401)
    assert "not-the-secret" not in response.content.decode() and HULL_SECRET not in response.content.decode()


@pytest.mark.parametrize("configuration", [{"id": None, "secret": HULL_SECRET}, {"id": 12, "secret": HULL_SECRET}])
def test_connector_id_that_is_not_a_string_is_401(post, connector, configuration):
    body = notification(connector, users("u1"))
    body["configuration"].update(configuration)
    assert_refused(post(body), 401)


def test_missing_secret_is_401(post, connector):
    body = notification(connector, users("u1"))
    del body["configuration"]["secret"]
    assert_refused(post(body), 401)


def test_malformed_json_is_400_with_a_message(post, connector):
    assert_refused(post(b'{"channel": "user:update", '), 400, "not valid JSON")


def test_invalid_utf8_is_400(post, connector):
    assert post(b'{"a": "\xff\xfe"}').status_code == 400
    assert not HullNotification.objects.exists()


def test_utf16_body_is_400_and_nothing_stored(post, connector):
    # json.loads accepts UTF-16 bytes, but the body is stored and processed as UTF-8 text.
    body = json.dumps(notification(connector, users("u1"))).encode("utf-16")
    assert_refused(post(body), 400)


def test_utf8_bom_body_is_refused_or_fully_processed(post, connector, cio):
    """Never a 200 whose stored row cannot be processed (a poison row the sweeper re-enqueues forever)."""
    body = b"\xef\xbb\xbf" + json.dumps(notification(connector, users("u1"))).encode()

    response = post(body)

    if response.status_code == 200:
        row = HullNotification.objects.get()
        assert row.status == InboxStatus.DONE, (row.status, row.attempts, row.reason)
        assert cio.person(id="ext-u1") is not None
    else:
        assert_refused(response, 400)


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"42", b"null"])
def test_body_that_is_not_an_object_is_400(post, connector, raw):
    assert_refused(post(raw), 400, "JSON object")


def test_missing_configuration_is_400(post, connector):
    body = notification(connector, users("u1"))
    del body["configuration"]
    assert_refused(post(body), 400, "configuration")


def test_configuration_that_is_not_an_object_is_400(post, connector):
    body = notification(connector, users("u1"))
    body["configuration"] = "id=1"
    assert_refused(post(body), 400, "configuration")


@pytest.mark.parametrize("messages", [{"user": {}}, "u1", None, [1, 2], [{"user": {}}, "x"]])
def test_messages_that_are_not_a_list_of_objects_is_400(post, connector, messages):
    body = notification(connector, [])
    body["messages"] = messages
    assert_refused(post(body), 400, "messages")


def test_missing_messages_is_400(post, connector):
    body = notification(connector, [])
    del body["messages"]
    assert_refused(post(body), 400, "messages")


@pytest.mark.parametrize("field", ["notification_id", "channel"])
def test_missing_notification_id_or_channel_is_400(post, connector, field):
    body = notification(connector, users("u1"))
    del body[field]
    assert_refused(post(body), 400, field)


def test_body_over_10_mb_is_413(post, connector):
    body = notification(connector, users("u1"))
    body["padding"] = "x" * (10 * 1024 * 1024)
    assert_refused(post(body), 413)


def test_body_over_the_upload_limit_is_413(post, connector):
    assert_refused(post(b"x" * (13 * 1024 * 1024)), 413)


def test_large_body_under_10_mb_is_accepted(post, connector):
    body = notification(connector, [])
    body["padding"] = "x" * (9 * 1024 * 1024)
    assert post(body).status_code == 200
    assert HullNotification.objects.count() == 1


def test_get_is_not_allowed(client, connector):
    assert client.get(URL).status_code == 405


# --- storage failure -----------------------------------------------------------------------

def test_database_failure_while_storing_asks_hull_to_retry(post, connector, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    fail_inserts_into(monkeypatch, HullNotification, "database is locked")
    response = post(notification(connector, users("u1")))

    assert response.status_code == 503
    assert response.json()["flow_control"]["type"] == "retry"
    assert response.json()["errors"]
    assert not HullNotification.objects.exists()
    assert HULL_SECRET not in caplog.text


def test_storage_service_failure_asks_hull_to_retry(post, connector):
    with mock.patch("webhooks.views.notification_store", side_effect=OperationalError("server closed")):
        response = post(notification(connector, users("u1")))
    assert response.status_code == 503
    assert response.json()["flow_control"]["type"] == "retry"


def test_database_failure_while_looking_up_the_connector_asks_hull_to_retry(post, connector):
    with mock.patch("connector.models.Connector.objects.filter", side_effect=OperationalError("gone")):
        response = post(notification(connector, users("u1")))
    assert response.status_code == 503
    assert response.json()["flow_control"]["type"] == "retry"


# --- processing failures after acceptance --------------------------------------------------

def test_customerio_rejecting_credentials_fails_the_row_visibly(post, connector_factory, cio, hull, monkeypatch):
    monkeypatch.setenv("CUSTOMERIO_TRACK_URL", cio.url)
    monkeypatch.setenv("HULL_FIREHOSE_URL", hull.url)
    bad = connector_factory(hull_organization=hull.url, site_id=SITE, api_key="wrong-key")

    response = post(notification(bad, users("u1")))

    assert response.status_code == 200 and response.json() == NEXT
    row = HullNotification.objects.get()
    assert row.status == InboxStatus.FAILED and "rejected" in row.reason and "wrong-key" not in row.reason
    bad.refresh_from_db()
    assert bad.credentials_rejected_at is not None
    assert not SyncLog.objects.exists()


def test_customerio_down_keeps_the_row_for_a_retry(post, connector, cio, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "1")
    monkeypatch.setattr("webhooks.tasks.hull_notification_process.max_retries", 0)
    cio.set_down()

    response = post(notification(connector, users("u1")))

    assert response.status_code == 200 and response.json() == NEXT
    row = HullNotification.objects.get()
    assert row.status == InboxStatus.FAILED and "not delivered yet" in row.reason
    assert row.next_attempt_at is not None
    assert not SyncState.objects.exists()
    assert not SyncLog.objects.exists()


def test_unexpected_processing_error_is_written_onto_the_row(post, connector):
    """STYLE rule 3: support reads rows; a crash must not leave the row pending with no reason."""
    with mock.patch("webhooks.services.users_sync", side_effect=RuntimeError("mapping exploded")):
        response = post(notification(connector, users("u1")))

    assert response.status_code == 200
    row = HullNotification.objects.get()
    assert row.status in (InboxStatus.FAILED, InboxStatus.FAILED_PERMANENT), (row.status, row.attempts)
    assert "mapping exploded" in row.reason
    assert row.attempts == 1


def test_failed_processing_is_not_retried_inside_the_hull_request(post, connector, cio, monkeypatch):
    """Tasks run in-process without a broker: a retry must be left to later (backoff), not looped at once."""
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "1")
    cio.set_down()

    response = post(notification(connector, users("u1")))

    assert response.status_code == 200
    row = HullNotification.objects.get()
    assert row.status == InboxStatus.FAILED and row.next_attempt_at is not None
    assert row.attempts == 1


# --- optional RS256 signature --------------------------------------------------------------

def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def hull_key():
    return rsa_key()


@pytest.fixture
def signed(connector, hull_key, monkeypatch):
    monkeypatch.setenv("HULL_SMART_NOTIFIER_PUBLIC_KEY", public_pem(hull_key))

    def sign(jti, key=None, algorithm="RS256", **claims):
        payload = {"jti": jti, "iat": int(time.time()), **claims}
        return jwt.encode(payload, key or hull_key, algorithm=algorithm)

    return sign


def test_valid_signature_is_accepted(post, connector, signed):
    body = notification(connector, users("u1"), notification_id=str(uuid.uuid4()))
    response = post(body, headers={SIGNATURE_HEADER: signed(body["notification_id"]),
                                   "x-hull-smart-notifier-signature-version": "v1"})
    assert response.status_code == 200 and response.json() == NEXT
    assert HullNotification.objects.get().notification_id == body["notification_id"]


def test_signature_with_another_jti_is_401(post, connector, signed):
    body = notification(connector, users("u1"), notification_id="n-1")
    assert_refused(post(body, headers={SIGNATURE_HEADER: signed("n-2")}), 401)


def test_missing_signature_is_401(post, connector, signed):
    assert_refused(post(notification(connector, users("u1"), notification_id="n-1")), 401)


def test_signature_by_another_key_is_401(post, connector, signed):
    body = notification(connector, users("u1"), notification_id="n-1")
    assert_refused(post(body, headers={SIGNATURE_HEADER: signed("n-1", key=rsa_key())}), 401)


def test_signature_without_jti_is_401(post, connector, signed, hull_key):
    token = jwt.encode({"iat": int(time.time())}, hull_key, algorithm="RS256")
    assert_refused(post(notification(connector, users("u1"), notification_id="n-1"),
                        headers={SIGNATURE_HEADER: token}), 401)


def test_hs256_token_keyed_with_the_public_key_is_401(post, connector, signed, hull_key):
    """Algorithm confusion: only RS256 is accepted."""
    pem = public_pem(hull_key).encode()
    forged = _forge_hs256({"jti": "n-1"}, pem)
    assert_refused(post(notification(connector, users("u1"), notification_id="n-1"),
                        headers={SIGNATURE_HEADER: forged}), 401)


def _forge_hs256(claims, key):
    import base64
    import hashlib
    import hmac

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + b"." + b64(json.dumps(claims).encode())
    return (signing_input + b"." + b64(hmac.new(key, signing_input, hashlib.sha256).digest())).decode()


def test_garbage_signature_is_401(post, connector, signed):
    assert_refused(post(notification(connector, users("u1"), notification_id="n-1"),
                        headers={SIGNATURE_HEADER: "not-a-jwt"}), 401)


def test_expired_signature_is_401(post, connector, signed):
    body = notification(connector, users("u1"), notification_id="n-1")
    token = signed("n-1", exp=int(time.time()) - 3600)
    assert_refused(post(body, headers={SIGNATURE_HEADER: token}), 401)


def test_valid_signature_does_not_excuse_a_wrong_secret(post, connector, signed):
    body = notification(connector, users("u1"), notification_id="n-1", secret="wrong")
    assert_refused(post(body, headers={SIGNATURE_HEADER: signed("n-1")}), 401)


def test_signature_not_required_without_a_public_key(post, connector):
    response = post(notification(connector, users("u1")), headers={SIGNATURE_HEADER: "whatever"})
    assert response.status_code == 200


def test_short_secrets_are_dropped_rather_than_replaced_in_the_stored_body():
    from webhooks.views import redact_secrets

    body = {"configuration": {"id": "c", "secret": "1"}, "connector": {"private_settings": {"api_key": "k"}},
            "messages": [{"user": {"id": "1", "email": "k1@example.com"}}]}
    stored = json.loads(redact_secrets(json.dumps(body), body))
    assert "configuration" not in stored and "connector" not in stored
    assert stored["messages"] == body["messages"]
