"""Tests for sync.services against the loopback fakes (FakeCustomerIO, FakeHull) in this process.

The first group replays the old connector's outgoing scenarios (reference/hull-protocol.md §5.7):
user `sven@hull.io`, one `page` event, `user_id_mapping: "email"`, `events_filter: ["page"]`.
"""
from datetime import timedelta

import pytest
from django.db import transaction

from sync.exceptions import ConfigurationError, CredentialsRejected, RetryableAPIError
from sync.hull import HullClient
from sync.mapping import (
    REASON_ALREADY_DELETED, REASON_EVENTS_NOT_WHITELISTED, REASON_NO_CHANGES, REASON_NO_EMAIL, REASON_NO_ID_VALUE,
    REASON_NOT_IN_SEGMENTS, REASON_STALE, KnownState, decide, merge_messages, parse_time, to_unix,
)
from sync.models import SyncLog, SyncState
from sync.services import hull_writeback, known_state, states_lock, sync_config, users_sync
from tests.builders import BASE_TIME, hull_event, hull_message

SITE, KEY = "site-sync", "key-sync-SECRET"
HULL_SECRET = "hull-secret-for-sync-tests-0123456789abcdef"
SEGMENT = ("596796d24eaa537e6900e1ee", "Hull Users")
SVEN_ID = "5aa7ec6db5856ffa1b0a8fa0"
SVEN = "sven@hull.io"
SVEN_CREATED = "2018-03-13T15:21:17Z"
PAGE_URL = "http://example.com/pricing/"


@pytest.fixture
def make_connector(connector_factory, cio, hull, monkeypatch):
    monkeypatch.setenv("CUSTOMERIO_TRACK_URL", cio.url)
    monkeypatch.setenv("HULL_FIREHOSE_URL", hull.url)

    def make(**overrides):
        fields = {"hull_organization": hull.url, "hull_secret": HULL_SECRET, "site_id": SITE, "api_key": KEY,
                  "user_id_mapping": "email", "events_filter": ["page"], "synchronized_segments": [SEGMENT[0]],
                  "rate_limit_per_second": 1000}
        fields.update(overrides)
        connector = connector_factory(**fields)
        hull.add_connector(connector.hull_id, HULL_SECRET)
        return connector

    return make


def page_event(event_id="4cf3e7be-2d7c-4fb7-b032-bc33aa49e246", minutes=0):
    return hull_event("page", SVEN_ID, minutes=minutes, event_id=event_id,
                      properties={"url": PAGE_URL, "path": "/pricing/", "title": "Pricing"})


def sven(events=(), segments=(SEGMENT,), minutes=0, **traits):
    message = hull_message(user_id=SVEN_ID, email=SVEN, external_id="5908db9857b9265d4500059f",
                           segments=segments, indexed_minutes=minutes, events=events, **traits)
    message["user"]["created_at"] = SVEN_CREATED
    return message


def legacy_traits(hash_value=None, **extra):
    """Traits the old connector wrote on a user it had synced."""
    traits = {"traits_customerio/created_at": to_unix(SVEN_CREATED), "traits_customerio/email": SVEN,
              "traits_customerio/id": SVEN}
    if hash_value is not None:
        traits["traits_customerio/hash"] = hash_value
    traits.update(extra)
    return traits


def our_hash(connector, message):
    return decide(merge_messages([message])[0], sync_config(connector)).payload_hash


def seed_person(cio, **identifiers):
    """A person the old connector created in Customer.io."""
    from sync.customerio import CustomerIOClient

    attributes = identifiers.pop("attributes", {})
    op = {"type": "person", "action": "identify", "identifiers": identifiers, "attributes": attributes}
    assert CustomerIOClient(cio.url, SITE, KEY, 1000, pace_key="seed").batch([op])[0].ok
    cio_requests = cio.stats()["requests"]
    return cio_requests


def logs(**filters):
    return list(SyncLog.objects.filter(**filters).order_by("id"))


def actions():
    return [row.action for row in logs()]


def state(connector, user_id=SVEN_ID):
    return SyncState.objects.get(connector=connector, hull_user_id=user_id)


def api_requests(cio, before=0):
    return cio.stats()["requests"] - before


# --- the old connector's scenarios (§5.7) ----------------------------------------------------

def test_customer_insert(make_connector, cio):
    connector = make_connector()

    summary = users_sync(connector, [sven()], source="notification:1")

    assert summary.users == 1 and summary.outcomes == {"insert": 1} and summary.retry_reason == ""
    assert summary.writeback and summary.operations == 1
    person = cio.person(email=SVEN)
    assert person["attributes"] == {"created_at": 1520954477, "hull_segments": ["Hull Users"]}
    assert cio.stats()["by_route"] == {"POST /api/v2/batch": 1}
    row = state(connector)
    assert (row.customerio_id, row.email, row.customerio_created_at) == (SVEN, SVEN, 1520954477)
    assert len(row.payload_hash) == 40 and row.synced_at is not None and row.deleted_at is None
    assert row.last_outcome == "insert" and row.writeback_pending and row.writeback_seq == 1
    assert row.last_indexed_at == BASE_TIME
    [log] = logs()
    assert (log.action, log.direction, log.outcome) == ("outgoing.user.success", "outgoing", "success")
    assert log.data == {"attributes": {"email": SVEN, "created_at": 1520954477, "hull_segments": ["Hull Users"]},
                        "operation": "insert"}
    assert (log.hull_user_id, log.email, log.customerio_id) == (SVEN_ID, SVEN, SVEN)
    assert log.http_status == 200 and log.source == "notification:1" and log.error == ""


def test_customer_insert_with_more_than_30_attributes_is_one_identify(make_connector, cio):
    names = [f"traits_foo_{i}" for i in range(45)]
    connector = make_connector(synchronized_attributes=names)

    users_sync(connector, [sven(**{name: f"value {i}" for i, name in enumerate(names)})])

    assert cio.stats()["requests"] == 1 and cio.stats()["batch_operations"] == 1
    attributes = cio.person(email=SVEN)["attributes"]
    assert len(attributes) == 47  # foo_0..44, created_at, hull_segments (email is the identifier)
    assert attributes["foo_0"] == "value 0" and attributes["foo_44"] == "value 44"
    [log] = logs()
    assert log.action == "outgoing.user.success"
    assert {f"foo_{i}" for i in range(45)} <= set(log.data["attributes"])
    assert len(log.data["attributes"]) == 48


def test_customer_insert_skip_without_id_value(make_connector, cio):
    connector = make_connector(user_id_mapping="external_id")
    message = sven()
    del message["user"]["external_id"]

    summary = users_sync(connector, [message])

    assert summary.outcomes == {"skip": 1} and not summary.writeback
    assert cio.stats()["requests"] == 0
    [log] = logs()
    assert (log.action, log.outcome, log.reason) == ("outgoing.user.skip", "skip", REASON_NO_ID_VALUE)
    row = state(connector)
    assert (row.last_outcome, row.last_reason, row.customerio_id) == ("skip", REASON_NO_ID_VALUE, "")
    assert not row.writeback_pending


def test_customer_update(make_connector, cio):
    connector = make_connector()
    before = seed_person(cio, email=SVEN, attributes={"created_at": 1520954477, "old": "x"})

    summary = users_sync(connector, [sven(**legacy_traits())])

    assert summary.outcomes == {"update": 1}
    assert api_requests(cio, before) == 1
    [person] = cio.people()
    assert person["email"] == SVEN and person["updated_count"] == 1
    assert person["attributes"]["hull_segments"] == ["Hull Users"]
    [log] = logs()
    assert log.action == "outgoing.user.success" and log.data["operation"] == "update"
    row = state(connector)
    assert row.last_outcome == "update" and row.customerio_id == SVEN and row.writeback_pending


def test_customer_update_with_event(make_connector, cio):
    connector = make_connector()
    before = seed_person(cio, email=SVEN)
    event = page_event()

    summary = users_sync(connector, [sven(events=[event], **legacy_traits(hash_value="3f2a-object-hash"))])

    assert summary.outcomes == {"update": 1} and summary.operations == 2
    assert api_requests(cio, before) == 1  # identify and event in one batch
    [person] = cio.people()
    assert person["updated_count"] == 1
    [sent] = cio.events(person_id=None)
    assert (sent["type"], sent["name"], sent["person_cio_id"]) == ("page", PAGE_URL, person["cio_id"])
    assert sent["attributes"]["title"] == "Pricing" and len(sent["id"]) == 26
    assert sent["timestamp"] == to_unix(event["created_at"])
    user_log, event_log = logs()
    assert user_log.action == "outgoing.user.success"
    assert (event_log.action, event_log.outcome, event_log.event_id) == (
        "outgoing.event.success", "success", event["event_id"])
    assert event_log.data["name"] == PAGE_URL and event_log.http_status == 200


def test_customer_update_skip_no_changes(make_connector, cio):
    connector = make_connector()
    message = sven()
    message["user"].update(legacy_traits(hash_value=our_hash(connector, message)))

    summary = users_sync(connector, [message])

    assert summary.outcomes == {"skip": 1} and summary.operations == 0
    assert cio.stats()["requests"] == 0
    [log] = logs()
    assert (log.action, log.reason) == ("outgoing.user.skip", REASON_NO_CHANGES)
    assert state(connector).last_outcome == "skip"


def test_unchanged_user_with_event_sends_only_the_event(make_connector, cio):
    connector = make_connector()
    before = seed_person(cio, email=SVEN)
    message = sven(events=[page_event()])
    message["user"].update(legacy_traits(hash_value=our_hash(connector, message)))

    summary = users_sync(connector, [message])

    assert summary.outcomes == {"events": 1} and summary.operations == 1
    assert api_requests(cio, before) == 1
    assert cio.people()[0]["updated_count"] == 0
    assert len(cio.events()) == 1
    assert actions() == ["outgoing.event.success"]
    assert state(connector).last_outcome == "events"


def test_customer_update_skip_not_in_segments(make_connector, cio):
    connector = make_connector(enable_user_deletion=False)

    summary = users_sync(connector, [sven(segments=(), **legacy_traits(hash_value="h"))])

    assert summary.outcomes == {"skip": 1}
    assert cio.stats()["requests"] == 0
    [log] = logs()
    assert (log.action, log.reason) == ("outgoing.user.skip", REASON_NOT_IN_SEGMENTS)


def test_customer_delete(make_connector, cio, hull):
    connector = make_connector(enable_user_deletion=True)
    before = seed_person(cio, email=SVEN)

    summary = users_sync(connector, [sven(segments=(), **legacy_traits(hash_value="h"))])

    assert summary.outcomes == {"delete": 1} and summary.writeback
    assert api_requests(cio, before) == 1
    assert cio.people() == [] and [p["email"] for p in cio.deleted()] == [SVEN]
    [log] = logs()
    assert (log.action, log.outcome, log.data) == ("outgoing.user.deletion", "deletion", {"id": SVEN})
    row = state(connector)
    assert row.deleted_at is not None and row.customerio_id == "" and row.payload_hash == ""
    assert row.synced_at is None and row.customerio_created_at is None
    assert row.last_outcome == "delete" and row.writeback_pending

    assert hull_writeback(connector) == 1
    traits = hull.traits(SVEN_ID)
    assert set(traits) == {"customerio/deleted_at"}
    assert parse_time(traits["customerio/deleted_at"]) == row.deleted_at


def test_deleted_user_outside_segments_is_skipped_as_already_deleted(make_connector, cio):
    connector = make_connector(enable_user_deletion=True)
    users_sync(connector, [sven(segments=(), **legacy_traits(**{"traits_customerio/deleted_at": "2026-01-01"}))])
    assert cio.stats()["requests"] == 0
    assert [(row.action, row.reason) for row in logs()] == [("outgoing.user.skip", REASON_ALREADY_DELETED)]


def test_deleted_then_back_in_segment_is_inserted_again(make_connector, cio):
    connector = make_connector(enable_user_deletion=True)
    seed_person(cio, email=SVEN)
    users_sync(connector, [sven(segments=(), minutes=1, **legacy_traits())])

    summary = users_sync(connector, [sven(minutes=2, **legacy_traits())])

    assert summary.outcomes == {"insert": 1}
    assert cio.person(email=SVEN) is not None
    row = state(connector)
    assert row.deleted_at is None and row.customerio_id == SVEN


def test_no_email_is_skipped(make_connector, cio):
    connector = make_connector(user_id_mapping="external_id")
    message = sven()
    del message["user"]["email"]
    users_sync(connector, [message])
    assert [(row.action, row.reason) for row in logs()] == [("outgoing.user.skip", REASON_NO_EMAIL)]
    assert cio.stats()["requests"] == 0


def test_events_not_whitelisted_are_logged_as_skipped(make_connector, cio):
    connector = make_connector()
    users_sync(connector, [sven(events=[page_event(), hull_event("Signed Up", SVEN_ID)])])
    assert actions() == ["outgoing.user.success", "outgoing.event.skip", "outgoing.event.success"]
    skipped = logs(action="outgoing.event.skip")[0]
    assert skipped.reason == REASON_EVENTS_NOT_WHITELISTED and skipped.data == {"events": ["Signed Up"]}
    assert [e["name"] for e in cio.events()] == [PAGE_URL]


# --- beyond the old connector ---------------------------------------------------------------

def test_unchanged_second_notification_is_skipped(make_connector, cio):
    connector = make_connector()
    users_sync(connector, [sven(minutes=1)])
    sent = cio.stats()["requests"]

    summary = users_sync(connector, [sven(minutes=2)])

    assert summary.outcomes == {"skip": 1}
    assert cio.stats()["requests"] == sent
    assert logs()[-1].reason == REASON_NO_CHANGES
    assert state(connector).last_indexed_at == BASE_TIME + timedelta(minutes=2)


def test_stale_message_is_skipped(make_connector, cio):
    connector = make_connector(synchronized_attributes=["traits_plan"])
    users_sync(connector, [sven(minutes=10, traits_plan="pro")])
    sent = cio.stats()["requests"]

    summary = users_sync(connector, [sven(minutes=5, traits_plan="free")])

    assert summary.outcomes == {"skip": 1}
    assert cio.stats()["requests"] == sent
    assert cio.person(email=SVEN)["attributes"]["plan"] == "pro"
    assert logs()[-1].reason == REASON_STALE
    row = state(connector)
    assert row.last_indexed_at == BASE_TIME + timedelta(minutes=10) and row.last_payload["plan"] == "pro"


def test_messages_of_one_user_are_merged(make_connector, cio):
    connector = make_connector(synchronized_attributes=["traits_plan"])
    first = sven(minutes=1, traits_plan="free", events=[page_event("e1", minutes=1)])
    latest = sven(minutes=3, traits_plan="pro", events=[page_event("e2", minutes=2)])

    summary = users_sync(connector, [latest, first])

    assert summary.users == 1 and summary.outcomes == {"insert": 1} and summary.operations == 3
    assert cio.person(email=SVEN)["attributes"]["plan"] == "pro"
    assert len(cio.events()) == 2
    assert sorted(row.event_id for row in logs(action="outgoing.event.success")) == ["e1", "e2"]


def test_identifier_change_updates_the_existing_person(make_connector, cio):
    connector = make_connector(user_id_mapping="external_id")
    users_sync(connector, [sven(minutes=1)])
    assert cio.person(id="5908db9857b9265d4500059f") is not None
    changed = sven(minutes=2, events=[page_event()])
    changed["user"]["external_id"] = "new-external-id"

    summary = users_sync(connector, [changed])

    assert summary.outcomes == {"update": 1}
    [person] = cio.people()
    assert person["id"] == "new-external-id" and person["email"] == SVEN
    assert cio.person(id="5908db9857b9265d4500059f") is None
    assert [e["person_cio_id"] for e in cio.events()] == [person["cio_id"]]
    row = state(connector)
    assert row.customerio_id == "new-external-id" and row.external_id == "new-external-id"


def test_identifier_change_addresses_the_person_by_cio_id_when_known(make_connector, cio):
    connector = make_connector(user_id_mapping="external_id")
    seed_person(cio, id="old-external-id", attributes={"email": SVEN})
    cio_id = cio.person(id="old-external-id")["cio_id"]
    SyncState.objects.create(connector=connector, hull_user_id=SVEN_ID, customerio_id="old-external-id",
                             cio_id=cio_id, payload_hash="old", last_indexed_at=BASE_TIME)

    summary = users_sync(connector, [sven(minutes=1)])

    assert summary.outcomes == {"update": 1}
    [person] = cio.people()
    assert (person["cio_id"], person["id"]) == (cio_id, "5908db9857b9265d4500059f")
    assert state(connector).customerio_id == "5908db9857b9265d4500059f"


def test_email_change_with_email_mapping_updates_the_same_person(make_connector, cio):
    connector = make_connector()
    users_sync(connector, [sven(minutes=1)])
    changed = sven(minutes=2)
    changed["user"]["email"] = "sven.new@hull.io"

    users_sync(connector, [changed])

    [person] = cio.people()
    assert person["email"] == "sven.new@hull.io"
    assert state(connector).customerio_id == "sven.new@hull.io"


def test_delete_by_cio_id_when_known(make_connector, cio):
    connector = make_connector(enable_user_deletion=True, user_id_mapping="external_id")
    users_sync(connector, [sven(minutes=1)])
    cio_id = cio.person(id="5908db9857b9265d4500059f")["cio_id"]
    SyncState.objects.filter(hull_user_id=SVEN_ID).update(cio_id=cio_id)

    summary = users_sync(connector, [sven(minutes=2, segments=())])

    assert summary.outcomes == {"delete": 1}
    assert cio.people() == [] and cio.deleted()[0]["cio_id"] == cio_id


def test_207_partial_failure_fails_only_that_user(make_connector, cio):
    # Our limit is raised above Customer.io's 1000 bytes, so only Customer.io refuses u2 (207).
    connector = make_connector(user_id_mapping="external_id", synchronized_attributes=["traits_bio"],
                               max_attribute_value_length=5000)
    messages = [hull_message(user_id="u1", segments=(SEGMENT,), traits_bio="short"),
                hull_message(user_id="u2", segments=(SEGMENT,), traits_bio="x" * 1500),
                hull_message(user_id="u3", segments=(SEGMENT,), traits_bio="short")]

    summary = users_sync(connector, messages)

    assert summary.retry_reason == ""
    assert cio.stats()["by_status"] == {207: 1}
    assert {p["id"] for p in cio.people()} == {"ext-u1", "ext-u3"}
    failed = logs(hull_user_id="u2")
    assert [row.action for row in failed] == ["outgoing.user.error"]
    assert failed[0].http_status == 207 and "longer than 1000 bytes" in failed[0].reason
    assert failed[0].error and failed[0].customerio_id == "ext-u2"
    row = state(connector, "u2")
    assert row.last_outcome == "error" and row.customerio_id == "" and not row.writeback_pending
    assert "longer than 1000 bytes" in row.last_reason
    for user_id in ("u1", "u3"):
        assert [r.action for r in logs(hull_user_id=user_id)] == ["outgoing.user.success"]
        assert state(connector, user_id).customerio_id == f"ext-{user_id}"
        assert state(connector, user_id).writeback_pending


def test_207_failure_is_retried_on_the_next_notification(make_connector, cio):
    connector = make_connector(user_id_mapping="external_id", synchronized_attributes=["traits_bio"],
                               max_attribute_value_length=5000)
    users_sync(connector, [hull_message(user_id="u2", segments=(SEGMENT,), indexed_minutes=1, traits_bio="x" * 1500)])
    assert cio.people() == []

    summary = users_sync(connector, [hull_message(user_id="u2", segments=(SEGMENT,), indexed_minutes=2,
                                                  traits_bio="fixed")])

    assert summary.outcomes == {"insert": 1}
    assert cio.person(id="ext-u2")["attributes"]["bio"] == "fixed"


def test_429_storm_then_success_loses_nothing(make_connector, cio, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "4")
    connector = make_connector(user_id_mapping="external_id")
    cio.fail(status=429, count=3)
    messages = [hull_message(user_id=f"u{i}", segments=(SEGMENT,)) for i in range(5)]

    summary = users_sync(connector, messages)

    assert summary.outcomes == {"insert": 5} and summary.retry_reason == ""
    assert cio.stats()["by_status"] == {429: 3, 200: 1}
    assert {p["id"] for p in cio.people()} == {f"ext-u{i}" for i in range(5)}
    assert SyncLog.objects.filter(action="outgoing.user.success").count() == 5


def test_retryable_exhaustion_leaves_state_unchanged(make_connector, cio, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "2")
    connector = make_connector(user_id_mapping="external_id", synchronized_attributes=["traits_plan"])
    users_sync(connector, [hull_message(user_id="u1", segments=(SEGMENT,), traits_plan="free")])
    snapshot = SyncState.objects.filter(hull_user_id="u1").values().get()
    log_count = SyncLog.objects.count()
    cio.fail(status=500, count=2)
    messages = [hull_message(user_id="u1", segments=(SEGMENT,), indexed_minutes=5, traits_plan="pro"),
                hull_message(user_id="u2", segments=(SEGMENT,), indexed_minutes=5)]

    summary = users_sync(connector, messages)

    assert summary.retry_reason and "500" in summary.retry_reason
    assert summary.outcomes == {"retry": 2}
    assert SyncState.objects.filter(hull_user_id="u1").values().get() == snapshot
    assert not SyncState.objects.filter(hull_user_id="u2").exists()
    assert SyncLog.objects.count() == log_count
    assert cio.person(id="ext-u1")["attributes"]["plan"] == "free"

    again = users_sync(connector, messages)

    assert again.retry_reason == "" and again.outcomes == {"update": 1, "insert": 1}
    assert cio.person(id="ext-u1")["attributes"]["plan"] == "pro" and cio.person(id="ext-u2") is not None


def test_customerio_down_is_retryable(make_connector, cio, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "1")
    connector = make_connector()
    cio.set_down()
    summary = users_sync(connector, [sven()])
    assert summary.outcomes == {"retry": 1} and summary.retry_reason
    assert SyncLog.objects.count() == 0


def test_401_raises_and_records_nothing(make_connector, cio):
    connector = make_connector(api_key="wrong-key")
    with pytest.raises(CredentialsRejected):
        users_sync(connector, [sven(), hull_message(user_id="u2", segments=(SEGMENT,))])
    assert SyncLog.objects.count() == 0
    assert SyncState.objects.count() == 0
    assert cio.people() == []


def test_paused_connector_refuses_to_sync(make_connector, cio):
    from django.utils import timezone

    connector = make_connector(credentials_rejected_at=timezone.now())
    with pytest.raises(ConfigurationError):
        users_sync(connector, [sven()])
    assert cio.stats()["requests"] == 0


def test_missing_credentials_refuse_to_sync(make_connector, cio):
    connector = make_connector(api_key="")
    with pytest.raises(ConfigurationError, match="Missing Credentials"):
        users_sync(connector, [sven()])


def test_anonymous_events_for_users_without_identifier(make_connector, cio):
    connector = make_connector(user_id_mapping="external_id", anonymous_events=True)
    message = sven(events=[page_event()])
    del message["user"]["external_id"]

    summary = users_sync(connector, [message])

    assert summary.outcomes == {"anonymous_events": 1}
    [sent] = cio.anonymous_events()
    assert (sent["anonymous_id"], sent["name"], sent["type"]) == (f"anon-{SVEN_ID}", PAGE_URL, "page")
    assert cio.people() == []
    assert actions() == ["outgoing.event.success"]
    assert state(connector).last_outcome == "events"


def test_empty_notification_does_nothing(make_connector, cio):
    summary = users_sync(make_connector(), [])
    assert summary.users == 0 and cio.stats()["requests"] == 0 and SyncLog.objects.count() == 0


# --- hull_writeback --------------------------------------------------------------------------

def test_hull_writeback_sends_traits_and_clears_pending(make_connector, hull):
    connector = make_connector()
    users_sync(connector, [sven()])
    row = state(connector)

    assert hull_writeback(connector) == 1

    traits = hull.traits(SVEN_ID)
    assert traits == {"customerio/id": SVEN, "customerio/created_at": 1520954477,
                      "customerio/hash": row.payload_hash, "customerio/synced_at": traits["customerio/synced_at"]}
    assert parse_time(traits["customerio/synced_at"]) == row.synced_at
    assert hull.user(SVEN_ID)["claims"] == {"id": SVEN_ID, "email": SVEN, "external_id": "5908db9857b9265d4500059f"}
    assert not state(connector).writeback_pending
    assert hull_writeback(connector) == 0


def test_hull_writeback_follows_delete_and_reinsert(make_connector, hull):
    connector = make_connector(enable_user_deletion=True)
    users_sync(connector, [sven(minutes=1)])
    hull_writeback(connector)
    users_sync(connector, [sven(minutes=2, segments=())])
    hull_writeback(connector)
    assert set(hull.traits(SVEN_ID)) == {"customerio/deleted_at"}

    users_sync(connector, [sven(minutes=3)])
    hull_writeback(connector)

    traits = hull.traits(SVEN_ID)
    assert "customerio/deleted_at" not in traits and traits["customerio/id"] == SVEN
    assert hull.stats()["firehose_items"] == 3


def test_hull_writeback_in_batches(make_connector, hull):
    connector = make_connector(user_id_mapping="external_id")
    users_sync(connector, [hull_message(user_id=f"u{i}", segments=(SEGMENT,)) for i in range(130)])

    assert hull_writeback(connector, limit=500) == 130

    assert hull.stats()["firehose_requests"] == 2
    assert len(hull.users()) == 130
    assert not SyncState.objects.filter(writeback_pending=True).exists()


def test_hull_writeback_respects_the_limit(make_connector, hull):
    connector = make_connector(user_id_mapping="external_id")
    users_sync(connector, [hull_message(user_id=f"u{i}", segments=(SEGMENT,)) for i in range(5)])
    assert hull_writeback(connector, limit=3) == 3
    assert SyncState.objects.filter(writeback_pending=True).count() == 2


def test_hull_writeback_leaves_traits_pending_when_hull_is_down(make_connector, hull, monkeypatch):
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "1")
    connector = make_connector()
    users_sync(connector, [sven()])
    hull.set_down()

    with pytest.raises(RetryableAPIError):
        hull_writeback(connector)

    assert state(connector).writeback_pending
    hull.set_down(False)
    assert hull_writeback(connector) == 1
    assert hull.traits(SVEN_ID)["customerio/id"] == SVEN


def test_hull_writeback_keeps_rows_changed_meanwhile_pending(make_connector, hull, monkeypatch):
    connector = make_connector()
    users_sync(connector, [sven()])
    original = HullClient.firehose

    def firehose_while_row_changes(self, items):
        SyncState.objects.filter(hull_user_id=SVEN_ID).update(writeback_seq=99)
        return original(self, items)

    monkeypatch.setattr(HullClient, "firehose", firehose_while_row_changes)

    hull_writeback(connector)

    assert state(connector).writeback_pending


def test_hull_writeback_with_wrong_secret_raises(make_connector, hull):
    connector = make_connector(hull_secret="not-the-secret-hull-knows-0123456789")
    users_sync(connector, [sven()])
    with pytest.raises(CredentialsRejected):
        hull_writeback(connector)
    assert state(connector).writeback_pending


# --- known_state and states_lock -------------------------------------------------------------

def test_known_state(connector_factory):
    connector = connector_factory(user_id_mapping="email", synchronized_segments=[SEGMENT[0]])
    blank = SyncState.objects.create(connector=connector, hull_user_id="blank")
    # A row that never synced defers to the old connector's traits: the person exists → update.
    legacy = merge_messages([sven(**legacy_traits(hash_value="old"))])[0]
    assert decide(legacy, sync_config(connector), known_state(blank)).action == "update"
    assert decide(merge_messages([sven()])[0], sync_config(connector), known_state(blank)).action == "insert"
    synced = SyncState.objects.create(connector=connector, hull_user_id="synced", customerio_id="ext-1",
                                      cio_id="cio1", payload_hash="abc", last_indexed_at=BASE_TIME)
    assert known_state(synced) == KnownState(customerio_id="ext-1", cio_id="cio1", payload_hash="abc", deleted=False,
                                             last_indexed_at=BASE_TIME)
    gone = SyncState.objects.create(connector=connector, hull_user_id="gone", deleted_at=BASE_TIME)
    assert known_state(gone).deleted is True
    skipped = SyncState.objects.create(connector=connector, hull_user_id="skipped", last_indexed_at=BASE_TIME)
    assert known_state(skipped).last_indexed_at == BASE_TIME


def test_states_lock_returns_stored_rows_and_new_unsaved_ones(connector_factory):
    connector, other = connector_factory(), connector_factory()
    SyncState.objects.create(connector=connector, hull_user_id="u1", email="kept@example.com")
    SyncState.objects.create(connector=other, hull_user_id="u2", email="other@example.com")

    with transaction.atomic():
        states = states_lock(connector, ["u1", "u2"])

    assert set(states) == {"u1", "u2"}
    assert states["u1"].email == "kept@example.com" and states["u1"].pk is not None
    assert states["u2"].connector_id == connector.pk and states["u2"].email == "" and states["u2"].pk is None
    assert SyncState.objects.filter(connector=connector).count() == 1


def test_first_sync_stores_new_users_and_updates_known_ones_in_one_pass(make_connector, cio):
    connector = make_connector(synchronized_attributes=["traits_plan"])
    users_sync(connector, [sven(traits_plan="free")])
    first = state(connector)

    users_sync(connector, [sven(minutes=1, traits_plan="pro"), hull_message(user_id="u-new", segments=[SEGMENT])])

    assert SyncState.objects.filter(connector=connector).count() == 2
    again = state(connector)
    assert again.pk == first.pk and again.last_outcome == "update" and again.last_payload["plan"] == "pro"
    new = state(connector, "u-new")
    assert new.last_outcome == "insert" and new.customerio_id and new.writeback_pending
