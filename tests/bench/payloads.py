"""Deterministic, realistic benchmark payloads: Hull notifications, extracts, Customer.io webhooks.

Everything is a pure function of the user number (and a seed), so the "unchanged" pass rebuilds
exactly the attributes the "new" pass sent, and runs are comparable.
"""
import hashlib
import hmac
import json
import random
from datetime import timedelta
from types import SimpleNamespace

from tests.builders import BASE_TIME, hull_event, hull_message, iso, notification

MESSAGES_PER_NOTIFICATION = 100
SEGMENTS = (("5bbe0c5e0000000000000001", "Customers"),      # whitelisted; every user is in it
            ("5bbe0c5e0000000000000002", "Active users"),
            ("5bbe0c5e0000000000000003", "Newsletter"))
WHITELISTED_SEGMENT = SEGMENTS[0][0]
EVENT_NAMES = ("Signed Up", "Order Completed", "page")
MAX_EVENTS = 3

# (flat Hull attribute, kind): 10 strings, 4 numbers, 3 booleans, 3 dates ending `_at`.
ATTRIBUTES = (
    ("first_name", "first"), ("last_name", "last"), ("phone", "phone"), ("traits_plan", "plan"),
    ("traits_company/name", "company"), ("traits_country", "country"), ("traits_city", "city"),
    ("traits_job_title", "job"), ("traits_language", "language"), ("traits_utm_source", "utm"),
    ("traits_mrr", "float"), ("traits_seats", "int"), ("traits_orders_count", "int"), ("traits_score", "float"),
    ("traits_is_trial", "bool"), ("traits_newsletter", "bool"), ("traits_verified", "bool"),
    ("traits_last_login_at", "date"), ("traits_signed_up_at", "date"), ("traits_last_order_at", "date"),
)
SYNCHRONIZED_ATTRIBUTES = tuple(name for name, _ in ATTRIBUTES)
_WORDS = {
    "first": ("Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Frances"),
    "last": ("Lovelace", "Hopper", "Torvalds", "Hamilton", "Turing", "Liskov", "Thompson", "Allen"),
    "plan": ("free", "starter", "growth", "enterprise"),
    "company": ("Acme Inc.", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries"),
    "country": ("France", "Germany", "United States", "Japan", "Brazil", "India"),
    "city": ("Paris", "Berlin", "New York", "Tokyo", "São Paulo", "Bangalore"),
    "job": ("Engineer", "Product Manager", "Designer", "Founder", "Marketing Lead"),
    "language": ("en", "fr", "de", "ja", "pt"),
    "utm": ("google", "newsletter", "twitter", "partner", "direct"),
}


def user_id(number):
    """A Hull-looking 24-hex user id."""
    return f"5b{number:022x}"


def _value(kind, rng):
    if kind in _WORDS:
        return rng.choice(_WORDS[kind])
    if kind == "phone":
        return f"+33 6 {rng.randrange(10**7, 10**8)}"
    if kind == "float":
        return round(rng.uniform(0, 5000), 2)
    if kind == "int":
        return rng.randrange(0, 500)
    if kind == "bool":
        return rng.random() < 0.5
    return iso(BASE_TIME - timedelta(minutes=rng.randrange(0, 500_000)))


def user_traits(number, seed=0):
    """The ~20 synchronized attributes of user ``number`` (same every call)."""
    rng = random.Random(f"traits-{seed}-{number}")
    return {name: _value(kind, rng) for name, kind in ATTRIBUTES}


def user_segments(number):
    """The whitelisted segment plus zero to two others, by user number."""
    return SEGMENTS[:1 + number % 3]


def user_events(number, seed=0):
    """0-3 whitelisted Hull events with deterministic event ids."""
    rng = random.Random(f"events-{seed}-{number}")
    uid = user_id(number)
    events = []
    for index in range(rng.randrange(0, MAX_EVENTS + 1)):
        name = rng.choice(EVENT_NAMES)
        properties = {"url": f"https://example.com/pricing?u={number}"} if name == "page" else (
            {"order_id": f"o-{number}-{index}", "total": round(rng.uniform(5, 500), 2), "currency": "EUR"}
            if name == "Order Completed" else {"plan": rng.choice(_WORDS["plan"])})
        events.append(hull_event(name=name, user_id=uid, minutes=-index, properties=properties,
                                 event_id=f"evt-{seed}-{number}-{index}"))
    return events


def user_message(number, seed=0, indexed_minutes=0, with_events=True):
    """One smart-notifier message for user ``number``."""
    return hull_message(user_id=user_id(number), segments=user_segments(number), indexed_minutes=indexed_minutes,
                        events=user_events(number, seed) if with_events else (), **user_traits(number, seed))


def connector_stub(hull_id, hull_organization, hull_secret):
    """What ``tests.builders.notification`` needs of a connector."""
    return SimpleNamespace(hull_id=hull_id, hull_organization=hull_organization, hull_secret=hull_secret)


def notification_bodies(connector, users, prefix, seed=0, indexed_minutes=0, with_events=True,
                        per_notification=MESSAGES_PER_NOTIFICATION, start=0):
    """Encoded smart-notifier bodies covering users ``start .. start+users-1``, ``per_notification`` each.

    Returns ``(bodies, expected_events)``: a list of bytes and the number of events they carry.
    """
    bodies, events = [], 0
    for offset in range(start, start + users, per_notification):
        numbers = range(offset, min(offset + per_notification, start + users))
        messages = [user_message(n, seed, indexed_minutes, with_events) for n in numbers]
        events += sum(len(message["events"]) for message in messages)
        body = notification(connector, messages, notification_id=f"{prefix}-{offset // per_notification}")
        body["segments"] = [{"id": sid, "name": name, "type": "users_segment"} for sid, name in SEGMENTS]
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies, events


def webhook_payload(number, event_id, timestamp):
    """A current-format "email opened" reporting webhook about user ``number``."""
    uid = user_id(number)
    return {
        "event_id": event_id, "object_type": "email", "metric": "opened", "timestamp": timestamp,
        "data": {
            "campaign_id": 7, "action_id": 51, "journey_id": "01HYZKDWSNDXCFYXNQ9P5A2V4V", "parent_action_id": 40,
            "trigger_event_id": None,
            "identifiers": {"id": f"ext-{uid}", "email": f"{uid}@example.com", "cio_id": f"c{number:011d}"},
            "delivery_id": f"RPILpCU6ao6N2oSTg3y{number:08d}==", "recipient": f"{uid}@example.com",
            "subject": "Welcome to Acme!", "proxied": False, "prefetched": False, "synthetic": False,
        },
    }


def sign_webhook(signing_key, timestamp, body):
    """X-CIO-Signature of a raw body: hex HMAC-SHA256 of ``v0:<timestamp>:<body>``."""
    return hmac.new(signing_key.encode(), b"v0:" + str(timestamp).encode() + b":" + body, hashlib.sha256).hexdigest()


def signed_webhooks(signing_key, count, known_users, prefix, timestamp):
    """``count`` encoded webhooks with their headers, cycling over ``known_users`` user numbers."""
    deliveries = []
    for index in range(count):
        body = json.dumps(webhook_payload(index % known_users, f"{prefix}{index:020d}", timestamp),
                          separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-CIO-Timestamp": str(timestamp),
                   "X-CIO-Signature": sign_webhook(signing_key, timestamp, body)}
        deliveries.append((body, headers))
    return deliveries
