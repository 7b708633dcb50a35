"""Tests for webhooks.inbound: one fixture per Customer.io event type, one-line checks (Zulip style)."""

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhooks.inbound import (
    CHANNEL_LABELS, EVENT_NAMES, LEGACY_EVENT_NAMES, InboundEvent, MalformedWebhook, hull_track_body,
    parse_email, parse_webhook, user_claims,
)

FIXTURES = Path(__file__).parent / "fixtures" / "customerio"
DOC = Path(__file__).resolve().parent.parent / "docs" / "incoming-events.md"

# fixture -> (Hull event name or None when ignored, email claim, Customer.io customer id)
EXPECTED = {
    "email_drafted": ("Email Drafted", "jane@example.com", "u-42"),
    "push_drafted": ("Push Drafted", "jane@example.com", "u-42"),
    "in_app_drafted": ("In-App Message Drafted", None, "u-1001"),
    "sms_drafted": ("SMS Drafted", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "slack_drafted": ("Slack Drafted", "jane@example.com", "u-42"),
    "webhook_drafted": ("Webhook Drafted", None, "u-1001"),
    "whatsapp_drafted": ("WhatsApp Drafted", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "email_attempted": ("Email Attempted", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "push_attempted": ("Push Attempted", "jane@example.com", "u-42"),
    "in_app_attempted": ("In-App Message Attempted", None, "u-1001"),
    "sms_attempted": ("SMS Attempted", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "slack_attempted": ("Slack Attempted", "jane@example.com", "u-42"),
    "webhook_attempted": ("Webhook Attempted", None, "u-1001"),
    "whatsapp_attempted": ("WhatsApp Attempted", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "email_sent": ("Email Sent", "gone@example.com", None),
    "push_sent": ("Push Sent", "jane@example.com", "u-42"),
    "in_app_sent": ("In-App Message Sent", None, "u-1001"),
    "sms_sent": ("SMS Sent", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "slack_sent": ("Slack Sent", "jane@example.com", "u-42"),
    "webhook_sent": ("Webhook Sent", None, "u-1001"),
    "whatsapp_sent": ("WhatsApp Sent", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "email_delivered": ("Email Delivered", "Marta.Lopez@Example.COM", "cust_7781"),
    "push_delivered": ("Push Delivered", "jane@example.com", "u-42"),
    "sms_delivered": ("SMS Delivered", None, "u-1001"),
    "whatsapp_delivered": ("WhatsApp Delivered", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "email_opened": ("Email Opened", "jane@example.com", "u-42"),
    "push_opened": ("Push Opened", "jane@example.com", "u-42"),
    "in_app_opened": ("In-App Message Opened", None, "u-1001"),
    "whatsapp_opened": ("WhatsApp Opened", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "email_clicked": ("Email Link Clicked", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "push_clicked": ("Push Clicked", "jane@example.com", "u-42"),
    "in_app_clicked": ("In-App Message Clicked", None, "u-1001"),
    "sms_clicked": ("SMS Clicked", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "slack_clicked": ("Slack Clicked", "jane@example.com", "u-42"),
    "webhook_clicked": ("Webhook Clicked", None, "u-1001"),
    "whatsapp_clicked": ("WhatsApp Clicked", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "email_converted": ("Email Converted", "gone@example.com", None),
    "push_converted": ("Push Converted", "jane@example.com", "u-42"),
    "in_app_converted": ("In-App Message Converted", None, "u-1001"),
    "sms_converted": ("SMS Converted", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "whatsapp_converted": ("WhatsApp Converted", "jane@example.com", "u-42"),
    "customer_unsubscribed": ("Customer Unsubscribed", "Marta.Lopez@Example.COM", "cust_7781"),
    "email_unsubscribed": ("Unsubscribed", "Marta.Lopez@Example.COM", "cust_7781"),
    "email_bounced": ("Email Bounced", "jane@example.com", "u-42"),
    "push_bounced": ("Push Bounced", None, "u-1001"),
    "sms_bounced": ("SMS Bounced", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "whatsapp_bounced": ("WhatsApp Bounced", "jane@example.com", "u-42"),
    "email_dropped": ("Email Dropped", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "push_dropped": ("Push Dropped", None, "u-1001"),
    "whatsapp_dropped": ("WhatsApp Dropped", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "email_spammed": ("Email Marked as Spam", "gone@example.com", None),
    "email_failed": ("Email Failed", "Marta.Lopez@Example.COM", "cust_7781"),
    "push_failed": ("Push Failed", "jane@example.com", "u-42"),
    "in_app_failed": ("In-App Message Failed", None, "u-1001"),
    "sms_failed": ("SMS Failed", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "slack_failed": ("Slack Failed", "jane@example.com", "u-42"),
    "webhook_failed": ("Webhook Failed", None, "u-1001"),
    "whatsapp_failed": ("WhatsApp Failed", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "email_undeliverable": ("Email Undeliverable", "jane@example.com", "u-42"),
    "push_undeliverable": ("Push Undeliverable", "jane@example.com", "u-42"),
    "in_app_undeliverable": ("In-App Message Undeliverable", None, "u-1001"),
    "sms_undeliverable": ("SMS Undeliverable", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "slack_undeliverable": ("Slack Undeliverable", "jane@example.com", "u-42"),
    "webhook_undeliverable": ("Webhook Undeliverable", None, "u-1001"),
    "whatsapp_undeliverable": ("WhatsApp Undeliverable", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "sms_replied": ("SMS Replied", "jane@example.com", "u-42"),
    "whatsapp_replied": ("WhatsApp Replied", None, "u-1001"),
    "customer_subscribed": ("Customer Subscribed", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "customer_cio_subscription_preferences_changed": (
        "Subscription Preferences Changed", "Marta.Lopez@Example.COM", "cust_7781"),
    "legacy_customer_subscribed": ("Customer Subscribed", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "legacy_customer_unsubscribed": ("Customer Unsubscribed", "jane@example.com", "u-42"),
    "legacy_email_attempted": ("Email Attempted", "Marta.Lopez@Example.COM", "cust_7781"),
    "legacy_email_bounced": ("Email Bounced", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "legacy_email_clicked": ("Email Link Clicked", "jane@example.com", "u-42"),
    "legacy_email_converted": ("Email Converted", "Marta.Lopez@Example.COM", "cust_7781"),
    "legacy_email_delivered": ("Email Delivered", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "legacy_email_drafted": ("Email Drafted", "jane@example.com", "u-42"),
    "legacy_email_dropped": ("Email Dropped", "Marta.Lopez@Example.COM", "cust_7781"),
    "legacy_email_failed": ("Email Failed", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "legacy_email_opened": ("Email Opened", "jane@example.com", "u-42"),
    "legacy_email_sent": ("Email Sent", "Marta.Lopez@Example.COM", "cust_7781"),
    "legacy_email_spammed": ("Email Marked as Spam", "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "legacy_email_unsubscribed": ("Unsubscribed", "jane@example.com", "u-42"),
    "email_unsubscribed_person_level": ("Customer Unsubscribed", "jane@example.com", "u-42"),
    "email_subscribed_person_level": ("Customer Subscribed", "Marta.Lopez@Example.COM", "cust_7781"),
    "sms_unsubscribed_message_driven": ("SMS Unsubscribed", "jane@example.com", "u-42"),
    "send_test_empty_data": (None, None, None),
    "send_test_blank_identifiers": (None, None, None),
    "unknown_event_type": (None, "sven+dt2@hull.io", "5abd08c4aede0354c3000363"),
    "unknown_object_type": (None, "jane@example.com", "u-42"),
    "unknown_legacy_event_type": (None, "jane@example.com", "u-42"),
}
FORWARDED = sorted(name for name, (event, _, _) in EXPECTED.items() if event)
LEGACY_FIXTURES = sorted(name for name in EXPECTED if name.startswith("legacy_"))

# reference/customerio-api.md §4.4: the object_type × metric pairs WebhookSpec defines.
SPEC_MATRIX = {
    "customer": ("unsubscribed", "subscribed", "cio_subscription_preferences_changed"),
    "email": ("drafted", "attempted", "sent", "delivered", "opened", "clicked", "converted", "unsubscribed",
              "bounced", "dropped", "spammed", "failed", "undeliverable"),
    "push": ("drafted", "attempted", "sent", "delivered", "opened", "clicked", "converted", "bounced", "dropped",
             "failed", "undeliverable"),
    "in_app": ("drafted", "attempted", "sent", "opened", "clicked", "converted", "failed", "undeliverable"),
    "sms": ("drafted", "attempted", "sent", "delivered", "clicked", "converted", "bounced", "failed",
            "undeliverable", "replied"),
    "slack": ("drafted", "attempted", "sent", "clicked", "failed", "undeliverable"),
    "webhook": ("drafted", "attempted", "sent", "clicked", "failed", "undeliverable"),
    "whatsapp": ("drafted", "attempted", "sent", "delivered", "opened", "clicked", "converted", "bounced",
                 "dropped", "failed", "undeliverable", "replied"),
}
SPEC_PAIRS = sorted((object_type, metric) for object_type, metrics in SPEC_MATRIX.items() for metric in metrics)

# reference/hull-protocol.md §5.5: the original connector's names, which Hull segments depend on.
OLD_CONNECTOR_NAMES = {
    "customer_subscribed": "Customer Subscribed", "customer_unsubscribed": "Customer Unsubscribed",
    "email_attempted": "Email Attempted", "email_bounced": "Email Bounced", "email_clicked": "Email Link Clicked",
    "email_converted": "Email Converted", "email_delivered": "Email Delivered", "email_drafted": "Email Drafted",
    "email_dropped": "Email Dropped", "email_failed": "Email Failed", "email_opened": "Email Opened",
    "email_sent": "Email Sent", "email_spammed": "Email Marked as Spam", "email_unsubscribed": "Unsubscribed",
}
MESSAGE_KEYS = ("campaign_id", "broadcast_id", "newsletter_id", "transactional_message_id", "action_id",
                "parent_action_id", "journey_id", "trigger_id", "content_id", "delivery_id", "subject", "href",
                "link_id", "failure_message")
OLD_CONNECTOR_KEYS = ("email_address", "email_id", "customer_id", "campaign_id", "campaign_name", "template_id")
ULID = "01HXA1B2C3D4E5F6G7H8J9K0MN"


def load(name: str) -> dict:
    """The payload of tests/fixtures/customerio/<name>.json."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def event_of(name: str, **kwargs) -> InboundEvent:
    """The parsed fixture."""
    return parse_webhook(load(name), **kwargs)


def without_none(claims: dict) -> dict:
    """Claims with the absent ones dropped."""
    return {key: value for key, value in claims.items() if value is not None}


def unix_seconds(iso: str) -> int:
    """Unix seconds from an ISO-8601 "…Z" string."""
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


# --- every fixture ------------------------------------------------------------------------------

def test_every_fixture_has_an_expectation():
    assert sorted(path.stem for path in FIXTURES.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("pair", SPEC_PAIRS, ids="/".join)
def test_every_spec_pair_has_a_name_and_a_fixture(pair):
    assert pair in EVENT_NAMES and f"{pair[0]}_{pair[1]}" in EXPECTED


@pytest.mark.parametrize("event_type", sorted(OLD_CONNECTOR_NAMES))
def test_every_legacy_event_type_has_a_fixture(event_type):
    assert f"legacy_{event_type}" in EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_event_name(name):
    assert event_of(name).name == EXPECTED[name][0]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_timestamp_and_event_id(name):
    payload, body = load(name), hull_track_body(event_of(name))
    assert (body["event_id"], unix_seconds(body["created_at"])) == (payload["event_id"], payload["timestamp"])


@pytest.mark.parametrize("name", FORWARDED)
def test_fixture_claims_external_id_mapping(name):
    _, email, customer_id = EXPECTED[name]
    assert user_claims(event_of(name), "external_id") == without_none({"email": email, "external_id": customer_id})


@pytest.mark.parametrize("name", FORWARDED)
def test_fixture_claims_id_mapping(name):
    _, email, customer_id = EXPECTED[name]
    assert user_claims(event_of(name), "id") == without_none({"email": email, "id": customer_id})


@pytest.mark.parametrize("name", FORWARDED)
def test_fixture_claims_email_mapping(name):
    assert user_claims(event_of(name), "email") == without_none({"email": EXPECTED[name][1]})


@pytest.mark.parametrize("name", FORWARDED)
def test_fixture_message_properties(name):
    data, properties = load(name)["data"], event_of(name).properties
    assert {key: data[key] for key in MESSAGE_KEYS if data.get(key) is not None}.items() <= properties.items()


@pytest.mark.parametrize("name", FORWARDED)
def test_fixture_channel_and_metric_properties(name):
    event = event_of(name)
    assert (event.properties["channel"], event.properties["metric"]) == (event.object_type, event.metric)


@pytest.mark.parametrize("name", FORWARDED)
def test_fixture_never_forwards_variables_or_content(name):
    assert not {"variables", "content", "headers"} & event_of(name).properties.keys()


@pytest.mark.parametrize("name", LEGACY_FIXTURES)
def test_legacy_fixture_keeps_old_connector_properties(name):
    data, properties = load(name)["data"], event_of(name).properties
    assert {key: data[key] for key in OLD_CONNECTOR_KEYS if key in data}.items() <= properties.items()


@pytest.mark.parametrize("name", [name for name in LEGACY_FIXTURES if "subject" in load(name)["data"]])
def test_legacy_fixture_subject_as_email_subject(name):
    assert event_of(name).properties["email_subject"] == load(name)["data"]["subject"]


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - set(FORWARDED)))
def test_ignored_fixture_has_reason_and_no_traits(name):
    event = event_of(name)
    assert event.ignore_reason and event.trait_updates == {}


@pytest.mark.parametrize("name", FORWARDED)
def test_forwarded_fixture_has_no_ignore_reason(name):
    assert event_of(name).ignore_reason == ""


# --- names -------------------------------------------------------------------------------------

def test_legacy_names_are_the_old_connectors():
    assert LEGACY_EVENT_NAMES == OLD_CONNECTOR_NAMES


def test_current_names_start_with_the_channel_label():
    unprefixed = {"Unsubscribed", "Subscription Preferences Changed"}
    assert all(name in unprefixed or name.startswith(f"{CHANNEL_LABELS[object_type]} ")
               for (object_type, _), name in EVENT_NAMES.items())


def test_message_driven_email_unsubscribe_keeps_legacy_name():
    assert event_of("email_unsubscribed").name == "Unsubscribed"


def test_person_level_email_unsubscribe_is_customer_unsubscribed():
    assert event_of("email_unsubscribed_person_level").name == "Customer Unsubscribed"


def test_person_level_email_subscribe_is_customer_subscribed():
    assert event_of("email_subscribed_person_level").name == "Customer Subscribed"


def test_message_driven_sms_unsubscribe_names_the_channel():
    assert event_of("sms_unsubscribed_message_driven").name == "SMS Unsubscribed"


def test_push_drafted_sent_with_the_specs_attempted_typo_maps_what_comes():
    assert parse_webhook({**load("push_drafted"), "metric": "attempted"}).name == "Push Attempted"


@pytest.mark.parametrize("name, object_type", [
    ("legacy_email_opened", "email"), ("legacy_customer_subscribed", "customer")])
def test_legacy_object_type(name, object_type):
    assert (event_of(name).object_type, event_of(name).metric) == (object_type, name.removeprefix("legacy_"))


def test_current_format_wins_when_both_formats_are_present():
    assert parse_webhook({**load("email_opened"), "event_type": "email_clicked"}).name == "Email Opened"


# --- ignored events ----------------------------------------------------------------------------

def test_unknown_current_type_is_ignored():
    assert event_of("unknown_event_type").ignore_reason == "Unknown event type 'email/deferred'"


def test_unknown_object_type_is_ignored():
    assert event_of("unknown_object_type").ignore_reason == "Unknown event type 'linkedin/sent'"


def test_unknown_legacy_type_is_ignored():
    assert event_of("unknown_legacy_event_type").ignore_reason == "Unknown event type 'email/email_deferred'"


@pytest.mark.parametrize("payload", [
    load("send_test_empty_data"),
    load("send_test_blank_identifiers"),
    {"event_id": ULID, "object_type": "email", "metric": "sent", "timestamp": 1717004000},
    {"event_id": ULID, "object_type": "email", "metric": "sent", "data": None},
    {**load("email_opened"), "event_id": "test-event"},
    {**load("email_opened"), "data": {**load("email_opened")["data"], "test": True}},
    {"event_id": ULID, "event_type": "email_sent", "data": {"customer_id": "", "email_address": ""}},
], ids=["empty-data", "blank-identifiers", "no-data", "null-data", "test-event-id", "test-flag", "legacy-blank"])
def test_send_test_delivery_is_ignored(payload):
    event = parse_webhook(payload)
    assert (event.name, event.ignore_reason) == (None, "Customer.io test delivery")


def test_event_with_delivery_but_no_person_is_not_a_test():
    data = {"delivery_id": "RPIL1", "identifiers": {}}
    assert parse_webhook({"event_id": ULID, "object_type": "sms", "metric": "sent", "data": data}).name == "SMS Sent"


def test_event_with_delivery_but_no_person_has_no_claims():
    payload = {"event_id": ULID, "object_type": "sms", "metric": "sent", "data": {"delivery_id": "RPIL1"}}
    assert user_claims(parse_webhook(payload), "external_id") == {}


# --- malformed payloads ------------------------------------------------------------------------

def legacy(**fields) -> dict:
    """A legacy email_sent payload with some fields replaced."""
    return {"event_id": ULID, "event_type": "email_sent", **fields}


@pytest.mark.parametrize("payload, message", [
    ([], "Payload must be a JSON object, got array"),
    ("event", "Payload must be a JSON object, got string"),
    (None, "Payload must be a JSON object, got null"),
    ({}, "event_id is missing or not a non-empty string"),
    (legacy(event_id=""), "event_id is missing or not a non-empty string"),
    (legacy(event_id=42), "event_id is missing or not a non-empty string"),
    (legacy(event_id="x" * 101), "event_id is longer than 100 characters"),
    ({"event_id": ULID}, "Payload has neither event_type nor object_type and metric"),
    ({"event_id": ULID, "object_type": "email"}, "Payload has neither event_type nor object_type and metric"),
    (legacy(event_type=7), "event_type must be a non-empty string, got number"),
    ({"event_id": ULID, "object_type": "email", "metric": ""}, "metric must be a non-empty string, got string"),
    ({"event_id": ULID, "object_type": ["email"], "metric": "sent"}, "object_type must be a non-empty string"),
    (legacy(timestamp="yesterday"), "timestamp must be Unix seconds, got string"),
    (legacy(timestamp=True), "timestamp must be Unix seconds, got boolean"),
    (legacy(timestamp=-1), "timestamp must be Unix seconds, got number"),
    (legacy(timestamp=1e20), "timestamp must be Unix seconds, got number"),
    (legacy(timestamp={"s": 1}), "timestamp must be Unix seconds, got object"),
    (legacy(data=[]), "data must be a JSON object, got array"),
    (legacy(data="x"), "data must be a JSON object, got string"),
])
def test_malformed_payload_raises_with_a_clear_message(payload, message):
    with pytest.raises(MalformedWebhook, match=f"^{re.escape(message)}"):
        parse_webhook(payload)


def test_malformed_webhook_is_a_value_error():
    assert issubclass(MalformedWebhook, ValueError)


def test_numeric_string_timestamp_is_accepted():
    assert parse_webhook({**load("email_opened"), "timestamp": "1717004000"}).timestamp == 1717004000


def test_float_timestamp_is_truncated_to_seconds():
    assert parse_webhook({**load("email_opened"), "timestamp": 1717004000.7}).timestamp == 1717004000


def test_missing_timestamp_leaves_created_at_to_hull():
    payload = {key: value for key, value in load("email_opened").items() if key != "timestamp"}
    assert hull_track_body(parse_webhook(payload))["created_at"] is None


# --- properties --------------------------------------------------------------------------------

def test_display_name_recipient_is_parsed():
    assert event_of("email_delivered").properties["recipient"] == "Marta.Lopez@Example.COM"


def test_phone_recipient_is_kept_raw():
    assert event_of("sms_delivered").properties["recipient"] == "+34600111222"


def test_click_carries_href_and_link_id():
    assert {"href", "link_id"} <= event_of("email_clicked").properties.keys()


def test_bounce_carries_failure_message():
    assert event_of("email_bounced").properties["failure_message"].startswith("550 5.1.1")


def test_push_recipients_are_forwarded():
    assert event_of("push_clicked").properties["recipients"] == load("push_clicked")["data"]["recipients"]


def test_push_recipients_keep_only_device_fields():
    device = {"device_id": "d1", "device_platform": "ios"}
    data = {**load("push_opened")["data"], "recipients": [{**device, "token": "secret"}, "x", {}]}
    assert parse_webhook({**load("push_opened"), "data": data}).properties["recipients"] == [device]


def test_content_excluded_by_default():
    assert not {"content", "headers"} & event_of("email_sent").properties.keys()


def test_content_included_with_include_content():
    data, properties = load("email_sent")["data"], event_of("email_sent", include_content=True).properties
    assert (properties["content"], properties["headers"]) == (data["content"], data["headers"])


@pytest.mark.parametrize("name", [name for name in LEGACY_FIXTURES if "variables" in load(name)["data"]])
def test_variables_never_forwarded_even_with_content(name):
    assert "first_name" not in json.dumps(event_of(name, include_content=True).properties)


def test_null_ids_are_left_out():
    assert "trigger_event_id" not in event_of("push_clicked").properties


def test_cio_id_is_kept():
    assert event_of("email_opened").cio_id == "d9c106000001"


# --- track body --------------------------------------------------------------------------------

def test_track_body_for_the_reference_example():
    payload = {"event_id": "01C9S7MCY0E0R5YGZ18ZGKE10G", "event_type": "email_opened", "timestamp": 1522339032,
               "data": {"customer_id": "5abd08c4", "email_address": "Sven <sven@example.com>", "email_id": "ZI6a",
                        "campaign_id": "12", "subject": "How trials work"}}
    assert hull_track_body(parse_webhook(payload)) == {
        "event": "Email Opened", "event_id": "01C9S7MCY0E0R5YGZ18ZGKE10G", "created_at": "2018-03-29T15:57:12Z",
        "properties": {"campaign_id": "12", "subject": "How trials work", "email_address": "Sven <sven@example.com>",
                       "channel": "email", "metric": "email_opened", "delivery_id": "ZI6a", "customer_id": "5abd08c4",
                       "email_id": "ZI6a", "email_subject": "How trials work"},
        "source": "customerio", "type": "email", "ip": "0", "url": None, "referer": None}


def test_track_body_type_is_the_channel():
    assert hull_track_body(event_of("sms_delivered"))["type"] == "sms"


# --- traits ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, traits", [
    ("email_opened", {"last_email_opened_at": "ISO"}),
    ("email_clicked", {"last_email_clicked_at": "ISO"}),
    ("sms_clicked", {"last_sms_clicked_at": "ISO"}),
    ("whatsapp_delivered", {"last_whatsapp_delivered_at": "ISO"}),
    ("in_app_converted", {"last_in_app_converted_at": "ISO"}),
    ("push_bounced", {"last_push_bounced_at": "ISO"}),
    ("email_spammed", {"last_email_spammed_at": "ISO"}),
    ("email_unsubscribed", {"unsubscribed": True, "unsubscribed_at": "ISO"}),
    ("email_unsubscribed_person_level", {"unsubscribed": True, "unsubscribed_at": "ISO"}),
    ("sms_unsubscribed_message_driven", {"unsubscribed": True, "unsubscribed_at": "ISO"}),
    ("customer_unsubscribed", {"unsubscribed": True, "unsubscribed_at": "ISO"}),
    ("customer_subscribed", {"unsubscribed": False}),
    ("legacy_email_opened", {"last_email_opened_at": "ISO"}),
    ("legacy_email_unsubscribed", {"unsubscribed": True, "unsubscribed_at": "ISO"}),
    ("legacy_customer_unsubscribed", {"unsubscribed": True, "unsubscribed_at": "ISO"}),
    ("legacy_customer_subscribed", {"unsubscribed": False}),
    ("email_sent", {}),
    ("sms_failed", {}),
    ("customer_cio_subscription_preferences_changed", {}),
])
def test_trait_updates(name, traits):
    event = event_of(name)
    iso = hull_track_body(event)["created_at"]
    assert event.trait_updates == {key: iso if value == "ISO" else value for key, value in traits.items()}


def test_no_timestamp_means_no_dated_traits():
    payload = {key: value for key, value in load("email_unsubscribed").items() if key != "timestamp"}
    assert parse_webhook(payload).trait_updates == {"unsubscribed": True}


# --- email parsing and claims ------------------------------------------------------------------

@pytest.mark.parametrize("value, email", [
    ("Sven <sven+dt2@hull.io>", "sven+dt2@hull.io"),
    ("sven@example.com", "sven@example.com"),
    ('"Lopez, Marta" <Marta.Lopez@Example.COM>', "Marta.Lopez@Example.COM"),
    ('"sven@old.example" <sven@new.example>', "sven@new.example"),
    ("  jane@example.co.uk ", "jane@example.co.uk"),
    ("+15551234567", None),
    ("Jane Doe", None),
    ("jane@localhost", None),
    ("", None),
    (None, None),
    (42, None),
    (["jane@example.com"], None),
])
def test_parse_email(value, email):
    assert parse_email(value) == email


def test_claims_use_recipient_when_identifiers_have_no_email():
    data = {"delivery_id": "RPIL1", "identifiers": {"id": "u-1"}, "recipient": "Jane <jane@example.com>"}
    event = parse_webhook({"event_id": ULID, "object_type": "email", "metric": "opened", "data": data})
    assert user_claims(event, "external_id") == {"email": "jane@example.com", "external_id": "u-1"}


def test_claims_fall_back_to_customer_id_when_identifiers_are_missing():
    assert user_claims(event_of("legacy_email_opened"), "id") == {"email": "jane@example.com", "id": "u-42"}


def test_email_mapping_uses_an_email_shaped_customer_id():
    payload = {"event_id": ULID, "object_type": "push", "metric": "opened",
               "data": {"delivery_id": "RPIL1", "identifiers": {"id": "jane@example.com"}}}
    assert user_claims(parse_webhook(payload), "email") == {"email": "jane@example.com"}


def test_other_mappings_claim_the_email_only():
    assert user_claims(event_of("email_opened"), "traits_crm_id") == {"email": "jane@example.com"}


def test_numeric_customer_id_becomes_a_string():
    data = {"delivery_id": "RPIL1", "customer_id": 42}
    payload = {"event_id": ULID, "object_type": "sms", "metric": "sent", "data": data}
    assert user_claims(parse_webhook(payload), "external_id") == {"external_id": "42"}


# --- docs --------------------------------------------------------------------------------------

def _doc_rows(pattern: str) -> set:
    """Table rows of docs/incoming-events.md matching a pattern."""
    return {match.groups() for match in re.finditer(pattern, DOC.read_text(), re.MULTILINE)}


def test_doc_lists_every_current_name():
    rows = _doc_rows(r"^\| `(\w+)` \| `(\w+)` \| ([^|`]+?) \|$")
    assert rows == {(object_type, metric, name) for (object_type, metric), name in EVENT_NAMES.items()}


def test_doc_lists_every_legacy_name():
    assert _doc_rows(r"^\| `(\w+)` \| ([^|`]+?) \|$") == set(LEGACY_EVENT_NAMES.items())


# --- robustness --------------------------------------------------------------------------------

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
SMALL_JSON = st.recursive(SCALARS, lambda children: st.lists(children, max_size=2), max_leaves=3)
ADDRESSES = st.sampled_from(["jane@example.com", "Jane <jane@example.com>", "+15551234567", ""]) | st.text()
IDENTIFIERS = st.fixed_dictionaries({}, optional={
    "id": st.none() | st.text(max_size=30) | st.integers(),
    "email": st.none() | ADDRESSES,
    "cio_id": st.none() | st.text(max_size=30),
})
DEVICE_FIELDS = ["device_id", "device_platform", "token"]
DATA_KEYS = MESSAGE_KEYS + OLD_CONNECTOR_KEYS + ("content", "headers", "variables", "test")
DATA = st.fixed_dictionaries({"identifiers": IDENTIFIERS | SMALL_JSON}, optional={
    **{key: SMALL_JSON for key in DATA_KEYS},
    "recipient": ADDRESSES | SMALL_JSON,
    "recipients": st.lists(st.dictionaries(st.sampled_from(DEVICE_FIELDS), SMALL_JSON) | SMALL_JSON),
})
METRICS = sorted({metric for _, metric in EVENT_NAMES})
EVENT_KIND = (
    st.fixed_dictionaries({"object_type": st.sampled_from(sorted(CHANNEL_LABELS)) | st.text(max_size=10),
                           "metric": st.sampled_from(METRICS) | st.text(max_size=10)})
    | st.fixed_dictionaries({"event_type": st.sampled_from(sorted(LEGACY_EVENT_NAMES)) | st.text(max_size=20)})
    | st.dictionaries(st.sampled_from(["event_type", "object_type", "metric"]), SMALL_JSON)
)
WEBHOOK_LIKE = st.builds(
    lambda kind, rest: {**rest, **kind},
    EVENT_KIND,
    st.fixed_dictionaries(
        {"event_id": st.text(alphabet="0123456789ABCDEFGHJKMNPQRSTVWXYZ", min_size=26, max_size=26), "data": DATA},
        optional={"timestamp": st.integers(0, 2**34) | st.text(max_size=15) | SMALL_JSON},
    ),
)
MAPPINGS = ("external_id", "id", "email")


def assert_parsed_or_rejected(payload):
    """parse_webhook returns an event (usable by the other functions) or raises MalformedWebhook."""
    try:
        event = parse_webhook(payload, include_content=True)
    except MalformedWebhook:
        return
    assert isinstance(event, InboundEvent) and (event.name is None) == bool(event.ignore_reason)
    json.dumps([hull_track_body(event), event.trait_updates, [user_claims(event, m) for m in MAPPINGS]])


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON_VALUES)
def test_any_json_value_is_parsed_or_rejected(payload):
    assert_parsed_or_rejected(payload)


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(WEBHOOK_LIKE)
def test_any_webhook_shaped_object_is_parsed_or_rejected(payload):
    assert_parsed_or_rejected(payload)
