"""Outgoing mapping rules (DESIGN §5.1) from literal Hull payloads; no database needed."""
import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sync import mapping
from sync.mapping import (
    REASON_ALREADY_DELETED, REASON_NO_CHANGES, REASON_NO_EMAIL, REASON_NO_ID_VALUE, REASON_NOT_IN_SEGMENTS,
    REASON_STALE, KnownState, attribute_name, attributes_hash, config_from_settings, decide, deletion_traits,
    event_operation, identify_operation, is_writeback_attribute, merge_messages, operations_for, parse_time,
    person_attributes, segment_ids, to_unix, validate_event, validate_person, writeback_traits,
)
from sync.ulid import CROCKFORD_ALPHABET, ulid_from_event_id, ulid_timestamp_ms

FIXTURES = Path(__file__).parent / "fixtures" / "hull"
HULL_USERS = "596796d24eaa537e6900e1ee"
SVEN_CREATED_AT = 1520954477  # 2018-03-13T15:21:17Z
SVEN_INDEXED_AT = datetime(2018, 3, 30, 14, 41, 48, tzinfo=timezone.utc)
PAGE_EVENT_AT = 1522420682  # 2018-03-30 14:38:02 UTC


def load(name):
    """A fixture notification, fresh for every call."""
    return json.loads((FIXTURES / name).read_text())


def sven(**user_changes):
    """The first message of the main fixture (sven@hull.io, one page event) with user fields changed."""
    message = copy.deepcopy(load("user-update-with-event.json")["messages"][0])
    message["user"].update(user_changes)
    return message


def without_events(message):
    message["events"] = []
    return message


def config(**overrides):
    """The old connector's scenario settings: whitelist "Hull Users", events ["page"], keyed by email."""
    settings = {"synchronized_segments": [HULL_USERS], "events_filter": ["page"], "user_id_mapping": "email"}
    settings.update(overrides)
    return config_from_settings(settings)


def state(**overrides):
    """A SyncState for sven, synced by us, with overrides."""
    fields = {"customerio_id": "sven@hull.io", "cio_id": "", "payload_hash": "", "deleted": False,
              "last_indexed_at": datetime(2018, 3, 29, tzinfo=timezone.utc)}
    fields.update(overrides)
    return KnownState(**fields)


def synced_traits(message, cfg, **extra):
    """Add the customerio/* traits the old connector wrote after syncing this message."""
    message["user"].update({"traits_customerio/created_at": SVEN_CREATED_AT,
                            "traits_customerio/email": message["user"]["email"],
                            "traits_customerio/id": message["user"]["email"], **extra})
    return message


def outside_segments(message):
    message["segments"] = []
    message["user"]["segment_ids"] = []
    return message


# --- old connector scenarios (hull-protocol.md §5.7) ------------------------------------------

def test_customer_insert_sends_one_identify_with_the_base_attributes():
    decision = decide(without_events(sven()), config(), None)

    assert decision.action == "insert"
    assert decision.attributes == {"email": "sven@hull.io", "created_at": SVEN_CREATED_AT,
                                   "hull_segments": ["Hull Users", "Trial Accounts"]}
    assert operations_for(decision) == [{
        "type": "person", "action": "identify", "identifiers": {"email": "sven@hull.io"},
        "attributes": decision.attributes, "timestamp": int(SVEN_INDEXED_AT.timestamp()),
    }]
    synced_at = datetime(2018, 3, 30, 14, 41, 50, 123000, tzinfo=timezone.utc)
    assert writeback_traits(decision, synced_at) == {
        "id": "sven@hull.io", "created_at": SVEN_CREATED_AT, "hash": decision.payload_hash,
        "synced_at": "2018-03-30T14:41:50.123Z", "deleted_at": None,
    }


def test_customer_insert_with_more_than_30_attributes_sends_them_all_in_one_identify():
    message = without_events(sven(**{f"traits_foo_{n}": f"value {n}" for n in range(45)}))
    cfg = config(synchronized_attributes=[f"traits_foo_{n}" for n in range(45)])

    decision = decide(message, cfg, None)

    operations = operations_for(decision)
    assert decision.action == "insert"
    assert len(operations) == 1
    assert len(operations[0]["attributes"]) == 48
    assert operations[0]["attributes"]["foo_44"] == "value 44"


def test_customer_insert_skips_a_user_without_a_value_for_the_identifier():
    message = without_events(sven())
    del message["user"]["external_id"]

    decision = decide(message, config(user_id_mapping="external_id"), None)

    assert (decision.action, decision.reason) == ("skip", REASON_NO_ID_VALUE)
    assert operations_for(decision) == []


def test_customer_update_when_the_old_connector_synced_the_user_without_a_hash():
    cfg = config()
    decision = decide(synced_traits(without_events(sven()), cfg), cfg, None)

    assert decision.action == "update"
    assert [op["action"] for op in operations_for(decision)] == ["identify"]
    assert decision.address == {"email": "sven@hull.io"}


def test_customer_update_with_a_changed_payload_sends_identify_then_the_event():
    cfg = config()
    decision = decide(synced_traits(sven(), cfg, **{"traits_customerio/hash": "stale-hash"}), cfg, None)

    assert decision.action == "update"
    assert [op["action"] for op in operations_for(decision)] == ["identify", "page"]
    assert decision.event_ids == ["4cf3e7be-2d7c-4fb7-b032-bc33aa49e246"]


def test_customer_update_event_insert_of_an_unchanged_user_sends_only_the_event():
    cfg = config()
    current_hash = attributes_hash(person_attributes(sven(), cfg))
    message = synced_traits(sven(), cfg, **{"traits_customerio/hash": current_hash})

    decision = decide(message, cfg, None)

    assert decision.action == "events"
    assert operations_for(decision) == decision.event_ops
    assert [op["action"] for op in decision.event_ops] == ["page"]


def test_customer_update_skip_no_changes():
    cfg = config()
    message = without_events(sven())
    synced_traits(message, cfg, **{"traits_customerio/hash": attributes_hash(person_attributes(message, cfg))})

    decision = decide(message, cfg, None)

    assert (decision.action, decision.reason) == ("skip", REASON_NO_CHANGES)
    assert operations_for(decision) == []


def test_customer_update_skip_not_in_segments():
    cfg = config()
    decision = decide(outside_segments(synced_traits(without_events(sven()), cfg)), cfg, None)

    assert (decision.action, decision.reason) == ("skip", REASON_NOT_IN_SEGMENTS)


def test_customer_delete_when_deletion_is_enabled():
    cfg = config(enable_user_deletion=True)
    decision = decide(outside_segments(synced_traits(without_events(sven()), cfg)), cfg, None)

    assert decision.action == "delete"
    assert operations_for(decision) == [
        {"type": "person", "action": "delete", "identifiers": {"email": "sven@hull.io"}}]
    deleted_at = datetime(2018, 3, 31, 8, 0, tzinfo=timezone.utc)
    assert deletion_traits(deleted_at) == {"deleted_at": "2018-03-31T08:00:00.000Z", "id": None, "hash": None,
                                           "synced_at": None, "created_at": None}


# --- decision rules ---------------------------------------------------------------------------

def test_a_message_older_than_the_last_processed_one_is_stale():
    later = datetime(2018, 3, 31, tzinfo=timezone.utc)

    decision = decide(without_events(sven()), config(), state(last_indexed_at=later))

    assert (decision.action, decision.reason) == ("skip", REASON_STALE)
    assert decision.hull_user_id == "5aa7ec6db5856ffa1b0a8fa0"


def test_a_stale_message_still_sends_its_events_to_the_known_person_without_attributes():
    later = datetime(2018, 3, 31, tzinfo=timezone.utc)

    decision = decide(sven(), config(), state(last_indexed_at=later))

    assert decision.action == "events"
    assert [op["action"] for op in operations_for(decision)] == ["page"]
    assert decision.event_ops[0]["identifiers"] == {"email": "sven@hull.io"}


def test_a_stale_message_of_a_person_never_synced_is_skipped_with_its_events():
    later = datetime(2018, 3, 31, tzinfo=timezone.utc)

    decision = decide(sven(), config(), state(customerio_id="", last_indexed_at=later))

    assert (decision.action, decision.reason) == ("skip", REASON_STALE)


def test_the_same_indexed_at_again_is_not_stale():
    decision = decide(sven(), config(), state(last_indexed_at=SVEN_INDEXED_AT))

    assert decision.action == "update"


@pytest.mark.parametrize("email", [None, "", "   "])
def test_a_user_without_email_is_skipped(email):
    decision = decide(sven(email=email), config(), None)

    assert (decision.action, decision.reason) == ("skip", REASON_NO_EMAIL)


def test_a_user_without_an_email_key_is_skipped():
    message = sven()
    del message["user"]["email"]

    assert decide(message, config(), None).reason == REASON_NO_EMAIL


def test_an_empty_segment_whitelist_synchronizes_nobody():
    decision = decide(sven(), config(synchronized_segments=[]), None)

    assert (decision.action, decision.reason) == ("skip", REASON_NOT_IN_SEGMENTS)


def test_deletion_on_but_never_synced_is_skipped_as_not_in_segments():
    decision = decide(outside_segments(sven()), config(enable_user_deletion=True), None)

    assert (decision.action, decision.reason) == ("skip", REASON_NOT_IN_SEGMENTS)


def test_deletion_of_a_user_we_already_deleted_is_skipped():
    cfg = config(enable_user_deletion=True)

    decision = decide(outside_segments(sven()), cfg, state(customerio_id="", deleted=True))

    assert (decision.action, decision.reason) == ("skip", REASON_ALREADY_DELETED)


def test_delete_addresses_the_person_by_cio_id_when_known():
    cfg = config(enable_user_deletion=True)

    decision = decide(outside_segments(sven()), cfg, state(cio_id="a1b2c3"))

    assert decision.action == "delete"
    assert decision.address == {"cio_id": "a1b2c3"}
    assert decision.identifier == "sven@hull.io"


def test_delete_addresses_the_person_by_the_stored_identifier():
    cfg = config(enable_user_deletion=True, user_id_mapping="external_id")

    decision = decide(outside_segments(sven()), cfg, state(customerio_id="old-external-id"))

    assert decision.address == {"id": "old-external-id"}


def test_an_unchanged_payload_with_our_state_and_no_events_is_skipped():
    cfg = config()
    message = without_events(sven())
    known = state(payload_hash=attributes_hash(person_attributes(message, cfg)))

    decision = decide(message, cfg, known)

    assert (decision.action, decision.reason) == ("skip", REASON_NO_CHANGES)


def test_a_changed_payload_with_our_state_is_an_update():
    decision = decide(without_events(sven()), config(), state(payload_hash="old"))

    assert decision.action == "update"
    assert decision.address == {"email": "sven@hull.io"}


def test_a_user_we_deleted_who_comes_back_is_inserted_again():
    decision = decide(sven(), config(), state(customerio_id="", deleted=True))

    assert decision.action == "insert"


def test_decision_always_carries_the_user_ids():
    decision = decide(sven(email=None), config(), None)

    assert (decision.hull_user_id, decision.external_id) == ("5aa7ec6db5856ffa1b0a8fa0", "5908db9857b9265d4500059f")
    assert decision.identifier is None
    assert decision.indexed_at == SVEN_INDEXED_AT


# --- identifier change ------------------------------------------------------------------------

def test_identifier_change_addresses_the_person_by_cio_id():
    cfg = config(user_id_mapping="external_id")

    decision = decide(without_events(sven()), cfg, state(customerio_id="old-id", cio_id="a1b2c3", payload_hash="x"))

    assert (decision.action, decision.previous_identifier) == ("update", "old-id")
    operation = identify_operation(decision)
    assert operation["identifiers"] == {"cio_id": "a1b2c3"}
    assert operation["attributes"]["id"] == "5908db9857b9265d4500059f"


def test_identifier_change_sends_events_to_the_new_identifier_after_the_identify():
    cfg = config(user_id_mapping="external_id")

    decision = decide(sven(), cfg, state(customerio_id="old-id", cio_id="a1b2c3"))

    operations = operations_for(decision)
    assert [op["action"] for op in operations] == ["identify", "page"]
    assert operations[1]["identifiers"] == {"id": "5908db9857b9265d4500059f"}


def test_identifier_change_without_cio_id_addresses_the_person_by_the_previous_identifier():
    cfg = config(user_id_mapping="external_id")

    decision = decide(without_events(sven()), cfg, state(customerio_id="old-id"))

    assert identify_operation(decision)["identifiers"] == {"id": "old-id"}
    assert decision.previous_identifier == "old-id"


def test_email_identifier_change_sets_the_new_email_on_the_person_known_by_the_old_one():
    decision = decide(without_events(sven()), config(), state(customerio_id="sven.old@hull.io"))

    operation = identify_operation(decision)
    assert operation["identifiers"] == {"email": "sven.old@hull.io"}
    assert operation["attributes"]["email"] == "sven@hull.io"
    assert "id" not in operation["attributes"]


def test_identifier_change_from_legacy_traits():
    cfg = config(user_id_mapping="external_id")
    message = synced_traits(without_events(sven()), cfg)

    decision = decide(message, cfg, None)

    assert decision.previous_identifier == "sven@hull.io"
    assert decision.address == {"id": "sven@hull.io"}


# --- legacy traits fallback -------------------------------------------------------------------

def test_legacy_fixture_with_an_unknown_hash_is_updated():
    message = load("user-update-synced-legacy.json")["messages"][0]

    decision = decide(message, config(), None)

    assert decision.action == "update"
    assert decision.attributes == {"email": "sven@hull.io", "created_at": SVEN_CREATED_AT,
                                   "hull_segments": ["Hull Users"]}


def test_legacy_deleted_at_means_already_deleted():
    message = outside_segments(load("user-update-synced-legacy.json")["messages"][0])
    message["user"]["traits_customerio/deleted_at"] = "2018-03-31T08:00:00.000Z"
    message["user"]["traits_customerio/created_at"] = None

    decision = decide(message, config(enable_user_deletion=True), None)

    assert (decision.action, decision.reason) == ("skip", REASON_ALREADY_DELETED)


def test_a_state_row_that_never_synced_falls_back_to_the_legacy_traits():
    message = outside_segments(load("user-update-synced-legacy.json")["messages"][0])

    decision = decide(message, config(enable_user_deletion=True), state(customerio_id="", last_indexed_at=None))

    assert decision.action == "delete"
    assert decision.address == {"email": "sven@hull.io"}


def test_our_state_wins_over_legacy_traits():
    message = load("user-update-synced-legacy.json")["messages"][0]
    cfg = config()
    known = state(payload_hash=attributes_hash(person_attributes(message, cfg)))

    assert decide(message, cfg, known).reason == REASON_NO_CHANGES


# --- merging ----------------------------------------------------------------------------------

def test_merge_keeps_the_latest_message_per_user_and_unions_events():
    merged = merge_messages(load("user-update-duplicates.json")["messages"])

    assert [m["user"]["id"] for m in merged] == ["5aa7ec6db5856ffa1b0a8fa0", "59c21698cc6aeecf9b00291e"]
    assert merged[0]["user"]["traits_plan"] == "pro"
    assert [e["event_id"] for e in merged[0]["events"]] == ["ev-0", "ev-1", "ev-2", "ev-3"]
    assert merged[1]["events"] == []


def test_merge_sorts_a_missing_indexed_at_first():
    first = {"user": {"id": "u1", "traits_plan": "with-date", "indexed_at": "2018-03-30T14:41:48Z"}}
    second = {"user": {"id": "u1", "traits_plan": "no-date"}}

    assert merge_messages([first, second])[0]["user"]["traits_plan"] == "with-date"


# --- attributes -------------------------------------------------------------------------------

@pytest.mark.parametrize("flat_name, expected", [
    ("id", "hull_id"),
    ("first_name", "first_name"),
    ("traits_plan", "plan"),
    ("traits_salesforce_lead/title", "salesforce_lead-title"),
    ("traits_intercom/name", "intercom-name"),
    ("account.clearbit/name", "account_clearbit-name"),
    ("account.domain", "account_domain"),
])
def test_attribute_renaming_rules(flat_name, expected):
    assert attribute_name(flat_name) == expected


def test_synchronized_attributes_are_read_from_user_and_account():
    cfg = config(synchronized_attributes=["first_name", "id", "traits_plan", "traits_salesforce_lead/title",
                                          "account.clearbit/name", "traits_missing"])

    attributes = person_attributes(sven(), cfg)

    assert attributes["first_name"] == "Sven"
    assert attributes["hull_id"] == "5aa7ec6db5856ffa1b0a8fa0"
    assert attributes["plan"] == "pro"
    assert attributes["salesforce_lead-title"] == "CTO"
    assert attributes["account_clearbit-name"] == "Hull Inc"
    assert "missing" not in attributes


def test_id_attribute_comes_from_the_mapping_unless_keyed_by_email():
    message = sven()

    assert person_attributes(message, config(user_id_mapping="external_id"))["id"] == "5908db9857b9265d4500059f"
    assert "id" not in person_attributes(message, config())


def test_numeric_identifiers_are_sent_as_strings():
    decision = decide(sven(traits_customer_number=4711), config(user_id_mapping="traits_customer_number"), None)

    assert decision.identifier == "4711"
    assert decision.attributes["id"] == "4711"


@pytest.mark.parametrize("flat_name", ["traits_customerio/synced_at", "traits_customerio/hash", "customerio/id"])
def test_writeback_attributes_are_never_mapped(flat_name):
    assert is_writeback_attribute(flat_name)
    message = sven(**{"traits_customerio/synced_at": "2018-03-30T14:41:50.123Z", "traits_customerio/hash": "h"})
    plain = person_attributes(message, config())

    mapped = person_attributes(message, config(synchronized_attributes=[flat_name]))

    assert mapped == plain
    assert attributes_hash(mapped) == attributes_hash(plain)


def test_connector_attributes_cannot_be_overridden_by_whitelisted_ones():
    message = sven(traits_email="other@example.com", traits_hull_segments="x")
    cfg = config(synchronized_attributes=["created_at", "email", "traits_email", "traits_hull_segments"])

    attributes = person_attributes(message, cfg)

    assert attributes["created_at"] == SVEN_CREATED_AT
    assert attributes["email"] == "sven@hull.io"
    assert attributes["hull_segments"] == ["Hull Users", "Trial Accounts"]


def test_dates_under_at_and_date_keys_become_integer_unix_seconds():
    message = sven(traits_status_at="soon", traits_paid_at=1520954477, traits_renewal_date="2018-04-13")
    cfg = config(synchronized_attributes=["last_seen_at", "traits_intercom/last_request_at", "traits_status_at",
                                          "traits_paid_at", "traits_renewal_date", "traits_plan"])

    attributes = person_attributes(message, cfg)

    assert attributes["last_seen_at"] == 1522420682
    assert attributes["intercom-last_request_at"] == 1522420675
    assert attributes["renewal_date"] == 1523577600
    assert attributes["paid_at"] == 1520954477
    assert attributes["status_at"] == "soon"
    assert attributes["plan"] == "pro"


def test_missing_created_at_is_omitted_not_now():
    message = sven()
    del message["user"]["created_at"]

    assert "created_at" not in person_attributes(message, config())


def test_segment_ids_union_message_segments_and_user_segment_ids():
    message = {"segments": [{"id": "a"}, {"name": "no id"}], "user": {"segment_ids": ["b", None]}}

    assert segment_ids(message) == {"a", "b"}


def test_membership_through_user_segment_ids_alone_is_enough():
    message = sven()
    message["segments"] = []

    assert decide(message, config(), None).action == "insert"


# --- validation -------------------------------------------------------------------------------

def test_validation_message_names_the_attribute_and_sizes():
    assert validate_person("id-1", {"bio": "x" * 1204}, config()) == [
        "attribute 'bio' value is 1204 bytes (max 1000)"]


def test_validation_lists_every_violation_and_the_user_is_an_error():
    long_name = "n" * 151
    message = sven(external_id="é" * 80, **{f"traits_{long_name}": "v", "traits_bio": "x" * 1001,
                                             "traits_tags": ["ü" * 600]})
    cfg = config(user_id_mapping="external_id",
                 synchronized_attributes=[f"traits_{long_name}", "traits_bio", "traits_tags"])

    decision = decide(message, cfg, None)

    assert decision.action == "error"
    assert decision.violations == [
        f"identifier '{'é' * 40}…' is 160 bytes (max 150)",
        f"attribute name '{'n' * 40}…' is 151 bytes (max 150)",
        "attribute 'bio' value is 1001 bytes (max 1000)",
        "attribute 'tags' value is 1204 bytes (max 1000)",
    ]
    assert decision.reason == "Invalid user: " + "; ".join(decision.violations)
    assert operations_for(decision) == []


def test_more_than_300_attributes_is_a_violation():
    attributes = {f"a{n}": n for n in range(301)}

    assert validate_person("id-1", attributes, config()) == ["301 attributes (max 300)"]


def test_configured_limits_are_applied():
    cfg = config(max_attribute_value_length=5, max_identifier_value_length=3)

    assert validate_person("abcd", {"k": "123456"}, cfg) == [
        "identifier 'abcd' is 4 bytes (max 3)", "attribute 'k' value is 6 bytes (max 5)"]


def test_an_identify_over_32_kb_is_a_violation():
    attributes = {f"traits_a{n}": "x" * 900 for n in range(40)}
    cfg = config(synchronized_attributes=list(attributes))

    decision = decide(sven(**attributes), cfg, None)

    assert decision.action == "error"
    assert decision.violations[-1].startswith("identify operation is ")


def test_an_invalid_event_is_dropped_and_reported_while_the_user_is_sent():
    message = sven()
    message["events"].append({"event_id": "long", "event": "L" * 101, "created_at": "2018-03-30T14:39:00Z"})
    cfg = config(events_filter=["page", "L" * 101])

    decision = decide(message, cfg, None)

    assert decision.action == "insert"
    assert decision.reason == ""
    assert [op["action"] for op in decision.event_ops] == ["page"]
    assert decision.event_ids == ["4cf3e7be-2d7c-4fb7-b032-bc33aa49e246"]
    assert decision.violations == [f"event '{'L' * 40}…' name is 101 bytes (max 100)"]


def test_event_data_over_100000_bytes_is_a_violation():
    operation = {"name": "Big", "anonymous_id": "a", "data": {"blob": "x" * 100_000}}

    assert validate_event(operation) == ["event 'Big' data is 100011 bytes (max 100000)"]


# --- events -----------------------------------------------------------------------------------

def test_event_operation_carries_a_deterministic_id_and_the_hull_time():
    event = {"event_id": "e-1", "event": "Signed Up", "created_at": "2018-03-30T14:38:02Z",
             "properties": {"plan": "pro"}}

    operation = event_operation(event, {"id": "u-1"})

    assert operation == {"type": "person", "action": "event", "identifiers": {"id": "u-1"}, "name": "Signed Up",
                         "id": ulid_from_event_id("e-1", PAGE_EVENT_AT * 1000), "timestamp": PAGE_EVENT_AT,
                         "attributes": {"plan": "pro"}}


def test_page_event_becomes_a_page_view_named_by_its_url():
    operation = event_operation(sven()["events"][0], {"email": "sven@hull.io"})

    assert (operation["action"], operation["name"]) == ("page", "https://www.hull.io/pricing/")
    assert operation["timestamp"] == PAGE_EVENT_AT


@pytest.mark.parametrize("event, name", [
    ({"event": "page", "properties": {}, "context": {"page": {"url": "https://a.example/x"}}}, "https://a.example/x"),
    ({"event": "page", "properties": {}}, "page"),
])
def test_page_event_name_falls_back_to_context_then_page(event, name):
    assert event_operation(event, {"id": "u"})["name"] == name


def test_non_whitelisted_events_are_listed_as_skipped():
    message = sven()
    message["events"].append({"event_id": "x", "event": "Logged Out", "created_at": "2018-03-30T14:39:00Z"})

    decision = decide(message, config(), None)

    assert decision.skipped_events == ["Logged Out"]
    assert len(decision.event_ops) == 1


def test_anonymous_events_go_out_keyed_by_the_anonymous_id():
    message = load("user-update-anonymous.json")["messages"][0]
    cfg = config(user_id_mapping="external_id", anonymous_events=True, events_filter=["Viewed Product", "page"])

    decision = decide(message, cfg, None)

    assert decision.action == "anonymous_events"
    assert decision.skipped_events == ["Logged Out"]
    assert decision.event_ids == ["b5d3f1e2-7c1a-4a3e-9d2b-0e8f6a4c2d11", "0e2c9a7d-3b41-4f6e-8a15-9d7c3b2e1f00"]
    anonymous_id = "1522339032-8d1b0c44-0e6f-4e2a-9f53-5d3f1c2b7a90"
    assert decision.anonymous_events[0] == {
        "name": "Viewed Product", "anonymous_id": anonymous_id, "data": {"sku": "SOCK-42", "price": 12.5,
                                                                        "currency": "EUR"},
        "id": ulid_from_event_id("b5d3f1e2-7c1a-4a3e-9d2b-0e8f6a4c2d11", 1522339120000), "timestamp": 1522339120}
    assert decision.anonymous_events[1]["type"] == "page"
    assert decision.anonymous_events[1]["name"] == "https://shop.example.com/products/sock-42"
    assert operations_for(decision) == []


def test_anonymous_events_off_skips_the_user_without_identifier():
    message = load("user-update-anonymous.json")["messages"][0]

    decision = decide(message, config(user_id_mapping="external_id", events_filter=["page"]), None)

    assert (decision.action, decision.reason) == ("skip", REASON_NO_ID_VALUE)


def test_anonymous_events_fall_back_to_the_events_anonymous_id():
    message = load("user-update-anonymous.json")["messages"][0]
    del message["user"]["anonymous_ids"]
    cfg = config(user_id_mapping="external_id", anonymous_events=True, events_filter=["page"])

    decision = decide(message, cfg, None)

    assert decision.anonymous_events[0]["anonymous_id"] == "1522339032-8d1b0c44-0e6f-4e2a-9f53-5d3f1c2b7a90"


def test_anonymous_events_without_any_anonymous_id_are_skipped():
    message = load("user-update-anonymous.json")["messages"][0]
    message["user"]["anonymous_ids"] = []
    for event in message["events"]:
        event["anonymous_id"] = None
    cfg = config(user_id_mapping="external_id", anonymous_events=True, events_filter=["page"])

    assert decide(message, cfg, None).reason == REASON_NO_ID_VALUE


# --- ULID -------------------------------------------------------------------------------------

def test_ulid_is_deterministic_per_event_id():
    assert ulid_from_event_id("e-1", 1522420682000) == ulid_from_event_id("e-1", 1522420682000)
    assert ulid_from_event_id("e-1", 1522420682000) != ulid_from_event_id("e-2", 1522420682000)


def test_ulid_is_26_crockford_characters_and_decodes_to_its_timestamp():
    ulid = ulid_from_event_id("4cf3e7be-2d7c-4fb7-b032-bc33aa49e246", 1522420682000)

    assert len(ulid) == 26
    assert set(ulid) <= set(CROCKFORD_ALPHABET)
    assert ulid_timestamp_ms(ulid) == 1522420682000


def test_ulids_sort_by_time_and_unknown_time_is_zero():
    earlier, later = ulid_from_event_id("z", 1000), ulid_from_event_id("a", 2000)

    assert earlier < later
    assert ulid_timestamp_ms(mapping.event_ulid("a", None)) == 0
    assert mapping.event_ulid("a", "2018-03-30 14:38:02 UTC") == ulid_from_event_id("a", PAGE_EVENT_AT * 1000)


# --- time, config, hashing --------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("2018-03-30T14:41:48+00:00", 1522420908),
    ("2018-03-13T15:21:17Z", SVEN_CREATED_AT),
    ("2018-03-30 14:38:02 UTC", PAGE_EVENT_AT),
    ("2018-03-30", 1522368000),
    ("2018-03-29T10:00:00.000Z", 1522317600),
    ("2018-03-30T16:41:48+02:00", 1522420908),
    ("Fri, 30 Mar 2018 14:38:02 GMT", PAGE_EVENT_AT),
    (1520954477, SVEN_CREATED_AT),
    (1520954477.9, SVEN_CREATED_AT),
    (1520954477000, SVEN_CREATED_AT),
    (datetime(2018, 3, 13, 15, 21, 17), SVEN_CREATED_AT),
])
def test_to_unix_accepts_hull_time_formats(value, expected):
    assert to_unix(value) == expected


@pytest.mark.parametrize("value", [None, "", "soon", "2018", True, {}, [], float("nan"), 1e300])
def test_parse_time_returns_none_for_non_times(value):
    assert parse_time(value) is None


def test_parse_time_is_aware_utc():
    assert parse_time("2018-03-30T16:41:48+02:00") == SVEN_INDEXED_AT
    assert parse_time("2018-03-30T14:41:48").tzinfo == timezone.utc


def test_config_from_settings_applies_the_manifest_defaults():
    cfg = config_from_settings({})

    assert cfg == mapping.SyncConfig(synchronized_segments=frozenset(), enable_user_deletion=False,
                                     events_filter=frozenset(), anonymous_events=False,
                                     user_id_mapping="external_id", synchronized_attributes=())
    assert (cfg.max_attribute_name_length, cfg.max_attribute_value_length, cfg.max_identifier_value_length) == (
        150, 1000, 150)


def test_config_from_settings_reads_the_connector_private_settings():
    settings = load("user-update-with-event.json")["connector"]["private_settings"]

    cfg = config_from_settings({**settings, "synchronized_attributes": ["traits_plan", "", "traits_plan"],
                                "max_attribute_value_length": "500"})

    assert cfg.synchronized_segments == frozenset({HULL_USERS})
    assert cfg.events_filter == frozenset({"page"})
    assert cfg.synchronized_attributes == ("traits_plan",)
    assert (cfg.user_id_mapping, cfg.identifier_type) == ("email", "email")
    assert cfg.max_attribute_value_length == 500


def test_hash_ignores_key_order():
    assert attributes_hash({"a": 1, "b": [1, 2]}) == attributes_hash({"b": [1, 2], "a": 1})
    assert attributes_hash({"a": 1}) != attributes_hash({"a": "1"})


def test_operations_for_actions_without_operations_are_empty():
    decision = decide(sven(email=None), config(), None)

    assert operations_for(decision) == []
