"""Map Customer.io reporting webhooks to Hull events: pure functions, stdlib only.

Two payload formats arrive on the same endpoint (reference/customerio-api.md §4):

* legacy ``{"event_id", "event_type", "timestamp", "data"}`` — named exactly as the
  original Hull connector named them (``LEGACY_EVENT_NAMES``);
* current ``{"event_id", "object_type", "metric", "timestamp", "data"}`` — every pair
  Customer.io defines, named "<Channel> <Metric>" (``EVENT_NAMES``).

``parse_webhook`` turns one payload into an ``InboundEvent``. Unknown event types and
Customer.io "Send Test" deliveries come back with ``name=None`` and an
``ignore_reason``; only a payload that is not a webhook at all raises
``MalformedWebhook``. ``docs/incoming-events.md`` lists both name tables.
"""

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

CUSTOMER = "customer"
EMAIL = "email"
SOURCE = "customerio"
HULL_SERVER_IP = "0"
MAX_EVENT_ID_LENGTH = 100
MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z, the last second datetime can show
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
NUMERIC_RE = re.compile(r"\d+(?:\.\d+)?")

CHANNEL_LABELS = {
    "email": "Email",
    "sms": "SMS",
    "push": "Push",
    "in_app": "In-App Message",
    "slack": "Slack",
    "webhook": "Webhook",
    "whatsapp": "WhatsApp",
    "customer": "Customer",
}

LEGACY_EVENT_NAMES = {
    "customer_subscribed": "Customer Subscribed",
    "customer_unsubscribed": "Customer Unsubscribed",
    "email_attempted": "Email Attempted",
    "email_bounced": "Email Bounced",
    "email_clicked": "Email Link Clicked",
    "email_converted": "Email Converted",
    "email_delivered": "Email Delivered",
    "email_drafted": "Email Drafted",
    "email_dropped": "Email Dropped",
    "email_failed": "Email Failed",
    "email_opened": "Email Opened",
    "email_sent": "Email Sent",
    "email_spammed": "Email Marked as Spam",
    "email_unsubscribed": "Unsubscribed",
}

# Every ✓ of the WebhookSpec matrix, plus the channel-tagged subscription changes of its
# note 2 (`<channel>/subscribed|unsubscribed`), which carry a channel when a message
# triggered them. A channel-tagged change without a delivery_id is person-level and
# takes the `customer/<metric>` name instead (see `_current_name`).
EVENT_NAMES = {
    ("customer", "subscribed"): "Customer Subscribed",
    ("customer", "unsubscribed"): "Customer Unsubscribed",
    ("customer", "cio_subscription_preferences_changed"): "Subscription Preferences Changed",
    ("email", "drafted"): "Email Drafted",
    ("email", "attempted"): "Email Attempted",
    ("email", "sent"): "Email Sent",
    ("email", "delivered"): "Email Delivered",
    ("email", "opened"): "Email Opened",
    ("email", "clicked"): "Email Link Clicked",
    ("email", "converted"): "Email Converted",
    ("email", "unsubscribed"): "Unsubscribed",
    ("email", "subscribed"): "Email Subscribed",
    ("email", "bounced"): "Email Bounced",
    ("email", "dropped"): "Email Dropped",
    ("email", "spammed"): "Email Marked as Spam",
    ("email", "failed"): "Email Failed",
    ("email", "undeliverable"): "Email Undeliverable",
    ("push", "drafted"): "Push Drafted",
    ("push", "attempted"): "Push Attempted",
    ("push", "sent"): "Push Sent",
    ("push", "delivered"): "Push Delivered",
    ("push", "opened"): "Push Opened",
    ("push", "clicked"): "Push Clicked",
    ("push", "converted"): "Push Converted",
    ("push", "unsubscribed"): "Push Unsubscribed",
    ("push", "subscribed"): "Push Subscribed",
    ("push", "bounced"): "Push Bounced",
    ("push", "dropped"): "Push Dropped",
    ("push", "failed"): "Push Failed",
    ("push", "undeliverable"): "Push Undeliverable",
    ("in_app", "drafted"): "In-App Message Drafted",
    ("in_app", "attempted"): "In-App Message Attempted",
    ("in_app", "sent"): "In-App Message Sent",
    ("in_app", "opened"): "In-App Message Opened",
    ("in_app", "clicked"): "In-App Message Clicked",
    ("in_app", "converted"): "In-App Message Converted",
    ("in_app", "unsubscribed"): "In-App Message Unsubscribed",
    ("in_app", "subscribed"): "In-App Message Subscribed",
    ("in_app", "failed"): "In-App Message Failed",
    ("in_app", "undeliverable"): "In-App Message Undeliverable",
    ("sms", "drafted"): "SMS Drafted",
    ("sms", "attempted"): "SMS Attempted",
    ("sms", "sent"): "SMS Sent",
    ("sms", "delivered"): "SMS Delivered",
    ("sms", "clicked"): "SMS Clicked",
    ("sms", "converted"): "SMS Converted",
    ("sms", "unsubscribed"): "SMS Unsubscribed",
    ("sms", "subscribed"): "SMS Subscribed",
    ("sms", "bounced"): "SMS Bounced",
    ("sms", "failed"): "SMS Failed",
    ("sms", "undeliverable"): "SMS Undeliverable",
    ("sms", "replied"): "SMS Replied",
    ("slack", "drafted"): "Slack Drafted",
    ("slack", "attempted"): "Slack Attempted",
    ("slack", "sent"): "Slack Sent",
    ("slack", "clicked"): "Slack Clicked",
    ("slack", "unsubscribed"): "Slack Unsubscribed",
    ("slack", "subscribed"): "Slack Subscribed",
    ("slack", "failed"): "Slack Failed",
    ("slack", "undeliverable"): "Slack Undeliverable",
    ("webhook", "drafted"): "Webhook Drafted",
    ("webhook", "attempted"): "Webhook Attempted",
    ("webhook", "sent"): "Webhook Sent",
    ("webhook", "clicked"): "Webhook Clicked",
    ("webhook", "unsubscribed"): "Webhook Unsubscribed",
    ("webhook", "subscribed"): "Webhook Subscribed",
    ("webhook", "failed"): "Webhook Failed",
    ("webhook", "undeliverable"): "Webhook Undeliverable",
    ("whatsapp", "drafted"): "WhatsApp Drafted",
    ("whatsapp", "attempted"): "WhatsApp Attempted",
    ("whatsapp", "sent"): "WhatsApp Sent",
    ("whatsapp", "delivered"): "WhatsApp Delivered",
    ("whatsapp", "opened"): "WhatsApp Opened",
    ("whatsapp", "clicked"): "WhatsApp Clicked",
    ("whatsapp", "converted"): "WhatsApp Converted",
    ("whatsapp", "unsubscribed"): "WhatsApp Unsubscribed",
    ("whatsapp", "subscribed"): "WhatsApp Subscribed",
    ("whatsapp", "bounced"): "WhatsApp Bounced",
    ("whatsapp", "dropped"): "WhatsApp Dropped",
    ("whatsapp", "failed"): "WhatsApp Failed",
    ("whatsapp", "undeliverable"): "WhatsApp Undeliverable",
    ("whatsapp", "replied"): "WhatsApp Replied",
}

SUBSCRIBED = "subscribed"
UNSUBSCRIBED = "unsubscribed"
SUBSCRIPTION_METRICS = (SUBSCRIBED, UNSUBSCRIBED)
LAST_ACTIVITY_METRICS = ("opened", "clicked", "delivered", "converted", "bounced", "spammed")

UNKNOWN_TYPE_REASON = "Unknown event type '{object_type}/{metric}'"
TEST_DELIVERY_REASON = "Customer.io test delivery"
TEST_EVENT_ID_PREFIX = "test"
TEST_DATA_FLAGS = ("test", "is_test")

# Copied as they are from `data` when present and not null. `variables` (every attribute
# of the person) and the message body are deliberately not in these lists.
MESSAGE_PROPERTY_KEYS = (
    "campaign_id", "broadcast_id", "newsletter_id", "transactional_message_id",
    "action_id", "parent_action_id", "journey_id", "trigger_id", "trigger_event_id",
    "content_id", "subject", "href", "link_id", "machine", "failure_message",
    "proxied", "prefetched", "synthetic", "tracked_response", "inbound_event_id", "to",
    "email_address",
)
LEGACY_PROPERTY_KEYS = ("email_id", "campaign_name", "template_id", "message_id")
LEGACY_RENAMED_KEYS = {"subject": "email_subject"}
CONTENT_KEYS = ("content", "headers")
DEVICE_KEYS = ("device_id", "device_platform")
ID_CLAIM_MAPPINGS = ("external_id", "id")
EMAIL_MAPPING = "email"

JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean",
                   int: "number", float: "number", type(None): "null"}

_EMAIL_CHARS = r"[^\s<>()\[\],;:\"'@]"
_DOMAIN_LABEL = r"[^\s<>()\[\],;:\"'@.]+"
EMAIL_RE = re.compile(rf"{_EMAIL_CHARS}+@{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})+")
ANGLE_ADDRESS_RE = re.compile(r"<([^<>]*)>")


class MalformedWebhook(ValueError):
    """The payload is not a Customer.io reporting webhook; the view answers 400 with str(err)."""


@dataclass
class InboundEvent:
    """One reporting webhook, normalized; ``name`` is None when the event is ignored."""

    event_id: str
    timestamp: int | None
    object_type: str
    metric: str
    legacy: bool
    name: str | None
    ignore_reason: str = ""
    properties: dict = field(default_factory=dict)
    email: str | None = None
    customer_id: str | None = None
    cio_id: str | None = None
    delivery_id: str | None = None
    trait_updates: dict = field(default_factory=dict)


def parse_webhook(payload: dict, include_content: bool = False) -> InboundEvent:
    """Normalize one reporting webhook (legacy or current format) into an InboundEvent.

    Raises MalformedWebhook only for payloads that are not webhooks at all (see
    ``_validate``); unknown event types and test deliveries are returned with
    ``name=None`` and an ``ignore_reason``. The message body (``content``,
    ``headers``) is kept only with ``include_content``.
    """
    event_id, object_type, metric, legacy, timestamp, data = _validate(payload)
    identifiers = _as_dict(data.get("identifiers"))
    event = InboundEvent(
        event_id=event_id, timestamp=timestamp, object_type=object_type, metric=metric,
        legacy=legacy, name=None,
        email=_first_email(identifiers.get("email"), data.get("recipient"), data.get("email_address")),
        customer_id=_text(identifiers.get("id")) or _text(data.get("customer_id")),
        cio_id=_text(identifiers.get("cio_id")),
        delivery_id=_text(data.get("delivery_id")) or (_text(data.get("email_id")) if legacy else None),
    )
    event.properties = _properties(event, data, include_content)
    name = _event_name(event)
    event.ignore_reason = _ignore_reason(event, data, name)
    if not event.ignore_reason:
        event.name = name
        event.trait_updates = _trait_updates(event)
    return event


def _validate(payload) -> tuple:
    """Return (event_id, object_type, metric, legacy, timestamp, data) or raise MalformedWebhook.

    Malformed: not an object; event_id missing, not a string, empty or longer than
    MAX_EVENT_ID_LENGTH; neither ``event_type`` nor ``object_type`` + ``metric`` (as
    non-empty strings); ``timestamp`` present but not Unix seconds; ``data`` present
    but not an object.
    """
    if not isinstance(payload, dict):
        raise MalformedWebhook(f"Payload must be a JSON object, got {_json_type(payload)}")
    event_id = payload.get("event_id")
    if not isinstance(event_id, str) or not event_id.strip():
        raise MalformedWebhook("event_id is missing or not a non-empty string")
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        raise MalformedWebhook(f"event_id is longer than {MAX_EVENT_ID_LENGTH} characters")
    object_type, metric, legacy = _event_kind(payload)
    data = payload.get("data")
    if data is not None and not isinstance(data, dict):
        raise MalformedWebhook(f"data must be a JSON object, got {_json_type(data)}")
    return event_id, object_type, metric, legacy, _timestamp(payload.get("timestamp")), data or {}


def _event_kind(payload: dict) -> tuple[str, str, bool]:
    """Return (object_type, metric, legacy); the current format wins if both are present."""
    object_type, metric = payload.get("object_type"), payload.get("metric")
    if object_type is not None and metric is not None:
        return _type_name(object_type, "object_type"), _type_name(metric, "metric"), False
    event_type = payload.get("event_type")
    if event_type is None:
        raise MalformedWebhook("Payload has neither event_type nor object_type and metric")
    event_type = _type_name(event_type, "event_type")
    legacy_object_type = CUSTOMER if event_type.startswith(f"{CUSTOMER}_") else EMAIL
    return legacy_object_type, event_type, True


def _type_name(value, key: str) -> str:
    """Check that an event type field is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise MalformedWebhook(f"{key} must be a non-empty string, got {_json_type(value)}")
    return value


def _timestamp(value) -> int | None:
    """Unix seconds from a number or a numeric string; None when absent."""
    if value is None:
        return None
    if isinstance(value, str) and NUMERIC_RE.fullmatch(value.strip()):
        value = float(value)
    valid = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not valid or not math.isfinite(value) or not 0 <= value <= MAX_TIMESTAMP:
        raise MalformedWebhook(f"timestamp must be Unix seconds, got {_json_type(value)} {str(value)[:40]!r}")
    return int(value)


def _ignore_reason(event: InboundEvent, data: dict, name: str | None) -> str:
    """Why the event is not forwarded to Hull, or "" when it is."""
    if _is_test_delivery(event, data):
        return TEST_DELIVERY_REASON
    if name is None:
        return UNKNOWN_TYPE_REASON.format(object_type=event.object_type, metric=event.metric)
    return ""


def _is_test_delivery(event: InboundEvent, data: dict) -> bool:
    """Guess whether this is the payload of Customer.io's "Send Test" button.

    Customer.io does not document that payload, so any of these counts as a test:
    ``data`` is missing or empty; ``event_id`` starts with "test" (real ids are ULIDs,
    whose first character is a digit); ``data.test`` or ``data.is_test`` is true; or
    the event names nobody (no email, customer id, cio_id or recipient) and no
    delivery (no ``delivery_id``, legacy ``email_id``). A real event always carries
    one of them, so it cannot be attributed anyway.
    """
    if not data or event.event_id.lower().startswith(TEST_EVENT_ID_PREFIX):
        return True
    if any(data.get(flag) is True for flag in TEST_DATA_FLAGS):
        return True
    someone = event.email or event.customer_id or event.cio_id or _text(data.get("recipient"))
    return not (someone or event.delivery_id)


def _event_name(event: InboundEvent) -> str | None:
    """Hull event name from the name tables, None when the type is unknown."""
    if event.legacy:
        return LEGACY_EVENT_NAMES.get(event.metric)
    person_level = (event.metric in SUBSCRIPTION_METRICS and event.object_type in CHANNEL_LABELS
                    and not event.delivery_id)
    object_type = CUSTOMER if person_level else event.object_type
    return EVENT_NAMES.get((object_type, event.metric))


def _properties(event: InboundEvent, data: dict, include_content: bool) -> dict:
    """Hull event properties: message ids, subject, recipient, link, failure, person ids."""
    properties = {key: data[key] for key in MESSAGE_PROPERTY_KEYS if data.get(key) is not None}
    properties["channel"] = event.object_type
    properties["metric"] = event.metric
    optional = {"delivery_id": event.delivery_id, "customer_id": event.customer_id, "cio_id": event.cio_id,
                "recipient": _recipient(data.get("recipient")), "recipients": _devices(data.get("recipients"))}
    properties.update({key: value for key, value in optional.items() if value})
    if event.legacy:
        properties.update({key: data[key] for key in LEGACY_PROPERTY_KEYS if data.get(key) is not None})
        properties.update({new: data[key] for key, new in LEGACY_RENAMED_KEYS.items() if data.get(key) is not None})
    if include_content:
        properties.update({key: data[key] for key in CONTENT_KEYS if data.get(key) is not None})
    return properties


def _recipient(value):
    """The recipient's address when it is an email ("Name <addr>" included), else the raw value."""
    return parse_email(value) or (value if isinstance(value, (str, int)) and not isinstance(value, bool) else None)


def _devices(value) -> list:
    """Push recipients reduced to device ids and platforms."""
    if not isinstance(value, list):
        return []
    devices = [{key: item[key] for key in DEVICE_KEYS if key in item} for item in value if isinstance(item, dict)]
    return [device for device in devices if device]


def _trait_updates(event: InboundEvent) -> dict:
    """Hull traits (without the "customerio/" prefix) that this event changes."""
    object_type, metric = event.object_type, event.metric
    if event.legacy:
        metric = metric.partition("_")[2]
    at = _iso(event.timestamp)
    if metric == UNSUBSCRIBED:
        return {"unsubscribed": True, **({"unsubscribed_at": at} if at else {})}
    if metric == SUBSCRIBED:
        return {"unsubscribed": False}
    if metric in LAST_ACTIVITY_METRICS and at:
        return {f"last_{object_type}_{metric}_at": at}
    return {}


def parse_email(value) -> str | None:
    """The email address in a value: "Sven <sven@example.com>" and plain addresses; case kept.

    Prefers the address in angle brackets, then the first email-looking substring;
    None for non-strings and values without an address (phone numbers, ids).
    """
    if not isinstance(value, str):
        return None
    for candidate in ANGLE_ADDRESS_RE.findall(value) + [value]:
        match = EMAIL_RE.search(candidate)
        if match:
            return match.group(0)
    return None


def user_claims(event: InboundEvent, user_id_mapping: str) -> dict:
    """Hull ``asUser`` claims: the email, plus the customer id as ``external_id`` or ``id``.

    The customer id is a claim only when ``user_id_mapping`` is "external_id" or "id".
    With the "email" mapping the Customer.io id is the email itself, so it stands in
    when the payload has no other email. Returns {} when nothing identifies the user.
    """
    claims = {}
    email = event.email
    if not email and user_id_mapping == EMAIL_MAPPING:
        email = parse_email(event.customer_id)
    if email:
        claims["email"] = email
    if event.customer_id and user_id_mapping in ID_CLAIM_MAPPINGS:
        claims[user_id_mapping] = event.customer_id
    return claims


def hull_track_body(event: InboundEvent) -> dict:
    """Body of the firehose ``track`` item; Hull de-duplicates on event_id."""
    return {
        "event": event.name,
        "event_id": event.event_id,
        "created_at": _iso(event.timestamp),
        "properties": dict(event.properties),
        "source": SOURCE,
        "type": event.object_type,
        "ip": HULL_SERVER_IP,
        "url": None,
        "referer": None,
    }


def _first_email(*values) -> str | None:
    """The first value that contains an email address."""
    for value in values:
        email = parse_email(value)
        if email:
            return email
    return None


def _text(value) -> str | None:
    """A non-empty identifier as a string (numbers converted), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _as_dict(value) -> dict:
    """The value when it is a dict, else an empty dict."""
    return value if isinstance(value, dict) else {}


def _iso(timestamp: int | None) -> str | None:
    """ISO-8601 UTC with a Z suffix, e.g. "2018-03-29T15:57:12Z"; None without a timestamp."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime(ISO_FORMAT)


def _json_type(value) -> str:
    """The JSON name of a value's type, for error messages."""
    return JSON_TYPE_NAMES.get(type(value), type(value).__name__)
